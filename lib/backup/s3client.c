/* SPDX-License-Identifier: MIT */
/*
 * s3client.c: the S3 client (s3client.h) on libcurl's multi interface.
 *
 * Every request is signed afresh for each attempt (SigV4 with the time of
 * sending, s3sign.c) and added to one multi handle, so any number run at
 * once over a few reused connections; ddp_s3_run() drives them and calls
 * each request's done function when it ends. A transfer that fails in a way
 * that may pass (HTTP 5xx or 429, a refused, dropped or timed-out
 * connection) is tried again after a backoff (0.25 s, doubling, at most 4 s,
 * with jitter), up to DDP_S3_ATTEMPTS attempts (default 5). Once a request
 * has used up its attempts on a dead connection, the client takes the
 * service for down for 10 s: requests started meanwhile get one attempt, so
 * a restore whose store went away fails file by file quickly instead of
 * waiting out every backoff.
 *
 * A failure's detail names the method, the object (s3://bucket/key and the
 * byte range), the HTTP status, S3's error code and message, and the
 * attempts; ddp_s3_wait() puts it back into this thread's error detail.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>

#include "backup/s3client.h"
#include "backup/s3sign.h"
#include "backup/s3xml.h"
#include "base/util.h"

#define ERRBODY_MAX 8192u
#define MAX_EXTRA_HEADERS 8
#define POOL_MAX 16
#define MAX_SOCKS 256
#define DOWN_SECONDS 10.0
#define LIST_PAGE_MAX ((size_t)16 << 20)

struct ddp_s3_req {
    ddp_s3 *s;
    char *method, *bucket, *key, *query;
    const uint8_t *body;
    size_t body_len, body_pos;
    char body_hash[DDP_S3_SHA256_HEX];
    int has_range;
    uint64_t range_off, range_len;
    uint8_t *into;
    size_t into_cap;
    uint8_t *buf;
    size_t buf_cap, buf_max;
    char errbody[ERRBODY_MAX + 1];
    size_t errlen;
    char *xh_name[MAX_EXTRA_HEADERS], *xh_value[MAX_EXTRA_HEADERS];
    int nxh;
    void (*done)(ddp_s3_req *, void *);
    void *ctx;
    /* state */
    CURL *easy;
    struct curl_slist *hdrs;
    char *url;
    int state; /* 0 new, 1 running, 2 waiting to retry, 3 done */
    int attempts, max_attempts;
    double due;
    double t_start; /* when the attempt began (DDP_S3_TRACE) */
    int overflow, range_ignored;
    uint64_t skip;
    long status;
    HRESULT hr;
    size_t got;
    char etag[80];
    uint64_t length;
    char *detail;
    char curl_err[CURL_ERROR_SIZE];
    ddp_s3_req *next; /* in the client's list of requests waiting to retry */
};

struct ddp_s3 {
    ddp_s3_config cfg;
    CURLM *multi;
    CURL *pool[POOL_MAX];
    int npool;
    ddp_s3_req *waiting;
    int running;
    int max_attempts;
    double down_until;
    uint64_t jitter;   /* xorshift state for the backoff's jitter */
    ddp_s3_stats stats;
    int trace;         /* DDP_S3_TRACE=1: one line per request on stderr */
    int quickack;      /* TCP_QUICKACK on the open sockets (DDP_S3_QUICKACK=0: not) */
    curl_socket_t socks[MAX_SOCKS]; /* the sockets libcurl opened and has not closed */
    int nsocks;
    double t_open;
};

static int g_curl_ready;

HRESULT ddp_s3_open(ddp_s3 **out)
{
    *out = NULL;
    if (!g_curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return ddp_fail(E_FAIL, "S3: libcurl cannot start");
        g_curl_ready = 1;
    }
    ddp_s3 *s = ddp_xcalloc(1, sizeof *s);
    HRESULT hr = ddp_s3_config_load(&s->cfg);
    if (FAILED(hr)) {
        free(s);
        return hr;
    }
    s->multi = curl_multi_init();
    if (!s->multi) {
        ddp_s3_config_free(&s->cfg);
        free(s);
        return ddp_fail(E_OUTOFMEMORY, "S3: libcurl cannot start");
    }
    curl_multi_setopt(s->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 32L);
    curl_multi_setopt(s->multi, CURLMOPT_MAXCONNECTS, 32L);
    s->max_attempts = 5;
    s->jitter = (uint64_t)(ddp_now() * 1e9) ^ (uint64_t)(uintptr_t)s ^ 0x9E3779B97F4A7C15ull;
    if (!s->jitter) s->jitter = 1;
    const char *tr = getenv("DDP_S3_TRACE");
    s->trace = tr && *tr == '1';
    const char *qa = getenv("DDP_S3_QUICKACK");
    s->quickack = !(qa && strcmp(qa, "0") == 0);
    s->t_open = ddp_now();
    const char *a = getenv("DDP_S3_ATTEMPTS");
    if (a && *a) {
        long v = strtol(a, NULL, 10);
        if (v >= 1 && v <= 20) s->max_attempts = (int)v;
    }
    *out = s;
    return S_OK;
}

void ddp_s3_close(ddp_s3 *s)
{
    if (!s) return;
    for (int i = 0; i < s->npool; i++) curl_easy_cleanup(s->pool[i]);
    curl_multi_cleanup(s->multi);
    ddp_s3_config_free(&s->cfg);
    free(s);
}

const ddp_s3_config *ddp_s3_cfg(const ddp_s3 *s) { return &s->cfg; }

void ddp_s3_get_stats(const ddp_s3 *s, ddp_s3_stats *st) { *st = s->stats; }

/* ---- requests ---- */

ddp_s3_req *ddp_s3_req_new(const char *method, const char *bucket, const char *key, const char *query)
{
    ddp_s3_req *r = ddp_xcalloc(1, sizeof *r);
    r->method = ddp_strdup(method);
    r->bucket = ddp_strdup(bucket);
    r->key = ddp_strdup(key ? key : "");
    r->query = ddp_strdup(query ? query : "");
    memcpy(r->body_hash, DDP_S3_EMPTY_SHA256, sizeof r->body_hash);
    r->buf_max = (size_t)1 << 20;
    return r;
}

void ddp_s3_req_free(ddp_s3_req *r)
{
    if (!r) return;
    if (r->s && (r->state == 1 || r->state == 2)) ddp_s3_cancel(r->s, r);
    free(r->method);
    free(r->bucket);
    free(r->key);
    free(r->query);
    free(r->buf);
    free(r->url);
    free(r->detail);
    for (int i = 0; i < r->nxh; i++) {
        free(r->xh_name[i]);
        free(r->xh_value[i]);
    }
    if (r->hdrs) curl_slist_free_all(r->hdrs);
    free(r);
}

void ddp_s3_req_body(ddp_s3_req *r, const void *body, size_t n)
{
    r->body = body;
    r->body_len = n;
    ddp_s3_sha256_hex(body ? body : "", n, r->body_hash);
}

void ddp_s3_req_range(ddp_s3_req *r, uint64_t off, uint64_t len)
{
    r->has_range = len > 0;
    r->range_off = off;
    r->range_len = len;
}

void ddp_s3_req_into(ddp_s3_req *r, void *buf, size_t cap)
{
    r->into = buf;
    r->into_cap = cap;
}

void ddp_s3_req_max(ddp_s3_req *r, size_t max) { r->buf_max = max; }

void ddp_s3_req_header(ddp_s3_req *r, const char *name, const char *value)
{
    if (r->nxh == MAX_EXTRA_HEADERS) abort(); /* a programming error */
    r->xh_name[r->nxh] = ddp_strdup(name);
    r->xh_value[r->nxh] = ddp_strdup(value);
    r->nxh++;
}

void ddp_s3_req_on_done(ddp_s3_req *r, void (*done)(ddp_s3_req *, void *), void *ctx)
{
    r->done = done;
    r->ctx = ctx;
}

HRESULT ddp_s3_req_hr(const ddp_s3_req *r) { return r->hr; }
long ddp_s3_req_status(const ddp_s3_req *r) { return r->status; }
size_t ddp_s3_req_got(const ddp_s3_req *r) { return r->got; }
const uint8_t *ddp_s3_req_data(const ddp_s3_req *r) { return r->into ? r->into : r->buf; }
const char *ddp_s3_req_etag(const ddp_s3_req *r) { return r->etag; }
uint64_t ddp_s3_req_length(const ddp_s3_req *r) { return r->length; }
int ddp_s3_req_is_done(const ddp_s3_req *r) { return r->state == 3; }

/* ---- curl callbacks ---- */

static size_t on_write(char *p, size_t sz, size_t nm, void *ud)
{
    ddp_s3_req *r = ud;
    size_t n = sz * nm;
    long code = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
    if (code >= 300) {
        size_t room = ERRBODY_MAX - r->errlen;
        size_t k = n < room ? n : room;
        memcpy(r->errbody + r->errlen, p, k);
        r->errlen += k;
        r->errbody[r->errlen] = '\0';
        return n;
    }
    r->s->stats.bytes_in += n;
    if (r->has_range && code == 200 && !r->range_ignored) {
        r->range_ignored = 1; /* the whole object came: keep only the range */
        r->skip = r->range_off;
    }
    if (r->skip) {
        size_t k = r->skip < n ? (size_t)r->skip : n;
        r->skip -= k;
        p += k;
        n -= k;
        if (n == 0) return sz * nm;
    }
    if (r->range_ignored && r->got + n > r->range_len) {
        n = r->got >= r->range_len ? 0 : (size_t)(r->range_len - r->got);
        if (n == 0) return sz * nm;
    }
    if (r->into) {
        if (n > r->into_cap - r->got) {
            r->overflow = 1;
            return 0;
        }
        memcpy(r->into + r->got, p, n);
    } else {
        if (n > r->buf_max - r->got) {
            r->overflow = 1;
            return 0;
        }
        if (r->got + n > r->buf_cap) {
            size_t cap = r->buf_cap ? r->buf_cap : 4096;
            while (cap < r->got + n) cap *= 2;
            if (cap > r->buf_max) cap = r->buf_max;
            r->buf = ddp_xrealloc(r->buf, cap + 1);
            r->buf_cap = cap;
        }
        memcpy(r->buf + r->got, p, n);
        r->buf[r->got + n] = '\0';
    }
    r->got += n;
    return sz * nm;
}

static size_t on_header(char *p, size_t sz, size_t nm, void *ud)
{
    ddp_s3_req *r = ud;
    size_t n = sz * nm;
    if (n > 5 && strncasecmp(p, "ETag:", 5) == 0) {
        const char *v = p + 5;
        size_t k = n - 5;
        while (k && (*v == ' ' || *v == '"')) { v++; k--; }
        while (k && (v[k - 1] == '\r' || v[k - 1] == '\n' || v[k - 1] == ' ' || v[k - 1] == '"')) k--;
        if (k >= sizeof r->etag) k = sizeof r->etag - 1;
        memcpy(r->etag, v, k);
        r->etag[k] = '\0';
    } else if (n > 15 && strncasecmp(p, "Content-Length:", 15) == 0) {
        r->length = strtoull(p + 15, NULL, 10);
    }
    return n;
}

static size_t on_read(char *p, size_t sz, size_t nm, void *ud)
{
    ddp_s3_req *r = ud;
    size_t n = sz * nm, left = r->body_len - r->body_pos;
    if (n > left) n = left;
    if (n) memcpy(p, r->body + r->body_pos, n);
    r->body_pos += n;
    r->s->stats.bytes_out += n;
    return n;
}

/* ---- sending ---- */

static int key_char_plain(unsigned char c) { return c > 0x20 && c != 0x7f && c != '%'; }

/* Length of the valid UTF-8 sequence at p (1..4), or 0. */
static size_t utf8_len(const unsigned char *p, size_t left)
{
    if (p[0] < 0x80) return 1;
    size_t n = (p[0] & 0xE0) == 0xC0 ? 2 : (p[0] & 0xF0) == 0xE0 ? 3 : (p[0] & 0xF8) == 0xF0 ? 4 : 0;
    if (n == 0 || n > left) return 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xC0) != 0x80) return 0;
    uint32_t cp = p[0] & (0x7F >> n);
    for (size_t i = 1; i < n; i++) cp = (cp << 6) | (p[i] & 0x3F);
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

char *ddp_s3_key_join(const char *prefix, const char *rest)
{
    if (!prefix || !*prefix) return ddp_strdup(rest);
    return ddp_xasprintf("%s/%s", prefix, rest);
}

char *ddp_s3_key_of_path(const char *prefix, const char *path)
{
    static const char hx[] = "0123456789ABCDEF";
    while (*path == '/') path++;
    size_t n = strlen(path);
    char *e = ddp_xmalloc(3 * n + 1), *o = e;
    const unsigned char *p = (const unsigned char *)path;
    for (size_t i = 0; i < n;) {
        size_t u = p[i] >= 0x80 ? utf8_len(p + i, n - i) : 0;
        if (u > 0) {
            memcpy(o, p + i, u);
            o += u;
            i += u;
        } else if (p[i] < 0x80 && key_char_plain(p[i])) {
            *o++ = (char)p[i++];
        } else {
            *o++ = '%';
            *o++ = hx[p[i] >> 4];
            *o++ = hx[p[i] & 15];
            i++;
        }
    }
    *o = '\0';
    char *k = ddp_s3_key_join(prefix, e);
    free(e);
    return k;
}

/* libcurl's sockets, known to the client for quickack_all(). */
static curl_socket_t open_sock(void *ctx, curlsocktype purpose, struct curl_sockaddr *a)
{
    (void)purpose;
    ddp_s3 *s = ctx;
    curl_socket_t fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    if (fd != CURL_SOCKET_BAD && s->nsocks < MAX_SOCKS && a->family != AF_UNIX) s->socks[s->nsocks++] = fd;
    return fd;
}

static int close_sock(void *ctx, curl_socket_t fd)
{
    ddp_s3 *s = ctx;
    for (int i = 0; i < s->nsocks; i++)
        if (s->socks[i] == fd) {
            s->socks[i] = s->socks[--s->nsocks];
            break;
        }
    return close(fd);
}

static CURL *get_easy(ddp_s3 *s)
{
    if (s->npool > 0) {
        CURL *e = s->pool[--s->npool];
        curl_easy_reset(e);
        return e;
    }
    CURL *e = curl_easy_init();
    if (!e) abort(); /* out of memory */
    return e;
}

static void put_easy(ddp_s3 *s, CURL *e)
{
    if (s->npool < POOL_MAX) s->pool[s->npool++] = e;
    else curl_easy_cleanup(e);
}

static struct curl_slist *add_hdr(struct curl_slist *l, const char *name, const char *value)
{
    char *h = ddp_xasprintf("%s: %s", name, value);
    struct curl_slist *n = curl_slist_append(l, h);
    free(h);
    if (!n) abort();
    return n;
}

static void begin_attempt(ddp_s3 *s, ddp_s3_req *r)
{
    const ddp_s3_config *c = &s->cfg;
    r->attempts++;
    r->got = 0;
    r->errlen = 0;
    r->errbody[0] = '\0';
    r->overflow = r->range_ignored = 0;
    r->skip = 0;
    r->status = 0;
    r->etag[0] = '\0';
    r->length = 0;
    r->body_pos = 0;
    r->curl_err[0] = '\0';
    char *ekey = ddp_s3_uri_encode(r->key, 1);
    char *uri, *host;
    if (ddp_s3_config_path_style(c, r->bucket)) {
        uri = *r->key ? ddp_xasprintf("/%s/%s", r->bucket, ekey) : ddp_xasprintf("/%s", r->bucket);
        host = ddp_strdup(c->host);
    } else {
        uri = ddp_xasprintf("/%s", ekey);
        host = ddp_xasprintf("%s.%s", r->bucket, c->host);
    }
    free(r->url);
    r->url = ddp_xasprintf("%s://%s%s%s%s", c->https ? "https" : "http", host, uri, *r->query ? "?" : "", r->query);
    char date[17];
    ddp_s3_amz_date((long long)time(NULL), date);
    char range[64] = "";
    if (r->has_range)
        snprintf(range, sizeof range, "bytes=%" PRIu64 "-%" PRIu64, r->range_off, r->range_off + r->range_len - 1);
    ddp_s3_header h[4 + MAX_EXTRA_HEADERS];
    size_t nh = 0;
    h[nh++] = (ddp_s3_header){ "host", host };
    h[nh++] = (ddp_s3_header){ "x-amz-date", date };
    h[nh++] = (ddp_s3_header){ "x-amz-content-sha256", r->body_hash };
    if (r->has_range) h[nh++] = (ddp_s3_header){ "range", range };
    if (c->session_token) h[nh++] = (ddp_s3_header){ "x-amz-security-token", c->session_token };
    for (int i = 0; i < r->nxh && nh < sizeof h / sizeof h[0]; i++) h[nh++] = (ddp_s3_header){ r->xh_name[i], r->xh_value[i] };
    ddp_s3_sign_req sr = { r->method, uri, r->query, h, nh, r->body_hash, date, c->region, "s3", c->access_key,
                           c->secret_key };
    char *auth = NULL;
    if (FAILED(ddp_s3_sign(&sr, &auth, NULL, NULL))) abort(); /* every field is set above */
    if (r->hdrs) curl_slist_free_all(r->hdrs);
    r->hdrs = NULL;
    for (size_t i = 0; i < nh; i++) r->hdrs = add_hdr(r->hdrs, h[i].name, h[i].value);
    r->hdrs = add_hdr(r->hdrs, "Authorization", auth);
    r->hdrs = curl_slist_append(r->hdrs, "Expect:");
    r->hdrs = curl_slist_append(r->hdrs, "Content-Type:");
    free(auth);
    free(ekey);
    free(uri);
    free(host);

    CURL *e = r->easy = get_easy(s);
    curl_easy_setopt(e, CURLOPT_URL, r->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, 30L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_sock);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, s);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, close_sock);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, s);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    if (c->ca_bundle) curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_bundle);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->curl_err);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    if (strcmp(r->method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (strcmp(r->method, "PUT") == 0) {
        curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(e, CURLOPT_READDATA, r);
        curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->body_len);
    } else if (strcmp(r->method, "POST") == 0) {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body ? (const char *)r->body : "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
        s->stats.bytes_out += r->body_len;
    } else if (strcmp(r->method, "GET") != 0) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
    }
    r->state = 1;
    if (s->trace) r->t_start = ddp_now();
    s->running++;
    s->stats.requests++;
    curl_multi_add_handle(s->multi, e);
}

/* Acknowledge what comes in at once: a gateway that sends an answer's
 * header and body in two writes with Nagle's algorithm on (Ceph RGW's beast
 * by default) holds the body until the header is acknowledged, and the
 * kernel delays that ACK by 40 ms once the connection looks interactive.
 * TCP_QUICKACK, set again after each request went out (the kernel drops it
 * when we send), makes the read of the header acknowledge it at once. */
static void quickack_all(ddp_s3 *s)
{
    for (int i = 0; i < s->nsocks; i++) {
        int one = 1;
        (void)setsockopt(s->socks[i], IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
    }
}

void ddp_s3_start(ddp_s3 *s, ddp_s3_req *r)
{
    r->s = s;
    r->attempts = 0;
    r->hr = S_OK;
    free(r->detail);
    r->detail = NULL;
    r->max_attempts = ddp_now() < s->down_until ? 1 : s->max_attempts;
    begin_attempt(s, r);
}

static void detach(ddp_s3 *s, ddp_s3_req *r)
{
    if (r->state == 1 && r->easy) {
        curl_multi_remove_handle(s->multi, r->easy);
        put_easy(s, r->easy);
        r->easy = NULL;
        s->running--;
    } else if (r->state == 2) {
        for (ddp_s3_req **pp = &s->waiting; *pp; pp = &(*pp)->next)
            if (*pp == r) {
                *pp = r->next;
                break;
            }
    }
}

void ddp_s3_cancel(ddp_s3 *s, ddp_s3_req *r)
{
    if (r->state != 1 && r->state != 2) return;
    detach(s, r);
    r->state = 3;
    r->hr = E_ABORT;
}

static int transient_curl(CURLcode cc)
{
    switch (cc) {
    case CURLE_COULDNT_CONNECT: case CURLE_SEND_ERROR: case CURLE_RECV_ERROR: case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE: case CURLE_OPERATION_TIMEDOUT: case CURLE_HTTP2: case CURLE_HTTP2_STREAM:
    case CURLE_COULDNT_RESOLVE_HOST: case CURLE_SSL_CONNECT_ERROR:
        return 1;
    default:
        return 0;
    }
}

static HRESULT hr_of_curl(CURLcode cc)
{
    switch (cc) {
    case CURLE_COULDNT_CONNECT: return HRESULT_FROM_WIN32(ERROR_CONNECTION_REFUSED);
    case CURLE_COULDNT_RESOLVE_HOST: return HRESULT_FROM_WIN32(ERROR_BAD_NETPATH);
    case CURLE_OPERATION_TIMEDOUT: return HRESULT_FROM_WIN32(ERROR_TIMEOUT);
    case CURLE_PEER_FAILED_VERIFICATION: case CURLE_SSL_CACERT_BADFILE: return HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED);
    case CURLE_OUT_OF_MEMORY: return E_OUTOFMEMORY;
    default: return HRESULT_FROM_WIN32(ERROR_NETNAME_DELETED);
    }
}

static HRESULT hr_of_status(long code, const char *s3code)
{
    if (code == 404) {
        if (s3code && strcmp(s3code, "NoSuchBucket") == 0) return HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND);
        return HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND);
    }
    if (code == 401 || code == 403) return HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED);
    if (code == 409) return HRESULT_FROM_WIN32(ERROR_ALREADY_EXISTS);
    if (code == 429 || (code == 503 && s3code && strcmp(s3code, "SlowDown") == 0)) return HRESULT_FROM_WIN32(ERROR_BUSY);
    if (code >= 500) return HRESULT_FROM_WIN32(ERROR_UNEXP_NET_ERR);
    return E_INVALIDARG;
}

static void set_detail(ddp_s3_req *r, const char *fmt_tail)
{
    char range[80] = "";
    if (r->has_range)
        snprintf(range, sizeof range, " (bytes %" PRIu64 "-%" PRIu64 ")", r->range_off, r->range_off + r->range_len - 1);
    free(r->detail);
    r->detail = ddp_xasprintf("S3 %s s3://%s/%s%s%s: %s%s", r->method, r->bucket, r->key, *r->query ? "?" : "",
                              *r->query ? r->query : "", fmt_tail, range);
}

static void finish_attempt(ddp_s3 *s, ddp_s3_req *r, CURLcode cc)
{
    long code = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
    curl_multi_remove_handle(s->multi, r->easy);
    put_easy(s, r->easy);
    r->easy = NULL;
    s->running--;
    r->status = code;
    if (s->trace) {
        double now = ddp_now();
        /* seconds since the client opened, seconds taken, method, status, bytes sent and received, requests
         * still in flight, object */
        fprintf(stderr, "s3trace %9.4f %7.4f %-6s %3ld out=%zu in=%zu inflight=%d %s%s%.60s\n", r->t_start - s->t_open,
                now - r->t_start, r->method, code, r->body_len, r->got, s->running, r->key, *r->query ? "?" : "",
                r->query);
    }
    int transient = 0, conn = 0;
    HRESULT hr = S_OK;
    char *tail = NULL;
    if (r->overflow) {
        hr = DDP_E_INVALID_DATA;
        tail = ddp_xasprintf("HTTP %ld: the answer is larger than expected (more than %zu bytes)", code,
                             r->into ? r->into_cap : r->buf_max);
    } else if (cc != CURLE_OK) {
        transient = transient_curl(cc);
        conn = transient;
        hr = hr_of_curl(cc);
        tail = ddp_xasprintf("%s (%s)", r->curl_err[0] ? r->curl_err : curl_easy_strerror(cc), ddp_strerror(hr));
    } else if (code >= 200 && code < 300) {
        hr = S_OK;
    } else if (code == 416 && r->has_range) {
        r->got = 0; /* the range starts past the end: no bytes */
    } else {
        char *s3code = r->errlen ? ddp_s3_xml_text(r->errbody, r->errlen, "Code") : NULL;
        char *msg = r->errlen ? ddp_s3_xml_text(r->errbody, r->errlen, "Message") : NULL;
        transient = code >= 500 || code == 429;
        hr = hr_of_status(code, s3code);
        if (!s3code && code == 404) s3code = ddp_strdup(strcmp(r->method, "HEAD") == 0 ? "NotFound" : "NoSuchKey");
        tail = ddp_xasprintf("HTTP %ld %s%s%s", code, s3code ? s3code : "(no S3 error code)", msg && *msg ? ": " : "",
                             msg ? msg : "");
        free(s3code);
        free(msg);
    }
    if (FAILED(hr) && transient && r->attempts < r->max_attempts) {
        free(tail);
        double backoff = 0.25 * (double)(1u << (r->attempts - 1));
        if (backoff > 4.0) backoff = 4.0;
        s->jitter ^= s->jitter << 13;
        s->jitter ^= s->jitter >> 7;
        s->jitter ^= s->jitter << 17;
        backoff *= 0.75 + 0.5 * ((double)(s->jitter >> 11) / 9007199254740992.0);
        r->due = ddp_now() + backoff;
        r->state = 2;
        r->next = s->waiting;
        s->waiting = r;
        s->stats.retries++;
        return;
    }
    if (FAILED(hr)) {
        char *t2 = r->attempts > 1 ? ddp_xasprintf("%s, after %d attempts", tail, r->attempts) : NULL;
        set_detail(r, t2 ? t2 : tail);
        free(t2);
        if (conn) s->down_until = ddp_now() + DOWN_SECONDS;
    } else {
        s->down_until = 0;
    }
    free(tail);
    r->hr = hr;
    r->state = 3;
    if (r->done) r->done(r, r->ctx);
}

int ddp_s3_run(ddp_s3 *s, int timeout_ms)
{
    double now = ddp_now();
    /* requests whose backoff is over go again */
    for (ddp_s3_req **pp = &s->waiting; *pp;) {
        ddp_s3_req *r = *pp;
        if (r->due <= now) {
            *pp = r->next;
            begin_attempt(s, r);
        } else {
            double ms = (r->due - now) * 1000.0;
            if (ms < timeout_ms) timeout_ms = (int)ms + 1;
            pp = &r->next;
        }
    }
    int still = 0;
    curl_multi_perform(s->multi, &still);
    if (still > 0 || s->waiting) {
        int numfds = 0;
        if (s->quickack) quickack_all(s);
        curl_multi_poll(s->multi, NULL, 0, still > 0 ? timeout_ms : (timeout_ms < 50 ? timeout_ms : 50), &numfds);
        curl_multi_perform(s->multi, &still);
    }
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(s->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE) continue;
        ddp_s3_req *r = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        if (r) finish_attempt(s, r, m->data.result);
    }
    int waiting = 0;
    for (ddp_s3_req *r = s->waiting; r; r = r->next) waiting++;
    return s->running + waiting;
}

HRESULT ddp_s3_wait(ddp_s3 *s, ddp_s3_req *r)
{
    while (r->state == 1 || r->state == 2) ddp_s3_run(s, 1000);
    if (FAILED(r->hr) && r->detail) return ddp_fail(r->hr, "%s", r->detail);
    return r->hr;
}

HRESULT ddp_s3_do(ddp_s3 *s, ddp_s3_req *r)
{
    ddp_s3_start(s, r);
    return ddp_s3_wait(s, r);
}

/* ---- helpers ---- */

HRESULT ddp_s3_get_object(ddp_s3 *s, const char *bucket, const char *key, size_t max, uint8_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    ddp_s3_req *r = ddp_s3_req_new("GET", bucket, key, NULL);
    ddp_s3_req_max(r, max);
    HRESULT hr = ddp_s3_do(s, r);
    if (SUCCEEDED(hr)) {
        *n = r->got;
        *out = r->buf ? r->buf : ddp_xcalloc(1, 1);
        r->buf = NULL;
    }
    ddp_s3_req_free(r);
    return hr;
}

HRESULT ddp_s3_put_object(ddp_s3 *s, const char *bucket, const char *key, const void *data, size_t n, char *etag)
{
    ddp_s3_req *r = ddp_s3_req_new("PUT", bucket, key, NULL);
    ddp_s3_req_body(r, data, n);
    HRESULT hr = ddp_s3_do(s, r);
    if (etag) snprintf(etag, 80, "%s", r->etag);
    ddp_s3_req_free(r);
    return hr;
}

HRESULT ddp_s3_delete_object(ddp_s3 *s, const char *bucket, const char *key)
{
    ddp_s3_req *r = ddp_s3_req_new("DELETE", bucket, key, NULL);
    HRESULT hr = ddp_s3_do(s, r);
    ddp_s3_req_free(r);
    return hr;
}

HRESULT ddp_s3_list(ddp_s3 *s, const char *bucket, const char *prefix, ddp_s3_list_fn fn, void *ctx)
{
    char *pfx = prefix && *prefix ? ddp_xasprintf("%s/", prefix) : ddp_strdup("");
    size_t plen = strlen(pfx);
    char *token = NULL;
    HRESULT hr = S_OK;
    do {
        const char *names[4] = { "list-type", "max-keys", "prefix", "continuation-token" };
        const char *values[4] = { "2", "1000", pfx, token };
        char *q = ddp_s3_canonical_query(token ? 4 : 3, names, values);
        ddp_s3_req *r = ddp_s3_req_new("GET", bucket, "", q);
        free(q);
        ddp_s3_req_max(r, LIST_PAGE_MAX);
        hr = ddp_s3_do(s, r);
        free(token);
        token = NULL;
        if (SUCCEEDED(hr)) {
            const char *x = (const char *)r->buf;
            size_t xn = r->got, pos = 0, st, len;
            while (x && SUCCEEDED(hr) && ddp_s3_xml_next(x, xn, "Contents", &pos, &st, &len)) {
                char *key = ddp_s3_xml_text(x + st, len, "Key");
                char *size = ddp_s3_xml_text(x + st, len, "Size");
                char *etag = ddp_s3_xml_text(x + st, len, "ETag");
                if (!key || !size || strncmp(key, pfx, plen) != 0) {
                    hr = ddp_fail(DDP_E_INVALID_DATA, "S3 LIST s3://%s/%s: an entry without a key or size, or outside the prefix",
                                  bucket, pfx);
                } else {
                    char *eq = etag ? etag : ddp_strdup("");
                    char *e = eq;
                    size_t el = strlen(e);
                    if (el >= 2 && e[0] == '"' && e[el - 1] == '"') {
                        e[el - 1] = '\0';
                        e++;
                    }
                    hr = fn(ctx, key + plen, strtoull(size, NULL, 10), e);
                    if (!etag) free(eq);
                }
                free(key);
                free(size);
                free(etag);
            }
            char *trunc = x ? ddp_s3_xml_text(x, xn, "IsTruncated") : NULL;
            if (SUCCEEDED(hr) && trunc && strcmp(trunc, "true") == 0) {
                token = ddp_s3_xml_text(x, xn, "NextContinuationToken");
                if (!token) hr = ddp_fail(DDP_E_INVALID_DATA, "S3 LIST s3://%s/%s: truncated without a continuation token", bucket, pfx);
            }
            free(trunc);
        }
        ddp_s3_req_free(r);
    } while (SUCCEEDED(hr) && token);
    free(token);
    free(pfx);
    return hr;
}
