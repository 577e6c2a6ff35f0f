/* SPDX-License-Identifier: MIT */
/*
 * backupstore_s3.c: the backup store over S3: an IDedupReadFileCallback on a
 * backup that `ddp backup VOLUME s3://BUCKET/PREFIX` wrote (full or
 * incremental; the chain behind it comes from s3chain.c).
 *
 * A small file of the backed-up volume lies in a pack object
 * (PREFIX/.ddp-backup/pack/NNNNNNNN, manifest version 2, at the offset its
 * entry gives), a larger one (or any, in a version 1 backup) is one object,
 * PREFIX/<escaped path>, and every piece of a container one object,
 * PREFIX/<escaped piece file>, in the backup of the chain that holds it
 * (docs/BACKUP.md). ReadBackupFile is a ranged GET of the bytes asked for,
 * clipped to the length the manifest gives (inside the pack: to the file's
 * range); an object shorter than its manifest says is a truncated object,
 * DDP_E_FILE_CORRUPT, never a short success.
 *
 * Read-ahead: PreviewContainerRead lists the reads that follow, in order
 * (SPEC rule R7). They are merged into GETs (neighbours less than 256 KiB
 * apart while the gaps fetched along stay under 1/5 of the bytes announced,
 * at most 8 MiB a GET, never across pieces) and sent ahead, in plan
 * order, at most 8 at once and at most 64 MiB fetched and not yet read, so
 * memory stays bounded whatever the backup's size; each read then takes its
 * bytes from its GET, waiting for it if needed, and a GET's buffer is freed
 * as soon as every byte of it was read. A read outside the announced ones is
 * a GET of its own. Small metadata files (under /.ddp/, up to 16 MiB) are
 * fetched whole once and kept (at most 64 MiB); the first one asked for
 * brings the other small ones (up to 64 KiB each) in the same round trip:
 * in a backup with packs, one ranged GET of the metadata region at the start
 * of the first pack (at most META_REGION bytes).
 *
 * OrderContainersRestore answers with one extent per piece, by container
 * and offset: an object store has no seek cost, so the plan only keeps each
 * extent inside one object.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "backup/backupstore_common.h"
#include "backup/s3chain.h"
#include "backup/s3client.h"
#include "base/safepath.h"
#include "base/util.h"

#define PF_MAX_INFLIGHT 8
#define PF_MAX_BYTES ((uint64_t)64 << 20)
#define PF_MERGE_GAP ((uint64_t)256 << 10)
#define PF_MAX_GET ((uint64_t)8 << 20)
#define PF_MAX_GROUPS 65536u
#define META_MAX_FILE ((uint64_t)16 << 20)
#define META_MAX_TOTAL ((uint64_t)64 << 20)
#define META_SLOTS 8
#define META_PREFETCH_MAX ((uint64_t)64 << 10)
#define META_REGION ((uint64_t)16 << 20)

typedef struct pf_group {
    const ddp_mf_piece *piece;   /* the piece (object) it reads */
    uint64_t off, len;           /* container bytes [off, off + len) */
    uint8_t *data;
    ddp_s3_req *req;             /* NULL: not started (or freed) */
    int state;                   /* 0 waiting, 1 fetching, 2 fetched, 3 failed, 4 freed */
    uint64_t consumed;
    uint64_t useful;             /* bytes of it announced (the rest: gaps fetched with them) */
} pf_group;

typedef struct s3_store {
    ddp_bs_base base;
    ddp_s3 *s3;
    ddp_s3_chain chain;
    /* read-ahead for one container */
    const ddp_mf_entry *pf_entry;
    pf_group *g;
    size_t ng, next_start, cursor;
    int inflight;
    uint64_t held;   /* bytes fetching or fetched, not yet freed */
    /* whole metadata files */
    struct { const ddp_mf_entry *e; uint8_t *data; uint64_t used; } meta[META_SLOTS];
    uint64_t meta_bytes, tick;
    int meta_prefetched;
} s3_store;

/* The object key of piece or file path at a level of the chain. */
static char *key_of(s3_store *s, uint32_t level, const char *path)
{
    return ddp_s3_key_of_path(s->chain.prefix[level], path);
}

/* GET [at, at + want) of an object whose manifest length is objlen (the
 * range lies inside it): anything shorter is a truncated object. */
static HRESULT get_exact(s3_store *s, uint32_t level, const char *file, uint64_t at, size_t want, uint64_t objlen,
                         uint8_t *buf)
{
    char *key = key_of(s, level, file);
    ddp_s3_req *r = ddp_s3_req_new("GET", s->chain.bucket[level], key, NULL);
    ddp_s3_req_range(r, at, want);
    ddp_s3_req_into(r, buf, want);
    HRESULT hr = ddp_s3_do(s->s3, r);
    if (SUCCEEDED(hr) && ddp_s3_req_got(r) != want)
        hr = ddp_fail(DDP_E_FILE_CORRUPT,
                      "backup store: s3://%s/%s is truncated: %zu of the %zu bytes at %" PRIu64
                      " came back, the manifest says it has %" PRIu64 " bytes",
                      s->chain.bucket[level], key, ddp_s3_req_got(r), want, at, objlen);
    ddp_s3_req_free(r);
    free(key);
    return hr;
}

/* ---- read-ahead ---- */

static void pf_free_group(s3_store *s, pf_group *g)
{
    if (g->req) {
        if (!ddp_s3_req_is_done(g->req)) s->inflight--;
        ddp_s3_req_free(g->req);
        g->req = NULL;
    }
    if (g->state == 1 || g->state == 2 || g->state == 3) s->held -= g->len;
    free(g->data);
    g->data = NULL;
    g->state = 4;
}

static void pf_drop(s3_store *s)
{
    for (size_t i = 0; i < s->ng; i++) pf_free_group(s, &s->g[i]);
    free(s->g);
    s->g = NULL;
    s->ng = s->next_start = s->cursor = 0;
    s->pf_entry = NULL;
    s->inflight = 0;
    s->held = 0;
}

static void pf_done(ddp_s3_req *r, void *ctx)
{
    (void)r;
    s3_store *s = ctx;
    s->inflight--;
}

static void pf_start(s3_store *s, pf_group *g)
{
    char *key = key_of(s, g->piece->level, g->piece->file);
    g->data = ddp_xmalloc((size_t)g->len);
    g->req = ddp_s3_req_new("GET", s->chain.bucket[g->piece->level], key, NULL);
    free(key);
    ddp_s3_req_range(g->req, g->off - g->piece->offset, g->len);
    ddp_s3_req_into(g->req, g->data, (size_t)g->len);
    ddp_s3_req_on_done(g->req, pf_done, s);
    g->state = 1;
    s->held += g->len;
    s->inflight++;
    ddp_s3_start(s->s3, g->req);
}

/* Start the next GETs of the plan while there is room. */
static void pf_pump(s3_store *s)
{
    while (s->next_start < s->ng && s->inflight < PF_MAX_INFLIGHT) {
        pf_group *g = &s->g[s->next_start];
        if (g->state != 0) { s->next_start++; continue; }
        if (s->held > 0 && s->held + g->len > PF_MAX_BYTES) break;
        pf_start(s, g);
        s->next_start++;
    }
}

/* Serve [off, off + n) from the read-ahead: 1 served, 0 not there. */
static int pf_serve(s3_store *s, const ddp_mf_entry *e, uint64_t off, ULONG n, BYTE *buf, HRESULT *hr)
{
    if (s->pf_entry != e) return 0;
    size_t i = s->cursor;
    while (i < s->ng && s->g[i].off + s->g[i].len <= off) i++;
    if (i >= s->ng || s->g[i].off > off || off + n > s->g[i].off + s->g[i].len) return 0;
    pf_group *g = &s->g[i];
    if (g->state == 4) return 0; /* already handed out and freed: read it again */
    if (g->state == 0) pf_start(s, g);
    *hr = ddp_s3_wait(s->s3, g->req);
    if (SUCCEEDED(*hr) && ddp_s3_req_got(g->req) != g->len) {
        char *key = key_of(s, g->piece->level, g->piece->file);
        *hr = ddp_fail(DDP_E_FILE_CORRUPT,
                       "backup store: s3://%s/%s is truncated: %zu of the %" PRIu64 " bytes at %" PRIu64
                       " came back, the manifest says it has %" PRIu64 " bytes",
                       s->chain.bucket[g->piece->level], key, ddp_s3_req_got(g->req), g->len,
                       g->off - g->piece->offset, g->piece->length);
        free(key);
    }
    if (FAILED(*hr)) {
        g->state = 3;
        pf_free_group(s, g);
        pf_pump(s);
        return 1;
    }
    g->state = 2;
    memcpy(buf, g->data + (off - g->off), n);
    g->consumed += n;
    if (g->consumed >= g->len) pf_free_group(s, g);
    /* groups wholly behind this read will not be asked for again (R7) */
    for (size_t j = s->cursor; j < i; j++)
        if (s->g[j].state != 4) pf_free_group(s, &s->g[j]);
    s->cursor = i;
    pf_pump(s);
    return 1;
}

static void pf_add(s3_store *s, const ddp_mf_piece *p, uint64_t off, uint64_t len)
{
    if (s->ng > 0) {
        pf_group *last = &s->g[s->ng - 1];
        uint64_t end = last->off + last->len;
        /* a gap is fetched along only while the gaps stay under 1/5 of what is read (at most 1.2x) */
        uint64_t waste = last->len - last->useful + (off >= end ? off - end : 0);
        if (last->piece == p && off >= end && off - end <= PF_MERGE_GAP && off + len - last->off <= PF_MAX_GET &&
            waste <= (last->useful + len) / 5) {
            last->len = off + len - last->off;
            last->useful += len;
            return;
        }
    }
    if (s->ng >= PF_MAX_GROUPS) return; /* advisory: later reads go on their own */
    if (s->ng % 256 == 0) s->g = ddp_xrealloc(s->g, (s->ng + 256) * sizeof *s->g);
    s->g[s->ng++] = (pf_group){ p, off, len, NULL, NULL, 0, 0, len };
}

static HRESULT s3_preview(IDedupReadFileCallback *This, BSTR path, ULONG n, DDP_FILE_EXTENT *ext)
{
    s3_store *s = (s3_store *)This;
    HRESULT hr = ddp_bs_check_preview(&s->base, path, n, ext);
    if (FAILED(hr)) return hr;
    pf_drop(s);
    const ddp_mf_entry *e = ddp_manifest_find(&s->chain.newest, path);
    if (!e || e->type != 'C') return S_OK; /* advisory: the reads will say what is wrong */
    s->pf_entry = e;
    for (ULONG i = 0; i < n; i++) {
        uint64_t at = (uint64_t)ext[i].Offset, left = (uint64_t)ext[i].Length;
        if (at >= e->size) continue;
        if (left > e->size - at) left = e->size - at;
        while (left > 0) {
            const ddp_mf_piece *p = ddp_manifest_piece_at(e, at);
            if (!p) break;
            uint64_t in_piece = p->length - (at - p->offset);
            uint64_t len = left < in_piece ? left : in_piece;
            if (len > PF_MAX_GET) len = PF_MAX_GET;
            pf_add(s, p, at, len);
            at += len;
            left -= len;
        }
    }
    pf_pump(s);
    return S_OK;
}

/* ---- metadata files kept whole ---- */

/* Keep buf (e's whole bytes) in the cache, evicting the least recently used. */
static void meta_put(s3_store *s, const ddp_mf_entry *e, uint8_t *buf)
{
    int victim = 0;
    for (int i = 1; i < META_SLOTS; i++)
        if (s->meta[i].used < s->meta[victim].used) victim = i;
    while (s->meta_bytes + e->size > META_MAX_TOTAL) { /* evict the least recently used */
        int v = -1;
        for (int i = 0; i < META_SLOTS; i++)
            if (s->meta[i].e && (v < 0 || s->meta[i].used < s->meta[v].used)) v = i;
        if (v < 0) break;
        s->meta_bytes -= s->meta[v].e->size;
        free(s->meta[v].data);
        s->meta[v].e = NULL;
        s->meta[v].data = NULL;
        s->meta[v].used = 0;
        victim = v;
    }
    if (s->meta[victim].e) {
        s->meta_bytes -= s->meta[victim].e->size;
        free(s->meta[victim].data);
    }
    s->meta[victim].e = e;
    s->meta[victim].data = buf;
    s->meta[victim].used = ++s->tick;
    s->meta_bytes += e->size;
}

/* The first metadata file asked for brings the other small ones (under
 * /.ddp/, at most META_PREFETCH_MAX bytes each, META_SLOTS - 1 of them) in
 * the same round trip: a restore reads the settings and the catalog one
 * after the other, and each GET is a round trip. Best effort: a prefetch that
 * fails or comes back with another length is dropped, and the file is
 * fetched again (and its error reported) when it is read. */
static void meta_prefetch(s3_store *s, const ddp_mf_entry *first)
{
    const ddp_manifest *m = &s->chain.newest;
    const ddp_mf_entry *want[META_SLOTS - 1];
    ddp_s3_req *req[META_SLOTS - 1];
    uint8_t *buf[META_SLOTS - 1];
    char *key[META_SLOTS - 1];
    int n = 0;
    for (size_t i = 0; i < m->count && n < META_SLOTS - 1; i++) {
        const ddp_mf_entry *e = &m->entries[i];
        if (e == first || e->type != 'F' || e->size == 0 || e->size > META_PREFETCH_MAX ||
            strncmp(e->path, "/.ddp/", 6) != 0)
            continue;
        want[n] = e;
        buf[n] = ddp_xmalloc((size_t)e->size);
        key[n] = key_of(s, e->level, e->path);
        req[n] = ddp_s3_req_new("GET", s->chain.bucket[e->level], key[n], NULL);
        ddp_s3_req_range(req[n], 0, e->size);
        ddp_s3_req_into(req[n], buf[n], (size_t)e->size);
        ddp_s3_start(s->s3, req[n]);
        n++;
    }
    for (int k = 0; k < n; k++) {
        HRESULT hr = ddp_s3_wait(s->s3, req[k]);
        if (SUCCEEDED(hr) && ddp_s3_req_got(req[k]) == want[k]->size) {
            meta_put(s, want[k], buf[k]);
            buf[k] = NULL;
        }
        ddp_s3_req_free(req[k]);
        free(buf[k]);
        free(key[k]);
    }
    ddp_clear_error();
}

static const uint8_t *meta_find(s3_store *s, const ddp_mf_entry *e)
{
    for (int i = 0; i < META_SLOTS; i++)
        if (s->meta[i].e == e) {
            s->meta[i].used = ++s->tick;
            return s->meta[i].data;
        }
    return NULL;
}

static int is_meta(const ddp_mf_entry *e)
{
    return e->type == 'F' && e->size <= META_MAX_FILE && strncmp(e->path, "/.ddp/", 6) == 0;
}

/* A packed metadata file asked for: one ranged GET of every metadata file of
 * its pack (the writer puts them first and together), kept in the cache. A
 * pack shorter than that is DDP_E_FILE_CORRUPT when it cuts `first`; the
 * others are simply not kept. */
static HRESULT meta_region(s3_store *s, const ddp_mf_entry *first)
{
    const ddp_manifest *m = &s->chain.newest;
    uint64_t lo = first->pack_off, hi = first->pack_off + first->size;
    for (size_t i = 0; i < m->count; i++) {
        const ddp_mf_entry *e = &m->entries[i];
        if (!is_meta(e) || e->level != first->level || e->pack != first->pack) continue;
        uint64_t nlo = e->pack_off < lo ? e->pack_off : lo, nhi = e->pack_off + e->size > hi ? e->pack_off + e->size : hi;
        if (nhi - nlo <= META_REGION) { lo = nlo; hi = nhi; }
    }
    if (hi == lo) return S_OK;
    const ddp_mf_pack *pk = ddp_manifest_pack(m, first->level, first->pack);
    char *path = ddp_manifest_pack_path(first->pack);
    char *key = key_of(s, first->level, path);
    free(path);
    uint8_t *buf = ddp_xmalloc((size_t)(hi - lo));
    ddp_s3_req *r = ddp_s3_req_new("GET", s->chain.bucket[first->level], key, NULL);
    ddp_s3_req_range(r, lo, hi - lo);
    ddp_s3_req_into(r, buf, (size_t)(hi - lo));
    HRESULT hr = ddp_s3_do(s->s3, r);
    size_t got = ddp_s3_req_got(r);
    ddp_s3_req_free(r);
    if (SUCCEEDED(hr) && first->pack_off + first->size - lo > got)
        hr = ddp_fail(DDP_E_FILE_CORRUPT,
                      "backup store: pack s3://%s/%s is truncated: %zu of the %" PRIu64 " bytes at %" PRIu64
                      " came back, the manifest says it has %" PRIu64 " bytes (it holds %s)",
                      s->chain.bucket[first->level], key, got, hi - lo, lo, pk ? pk->size : 0, first->path);
    else if (FAILED(hr))
        hr = ddp_fail(hr, "%s (the pack holding %s)", ddp_error_detail(), first->path);
    for (size_t i = 0; i < m->count && SUCCEEDED(hr); i++) {
        const ddp_mf_entry *e = &m->entries[i];
        if (!is_meta(e) || e->level != first->level || e->pack != first->pack || e == first) continue;
        if (e->pack_off < lo || e->pack_off + e->size > lo + got || meta_find(s, e)) continue;
        uint8_t *d = ddp_xmalloc(e->size ? (size_t)e->size : 1);
        memcpy(d, buf + (e->pack_off - lo), (size_t)e->size);
        meta_put(s, e, d);
    }
    if (SUCCEEDED(hr)) { /* the one asked for last: the most recently used */
        uint8_t *d = ddp_xmalloc(first->size ? (size_t)first->size : 1);
        memcpy(d, buf + (first->pack_off - lo), (size_t)first->size);
        meta_put(s, first, d);
    }
    free(buf);
    free(key);
    return hr;
}

static HRESULT meta_get(s3_store *s, const ddp_mf_entry *e, const uint8_t **data)
{
    if ((*data = meta_find(s, e)) != NULL) return S_OK;
    if (e->pack) {
        HRESULT hr = meta_region(s, e);
        if (FAILED(hr)) return hr;
        if ((*data = meta_find(s, e)) != NULL) return S_OK;
        hr = ddp_fail(DDP_E_FILE_CORRUPT, "backup store: %s: not found in its pack", e->path);
        return hr;
    }
    uint8_t *buf = ddp_xmalloc(e->size ? (size_t)e->size : 1);
    ddp_s3_req *r = NULL;
    char *key = NULL;
    if (e->size) { /* sent first, so it travels with the prefetch */
        key = key_of(s, e->level, e->path);
        r = ddp_s3_req_new("GET", s->chain.bucket[e->level], key, NULL);
        ddp_s3_req_range(r, 0, e->size);
        ddp_s3_req_into(r, buf, (size_t)e->size);
        ddp_s3_start(s->s3, r);
    }
    if (!s->meta_prefetched) {
        s->meta_prefetched = 1;
        meta_prefetch(s, e);
    }
    HRESULT hr = S_OK;
    if (r) {
        hr = ddp_s3_wait(s->s3, r);
        if (SUCCEEDED(hr) && ddp_s3_req_got(r) != e->size)
            hr = ddp_fail(DDP_E_FILE_CORRUPT,
                          "backup store: s3://%s/%s is truncated: %zu of the %" PRIu64
                          " bytes at 0 came back, the manifest says it has %" PRIu64 " bytes",
                          s->chain.bucket[e->level], key, ddp_s3_req_got(r), e->size, e->size);
        ddp_s3_req_free(r);
        free(key);
    }
    if (FAILED(hr)) {
        free(buf);
        return hr;
    }
    meta_put(s, e, buf);
    *data = buf;
    return S_OK;
}

/* ---- the callbacks ---- */

static HRESULT s3_read(IDedupReadFileCallback *This, BSTR path, LONGLONG off, ULONG n, BYTE *buf, ULONG *got,
                       DWORD flags)
{
    (void)flags;
    s3_store *s = (s3_store *)This;
    const ddp_mf_entry *e;
    HRESULT hr = ddp_bs_read_entry(&s->base, &s->chain.newest, path, off, n, buf, got, &e);
    if (FAILED(hr)) return hr;
    uint64_t at = (uint64_t)off;
    size_t want = at >= e->size ? 0 : (e->size - at < n ? (size_t)(e->size - at) : n);
    if (want == 0) return S_OK; /* at or past the end: no bytes */
    if (e->type == 'F') {
        if (is_meta(e)) {
            const uint8_t *data;
            hr = meta_get(s, e, &data);
            if (SUCCEEDED(hr)) memcpy(buf, data + at, want);
        } else if (e->pack) { /* a range of its pack, clipped to the file's bytes */
            const ddp_mf_pack *pk = ddp_manifest_pack(&s->chain.newest, e->level, e->pack);
            char *pp = ddp_manifest_pack_path(e->pack);
            hr = get_exact(s, e->level, pp, e->pack_off + at, want, pk ? pk->size : 0, buf);
            free(pp);
            if (FAILED(hr)) hr = ddp_fail(hr, "%s (the pack holding %s)", ddp_error_detail(), e->path);
        } else {
            hr = get_exact(s, e->level, e->path, at, want, e->size, buf);
        }
    } else if (!pf_serve(s, e, at, (ULONG)want, buf, &hr)) {
        hr = S_OK;
        size_t done = 0;
        while (done < want && SUCCEEDED(hr)) {
            const ddp_mf_piece *p = ddp_manifest_piece_at(e, at + done);
            if (!p) break;
            uint64_t in_piece = p->length - (at + done - p->offset);
            size_t k = want - done < in_piece ? want - done : (size_t)in_piece;
            hr = get_exact(s, p->level, p->file, at + done - p->offset, k, p->length, buf + done);
            done += k;
        }
    }
    if (FAILED(hr)) return hr;
    *got = (ULONG)want;
    s->base.stats.bytes_read += want;
    return S_OK;
}

static HRESULT s3_order(IDedupReadFileCallback *This, ULONG n, BSTR *paths, ULONG *entries,
                        DEDUP_CONTAINER_EXTENT **plan)
{
    s3_store *s = (s3_store *)This;
    return ddp_bs_order_from_manifest(&s->base, &s->chain.newest, DDP_BS_ORDER_BY_CONTAINER, n, paths, entries, plan);
}

/* IDdpListBackupFolder: what the manifest holds in the folder (no request). */
static HRESULT s3_list(ddp_bs_base *b, const char *folder, ULONG *n, BSTR **names)
{
    return ddp_bs_list_from_manifest(&((s3_store *)b)->chain.newest, folder, n, names);
}

static ULONG s3_release(IDedupReadFileCallback *This)
{
    ULONG left = ddp_bs_release_ref(This);
    if (left) return left;
    s3_store *s = (s3_store *)This;
    pf_drop(s);
    for (int i = 0; i < META_SLOTS; i++) free(s->meta[i].data);
    ddp_s3_chain_close(&s->chain);
    ddp_s3_close(s->s3);
    free(s);
    return 0;
}

const IDedupReadFileCallbackVtbl ddp_bs_s3_vtbl = {
    ddp_bs_query_interface, ddp_bs_addref, s3_release, s3_read, s3_order, s3_preview,
};

void ddp_bs_s3_add_stats(IDedupReadFileCallback *store, ddp_backupstore_stats *st)
{
    s3_store *s = (s3_store *)store;
    ddp_s3_stats ns;
    ddp_s3_get_stats(s->s3, &ns);
    st->fetched = ns.bytes_in;
    st->requests = ns.requests;
}

HRESULT ddp_backupstore_open_s3_opened(struct ddp_s3 *s3, struct ddp_s3_chain *chain, IDedupReadFileCallback **out)
{
    if (!out || !s3 || !chain) return E_POINTER;
    s3_store *s = ddp_xcalloc(1, sizeof *s);
    s->s3 = s3;
    s->chain = *chain;
    memset(chain, 0, sizeof *chain);
    s->base.lpVtbl = &ddp_bs_s3_vtbl;
    atomic_init(&s->base.refs, 1u);
    ddp_bs_init_lister(&s->base, s3_list);
    *out = (IDedupReadFileCallback *)s;
    return S_OK;
}

HRESULT ddp_backupstore_open_s3(const char *url, IDedupReadFileCallback **out)
{
    if (!out) return E_POINTER;
    *out = NULL;
    if (!url) return E_POINTER;
    s3_store *s = ddp_xcalloc(1, sizeof *s);
    HRESULT hr = ddp_s3_open(&s->s3);
    if (SUCCEEDED(hr)) hr = ddp_s3_chain_open(s->s3, url, &s->chain);
    if (FAILED(hr)) {
        ddp_s3_close(s->s3);
        free(s);
        return hr;
    }
    s->base.lpVtbl = &ddp_bs_s3_vtbl;
    atomic_init(&s->base.refs, 1u);
    ddp_bs_init_lister(&s->base, s3_list);
    *out = (IDedupReadFileCallback *)s;
    return S_OK;
}
