/* SPDX-License-Identifier: MIT */
/*
 * chunkread.c: reading an optimized file's data, shared by ddp_file_*
 * (file.c) and the mount (programs/mount/), so that `ddp cat`, the
 * library and the mount check exactly the same things.
 *
 * The stream map: read by the stub's location, its record's hash equal to
 * the stub's map hash, and the map's size and whole-file hash equal to the
 * stub's. The stub's MAC vouches for those, so every chunk hash in the map
 * is the hash of the bytes the file had.
 *
 * A chunk: its primary record (the stream map's location), read by the
 * chunk store, which checks the header checksum and limits, the type, the
 * hash and the length against the map, the payload checksum, the decoding
 * and the SHA-256 of the decoded bytes. When any of that fails, the chunk's
 * hotspot copies (Hotspot/, docs/MAINTENANCE.md) are the fallback: a copy
 * with the same hash is read and verified the same way (its container's
 * header must name this store and that container; the record must be a chunk
 * with the map's hash and length; payload checksum, decoding, SHA-256 of the
 * decoded bytes equal to the map's hash). A copy can therefore only ever
 * serve the exact bytes the primary held; a forged or damaged copy fails
 * like a damaged primary. When no copy serves, the read fails with the
 * primary's error, and the detail says what became of the copies.
 *
 * Hotspot copies are not in the catalog and nothing references them by
 * location: they are found by hash, by walking the record headers of the
 * hotspot containers (maintenance.h). That walk happens only when a primary
 * fails; its result is kept, and walked again when a hash is not in it and
 * the last walk is over a second old (a job may have added copies since).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

#include "store/catalog.h"
#include "store/chunker.h"
#include "store/chunkread.h"
#include "store/container.h"
#include "store/storewalk.h"
#include "base/util.h"

#define RELOAD_NS 1000000000LL   /* look for new copies at most once a second */

struct ddp_chunkreader {
    ddp_chunkstore *cs;
    char *store_dir;
    uint8_t store_id[DDP_STORE_ID_SIZE];
    pthread_mutex_t mu;          /* the copies below */
    int loaded;
    int64_t loaded_at;           /* CLOCK_MONOTONIC, ns */
    ddp_mstore ms;
    ddp_hotset hs;
};

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

HRESULT ddp_chunkreader_open(ddp_chunkstore *cs, const char *store_dir, const uint8_t store_id[DDP_STORE_ID_SIZE],
                             ddp_chunkreader **out)
{
    if (!cs || !store_dir || !out) return E_POINTER;
    *out = NULL;
    ddp_chunkreader *r = ddp_xcalloc(1, sizeof *r);
    r->cs = cs;
    r->store_dir = ddp_strdup(store_dir);
    memcpy(r->store_id, store_id, DDP_STORE_ID_SIZE);
    pthread_mutex_init(&r->mu, NULL);
    *out = r;
    return S_OK;
}

static void forget_copies(ddp_chunkreader *r)
{
    if (!r->loaded) return;
    ddp_hotset_free(&r->hs);
    ddp_mstore_free(&r->ms);
    r->loaded = 0;
}

void ddp_chunkreader_close(ddp_chunkreader *r)
{
    if (!r) return;
    forget_copies(r);
    pthread_mutex_destroy(&r->mu);
    free(r->store_dir);
    free(r);
}

HRESULT ddp_chunkreader_map(ddp_chunkreader *r, const ddp_stub *s, const char *path, ddp_streammap *m)
{
    if (!r || !s || !m) return E_POINTER;
    const char *name = path ? path : "?";
    HRESULT hr = ddp_chunkstore_read_streammap(r->cs, s->stream_container, s->stream_offset, s->streammap_hash, m);
    if (FAILED(hr)) {
        char inner[1024];
        snprintf(inner, sizeof inner, "%s", ddp_error_detail());
        return ddp_fail(hr, "%s: stream map (container %u, offset %llu): %s", name, s->stream_container,
                        (unsigned long long)s->stream_offset, inner);
    }
    if (m->file_size != s->file_size || memcmp(m->file_hash, s->file_hash, DDP_HASH_SIZE) != 0) {
        ddp_streammap_free(m);
        return ddp_fail(DDP_E_FILE_CORRUPT, "%s: the stream map does not match the stub", name);
    }
    ddp_streammap_index(m);
    return S_OK;
}

/* (r->mu held) Walk the hotspot containers again. */
static HRESULT load_copies(ddp_chunkreader *r)
{
    forget_copies(r);
    HRESULT hr = ddp_mstore_load(r->store_dir, r->store_id, &r->ms);
    if (FAILED(hr)) return hr;
    hr = ddp_hotset_load(&r->ms, &r->hs);
    if (FAILED(hr)) {
        ddp_mstore_free(&r->ms);
        return hr;
    }
    r->loaded = 1;
    r->loaded_at = now_ns();
    return S_OK;
}

/* (r->mu held) Read and verify copy c of e into out. */
static HRESULT read_copy(ddp_chunkreader *r, const ddp_hotrec *c, const ddp_streammap_entry *e, void *out)
{
    ddp_mcont *mc = ddp_mstore_find(&r->ms, DDP_KIND_HOTSPOT, c->id);
    if (!mc) return ddp_fail(DDP_E_FILE_CORRUPT, "hotspot container %u is gone", c->id);
    int fd;
    HRESULT hr = ddp_mcont_open(&r->ms, mc, O_RDONLY, &fd);
    if (FAILED(hr)) return hr;
    ddp_record_header h;
    hr = ddp_container_read_record_into(fd, mc->path, c->off, DDP_RECORD_CHUNK, e->hash, &h, out, e->loc.logical_len);
    close(fd);
    return hr;
}

/* (r->mu held) The first intact copy of e into out: S_OK with the copy's
 * place in *from, S_FALSE when there is no copy, or the last copy's error. */
static HRESULT try_copies(ddp_chunkreader *r, const ddp_streammap_entry *e, void *out, ddp_chunk_origin *from)
{
    const ddp_hotrec *first = ddp_hotset_find(&r->hs, e->hash);
    HRESULT last = S_FALSE;
    for (const ddp_hotrec *c = first; c && c < r->hs.r + r->hs.n && !memcmp(c->hash, e->hash, DDP_HASH_SIZE); c++) {
        last = read_copy(r, c, e, out);
        if (SUCCEEDED(last)) {
            from->copy = 1;
            from->copy_container = c->id;
            from->copy_offset = c->off;
            return S_OK;
        }
    }
    return last;
}

HRESULT ddp_chunkreader_read(ddp_chunkreader *r, const ddp_streammap_entry *e, void *out, ddp_chunk_origin *from)
{
    ddp_chunk_origin scratch;
    if (!from) from = &scratch;
    from->copy = 0;
    from->copy_container = 0;
    from->copy_offset = 0;
    from->primary_error[0] = '\0';
    if (!r || !e || !out) return E_POINTER;
    if (e->loc.logical_len == 0 || e->loc.logical_len > DDP_CHUNK_MAX)
        return ddp_fail(DDP_E_FILE_CORRUPT, "chunk length %u is out of range", e->loc.logical_len);
    HRESULT primary = ddp_chunkstore_read_chunk(r->cs, &e->loc, e->hash, out);
    if (SUCCEEDED(primary)) return S_OK;
    if (primary == E_OUTOFMEMORY) return primary;
    snprintf(from->primary_error, sizeof from->primary_error, "%s",
             *ddp_error_detail() ? ddp_error_detail() : ddp_strerror(primary));

    /* The fallback: the chunk's hotspot copies. */
    pthread_mutex_lock(&r->mu);
    HRESULT hr = S_OK, copy = S_FALSE;
    int fresh = 0;
    if (!r->loaded || now_ns() - r->loaded_at >= RELOAD_NS) {
        hr = load_copies(r);
        fresh = 1;
    }
    if (SUCCEEDED(hr)) {
        copy = try_copies(r, e, out, from);
        if (FAILED(copy) || copy == S_FALSE) {
            /* Not found, or every copy failed: a job may have added or
             * mended one since the last walk. */
            if (!fresh && now_ns() - r->loaded_at >= RELOAD_NS && SUCCEEDED(hr = load_copies(r)))
                copy = try_copies(r, e, out, from);
        }
    }
    char copies[512];
    if (FAILED(hr)) snprintf(copies, sizeof copies, "the hotspot copies could not be looked up: %s", ddp_error_detail());
    else if (copy == S_FALSE) snprintf(copies, sizeof copies, "no hotspot copy");
    else if (FAILED(copy)) snprintf(copies, sizeof copies, "its hotspot copy failed too: %s", ddp_error_detail());
    pthread_mutex_unlock(&r->mu);
    if (SUCCEEDED(hr) && copy == S_OK) {
        ddp_clear_error();
        return S_OK;
    }
    from->copy = 0;
    return ddp_fail(primary, "%s; %s", from->primary_error, copies);
}
