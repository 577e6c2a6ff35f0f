/* SPDX-License-Identifier: MIT */
/*
 * windows/winstore.c: the reader of Windows dedup chunk stores
 * (windows/winstore.h): generation discovery, stream-map resolution with
 * the Rrtl fallback, the chunk list, and random-access reads of data chunks.
 */
#include "windows/winstore.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "windows/container.h"
#include "windows/xpress.h"

#define PROBE_LOW 64u  /* generations 1..64 */
#define PROBE_HIGH 4u  /* 0xK0000 + j, K = 1..4 */
#define PROBE_J 16u    /* j = 0..15 */
#define MAX_GENS 256u  /* generations kept per stream container id */
#define STREAM_IDS_MAX 4096u
#define ENTRY_BLOCK 1024u /* entries read per I/O */

int ddp_win_io_not_found(HRESULT hr)
{
    return hr == HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND) || hr == HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND) ||
           hr == DDP_E_PATH_NOT_FOUND || hr == DDP_E_NOT_FOUND;
}

void ddp_win_store_dir(const uint8_t guid[16], char out[DDP_WIN_STORE_DIR_MAX])
{
    char g[39];
    ddp_win_guid_format(guid, g);
    snprintf(out, DDP_WIN_STORE_DIR_MAX, "%s/%s.ddp", DDP_WIN_CHUNKSTORE_DIR, g);
}

char *ddp_win_container_path(const char *store_dir, int stream, uint32_t cid, uint32_t gen)
{
    char name[22];
    ddp_win_ccc_name(cid, gen, name);
    return ddp_xasprintf("%s/%s/%s", store_dir, stream ? "Stream" : "Data", name);
}

/* ---- the store -------------------------------------------------------------------- */

typedef struct stream_id {
    uint32_t cid;
    uint32_t ngens;
    uint32_t gens[MAX_GENS]; /* existing generations, descending */
    /* Rrtl per generation, loaded on first need: items (malloc'd) and count;
     * rrtl_state 0 = not loaded, 1 = loaded, 2 = absent/unusable. */
    uint8_t *rrtl[MAX_GENS];
    uint32_t rrtl_count[MAX_GENS];
    uint8_t rrtl_state[MAX_GENS];
} stream_id;

struct ddp_win_store {
    ddp_win_io io;
    char *dir;
    int has_guid;
    uint8_t guid[16];
    pthread_mutex_t lock;
    stream_id **ids;
    size_t nids;
    ddp_win_store_stats stats;
};

HRESULT ddp_win_store_open(const ddp_win_io *io, const char *store_dir, ddp_win_store **out)
{
    if (!out) return E_POINTER;
    *out = NULL;
    if (!io || !io->read || !store_dir) return ddp_fail(E_INVALIDARG, "Windows chunk store: no I/O or no path");
    ddp_win_store *st = ddp_xcalloc(1, sizeof *st);
    st->io = *io;
    st->dir = ddp_strdup(store_dir);
    size_t len = strlen(st->dir);
    while (len > 1 && st->dir[len - 1] == '/') st->dir[--len] = 0;
    const char *base = strrchr(st->dir, '/');
    base = base ? base + 1 : st->dir;
    if (strlen(base) == 42 && strcasecmp(base + 38, ".ddp") == 0) {
        char g[39];
        memcpy(g, base, 38);
        g[38] = 0;
        if (ddp_win_guid_parse(g, st->guid) == 0) st->has_guid = 1;
    }
    pthread_mutex_init(&st->lock, NULL);
    *out = st;
    return S_OK;
}

void ddp_win_store_close(ddp_win_store *st)
{
    if (!st) return;
    for (size_t i = 0; i < st->nids; i++) {
        for (uint32_t g = 0; g < st->ids[i]->ngens; g++) free(st->ids[i]->rrtl[g]);
        free(st->ids[i]);
    }
    free(st->ids);
    pthread_mutex_destroy(&st->lock);
    free(st->dir);
    free(st);
}

const char *ddp_win_store_path(const ddp_win_store *st) { return st->dir; }

void ddp_win_store_get_stats(ddp_win_store *st, ddp_win_store_stats *out)
{
    pthread_mutex_lock(&st->lock);
    *out = st->stats;
    pthread_mutex_unlock(&st->lock);
}

/* The part of a path after the store directory, for messages. */
static const char *short_name(const ddp_win_store *st, const char *path)
{
    size_t n = strlen(st->dir);
    return strncmp(path, st->dir, n) == 0 && path[n] == '/' ? path + n + 1 : path;
}

/* Read exactly n bytes at off, or fail: a missing file gives DDP_E_PATH_NOT_FOUND,
 * a short file DDP_E_FILE_CORRUPT, other failures pass on. */
static HRESULT read_exact(ddp_win_store *st, const char *path, uint64_t off, void *buf, size_t n, const char *what)
{
    size_t done = 0;
    while (done < n) {
        size_t got = 0;
        HRESULT hr = st->io.read(st->io.ctx, path, off + done, (uint8_t *)buf + done, n - done, &got);
        if (FAILED(hr)) {
            if (ddp_win_io_not_found(hr))
                return ddp_fail(DDP_E_PATH_NOT_FOUND, "%s: container not found", short_name(st, path));
            char d[512];
            snprintf(d, sizeof d, "%s", ddp_error_detail());
            return ddp_fail(hr, "%s @0x%llx: read failed%s%s", short_name(st, path), (unsigned long long)off,
                            d[0] ? ": " : "", d);
        }
        if (got == 0 || got > n - done)
            return ddp_fail(DDP_E_FILE_CORRUPT, "%s: %s at 0x%llx runs past the end of the container (%zu of %zu bytes)",
                            short_name(st, path), what, (unsigned long long)off, done, n);
        done += got;
    }
    return S_OK;
}

/* The store's CRC-64 policy for one record whose stored CRC-64 matched `got`. */
static HRESULT crc_policy(ddp_win_store *st, ddp_win_crc64_conv got, const char *path, uint64_t off, const char *what)
{
    HRESULT hr = S_OK;
    pthread_mutex_lock(&st->lock);
    if (got != DDP_WIN_CRC64_UNKNOWN) {
        if (st->stats.crc64 == DDP_WIN_CRC64_UNKNOWN) st->stats.crc64 = got;
        if (got == st->stats.crc64) st->stats.crc64_verified++;
        else
            hr = ddp_fail(DDP_E_FILE_CORRUPT, "%s @0x%llx: %s CRC-64 in convention %s, the store's other records use %s",
                          short_name(st, path), (unsigned long long)off, what, ddp_win_crc64_name(got),
                          ddp_win_crc64_name(st->stats.crc64));
    } else if (st->stats.crc64 != DDP_WIN_CRC64_UNKNOWN) {
        hr = ddp_fail(DDP_E_FILE_CORRUPT, "%s @0x%llx: %s CRC-64 does not match (convention %s)", short_name(st, path),
                      (unsigned long long)off, what, ddp_win_crc64_name(st->stats.crc64));
    } else {
        st->stats.crc64_unverified++;
    }
    pthread_mutex_unlock(&st->lock);
    return hr;
}

typedef struct list_ctx {
    stream_id *id;
} list_ctx;

static HRESULT list_one(void *cbctx, const char *name)
{
    list_ctx *lc = cbctx;
    uint32_t cid, gen;
    if (!ddp_win_ccc_name_parse(name, &cid, &gen) || cid != lc->id->cid) return S_OK;
    if (lc->id->ngens >= MAX_GENS) return ddp_fail(DDP_E_FILE_CORRUPT, "more than %u generations of stream container %08X", MAX_GENS, cid);
    for (uint32_t i = 0; i < lc->id->ngens; i++)
        if (lc->id->gens[i] == gen) return S_OK; /* same name in another case */
    lc->id->gens[lc->id->ngens++] = gen;
    return S_OK;
}

static int gen_desc(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The generations of stream container cid (found once; the store lock is held). */
static HRESULT find_stream_id(ddp_win_store *st, uint32_t cid, stream_id **out)
{
    for (size_t i = 0; i < st->nids; i++)
        if (st->ids[i]->cid == cid) {
            *out = st->ids[i];
            return S_OK;
        }
    if (st->nids >= STREAM_IDS_MAX) return ddp_fail(DDP_E_FILE_CORRUPT, "more than %u stream container ids", STREAM_IDS_MAX);
    stream_id *id = ddp_xcalloc(1, sizeof *id);
    id->cid = cid;
    HRESULT hr = S_OK;
    if (st->io.list) {
        char *dir = ddp_xasprintf("%s/Stream", st->dir);
        list_ctx lc = { id };
        hr = st->io.list(st->io.ctx, dir, list_one, &lc);
        if (FAILED(hr) && ddp_win_io_not_found(hr)) {
            hr = S_OK; /* no Stream/ at all: no generation */
            id->ngens = 0;
        }
        free(dir);
    } else {
        uint32_t cand[PROBE_LOW + PROBE_HIGH * PROBE_J];
        uint32_t nc = 0;
        for (uint32_t g = 1; g <= PROBE_LOW; g++) cand[nc++] = g;
        for (uint32_t k = 1; k <= PROBE_HIGH; k++)
            for (uint32_t j = 0; j < PROBE_J; j++) cand[nc++] = (k << 16) + j;
        for (uint32_t i = 0; i < nc && SUCCEEDED(hr); i++) {
            char *p = ddp_win_container_path(st->dir, 1, cid, cand[i]);
            uint8_t b[8];
            size_t got = 0;
            st->stats.probes++;
            HRESULT hp = st->io.read(st->io.ctx, p, 0, b, sizeof b, &got);
            if (SUCCEEDED(hp)) id->gens[id->ngens++] = cand[i];
            else if (!ddp_win_io_not_found(hp)) hr = hp;
            free(p);
        }
    }
    if (FAILED(hr)) {
        free(id);
        return hr;
    }
    qsort(id->gens, id->ngens, sizeof id->gens[0], gen_desc);
    st->ids = ddp_xrealloc(st->ids, (st->nids + 1) * sizeof *st->ids);
    st->ids[st->nids++] = id;
    *out = id;
    return S_OK;
}

/* The Rrtl of generation index gi (loaded once; the lock is held). NULL items when unusable. */
static HRESULT load_rrtl(ddp_win_store *st, stream_id *id, uint32_t gi, const char *path)
{
    if (id->rrtl_state[gi]) return S_OK;
    id->rrtl_state[gi] = 2;
    uint8_t h[0x20];
    HRESULT hr = read_exact(st, path, DDP_WIN_RRTL_OFFSET, h, sizeof h, "redirection table");
    ddp_win_rrtl r;
    if (SUCCEEDED(hr)) hr = ddp_win_rrtl_parse(h, sizeof h, short_name(st, path), &r);
    if (FAILED(hr)) return hr;
    uint8_t *items = ddp_xmalloc(8 * (size_t)r.count + 1);
    hr = read_exact(st, path, DDP_WIN_RRTL_ITEMS_AT, items, 8 * (size_t)r.count, "redirection table");
    if (SUCCEEDED(hr)) hr = ddp_win_rrtl_check_sorted(items, r.count, short_name(st, path));
    if (FAILED(hr)) {
        free(items);
        return hr;
    }
    id->rrtl[gi] = items;
    id->rrtl_count[gi] = r.count;
    id->rrtl_state[gi] = 1;
    return S_OK;
}

/* ---- files ---------------------------------------------------------------------------- */

struct ddp_winfile {
    ddp_win_store *st;
    int own_store;
    ddp_win_reparse rp;
    uint64_t size;
    ddp_winfile_chunk *chunks;
    size_t nchunks, cap;
    ddp_winfile_stream streams[DDP_WIN_REPARSE_MAX_ENTRIES];
    size_t nstreams;
    /* The last chunk whose header validated, and the decoded copy of the last compressed chunk. */
    size_t hdr_ok; /* index + 1, 0: none */
    size_t cached; /* index + 1, 0: none */
    uint8_t *cache;   /* DDP_WIN_CHUNK_MAX_LOGICAL bytes */
    uint8_t *scratch; /* a compressed record */
    size_t scratch_cap;
};

/* Free a file's own memory (not its store). */
static void winfile_free(ddp_winfile *f)
{
    free(f->chunks);
    free(f->cache);
    free(f->scratch);
    free(f);
}

/* Does the stream-map record at off validate for entry e? S_OK, or a failure with detail. */
static HRESULT check_smap(ddp_win_store *st, const char *path, uint64_t off, const ddp_win_reparse_entry *e)
{
    uint8_t h[DDP_WIN_SMAP_ENTRIES_AT];
    HRESULT hr = read_exact(st, path, off, h, sizeof h, "stream-map header");
    if (FAILED(hr)) return hr;
    char what[128];
    snprintf(what, sizeof what, "%s @0x%llx", short_name(st, path), (unsigned long long)off);
    ddp_win_smap_hdr sh;
    hr = ddp_win_smap_hdr_parse(h, sizeof h, what, &sh);
    if (FAILED(hr)) return hr;
    if (sh.seq != e->seq) return ddp_fail(DDP_E_FILE_CORRUPT, "%s: stream map seq %u, the reparse point wants %u", what, sh.seq, e->seq);
    if (sh.payload_size != e->smap_size)
        return ddp_fail(DDP_E_FILE_CORRUPT, "%s: stream map of %u bytes, the reparse point says %u", what, sh.payload_size,
                        e->smap_size);
    if (memcmp(sh.hash, e->hash, e->hash_len) != 0)
        return ddp_fail(DDP_E_FILE_CORRUPT, "%s: stream-map hash differs from the reparse point's", what);
    return crc_policy(st, sh.crc, path, off, "stream-map header");
}

static void add_chunk(ddp_winfile *f, const ddp_winfile_chunk *c)
{
    if (f->nchunks == f->cap) {
        f->cap = f->cap ? 2 * f->cap : 64;
        f->chunks = ddp_xrealloc(f->chunks, f->cap * sizeof *f->chunks);
    }
    f->chunks[f->nchunks++] = *c;
}

/* Read and check the entries of the stream map at off (validated) for part e. */
static HRESULT read_entries(ddp_winfile *f, const char *path, uint64_t off, const ddp_win_reparse_entry *e, size_t part)
{
    ddp_win_store *st = f->st;
    uint32_t n = (e->smap_size - 8) / DDP_WIN_SMAP_ENTRY_SIZE;
    uint8_t *blk = ddp_xmalloc((size_t)ENTRY_BLOCK * DDP_WIN_SMAP_ENTRY_SIZE);
    uint64_t at = e->part_begin;
    HRESULT hr = S_OK;
    for (uint32_t i = 0; i < n && SUCCEEDED(hr); i += ENTRY_BLOCK) {
        uint32_t k = n - i < ENTRY_BLOCK ? n - i : ENTRY_BLOCK;
        uint64_t where = off + DDP_WIN_SMAP_ENTRIES_AT + (uint64_t)i * DDP_WIN_SMAP_ENTRY_SIZE;
        hr = read_exact(st, path, where, blk, (size_t)k * DDP_WIN_SMAP_ENTRY_SIZE, "stream-map entries");
        for (uint32_t j = 0; j < k && SUCCEEDED(hr); j++) {
            ddp_win_smap_entry se;
            ddp_win_smap_entry_parse(blk + (size_t)j * DDP_WIN_SMAP_ENTRY_SIZE, &se);
            uint64_t len = se.end - at;
            const char *why = NULL;
            if (se.end <= at) why = "does not end after the previous one";
            else if (se.stored == 0) why = "has a stored size of 0";
            else if (len != se.stored && len > DDP_WIN_CHUNK_MAX_LOGICAL) why = "is compressed but larger than 128 KiB";
            else if (len != se.stored && se.stored > 2 * DDP_WIN_CHUNK_MAX_LOGICAL) why = "has a compressed size over 256 KiB";
            else if (se.end > e->part_end) why = "ends past the part";
            if (why) {
                hr = ddp_fail(DDP_E_FILE_CORRUPT, "%s @0x%llx: stream-map entry %u (part %zu) %s (end %llu, previous %llu, stored %u)",
                              short_name(st, path), (unsigned long long)off, i + j, part, why,
                              (unsigned long long)se.end, (unsigned long long)at, se.stored);
                break;
            }
            ddp_winfile_chunk c = { .begin = at, .end = se.end, .seq = se.seq, .cid = se.cid, .gen = se.gen,
                                    .offset = se.offset, .stored = se.stored };
            memcpy(c.hash, se.hash, 32);
            add_chunk(f, &c);
            at = se.end;
        }
    }
    free(blk);
    if (SUCCEEDED(hr) && at != e->part_end)
        hr = ddp_fail(DDP_E_FILE_CORRUPT, "%s @0x%llx: the stream map's chunks end at %llu, the part at %llu",
                      short_name(st, path), (unsigned long long)off, (unsigned long long)at,
                      (unsigned long long)e->part_end);
    return hr;
}

/* Steps 1-3 for part i. */
static HRESULT resolve_part(ddp_winfile *f, size_t i)
{
    ddp_win_store *st = f->st;
    const ddp_win_reparse_entry *e = &f->rp.entries[i];
    stream_id *id = NULL;
    pthread_mutex_lock(&st->lock);
    HRESULT hr = find_stream_id(st, e->stream_cid, &id);
    pthread_mutex_unlock(&st->lock);
    if (FAILED(hr)) return hr;
    if (id->ngens == 0)
        return ddp_fail(DDP_E_PATH_NOT_FOUND, "Stream/%08X.*.ccc: no stream container %08X in %s%s", e->stream_cid,
                        e->stream_cid, st->dir, st->io.list ? "" : " (probed generations 1-64, 0xK0000-0xK000F for K 1-4)");
    HRESULT first = S_OK;
    ddp_saved_error se;
    for (uint32_t g = 0; g < id->ngens; g++) {
        char *path = ddp_win_container_path(st->dir, 1, e->stream_cid, id->gens[g]);
        uint64_t off = e->offset;
        int redirected = 0;
        hr = check_smap(st, path, off, e);
        if (hr == DDP_E_FILE_CORRUPT) {
            /* A stale offset? Look the seq up in Rrtl. */
            HRESULT hs = hr;
            ddp_saved_error se2;
            ddp_error_save(&se2);
            pthread_mutex_lock(&st->lock);
            HRESULT hl = load_rrtl(st, id, g, path);
            uint32_t newoff = 0;
            int found = SUCCEEDED(hl) && id->rrtl_state[g] == 1 &&
                        ddp_win_rrtl_lookup(id->rrtl[g], id->rrtl_count[g], e->seq, &newoff);
            pthread_mutex_unlock(&st->lock);
            if (found && newoff != off) {
                off = newoff;
                redirected = 1;
                hr = check_smap(st, path, off, e);
            } else {
                hr = ddp_first_error(hs, &se2, hs);
            }
        }
        if (SUCCEEDED(hr)) {
            hr = read_entries(f, path, off, e, i);
            if (SUCCEEDED(hr)) {
                ddp_winfile_stream *s = &f->streams[f->nstreams++];
                s->cid = e->stream_cid;
                s->gen = id->gens[g];
                s->offset = (uint32_t)off;
                s->smap_size = e->smap_size;
                s->redirected = redirected;
                if (redirected) {
                    pthread_mutex_lock(&st->lock);
                    st->stats.redirected++;
                    pthread_mutex_unlock(&st->lock);
                }
            }
            free(path);
            return hr;
        }
        free(path);
        if (g == 0) {
            first = hr;
            ddp_error_save(&se);
        }
        if (hr != DDP_E_FILE_CORRUPT && hr != DDP_E_PATH_NOT_FOUND) return hr; /* an I/O failure: stop */
    }
    /* No generation holds it: report what the highest generation said. */
    return ddp_first_error(first, &se, first);
}

HRESULT ddp_winfile_open_in(ddp_win_store *st, const ddp_win_reparse *rp, ddp_winfile **out)
{
    if (!out) return E_POINTER;
    *out = NULL;
    if (!st || !rp) return ddp_fail(E_INVALIDARG, "Windows file: no store or no reparse point");
    if (rp->nentries == 0 || rp->nentries > DDP_WIN_REPARSE_MAX_ENTRIES)
        return ddp_fail(DDP_E_INVALID_DATA, "dedup reparse point: %u entries", rp->nentries);
    if (st->has_guid && memcmp(st->guid, rp->store_guid, 16) != 0) {
        char g[39];
        ddp_win_guid_format(rp->store_guid, g);
        return ddp_fail(DDP_E_INVALID_DATA, "dedup reparse point: chunk store %s, not the store %s", g, st->dir);
    }
    ddp_winfile *f = ddp_xcalloc(1, sizeof *f);
    f->st = st;
    f->rp = *rp;
    f->size = rp->file_size;
    HRESULT hr = S_OK;
    /* Every part, an empty one (a 0-byte file) too, names a stream map that must validate. */
    for (size_t i = 0; i < rp->nentries && SUCCEEDED(hr); i++) hr = resolve_part(f, i);
    if (FAILED(hr)) {
        winfile_free(f); /* never the store: the caller's */
        return hr;
    }
    *out = f;
    return S_OK;
}

HRESULT ddp_winfile_open(const ddp_win_io *io, const char *store_dir, const ddp_win_reparse *rp, ddp_winfile **out)
{
    if (!out) return E_POINTER;
    *out = NULL;
    if (!rp) return ddp_fail(E_INVALIDARG, "Windows file: no reparse point");
    char dir[DDP_WIN_STORE_DIR_MAX];
    if (!store_dir) {
        ddp_win_store_dir(rp->store_guid, dir);
        store_dir = dir;
    }
    ddp_win_store *st = NULL;
    HRESULT hr = ddp_win_store_open(io, store_dir, &st);
    if (SUCCEEDED(hr)) hr = ddp_winfile_open_in(st, rp, out);
    if (FAILED(hr)) {
        ddp_win_store_close(st);
        return hr;
    }
    (*out)->own_store = 1;
    return S_OK;
}

void ddp_winfile_close(ddp_winfile *f)
{
    if (!f) return;
    if (f->own_store) ddp_win_store_close(f->st);
    winfile_free(f);
}

uint64_t ddp_winfile_size(const ddp_winfile *f) { return f->size; }
size_t ddp_winfile_nchunks(const ddp_winfile *f) { return f->nchunks; }
const ddp_winfile_chunk *ddp_winfile_chunks(const ddp_winfile *f) { return f->chunks; }
size_t ddp_winfile_nstreams(const ddp_winfile *f) { return f->nstreams; }
const ddp_winfile_stream *ddp_winfile_streams(const ddp_winfile *f) { return f->streams; }

/* Check the data Ckhr of chunk ci (88 bytes at h). */
static HRESULT check_data_hdr(ddp_winfile *f, size_t ci, const uint8_t *h, const char *path)
{
    const ddp_winfile_chunk *c = &f->chunks[ci];
    char what[128];
    snprintf(what, sizeof what, "%s @0x%x", short_name(f->st, path), c->offset);
    ddp_win_data_hdr dh;
    HRESULT hr = ddp_win_data_hdr_parse(h, DDP_WIN_DATA_HDR_SIZE, what, &dh);
    if (FAILED(hr)) return hr;
    if (dh.seq != c->seq)
        return ddp_fail(DDP_E_FILE_CORRUPT, "%s: chunk seq %u, the stream map wants %u (chunk %zu)", what, dh.seq, c->seq, ci);
    if (dh.payload_size != c->stored)
        return ddp_fail(DDP_E_FILE_CORRUPT, "%s: chunk payload %u bytes, the stream map says %u (chunk %zu)", what,
                        dh.payload_size, c->stored, ci);
    if (memcmp(dh.hash, c->hash, 32) != 0)
        return ddp_fail(DDP_E_FILE_CORRUPT, "%s: chunk hash differs from the stream map's (chunk %zu)", what, ci);
    return crc_policy(f->st, dh.crc, path, c->offset, "data chunk header");
}

/* Decode compressed chunk ci into dst (its logical size), or into f->cache
 * (then remembered as cached) when dst is NULL. */
static HRESULT load_compressed(ddp_winfile *f, size_t ci, const char *path, uint8_t *dst)
{
    const ddp_winfile_chunk *c = &f->chunks[ci];
    size_t need = DDP_WIN_DATA_HDR_SIZE + (size_t)c->stored;
    if (f->scratch_cap < need) {
        free(f->scratch);
        f->scratch = ddp_xmalloc(need);
        f->scratch_cap = need;
    }
    if (!f->cache) f->cache = ddp_xmalloc(DDP_WIN_CHUNK_MAX_LOGICAL);
    if (!dst) f->cached = 0; /* the cache is being overwritten */
    HRESULT hr = read_exact(f->st, path, c->offset, f->scratch, need, "data chunk");
    if (SUCCEEDED(hr)) hr = check_data_hdr(f, ci, f->scratch, path);
    if (FAILED(hr)) return hr;
    char what[160];
    snprintf(what, sizeof what, "%s @0x%x (chunk %zu, compression %u)", short_name(f->st, path), c->offset, ci,
             ddp_get_le32(f->scratch + 0x20));
    hr = ddp_win_xpress_decode(f->scratch + DDP_WIN_DATA_HDR_SIZE, c->stored, dst ? dst : f->cache,
                               (size_t)(c->end - c->begin), what);
    if (FAILED(hr)) return hr;
    if (!dst) f->cached = ci + 1;
    return S_OK;
}

HRESULT ddp_winfile_pread(ddp_winfile *f, void *buf, size_t n, uint64_t off, size_t *got)
{
    if (!got) return E_POINTER;
    *got = 0;
    if (!f || (!buf && n)) return E_INVALIDARG;
    if (off >= f->size || n == 0) return S_OK;
    if (n > f->size - off) n = (size_t)(f->size - off);
    /* The first chunk whose end is past off. */
    size_t lo = 0, hi = f->nchunks;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (f->chunks[mid].end <= off) lo = mid + 1;
        else hi = mid;
    }
    size_t done = 0;
    HRESULT hr = S_OK;
    for (size_t ci = lo; done < n && SUCCEEDED(hr); ci++) {
        if (ci >= f->nchunks)
            return ddp_fail(DDP_E_FILE_CORRUPT, "Windows file: no chunk covers byte %llu", (unsigned long long)(off + done));
        const ddp_winfile_chunk *c = &f->chunks[ci];
        uint64_t pos = off + done;
        size_t within = (size_t)(pos - c->begin);
        size_t take = (size_t)(c->end - pos);
        if (take > n - done) take = n - done;
        char *path = ddp_win_container_path(f->st->dir, 0, c->cid, c->gen);
        if (c->stored == c->end - c->begin) {
            if (f->hdr_ok != ci + 1) {
                uint8_t h[DDP_WIN_DATA_HDR_SIZE];
                hr = read_exact(f->st, path, c->offset, h, sizeof h, "data chunk header");
                if (SUCCEEDED(hr)) hr = check_data_hdr(f, ci, h, path);
                if (SUCCEEDED(hr)) f->hdr_ok = ci + 1;
            }
            if (SUCCEEDED(hr))
                hr = read_exact(f->st, path, (uint64_t)c->offset + DDP_WIN_DATA_HDR_SIZE + within, (uint8_t *)buf + done, take,
                                "data chunk payload");
        } else if (within == 0 && take == c->end - c->begin && f->cached != ci + 1) {
            /* The whole chunk is wanted: decode straight into the caller's buffer. */
            hr = load_compressed(f, ci, path, (uint8_t *)buf + done);
        } else {
            if (f->cached != ci + 1) hr = load_compressed(f, ci, path, NULL);
            if (SUCCEEDED(hr)) memcpy((uint8_t *)buf + done, f->cache + within, take);
        }
        free(path);
        done += take;
    }
    if (FAILED(hr)) return hr;
    *got = done;
    return S_OK;
}
