/* SPDX-License-Identifier: MIT */
/*
 * gc.c: garbage collection (Windows: Start-DedupJob -Type GarbageCollection),
 * over the store walk of store/storewalk.h, and the resume of an interrupted
 * collection that volume.c calls before it opens a store for a job. The
 * design is in docs/MAINTENANCE.md; in short:
 *
 * Compaction, as Windows does it. Stubs, stream maps and the index name a
 * record by (container id, local id) (store/redirect.h), so a container can
 * be rewritten without touching them: its next generation holds only the
 * records still referenced, behind a redirection table that maps each local
 * id to the record's new offset (store/compact.h). A container with nothing
 * referenced left is dropped from the catalog and deleted.
 *
 * Mark. Every stub on the volume (copies of stubs count) is authenticated
 * and its stream map read: the stream-map record and every chunk record it
 * names are live, kept as sorted uint64 local-id vectors per container (8
 * bytes per distinct live record; duplicates are folded whenever a vector
 * doubles). A hotspot copy is live while its hash is referenced. A file that
 * claims to be a stub of this store but does not authenticate (bit rot in a
 * stub) still keeps what it names: GC never decides that data is garbage on
 * the word of a damaged file. A directory that cannot be read, or a valid
 * stub whose stream map cannot be read, stops the job before anything is
 * changed: GC cannot prove what that stub references.
 *
 * Sweep. Each container's record headers are walked (headers only): a chunk
 * or stream-map record whose local id is not in the live set is dead, and so
 * is a DEAD record left by the in-place gc of older versions. A regular run
 * compacts a container only when its dead records are at least gc_threshold
 * percent of it (setting, default 5); `full` takes every container with a
 * dead record. A container whose walk stops at damage is left alone (scrub).
 * The newest data and stream-map containers are never dropped (their ids
 * would come round again for new records): with nothing live they get an
 * empty, sealed next generation.
 *
 * Compact, in this crash-safe order:
 *   1. the plan (per container: kind, id, old generation, new generation or
 *      0 to drop, the end of its records) is written to State/gc.plan
 *      (temporary file, fsync, rename, fsync);
 *   2. State/index is deleted and the directory fsynced (it would name
 *      records that are about to go; a writable open rebuilds it);
 *   3. in batches of containers (at most 16, and 1 GiB of new files past
 *      the first): each one's next generation is written and named
 *      (ddp_container_compact: written unnamed, fsynced, named, directory
 *      fsynced); one atomic rewrite of the catalog names them all (and no
 *      longer lists the dropped ones); the old generations' files are
 *      removed, each with a directory fsync. A hotspot container has no
 *      catalog entry: its newest named generation is the current one;
 *   4. gc.plan is removed (fsync);
 *   5. the store is reopened for writing (which rebuilds the index) and
 *      checkpointed.
 * Readers that hold the old catalog (the mount) keep reading through the
 * file they have open, or find the file gone, reload the catalog and open
 * the new generation (store/chunkstore.c).
 *
 * Resume. A job's open of the store that finds gc.plan (a crash during 2-4)
 * finishes or undoes every planned container (ddp_gc_resume, called by
 * volume.c): the index is deleted again; a container whose catalog names
 * the new generation loses its old file (finished); one whose catalog still
 * names the old generation loses the new file if it was named (undone); a
 * dropped container that the catalog no longer lists loses its file; a
 * hotspot container whose new generation was named loses the old one; the
 * unnamed temporaries a compaction left in Data/, Stream/ and Hotspot/ are
 * swept. Then the plan goes. Nothing that a stub references is ever
 * removed: only files the catalog does not name (or an old hotspot
 * generation whose successor is whole) are deleted.
 *
 * Fault points for tests: with DDP_GC_CRASH_AFTER=N in the environment, the
 * job calls _exit(99) right after its N-th step (plan written, index
 * deleted; per batch: each new generation named, the catalog rewritten,
 * each old file removed; then plan removed, index rebuilt). It is read by ddp_gc
 * only, never by the resume path.
 */
#include <errno.h>
#include <fcntl.h>
#include <fts.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "base/safepath.h"
#include "store/catalog.h"
#include "store/chunkstore.h"
#include "store/compact.h"
#include "store/storewalk.h"
#include "volume/maintenance.h"
#include "store/streammap.h"
#include "store/stub.h"
#include "base/util.h"
#include "volume/volume.h"

#define PLAN_FILE "gc.plan"
#define PLAN_TMP "gc.plan.tmp"
#define INDEX_FILE "index"
#define PLAN_HEADER 64
#define PLAN_ENTRY 32
#define PLAN_TRAILER 8
#define PLAN_VERSION 2u
#define PLAN_MAX_ENTRIES ((uint64_t)1 << 24)
#define CATALOG_MAX ((size_t)32 + (size_t)24 * DDP_CATALOG_MAX_ENTRIES + 8)
#define SEALED_FLAG 1u
#define GC_BATCH 16
#define GC_BATCH_BYTES ((uint64_t)1 << 30)

static const char plan_magic[8] = { 'D', 'D', 'P', 'G', 'C', 'P', 'L', '2' };

/* ======================================================================
 * The plan: State/gc.plan (docs/MAINTENANCE.md)
 *
 *   header (64): "DDPGCPL2", u32 version 2, u32 entry size 32, store id (16),
 *                u64 entry count, 16 reserved zero bytes, xxh64 of bytes 0..55
 *   entries (32 each, one per container):
 *                u32 kind, u32 container id, u32 old generation,
 *                u32 new generation (old + 1; 0: the container is dropped),
 *                u64 end of its records in the old generation, u64 0
 *   trailer (8): xxh64 of all entry bytes
 * ====================================================================== */

typedef struct plan_entry {
    uint32_t kind, id, old_gen, new_gen;
    uint64_t end;
    ddp_mcont *c;          /* the job's view (its live set); NULL on resume */
    uint64_t dead_records, dead_bytes;
    uint64_t new_len;      /* of the new generation, once written */
} plan_entry;

static void plan_entry_encode(const plan_entry *e, uint8_t out[PLAN_ENTRY])
{
    memset(out, 0, PLAN_ENTRY);
    ddp_put_le32(out, e->kind);
    ddp_put_le32(out + 4, e->id);
    ddp_put_le32(out + 8, e->old_gen);
    ddp_put_le32(out + 12, e->new_gen);
    ddp_put_le64(out + 16, e->end);
}

static int plan_entry_decode(const uint8_t in[PLAN_ENTRY], plan_entry *e)
{
    memset(e, 0, sizeof *e);
    e->kind = ddp_get_le32(in);
    e->id = ddp_get_le32(in + 4);
    e->old_gen = ddp_get_le32(in + 8);
    e->new_gen = ddp_get_le32(in + 12);
    e->end = ddp_get_le64(in + 16);
    return e->kind >= DDP_KIND_DATA && e->kind <= DDP_KIND_HOTSPOT && e->id && e->old_gen &&
           (e->new_gen == 0 || (e->old_gen < UINT32_MAX && e->new_gen == e->old_gen + 1)) &&
           ddp_get_le64(in + 24) == 0;
}

/* Write the plan: temporary file, fsync, rename, fsync of the directory. */
static HRESULT plan_write(const char *state_dir, const uint8_t store_id[DDP_STORE_ID_SIZE], const plan_entry *es,
                          size_t n)
{
    size_t len = PLAN_HEADER + n * PLAN_ENTRY + PLAN_TRAILER;
    uint8_t *buf = ddp_xcalloc(1, len);
    memcpy(buf, plan_magic, 8);
    ddp_put_le32(buf + 8, PLAN_VERSION);
    ddp_put_le32(buf + 12, PLAN_ENTRY);
    memcpy(buf + 16, store_id, DDP_STORE_ID_SIZE);
    ddp_put_le64(buf + 32, n);
    ddp_put_le64(buf + 56, ddp_checksum64(buf, 56));
    for (size_t i = 0; i < n; i++) plan_entry_encode(&es[i], buf + PLAN_HEADER + i * PLAN_ENTRY);
    ddp_put_le64(buf + PLAN_HEADER + n * PLAN_ENTRY, XXH3_64bits(buf + PLAN_HEADER, n * PLAN_ENTRY));
    char *tmp = ddp_path_join(state_dir, PLAN_TMP);
    char *path = ddp_path_join(state_dir, PLAN_FILE);
    HRESULT hr = S_OK;
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) hr = ddp_fail_errno(errno, "creating %s", tmp);
    if (SUCCEEDED(hr)) hr = ddp_pwrite_all(fd, buf, len, 0, tmp);
    if (SUCCEEDED(hr)) hr = ddp_fsync_fd(fd, tmp);
    if (fd >= 0) close(fd);
    if (SUCCEEDED(hr) && rename(tmp, path) != 0) hr = ddp_fail_errno(errno, "renaming %s", tmp);
    if (SUCCEEDED(hr)) hr = ddp_fsync_parent(path);
    if (FAILED(hr)) (void)unlink(tmp);
    free(buf);
    free(tmp);
    free(path);
    return hr;
}

/* Read and check the plan. S_OK with *es (malloc'd) and *n; S_FALSE when
 * there is none; DDP_E_INVALID_DATA when it is damaged (header, size,
 * checksums) or of an older version (the in-place gc's plan: its steps are
 * all idempotent retirements of unreferenced records, so not finishing them
 * loses nothing). */
static HRESULT plan_read(const char *path, const uint8_t store_id[DDP_STORE_ID_SIZE], plan_entry **es, size_t *n)
{
    *es = NULL;
    *n = 0;
    struct stat sb;
    if (stat(path, &sb) != 0) return errno == ENOENT ? S_FALSE : ddp_fail_errno(errno, "%s", path);
    if ((uint64_t)sb.st_size > PLAN_HEADER + PLAN_MAX_ENTRIES * PLAN_ENTRY + PLAN_TRAILER ||
        (uint64_t)sb.st_size < PLAN_HEADER + PLAN_TRAILER)
        return ddp_fail(DDP_E_INVALID_DATA, "%s: not a gc plan of this version", path);
    uint8_t *buf = NULL;
    size_t len = 0;
    HRESULT hr = ddp_read_file(path, (size_t)sb.st_size, &buf, &len);
    if (FAILED(hr)) return hr;
    uint64_t count = len >= PLAN_HEADER ? ddp_get_le64(buf + 32) : 0;
    if (len < PLAN_HEADER + PLAN_TRAILER || memcmp(buf, plan_magic, 8) != 0 ||
        ddp_get_le64(buf + 56) != ddp_checksum64(buf, 56) || ddp_get_le32(buf + 8) != PLAN_VERSION ||
        ddp_get_le32(buf + 12) != PLAN_ENTRY || memcmp(buf + 16, store_id, DDP_STORE_ID_SIZE) != 0 ||
        count > PLAN_MAX_ENTRIES || PLAN_HEADER + count * PLAN_ENTRY + PLAN_TRAILER != len ||
        ddp_get_le64(buf + PLAN_HEADER + count * PLAN_ENTRY) !=
            XXH3_64bits(buf + PLAN_HEADER, (size_t)count * PLAN_ENTRY)) {
        free(buf);
        return ddp_fail(DDP_E_INVALID_DATA, "%s: damaged, or not a gc plan of this version", path);
    }
    plan_entry *out = ddp_xcalloc(count ? (size_t)count : 1, sizeof *out);
    size_t k = 0;
    for (uint64_t i = 0; i < count; i++)
        if (plan_entry_decode(buf + PLAN_HEADER + i * PLAN_ENTRY, &out[k])) k++;
    free(buf);
    *es = out;
    *n = k;
    return S_OK;
}

/* ======================================================================
 * Steps shared by the job and the resume
 * ====================================================================== */

typedef struct crash_counter {
    long after; /* 0: off */
    long steps;
} crash_counter;

static void step_done(crash_counter *cc)
{
    if (!cc || cc->after <= 0) return;
    if (++cc->steps >= cc->after) _exit(99);
}

static const char *kind_dir(uint32_t kind)
{
    return kind == DDP_KIND_DATA ? "Data" : kind == DDP_KIND_STREAM ? "Stream" : "Hotspot";
}

static void file_name(uint32_t id, uint32_t gen, char out[24]) { snprintf(out, 24, "%08X.%08X.ccc", id, gen); }

/* Remove name from dirfd if it is there; fsync the directory when something went. */
static HRESULT remove_at(int dirfd, const char *dir, const char *name)
{
    if (unlinkat(dirfd, name, 0) != 0) {
        if (errno == ENOENT) return S_OK;
        return ddp_fail_errno(errno, "removing %s/%s", dir, name);
    }
    if (fsync(dirfd) != 0) return ddp_fail_errno(errno, "fsync of %s", dir);
    return S_OK;
}

static HRESULT open_dir(const char *store_dir, uint32_t kind, int *dirfd, char **dir)
{
    *dir = ddp_path_join(store_dir, kind_dir(kind));
    *dirfd = open(*dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (*dirfd >= 0) return S_OK;
    HRESULT hr = ddp_fail_errno(errno, "opening %s", *dir);
    free(*dir); /* nothing to release on failure */
    *dir = NULL;
    return hr;
}

static HRESULT catalog_load(const char *store_dir, const uint8_t store_id[DDP_STORE_ID_SIZE], ddp_catalog *cat)
{
    memset(cat, 0, sizeof *cat);
    char *path = ddp_path_join(store_dir, "catalog");
    uint8_t *buf = NULL;
    size_t n = 0;
    HRESULT hr = ddp_read_file(path, CATALOG_MAX, &buf, &n);
    if (SUCCEEDED(hr)) {
        hr = ddp_catalog_decode(buf, n, cat);
        if (FAILED(hr)) hr = ddp_fail(hr, "%s: %s", path, ddp_error_detail());
        else if (memcmp(cat->store_id, store_id, DDP_STORE_ID_SIZE) != 0)
            hr = ddp_fail(DDP_E_INVALID_DATA, "%s: the catalog belongs to another store", path);
    }
    if (FAILED(hr)) ddp_catalog_free(cat);
    free(buf);
    free(path);
    return hr;
}

/* Remove State/NAME if it is there, then fsync State/. */
static HRESULT remove_state_file(const char *state_dir, const char *name, const char *what)
{
    char *path = ddp_path_join(state_dir, name);
    HRESULT hr = S_OK;
    if (unlink(path) != 0 && errno != ENOENT) hr = ddp_fail_errno(errno, "removing %s %s", what, path);
    free(path);
    if (SUCCEEDED(hr)) hr = ddp_fsync_dir(state_dir);
    return hr;
}

/* Delete the index (it may name records that go). */
static HRESULT drop_index(const char *state_dir) { return remove_state_file(state_dir, INDEX_FILE, "the index"); }

static HRESULT remove_plan(const char *state_dir) { return remove_state_file(state_dir, PLAN_FILE, "the gc plan"); }

/* ======================================================================
 * Resume: finish or undo every planned container
 * ====================================================================== */

static HRESULT resume_one(const char *store_dir, const ddp_catalog *cat, const plan_entry *e)
{
    int dirfd;
    char *dir;
    HRESULT hr = open_dir(store_dir, e->kind, &dirfd, &dir);
    if (FAILED(hr)) return hr;
    char old_name[24], new_name[24];
    file_name(e->id, e->old_gen, old_name);
    file_name(e->id, e->new_gen ? e->new_gen : e->old_gen, new_name);
    if (e->kind == DDP_KIND_HOTSPOT) {
        /* No catalog: a named new generation is whole (named after its fsync). */
        struct stat sb;
        if (!e->new_gen || fstatat(dirfd, new_name, &sb, AT_SYMLINK_NOFOLLOW) == 0)
            hr = remove_at(dirfd, dir, old_name);
    } else {
        const ddp_catalog_entry *ce = ddp_catalog_find(cat, e->kind, e->id);
        if (!e->new_gen) {
            if (!ce) hr = remove_at(dirfd, dir, old_name); /* dropped: finish */
        } else if (ce && ce->generation == e->new_gen) {
            hr = remove_at(dirfd, dir, old_name); /* switched: finish */
        } else if (ce && ce->generation == e->old_gen) {
            hr = remove_at(dirfd, dir, new_name); /* not switched: undo */
        }
    }
    close(dirfd);
    free(dir);
    return hr;
}

/* The unnamed temporaries of compactions that stopped (a "tmp.*" file whose
 * writer is dead, where the file system has no O_TMPFILE). */
static void sweep_temporaries(const char *store_dir)
{
    static const uint32_t kinds[] = { DDP_KIND_DATA, DDP_KIND_STREAM, DDP_KIND_HOTSPOT };
    for (size_t i = 0; i < 3; i++) {
        int dirfd;
        char *dir;
        if (SUCCEEDED(open_dir(store_dir, kinds[i], &dirfd, &dir))) {
            (void)ddp_tmpdir_sweep(dirfd);
            close(dirfd);
        }
        ddp_clear_error();
        free(dir);
    }
}

HRESULT ddp_gc_resume(const char *store_dir, const char *state_dir, const uint8_t store_id[DDP_STORE_ID_SIZE])
{
    if (!store_dir || !state_dir || !store_id) return E_POINTER;
    char *ppath = ddp_path_join(state_dir, PLAN_FILE);
    plan_entry *es = NULL;
    size_t n = 0;
    HRESULT hr = plan_read(ppath, store_id, &es, &n);
    free(ppath);
    if (hr == S_FALSE) return S_FALSE;
    if (hr == DDP_E_INVALID_DATA) {
        /* Nothing can be known of it: the catalog still names a whole file
         * for every container, so only leftovers (files the catalog does not
         * name) may remain; the next collection's sweep does not mind them. */
        ddp_clear_error();
        n = 0;
        hr = S_OK;
    }
    if (FAILED(hr)) return hr;
    hr = drop_index(state_dir);
    ddp_catalog cat;
    if (SUCCEEDED(hr)) hr = catalog_load(store_dir, store_id, &cat);
    if (SUCCEEDED(hr)) {
        for (size_t i = 0; SUCCEEDED(hr) && i < n; i++) hr = resume_one(store_dir, &cat, &es[i]);
        ddp_catalog_free(&cat);
    }
    free(es);
    if (SUCCEEDED(hr)) sweep_temporaries(store_dir);
    if (SUCCEEDED(hr)) hr = remove_plan(state_dir);
    return hr;
}

/* ======================================================================
 * The job's compaction of one container
 * ====================================================================== */

typedef struct exec_stats {
    uint64_t compacted, dropped, records, bytes, reclaimed;
} exec_stats;

static int keep_live(void *ctx, const ddp_record_header *h, uint64_t id)
{
    (void)h;
    return ddp_offvec_has((const ddp_offvec *)ctx, id);
}

/* An empty, sealed version-1 container as generation e->new_gen (created at
 * its final name, O_EXCL; a crash before the catalog names it leaves a file
 * that the resume removes). */
static HRESULT write_empty(const ddp_mstore *ms, const plan_entry *e, const char *dir, uint64_t *len)
{
    char name[24];
    file_name(e->id, e->new_gen, name);
    char *path = ddp_path_join(dir, name);
    ddp_container_header h;
    memset(&h, 0, sizeof h);
    h.kind = e->kind;
    memcpy(h.store_id, ms->store_id, DDP_STORE_ID_SIZE);
    h.id = e->id;
    h.generation = e->new_gen;
    h.created = (uint64_t)time(NULL);
    ddp_container_writer *w = NULL;
    HRESULT hr = ddp_container_create(path, &h, &w);
    if (SUCCEEDED(hr)) hr = ddp_container_seal(w);
    if (SUCCEEDED(hr)) *len = ddp_container_size(w);
    ddp_container_close(w);
    if (FAILED(hr)) (void)unlink(path);
    free(path);
    return hr;
}

/* Step 3a: the next generation of e (nothing for a dropped container),
 * named; e->new_len gets its length. */
static HRESULT exec_compact(const char *store_dir, const ddp_mstore *ms, plan_entry *e, exec_stats *st,
                            crash_counter *cc)
{
    if (!e->new_gen) {
        st->records += e->dead_records;
        st->bytes += e->dead_bytes;
        st->dropped++;
        return S_OK;
    }
    int dirfd;
    char *dir;
    HRESULT hr = open_dir(store_dir, e->kind, &dirfd, &dir);
    if (FAILED(hr)) return hr;
    char new_name[24];
    file_name(e->id, e->new_gen, new_name);
    /* The catalog names the old generation: a file of the new one is a
     * leftover of a stopped compaction. */
    hr = remove_at(dirfd, dir, new_name);
    int fd = -1;
    ddp_compact_result res;
    memset(&res, 0, sizeof res);
    if (SUCCEEDED(hr)) hr = ddp_mcont_open(ms, e->c, O_RDONLY, &fd);
    if (SUCCEEDED(hr)) {
        hr = ddp_container_compact(fd, e->c->path, e->end, dirfd, keep_live, &e->c->offs, &res);
        close(fd);
    }
    if (hr == S_FALSE) {
        /* Nothing kept: the newest container of its kind, which is not
         * dropped (its id would come round again for new records), gets an
         * empty, sealed next generation. */
        hr = write_empty(ms, e, dir, &res.new_len);
        res.dropped = (uint32_t)e->dead_records;
        res.dropped_bytes = e->dead_bytes;
    }
    if (SUCCEEDED(hr)) {
        step_done(cc);
        e->new_len = res.new_len;
        st->records += res.dropped;
        st->bytes += res.dropped_bytes;
        st->compacted++;
    }
    close(dirfd);
    free(dir);
    return hr;
}

/* Step 3b: the catalog names the new generations of es[0..n) (or no longer
 * lists the dropped ones), in one atomic rewrite. S_FALSE when none of them
 * is in the catalog (hotspot containers). */
static HRESULT catalog_switch(const char *store_dir, const uint8_t store_id[DDP_STORE_ID_SIZE], const plan_entry *es,
                              size_t n)
{
    size_t listed = 0;
    for (size_t i = 0; i < n; i++) listed += es[i].kind != DDP_KIND_HOTSPOT;
    if (!listed) return S_FALSE;
    ddp_catalog cat;
    HRESULT hr = catalog_load(store_dir, store_id, &cat);
    if (FAILED(hr)) return hr;
    for (size_t i = 0; i < n; i++) {
        const plan_entry *p = &es[i];
        if (p->kind == DDP_KIND_HOTSPOT) continue;
        ddp_catalog_entry *e = ddp_catalog_find(&cat, p->kind, p->id);
        if (e && p->new_gen) {
            e->generation = p->new_gen;
            e->length = p->new_len;
            e->flags |= SEALED_FLAG;
        } else if (e) {
            size_t k = (size_t)(e - cat.entries);
            memmove(e, e + 1, (cat.count - k - 1) * sizeof *e);
            cat.count--;
        }
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    hr = ddp_catalog_encode(&cat, &buf, &len);
    ddp_catalog_free(&cat);
    if (FAILED(hr)) return hr;
    char *path = ddp_path_join(store_dir, "catalog");
    hr = ddp_write_file_atomic(path, buf, len, 0600);
    free(path);
    free(buf);
    return hr;
}

/* Step 3c: the old generation's file goes. */
static HRESULT exec_finish(const char *store_dir, const plan_entry *e, exec_stats *st, crash_counter *cc)
{
    int dirfd;
    char *dir;
    HRESULT hr = open_dir(store_dir, e->kind, &dirfd, &dir);
    if (FAILED(hr)) return hr;
    char old_name[24], new_name[24];
    file_name(e->id, e->old_gen, old_name);
    struct stat sb;
    uint64_t old_alloc = fstatat(dirfd, old_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 ? (uint64_t)sb.st_blocks * 512 : 0;
    uint64_t new_alloc = 0;
    if (e->new_gen) {
        file_name(e->id, e->new_gen, new_name);
        if (fstatat(dirfd, new_name, &sb, AT_SYMLINK_NOFOLLOW) == 0) new_alloc = (uint64_t)sb.st_blocks * 512;
    }
    hr = remove_at(dirfd, dir, old_name);
    if (SUCCEEDED(hr)) {
        step_done(cc);
        if (old_alloc > new_alloc) st->reclaimed += old_alloc - new_alloc;
    }
    close(dirfd);
    free(dir);
    return hr;
}

/* Step 3 for every planned container, in batches: each batch's new
 * generations are written, then one catalog rewrite switches them all, then
 * their old files go. A batch is at most GC_BATCH containers and, past its
 * first, GC_BATCH_BYTES of new files (the old and new files of a batch are
 * on disk together). */
static HRESULT exec_all(const char *store_dir, const ddp_mstore *ms, plan_entry *es, size_t n, exec_stats *st,
                        crash_counter *cc, const ddp_job_callbacks *cb)
{
    HRESULT hr = S_OK;
    for (size_t i = 0; SUCCEEDED(hr) && i < n;) {
        size_t j = i;
        uint64_t bytes = 0;
        while (SUCCEEDED(hr) && j < n && j - i < GC_BATCH && bytes < GC_BATCH_BYTES) {
            hr = exec_compact(store_dir, ms, &es[j], st, cc);
            bytes += es[j].new_len;
            j++;
        }
        if (SUCCEEDED(hr)) {
            hr = catalog_switch(store_dir, ms->store_id, es + i, j - i);
            if (hr == S_OK) step_done(cc);
        }
        for (size_t k = i; SUCCEEDED(hr) && k < j; k++) hr = exec_finish(store_dir, &es[k], st, cc);
        if (cb && cb->step) cb->step(cb->ctx, "compacted", j, n);
        i = j;
    }
    return SUCCEEDED(hr) ? S_OK : hr;
}

/* ======================================================================
 * The job
 * ====================================================================== */

typedef struct gc_ctx {
    ddp_volume *v;
    const ddp_job_callbacks *cb;
    ddp_gc_stats *st;
    ddp_mstore ms;
    ddp_hotset hs;
    ddp_chunkstore *ro;
    uint64_t problems;
    crash_counter cc;
} gc_ctx;

static void problem(gc_ctx *g, const char *path, HRESULT hr, const char *reason)
{
    g->problems++;
    if (g->cb && g->cb->file_problem) g->cb->file_problem(g->cb->ctx, path, hr, reason);
}

static HRESULT mark_stub(gc_ctx *g, const ddp_stub *s, const char *path, int strict)
{
    ddp_mcont *sc = ddp_mstore_find(&g->ms, DDP_KIND_STREAM, s->stream_container);
    if (!sc) {
        if (!strict) return S_OK;
        return ddp_fail(DDP_E_FILE_CORRUPT,
                        "%s: its stream map is in stream container %u, which the catalog does not list; garbage "
                        "collection stopped before changing anything (run 'ddp scrub %s')",
                        path, s->stream_container, g->v->root);
    }
    ddp_offvec_push(&sc->offs, s->stream_offset);
    ddp_streammap m;
    HRESULT hr = ddp_chunkstore_read_streammap(g->ro, s->stream_container, s->stream_offset, s->streammap_hash, &m);
    if (FAILED(hr)) {
        if (!strict) {
            ddp_clear_error();
            return S_OK;
        }
        char inner[1024];
        snprintf(inner, sizeof inner, "%s", ddp_error_detail());
        return ddp_fail(hr, "%s: its stream map cannot be read (%s); garbage collection stopped before changing "
                            "anything, as it cannot tell which chunks the file needs (run 'ddp scrub %s')",
                        path, inner, g->v->root);
    }
    for (uint32_t i = 0; i < m.count; i++) {
        const ddp_streammap_entry *e = &m.entries[i];
        ddp_mcont *dc = ddp_mstore_find(&g->ms, DDP_KIND_DATA, e->loc.container);
        if (!dc) {
            if (!strict) continue;
            hr = ddp_fail(DDP_E_FILE_CORRUPT,
                          "%s: chunk %u is in data container %u, which the catalog does not list; garbage "
                          "collection stopped before changing anything (run 'ddp scrub %s')",
                          path, i, e->loc.container, g->v->root);
            break;
        }
        ddp_offvec_push(&dc->offs, e->loc.offset);
        if (g->hs.n) {
            const ddp_hotrec *r = ddp_hotset_find(&g->hs, e->hash);
            for (; r && r < g->hs.r + g->hs.n && memcmp(r->hash, e->hash, DDP_HASH_SIZE) == 0; r++) {
                ddp_mcont *hc = ddp_mstore_find(&g->ms, DDP_KIND_HOTSPOT, r->id);
                if (hc) ddp_offvec_push(&hc->offs, r->lid);
            }
        }
    }
    ddp_streammap_free(&m);
    return hr;
}

static HRESULT mark_file(gc_ctx *g, const char *path, const struct stat *seen)
{
    /* Read only, beneath the root, never through a link, O_NONBLOCK (a FIFO
     * put in a stub's place does not hang the job), the file the walk saw:
     * one fd for the check and the read. */
    int fd = -1;
    HRESULT hr = ddp_volume_open_regular(g->v, path, O_RDONLY, seen, &fd, NULL);
    if (hr == HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND) || hr == HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND) ||
        hr == HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED)) {
        ddp_clear_error(); /* gone or replaced since the directory was read: not a stub here */
        return S_OK;
    }
    if (FAILED(hr)) return hr;
    ddp_stub s;
    struct stat fst;
    uint64_t appended = 0;
    if (fstat(fd, &fst) != 0) {
        hr = ddp_fail_errno(errno, "%s", path);
        close(fd);
        return hr;
    }
    if (fst.st_size > DDP_STUB_SIZE) {
        /* A stub with bytes appended still names its content, which scrub
         * --repair restores: what it names is kept. */
        hr = ddp_volume_read_appended_stub(g->v, fd, &fst, path, &s, &appended);
        if (hr == S_OK) {
            g->st->stubs++;
            char reason[256];
            snprintf(reason, sizeof reason,
                     "%llu bytes were appended to this stub (not through ddp mount); what it names is kept: "
                     "`ddp scrub --repair` restores its content with them",
                     (unsigned long long)appended);
            problem(g, path, DDP_E_FILE_CORRUPT, reason);
            hr = mark_stub(g, &s, path, 1);
        } else if (hr == S_FALSE) {
            hr = S_OK;
        }
        close(fd);
        return hr;
    }
    hr = ddp_volume_read_stub(g->v, fd, path, &s);
    if (hr == S_OK) {
        g->st->stubs++;
        hr = mark_stub(g, &s, path, 1);
    } else if (hr == DDP_E_INVALID_DATA) {
        /* Claims to be a stub but does not authenticate (bit rot, or forged):
         * keep what it names, if it names something of this store. */
        char reason[1024];
        snprintf(reason, sizeof reason, "%s; what it names is kept", ddp_error_detail());
        problem(g, path, hr, reason);
        uint8_t buf[DDP_STUB_SIZE];
        size_t n = 0;
        if (SUCCEEDED(ddp_pread_upto(fd, buf, sizeof buf, 0, &n, path)) && SUCCEEDED(ddp_stub_peek(buf, n, &s)) &&
            memcmp(s.store_id, g->v->id.store_id, DDP_STORE_ID_SIZE) == 0)
            hr = mark_stub(g, &s, path, 0);
        else
            hr = S_OK;
        ddp_clear_error();
    } else if (hr == S_FALSE) {
        hr = S_OK;
    }
    close(fd);
    return hr;
}

static HRESULT mark_one(ddp_volume *v, FTSENT *e, void *ctx)
{
    (void)v;
    /* Stubs, and files longer than a stub (a stub with bytes appended). */
    if (!ddp_volume_may_be_stub(e->fts_statp) && e->fts_statp->st_size <= DDP_STUB_SIZE) return S_OK;
    gc_ctx *g = ctx;
    HRESULT hr = mark_file(g, e->fts_path, e->fts_statp);
    if (g->cb && g->cb->step) g->cb->step(g->cb->ctx, "stubs", g->st->stubs, 0);
    return hr;
}

static HRESULT mark_unreadable(ddp_volume *v, FTSENT *e, void *ctx)
{
    (void)v;
    (void)ctx;
    return ddp_fail_errno(e->fts_errno,
                          "cannot read %s, so the stubs in it cannot be counted; garbage collection stopped before "
                          "changing anything",
                          e->fts_path);
}

/* Every stub of the volume: a directory or file that cannot be read stops
 * the job (a stub in it would go unseen). */
static HRESULT mark(gc_ctx *g) { return ddp_volume_walk_stable(g->v, mark_one, mark_unreadable, g); }

typedef struct sweep {
    ddp_mcont *c;
    uint64_t dead_records, dead_bytes, live;
    int unnamed; /* a record its table does not name: leave the container alone */
} sweep;

static int sweep_found(void *ctx, const ddp_record_header *h, uint64_t off)
{
    sweep *w = ctx;
    uint64_t len = DDP_RECORD_HEADER_SIZE + (uint64_t)h->stored_len;
    if (h->type == DDP_RECORD_DEAD) {
        /* Retired in place by an older gc: compaction drops it. */
        w->dead_records++;
        w->dead_bytes += len;
        return 0;
    }
    if (h->type != DDP_RECORD_CHUNK && h->type != DDP_RECORD_STREAMMAP) {
        w->unnamed = 1; /* a redirection table out of place: scrub's to judge */
        return 1;
    }
    uint64_t id;
    if (!ddp_mcont_id_at(w->c, off, &id)) {
        w->unnamed = 1;
        return 1;
    }
    uint16_t want = w->c->kind == DDP_KIND_STREAM ? DDP_RECORD_STREAMMAP : DDP_RECORD_CHUNK;
    /* A record of the other type is not this container's to judge: kept. */
    if (h->type != want || ddp_offvec_has(&w->c->offs, id)) {
        w->live++;
        return 0;
    }
    w->dead_records++;
    w->dead_bytes += len;
    return 0;
}

/* The newest catalog container of kind (its id would be reused if dropped). */
static uint32_t newest_id(const ddp_mstore *ms, uint32_t kind)
{
    uint32_t best = 0;
    for (size_t i = 0; i < ms->n; i++)
        if (ms->c[i].kind == kind && ms->c[i].id > best) best = ms->c[i].id;
    return best;
}

/* Walk every container and choose those to compact or drop (*es). The live
 * sets of the chosen containers are kept for the compaction. */
static HRESULT sweep_all(gc_ctx *g, int full, plan_entry **es, size_t *nes)
{
    uint32_t threshold = full ? 0 : g->v->settings.gc_threshold;
    HRESULT hr = S_OK;
    size_t cap = 0;
    *es = NULL;
    *nes = 0;
    uint32_t newest[2] = { newest_id(&g->ms, DDP_KIND_DATA), newest_id(&g->ms, DDP_KIND_STREAM) };
    for (size_t i = 0; SUCCEEDED(hr) && i < g->ms.n; i++) {
        ddp_mcont *c = &g->ms.c[i];
        ddp_offvec_finish(&c->offs);
        int fd;
        HRESULT ho = ddp_mcont_open(&g->ms, c, O_RDONLY, &fd);
        if (FAILED(ho)) {
            if (ho != DDP_E_FILE_CORRUPT && ho != HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND)) return ho;
            char reason[1024];
            snprintf(reason, sizeof reason, "%s; its records were not collected (run 'ddp scrub')", ddp_error_detail());
            problem(g, c->path, ho, reason);
            ddp_offvec_free(&c->offs);
            continue;
        }
        struct stat sb;
        if (fstat(fd, &sb) != 0) {
            hr = ddp_fail_errno(errno, "%s", c->path);
            close(fd);
            break;
        }
        uint64_t size = (uint64_t)sb.st_size;
        sweep w;
        memset(&w, 0, sizeof w);
        w.c = c;
        uint64_t stop = 0;
        const char *why = NULL;
        hr = ddp_walk_headers(fd, c->path, size, sweep_found, &w, &stop, &why);
        close(fd);
        int chosen = 0;
        if (SUCCEEDED(hr)) {
            g->st->containers_scanned++;
            g->st->store_bytes += size;
            g->st->live_records += w.live;
            if (w.unnamed) {
                problem(g, c->path, DDP_E_FILE_CORRUPT,
                        "a record that its redirection table does not name; the container was not collected (run "
                        "'ddp scrub')");
            } else if (why && stop < size) {
                char reason[512];
                snprintf(reason, sizeof reason,
                         "offset %llu: %s; the container was not collected (run 'ddp scrub')",
                         (unsigned long long)stop, why);
                problem(g, c->path, DDP_E_FILE_CORRUPT, reason);
            } else if (w.dead_records && w.dead_bytes * 100 >= (uint64_t)threshold * size) {
                /* At least the threshold's share of the file, and at least one record. */
                /* Never drop the newest data or stream-map container: its id
                 * would come round again. It is compacted (to an empty
                 * generation when nothing is live). */
                int drop = w.live == 0 &&
                           (c->kind == DDP_KIND_HOTSPOT || c->id != newest[c->kind == DDP_KIND_DATA ? 0 : 1]);
                if (drop || c->generation < UINT32_MAX) {
                    if (*nes == cap) {
                        cap = cap ? cap * 2 : 64;
                        *es = ddp_xrealloc(*es, cap * sizeof **es);
                    }
                    plan_entry *e = &(*es)[(*nes)++];
                    memset(e, 0, sizeof *e);
                    e->kind = c->kind;
                    e->id = c->id;
                    e->old_gen = c->generation;
                    e->new_gen = drop ? 0 : c->generation + 1;
                    e->end = stop;
                    e->c = c;
                    e->dead_records = w.dead_records;
                    e->dead_bytes = w.dead_bytes;
                    chosen = 1;
                }
            }
        }
        if (g->cb && g->cb->step) g->cb->step(g->cb->ctx, "containers", i + 1, g->ms.n);
        /* The live set of this container is no longer needed unless it is compacted. */
        if (!chosen) ddp_offvec_free(&c->offs);
    }
    return hr;
}

/* Close the volume's store (its index may be about to name collected
 * records) and open it for writing once: that finishes an interrupted
 * collection and cuts the torn tails a crashed job left, so every container
 * is clean. */
static HRESULT settle_store(ddp_volume *v, int reopen_once)
{
    HRESULT hr = S_OK;
    pthread_mutex_lock(&v->store_mu);
    if (v->store) hr = ddp_chunkstore_close(v->store);
    v->store = NULL;
    pthread_mutex_unlock(&v->store_mu);
    if (FAILED(hr) || !reopen_once) return hr;
    ddp_chunkstore *cs = NULL;
    hr = ddp_volume_store(v, &cs);
    pthread_mutex_lock(&v->store_mu);
    if (v->store) {
        HRESULT hc = ddp_chunkstore_close(v->store);
        if (SUCCEEDED(hr)) hr = hc;
    }
    v->store = NULL;
    pthread_mutex_unlock(&v->store_mu);
    return hr;
}

DDP_API HRESULT ddp_gc(ddp_volume *v, int full, const ddp_job_callbacks *cb, ddp_gc_stats *st)
{
    ddp_clear_error();
    ddp_gc_stats local;
    if (!st) st = &local;
    memset(st, 0, sizeof *st);
    if (!v) return E_POINTER;
    HRESULT jr = ddp_volume_require_job(v);
    if (SUCCEEDED(jr)) jr = ddp_volume_require_writable(v, "garbage collection");
    if (FAILED(jr)) return jr;
    double t0 = ddp_now();
    gc_ctx g;
    memset(&g, 0, sizeof g);
    g.v = v;
    g.cb = cb;
    g.st = st;
    const char *crash = getenv("DDP_GC_CRASH_AFTER");
    if (crash && *crash) g.cc.after = strtol(crash, NULL, 10);
    plan_entry *es = NULL;
    size_t nes = 0;

    HRESULT hr = settle_store(v, 1);
    if (SUCCEEDED(hr)) hr = ddp_mstore_load(v->store_dir, v->id.store_id, &g.ms);
    if (SUCCEEDED(hr)) hr = ddp_hotset_load(&g.ms, &g.hs);
    if (SUCCEEDED(hr))
        hr = ddp_chunkstore_open(v->store_dir, NULL, v->id.store_id, DDP_STORE_READONLY, 0, &g.ro);
    if (SUCCEEDED(hr)) hr = mark(&g);
    ddp_chunkstore_close(g.ro);
    g.ro = NULL;
    ddp_hotset_free(&g.hs);
    if (SUCCEEDED(hr)) hr = sweep_all(&g, full, &es, &nes);
    if (SUCCEEDED(hr) && nes > 0) {
        /* 1. The plan, durable before anything changes. */
        hr = plan_write(v->state_dir, v->id.store_id, es, nes);
        if (SUCCEEDED(hr)) step_done(&g.cc);
        /* 2. The index, which would name collected records. */
        if (SUCCEEDED(hr)) hr = drop_index(v->state_dir);
        if (SUCCEEDED(hr)) step_done(&g.cc);
        /* 3. Container by container. */
        exec_stats xs;
        memset(&xs, 0, sizeof xs);
        if (SUCCEEDED(hr)) hr = exec_all(v->store_dir, &g.ms, es, nes, &xs, &g.cc, g.cb);
        st->containers_collected = xs.compacted;
        st->containers_dropped = xs.dropped;
        st->dead_records = xs.records;
        st->dead_bytes = xs.bytes;
        st->reclaimed_bytes = xs.reclaimed;
        /* 4. Done: the plan goes (the index is already gone, so it is rebuilt). */
        if (SUCCEEDED(hr)) hr = remove_plan(v->state_dir);
        if (SUCCEEDED(hr)) step_done(&g.cc);
        /* 5. The index, rebuilt from the containers by the writable open. */
        if (SUCCEEDED(hr)) {
            ddp_chunkstore *cs = NULL;
            hr = ddp_volume_store(v, &cs);
            if (SUCCEEDED(hr)) hr = ddp_chunkstore_commit(cs);
            if (SUCCEEDED(hr)) step_done(&g.cc);
        }
    }
    free(es);
    if (SUCCEEDED(hr)) {
        /* Counts changed or the threshold did: refresh the hotspot copies
         * (cheap when nothing changed). Not this job's failure if it fails. */
        HRESULT hh = ddp_hotspot_update(v);
        if (FAILED(hh)) {
            problem(&g, v->root, hh, ddp_error_detail());
            ddp_clear_error();
        }
    }
    ddp_mstore_free(&g.ms);
    st->seconds = ddp_now() - t0;
    if (SUCCEEDED(hr) && g.problems) hr = DDP_E_JOB_COMPLETED_PARTIAL_SUCCESS;

    char line[640];
    double mbps = st->seconds > 0 ? (double)st->store_bytes / 1e6 / st->seconds : 0;
    snprintf(line, sizeof line,
             "gc 0x%08X full=%d stubs=%llu containers=%llu compacted=%llu dropped=%llu dead_records=%llu "
             "dead_bytes=%llu reclaimed=%llu store_bytes=%llu mb_per_s=%.1f seconds=%.1f",
             (unsigned)hr, full ? 1 : 0, (unsigned long long)st->stubs, (unsigned long long)st->containers_scanned,
             (unsigned long long)st->containers_collected, (unsigned long long)st->containers_dropped,
             (unsigned long long)st->dead_records, (unsigned long long)st->dead_bytes,
             (unsigned long long)st->reclaimed_bytes, (unsigned long long)st->store_bytes, mbps, st->seconds);
    ddp_volume_log_job(v, line);
    return hr;
}
