/* SPDX-License-Identifier: MIT */
/*
 * extract_s3.c: the S3 source of the first step of a restore
 * (ddp_backup_extract on s3://BUCKET/PREFIX, extract_internal.h): the
 * chain's newest manifest, and the bytes of the files it lists. Everything
 * is written by extract.c, beneath the held target and through its staging
 * directory, as for any other backup; this file only fetches.
 *
 * Files in pack objects (manifest version 2) are fetched by ranged GETs of
 * their pack: neighbouring files of one pack (less than PACK_GAP apart, at
 * most PACK_GET a GET) share one GET, so a full restore reads each pack in
 * a few large requests, in order. Small files of their own (version 1: one
 * object per file; stubs are 232 bytes) are fetched with one GET each. Up to
 * INFLIGHT requests run ahead of the file being written, holding at most
 * AHEAD_BYTES; larger files are streamed in ranged GETs of STREAM_GET bytes,
 * so memory stays bounded. An object shorter than its manifest entry (a
 * small one: of another length), or a pack shorter than a file's range in
 * it, is DDP_E_FILE_CORRUPT naming the object and the file; a missing one
 * DDP_E_NOT_FOUND, as for a directory backup; a network failure is that
 * path's error, the rest go on.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "backup/backupstore.h"
#include "backup/extract_internal.h"
#include "backup/s3chain.h"
#include "backup/s3client.h"
#include "base/util.h"

#define SMALL_FILE ((uint64_t)1 << 20)
#define INFLIGHT 64
#define AHEAD_BYTES ((uint64_t)64 << 20)
#define PACK_GAP ((uint64_t)256 << 10)
#define PACK_GET ((uint64_t)16 << 20)
#define STREAM_GET ((size_t)8 << 20)

struct ddp_extract_s3 {
    ddp_s3 *s3;
    ddp_s3_chain c;
};

HRESULT ddp_extract_s3_open(const char *url, ddp_extract_s3 **out)
{
    *out = NULL;
    ddp_extract_s3 *s = ddp_xcalloc(1, sizeof *s);
    HRESULT hr = ddp_s3_open(&s->s3);
    if (FAILED(hr)) {
        free(s);
        return hr;
    }
    hr = ddp_s3_chain_open(s->s3, url, &s->c);
    if (FAILED(hr)) {
        ddp_s3_close(s->s3);
        free(s);
        return hr;
    }
    *out = s;
    return S_OK;
}

const ddp_manifest *ddp_extract_s3_manifest(const ddp_extract_s3 *s) { return &s->c.newest; }

void ddp_extract_s3_close(ddp_extract_s3 *s)
{
    if (!s) return;
    ddp_s3_chain_close(&s->c);
    ddp_s3_close(s->s3);
    free(s);
}

HRESULT ddp_extract_s3_to_store(ddp_extract_s3 *s, IDedupReadFileCallback **out)
{
    ddp_s3 *s3 = s->s3;
    ddp_s3_chain c = s->c;
    free(s);
    return ddp_backupstore_open_s3_opened(s3, &c, out);
}

static HRESULT missing_or(HRESULT hr, const char *rel, const char *bucket, const char *key)
{
    if (hr == HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND))
        return ddp_fail(DDP_E_NOT_FOUND, "%s: listed in the manifest but missing from the backup (no object s3://%s/%s)",
                        rel, bucket, key);
    return hr;
}

/* A small file, its whole body in memory, is read through ddp_membuf (base/util.h). */

/* ---- a large file: ranged GETs of STREAM_GET bytes into a window ---- */

typedef struct stream_src {
    ddp_s3 *s3;
    const char *bucket, *key, *rel;
    uint64_t size;
    uint8_t *win;         /* STREAM_GET bytes, allocated on the first read */
    uint64_t win_off;
    size_t win_len;
} stream_src;

static HRESULT stream_read(void *ctx, void *buf, size_t n, uint64_t off, size_t *got)
{
    stream_src *s = ctx;
    *got = 0;
    if (off >= s->size) return S_OK;
    if (off < s->win_off || off >= s->win_off + s->win_len) {
        size_t want = s->size - off < STREAM_GET ? (size_t)(s->size - off) : STREAM_GET;
        if (!s->win) s->win = ddp_xmalloc(STREAM_GET);
        s->win_len = 0;
        ddp_s3_req *r = ddp_s3_req_new("GET", s->bucket, s->key, NULL);
        ddp_s3_req_range(r, off, want);
        ddp_s3_req_into(r, s->win, want);
        HRESULT hr = ddp_s3_do(s->s3, r);
        if (SUCCEEDED(hr) && ddp_s3_req_got(r) != want)
            hr = ddp_fail(DDP_E_FILE_CORRUPT, "%s: s3://%s/%s is shorter than its manifest says (%" PRIu64 " bytes)",
                          s->rel, s->bucket, s->key, s->size);
        ddp_s3_req_free(r);
        if (FAILED(hr)) return missing_or(hr, s->rel, s->bucket, s->key);
        s->win_off = off;
        s->win_len = want;
    }
    size_t at = (size_t)(off - s->win_off);
    size_t k = s->win_len - at < n ? s->win_len - at : n;
    memcpy(buf, s->win + at, k);
    *got = k;
    return S_OK;
}

/* ---- the files, in order, with GETs ahead ---- */

enum { U_OBJECT = 0, U_PACK = 1, U_STREAM = 2 };

/* One GET (or a streamed file): an object of its own, or a range of a pack
 * that holds the files first..last. */
typedef struct xunit {
    int kind;
    size_t first, last;
    uint32_t level, pack;
    uint64_t off, len;   /* U_PACK: bytes [off, off + len) of the pack */
    char *key;
    ddp_s3_req *req;
    uint8_t *data;       /* U_PACK: len bytes */
    HRESULT hr;          /* U_PACK: the GET's result, once waited for */
    size_t got;
    int waited;
    char *detail;        /* U_PACK: what the failed GET said */
} xunit;

static void unit_start(ddp_extract_s3 *s, xunit *u, const ddp_mf_entry *e)
{
    const ddp_s3_chain *c = &s->c;
    if (u->kind == U_STREAM) return;
    if (u->kind == U_OBJECT) {
        u->req = ddp_s3_req_new("GET", c->bucket[e->level], u->key, NULL);
        ddp_s3_req_max(u->req, (size_t)SMALL_FILE);
        ddp_s3_start(s->s3, u->req);
        return;
    }
    if (u->len == 0) return; /* only empty files */
    u->data = ddp_xmalloc((size_t)u->len);
    u->req = ddp_s3_req_new("GET", c->bucket[u->level], u->key, NULL);
    ddp_s3_req_range(u->req, u->off, u->len);
    ddp_s3_req_into(u->req, u->data, (size_t)u->len);
    ddp_s3_start(s->s3, u->req);
}

/* Hand one file of a pack range to put. */
static void put_packed(ddp_extract_s3 *s, xunit *u, size_t k, const ddp_mf_entry *e, ddp_extract_put_fn put, void *ctx)
{
    const ddp_s3_chain *c = &s->c;
    const char *rel = e->path + 1;
    const char *bucket = c->bucket[u->level];
    if (!u->waited) {
        u->waited = 1;
        u->hr = u->req ? ddp_s3_wait(s->s3, u->req) : S_OK;
        u->got = u->req ? ddp_s3_req_got(u->req) : 0;
        if (FAILED(u->hr)) {
            if (u->hr == HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND)) {
                u->hr = DDP_E_NOT_FOUND;
                u->detail = ddp_xasprintf("listed in the manifest but its pack s3://%s/%s is missing", bucket, u->key);
            } else {
                u->detail = ddp_strdup(ddp_error_detail()); /* for every file of this GET */
            }
        }
    }
    if (FAILED(u->hr)) {
        put(ctx, k, ddp_fail(u->hr, "%s: %s", rel, u->detail), NULL, NULL);
        return;
    }
    uint64_t at = e->pack_off - u->off;
    if (at + e->size > u->got) {
        const ddp_mf_pack *pk = ddp_manifest_pack(&c->newest, u->level, u->pack);
        put(ctx, k,
            ddp_fail(DDP_E_FILE_CORRUPT,
                     "%s: pack s3://%s/%s is truncated: its bytes %" PRIu64 "+%" PRIu64 " are past the %zu bytes that came "
                     "back from %" PRIu64 " (the manifest says the pack has %" PRIu64 " bytes)",
                     rel, bucket, u->key, e->pack_off, e->size, u->got, u->off, pk ? pk->size : 0),
            NULL, NULL);
        return;
    }
    ddp_membuf m = { u->data + at, (size_t)e->size };
    put(ctx, k, S_OK, ddp_membuf_read, &m);
}

static void unit_free(xunit *u)
{
    ddp_s3_req_free(u->req);
    u->req = NULL;
    free(u->data);
    u->data = NULL;
    free(u->key);
    u->key = NULL;
    free(u->detail);
    u->detail = NULL;
}

void ddp_extract_s3_fetch(ddp_extract_s3 *s, size_t n, const ddp_mf_entry *const *entries, ddp_extract_put_fn put,
                          void *ctx)
{
    const ddp_s3_chain *c = &s->c;
    xunit *units = ddp_xcalloc(n ? n : 1, sizeof *units);
    size_t nu = 0;
    for (size_t k = 0; k < n; k++) {
        const ddp_mf_entry *e = entries[k];
        if (e->pack) {
            xunit *last = nu ? &units[nu - 1] : NULL;
            if (last && last->kind == U_PACK && last->level == e->level && last->pack == e->pack &&
                e->pack_off >= last->off + last->len && e->pack_off - (last->off + last->len) <= PACK_GAP &&
                e->pack_off + e->size - last->off <= PACK_GET) {
                last->len = e->pack_off + e->size - last->off;
                last->last = k;
                continue;
            }
            char *path = ddp_manifest_pack_path(e->pack);
            units[nu++] = (xunit){ U_PACK, k, k, e->level, e->pack, e->pack_off, e->size,
                                   ddp_s3_key_of_path(c->prefix[e->level], path), NULL, NULL, S_OK, 0, 0, NULL };
            free(path);
        } else {
            units[nu++] = (xunit){ e->size <= SMALL_FILE ? U_OBJECT : U_STREAM, k, k, e->level, 0, 0, 0,
                                   ddp_s3_key_of_path(c->prefix[e->level], e->path), NULL, NULL, S_OK, 0, 0, NULL };
        }
    }
    size_t next = 0;
    uint64_t held = 0; /* pack bytes asked for and not yet handed out */
    for (size_t i = 0; i < nu; i++) {
        while (next < nu && next < i + INFLIGHT &&
               (next == i || units[next].kind != U_PACK || held + units[next].len <= AHEAD_BYTES)) {
            unit_start(s, &units[next], entries[units[next].first]);
            if (units[next].kind == U_PACK) held += units[next].len;
            next++;
        }
        xunit *u = &units[i];
        const ddp_mf_entry *e = entries[u->first];
        const char *rel = e->path + 1;
        const char *bucket = c->bucket[e->level];
        if (u->kind == U_PACK) {
            for (size_t k = u->first; k <= u->last; k++) put_packed(s, u, k, entries[k], put, ctx);
            held -= u->len;
        } else if (u->kind == U_OBJECT) {
            HRESULT hr = ddp_s3_wait(s->s3, u->req);
            if (SUCCEEDED(hr) && ddp_s3_req_got(u->req) != e->size)
                hr = ddp_fail(DDP_E_FILE_CORRUPT, "%s: s3://%s/%s has %zu bytes, its manifest says %" PRIu64, rel, bucket,
                              u->key, ddp_s3_req_got(u->req), e->size);
            if (SUCCEEDED(hr)) {
                ddp_membuf m = { ddp_s3_req_data(u->req), ddp_s3_req_got(u->req) };
                put(ctx, u->first, S_OK, ddp_membuf_read, &m);
            } else {
                put(ctx, u->first, missing_or(hr, rel, bucket, u->key), NULL, NULL);
            }
        } else {
            stream_src st = { s->s3, bucket, u->key, rel, e->size, NULL, 0, 0 };
            put(ctx, u->first, S_OK, stream_read, &st);
            free(st.win);
        }
        unit_free(u);
    }
    for (size_t i = 0; i < nu; i++) unit_free(&units[i]);
    free(units);
}
