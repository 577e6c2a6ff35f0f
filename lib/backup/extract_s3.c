/* SPDX-License-Identifier: MIT */
/*
 * extract_s3.c: the S3 source of the first step of a restore
 * (ddp_backup_extract on s3://BUCKET/PREFIX, extract_internal.h): the
 * chain's newest manifest, and the bytes of the files it lists. Everything
 * is written by extract.c, beneath the held target and through its staging
 * directory, as for any other backup; this file only fetches.
 *
 * Small files (stubs are 232 bytes) are fetched many at a time, each with
 * one GET, SMALL_INFLIGHT ahead of the one being written; larger ones are
 * streamed in ranged GETs of STREAM_GET bytes, so memory stays bounded. An
 * object shorter than its manifest entry (a small one: of another length) is
 * DDP_E_FILE_CORRUPT; a missing one DDP_E_NOT_FOUND, as for a directory backup; a network failure
 * is that path's error, the rest go on.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "backup/extract_internal.h"
#include "backup/s3chain.h"
#include "backup/s3client.h"
#include "base/util.h"

#define SMALL_FILE ((uint64_t)1 << 20)
#define SMALL_INFLIGHT 64
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

static HRESULT missing_or(HRESULT hr, const char *rel, const char *bucket, const char *key)
{
    if (hr == HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND))
        return ddp_fail(DDP_E_NOT_FOUND, "%s: listed in the manifest but missing from the backup (no object s3://%s/%s)",
                        rel, bucket, key);
    return hr;
}

/* ---- a small file: its whole body in memory ---- */

typedef struct mem_src {
    const uint8_t *data;
    size_t n;
} mem_src;

static HRESULT mem_read(void *ctx, void *buf, size_t n, uint64_t off, size_t *got)
{
    const mem_src *m = ctx;
    size_t k = off >= m->n ? 0 : (m->n - off < n ? m->n - (size_t)off : n);
    if (k) memcpy(buf, m->data + off, k);
    *got = k;
    return S_OK;
}

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

typedef struct xjob {
    char *key;
    ddp_s3_req *req; /* a small file's GET, once started */
} xjob;

void ddp_extract_s3_fetch(ddp_extract_s3 *s, size_t n, const ddp_mf_entry *const *entries, ddp_extract_put_fn put,
                          void *ctx)
{
    const ddp_s3_chain *c = &s->c;
    xjob *jobs = ddp_xcalloc(n ? n : 1, sizeof *jobs);
    for (size_t k = 0; k < n; k++) jobs[k].key = ddp_s3_key_of_path(c->prefix[entries[k]->level], entries[k]->path);
    size_t next = 0;
    for (size_t k = 0; k < n; k++) {
        while (next < n && next < k + SMALL_INFLIGHT) {
            const ddp_mf_entry *e = entries[next];
            if (e->size <= SMALL_FILE) {
                jobs[next].req = ddp_s3_req_new("GET", c->bucket[e->level], jobs[next].key, NULL);
                ddp_s3_req_max(jobs[next].req, (size_t)SMALL_FILE);
                ddp_s3_start(s->s3, jobs[next].req);
            }
            next++;
        }
        const ddp_mf_entry *e = entries[k];
        xjob *j = &jobs[k];
        const char *rel = e->path + 1;
        const char *bucket = c->bucket[e->level];
        if (j->req) {
            HRESULT hr = ddp_s3_wait(s->s3, j->req);
            if (SUCCEEDED(hr) && ddp_s3_req_got(j->req) != e->size)
                hr = ddp_fail(DDP_E_FILE_CORRUPT, "%s: s3://%s/%s has %zu bytes, its manifest says %" PRIu64, rel, bucket,
                              j->key, ddp_s3_req_got(j->req), e->size);
            if (SUCCEEDED(hr)) {
                mem_src m = { ddp_s3_req_data(j->req), ddp_s3_req_got(j->req) };
                put(ctx, k, S_OK, mem_read, &m);
            } else {
                put(ctx, k, missing_or(hr, rel, bucket, j->key), NULL, NULL);
            }
            ddp_s3_req_free(j->req);
            j->req = NULL;
        } else {
            stream_src st = { s->s3, bucket, j->key, rel, e->size, NULL, 0, 0 };
            put(ctx, k, S_OK, stream_read, &st);
            free(st.win);
        }
    }
    for (size_t k = 0; k < n; k++) {
        ddp_s3_req_free(jobs[k].req);
        free(jobs[k].key);
    }
    free(jobs);
}
