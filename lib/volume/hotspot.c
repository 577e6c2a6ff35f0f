/* SPDX-License-Identifier: MIT */
/*
 * hotspot.c: second copies of hot chunks (Windows: the hotspot container).
 *
 * A chunk that many files reference is a single point of failure for all of
 * them. When a chunk is referenced at least hotspot_threshold times (setting,
 * default 100 as on Windows), a byte-identical copy of its record (same
 * header, same stored payload) is appended to a container in Hotspot/
 * (container kind 3). Scrubbing mends a damaged chunk from its copy
 * (scrub.c), and a read whose primary record fails its checks falls back
 * to a copy (chunkread.c). Nothing references a copy by location, so the catalog does not list hotspot
 * containers: they are found by name in Hotspot/ (maintenance.h). Garbage
 * collection retires a copy once no stream map references its hash.
 *
 * Reference counts. The index keeps none, so they are counted here, over the
 * stream-map records of the Stream/ containers (every entry of every stream
 * map that is not DEAD adds one reference to its (data container, local id)).
 * That reads only the stream-map containers, which are small next to the
 * data (56 bytes per chunk reference), and needs no walk of the volume. Stream
 * maps of files deleted since the last garbage collection still count until
 * it retires them: at worst a chunk gets a copy a little early. Memory: 8
 * bytes per chunk reference while counting.
 *
 * Cheap when nothing changed: State/hotspot.stamp records the threshold and
 * the (id, generation, size) of every stream-map and hotspot container after
 * the last run; an unchanged stamp means no new reference and no lost copy,
 * and the call returns S_FALSE after one directory listing and a few stats.
 * New references only come from the optimization job (whose stream-map
 * containers then grow), so counting happens once per job that optimized a
 * file, and after a threshold change.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/catalog.h"
#include "store/storewalk.h"
#include "volume/maintenance.h"
#include "store/streammap.h"
#include "base/util.h"
#include "volume/volume.h"

#define STAMP_FILE "hotspot.stamp"
#define STAMP_MAX ((size_t)1 << 24)

/* "threshold N\n" + one line per stream-map and hotspot container. */
static char *make_stamp(const ddp_mstore *ms, uint32_t threshold)
{
    size_t cap = 64 + ms->n * 48, len = 0;
    char *s = ddp_xmalloc(cap);
    len += (size_t)snprintf(s + len, cap - len, "threshold %u\n", threshold);
    for (size_t i = 0; i < ms->n; i++) {
        const ddp_mcont *c = &ms->c[i];
        if (c->kind != DDP_KIND_STREAM && c->kind != DDP_KIND_HOTSPOT) continue;
        struct stat sb;
        long long size = stat(c->path, &sb) == 0 ? (long long)sb.st_size : -1;
        len += (size_t)snprintf(s + len, cap - len, "%u %u %u %lld\n", c->kind, c->id, c->generation, size);
    }
    return s;
}

static int stamp_matches(const char *path, const char *stamp)
{
    uint8_t *buf = NULL;
    size_t n = 0;
    if (FAILED(ddp_read_file(path, STAMP_MAX, &buf, &n))) {
        ddp_clear_error();
        return 0;
    }
    int same = n == strlen(stamp) && memcmp(buf, stamp, n) == 0;
    free(buf);
    return same;
}

typedef struct map_list {
    ddp_offvec offs;
} map_list;

static int map_found(void *ctx, const ddp_record_header *h, uint64_t off)
{
    map_list *l = ctx;
    if (h->type == DDP_RECORD_STREAMMAP) ddp_offvec_push(&l->offs, off);
    return 0;
}

/* Add one reference per stream-map entry to the data containers' vectors. */
static HRESULT count_references(ddp_mstore *ms)
{
    for (size_t i = 0; i < ms->n; i++)
        if (ms->c[i].kind == DDP_KIND_DATA) ms->c[i].offs.keep_dups = 1;
    for (size_t i = 0; i < ms->n; i++) {
        ddp_mcont *c = &ms->c[i];
        if (c->kind != DDP_KIND_STREAM) continue;
        int fd;
        if (FAILED(ddp_mcont_open(ms, c, O_RDONLY, &fd))) {
            ddp_clear_error(); /* damaged: its maps are not counted (scrub reports it) */
            continue;
        }
        struct stat sb;
        HRESULT hr = fstat(fd, &sb) == 0 ? S_OK : ddp_fail_errno(errno, "%s", c->path);
        map_list l;
        memset(&l, 0, sizeof l);
        l.offs.keep_dups = 1;
        uint64_t stop;
        const char *why;
        if (SUCCEEDED(hr)) hr = ddp_walk_headers(fd, c->path, (uint64_t)sb.st_size, map_found, &l, &stop, &why);
        for (size_t k = 0; SUCCEEDED(hr) && k < l.offs.n; k++) {
            ddp_record_header h;
            uint8_t *rec = NULL;
            if (FAILED(ddp_read_raw_record(fd, c->path, l.offs.v[k], &h, &rec))) {
                ddp_clear_error();
                continue;
            }
            ddp_streammap m;
            ddp_streammap_init(&m);
            /* Stream maps are stored raw: the payload is the map. */
            if (SUCCEEDED(ddp_streammap_decode(rec + DDP_RECORD_HEADER_SIZE, h.logical_len, &m))) {
                for (uint32_t j = 0; j < m.count; j++) {
                    ddp_mcont *dc = ddp_mstore_find(ms, DDP_KIND_DATA, m.entries[j].loc.container);
                    if (dc) ddp_offvec_push(&dc->offs, m.entries[j].loc.offset);
                }
            }
            ddp_clear_error();
            ddp_streammap_free(&m);
            free(rec);
        }
        ddp_offvec_free(&l.offs);
        close(fd);
        if (FAILED(hr)) return hr;
    }
    return S_OK;
}

/* Appending copies to the newest hotspot container, rolling at the limit. */
typedef struct hot_writer {
    ddp_volume *v;
    const ddp_mstore *ms;
    ddp_container_writer *w;
    uint32_t next_id;
    uint64_t limit;
} hot_writer;

static HRESULT hot_create(hot_writer *hw)
{
    for (int tries = 0; tries < 1000; tries++) {
        uint32_t id = hw->next_id++;
        char rel[40];
        ddp_container_relpath(DDP_KIND_HOTSPOT, id, 1, rel);
        char *path = ddp_path_join(hw->ms->store_dir, rel);
        ddp_container_header h;
        memset(&h, 0, sizeof h);
        h.kind = DDP_KIND_HOTSPOT;
        memcpy(h.store_id, hw->v->id.store_id, DDP_STORE_ID_SIZE);
        h.id = id;
        h.generation = 1;
        h.created = (uint64_t)time(NULL);
        HRESULT hr = ddp_container_create(path, &h, &hw->w);
        free(path);
        if (hr != HRESULT_FROM_WIN32(ERROR_ALREADY_EXISTS) && hr != HRESULT_FROM_WIN32(ERROR_FILE_EXISTS)) return hr;
    }
    return ddp_fail(DDP_E_INVALID_STATE, "no free hotspot container name in %s/Hotspot", hw->ms->store_dir);
}

static HRESULT hot_append(hot_writer *hw, ddp_record_header *h, const uint8_t *payload)
{
    uint64_t need = DDP_RECORD_HEADER_SIZE + (uint64_t)h->stored_len;
    HRESULT hr = S_OK;
    if (!hw->w) {
        /* The newest hotspot container, if it has room; else a new one. */
        const ddp_mcont *newest = NULL;
        for (size_t i = 0; i < hw->ms->n; i++)
            if (hw->ms->c[i].kind == DDP_KIND_HOTSPOT) newest = &hw->ms->c[i];
        hw->next_id = newest ? newest->id + 1 : 1;
        if (newest) {
            hr = ddp_container_open_append(newest->path, 0, NULL, NULL, &hw->w);
            if (FAILED(hr)) {
                ddp_clear_error(); /* damaged or foreign: start a new one (below) */
                hw->w = NULL;
            } else if (ddp_container_is_sealed(hw->w)) {
                ddp_container_close(hw->w);
                hw->w = NULL;
            }
        }
        if (!hw->w && FAILED(hr = hot_create(hw))) return hr;
    }
    uint64_t size = ddp_container_size(hw->w);
    if (size > DDP_CONTAINER_HEADER_SIZE && size + need > hw->limit) {
        hr = ddp_container_seal(hw->w);
        ddp_container_close(hw->w);
        hw->w = NULL;
        if (FAILED(hr) || FAILED(hr = hot_create(hw))) return hr;
    }
    uint64_t off;
    return ddp_container_append(hw->w, h, payload, &off);
}

DDP_API HRESULT ddp_hotspot_update(ddp_volume *v)
{
    if (!v) return E_POINTER;
    HRESULT jr = ddp_volume_require_job(v);
    if (FAILED(jr)) return jr;
    uint32_t threshold = v->settings.hotspot_threshold;
    char *stamp_path = ddp_path_join(v->state_dir, STAMP_FILE);
    ddp_mstore ms;
    HRESULT hr = ddp_mstore_load(v->store_dir, v->id.store_id, &ms);
    if (FAILED(hr)) {
        free(stamp_path);
        return hr;
    }
    char *stamp = make_stamp(&ms, threshold);
    if (stamp_matches(stamp_path, stamp)) {
        free(stamp);
        free(stamp_path);
        ddp_mstore_free(&ms);
        return S_FALSE;
    }
    free(stamp);
    stamp = NULL;

    ddp_hotset hs;
    memset(&hs, 0, sizeof hs);
    hot_writer hw;
    memset(&hw, 0, sizeof hw);
    hw.v = v;
    hw.ms = &ms;
    hw.limit = v->settings.container_size_limit;
    uint8_t(*added)[DDP_HASH_SIZE] = NULL;
    size_t nadded = 0, added_cap = 0;
    hr = count_references(&ms);
    if (SUCCEEDED(hr)) hr = ddp_hotset_load(&ms, &hs);
    for (size_t i = 0; SUCCEEDED(hr) && i < ms.n; i++) {
        ddp_mcont *c = &ms.c[i];
        if (c->kind != DDP_KIND_DATA || c->offs.n < threshold) continue;
        ddp_offvec_finish(&c->offs);
        int fd = -1;
        for (size_t a = 0; SUCCEEDED(hr) && a < c->offs.n;) {
            size_t b = a;
            while (b < c->offs.n && c->offs.v[b] == c->offs.v[a]) b++;
            uint64_t off = c->offs.v[a], refs = b - a;
            a = b;
            if (refs < threshold) continue;
            if (fd < 0 && FAILED(ddp_mcont_open(&ms, c, O_RDONLY, &fd))) {
                ddp_clear_error();
                break; /* a damaged container gets no copies; scrub reports it */
            }
            ddp_record_header h;
            uint8_t *rec = NULL;
            uint64_t at = 0; /* off is the chunk's local id: where it lies in this generation */
            if (FAILED(ddp_mcont_resolve(c, off, &at)) || FAILED(ddp_read_raw_record(fd, c->path, at, &h, &rec))) {
                ddp_clear_error(); /* a damaged chunk is not copied (that would copy the damage) */
                continue;
            }
            int have = h.type != DDP_RECORD_CHUNK || ddp_hotset_find(&hs, h.hash) != NULL;
            for (size_t k = 0; !have && k < nadded; k++) have = memcmp(added[k], h.hash, DDP_HASH_SIZE) == 0;
            if (!have) {
                hr = hot_append(&hw, &h, rec + DDP_RECORD_HEADER_SIZE);
                if (SUCCEEDED(hr)) {
                    if (nadded == added_cap) {
                        added_cap = added_cap ? added_cap * 2 : 16;
                        added = ddp_xrealloc(added, added_cap * sizeof *added);
                    }
                    memcpy(added[nadded++], h.hash, DDP_HASH_SIZE);
                }
            }
            free(rec);
        }
        if (fd >= 0) close(fd);
        ddp_offvec_free(&c->offs);
    }
    if (hw.w) {
        HRESULT hs_ = ddp_container_sync(hw.w);
        if (SUCCEEDED(hr)) hr = hs_;
        ddp_container_close(hw.w);
    }
    ddp_hotset_free(&hs);
    free(added);
    ddp_mstore_free(&ms);

    /* The stamp of the state now (the copies are durable). */
    if (SUCCEEDED(hr) && SUCCEEDED(hr = ddp_mstore_load(v->store_dir, v->id.store_id, &ms))) {
        stamp = make_stamp(&ms, threshold);
        hr = ddp_write_file_atomic(stamp_path, stamp, strlen(stamp), 0600);
        free(stamp);
        ddp_mstore_free(&ms);
    }
    free(stamp_path);
    if (SUCCEEDED(hr) && nadded) {
        char line[128];
        snprintf(line, sizeof line, "hotspot 0x%08X copies=%zu", (unsigned)hr, nadded);
        ddp_volume_log_job(v, line);
    }
    return hr;
}
