/* SPDX-License-Identifier: MIT */
/*
 * backup_s3.c: writing an optimized backup into S3 (backup_s3.h).
 *
 * Layout (docs/BACKUP.md): below PREFIX, every file of at most 1 MiB the
 * backup holds goes into a pack object, PREFIX/.ddp-backup/pack/NNNNNNNN
 * (up to 32 MiB each: the store's metadata first, then the rest in walk
 * order; the manifest, version 2, says each file's pack and offset); a larger
 * file is one object named by its store path (escaped: s3client.c
 * ddp_s3_key_of_path), every container piece written now one object named by its piece file
 * (the container's path, or "<path>.@<hex offset>" for a tail appended since
 * the previous backup), and the manifest is PREFIX/.ddp-backup/manifest.
 * Directories and symlinks live only in the manifest.
 *
 * Order: objects first (s3upload.c: 32 requests in flight, at most 8 of
 * them parts of 8 MiB; multipart for large ones), then stray objects of an earlier interrupted run that this
 * backup does not name are deleted, then a listing checks that every object
 * the manifest names, in this backup and in every backup of the chain,
 * exists with the size the manifest gives, and only then is the manifest
 * put. A prefix without a manifest is not a backup; running the same
 * command again reuses every object that already holds the same bytes (same
 * size and ETag) and finishes it: packs are filled in a fixed order from the
 * volume's bytes, so the same volume gives the same packs again.
 * DDP_S3_PACKS=0 writes the old layout (version 1: one object per file) when
 * the previous backup has no packs either.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup/backup_s3.h"
#include "backup/s3chain.h"
#include "backup/s3client.h"
#include "backup/s3sign.h"
#include "backup/s3upload.h"
#include "backup/s3xml.h"
#include "base/safepath.h"
#include "base/util.h"
#include "store/stub.h"

#define UPLOAD_SLOTS 32
#define PACK_FILE_MAX ((uint64_t)1 << 20)   /* files up to this go into packs */
#define PACK_MAX ((size_t)32 << 20)         /* a pack holds at most this much */

typedef struct obj_info {
    char *key;        /* below the prefix */
    uint64_t size;
    char etag[80];
    int named;        /* named by the new manifest */
} obj_info;

typedef struct obj_list {
    obj_info *v;
    size_t n, cap;
} obj_list;

struct ddp_backup_s3 {
    ddp_s3 *s3;
    char *bucket, *prefix;
    ddp_s3_chain prev;
    int have_prev;
    obj_list existing;
};

static HRESULT collect(void *ctx, const char *key, uint64_t size, const char *etag)
{
    obj_list *l = ctx;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 256;
        l->v = ddp_xrealloc(l->v, l->cap * sizeof *l->v);
    }
    obj_info *o = &l->v[l->n++];
    o->key = ddp_strdup(key);
    o->size = size;
    snprintf(o->etag, sizeof o->etag, "%s", etag);
    o->named = 0;
    return S_OK;
}

static int cmp_obj(const void *a, const void *b) { return strcmp(((const obj_info *)a)->key, ((const obj_info *)b)->key); }

static void list_free(obj_list *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->v[i].key);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static HRESULT list_all(ddp_s3 *s3, const char *bucket, const char *prefix, obj_list *l)
{
    memset(l, 0, sizeof *l);
    HRESULT hr = ddp_s3_list(s3, bucket, prefix, collect, l);
    if (FAILED(hr)) {
        list_free(l);
        return hr;
    }
    if (l->n) qsort(l->v, l->n, sizeof *l->v, cmp_obj);
    return S_OK;
}

static obj_info *list_find(obj_list *l, const char *key)
{
    obj_info k = { (char *)key, 0, "", 0 };
    return l->n ? bsearch(&k, l->v, l->n, sizeof *l->v, cmp_obj) : NULL;
}

/* The key below the prefix of a store path (what a listing gives). */
static char *rel_key(const char *path) { return ddp_s3_key_of_path("", path); }

/* Drop the parts of multipart uploads an interrupted run left below the prefix. */
static void abort_stale_uploads(ddp_backup_s3 *u)
{
    char *pfx = *u->prefix ? ddp_xasprintf("%s/", u->prefix) : ddp_strdup("");
    const char *names[2] = { "prefix", "uploads" }, *values[2] = { pfx, NULL };
    char *q = ddp_s3_canonical_query(2, names, values);
    ddp_s3_req *r = ddp_s3_req_new("GET", u->bucket, "", q);
    free(q);
    ddp_s3_req_max(r, (size_t)16 << 20);
    if (SUCCEEDED(ddp_s3_do(u->s3, r))) {
        const char *x = (const char *)ddp_s3_req_data(r);
        size_t xn = ddp_s3_req_got(r), pos = 0, st, len;
        while (x && ddp_s3_xml_next(x, xn, "Upload", &pos, &st, &len)) {
            char *key = ddp_s3_xml_text(x + st, len, "Key"), *id = ddp_s3_xml_text(x + st, len, "UploadId");
            if (key && id && strncmp(key, pfx, strlen(pfx)) == 0) {
                const char *an[1] = { "uploadId" }, *av[1] = { id };
                char *aq = ddp_s3_canonical_query(1, an, av);
                ddp_s3_req *a = ddp_s3_req_new("DELETE", u->bucket, key, aq);
                (void)ddp_s3_do(u->s3, a);
                ddp_s3_req_free(a);
                free(aq);
            }
            free(key);
            free(id);
        }
    }
    ddp_clear_error(); /* best effort: the service drops them in time anyway */
    ddp_s3_req_free(r);
    free(pfx);
}

HRESULT ddp_backup_s3_begin(const char *dest, const char *prev_url, ddp_backup_s3 **out)
{
    *out = NULL;
    ddp_backup_s3 *u = ddp_xcalloc(1, sizeof *u);
    HRESULT hr = ddp_s3_parse_url(dest, &u->bucket, &u->prefix);
    if (SUCCEEDED(hr) && prev_url && !ddp_s3_is_url(prev_url))
        hr = ddp_fail(E_INVALIDARG, "backup: an S3 backup builds on an S3 backup (--incremental s3://...), not on %s", prev_url);
    if (SUCCEEDED(hr)) hr = ddp_s3_open(&u->s3);
    if (SUCCEEDED(hr)) {
        hr = list_all(u->s3, u->bucket, u->prefix, &u->existing);
        if (hr == HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND))
            hr = ddp_fail(hr, "backup: the bucket %s does not exist (create it first): %s", u->bucket, ddp_error_detail());
    }
    if (SUCCEEDED(hr)) {
        char *mk = rel_key("/" DDP_MANIFEST_PATH);
        if (list_find(&u->existing, mk))
            hr = ddp_fail(HRESULT_FROM_WIN32(ERROR_FILE_EXISTS), "backup destination %s already holds a complete backup", dest);
        free(mk);
    }
    if (SUCCEEDED(hr) && prev_url) {
        hr = ddp_s3_chain_open(u->s3, prev_url, &u->prev);
        if (SUCCEEDED(hr)) u->have_prev = 1;
    }
    if (SUCCEEDED(hr) && u->existing.n > 0) abort_stale_uploads(u);
    if (FAILED(hr)) {
        ddp_saved_error se;
        ddp_error_save(&se);
        ddp_backup_s3_end(u);
        return ddp_first_error(hr, &se, S_OK);
    }
    *out = u;
    return S_OK;
}

const ddp_manifest *ddp_backup_s3_prev(ddp_backup_s3 *u) { return u->have_prev ? &u->prev.newest : NULL; }

char *ddp_backup_s3_previous_ref(ddp_backup_s3 *u)
{
    uint32_t l = u->prev.newest.level;
    return ddp_s3_previous_ref(u->bucket, u->prefix, u->prev.bucket[l], u->prev.prefix[l]);
}

void ddp_backup_s3_end(ddp_backup_s3 *u)
{
    if (!u) return;
    if (u->have_prev) ddp_s3_chain_close(&u->prev);
    list_free(&u->existing);
    ddp_s3_close(u->s3);
    free(u->bucket);
    free(u->prefix);
    free(u);
}

/* ---- uploading ---- */

typedef struct fd_src {
    int fd;
    uint64_t base;
    const char *what;
} fd_src;

static HRESULT fd_read(void *ctx, void *buf, size_t n, uint64_t off, size_t *got)
{
    fd_src *s = ctx;
    return ddp_pread_upto(s->fd, buf, n, s->base + off, got, s->what);
}

static HRESULT upload_src(ddp_backup_s3 *u, ddp_s3_uploader *up, const char *path, ddp_s3_source_fn fn, void *ctx,
                          uint64_t size, uint64_t *taken, int *skipped)
{
    char *rk = rel_key(path);
    char *key = ddp_s3_key_join(u->prefix, rk);
    obj_info *ex = list_find(&u->existing, rk);
    if (ex) ex->named = 1;
    HRESULT hr = ddp_s3_upload(up, key, size, fn, ctx, ex ? ex->etag : NULL, ex ? ex->size : 0, taken, skipped);
    free(key);
    free(rk);
    return hr;
}

static HRESULT upload_one(ddp_backup_s3 *u, ddp_s3_uploader *up, const char *path, int fd, uint64_t base,
                          uint64_t size, uint64_t *taken, int *skipped)
{
    fd_src src = { fd, base, path };
    return upload_src(u, up, path, fd_read, &src, size, taken, skipped);
}

/* ---- packs ---- */

typedef struct packer {
    uint8_t *buf;          /* the pack being filled */
    size_t n, cap;
    uint32_t number;       /* its number (1, 2, ...) */
    ddp_mf_pack *done;     /* packs written, in number order */
    size_t ndone;
} packer;

/* Send the pack being filled (when it holds anything or a file points at it). */
static HRESULT pack_flush(ddp_backup_s3 *u, ddp_s3_uploader *up, bctx *b, packer *pk, int used)
{
    if (!used && pk->n == 0) return S_OK;
    char *path = ddp_manifest_pack_path(pk->number);
    ddp_membuf src = { pk->buf, pk->n };
    uint64_t taken = 0;
    int skipped = 0;
    HRESULT hr = upload_src(u, up, path, ddp_membuf_read, &src, pk->n, &taken, &skipped);
    free(path);
    if (FAILED(hr)) return hr;
    if (!skipped) b->st->bytes_written += pk->n;
    pk->done = ddp_xrealloc(pk->done, (pk->ndone + 1) * sizeof *pk->done);
    pk->done[pk->ndone++] = (ddp_mf_pack){ b->m.level, pk->number, pk->n };
    pk->number++;
    pk->n = 0;
    return S_OK;
}

static HRESULT upload_file(ddp_backup_s3 *u, ddp_s3_uploader *up, bctx *b, ddp_mf_entry *e);

/* A file that shrank while it was read is kept as read, and said so (and a
 * stub cut short is no stub). */
static void note_taken(bctx *b, ddp_mf_entry *e, uint64_t taken)
{
    if (taken == e->size) return;
    b->st->changed_during++;
    e->size = taken;
    if (e->is_stub && taken != DDP_STUB_SIZE) {
        e->is_stub = 0;
        b->st->stubs--;
    }
}

/* A small file into the pack being filled (a file that grew past the bound
 * since the walk is an object of its own). */
static HRESULT pack_file(ddp_backup_s3 *u, ddp_s3_uploader *up, bctx *b, ddp_mf_entry *e, packer *pk, int *used)
{
    int fd;
    struct stat st;
    HRESULT hr = ddp_open_beneath(b->vfd, e->path + 1, 0, &fd, &st);
    if (FAILED(hr)) return hr;
    ddp_backup_refresh_entry(b, e, &st, fd);
    if (e->size > PACK_FILE_MAX) {
        close(fd);
        e->pack = 0;
        return upload_file(u, up, b, e);
    }
    if (pk->n + e->size > PACK_MAX) {
        hr = pack_flush(u, up, b, pk, *used);
        *used = 0;
        if (FAILED(hr)) { close(fd); return hr; }
    }
    if (pk->cap < pk->n + e->size) {
        size_t cap = pk->cap ? pk->cap : (size_t)1 << 20;
        while (cap < pk->n + e->size) cap *= 2;
        if (cap > PACK_MAX) cap = PACK_MAX;
        pk->buf = ddp_xrealloc(pk->buf, cap);
        pk->cap = cap;
    }
    size_t taken = 0;
    hr = ddp_pread_upto(fd, pk->buf + pk->n, (size_t)e->size, 0, &taken, e->path);
    close(fd);
    if (FAILED(hr)) return hr;
    note_taken(b, e, taken);
    e->pack = pk->number;
    e->pack_off = pk->n;
    pk->n += taken;
    *used = 1;
    if (strncmp(e->path, "/.ddp/", 6) == 0) b->st->metadata_copied++;
    else b->st->files_copied++;
    ddp_backup_progress(b, taken);
    return S_OK;
}

static HRESULT upload_file(ddp_backup_s3 *u, ddp_s3_uploader *up, bctx *b, ddp_mf_entry *e)
{
    int fd;
    struct stat st;
    HRESULT hr = ddp_open_beneath(b->vfd, e->path + 1, 0, &fd, &st);
    if (FAILED(hr)) return hr;
    ddp_backup_refresh_entry(b, e, &st, fd);
    uint64_t taken = 0;
    int skipped = 0;
    hr = upload_one(u, up, e->path, fd, 0, e->size, &taken, &skipped);
    close(fd);
    if (FAILED(hr)) return hr;
    note_taken(b, e, taken);
    if (strncmp(e->path, "/.ddp/", 6) == 0) b->st->metadata_copied++;
    else b->st->files_copied++;
    if (!skipped) b->st->bytes_written += taken;
    ddp_backup_progress(b, taken);
    return S_OK;
}

static HRESULT upload_piece(ddp_backup_s3 *u, ddp_s3_uploader *up, bctx *b, const ddp_mf_entry *e,
                            const ddp_mf_piece *p)
{
    int fd;
    HRESULT hr = ddp_open_beneath(b->vfd, e->path + 1, 0, &fd, NULL);
    if (FAILED(hr)) return hr;
    uint64_t taken = 0;
    int skipped = 0;
    hr = upload_one(u, up, p->file, fd, p->offset, p->length, &taken, &skipped);
    close(fd);
    if (SUCCEEDED(hr) && taken != p->length)
        hr = ddp_fail(DDP_E_INVALID_STATE, "backup: container %s shrank during the backup", e->path);
    if (FAILED(hr)) return hr;
    b->st->pieces_copied++;
    b->st->container_bytes += taken;
    if (!skipped) b->st->bytes_written += taken;
    ddp_backup_progress(b, taken);
    return S_OK;
}

/* ---- the check before the manifest ---- */

static HRESULT expect(obj_list *l, const char *bucket, const char *prefix, const char *path, uint64_t size)
{
    char *rk = rel_key(path);
    obj_info *o = list_find(l, rk);
    HRESULT hr = S_OK;
    if (!o)
        hr = ddp_fail(DDP_E_NOT_FOUND, "backup: s3://%s/%s%s%s is missing: the backup is not complete", bucket, prefix,
                      *prefix ? "/" : "", rk);
    else if (o->size != size)
        hr = ddp_fail(DDP_E_FILE_CORRUPT, "backup: s3://%s/%s%s%s has %" PRIu64 " bytes, the manifest says %" PRIu64,
                      bucket, prefix, *prefix ? "/" : "", rk, o->size, size);
    free(rk);
    return hr;
}

/* Every object the manifest names, in every backup of the chain, is there
 * with its size. */
static HRESULT verify(ddp_backup_s3 *u, const ddp_manifest *m)
{
    HRESULT hr = S_OK;
    for (uint32_t level = 0; level <= m->level && SUCCEEDED(hr); level++) {
        const char *bucket = level == m->level ? u->bucket : u->prev.bucket[level];
        const char *prefix = level == m->level ? u->prefix : u->prev.prefix[level];
        obj_list l;
        hr = list_all(u->s3, bucket, prefix, &l);
        for (size_t i = 0; i < m->count && SUCCEEDED(hr); i++) {
            const ddp_mf_entry *e = &m->entries[i];
            if (e->type == 'F' && e->level == level && !e->pack) hr = expect(&l, bucket, prefix, e->path, e->size);
            for (uint32_t j = 0; e->type == 'C' && j < e->npieces && SUCCEEDED(hr); j++)
                if (e->pieces[j].level == level)
                    hr = expect(&l, bucket, prefix, e->pieces[j].file, e->pieces[j].length);
        }
        for (size_t k = 0; k < m->npacks && SUCCEEDED(hr); k++) {
            if (m->packs[k].level != level) continue;
            char *path = ddp_manifest_pack_path(m->packs[k].number);
            hr = expect(&l, bucket, prefix, path, m->packs[k].size);
            free(path);
        }
        list_free(&l);
    }
    return hr;
}

/* The manifest's pack list: the packs of earlier backups that unchanged
 * files still point at (from the previous manifest), then this backup's. */
static void set_packs(ddp_backup_s3 *u, bctx *b, const packer *pk)
{
    const ddp_manifest *prev = u->have_prev ? &u->prev.newest : NULL;
    size_t np = prev ? prev->npacks : 0;
    uint8_t *keep = ddp_xcalloc(np ? np : 1, 1);
    for (size_t i = 0; i < b->m.count; i++) {
        const ddp_mf_entry *e = &b->m.entries[i];
        if (e->type != 'F' || !e->pack || e->level == b->m.level || !prev) continue;
        const ddp_mf_pack *k = ddp_manifest_pack(prev, e->level, e->pack);
        if (k) keep[k - prev->packs] = 1;
    }
    free(b->m.packs);
    b->m.packs = ddp_xmalloc((np + pk->ndone + 1) * sizeof *b->m.packs);
    b->m.npacks = 0;
    for (size_t i = 0; i < np; i++)
        if (keep[i]) b->m.packs[b->m.npacks++] = prev->packs[i];
    for (size_t i = 0; i < pk->ndone; i++) b->m.packs[b->m.npacks++] = pk->done[i];
    free(keep);
}

/* Pack small files? Yes, unless DDP_S3_PACKS=0 (the version 1 layout) and
 * the previous backup has no packs. */
static int use_packs(const ddp_backup_s3 *u)
{
    const char *env = getenv("DDP_S3_PACKS");
    if (!env || strcmp(env, "0") != 0) return 1;
    return u->have_prev && u->prev.newest.version >= DDP_MANIFEST_VERSION_PACKS;
}

static int packable(const ddp_mf_entry *e) { return e->type == 'F' && e->size <= PACK_FILE_MAX; }

HRESULT ddp_backup_s3_write(ddp_backup_s3 *u, bctx *b)
{
    ddp_s3_uploader *up = ddp_s3_uploader_new(u->s3, u->bucket, UPLOAD_SLOTS);
    HRESULT hr = S_OK;
    int packs = use_packs(u);
    const char *env = getenv("DDP_S3_PACKS");
    int pack_new = packs && !(env && strcmp(env, "0") == 0);
    b->m.version = packs ? DDP_MANIFEST_VERSION_PACKS : DDP_MANIFEST_VERSION;
    packer pk = { NULL, 0, 0, 1, NULL, 0 };
    int used = 0;
    /* the store's metadata first, contiguous in the first pack: one ranged GET brings it all */
    for (size_t i = 0; i < b->m.count && SUCCEEDED(hr) && pack_new; i++) {
        ddp_mf_entry *e = &b->m.entries[i];
        if (b->copy_piece[i] && packable(e) && strncmp(e->path, "/.ddp/", 6) == 0) hr = pack_file(u, up, b, e, &pk, &used);
    }
    for (size_t i = 0; i < b->m.count && SUCCEEDED(hr); i++) {
        ddp_mf_entry *e = &b->m.entries[i];
        if (!b->copy_piece[i]) continue;
        if (e->type == 'F' && pack_new && packable(e)) {
            if (strncmp(e->path, "/.ddp/", 6) != 0) hr = pack_file(u, up, b, e, &pk, &used);
        } else if (e->type == 'F') {
            e->pack = 0;
            hr = upload_file(u, up, b, e);
        } else if (e->type == 'C') {
            hr = upload_piece(u, up, b, e, &e->pieces[e->npieces - 1]);
        }
    }
    if (SUCCEEDED(hr)) hr = pack_flush(u, up, b, &pk, used);
    if (SUCCEEDED(hr)) hr = ddp_s3_uploader_finish(up);
    else (void)ddp_s3_uploader_finish(up);
    ddp_s3_uploader_free(up);
    if (packs) set_packs(u, b, &pk);
    free(pk.buf);
    free(pk.done);
    /* objects of an interrupted run that this backup does not name */
    for (size_t i = 0; i < u->existing.n && SUCCEEDED(hr); i++) {
        if (u->existing.v[i].named) continue;
        char *key = ddp_s3_key_join(u->prefix, u->existing.v[i].key);
        hr = ddp_s3_delete_object(u->s3, u->bucket, key);
        if (hr == HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND)) hr = S_OK;
        free(key);
    }
    char *dest = ddp_xasprintf("s3://%s/%s", u->bucket, u->prefix);
    if (SUCCEEDED(hr)) hr = ddp_manifest_index(&b->m, dest);
    if (SUCCEEDED(hr)) hr = verify(u, &b->m);
    if (SUCCEEDED(hr)) {
        size_t n;
        char *text = ddp_manifest_encode(&b->m, &n);
        char *key = ddp_s3_key_join(u->prefix, DDP_MANIFEST_PATH);
        hr = ddp_s3_put_object(u->s3, u->bucket, key, text, n, NULL);
        if (SUCCEEDED(hr)) b->st->bytes_written += n;
        free(key);
        free(text);
    }
    free(dest);
    return hr;
}
