/* SPDX-License-Identifier: MIT */
/*
 * chunkstore.c: a volume's chunk store (chunkstore.h): the data and
 * stream-map containers, the catalog that lists them, and the chunk index,
 * behind one thread-safe handle.
 *
 * Layout (docs/FORMAT.md): STORE/catalog, STORE/Data/CCCCCCCC.GGGGGGGG.ccc,
 * STORE/Stream/..., STORE/Hotspot/ (reserved), and the index in
 * VOLUME/.ddp/State/index.
 *
 * Writing. One data container and one stream container are open for
 * appending at a time. A put looks the hash up under the store lock; on a
 * miss it compresses outside the lock (so threads compress in parallel), then
 * takes the lock again, re-checks (another thread may have stored the same
 * chunk meanwhile), appends the record (a memcpy into the container's write
 * buffer) and adds it to the index. When a record would take a container past
 * the size limit, the container is sealed (SEAL record + fsync), a new one is
 * created (header + fsync of file and directory) and the catalog is rewritten
 * atomically listing both, all before the first record goes into the new
 * container: a record is never in a container the catalog does not name.
 *
 * Durability is the caller's order: ddp_chunkstore_sync_data() before stream
 * maps that name the chunks are put, ddp_chunkstore_sync_streams() before
 * stubs that name the stream maps are written. A sync writes the buffer under
 * the lock, then fsyncs a dup() of the descriptor outside it, so puts from
 * other threads go on during the fsync. A failed write or fsync makes that
 * kind of container refuse all later puts and syncs (sticky): after an fsync
 * error the kernel may have dropped the pages, and a later fsync that
 * "succeeds" must not be believed.
 *
 * The index names only durable records: a checkpoint (explicit, at close, or
 * automatic when the in-memory delta grows large) first fsyncs the data
 * container, then records for each data container how far the index covers
 * it. On a writable open the index is loaded and checked against the catalog
 * (a missing, damaged or inconsistent index is rebuilt from the containers);
 * records past each container's covered length are indexed by walking from
 * there; the newest unsealed containers are re-opened for appending, which
 * cuts a torn tail left by a crash. A container that turns out to be sealed,
 * damaged in the middle, or whose header names another container or store,
 * gets no more appends (and a foreign one is not indexed): the catalog marks
 * it sealed and a new container is started. New containers are created
 * lazily, by the first put that needs one, so a job that stores nothing
 * leaves no empty container behind.
 *
 * Reading is chunkstore_read.c's (the descriptor cache, the translation of
 * local ids through each generation's redirection table). The index and its
 * rebuild name local ids too; gc deletes the index before it switches a
 * container to a new generation, so it is rebuilt afterwards. A chunk that is
 * still in the active container's write buffer is written out first (checked
 * without the lock through two atomics that publish the active container id
 * and how much of it is in the file: ddp_cs_ensure_flushed).
 *
 * Locks: `lock` guards the catalog, the index and the writers; `fdlock`
 * guards the descriptor cache. They are never held together.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/catalog.h"
#include "store/chunkstore.h"
#include "base/codec.h"
#include "store/container.h"
#include "store/index.h"
#include "store/redirect.h"
#include "store/chunkstore_internal.h"
#include "base/util.h"

const char *ddp_cs_kind_name(uint32_t kind)
{
    return kind == DDP_KIND_DATA ? "data" : kind == DDP_KIND_STREAM ? "stream" : "hotspot";
}

char *ddp_cs_container_file(const ddp_chunkstore *cs, uint32_t kind, uint32_t id, uint32_t generation)
{
    char rel[40];
    ddp_container_relpath(kind, id, generation, rel);
    return ddp_path_join(cs->store_dir, rel);
}

int64_t ddp_cs_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------- catalog */

HRESULT ddp_cs_catalog_read(const char *path, const uint8_t *store_id, ddp_catalog *cat)
{
    uint8_t *buf = NULL;
    size_t n = 0;
    HRESULT hr = ddp_read_file(path, CATALOG_MAX_BYTES, &buf, &n);
    if (FAILED(hr)) return hr;
    hr = ddp_catalog_decode(buf, n, cat);
    free(buf);
    if (FAILED(hr)) {
        char inner[1024];
        snprintf(inner, sizeof inner, "%s", ddp_error_detail());
        return ddp_fail(hr, "%s: %s", path, inner);
    }
    if (store_id && memcmp(cat->store_id, store_id, DDP_STORE_ID_SIZE) != 0) {
        ddp_catalog_free(cat);
        return ddp_fail(DDP_E_INVALID_DATA, "%s: the catalog belongs to another store", path);
    }
    return S_OK;
}

static void catalog_remove(ddp_catalog *c, uint32_t kind, uint32_t id)
{
    ddp_catalog_entry *e = ddp_catalog_find(c, kind, id);
    if (!e) return;
    size_t i = (size_t)(e - c->entries);
    memmove(e, e + 1, (c->count - i - 1) * sizeof *e);
    c->count--;
}

/* The newest (largest id) entry of kind, or NULL. */
static ddp_catalog_entry *catalog_newest(const ddp_catalog *c, uint32_t kind)
{
    ddp_catalog_entry *best = NULL;
    for (uint32_t i = 0; i < c->count; i++)
        if (c->entries[i].kind == kind && (!best || c->entries[i].id > best->id)) best = &c->entries[i];
    return best;
}

/* Rewrite the catalog; active containers get their durable length. */
static HRESULT catalog_write_locked(ddp_chunkstore *cs)
{
    for (int k = 0; k < 2; k++) {
        writer_slot *ws = &cs->ws[k];
        if (!ws->w) continue;
        ddp_catalog_entry *e = ddp_catalog_find(&cs->cat, ws->kind, ws->id);
        uint64_t synced = ddp_container_synced_size(ws->w);
        if (e && synced > e->length) e->length = synced;
    }
    uint8_t *buf = NULL;
    size_t n = 0;
    HRESULT hr = ddp_catalog_encode(&cs->cat, &buf, &n);
    if (FAILED(hr)) return hr;
    if (cs->cat_written && n == cs->cat_written_len && memcmp(buf, cs->cat_written, n) == 0) {
        free(buf); /* the file already holds these bytes */
        return S_OK;
    }
    hr = ddp_write_file_atomic(cs->catalog_path, buf, n, 0600);
    free(cs->cat_written);
    /* After a failure the file's content is unknown: write next time. */
    cs->cat_written = SUCCEEDED(hr) ? buf : NULL;
    cs->cat_written_len = SUCCEEDED(hr) ? n : 0;
    if (FAILED(hr)) free(buf);
    return hr;
}

HRESULT ddp_chunkstore_create(const char *store_dir, const uint8_t store_id[DDP_STORE_ID_SIZE])
{
    if (!store_dir || !store_id) return E_POINTER;
    static const char *const subdirs[] = { "Data", "Stream", "Hotspot" };
    HRESULT hr = ddp_mkdir_p(store_dir, 0700);
    for (size_t i = 0; SUCCEEDED(hr) && i < 3; i++) {
        char *d = ddp_path_join(store_dir, subdirs[i]);
        hr = ddp_mkdir_p(d, 0700);
        free(d);
    }
    if (FAILED(hr)) return hr;
    char *path = ddp_path_join(store_dir, "catalog");
    struct stat st;
    if (stat(path, &st) == 0) {
        /* Never overwrite a catalog: it is the only list of the containers. */
        ddp_catalog cat;
        hr = ddp_cs_catalog_read(path, NULL, &cat);
        if (SUCCEEDED(hr)) {
            if (memcmp(cat.store_id, store_id, DDP_STORE_ID_SIZE) == 0) hr = S_FALSE;
            else hr = ddp_fail(HRESULT_FROM_WIN32(ERROR_ALREADY_EXISTS), "%s: a store with another id exists", path);
            ddp_catalog_free(&cat);
        }
        free(path);
        return hr;
    }
    ddp_catalog cat;
    memset(&cat, 0, sizeof cat);
    memcpy(cat.store_id, store_id, DDP_STORE_ID_SIZE);
    uint8_t *buf = NULL;
    size_t n = 0;
    hr = ddp_catalog_encode(&cat, &buf, &n);
    if (SUCCEEDED(hr)) hr = ddp_write_file_atomic(path, buf, n, 0600);
    free(buf);
    free(path);
    return hr;
}

/* ------------------------------------------------------------- writers */

static void publish(writer_slot *ws)
{
    if (!ws->w) {
        atomic_store(&ws->pub_id, 0);
        return;
    }
    atomic_store(&ws->pub_flushed, ddp_container_flushed_size(ws->w));
    atomic_store(&ws->pub_id, ws->id);
}

/* The slot's first failure sticks, with its detail (file, errno text), so
 * that every later caller (and the job's final message) names the cause. */
static void mark_failed(writer_slot *ws, HRESULT hr)
{
    if (FAILED(ws->failed)) return;
    ws->failed = hr;
    snprintf(ws->failed_detail, sizeof ws->failed_detail, "%s", ddp_error_detail());
}

static HRESULT slot_failed(const writer_slot *ws)
{
    return ddp_fail(ws->failed, "%s%sthe %s container of this store failed; no more writes are accepted",
                    ws->failed_detail, ws->failed_detail[0] ? "; " : "", ddp_cs_kind_name(ws->kind));
}

static void set_writer(writer_slot *ws, ddp_container_writer *w, uint32_t id, uint32_t generation)
{
    atomic_store(&ws->pub_id, 0);
    ws->w = w;
    ws->id = id;
    ws->generation = generation;
    publish(ws);
}

/* Create the next container of the slot's kind and list it in the catalog. */
static HRESULT new_container_locked(ddp_chunkstore *cs, writer_slot *ws)
{
    ddp_catalog_entry *newest = catalog_newest(&cs->cat, ws->kind);
    uint32_t id = newest ? newest->id + 1 : 1;
    if (id == 0) return ddp_fail(DDP_E_INVALID_STATE, "store %s: out of %s container ids", cs->store_dir,
                                 ddp_cs_kind_name(ws->kind));
    char *path = ddp_cs_container_file(cs, ws->kind, id, 1);
    ddp_container_header h;
    memset(&h, 0, sizeof h);
    h.kind = ws->kind;
    memcpy(h.store_id, cs->store_id, DDP_STORE_ID_SIZE);
    h.id = id;
    h.generation = 1;
    h.created = (uint64_t)time(NULL);
    ddp_container_writer *w = NULL;
    HRESULT hr = ddp_container_create(path, &h, &w);
    if (hr == HRESULT_FROM_WIN32(ERROR_ALREADY_EXISTS)) {
        /* Left by a crash between creating the file and listing it: nothing
         * can reference a container the catalog does not name. */
        unlink(path);
        hr = ddp_container_create(path, &h, &w);
    }
    if (FAILED(hr)) {
        free(path);
        return hr;
    }
    ddp_catalog_entry e = { ws->kind, id, 1, 0, DDP_CONTAINER_HEADER_SIZE };
    ddp_catalog_put(&cs->cat, &e);
    hr = catalog_write_locked(cs);
    if (FAILED(hr)) {
        /* The file stays: the failed write may still have renamed a catalog
         * that lists it into place. An empty container is harmless either
         * way (one the catalog does not list is replaced when its id comes
         * round again); a listed one that is missing would not be. */
        catalog_remove(&cs->cat, ws->kind, id);
        ddp_container_close(w);
        free(path);
        mark_failed(ws, hr);
        return hr;
    }
    free(path);
    set_writer(ws, w, id, 1);
    return S_OK;
}

/* Seal the slot's container and start a new one. */
static HRESULT roll_locked(ddp_chunkstore *cs, writer_slot *ws)
{
    HRESULT hr = ddp_container_seal(ws->w);
    if (FAILED(hr)) {
        mark_failed(ws, hr);
        publish(ws);
        return hr;
    }
    uint64_t size = ddp_container_size(ws->w);
    ddp_catalog_entry *e = ddp_catalog_find(&cs->cat, ws->kind, ws->id);
    if (e) {
        e->flags |= SEALED_FLAG;
        e->length = size;
    }
    /* Sealing synced it: every chunk record in it is in the index and durable. */
    if (ws->kind == DDP_KIND_DATA && cs->ix) ddp_index_set_covered(cs->ix, ws->id, ws->generation, size);
    ddp_container_close(ws->w);
    set_writer(ws, NULL, 0, 0);
    hr = new_container_locked(cs, ws);
    if (FAILED(hr)) (void)catalog_write_locked(cs); /* at least record the seal */
    return hr;
}

/* Make sure the slot has a container with room for a record of `need` bytes. */
static HRESULT ensure_room_locked(ddp_chunkstore *cs, writer_slot *ws, uint64_t need)
{
    if (FAILED(ws->failed)) return slot_failed(ws);
    if (!ws->w) return new_container_locked(cs, ws);
    uint64_t size = ddp_container_size(ws->w);
    if (size > DDP_CONTAINER_HEADER_SIZE && size + need > cs->limit) return roll_locked(cs, ws);
    return S_OK;
}

static HRESULT append_locked(ddp_chunkstore *cs, writer_slot *ws, ddp_record_header *h, const void *payload,
                             uint64_t *off)
{
    HRESULT hr = ensure_room_locked(cs, ws, DDP_RECORD_HEADER_SIZE + (uint64_t)h->stored_len);
    if (FAILED(hr)) return hr;
    hr = ddp_container_append(ws->w, h, payload, off);
    if (FAILED(hr) && hr != E_INVALIDARG) mark_failed(ws, hr);
    publish(ws);
    return hr;
}

/* Flush and fsync under the lock (checkpoint, close). */
static HRESULT sync_locked(writer_slot *ws)
{
    if (FAILED(ws->failed)) return slot_failed(ws);
    if (!ws->w) return S_OK;
    HRESULT hr = ddp_container_sync(ws->w);
    if (FAILED(hr)) mark_failed(ws, hr);
    publish(ws);
    return hr;
}

/* Flush under the lock, fsync a dup()ed descriptor outside it. */
static HRESULT sync_kind(ddp_chunkstore *cs, writer_slot *ws)
{
    if (!cs->writable) return S_OK;
    pthread_mutex_lock(&cs->lock);
    if (FAILED(ws->failed)) {
        HRESULT hr = slot_failed(ws);
        pthread_mutex_unlock(&cs->lock);
        return hr;
    }
    if (!ws->w || !ddp_container_is_dirty(ws->w)) {
        pthread_mutex_unlock(&cs->lock);
        return S_OK;
    }
    HRESULT hr = ddp_container_flush(ws->w);
    if (FAILED(hr)) mark_failed(ws, hr);
    publish(ws);
    if (FAILED(hr)) {
        pthread_mutex_unlock(&cs->lock);
        return hr;
    }
    uint64_t end = ddp_container_size(ws->w);
    uint32_t id = ws->id;
    char *path = ddp_strdup(ddp_container_path(ws->w));
    int fd = fcntl(ddp_container_fd(ws->w), F_DUPFD_CLOEXEC, 0);
    if (fd < 0) hr = ddp_fail_errno(errno, "syncing container %s", path);
    pthread_mutex_unlock(&cs->lock);

    if (SUCCEEDED(hr)) {
        hr = ddp_fsync_fd(fd, path);
        close(fd);
        pthread_mutex_lock(&cs->lock);
        if (FAILED(hr)) {
            mark_failed(ws, hr);
        } else if (ws->w && ws->id == id) {
            ddp_container_note_synced(ws->w, end);
        }
        pthread_mutex_unlock(&cs->lock);
    }
    free(path);
    return hr;
}

/* Make sure bytes [0, end) of container (kind, id) are in the file, not only
 * in the active writer's buffer. */
HRESULT ddp_cs_ensure_flushed(ddp_chunkstore *cs, writer_slot *ws, uint32_t id, uint64_t end)
{
    if (atomic_load(&ws->pub_id) != id) return S_OK;
    if (atomic_load(&ws->pub_flushed) >= end) return S_OK;
    HRESULT hr = S_OK;
    pthread_mutex_lock(&cs->lock);
    if (ws->w && ws->id == id && ddp_container_flushed_size(ws->w) < end &&
        ddp_container_flushed_size(ws->w) < ddp_container_size(ws->w)) {
        if (FAILED(ws->failed)) {
            hr = slot_failed(ws);
        } else {
            hr = ddp_container_flush(ws->w);
            if (FAILED(hr)) mark_failed(ws, hr);
            publish(ws);
        }
    }
    pthread_mutex_unlock(&cs->lock);
    return hr;
}

/* --------------------------------------------------------------- index */

typedef struct index_scan {
    ddp_index *ix;
    uint32_t container;
    const ddp_redirect *r; /* the container's table: entries name local ids */
} index_scan;

static void index_found(void *ctx, const ddp_record_header *h, uint64_t off)
{
    index_scan *s = ctx;
    if (h->type != DDP_RECORD_CHUNK) return;
    uint64_t id;
    if (!ddp_redirect_id_at(s->r, off, &id)) return; /* no name a reference could use: never indexed */
    ddp_chunk_loc loc = { s->container, h->codec, id, h->stored_len, h->logical_len };
    (void)ddp_index_insert(s->ix, h->hash, &loc);
}

/* Is the file at path the container the catalog says (store, kind, id,
 * generation)? A misplaced or foreign file is DDP_E_FILE_CORRUPT and is
 * neither indexed nor appended to. *r gets its redirection table (identity
 * for version 1); free it with ddp_redirect_free in every case. */
static HRESULT check_container_header(const ddp_chunkstore *cs, const char *path, const ddp_catalog_entry *e,
                                      ddp_redirect *r)
{
    memset(r, 0, sizeof *r);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ddp_fail_errno(errno, "opening container %s", path);
    uint8_t hb[DDP_CONTAINER_HEADER_SIZE];
    HRESULT hr = ddp_pread_exact(fd, hb, sizeof hb, 0, path);
    if (FAILED(hr)) {
        close(fd);
        return hr;
    }
    ddp_container_header h;
    if (FAILED(hr = ddp_container_header_decode(hb, &h))) {
        char inner[1024];
        snprintf(inner, sizeof inner, "%s", ddp_error_detail());
        close(fd);
        return ddp_fail(hr == DDP_E_UNSUPPORTED_VERSION ? hr : DDP_E_FILE_CORRUPT, "container %s: %s", path, inner);
    }
    if (memcmp(h.store_id, cs->store_id, DDP_STORE_ID_SIZE) != 0 || h.kind != e->kind || h.id != e->id ||
        h.generation != e->generation) {
        close(fd);
        return ddp_fail(DDP_E_FILE_CORRUPT, "container %s: its header names another container (kind %u, id %u, "
                        "generation %u%s)", path, h.kind, h.id, h.generation,
                        memcmp(h.store_id, cs->store_id, DDP_STORE_ID_SIZE) ? ", another store" : "");
    }
    hr = ddp_redirect_load(fd, path, &h, r);
    close(fd);
    return hr;
}

/* Persist the index: data first, so that it names only durable records. */
static HRESULT checkpoint_locked(ddp_chunkstore *cs)
{
    if (!cs->ix) return S_OK;
    writer_slot *ws = &cs->ws[W_DATA];
    HRESULT hr = sync_locked(ws);
    if (FAILED(hr)) return hr;
    if (ws->w) ddp_index_set_covered(cs->ix, ws->id, ws->generation, ddp_container_size(ws->w));
    return ddp_index_checkpoint(cs->ix);
}

/* Is the loaded index consistent with the catalog? */
static int index_matches_catalog(const ddp_chunkstore *cs, const ddp_index *ix)
{
    ddp_catalog_entry *newest = catalog_newest(&cs->cat, DDP_KIND_DATA);
    if (ddp_index_max_container(ix) > (newest ? newest->id : 0)) return 0;
    for (uint32_t i = 0; i < ddp_index_covered_count(ix); i++) {
        const ddp_index_cover *c = ddp_index_covered_at(ix, i);
        const ddp_catalog_entry *e = ddp_catalog_find(&cs->cat, DDP_KIND_DATA, c->container);
        if (!e || e->generation != c->generation) return 0;
        if ((e->flags & SEALED_FLAG) && c->length > e->length) return 0;
        /* Covering more than the file holds: the index names records that are gone. */
        char *path = ddp_cs_container_file(cs, e->kind, e->id, e->generation);
        struct stat st;
        int ok = stat(path, &st) == 0 && (uint64_t)st.st_size >= c->length;
        free(path);
        if (!ok) return 0;
    }
    return 1;
}

/* Scan every data container into a fresh index (tolerating damaged
 * containers: what precedes the damage is indexed; *first_damage gets the
 * first such error). Fails only on I/O errors. */
static HRESULT rebuild_locked(ddp_chunkstore *cs, ddp_index **out, HRESULT *first_damage)
{
    *first_damage = S_OK;
    ddp_index *ix = ddp_index_new(cs->index_path, cs->store_id);
    for (uint32_t i = 0; i < cs->cat.count; i++) {
        const ddp_catalog_entry *e = &cs->cat.entries[i];
        if (e->kind != DDP_KIND_DATA) continue;
        char *path = ddp_cs_container_file(cs, e->kind, e->id, e->generation);
        ddp_redirect r;
        index_scan s = { ix, e->id, &r };
        uint64_t end = 0;
        HRESULT hr = check_container_header(cs, path, e, &r);
        if (SUCCEEDED(hr)) hr = ddp_container_scan(path, NULL, index_found, &s, &end);
        ddp_redirect_free(&r);
        free(path);
        if (hr == DDP_E_FILE_CORRUPT) {
            if (SUCCEEDED(*first_damage)) *first_damage = hr;
            if (end < DDP_CONTAINER_HEADER_SIZE) continue;
        } else if (FAILED(hr)) {
            ddp_index_free(ix);
            return hr;
        }
        ddp_index_set_covered(ix, e->id, e->generation, end);
    }
    *out = ix;
    return S_OK;
}

/* ------------------------------------------------------------- open */

static void chunkstore_free(ddp_chunkstore *cs)
{
    free(cs->cat_written);
    ddp_cs_fds_close(cs);
    for (int k = 0; k < 2; k++) ddp_container_close(cs->ws[k].w);
    ddp_index_free(cs->ix);
    ddp_catalog_free(&cs->cat);
    pthread_mutex_destroy(&cs->lock);
    pthread_cond_destroy(&cs->flight_done);
    pthread_mutex_destroy(&cs->fdlock);
    free(cs->store_dir);
    free(cs->state_dir);
    free(cs->catalog_path);
    free(cs->index_path);
    free(cs);
}

/* Re-open the newest unsealed container of the slot's kind for appending,
 * indexing the records found past `start` when it is a data container. */
static HRESULT reopen_newest(ddp_chunkstore *cs, writer_slot *ws, int *catalog_dirty)
{
    ddp_catalog_entry *e = catalog_newest(&cs->cat, ws->kind);
    if (!e || (e->flags & SEALED_FLAG)) return S_OK;
    uint64_t start = 0;
    if (ws->kind == DDP_KIND_DATA) {
        ddp_index_cover c;
        if (ddp_index_get_covered(cs->ix, e->id, &c) && c.generation == e->generation) start = c.length;
    } else {
        start = e->length;
    }
    char *path = ddp_cs_container_file(cs, e->kind, e->id, e->generation);
    ddp_redirect r;
    index_scan s = { cs->ix, e->id, &r };
    ddp_container_writer *w = NULL;
    HRESULT hr = check_container_header(cs, path, e, &r);
    int foreign = hr == DDP_E_FILE_CORRUPT;
    if (SUCCEEDED(hr))
        hr = ddp_container_open_append(path, start, ws->kind == DDP_KIND_DATA ? index_found : NULL, &s, &w);
    if (SUCCEEDED(hr)) {
        uint64_t size = ddp_container_size(w);
        if (ws->kind == DDP_KIND_DATA) ddp_index_set_covered(cs->ix, e->id, e->generation, size);
        if (ddp_container_is_sealed(w)) {
            /* Sealed just before a crash, before the catalog said so. */
            e->flags |= SEALED_FLAG;
            e->length = size;
            *catalog_dirty = 1;
            ddp_container_close(w);
        } else {
            if (size > e->length) e->length = size;
            set_writer(ws, w, e->id, e->generation);
        }
    } else if (hr == DDP_E_FILE_CORRUPT) {
        /* Damaged, not just torn: never append to it again; index what is
         * readable before the damage. */
        if (ws->kind == DDP_KIND_DATA && !foreign) {
            uint64_t end = 0;
            (void)ddp_container_scan_from(path, start, NULL, index_found, &s, &end);
            if (end >= DDP_CONTAINER_HEADER_SIZE) ddp_index_set_covered(cs->ix, e->id, e->generation, end);
        }
        e->flags |= SEALED_FLAG;
        *catalog_dirty = 1;
        hr = S_OK;
    }
    ddp_redirect_free(&r);
    free(path);
    return hr;
}

/* Index the records of data containers that the index does not cover. */
static HRESULT catch_up_index(ddp_chunkstore *cs)
{
    ddp_catalog_entry *newest = catalog_newest(&cs->cat, DDP_KIND_DATA);
    for (uint32_t i = 0; i < cs->cat.count; i++) {
        const ddp_catalog_entry *e = &cs->cat.entries[i];
        if (e->kind != DDP_KIND_DATA) continue;
        if (e == newest && !(e->flags & SEALED_FLAG)) continue; /* reopen_newest walks it */
        ddp_index_cover c;
        uint64_t start = 0;
        if (ddp_index_get_covered(cs->ix, e->id, &c) && c.generation == e->generation) start = c.length;
        if (start && (e->flags & SEALED_FLAG) && start >= e->length) continue;
        char *path = ddp_cs_container_file(cs, e->kind, e->id, e->generation);
        ddp_redirect r;
        index_scan s = { cs->ix, e->id, &r };
        uint64_t end = 0;
        HRESULT hr = check_container_header(cs, path, e, &r);
        if (SUCCEEDED(hr)) hr = ddp_container_scan_from(path, start, NULL, index_found, &s, &end);
        ddp_redirect_free(&r);
        free(path);
        if (FAILED(hr) && hr != DDP_E_FILE_CORRUPT) return hr;
        if (end >= DDP_CONTAINER_HEADER_SIZE) ddp_index_set_covered(cs->ix, e->id, e->generation, end);
    }
    return S_OK;
}

HRESULT ddp_chunkstore_open(const char *store_dir, const char *state_dir,
                            const uint8_t store_id[DDP_STORE_ID_SIZE], int mode,
                            uint64_t container_limit, ddp_chunkstore **out)
{
    if (!store_dir || !out) return E_POINTER;
    *out = NULL;
    int writable = mode == DDP_STORE_WRITABLE;
    if (writable && (!state_dir || !store_id)) return E_POINTER;

    ddp_chunkstore *cs = ddp_xcalloc(1, sizeof *cs);
    pthread_mutex_init(&cs->lock, NULL);
    pthread_cond_init(&cs->flight_done, NULL);
    pthread_mutex_init(&cs->fdlock, NULL);
    cs->store_dir = ddp_strdup(store_dir);
    cs->state_dir = state_dir ? ddp_strdup(state_dir) : NULL;
    cs->catalog_path = ddp_path_join(store_dir, "catalog");
    cs->index_path = state_dir ? ddp_path_join(state_dir, "index") : NULL;
    cs->writable = writable;
    cs->limit = container_limit ? container_limit : DEFAULT_CONTAINER_LIMIT;
    cs->ws[W_DATA].kind = DDP_KIND_DATA;
    cs->ws[W_STREAM].kind = DDP_KIND_STREAM;
    atomic_init(&cs->ws[W_DATA].pub_id, 0);
    atomic_init(&cs->ws[W_DATA].pub_flushed, 0);
    atomic_init(&cs->ws[W_STREAM].pub_id, 0);
    atomic_init(&cs->ws[W_STREAM].pub_flushed, 0);

    HRESULT hr;
    if (writable) {
        /* Makes the directories and an empty catalog if needed; leaves an
         * existing catalog alone (and checks its store id). */
        if (FAILED(hr = ddp_chunkstore_create(store_dir, store_id))) goto fail;
        if (FAILED(hr = ddp_mkdir_p(state_dir, 0700))) goto fail;
    }
    struct stat cst;
    if (stat(cs->catalog_path, &cst) == 0) cs->cat_ino = cst.st_ino;
    if (FAILED(hr = ddp_cs_catalog_read(cs->catalog_path, store_id, &cs->cat))) goto fail;
    memcpy(cs->store_id, cs->cat.store_id, DDP_STORE_ID_SIZE);
    atomic_store(&cs->cat_checked_ms, ddp_cs_now_ms());
    if (!writable) {
        *out = cs;
        return S_OK;
    }
    /* What the file holds (as this code writes it): an unchanged catalog is
     * not rewritten at close. */
    if (FAILED(ddp_catalog_encode(&cs->cat, &cs->cat_written, &cs->cat_written_len))) {
        cs->cat_written = NULL;
        cs->cat_written_len = 0;
    }

    /* The index: loaded and checked, or rebuilt. */
    ddp_index *ix = NULL;
    if (SUCCEEDED(ddp_index_load(cs->index_path, cs->store_id, &ix)) && !index_matches_catalog(cs, ix)) {
        ddp_index_free(ix);
        ix = NULL;
    }
    if (!ix) {
        HRESULT damage;
        if (FAILED(hr = rebuild_locked(cs, &ix, &damage))) goto fail;
    }
    cs->ix = ix;
    ddp_clear_error();

    int catalog_dirty = 0;
    if (FAILED(hr = catch_up_index(cs))) goto fail;
    if (FAILED(hr = reopen_newest(cs, &cs->ws[W_DATA], &catalog_dirty))) goto fail;
    if (FAILED(hr = reopen_newest(cs, &cs->ws[W_STREAM], &catalog_dirty))) goto fail;
    if (catalog_dirty && FAILED(hr = catalog_write_locked(cs))) goto fail;
    *out = cs;
    return S_OK;
fail:
    chunkstore_free(cs);
    return hr;
}

/* ----------------------------------------------------------------- put */

/* A put; with wait 0, a hash another put is storing now answers S_FALSE
 * (nothing done) instead of waiting for it. */
static HRESULT put_chunk(ddp_chunkstore *cs, const uint8_t hash[DDP_HASH_SIZE], const void *data, uint32_t len,
                         int compress_level, ddp_chunk_loc *loc, int *was_new, int wait)
{
    if (!cs || !hash || !data || !loc) return E_POINTER;
    if (was_new) *was_new = 0;
    if (!cs->writable) return ddp_fail(DDP_E_INVALID_STATE, "store %s is open read-only", cs->store_dir);
    if (len == 0 || len > CHUNK_MAX_LOGICAL)
        return ddp_fail(E_INVALIDARG, "chunk of %u bytes (1..%u allowed)", len, CHUNK_MAX_LOGICAL);

    /* Found, or being stored by another put: wait for that one (two workers
     * meeting the same new chunk compress it once). */
    pthread_mutex_lock(&cs->lock);
    int found, mine = 0;
    for (;;) {
        found = ddp_index_lookup(cs->ix, hash, loc);
        if (found) break;
        size_t k = 0;
        while (k < cs->nflight && memcmp(cs->flight[k], hash, DDP_HASH_SIZE) != 0) k++;
        if (k == cs->nflight) break;
        if (!wait) {
            pthread_mutex_unlock(&cs->lock);
            return S_FALSE;
        }
        pthread_cond_wait(&cs->flight_done, &cs->lock);
    }
    if (!found && cs->nflight < FLIGHT_MAX) {
        memcpy(cs->flight[cs->nflight++], hash, DDP_HASH_SIZE);
        mine = 1;
    }
    pthread_mutex_unlock(&cs->lock);
    if (found) return S_OK;

    /* Compress outside the lock. */
    uint8_t *cbuf = NULL;
    const void *payload = data;
    uint32_t stored = len;
    uint8_t codec = DDP_CODEC_NONE;
    if (compress_level > 0) {
        size_t cap = ddp_compress_bound(len);
        cbuf = ddp_xmalloc(cap);
        size_t c = ddp_compress(cbuf, cap, data, len, compress_level);
        if (c > 0 && c < len) {
            payload = cbuf;
            stored = (uint32_t)c;
            codec = DDP_CODEC_ZSTD;
        }
    }

    HRESULT hr = S_OK;
    pthread_mutex_lock(&cs->lock);
    if (!ddp_index_lookup(cs->ix, hash, loc)) {
        writer_slot *ws = &cs->ws[W_DATA];
        ddp_record_header h;
        memset(&h, 0, sizeof h);
        h.type = DDP_RECORD_CHUNK;
        h.codec = codec;
        h.stored_len = stored;
        h.logical_len = len;
        memcpy(h.hash, hash, DDP_HASH_SIZE);
        uint64_t off = 0;
        hr = append_locked(cs, ws, &h, payload, &off);
        if (SUCCEEDED(hr)) {
            ddp_chunk_loc l = { ws->id, codec, off, stored, len };
            (void)ddp_index_insert(cs->ix, hash, &l);
            *loc = l;
            if (was_new) *was_new = 1;
            if (ddp_index_wants_checkpoint(cs->ix) && ddp_index_delta_count(cs->ix) >= cs->next_auto_checkpoint) {
                /* Not this put's failure if it does not work; try again later. */
                if (FAILED(checkpoint_locked(cs)))
                    cs->next_auto_checkpoint = 2 * ddp_index_delta_count(cs->ix);
                else
                    cs->next_auto_checkpoint = 0;
                ddp_clear_error();
            }
        }
    }
    if (mine) { /* no longer in flight: stored, or failed (a waiter then tries itself) */
        size_t k = 0;
        while (k < cs->nflight && memcmp(cs->flight[k], hash, DDP_HASH_SIZE) != 0) k++;
        if (k < cs->nflight) memmove(cs->flight[k], cs->flight[cs->nflight - 1], DDP_HASH_SIZE);
        cs->nflight--;
        pthread_cond_broadcast(&cs->flight_done);
    }
    pthread_mutex_unlock(&cs->lock);
    free(cbuf);
    return hr;
}

HRESULT ddp_chunkstore_put(ddp_chunkstore *cs, const uint8_t hash[DDP_HASH_SIZE], const void *data,
                           uint32_t len, int compress_level, ddp_chunk_loc *loc, int *was_new)
{
    return put_chunk(cs, hash, data, len, compress_level, loc, was_new, 1);
}

HRESULT ddp_chunkstore_try_put(ddp_chunkstore *cs, const uint8_t hash[DDP_HASH_SIZE], const void *data,
                               uint32_t len, int compress_level, ddp_chunk_loc *loc, int *was_new)
{
    return put_chunk(cs, hash, data, len, compress_level, loc, was_new, 0);
}

HRESULT ddp_chunkstore_put_streammap(ddp_chunkstore *cs, const void *map, uint32_t len,
                                     const uint8_t hash[DDP_HASH_SIZE], uint32_t *container, uint64_t *offset)
{
    if (!cs || !map || !hash || !container || !offset) return E_POINTER;
    if (!cs->writable) return ddp_fail(DDP_E_INVALID_STATE, "store %s is open read-only", cs->store_dir);
    if (len == 0 || len > DDP_STREAMMAP_MAX_LOGICAL)
        return ddp_fail(E_INVALIDARG, "stream map of %u bytes (1..%u allowed)", len, DDP_STREAMMAP_MAX_LOGICAL);
    uint8_t sum[DDP_HASH_SIZE];
    ddp_sha256(map, len, sum);
    if (memcmp(sum, hash, DDP_HASH_SIZE) != 0)
        return ddp_fail(E_INVALIDARG, "stream map: the hash given is not the sha256 of the map");

    pthread_mutex_lock(&cs->lock);
    writer_slot *ws = &cs->ws[W_STREAM];
    ddp_record_header h;
    memset(&h, 0, sizeof h);
    h.type = DDP_RECORD_STREAMMAP;
    h.codec = DDP_CODEC_NONE;
    h.stored_len = h.logical_len = len;
    memcpy(h.hash, hash, DDP_HASH_SIZE);
    uint64_t off = 0;
    HRESULT hr = append_locked(cs, ws, &h, map, &off);
    if (SUCCEEDED(hr)) {
        *container = ws->id;
        *offset = off;
    }
    pthread_mutex_unlock(&cs->lock);
    return hr;
}

HRESULT ddp_chunkstore_sync_data(ddp_chunkstore *cs)
{
    if (!cs) return E_POINTER;
    return sync_kind(cs, &cs->ws[W_DATA]);
}

HRESULT ddp_chunkstore_sync_streams(ddp_chunkstore *cs)
{
    if (!cs) return E_POINTER;
    return sync_kind(cs, &cs->ws[W_STREAM]);
}

HRESULT ddp_chunkstore_checkpoint(ddp_chunkstore *cs)
{
    if (!cs) return E_POINTER;
    if (!cs->writable) return S_OK;
    pthread_mutex_lock(&cs->lock);
    HRESULT hr = checkpoint_locked(cs);
    pthread_mutex_unlock(&cs->lock);
    return hr;
}

/* --------------------------------------------------------------- stats */

HRESULT ddp_chunkstore_stats_get(ddp_chunkstore *cs, ddp_chunkstore_stats *st)
{
    if (!cs || !st) return E_POINTER;
    memset(st, 0, sizeof *st);
    pthread_mutex_lock(&cs->lock);
    uint32_t n = cs->cat.count;
    ddp_catalog_entry *entries = ddp_xmalloc((n ? n : 1) * sizeof *entries);
    if (n) memcpy(entries, cs->cat.entries, n * sizeof *entries);
    uint64_t active_size[2] = { 0, 0 };
    uint32_t active_id[2] = { 0, 0 };
    for (int k = 0; k < 2; k++) {
        if (cs->ws[k].w) {
            active_id[k] = cs->ws[k].id;
            active_size[k] = ddp_container_size(cs->ws[k].w);
        }
    }
    if (cs->ix) {
        ddp_index_totals(cs->ix, &st->chunks, &st->stored_bytes, &st->logical_bytes);
        st->index_ram_bytes = ddp_index_ram_bytes(cs->ix);
    }
    pthread_mutex_unlock(&cs->lock);

    for (uint32_t i = 0; i < n; i++) {
        const ddp_catalog_entry *e = &entries[i];
        if (e->kind == DDP_KIND_DATA) st->data_containers++;
        else if (e->kind == DDP_KIND_STREAM) st->stream_containers++;
        int k = e->kind == DDP_KIND_DATA ? W_DATA : e->kind == DDP_KIND_STREAM ? W_STREAM : -1;
        if (k >= 0 && active_id[k] == e->id) {
            st->container_bytes += active_size[k];
            continue;
        }
        char *path = ddp_cs_container_file(cs, e->kind, e->id, e->generation);
        struct stat sb;
        st->container_bytes += stat(path, &sb) == 0 ? (uint64_t)sb.st_size : e->length;
        free(path);
    }
    free(entries);

    if (cs->index_path) {
        struct stat sb;
        if (stat(cs->index_path, &sb) == 0) st->index_file_bytes = (uint64_t)sb.st_size;
        if (!cs->writable) {
            /* A read-only store holds no index: read the totals from the file. */
            ddp_index *ix = NULL;
            if (SUCCEEDED(ddp_index_load(cs->index_path, cs->store_id, &ix))) {
                ddp_index_totals(ix, &st->chunks, &st->stored_bytes, &st->logical_bytes);
                ddp_index_free(ix);
            }
            ddp_clear_error();
        }
    }
    return S_OK;
}

/* ------------------------------------------------------- rebuild, close */

HRESULT ddp_chunkstore_rebuild_index(ddp_chunkstore *cs)
{
    if (!cs) return E_POINTER;
    if (!cs->writable) return ddp_fail(DDP_E_INVALID_STATE, "store %s is open read-only", cs->store_dir);
    pthread_mutex_lock(&cs->lock);
    /* Everything appended so far must be in the files, and durable. */
    HRESULT hr = sync_locked(&cs->ws[W_DATA]);
    ddp_index *ix = NULL;
    HRESULT damage = S_OK;
    char damage_detail[1024] = "";
    if (SUCCEEDED(hr)) hr = rebuild_locked(cs, &ix, &damage);
    if (SUCCEEDED(hr)) {
        if (FAILED(damage)) snprintf(damage_detail, sizeof damage_detail, "%s", ddp_error_detail());
        ddp_index_free(cs->ix);
        cs->ix = ix;
        hr = ddp_index_checkpoint(cs->ix);
    }
    pthread_mutex_unlock(&cs->lock);
    if (SUCCEEDED(hr) && FAILED(damage))
        return ddp_fail(damage, "index rebuilt, but a data container is damaged: %s", damage_detail);
    return hr;
}

static HRESULT commit_locked(ddp_chunkstore *cs)
{
    HRESULT hd = sync_locked(&cs->ws[W_DATA]);
    HRESULT hs = sync_locked(&cs->ws[W_STREAM]);
    HRESULT hr = FAILED(hd) ? hd : hs;
    ddp_saved_error se;
    ddp_error_save(&se);
    /* An index that might name lost records must not be written. */
    if (SUCCEEDED(hd)) hr = ddp_first_error(hr, &se, checkpoint_locked(cs));
    ddp_error_save(&se);
    return ddp_first_error(hr, &se, catalog_write_locked(cs));
}

HRESULT ddp_chunkstore_commit(ddp_chunkstore *cs)
{
    if (!cs) return E_POINTER;
    if (!cs->writable) return S_OK;
    pthread_mutex_lock(&cs->lock);
    HRESULT hr = commit_locked(cs);
    pthread_mutex_unlock(&cs->lock);
    return hr;
}

HRESULT ddp_chunkstore_close(ddp_chunkstore *cs)
{
    if (!cs) return S_OK;
    HRESULT hr = S_OK;
    if (cs->writable) {
        pthread_mutex_lock(&cs->lock);
        hr = commit_locked(cs);
        pthread_mutex_unlock(&cs->lock);
    }
    chunkstore_free(cs);
    return hr;
}

void ddp_chunkstore_discard(ddp_chunkstore *cs)
{
    if (cs) chunkstore_free(cs);
}
