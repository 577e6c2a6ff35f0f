/*
 * extract_s3.c: the first step of a restore from a backup in S3
 * (ddp_backup_extract on s3://BUCKET/PREFIX): each path's stub, plain
 * file, directory or symlink, as the manifest lists it, written locally with
 * its metadata. Small files (stubs are 232 bytes) are fetched many at a time,
 * each with one GET; larger ones are streamed in 8 MiB ranged GETs, so
 * memory stays bounded. An object shorter than its manifest entry is
 * DDP_E_FILE_CORRUPT; a missing one DDP_E_NOT_FOUND, as for a directory
 * backup; a network failure is that path's error, the rest go on.
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
#define COPY_BUF ((size_t)1 << 20)

typedef struct mem_src {
    const uint8_t *data;
    size_t n;
} mem_src;

static HRESULT mem_read(void *ctx, void *buf, size_t n, uint64_t off, size_t *got, const char *what)
{
    (void)what;
    mem_src *m = ctx;
    size_t k = off >= m->n ? 0 : (m->n - off < n ? m->n - (size_t)off : n);
    if (k) memcpy(buf, m->data + off, k);
    *got = k;
    return S_OK;
}

typedef struct stream_src {
    ddp_s3 *s3;
    const char *bucket, *key;
    uint64_t size;
} stream_src;

static HRESULT stream_read(void *ctx, void *buf, size_t n, uint64_t off, size_t *got, const char *what)
{
    stream_src *s = ctx;
    *got = 0;
    if (off >= s->size) return S_OK;
    size_t want = s->size - off < n ? (size_t)(s->size - off) : n;
    if (want > STREAM_GET) want = STREAM_GET;
    ddp_s3_req *r = ddp_s3_req_new("GET", s->bucket, s->key, NULL);
    ddp_s3_req_range(r, off, want);
    ddp_s3_req_into(r, buf, want);
    HRESULT hr = ddp_s3_do(s->s3, r);
    if (SUCCEEDED(hr) && ddp_s3_req_got(r) != want)
        hr = ddp_fail(DDP_E_FILE_CORRUPT, "backup: s3://%s/%s (%s) is shorter than its manifest says (%" PRIu64 " bytes)",
                      s->bucket, s->key, what, s->size);
    if (SUCCEEDED(hr)) *got = want;
    ddp_s3_req_free(r);
    return hr;
}

typedef struct xjob {
    size_t item;
    const ddp_mf_entry *e;
    char *key;
    ddp_s3_req *req; /* small files: the GET */
} xjob;

static HRESULT missing_or(HRESULT hr, const char *rel, const char *bucket, const char *key)
{
    if (hr == HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND))
        return ddp_fail(DDP_E_NOT_FOUND, "%s: listed in the manifest but missing from the backup (no object s3://%s/%s)",
                        rel, bucket, key);
    return hr;
}

static void start_small(ddp_s3 *s3, const ddp_s3_chain *c, xjob *j)
{
    j->req = ddp_s3_req_new("GET", c->bucket[j->e->level], j->key, NULL);
    ddp_s3_req_max(j->req, (size_t)SMALL_FILE);
    ddp_s3_start(s3, j->req);
}

HRESULT ddp_extract_s3(const char *url, size_t n, char *const *relpaths, const char *dest_dir, ddp_backup_item *items)
{
    ddp_s3 *s3;
    HRESULT hr = ddp_s3_open(&s3);
    if (FAILED(hr)) return hr;
    ddp_s3_chain c;
    hr = ddp_s3_chain_open(s3, url, &c);
    if (FAILED(hr)) {
        ddp_s3_close(s3);
        return hr;
    }
    xjob *jobs = ddp_xcalloc(n ? n : 1, sizeof *jobs);
    size_t nj = 0;
    for (size_t i = 0; i < n; i++) {
        char *sp = ddp_xasprintf("/%s", relpaths[i]);
        char *full = ddp_path_join(dest_dir, relpaths[i]);
        const ddp_mf_entry *e = ddp_manifest_find(&c.newest, sp);
        if (!e || e->type == 'C') {
            items[i].hr = ddp_fail(DDP_E_NOT_FOUND, "%s: not in the backup", relpaths[i]);
        } else {
            items[i].kind = ddp_extract_item_kind(e);
            items[i].size = e->size;
            if (e->type == 'D') items[i].hr = ddp_extract_dir(full, e);
            else if (e->type == 'L') items[i].hr = ddp_extract_link(full, e);
            else jobs[nj++] = (xjob){ i, e, ddp_s3_key_of_path(c.prefix[e->level], e->path), NULL };
        }
        free(full);
        free(sp);
    }
    /* small files: SMALL_INFLIGHT GETs ahead of the one being written */
    size_t next = 0;
    uint8_t *buf = ddp_xmalloc(COPY_BUF);
    for (size_t k = 0; k < nj; k++) {
        while (next < nj && next < k + SMALL_INFLIGHT) {
            if (jobs[next].e->size <= SMALL_FILE) start_small(s3, &c, &jobs[next]);
            next++;
        }
        xjob *j = &jobs[k];
        const char *rel = relpaths[j->item];
        const char *bucket = c.bucket[j->e->level];
        char *full = ddp_path_join(dest_dir, rel);
        HRESULT r;
        if (j->req) {
            r = ddp_s3_wait(s3, j->req);
            if (SUCCEEDED(r) && ddp_s3_req_got(j->req) != j->e->size)
                r = ddp_fail(DDP_E_FILE_CORRUPT, "%s: s3://%s/%s has %zu bytes, its manifest says %" PRIu64, rel, bucket,
                             j->key, ddp_s3_req_got(j->req), j->e->size);
            if (SUCCEEDED(r)) {
                mem_src m = { ddp_s3_req_data(j->req), ddp_s3_req_got(j->req) };
                r = ddp_extract_file_from(full, j->e, mem_read, &m, buf);
            }
            ddp_s3_req_free(j->req);
            j->req = NULL;
        } else {
            stream_src st = { s3, bucket, j->key, j->e->size };
            r = ddp_extract_file_from(full, j->e, stream_read, &st, buf);
        }
        items[j->item].hr = missing_or(r, rel, bucket, j->key);
        free(full);
    }
    for (size_t k = 0; k < nj; k++) {
        ddp_s3_req_free(jobs[k].req);
        free(jobs[k].key);
    }
    free(jobs);
    free(buf);
    ddp_s3_chain_close(&c);
    ddp_s3_close(s3);
    return S_OK;
}
