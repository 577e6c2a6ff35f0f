/* SPDX-License-Identifier: MIT */
/*
 * rsformat_ddp.c: ddp's own on-disk format behind the restore engine's
 * format interface (rsformat.h). The engine reads; this file says what ddp's
 * stubs, metadata and records are, with the store layer's parsers
 * (store/stub, identity, catalog, container, streammap).
 *
 *  - A stub: a regular file that begins with the stub text and magic (88
 *    bytes) claims to be one; it must then be exactly 232 bytes and parse
 *    (else DDP_E_INVALID_DATA).
 *  - Metadata, read through the callback before any container is ordered:
 *    the store's identity, /.ddp/Settings/identity. A backup holds one
 *    volume, so one identity: stubs of another store id -> DDP_E_NOT_FOUND
 *    (the backup does not hold their store), as when the identity is absent;
 *    a stub whose MAC fails under the key -> DDP_E_INVALID_DATA. A stub that
 *    passes is "valid". Then the catalog, /.ddp/ChunkStore/{GUID}.ddp/
 *    catalog: its fixed 32-byte head first (count bounded by
 *    DDP_CATALOG_MAX_ENTRIES: 24 MiB at most), then the rest. It gives each
 *    container's generation, so container paths are made of numbers only
 *    (ddp_container_relpath); no byte read from a stub or the store ever
 *    becomes part of a path, and no path read from either ever opens a
 *    local file (R10).
 *  - Compacted containers (docs/FORMAT.md, "Compacted containers"):
 *    references (the stub's stream map, every stream-map entry) name a
 *    record by its local id, which is its offset only in a container's
 *    generation 1. A container the catalog gives generation 2 or more is
 *    read first from its start (the engine's prelude, rsformat.h): its
 *    64-byte header, which must be this container of this store (kind, id,
 *    generation, store id) and gives redirect_len; version 1 (0) is a
 *    container gc emptied (no record left: every reference to it fails as
 *    garbage-collected). Then [64, 128 + redirect_len): the REDIRECT record (good
 *    header and payload checksums, the sha256 of the table its header
 *    names) and the table, checked whole (store/redirect.h) against the
 *    container's catalog length; a header claiming a table that cannot fit
 *    the container is refused before anything more is read. These are
 *    container reads like any other: inside the plan's extents, previewed,
 *    never a byte twice. Then each record of the container is placed at the
 *    offset the table gives its id; an id the table lacks (the record was
 *    garbage-collected) fails its files with DDP_E_FILE_CORRUPT naming it.
 *    The record found there is checked as always (below). A generation-1
 *    container costs no read more than before. The tables are kept (16
 *    bytes per record of each compacted container the call touches) until
 *    the end of the call.
 *  - The stream-map record: the stub names it exactly (container id, local
 *    id, 64 + stored length bytes); its container must be in the catalog. It
 *    must have a good header and payload checksum, be a stream map of the
 *    stored length the stub gives, hash (sha256) to the stub's stream-map
 *    hash, decode, and agree with the stub on file size and whole-file
 *    hash. Every data container it names must be in the catalog.
 *  - A chunk record: header, payload checksum, the stream map's hash and
 *    logical length, decoded by its codec, sha256 of the decoded bytes
 *    (ddp_record_payload_decode). A chunk shared by files, or repeated in
 *    one, is read and decoded once.
 *  - A complete file: the whole-file hash recomputed from the chunk hashes
 *    (each chunk's sha256 was verified on its decoded bytes) must be the
 *    stub's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/codec.h"
#include "base/hash.h"
#include "base/util.h"
#include "store/catalog.h"
#include "store/container.h"
#include "store/identity.h"
#include "store/redirect.h"
#include "store/streammap.h"
#include "store/stub.h"
#include "restore/rsformat.h"

#define CATALOG_HEAD 32

static const char identity_path[] = "/.ddp/Settings/identity";

/* The state of one call. */
typedef struct ddp_fctx {
    ddp_identity id;
    char *store_prefix;   /* "/.ddp/ChunkStore/{GUID}.ddp/" */
    ddp_catalog cat;
} ddp_fctx;

/* The state of one file. */
typedef struct ddp_fstate {
    uint8_t raw[DDP_STUB_SIZE]; /* for the MAC check once the key is known */
    ddp_stub stub;
    ddp_streammap map;    /* once mapped (with starts[]) */
} ddp_fstate;

/* The state of one compacted container (rs_cstate.fstate). */
typedef struct ddp_cstate {
    uint64_t cat_len;     /* its length in the catalog */
    uint64_t redirect_len;
    int emptied;          /* a version-1 header at generation >= 2: gc left no record */
    int have;             /* the table (or identity) is known */
    ddp_redirect tab;
} ddp_cstate;

static ddp_fstate *fs_of(rs_ctx *c, uint32_t i)
{
    return c->files[i].fs;
}

/* ---- stubs ---- */

static int ddp_recognise(const uint8_t *head, size_t n, uint64_t size)
{
    (void)size;
    return ddp_stub_has_prefix(head, n);
}

static HRESULT ddp_parse(rs_ctx *c, uint32_t i, const uint8_t *stub, size_t n, uint64_t size)
{
    if (size != DDP_STUB_SIZE || n != DDP_STUB_SIZE)
        return ddp_fail(DDP_E_INVALID_DATA, "begins like a ddp stub but is %llu bytes, not %d",
                        (unsigned long long)size, DDP_STUB_SIZE);
    ddp_fstate *s = ddp_xcalloc(1, sizeof *s);
    memcpy(s->raw, stub, DDP_STUB_SIZE);
    ddp_streammap_init(&s->map);
    c->files[i].fs = s;
    if (FAILED(ddp_stub_peek(s->raw, DDP_STUB_SIZE, &s->stub)))
        return ddp_fail(DDP_E_INVALID_DATA, "malformed stub: %s", ddp_error_detail());
    c->files[i].size = s->stub.file_size;
    return S_OK;
}

/* ---- metadata ---- */

static HRESULT read_identity(rs_ctx *c, ddp_fctx *x)
{
    uint8_t buf[DDP_IDENTITY_SIZE];
    HRESULT hr = rs_read_meta(c, identity_path, 0, buf, sizeof buf);
    if (FAILED(hr)) return hr;
    hr = ddp_identity_decode(buf, sizeof buf, &x->id);
    if (FAILED(hr)) return ddp_fail(hr, "%s in the backup store: %s", identity_path, ddp_error_detail());
    return S_OK;
}

static HRESULT read_catalog(rs_ctx *c, ddp_fctx *x)
{
    char *path = ddp_xasprintf("%scatalog", x->store_prefix);
    uint8_t head[CATALOG_HEAD];
    uint8_t *buf = NULL;
    HRESULT hr = rs_read_meta(c, path, 0, head, sizeof head);
    if (SUCCEEDED(hr)) {
        uint32_t count = ddp_get_le32(head + 12);
        if (memcmp(head, "DDPCATL1", 8) != 0) {
            hr = ddp_fail(DDP_E_INVALID_DATA, "%s in the backup store is not a catalog", path);
        } else if (count > DDP_CATALOG_MAX_ENTRIES) {
            hr = ddp_fail(DDP_E_INVALID_DATA, "%s in the backup store claims %u containers (at most %u)", path,
                          count, DDP_CATALOG_MAX_ENTRIES);
        } else {
            size_t total = CATALOG_HEAD + (size_t)count * 24 + 8;
            buf = ddp_xmalloc(total);
            memcpy(buf, head, CATALOG_HEAD);
            hr = rs_read_meta(c, path, CATALOG_HEAD, buf + CATALOG_HEAD, total - CATALOG_HEAD);
            if (SUCCEEDED(hr)) {
                hr = ddp_catalog_decode(buf, total, &x->cat);
                if (FAILED(hr)) {
                    hr = ddp_fail(hr, "%s in the backup store: %s", path, ddp_error_detail());
                } else if (memcmp(x->cat.store_id, x->id.store_id, DDP_STORE_ID_SIZE) != 0) {
                    ddp_catalog_free(&x->cat);
                    hr = ddp_fail(DDP_E_INVALID_DATA, "%s in the backup store belongs to another store", path);
                }
            }
        }
    }
    free(buf);
    free(path);
    return hr;
}

/* The first need of each valid file: its stream-map record. */
static void first_needs(rs_ctx *c, uint32_t fmt, ddp_fctx *x)
{
    uint64_t max_stored = ddp_compress_bound(DDP_STREAMMAP_MAX_LOGICAL);
    for (uint32_t i = 0; i < c->n; i++) {
        rs_file *f = &c->files[i];
        if (f->state != RS_PENDING || f->fmt != fmt) continue;
        const ddp_stub *st = &fs_of(c, i)->stub;
        if (!ddp_catalog_find(&x->cat, DDP_KIND_STREAM, st->stream_container)) {
            rs_file_fail(c, i, ddp_fail(DDP_E_PATH_NOT_FOUND, "stream-map container %u is not in the backup's catalog",
                                        st->stream_container));
            continue;
        }
        if (st->streammap_stored_len > max_stored ||
            st->stream_offset > RS_OFF_END - DDP_RECORD_HEADER_SIZE - st->streammap_stored_len) {
            rs_file_fail(c, i, ddp_fail(DDP_E_INVALID_DATA, "the stub names an impossible stream-map record"));
            continue;
        }
        rs_file_need(c, i, st->stream_container, st->stream_offset,
                     (uint32_t)(DDP_RECORD_HEADER_SIZE + st->streammap_stored_len), 0);
    }
}

static uint32_t ddp_prepare(rs_ctx *c, uint32_t fmt)
{
    ddp_fctx *x = ddp_xcalloc(1, sizeof *x);
    c->fctx[fmt] = x;
    HRESULT hr = read_identity(c, x);
    if (FAILED(hr)) {
        rs_fail_format(c, fmt, hr);
        return 0;
    }
    uint32_t valid = 0;
    for (uint32_t i = 0; i < c->n; i++) {
        rs_file *f = &c->files[i];
        if (f->state != RS_PENDING || f->fmt != fmt) continue;
        ddp_fstate *s = fs_of(c, i);
        if (memcmp(s->stub.store_id, x->id.store_id, DDP_STORE_ID_SIZE) != 0) {
            char theirs[39], ours[39];
            ddp_guid_format(s->stub.store_id, theirs);
            ddp_guid_format(x->id.store_id, ours);
            rs_file_fail(c, i, ddp_fail(DDP_E_NOT_FOUND, "stub of chunk store %s, but the backup holds store %s",
                                        theirs, ours));
        } else if (FAILED(ddp_stub_decode(s->raw, DDP_STUB_SIZE, x->id.key, &s->stub))) {
            rs_file_fail(c, i, ddp_fail(DDP_E_INVALID_DATA, "stub fails authentication: %s", ddp_error_detail()));
        } else {
            valid++;
        }
    }
    if (valid == 0) return 0;
    char guid[39];
    ddp_guid_format(x->id.store_id, guid);
    x->store_prefix = ddp_xasprintf("/.ddp/ChunkStore/%s.ddp/", guid);
    hr = read_catalog(c, x);
    if (FAILED(hr)) rs_fail_format(c, fmt, hr);
    else first_needs(c, fmt, x);
    return valid;
}

static char *ddpf_container_path(rs_ctx *c, uint32_t fmt, uint32_t kind, uint64_t key, int *missing)
{
    const ddp_fctx *x = c->fctx[fmt];
    uint32_t id = (uint32_t)key;
    const ddp_catalog_entry *e = ddp_catalog_find(&x->cat, kind, id);
    char rel[40];
    ddp_container_relpath(kind, id, e ? e->generation : 1, rel);
    /* Only containers the catalog has are ever named; be safe anyway. */
    *missing = e == NULL || key > UINT32_MAX;
    return ddp_xasprintf("%s%s", x->store_prefix, rel);
}

/* ---- compacted containers: header, then redirection table ---- */

static int ddp_prelude_first(rs_ctx *c, uint32_t fmt, rs_cstate *k, uint64_t *off, uint32_t *len)
{
    const ddp_fctx *x = c->fctx[fmt];
    const ddp_catalog_entry *e = ddp_catalog_find(&x->cat, k->kind, (uint32_t)RS_KEY_LOCAL(k->key));
    if (!e || e->generation < 2) return 0; /* generation 1: never compacted */
    ddp_cstate *st = ddp_xcalloc(1, sizeof *st);
    st->cat_len = e->length;
    k->fstate = st;
    *off = 0;
    *len = DDP_CONTAINER_HEADER_SIZE;
    return 1;
}

static HRESULT prelude_header(rs_ctx *c, uint32_t fmt, rs_cstate *k, ddp_cstate *st, const uint8_t *bytes,
                              uint64_t *off, uint32_t *len)
{
    const ddp_fctx *x = c->fctx[fmt];
    const ddp_catalog_entry *e = ddp_catalog_find(&x->cat, k->kind, (uint32_t)RS_KEY_LOCAL(k->key));
    ddp_container_header h;
    HRESULT hr = ddp_container_header_decode(bytes, &h);
    if (FAILED(hr)) return ddp_fail(DDP_E_FILE_CORRUPT, "%s: container header: %s", k->path, ddp_error_detail());
    if (!e || h.kind != k->kind || h.id != e->id || h.generation != e->generation ||
        memcmp(h.store_id, x->id.store_id, DDP_STORE_ID_SIZE) != 0)
        return ddp_fail(DDP_E_FILE_CORRUPT,
                        "%s: its header names container %u of kind %u, generation %u (of this store: %s), not the "
                        "one the catalog names",
                        k->path, h.id, h.kind, h.generation,
                        memcmp(h.store_id, x->id.store_id, DDP_STORE_ID_SIZE) == 0 ? "yes" : "no");
    if (h.redirect_len == 0) { /* version 1 at generation >= 2: gc emptied it (no record is left) */
        st->emptied = 1;
        st->have = 1;
        *len = 0;
        return S_OK;
    }
    /* The table, its record header and one record header per entry must fit
     * in the container (the decoder bounds redirect_len by 2^28 too). */
    uint64_t n = h.redirect_len / DDP_REDIRECT_ENTRY_SIZE;
    if (h.redirect_len > DDP_REDIRECT_MAX_LEN ||
        DDP_REDIRECT_FIRST_RECORD(h.redirect_len) + n * DDP_RECORD_HEADER_SIZE > st->cat_len)
        return ddp_fail(DDP_E_FILE_CORRUPT,
                        "%s: its header claims a redirection table of %llu bytes, more than its %llu bytes can hold",
                        k->path, (unsigned long long)h.redirect_len, (unsigned long long)st->cat_len);
    st->redirect_len = h.redirect_len;
    *off = DDP_REDIRECT_TABLE_OFFSET;
    *len = (uint32_t)(DDP_RECORD_HEADER_SIZE + h.redirect_len);
    return S_OK;
}

static HRESULT prelude_table(rs_cstate *k, ddp_cstate *st, const uint8_t *bytes)
{
    ddp_record_header h;
    if (FAILED(ddp_record_header_decode(bytes, &h)))
        return ddp_fail(DDP_E_FILE_CORRUPT, "%s: the redirection table's record: %s", k->path, ddp_error_detail());
    const uint8_t *table = bytes + DDP_RECORD_HEADER_SIZE;
    size_t n = (size_t)st->redirect_len;
    if (h.type != DDP_RECORD_REDIRECT || h.codec != 0 || h.stored_len != n || h.logical_len != n)
        return ddp_fail(DDP_E_FILE_CORRUPT,
                        "%s: offset 64 holds no redirection table of %zu bytes (type %u, %u stored bytes)", k->path,
                        n, h.type, h.stored_len);
    uint8_t sum[DDP_HASH_SIZE];
    ddp_sha256(table, n, sum);
    if (ddp_checksum64(table, n) != h.payload_checksum || memcmp(sum, h.hash, DDP_HASH_SIZE) != 0)
        return ddp_fail(DDP_E_FILE_CORRUPT, "%s: the redirection table's checksum or hash does not match", k->path);
    HRESULT hr = ddp_redirect_decode(table, n, st->cat_len, k->path, &st->tab);
    if (FAILED(hr)) return hr;
    st->have = 1;
    return S_OK;
}

static HRESULT ddp_prelude_bytes(rs_ctx *c, uint32_t fmt, rs_cstate *k, const uint8_t *bytes, uint64_t *off,
                                 uint32_t *len)
{
    ddp_cstate *st = k->fstate;
    *len = 0;
    if (!st || st->have) return ddp_fail(DDP_E_UNEXPECTED, "%s: its head was read twice", k->path);
    if (k->pre_off == 0) return prelude_header(c, fmt, k, st, bytes, off, len);
    return prelude_table(k, st, bytes);
}

static HRESULT ddp_place(rs_ctx *c, uint32_t fmt, rs_cstate *k, uint64_t id, uint32_t len, uint64_t *off)
{
    (void)c;
    (void)fmt;
    (void)len;
    const ddp_cstate *st = k->fstate;
    if (!st) { /* generation 1: ids are offsets */
        *off = id;
        return S_OK;
    }
    if (st->emptied)
        return ddp_fail(DDP_E_FILE_CORRUPT, "record %llu of %s: garbage collection removed it (the container is empty)",
                        (unsigned long long)id, k->path);
    if (!st->have) return ddp_fail(DDP_E_UNEXPECTED, "%s: a record placed before its redirection table", k->path);
    return ddp_redirect_resolve(&st->tab, id, k->path, off);
}

static void ddp_cont_release(rs_ctx *c, uint32_t fmt, rs_cstate *k)
{
    (void)c;
    (void)fmt;
    ddp_cstate *st = k->fstate;
    if (!st) return;
    ddp_redirect_free(&st->tab);
    free(st);
    k->fstate = NULL;
}

/* ---- stream maps ---- */

/* Take the decoded stream map (n bytes at buf) for file i. */
static void accept_map(rs_ctx *c, uint32_t i, const uint8_t *buf, size_t n, const char *where)
{
    ddp_fctx *x = c->fctx[c->files[i].fmt];
    ddp_fstate *s = fs_of(c, i);
    HRESULT hr = ddp_streammap_decode(buf, n, &s->map);
    if (FAILED(hr)) {
        ddp_streammap_free(&s->map);
        rs_file_fail(c, i, ddp_fail(DDP_E_FILE_CORRUPT, "stream map at %s: %s", where, ddp_error_detail()));
        return;
    }
    if (s->map.file_size != s->stub.file_size || memcmp(s->map.file_hash, s->stub.file_hash, DDP_HASH_SIZE) != 0) {
        rs_file_fail(c, i, ddp_fail(DDP_E_FILE_CORRUPT, "stream map at %s does not describe the file the stub names",
                                    where));
        return;
    }
    for (uint32_t k = 0; k < s->map.count; k++) {
        const ddp_chunk_loc *l = &s->map.entries[k].loc;
        if (!ddp_catalog_find(&x->cat, DDP_KIND_DATA, l->container)) {
            rs_file_fail(c, i, ddp_fail(DDP_E_PATH_NOT_FOUND, "data container %u (chunk %u) is not in the backup's catalog",
                                        l->container, k));
            return;
        }
        if (l->offset > RS_OFF_END - DDP_RECORD_HEADER_SIZE - l->stored_len) {
            rs_file_fail(c, i, ddp_fail(DDP_E_FILE_CORRUPT, "stream map at %s: chunk %u lies past any possible offset",
                                        where, k));
            return;
        }
    }
    ddp_streammap_index(&s->map);
    rs_file_mapped(c, i, s->map.count);
}

/* The header of record r (bytes): a record of the given type that fills r
 * exactly and decodes to at most max_logical bytes, else r fails (every file
 * that uses it, the detail naming where and "not the <what>") and 0 is
 * returned. */
static int record_header(rs_ctx *c, rs_phase *ph, rs_record *r, const uint8_t *bytes, uint16_t type,
                         uint32_t max_logical, const char *what, const char *where, ddp_record_header *h)
{
    if (FAILED(ddp_record_header_decode(bytes, h))) {
        rs_record_fail(c, ph, r, ddp_fail(DDP_E_FILE_CORRUPT, "%s: %s", where, ddp_error_detail()));
        return 0;
    }
    if (h->type != type || (uint64_t)h->stored_len + DDP_RECORD_HEADER_SIZE != r->len || h->logical_len > max_logical) {
        rs_record_fail(c, ph, r, ddp_fail(DDP_E_FILE_CORRUPT, "%s: not the %s (type %u, %u stored bytes)", where, what,
                                          h->type, h->stored_len));
        return 0;
    }
    return 1;
}

static void ddp_stream_record(rs_ctx *c, rs_phase *ph, rs_record *r, const uint8_t *bytes)
{
    char where[160];
    snprintf(where, sizeof where, "offset %llu of %s", (unsigned long long)r->off, ph->conts[r->cont].st->path);
    ddp_record_header h;
    if (!record_header(c, ph, r, bytes, DDP_RECORD_STREAMMAP, UINT32_MAX, "stream-map record the stub names", where,
                       &h))
        return;
    int wanted = 0;
    for (size_t u = r->use_first; u < r->use_first + r->use_count; u++) {
        uint32_t i = ph->uses[u].file;
        if (!rs_file_pending(c, i)) continue;
        if (memcmp(h.hash, fs_of(c, i)->stub.streammap_hash, DDP_HASH_SIZE) != 0)
            rs_file_fail(c, i, ddp_fail(DDP_E_FILE_CORRUPT, "%s: the stream map's hash differs from the stub's", where));
        else
            wanted = 1;
    }
    if (!wanted) return;
    uint8_t *map = ddp_xmalloc(h.logical_len ? h.logical_len : 1);
    if (FAILED(ddp_record_payload_decode(&h, bytes + DDP_RECORD_HEADER_SIZE, map))) {
        rs_record_fail(c, ph, r, ddp_fail(DDP_E_FILE_CORRUPT, "%s: %s", where, ddp_error_detail()));
    } else {
        for (size_t u = r->use_first; u < r->use_first + r->use_count; u++)
            if (rs_file_pending(c, ph->uses[u].file)) accept_map(c, ph->uses[u].file, map, h.logical_len, where);
    }
    free(map);
}

/* ---- chunks ---- */

static void ddp_chunk_ref(rs_ctx *c, uint32_t i, uint32_t k, rs_chunkref *out)
{
    const ddp_fstate *s = fs_of(c, i);
    const ddp_chunk_loc *l = &s->map.entries[k].loc;
    out->cont = l->container;
    out->rec_off = l->offset;
    out->rec_len = DDP_RECORD_HEADER_SIZE + l->stored_len; /* accept_map bounded it */
    out->file_off = s->map.starts[k];
}

static void ddp_chunk_record(rs_ctx *c, rs_phase *ph, rs_record *r, const uint8_t *bytes)
{
    char where[160];
    snprintf(where, sizeof where, "chunk at offset %llu of %s", (unsigned long long)r->off,
             ph->conts[r->cont].st->path);
    ddp_record_header h;
    if (!record_header(c, ph, r, bytes, DDP_RECORD_CHUNK, RS_CHUNK_MAX, "chunk record the stream map names", where, &h))
        return;
    /* The stream map's hash and length must be the record's; the codec is
     * the record's business (the sha256 of the decoded bytes decides). */
    int wanted = 0;
    for (size_t u = r->use_first; u < r->use_first + r->use_count; u++) {
        uint32_t i = ph->uses[u].file;
        if (!rs_file_pending(c, i)) continue;
        const ddp_streammap_entry *e = &fs_of(c, i)->map.entries[ph->uses[u].entry];
        if (memcmp(e->hash, h.hash, DDP_HASH_SIZE) != 0 || e->loc.logical_len != h.logical_len)
            rs_file_fail(c, i, ddp_fail(DDP_E_FILE_CORRUPT, "%s: the record is not the chunk the stream map names",
                                        where));
        else
            wanted = 1;
    }
    if (!wanted) return;
    if (FAILED(ddp_record_payload_decode(&h, bytes + DDP_RECORD_HEADER_SIZE, c->chunk))) {
        rs_record_fail(c, ph, r, ddp_fail(DDP_E_FILE_CORRUPT, "%s: %s", where, ddp_error_detail()));
        return;
    }
    for (size_t u = r->use_first; u < r->use_first + r->use_count; u++) {
        uint32_t i = ph->uses[u].file;
        if (!rs_file_pending(c, i)) continue;
        uint32_t k = ph->uses[u].entry;
        rs_write_chunk(c, i, k, fs_of(c, i)->map.starts[k], c->chunk, h.logical_len);
    }
}

/* ---- the end ---- */

static const char *ddp_content_problem(rs_ctx *c, uint32_t i)
{
    const ddp_fstate *s = fs_of(c, i);
    ddp_filehash fh;
    ddp_filehash_init(&fh);
    for (uint32_t k = 0; k < s->map.count; k++)
        ddp_filehash_add(&fh, s->map.entries[k].hash, s->map.entries[k].loc.logical_len);
    uint8_t sum[DDP_HASH_SIZE];
    ddp_filehash_final(&fh, sum);
    if (memcmp(sum, s->stub.file_hash, DDP_HASH_SIZE) != 0) return "the content does not match the stub's whole-file hash";
    return NULL;
}

static void ddp_file_release(rs_ctx *c, uint32_t i)
{
    ddp_fstate *s = fs_of(c, i);
    if (s) ddp_streammap_free(&s->map);
}

static void ddp_ctx_free(rs_ctx *c, uint32_t fmt)
{
    ddp_fctx *x = c->fctx[fmt];
    if (!x) return;
    free(x->store_prefix);
    ddp_catalog_free(&x->cat);
    free(x);
    c->fctx[fmt] = NULL;
}

const rs_format rs_format_ddp = {
    .name = "ddp",
    .recognise = ddp_recognise,
    .parse = ddp_parse,
    .prepare = ddp_prepare,
    .container_path = ddpf_container_path,
    .stream_record = ddp_stream_record,
    .chunk_ref = ddp_chunk_ref,
    .chunk_record = ddp_chunk_record,
    .content_problem = ddp_content_problem,
    .prelude_first = ddp_prelude_first,
    .prelude_bytes = ddp_prelude_bytes,
    .place = ddp_place,
    .cont_release = ddp_cont_release,
    .file_release = ddp_file_release,
    .ctx_free = ddp_ctx_free,
};
