/* SPDX-License-Identifier: MIT */
/*
 * s3upload.c: the upload pipeline (s3upload.h).
 *
 * A fixed set of slots, each with one request and its buffer. An object of
 * at most one part size is read into a slot and sent with one PUT; a larger
 * one starts a multipart upload (POST ?uploads), then each part is read into
 * a free slot and sent (PUT ?partNumber=N&uploadId=ID) while the next ones
 * are read; when all its parts are up, the upload is completed (POST
 * ?uploadId=ID with the parts' ETags), or aborted if a part failed. Waiting
 * for a free slot drives every transfer, so small objects and parts of
 * large ones share the connections.
 *
 * An object that exists with the same size is compared by ETag before
 * anything is sent: S3 (and Ceph RGW) give a single PUT the MD5 of the
 * bytes, and a multipart upload the MD5 of the parts' MD5s followed by
 * "-<parts>"; the part size here depends only on the object's size, so the
 * same bytes give the same ETag again. A mismatch just sends it again.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "backup/s3sign.h"
#include "backup/s3upload.h"
#include "backup/s3xml.h"
#include "base/util.h"

#define PART_MIN ((uint64_t)8 << 20)
#define MAX_PARTS 10000u
#define MAX_SLOTS 64
#define BIG_BUFFER ((size_t)1 << 20)   /* a slot's buffer over this is freed when its request ends */
#define MAX_BIG 8                      /* slots holding big buffers at once (memory: 8 x part size) */

typedef struct mp_obj {
    char *key, *upload_id;
    uint32_t nparts;
    char (*etags)[80];
    int pending;
    HRESULT hr;
    char detail[512];
} mp_obj;

typedef struct slot {
    ddp_s3_req *req;
    uint8_t *buf;
    size_t cap;
    mp_obj *obj;      /* a part of this multipart upload, or NULL */
    uint32_t partno;
    int busy;
} slot;

struct ddp_s3_uploader {
    ddp_s3 *s3;
    char *bucket;
    int nslots;
    slot slots[MAX_SLOTS];
    HRESULT hr;       /* first failure */
    char detail[1024];
    ddp_s3_upload_stats st;
};

uint64_t ddp_s3_part_size(uint64_t size)
{
    uint64_t p = PART_MIN;
    uint64_t need = (size + MAX_PARTS - 1) / MAX_PARTS;
    if (need > p) p = (need + ((uint64_t)1 << 20) - 1) & ~(((uint64_t)1 << 20) - 1);
    return p;
}

ddp_s3_uploader *ddp_s3_uploader_new(ddp_s3 *s3, const char *bucket, int slots)
{
    ddp_s3_uploader *u = ddp_xcalloc(1, sizeof *u);
    u->s3 = s3;
    u->bucket = ddp_strdup(bucket);
    u->nslots = slots < 1 ? 1 : slots > MAX_SLOTS ? MAX_SLOTS : slots;
    return u;
}

static void note_failure(ddp_s3_uploader *u, HRESULT hr)
{
    if (SUCCEEDED(u->hr)) {
        u->hr = hr;
        snprintf(u->detail, sizeof u->detail, "%s", ddp_error_detail());
    }
}

/* A slot's request ended: take its result. */
static void reap(ddp_s3_uploader *u, slot *sl)
{
    HRESULT hr = ddp_s3_wait(u->s3, sl->req); /* done already: sets the detail */
    if (sl->obj) {
        mp_obj *o = sl->obj;
        if (SUCCEEDED(hr)) snprintf(o->etags[sl->partno - 1], 80, "%s", ddp_s3_req_etag(sl->req));
        else if (SUCCEEDED(o->hr)) {
            o->hr = hr;
            snprintf(o->detail, sizeof o->detail, "%s", ddp_error_detail());
        }
        o->pending--;
    } else if (FAILED(hr)) {
        note_failure(u, hr);
    }
    ddp_s3_req_free(sl->req);
    sl->req = NULL;
    sl->obj = NULL;
    sl->busy = 0;
    if (sl->cap > BIG_BUFFER) { /* idle slots keep no big buffer: memory stays MAX_BIG x part size */
        free(sl->buf);
        sl->buf = NULL;
        sl->cap = 0;
    }
}

static void reap_done(ddp_s3_uploader *u)
{
    for (int i = 0; i < u->nslots; i++)
        if (u->slots[i].busy && ddp_s3_req_is_done(u->slots[i].req)) reap(u, &u->slots[i]);
}

/* A free slot for a request whose buffer will hold n bytes. */
static slot *free_slot(ddp_s3_uploader *u, size_t n)
{
    for (;;) {
        reap_done(u);
        int big = 0;
        slot *f = NULL;
        for (int i = 0; i < u->nslots; i++) {
            if (u->slots[i].busy && u->slots[i].cap > BIG_BUFFER) big++;
            if (!u->slots[i].busy && !f) f = &u->slots[i];
        }
        if (f && (n <= BIG_BUFFER || big < MAX_BIG)) return f;
        ddp_s3_run(u->s3, 1000);
    }
}

static void slot_reserve(slot *sl, size_t n)
{
    if (sl->cap < n) {
        free(sl->buf);
        sl->buf = ddp_xmalloc(n ? n : 1);
        sl->cap = n;
    }
}

/* Read exactly up to n bytes (fewer only at the source's end). */
static HRESULT read_full(ddp_s3_source_fn fn, void *ctx, uint8_t *buf, size_t n, uint64_t off, size_t *got)
{
    *got = 0;
    while (*got < n) {
        size_t k = 0;
        HRESULT hr = fn(ctx, buf + *got, n - *got, off + *got, &k);
        if (FAILED(hr)) return hr;
        if (k == 0) break;
        *got += k;
    }
    return S_OK;
}

static void md5_of(const void *d, size_t n, unsigned char out[16])
{
    unsigned int len = 16;
    EVP_Digest(d, n, out, &len, EVP_md5(), NULL);
}

static void hex16(const unsigned char *d, char *out)
{
    for (int i = 0; i < 16; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* The ETag S3 would give these bytes sent as one object of `size` bytes. */
static HRESULT local_etag(ddp_s3_uploader *u, uint64_t size, ddp_s3_source_fn fn, void *ctx, char *out)
{
    uint64_t ps = ddp_s3_part_size(size);
    slot *sl = free_slot(u, (size_t)(size <= ps ? size : ps));
    slot_reserve(sl, (size_t)(size <= ps ? size : ps));
    unsigned char md[16];
    size_t got;
    if (size <= ps) {
        HRESULT hr = read_full(fn, ctx, sl->buf, (size_t)size, 0, &got);
        if (FAILED(hr)) return hr;
        if (got != size) { out[0] = '\0'; return S_OK; }
        md5_of(sl->buf, got, md);
        hex16(md, out);
        return S_OK;
    }
    uint32_t nparts = (uint32_t)((size + ps - 1) / ps);
    unsigned char *all = ddp_xmalloc((size_t)nparts * 16);
    for (uint32_t i = 0; i < nparts; i++) {
        uint64_t off = (uint64_t)i * ps;
        size_t want = (size_t)(size - off < ps ? size - off : ps);
        HRESULT hr = read_full(fn, ctx, sl->buf, want, off, &got);
        if (FAILED(hr) || got != want) {
            free(all);
            out[0] = '\0';
            return hr;
        }
        md5_of(sl->buf, got, all + 16 * i);
    }
    md5_of(all, (size_t)nparts * 16, md);
    free(all);
    hex16(md, out);
    snprintf(out + 32, 16, "-%u", nparts);
    return S_OK;
}

static HRESULT multipart(ddp_s3_uploader *u, const char *key, uint64_t size, ddp_s3_source_fn fn, void *ctx,
                         uint64_t *taken)
{
    uint64_t ps = ddp_s3_part_size(size);
    const char *qn[1] = { "uploads" };
    char *q = ddp_s3_canonical_query(1, qn, NULL);
    ddp_s3_req *r = ddp_s3_req_new("POST", u->bucket, key, q);
    free(q);
    HRESULT hr = ddp_s3_do(u->s3, r);
    mp_obj o;
    memset(&o, 0, sizeof o);
    o.key = (char *)key;
    if (SUCCEEDED(hr)) {
        o.upload_id = ddp_s3_xml_text((const char *)ddp_s3_req_data(r), ddp_s3_req_got(r), "UploadId");
        if (!o.upload_id || !*o.upload_id)
            hr = ddp_fail(DDP_E_INVALID_DATA, "S3 POST s3://%s/%s?uploads: no UploadId in the answer", u->bucket, key);
    }
    ddp_s3_req_free(r);
    if (FAILED(hr)) {
        free(o.upload_id);
        return hr;
    }
    uint32_t maxparts = (uint32_t)((size + ps - 1) / ps);
    o.etags = ddp_xcalloc(maxparts, sizeof *o.etags);
    uint64_t off = 0;
    for (uint32_t k = 1; k <= maxparts && SUCCEEDED(hr) && SUCCEEDED(o.hr); k++) {
        size_t want = (size_t)(size - off < ps ? size - off : ps);
        slot *sl = free_slot(u, want);
        slot_reserve(sl, want);
        size_t got;
        hr = read_full(fn, ctx, sl->buf, want, off, &got);
        if (FAILED(hr) || got == 0) break;
        char pn[16];
        snprintf(pn, sizeof pn, "%u", k);
        const char *names[2] = { "partNumber", "uploadId" }, *values[2] = { pn, o.upload_id };
        char *pq = ddp_s3_canonical_query(2, names, values);
        sl->req = ddp_s3_req_new("PUT", u->bucket, key, pq);
        free(pq);
        ddp_s3_req_body(sl->req, sl->buf, got);
        sl->obj = &o;
        sl->partno = k;
        sl->busy = 1;
        o.pending++;
        o.nparts = k;
        ddp_s3_start(u->s3, sl->req);
        u->st.parts++;
        u->st.bytes += got;
        off += got;
        if (got < want) break; /* the source ended early: this was the last part */
    }
    while (o.pending > 0) { /* wait for this object's parts */
        reap_done(u);
        if (o.pending > 0) ddp_s3_run(u->s3, 1000);
    }
    if (SUCCEEDED(hr) && FAILED(o.hr)) hr = ddp_fail(o.hr, "%s", o.detail);
    const char *an[1] = { "uploadId" }, *av[1] = { o.upload_id };
    char *cq = ddp_s3_canonical_query(1, an, av);
    if (SUCCEEDED(hr) && o.nparts > 0) {
        const char *head = "<CompleteMultipartUpload>";
        size_t cap = strlen(head) + (size_t)o.nparts * 160 + 64;
        char *x = ddp_xmalloc(cap);
        size_t len = (size_t)snprintf(x, cap, "%s", head);
        for (uint32_t k = 0; k < o.nparts; k++)
            len += (size_t)snprintf(x + len, cap - len, "<Part><PartNumber>%u</PartNumber><ETag>\"%s\"</ETag></Part>", k + 1,
                                    o.etags[k]);
        len += (size_t)snprintf(x + len, cap - len, "</CompleteMultipartUpload>");
        ddp_s3_req *c = ddp_s3_req_new("POST", u->bucket, key, cq);
        ddp_s3_req_body(c, x, len);
        hr = ddp_s3_do(u->s3, c);
        /* a 200 answer may still carry an <Error> */
        if (SUCCEEDED(hr) && ddp_s3_req_got(c) > 0) {
            const char *body = (const char *)ddp_s3_req_data(c);
            char *code = ddp_s3_xml_text(body, ddp_s3_req_got(c), "Code");
            if (code && strstr(body, "<Error>"))
                hr = ddp_fail(HRESULT_FROM_WIN32(ERROR_UNEXP_NET_ERR), "S3 POST s3://%s/%s?%s: completing the upload: %s",
                              u->bucket, key, cq, code);
            free(code);
        }
        ddp_s3_req_free(c);
        free(x);
    }
    if (FAILED(hr)) { /* let the service drop the parts; the rerun starts over */
        ddp_saved_error se;
        ddp_error_save(&se);
        ddp_s3_req *a = ddp_s3_req_new("DELETE", u->bucket, key, cq);
        (void)ddp_s3_do(u->s3, a);
        ddp_s3_req_free(a);
        hr = ddp_first_error(hr, &se, S_OK);
    } else {
        *taken = off;
    }
    free(cq);
    free(o.upload_id);
    free(o.etags);
    return hr;
}

HRESULT ddp_s3_upload(ddp_s3_uploader *u, const char *key, uint64_t size, ddp_s3_source_fn fn, void *ctx,
                      const char *existing_etag, uint64_t existing_size, uint64_t *taken, int *skipped)
{
    *taken = 0;
    *skipped = 0;
    reap_done(u);
    if (FAILED(u->hr)) return ddp_fail(u->hr, "%s", u->detail);
    if (existing_etag && existing_size == size) {
        char etag[64];
        HRESULT hr = local_etag(u, size, fn, ctx, etag);
        if (FAILED(hr)) return hr;
        if (etag[0] && strcmp(etag, existing_etag) == 0) {
            *skipped = 1;
            *taken = size;
            u->st.skipped++;
            return S_OK;
        }
    }
    u->st.objects++;
    if (size > ddp_s3_part_size(size)) return multipart(u, key, size, fn, ctx, taken);
    slot *sl = free_slot(u, (size_t)size);
    slot_reserve(sl, (size_t)size);
    size_t got;
    HRESULT hr = read_full(fn, ctx, sl->buf, (size_t)size, 0, &got);
    if (FAILED(hr)) return hr;
    sl->req = ddp_s3_req_new("PUT", u->bucket, key, NULL);
    ddp_s3_req_body(sl->req, sl->buf, got);
    sl->busy = 1;
    ddp_s3_start(u->s3, sl->req);
    u->st.bytes += got;
    *taken = got;
    return S_OK;
}

HRESULT ddp_s3_uploader_finish(ddp_s3_uploader *u)
{
    for (;;) {
        reap_done(u);
        int busy = 0;
        for (int i = 0; i < u->nslots; i++) busy += u->slots[i].busy;
        if (!busy) break;
        ddp_s3_run(u->s3, 1000);
    }
    if (FAILED(u->hr)) return ddp_fail(u->hr, "%s", u->detail);
    return S_OK;
}

void ddp_s3_uploader_stats(const ddp_s3_uploader *u, ddp_s3_upload_stats *st) { *st = u->st; }

void ddp_s3_uploader_free(ddp_s3_uploader *u)
{
    if (!u) return;
    for (int i = 0; i < u->nslots; i++) {
        ddp_s3_req_free(u->slots[i].req);
        free(u->slots[i].buf);
    }
    free(u->bucket);
    free(u);
}
