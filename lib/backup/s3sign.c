/* SPDX-License-Identifier: MIT */
/*
 * s3sign.c: AWS Signature Version 4 (s3sign.h), as the AWS documentation
 * describes it:
 *
 *   canonical request = METHOD \n URI \n QUERY \n (name:value\n)* \n
 *                       signed-header-names \n payload-hash
 *   string to sign    = "AWS4-HMAC-SHA256" \n amz-date \n
 *                       date/region/service/aws4_request \n hex(SHA256(canonical request))
 *   signing key       = HMAC(HMAC(HMAC(HMAC("AWS4" secret, date), region), service), "aws4_request")
 *   signature         = hex(HMAC(signing key, string to sign))
 *
 * Header names are lowercased and sorted, values trimmed with inner runs of
 * spaces folded to one. Query names and values are URI-encoded and sorted.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "backup/s3sign.h"
#include "base/util.h"

#define MAX_SIGNED_HEADERS 64

static void hex_of(const unsigned char *d, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[d[i] >> 4];
        out[2 * i + 1] = hx[d[i] & 15];
    }
    out[2 * n] = '\0';
}

void ddp_s3_sha256_hex(const void *data, size_t n, char out[DDP_S3_SHA256_HEX])
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256(data, n, md);
    hex_of(md, sizeof md, out);
}

static void hmac256(const void *key, size_t klen, const char *msg, unsigned char out[32])
{
    unsigned int olen = 32;
    HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, strlen(msg), out, &olen);
}

char *ddp_s3_uri_encode(const char *s, int keep_slash)
{
    static const char hx[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *o = ddp_xmalloc(3 * n + 1), *p = o;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || (c == '/' && keep_slash)) {
            *p++ = (char)c;
        } else {
            *p++ = '%';
            *p++ = hx[c >> 4];
            *p++ = hx[c & 15];
        }
    }
    *p = '\0';
    return o;
}

typedef struct qpair {
    char *name, *value;
} qpair;

static int cmp_qpair(const void *a, const void *b)
{
    const qpair *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

char *ddp_s3_canonical_query(size_t n, const char *const *names, const char *const *values)
{
    if (n == 0) return ddp_strdup("");
    qpair *q = ddp_xcalloc(n, sizeof *q);
    size_t len = 1;
    for (size_t i = 0; i < n; i++) {
        q[i].name = ddp_s3_uri_encode(names[i], 0);
        q[i].value = ddp_s3_uri_encode(values && values[i] ? values[i] : "", 0);
        len += strlen(q[i].name) + strlen(q[i].value) + 2;
    }
    qsort(q, n, sizeof *q, cmp_qpair);
    char *o = ddp_xmalloc(len), *p = o;
    for (size_t i = 0; i < n; i++) {
        p += sprintf(p, "%s%s=%s", i ? "&" : "", q[i].name, q[i].value);
        free(q[i].name);
        free(q[i].value);
    }
    free(q);
    return o;
}

void ddp_s3_amz_date(long long t, char out[17])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

typedef struct shdr {
    char *name, *value;
} shdr;

static int cmp_shdr(const void *a, const void *b)
{
    return strcmp(((const shdr *)a)->name, ((const shdr *)b)->name);
}

/* Lowercase name; value trimmed, inner whitespace runs folded to one space. */
static void canon_header(const ddp_s3_header *h, shdr *o)
{
    o->name = ddp_strdup(h->name);
    for (char *c = o->name; *c; c++) *c = (char)tolower((unsigned char)*c);
    const char *v = h->value ? h->value : "";
    o->value = ddp_xmalloc(strlen(v) + 1);
    char *p = o->value;
    int space = 0;
    while (*v == ' ' || *v == '\t') v++;
    for (; *v; v++) {
        if (*v == ' ' || *v == '\t') { space = 1; continue; }
        if (space && p != o->value) *p++ = ' ';
        space = 0;
        *p++ = *v;
    }
    *p = '\0';
}

HRESULT ddp_s3_sign(const ddp_s3_sign_req *r, char **authorization, char **canonical_request,
                    char **string_to_sign)
{
    if (authorization) *authorization = NULL;
    if (canonical_request) *canonical_request = NULL;
    if (string_to_sign) *string_to_sign = NULL;
    if (!r || !authorization || !r->method || !r->canonical_uri || !r->payload_hash || !r->amz_date ||
        strlen(r->amz_date) != 16 || !r->region || !r->service || !r->access_key || !r->secret_key ||
        (r->nheaders && !r->headers))
        return ddp_fail(E_INVALIDARG, "S3 signing: a field of the request is missing");
    if (r->nheaders > MAX_SIGNED_HEADERS) return ddp_fail(E_INVALIDARG, "S3 signing: too many headers");

    shdr h[MAX_SIGNED_HEADERS];
    size_t hlen = 0;
    for (size_t i = 0; i < r->nheaders; i++) {
        canon_header(&r->headers[i], &h[i]);
        hlen += strlen(h[i].name) * 2 + strlen(h[i].value) + 3;
    }
    if (r->nheaders) qsort(h, r->nheaders, sizeof *h, cmp_shdr);
    char *chdrs = ddp_xmalloc(hlen + 1), *signed_names = ddp_xmalloc(hlen + 1);
    char *p = chdrs, *s = signed_names;
    *p = *s = '\0';
    for (size_t i = 0; i < r->nheaders; i++) {
        p += sprintf(p, "%s:%s\n", h[i].name, h[i].value);
        s += sprintf(s, "%s%s", i ? ";" : "", h[i].name);
        free(h[i].name);
        free(h[i].value);
    }
    const char *query = r->canonical_query ? r->canonical_query : "";
    char *creq = ddp_xasprintf("%s\n%s\n%s\n%s\n%s\n%s", r->method, r->canonical_uri, query, chdrs, signed_names,
                               r->payload_hash);
    char creq_hash[DDP_S3_SHA256_HEX];
    ddp_s3_sha256_hex(creq, strlen(creq), creq_hash);
    char date[9];
    memcpy(date, r->amz_date, 8);
    date[8] = '\0';
    char *scope = ddp_xasprintf("%s/%s/%s/aws4_request", date, r->region, r->service);
    char *sts = ddp_xasprintf("AWS4-HMAC-SHA256\n%s\n%s\n%s", r->amz_date, scope, creq_hash);

    char *k0 = ddp_xasprintf("AWS4%s", r->secret_key);
    unsigned char k1[32], k2[32], k3[32], k4[32], sig[32];
    hmac256(k0, strlen(k0), date, k1);
    OPENSSL_cleanse(k0, strlen(k0));
    free(k0);
    hmac256(k1, 32, r->region, k2);
    hmac256(k2, 32, r->service, k3);
    hmac256(k3, 32, "aws4_request", k4);
    hmac256(k4, 32, sts, sig);
    OPENSSL_cleanse(k4, sizeof k4);
    char sighex[65];
    hex_of(sig, 32, sighex);
    *authorization = ddp_xasprintf("AWS4-HMAC-SHA256 Credential=%s/%s,SignedHeaders=%s,Signature=%s", r->access_key,
                                   scope, signed_names, sighex);
    if (canonical_request) *canonical_request = creq;
    else free(creq);
    if (string_to_sign) *string_to_sign = sts;
    else free(sts);
    free(scope);
    free(chdrs);
    free(signed_names);
    return S_OK;
}
