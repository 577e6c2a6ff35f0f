/* SPDX-License-Identifier: MIT */
/*
 * storewalk.c: walking a chunk store's container files (storewalk.h): the
 * container view (catalog + Hotspot/), sorted offset vectors, the header
 * walk, the full read of one record, and the hotspot copies by hash. Shared
 * by gc, scrub, hotspot (lib/volume/) and the reader's fallback
 * (store/chunkread.c).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "store/catalog.h"
#include "store/storewalk.h"
#include "store/streammap.h"

#define CATALOG_MAX ((size_t)32 + (size_t)24 * DDP_CATALOG_MAX_ENTRIES + 8)
/* ======================================================================
 * Offset vectors
 * ====================================================================== */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void offvec_fold(ddp_offvec *a)
{
    if (a->n < 2) {
        a->clean = a->n;
        return;
    }
    qsort(a->v, a->n, sizeof *a->v, cmp_u64);
    if (!a->keep_dups) {
        size_t w = 1;
        for (size_t i = 1; i < a->n; i++)
            if (a->v[i] != a->v[w - 1]) a->v[w++] = a->v[i];
        a->n = w;
    }
    a->clean = a->n;
}

void ddp_offvec_push(ddp_offvec *a, uint64_t x)
{
    if (a->n == a->cap) {
        /* Fold duplicates first: many files share chunks. Grow only if that
         * does not free a quarter of the vector. */
        if (!a->keep_dups && a->n >= 1024 && a->clean < a->n) offvec_fold(a);
        if (a->n + a->n / 4 >= a->cap) {
            a->cap = a->cap ? a->cap * 2 : 64;
            a->v = ddp_xrealloc(a->v, a->cap * sizeof *a->v);
        }
    }
    a->v[a->n++] = x;
}

void ddp_offvec_finish(ddp_offvec *a) { offvec_fold(a); }

int ddp_offvec_has(const ddp_offvec *a, uint64_t x)
{
    size_t lo = 0, hi = a->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a->v[mid] < x) lo = mid + 1;
        else hi = mid;
    }
    return lo < a->n && a->v[lo] == x;
}

void ddp_offvec_free(ddp_offvec *a)
{
    free(a->v);
    memset(a, 0, sizeof *a);
}

/* ======================================================================
 * The store's containers
 * ====================================================================== */

static int cmp_mcont(const void *a, const void *b)
{
    const ddp_mcont *x = a, *y = b;
    if (x->kind != y->kind) return x->kind < y->kind ? -1 : 1;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    return x->generation < y->generation ? -1 : x->generation > y->generation;
}

static void mstore_add(ddp_mstore *s, size_t *cap, uint32_t kind, uint32_t id, uint32_t gen, int in_catalog,
                       int sealed, uint64_t len)
{
    if (s->n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        s->c = ddp_xrealloc(s->c, *cap * sizeof *s->c);
    }
    ddp_mcont *c = &s->c[s->n++];
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->id = id;
    c->generation = gen;
    c->in_catalog = in_catalog;
    c->sealed = sealed;
    c->catalog_len = len;
    ddp_container_relpath(kind, id, gen, c->rel);
    c->path = ddp_path_join(s->store_dir, c->rel);
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* "CCCCCCCC.GGGGGGGG.ccc" -> id, generation; 0 if the name is not one. */
static int parse_container_name(const char *name, uint32_t *id, uint32_t *gen)
{
    if (strlen(name) != 21 || name[8] != '.' || strcmp(name + 17, ".ccc") != 0) return 0;
    uint32_t a = 0, b = 0;
    for (int i = 0; i < 8; i++) {
        int x = hexval((unsigned char)name[i]), y = hexval((unsigned char)name[9 + i]);
        if (x < 0 || y < 0) return 0;
        a = a << 4 | (uint32_t)x;
        b = b << 4 | (uint32_t)y;
    }
    if (!a || !b) return 0;
    *id = a;
    *gen = b;
    return 1;
}

HRESULT ddp_mstore_load(const char *store_dir, const uint8_t store_id[DDP_STORE_ID_SIZE], ddp_mstore *s)
{
    memset(s, 0, sizeof *s);
    s->store_dir = ddp_strdup(store_dir);
    memcpy(s->store_id, store_id, DDP_STORE_ID_SIZE);
    char *cpath = ddp_path_join(store_dir, "catalog");
    uint8_t *buf = NULL;
    size_t n = 0;
    HRESULT hr = ddp_read_file(cpath, CATALOG_MAX, &buf, &n);
    ddp_catalog cat;
    memset(&cat, 0, sizeof cat);
    if (SUCCEEDED(hr)) {
        hr = ddp_catalog_decode(buf, n, &cat);
        if (FAILED(hr)) hr = ddp_fail(hr, "%s: %s", cpath, ddp_error_detail());
        else if (memcmp(cat.store_id, store_id, DDP_STORE_ID_SIZE) != 0)
            hr = ddp_fail(DDP_E_INVALID_DATA, "%s: the catalog belongs to another store", cpath);
    }
    free(buf);
    free(cpath);
    if (FAILED(hr)) {
        ddp_catalog_free(&cat);
        ddp_mstore_free(s);
        return hr;
    }
    size_t cap = 0;
    for (uint32_t i = 0; i < cat.count; i++) {
        const ddp_catalog_entry *e = &cat.entries[i];
        mstore_add(s, &cap, e->kind, e->id, e->generation, 1, (e->flags & 1u) != 0, e->length);
    }
    ddp_catalog_free(&cat);

    /* Hotspot containers: not in the catalog (nothing references them by
     * location); found by name. The newest generation of an id wins. */
    char *hdir = ddp_path_join(store_dir, "Hotspot");
    DIR *d = opendir(hdir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            uint32_t id, gen;
            if (parse_container_name(de->d_name, &id, &gen)) mstore_add(s, &cap, DDP_KIND_HOTSPOT, id, gen, 1, 0, 0);
        }
        closedir(d);
    }
    free(hdir);
    if (s->n > 1) qsort(s->c, s->n, sizeof *s->c, cmp_mcont);
    /* One entry per (kind, id): the newest generation (sorted last) wins. */
    size_t w = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (w && s->c[w - 1].kind == s->c[i].kind && s->c[w - 1].id == s->c[i].id) {
            free(s->c[w - 1].path);
            s->c[w - 1] = s->c[i];
            continue;
        }
        s->c[w++] = s->c[i];
    }
    s->n = w;
    return S_OK;
}

ddp_mcont *ddp_mstore_find(const ddp_mstore *s, uint32_t kind, uint32_t id)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const ddp_mcont *c = &s->c[mid];
        if (c->kind < kind || (c->kind == kind && c->id < id)) lo = mid + 1;
        else hi = mid;
    }
    return lo < s->n && s->c[lo].kind == kind && s->c[lo].id == id ? &s->c[lo] : NULL;
}

void ddp_mstore_free(ddp_mstore *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->c[i].path);
        ddp_offvec_free(&s->c[i].offs);
        ddp_redirect_free(&s->c[i].redir);
    }
    free(s->c);
    free(s->store_dir);
    memset(s, 0, sizeof *s);
}

HRESULT ddp_mcont_open(const ddp_mstore *s, ddp_mcont *c, int flags, int *out)
{
    *out = -1;
    int fd = open(c->path, flags | O_CLOEXEC);
    if (fd < 0) return ddp_fail_errno(errno, "opening container %s", c->path);
    uint8_t hb[DDP_CONTAINER_HEADER_SIZE];
    HRESULT hr = ddp_pread_exact(fd, hb, sizeof hb, 0, c->path);
    ddp_container_header h;
    memset(&h, 0, sizeof h);
    if (SUCCEEDED(hr)) {
        hr = ddp_container_header_decode(hb, &h);
        if (FAILED(hr)) hr = ddp_fail(DDP_E_FILE_CORRUPT, "container %s: %s", c->path, ddp_error_detail());
    }
    if (SUCCEEDED(hr) && (memcmp(h.store_id, s->store_id, DDP_STORE_ID_SIZE) != 0 || h.kind != c->kind ||
                          h.id != c->id || h.generation != c->generation))
        hr = ddp_fail(DDP_E_FILE_CORRUPT, "container %s: its header names another container", c->path);
    if (SUCCEEDED(hr) && !c->redir_loaded) {
        hr = ddp_redirect_load(fd, c->path, &h, &c->redir);
        if (SUCCEEDED(hr)) {
            c->redir_loaded = 1;
            c->redirect_len = h.redirect_len;
        } else if (hr == DDP_E_FILE_CORRUPT) {
            hr = ddp_fail(DDP_E_FILE_CORRUPT, "container %s: %s", c->path, ddp_error_detail());
        }
    }
    if (FAILED(hr)) {
        close(fd);
        return hr;
    }
    *out = fd;
    return S_OK;
}

int ddp_mcont_id_at(const ddp_mcont *c, uint64_t off, uint64_t *id) { return ddp_redirect_id_at(&c->redir, off, id); }

HRESULT ddp_mcont_resolve(const ddp_mcont *c, uint64_t id, uint64_t *off)
{
    return ddp_redirect_resolve(&c->redir, id, c->path, off);
}

HRESULT ddp_walk_headers(int fd, const char *what, uint64_t size, ddp_hdr_fn fn, void *ctx, uint64_t *stop,
                         const char **why)
{
    uint64_t off = DDP_CONTAINER_HEADER_SIZE;
    *why = NULL;
    HRESULT hr = S_OK;
    while (off < size) {
        if (size - off < DDP_RECORD_HEADER_SIZE) {
            *why = "incomplete record header";
            break;
        }
        uint8_t hb[DDP_RECORD_HEADER_SIZE];
        if (FAILED(hr = ddp_pread_exact(fd, hb, sizeof hb, off, what))) break;
        ddp_record_header h;
        if (FAILED(ddp_record_header_decode_any(hb, &h))) {
            ddp_clear_error();
            *why = "invalid record header";
            break;
        }
        if (off + DDP_RECORD_HEADER_SIZE + h.stored_len > size) {
            *why = "record runs past the end of the file";
            break;
        }
        if (h.type == DDP_RECORD_SEAL) {
            off += DDP_RECORD_HEADER_SIZE;
            break;
        }
        /* The redirection table of a compacted container: not a record a
         * reference can name. */
        int halt = fn && !(h.type == DDP_RECORD_REDIRECT && off == DDP_REDIRECT_TABLE_OFFSET) ? fn(ctx, &h, off) : 0;
        off += DDP_RECORD_HEADER_SIZE + (uint64_t)h.stored_len;
        if (halt) break;
    }
    *stop = off;
    return hr;
}

HRESULT ddp_read_raw_record(int fd, const char *what, uint64_t off, ddp_record_header *h, uint8_t **rec)
{
    *rec = NULL;
    uint8_t hb[DDP_RECORD_HEADER_SIZE];
    HRESULT hr = ddp_pread_exact(fd, hb, sizeof hb, off, what);
    if (FAILED(hr)) return hr;
    if (FAILED(hr = ddp_record_header_decode(hb, h)))
        return ddp_fail(hr, "container %s offset %llu: %s", what, (unsigned long long)off, ddp_error_detail());
    if (h->type != DDP_RECORD_CHUNK && h->type != DDP_RECORD_STREAMMAP)
        return ddp_fail(DDP_E_FILE_CORRUPT, "container %s offset %llu: not a chunk or stream-map record", what,
                        (unsigned long long)off);
    uint8_t *r = ddp_xmalloc(DDP_RECORD_HEADER_SIZE + (size_t)h->stored_len);
    memcpy(r, hb, sizeof hb);
    uint8_t *logical = ddp_xmalloc(h->logical_len ? h->logical_len : 1);
    hr = ddp_pread_exact(fd, r + DDP_RECORD_HEADER_SIZE, h->stored_len, off + DDP_RECORD_HEADER_SIZE, what);
    if (SUCCEEDED(hr)) hr = ddp_record_payload_decode(h, r + DDP_RECORD_HEADER_SIZE, logical);
    if (SUCCEEDED(hr) && h->type == DDP_RECORD_STREAMMAP) {
        ddp_streammap m;
        ddp_streammap_init(&m);
        hr = ddp_streammap_decode(logical, h->logical_len, &m);
        ddp_streammap_free(&m);
    }
    free(logical);
    if (FAILED(hr)) {
        free(r);
        char inner[512];
        snprintf(inner, sizeof inner, "%s", ddp_error_detail());
        return ddp_fail(hr, "container %s offset %llu: %s", what, (unsigned long long)off, inner);
    }
    *rec = r;
    return S_OK;
}

/* ======================================================================
 * Hotspot copies by hash
 * ====================================================================== */

static int cmp_hotrec(const void *a, const void *b)
{
    const ddp_hotrec *x = a, *y = b;
    int c = memcmp(x->hash, y->hash, DDP_HASH_SIZE);
    if (c) return c;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    return x->off < y->off ? -1 : x->off > y->off;
}

typedef struct hot_walk {
    ddp_hotset *hs;
    const ddp_mcont *c;
} hot_walk;

static int hot_found(void *ctx, const ddp_record_header *h, uint64_t off)
{
    hot_walk *w = ctx;
    if (h->type != DDP_RECORD_CHUNK) return 0;
    uint64_t lid;
    if (!ddp_mcont_id_at(w->c, off, &lid)) return 0; /* not in its table: scrub reports it */
    ddp_hotset *hs = w->hs;
    if (hs->n == hs->cap) {
        hs->cap = hs->cap ? hs->cap * 2 : 64;
        hs->r = ddp_xrealloc(hs->r, hs->cap * sizeof *hs->r);
    }
    ddp_hotrec *r = &hs->r[hs->n++];
    memcpy(r->hash, h->hash, DDP_HASH_SIZE);
    r->id = w->c->id;
    r->off = off;
    r->lid = lid;
    r->stored_len = h->stored_len;
    r->codec = h->codec;
    return 0;
}

HRESULT ddp_hotset_load(const ddp_mstore *s, ddp_hotset *hs)
{
    memset(hs, 0, sizeof *hs);
    for (size_t i = 0; i < s->n; i++) {
        ddp_mcont *c = &s->c[i];
        if (c->kind != DDP_KIND_HOTSPOT) continue;
        int fd;
        if (FAILED(ddp_mcont_open(s, c, O_RDONLY, &fd))) {
            ddp_clear_error(); /* a damaged copy container only loses its copies; scrub reports it */
            continue;
        }
        struct stat st;
        HRESULT hr = S_OK;
        if (fstat(fd, &st) == 0) {
            hot_walk w = { hs, c };
            uint64_t stop;
            const char *why;
            hr = ddp_walk_headers(fd, c->path, (uint64_t)st.st_size, hot_found, &w, &stop, &why);
        }
        close(fd);
        if (FAILED(hr)) {
            ddp_hotset_free(hs);
            return hr;
        }
    }
    if (hs->n > 1) qsort(hs->r, hs->n, sizeof *hs->r, cmp_hotrec);
    return S_OK;
}

const ddp_hotrec *ddp_hotset_find(const ddp_hotset *hs, const uint8_t hash[DDP_HASH_SIZE])
{
    size_t lo = 0, hi = hs->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (memcmp(hs->r[mid].hash, hash, DDP_HASH_SIZE) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo < hs->n && memcmp(hs->r[lo].hash, hash, DDP_HASH_SIZE) == 0 ? &hs->r[lo] : NULL;
}

void ddp_hotset_free(ddp_hotset *hs)
{
    free(hs->r);
    memset(hs, 0, sizeof *hs);
}

