/* SPDX-License-Identifier: MIT */
/*
 * gc.c: garbage collection (Windows: Start-DedupJob -Type GarbageCollection),
 * over the store walk of store/storewalk.h, and the resume of an interrupted
 * collection that volume.c calls before it opens a store for a job. The
 * design is in docs/MAINTENANCE.md; in short:
 *
 * Nothing moves. Stream maps and stubs name chunks by (container id, record
 * offset), so moving a record would mean rewriting stream maps and re-MACing
 * stubs. Instead a dead record is retired where it is: its 64-byte header is
 * rewritten with type DEAD (stored_len kept, so scans step over it) and the
 * whole 4 KiB blocks inside its payload are punched out of the file
 * (fallocate PUNCH_HOLE | KEEP_SIZE). The file keeps its size; its allocated
 * blocks shrink.
 *
 * Mark. Every stub on the volume (copies of stubs count) is authenticated
 * and its stream map read: the stream-map record and every chunk record it
 * names are live, kept as sorted uint64 offset vectors per container (8
 * bytes per distinct live record; duplicates are folded whenever a vector
 * doubles). A hotspot copy is live while its hash is referenced. A file that
 * claims to be a stub of this store but does not authenticate (bit rot in a
 * stub) still keeps what it names: GC never decides that data is garbage on
 * the word of a damaged file. A directory that cannot be read, or a valid
 * stub whose stream map cannot be read, stops the job before anything is
 * changed: GC cannot prove what that stub references.
 *
 * Sweep. Each container's record headers are walked (headers only): a chunk
 * or stream-map record not in the live set is dead. A regular run retires
 * the dead records of a container only when they are at least gc_threshold
 * percent of it (setting, default 5); `full` takes every container with a
 * dead record.
 *
 * Kill, in this crash-safe order:
 *   1. the plan (every dead record: container, offset, type, length, hash)
 *      is written to State/gc.plan (temporary file, fsync, rename, fsync);
 *   2. State/index is deleted and the directory fsynced (the index is a
 *      cache; a writable open rebuilds a missing one from the containers,
 *      and DEAD records are not chunks, so it never names them);
 *   3. per container: each planned record's header is checked (still the
 *      planned record? already DEAD?) and rewritten as DEAD, then fsync;
 *   4. only then the payload blocks of those records are punched, fsync;
 *   5. gc.plan is removed (fsync): the index is already gone, so a crash
 *      from here on still rebuilds it;
 *   6. the store is reopened for writing (which rebuilds the index) and
 *      checkpointed.
 * A job's open of the store that finds gc.plan (a crash during 2-5) runs
 * 2-5 again (ddp_gc_resume, called by volume.c):
 * every step is idempotent. A crash at any point loses no live record: only
 * planned records are touched, and only records no stub referenced are
 * planned (the job lock keeps optimization out meanwhile).
 *
 * Fault points for tests: with DDP_GC_CRASH_AFTER=N in the environment, the
 * job calls _exit(99) right after its N-th step (plan written, index
 * deleted, each header written, each container fsynced, each hole punched,
 * plan removed, index rebuilt). It is read by ddp_gc only, never by the
 * resume path.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fts.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "store/catalog.h"
#include "store/chunkstore.h"
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
#define PLAN_ENTRY 64
#define PLAN_TRAILER 8
#define PLAN_VERSION 1u
#define PUNCH_BLOCK 4096u
#define CATALOG_MAX ((size_t)32 + (size_t)24 * DDP_CATALOG_MAX_ENTRIES + 8)
#define PLAN_BUF ((size_t)1 << 20)

static const char plan_magic[8] = { 'D', 'D', 'P', 'G', 'C', 'P', 'L', '1' };

/* ======================================================================
 * The plan: State/gc.plan
 *
 *   header (64): "DDPGCPL1", u32 version 1, u32 entry size 64, store id (16),
 *                u64 entry count, 16 reserved zero bytes, xxh64 of bytes 0..55
 *   entries (64 each, grouped by container):
 *                u32 kind, u32 container id, u32 generation, u16 record type,
 *                u8 codec, u8 0, u64 record offset, u32 stored_len,
 *                u32 logical_len, sha256 (32)
 *   trailer (8): xxh64 of all entry bytes
 * ====================================================================== */

typedef struct plan_entry {
    uint32_t kind, id, generation;
    uint16_t type;
    uint8_t codec;
    uint64_t off;
    uint32_t stored_len, logical_len;
    uint8_t hash[DDP_HASH_SIZE];
} plan_entry;

static void plan_entry_encode(const plan_entry *e, uint8_t out[PLAN_ENTRY])
{
    memset(out, 0, PLAN_ENTRY);
    ddp_put_le32(out, e->kind);
    ddp_put_le32(out + 4, e->id);
    ddp_put_le32(out + 8, e->generation);
    ddp_put_le16(out + 12, e->type);
    out[14] = e->codec;
    ddp_put_le64(out + 16, e->off);
    ddp_put_le32(out + 24, e->stored_len);
    ddp_put_le32(out + 28, e->logical_len);
    memcpy(out + 32, e->hash, DDP_HASH_SIZE);
}

static int plan_entry_decode(const uint8_t in[PLAN_ENTRY], plan_entry *e)
{
    e->kind = ddp_get_le32(in);
    e->id = ddp_get_le32(in + 4);
    e->generation = ddp_get_le32(in + 8);
    e->type = ddp_get_le16(in + 12);
    e->codec = in[14];
    e->off = ddp_get_le64(in + 16);
    e->stored_len = ddp_get_le32(in + 24);
    e->logical_len = ddp_get_le32(in + 28);
    memcpy(e->hash, in + 32, DDP_HASH_SIZE);
    return e->kind >= DDP_KIND_DATA && e->kind <= DDP_KIND_HOTSPOT && e->id && e->generation &&
           (e->type == DDP_RECORD_CHUNK || e->type == DDP_RECORD_STREAMMAP) && e->off >= DDP_CONTAINER_HEADER_SIZE &&
           in[15] == 0;
}

static void plan_header_encode(const uint8_t store_id[DDP_STORE_ID_SIZE], uint64_t count, uint8_t out[PLAN_HEADER])
{
    memset(out, 0, PLAN_HEADER);
    memcpy(out, plan_magic, 8);
    ddp_put_le32(out + 8, PLAN_VERSION);
    ddp_put_le32(out + 12, PLAN_ENTRY);
    memcpy(out + 16, store_id, DDP_STORE_ID_SIZE);
    ddp_put_le64(out + 32, count);
    ddp_put_le64(out + 56, ddp_checksum64(out, 56));
}

typedef struct plan_writer {
    int fd;
    char *tmp, *path;
    uint8_t *buf;
    size_t len;
    uint64_t count, written;
    XXH3_state_t *sum;
    HRESULT err;
} plan_writer;

static HRESULT plan_open(plan_writer *pw, const char *state_dir)
{
    memset(pw, 0, sizeof *pw);
    pw->tmp = ddp_path_join(state_dir, PLAN_TMP);
    pw->path = ddp_path_join(state_dir, PLAN_FILE);
    pw->fd = open(pw->tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (pw->fd < 0) return ddp_fail_errno(errno, "creating %s", pw->tmp);
    pw->buf = ddp_xmalloc(PLAN_BUF);
    pw->sum = XXH3_createState();
    if (!pw->sum) abort();
    XXH3_64bits_reset(pw->sum);
    pw->written = PLAN_HEADER;
    return S_OK;
}

static HRESULT plan_flush(plan_writer *pw)
{
    if (FAILED(pw->err) || !pw->len) return pw->err;
    pw->err = ddp_pwrite_all(pw->fd, pw->buf, pw->len, pw->written, pw->tmp);
    pw->written += pw->len;
    pw->len = 0;
    return pw->err;
}

static HRESULT plan_add(plan_writer *pw, const plan_entry *e)
{
    if (pw->len + PLAN_ENTRY > PLAN_BUF && FAILED(plan_flush(pw))) return pw->err;
    plan_entry_encode(e, pw->buf + pw->len);
    XXH3_64bits_update(pw->sum, pw->buf + pw->len, PLAN_ENTRY);
    pw->len += PLAN_ENTRY;
    pw->count++;
    return S_OK;
}

/* Header, trailer, fsync, rename, fsync the directory. */
static HRESULT plan_commit(plan_writer *pw, const uint8_t store_id[DDP_STORE_ID_SIZE])
{
    HRESULT hr = plan_flush(pw);
    uint8_t tb[PLAN_TRAILER], hb[PLAN_HEADER];
    ddp_put_le64(tb, XXH3_64bits_digest(pw->sum));
    plan_header_encode(store_id, pw->count, hb);
    if (SUCCEEDED(hr)) hr = ddp_pwrite_all(pw->fd, tb, sizeof tb, pw->written, pw->tmp);
    if (SUCCEEDED(hr)) hr = ddp_pwrite_all(pw->fd, hb, sizeof hb, 0, pw->tmp);
    if (SUCCEEDED(hr)) hr = ddp_fsync_fd(pw->fd, pw->tmp);
    if (SUCCEEDED(hr) && rename(pw->tmp, pw->path) != 0) hr = ddp_fail_errno(errno, "renaming %s", pw->tmp);
    if (SUCCEEDED(hr)) hr = ddp_fsync_parent(pw->path);
    return hr;
}

static void plan_close(plan_writer *pw, int remove_tmp)
{
    if (pw->fd >= 0) close(pw->fd);
    if (remove_tmp && pw->tmp) unlink(pw->tmp);
    if (pw->sum) XXH3_freeState(pw->sum);
    free(pw->buf);
    free(pw->tmp);
    free(pw->path);
    memset(pw, 0, sizeof *pw);
    pw->fd = -1;
}

/* ======================================================================
 * Executing a plan (the job, and the resume after a crash)
 * ====================================================================== */

typedef struct exec_stats {
    uint64_t containers, records, bytes;
    uint64_t blocks_before, blocks_after; /* 512-byte units */
    int punch_unsupported;
} exec_stats;

typedef struct crash_counter {
    long after; /* 0: off */
    long steps;
} crash_counter;

static void step_done(crash_counter *cc)
{
    if (!cc || cc->after <= 0) return;
    if (++cc->steps >= cc->after) _exit(99);
}

static HRESULT punch(int fd, uint64_t start, uint64_t len, int *unsupported, const char *what)
{
    /* Whole blocks inside [start, start + len) only. */
    uint64_t a = (start + PUNCH_BLOCK - 1) / PUNCH_BLOCK * PUNCH_BLOCK;
    uint64_t b = (start + len) / PUNCH_BLOCK * PUNCH_BLOCK;
    if (b <= a || *unsupported) return S_OK;
    if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)a, (off_t)(b - a)) != 0) {
        if (errno == EOPNOTSUPP || errno == ENOSYS) {
            *unsupported = 1;
            return S_OK;
        }
        return ddp_fail_errno(errno, "punching a hole in container %s at %llu", what, (unsigned long long)a);
    }
    return S_OK;
}

/* Retire the planned records of one container (all entries name it). */
static HRESULT exec_container(const char *store_dir, const plan_entry *es, size_t n, exec_stats *st,
                              crash_counter *cc)
{
    char rel[40];
    ddp_container_relpath(es[0].kind, es[0].id, es[0].generation, rel);
    char *path = ddp_path_join(store_dir, rel);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        HRESULT hr = errno == ENOENT ? S_OK : ddp_fail_errno(errno, "opening container %s", path);
        free(path);
        return hr; /* a container that is gone has nothing to retire */
    }
    struct stat sb;
    HRESULT hr = S_OK;
    if (fstat(fd, &sb) != 0) hr = ddp_fail_errno(errno, "%s", path);
    uint64_t size = SUCCEEDED(hr) ? (uint64_t)sb.st_size : 0;
    uint64_t blocks0 = SUCCEEDED(hr) ? (uint64_t)sb.st_blocks : 0;
    uint8_t *dead = ddp_xcalloc(n, 1);
    int any = 0;

    /* 3. The headers. */
    for (size_t i = 0; SUCCEEDED(hr) && i < n; i++) {
        const plan_entry *e = &es[i];
        if (e->off + DDP_RECORD_HEADER_SIZE + e->stored_len > size) continue;
        uint8_t hb[DDP_RECORD_HEADER_SIZE];
        if (FAILED(hr = ddp_pread_exact(fd, hb, sizeof hb, e->off, path))) break;
        ddp_record_header h;
        if (FAILED(ddp_record_header_decode_any(hb, &h))) {
            ddp_clear_error(); /* damaged since it was planned: leave it to scrub */
            continue;
        }
        if (h.stored_len != e->stored_len || memcmp(h.hash, e->hash, DDP_HASH_SIZE) != 0) continue;
        if (h.type == DDP_RECORD_DEAD) {
            dead[i] = 1; /* done by an earlier, interrupted run */
            continue;
        }
        if (h.type != e->type) continue;
        uint8_t nb[DDP_RECORD_HEADER_SIZE];
        ddp_record_header_encode_dead(&h, nb);
        if (FAILED(hr = ddp_pwrite_all(fd, nb, sizeof nb, e->off, path))) break;
        dead[i] = 1;
        any = 1;
        if (st) {
            st->records++;
            st->bytes += DDP_RECORD_HEADER_SIZE + (uint64_t)e->stored_len;
        }
        step_done(cc);
    }
    if (SUCCEEDED(hr) && any) {
        hr = ddp_fsync_fd(fd, path);
        if (SUCCEEDED(hr)) step_done(cc);
    }

    /* 4. The payloads, only once their DEAD headers are durable. */
    int unsupported = st ? st->punch_unsupported : 0;
    int punched = 0;
    for (size_t i = 0; SUCCEEDED(hr) && i < n; i++) {
        if (!dead[i]) continue;
        hr = punch(fd, es[i].off + DDP_RECORD_HEADER_SIZE, es[i].stored_len, &unsupported, path);
        if (SUCCEEDED(hr) && !unsupported) {
            punched = 1;
            step_done(cc);
        }
    }
    if (SUCCEEDED(hr) && punched) hr = ddp_fsync_fd(fd, path);
    if (SUCCEEDED(hr) && st) {
        st->containers++;
        st->punch_unsupported = unsupported;
        if (fstat(fd, &sb) == 0) {
            st->blocks_before += blocks0;
            st->blocks_after += (uint64_t)sb.st_blocks;
        }
    }
    free(dead);
    close(fd);
    free(path);
    return hr;
}

/* Check the plan file whole (size, header, trailer checksum). 1 valid
 * (*count set), 0 damaged, <0 I/O error (*err). */
static int plan_check(int fd, const char *path, const uint8_t store_id[DDP_STORE_ID_SIZE], uint64_t *count,
                      HRESULT *err)
{
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        *err = ddp_fail_errno(errno, "%s", path);
        return -1;
    }
    uint64_t size = (uint64_t)sb.st_size;
    if (size < PLAN_HEADER + PLAN_TRAILER) return 0;
    uint8_t hb[PLAN_HEADER];
    if (FAILED(*err = ddp_pread_exact(fd, hb, sizeof hb, 0, path))) return -1;
    if (memcmp(hb, plan_magic, 8) != 0 || ddp_get_le64(hb + 56) != ddp_checksum64(hb, 56) ||
        ddp_get_le32(hb + 8) != PLAN_VERSION || ddp_get_le32(hb + 12) != PLAN_ENTRY ||
        memcmp(hb + 16, store_id, DDP_STORE_ID_SIZE) != 0)
        return 0;
    uint64_t n = ddp_get_le64(hb + 32);
    if (n > (size - PLAN_HEADER - PLAN_TRAILER) / PLAN_ENTRY || PLAN_HEADER + n * PLAN_ENTRY + PLAN_TRAILER != size)
        return 0;
    XXH3_state_t *sum = XXH3_createState();
    if (!sum) abort();
    XXH3_64bits_reset(sum);
    uint8_t *buf = ddp_xmalloc(PLAN_BUF);
    uint64_t pos = PLAN_HEADER, end = PLAN_HEADER + n * PLAN_ENTRY;
    int ok = 1;
    while (pos < end) {
        size_t k = end - pos < PLAN_BUF ? (size_t)(end - pos) : PLAN_BUF;
        if (FAILED(*err = ddp_pread_exact(fd, buf, k, pos, path))) {
            ok = -1;
            break;
        }
        XXH3_64bits_update(sum, buf, k);
        pos += k;
    }
    if (ok == 1) {
        uint8_t tb[PLAN_TRAILER];
        if (FAILED(*err = ddp_pread_exact(fd, tb, sizeof tb, end, path))) ok = -1;
        else if (ddp_get_le64(tb) != XXH3_64bits_digest(sum)) ok = 0;
    }
    free(buf);
    XXH3_freeState(sum);
    *count = n;
    return ok;
}

/* Steps 2-5 for the plan in state_dir (it exists). */
static HRESULT plan_execute(const char *store_dir, const char *state_dir, const uint8_t store_id[DDP_STORE_ID_SIZE],
                            exec_stats *st, crash_counter *cc)
{
    char *ppath = ddp_path_join(state_dir, PLAN_FILE);
    char *ipath = ddp_path_join(state_dir, INDEX_FILE);
    HRESULT hr = S_OK;
    int fd = open(ppath, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        hr = errno == ENOENT ? S_FALSE : ddp_fail_errno(errno, "opening %s", ppath);
        goto out;
    }
    uint64_t count = 0;
    int valid = plan_check(fd, ppath, store_id, &count, &hr);
    if (valid < 0) goto out;

    /* 2. The index goes first, whatever the plan holds. */
    if (unlink(ipath) != 0 && errno != ENOENT) {
        hr = ddp_fail_errno(errno, "deleting the index %s", ipath);
        goto out;
    }
    if (FAILED(hr = ddp_fsync_dir(state_dir))) goto out;
    step_done(cc);

    /* 3-4, container by container. A damaged plan retires nothing: the
     * records it named are still valid, unreferenced records that the next
     * collection finds again. */
    if (valid) {
        uint8_t *buf = ddp_xmalloc(PLAN_BUF);
        plan_entry *group = NULL;
        size_t gn = 0, gcap = 0;
        uint64_t pos = PLAN_HEADER, end = PLAN_HEADER + count * PLAN_ENTRY;
        while (SUCCEEDED(hr) && pos < end) {
            size_t k = end - pos < PLAN_BUF ? (size_t)(end - pos) : PLAN_BUF;
            if (FAILED(hr = ddp_pread_exact(fd, buf, k, pos, ppath))) break;
            pos += k;
            for (size_t i = 0; SUCCEEDED(hr) && i < k; i += PLAN_ENTRY) {
                plan_entry e;
                if (!plan_entry_decode(buf + i, &e)) continue;
                if (gn && (group[0].kind != e.kind || group[0].id != e.id || group[0].generation != e.generation)) {
                    hr = exec_container(store_dir, group, gn, st, cc);
                    gn = 0;
                }
                if (gn == gcap) {
                    gcap = gcap ? gcap * 2 : 256;
                    group = ddp_xrealloc(group, gcap * sizeof *group);
                }
                group[gn++] = e;
            }
        }
        if (SUCCEEDED(hr) && gn) hr = exec_container(store_dir, group, gn, st, cc);
        free(group);
        free(buf);
        if (FAILED(hr)) goto out;
    }

    /* 5. Done: the plan goes (the index is already gone, so it is rebuilt). */
    close(fd);
    fd = -1;
    if (unlink(ppath) != 0 && errno != ENOENT) {
        hr = ddp_fail_errno(errno, "removing %s", ppath);
        goto out;
    }
    if (FAILED(hr = ddp_fsync_dir(state_dir))) goto out;
    step_done(cc);
    hr = S_OK;
out:
    if (fd >= 0) close(fd);
    free(ppath);
    free(ipath);
    return hr;
}

HRESULT ddp_gc_resume(const char *store_dir, const char *state_dir, const uint8_t store_id[DDP_STORE_ID_SIZE])
{
    if (!store_dir || !state_dir || !store_id) return E_POINTER;
    char *ppath = ddp_path_join(state_dir, PLAN_FILE);
    int exists = access(ppath, F_OK) == 0;
    free(ppath);
    if (!exists) return S_FALSE;
    return plan_execute(store_dir, state_dir, store_id, NULL, NULL);
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

/* Mark what the stub s (of file path) references. strict: s authenticated,
 * so anything unreadable stops the job. */
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
                if (hc) ddp_offvec_push(&hc->offs, r->off);
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
    plan_entry *dead;
    size_t n, cap;
    uint64_t dead_bytes, live;
} sweep;

static int sweep_found(void *ctx, const ddp_record_header *h, uint64_t off)
{
    sweep *w = ctx;
    uint16_t want = w->c->kind == DDP_KIND_STREAM ? DDP_RECORD_STREAMMAP : DDP_RECORD_CHUNK;
    if (h->type != want) return 0; /* DEAD already, or not what this container holds: not ours to retire */
    if (ddp_offvec_has(&w->c->offs, off)) {
        w->live++;
        return 0;
    }
    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 256;
        w->dead = ddp_xrealloc(w->dead, w->cap * sizeof *w->dead);
    }
    plan_entry *e = &w->dead[w->n++];
    e->kind = w->c->kind;
    e->id = w->c->id;
    e->generation = w->c->generation;
    e->type = h->type;
    e->codec = h->codec;
    e->off = off;
    e->stored_len = h->stored_len;
    e->logical_len = h->logical_len;
    memcpy(e->hash, h->hash, DDP_HASH_SIZE);
    w->dead_bytes += DDP_RECORD_HEADER_SIZE + (uint64_t)h->stored_len;
    return 0;
}

/* Walk every container and write the dead records of those to collect to pw. */
static HRESULT sweep_all(gc_ctx *g, plan_writer *pw, int full)
{
    uint32_t threshold = full ? 0 : g->v->settings.gc_threshold;
    HRESULT hr = S_OK;
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
        if (SUCCEEDED(hr)) {
            g->st->containers_scanned++;
            g->st->store_bytes += size;
            g->st->live_records += w.live;
            if (why && stop < size) {
                char reason[512];
                snprintf(reason, sizeof reason,
                         "offset %llu: %s; the records after it were not collected (run 'ddp scrub')",
                         (unsigned long long)stop, why);
                problem(g, c->path, DDP_E_FILE_CORRUPT, reason);
            }
            /* At least the threshold's share of the file, and at least one record. */
            if (w.n && w.dead_bytes * 100 >= (uint64_t)threshold * size) {
                for (size_t k = 0; SUCCEEDED(hr) && k < w.n; k++) hr = plan_add(pw, &w.dead[k]);
                g->st->containers_collected++;
            }
        }
        free(w.dead);
        if (g->cb && g->cb->step) g->cb->step(g->cb->ctx, "containers", i + 1, g->ms.n);
        /* The live set of this container is no longer needed. */
        ddp_offvec_free(&c->offs);
    }
    return hr;
}

/* Close the volume's store (its index may be about to name retired records)
 * and open it for writing once: that finishes an interrupted collection and
 * cuts the torn tails a crashed job left, so every container is clean. */
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
    plan_writer pw;
    memset(&pw, 0, sizeof pw);
    pw.fd = -1;
    int planned = 0;

    HRESULT hr = settle_store(v, 1);
    if (SUCCEEDED(hr)) hr = ddp_mstore_load(v->store_dir, v->id.store_id, &g.ms);
    if (SUCCEEDED(hr)) hr = ddp_hotset_load(&g.ms, &g.hs);
    if (SUCCEEDED(hr))
        hr = ddp_chunkstore_open(v->store_dir, NULL, v->id.store_id, DDP_STORE_READONLY, 0, &g.ro);
    if (SUCCEEDED(hr)) hr = mark(&g);
    ddp_chunkstore_close(g.ro);
    g.ro = NULL;
    ddp_hotset_free(&g.hs);
    if (SUCCEEDED(hr)) hr = plan_open(&pw, v->state_dir);
    if (SUCCEEDED(hr)) hr = sweep_all(&g, &pw, full);
    if (SUCCEEDED(hr) && pw.count > 0) {
        /* 1. The plan, durable before anything changes. */
        hr = plan_commit(&pw, v->id.store_id);
        if (SUCCEEDED(hr)) {
            planned = 1;
            step_done(&g.cc);
        }
    }
    plan_close(&pw, !planned);

    if (planned) {
        /* 2-5. */
        exec_stats es;
        memset(&es, 0, sizeof es);
        hr = plan_execute(v->store_dir, v->state_dir, v->id.store_id, &es, &g.cc);
        st->dead_records = es.records;
        st->dead_bytes = es.bytes;
        st->reclaimed_bytes = es.blocks_before > es.blocks_after ? (es.blocks_before - es.blocks_after) * 512 : 0;
        st->punch_unsupported = es.punch_unsupported;
        /* 6. The index, rebuilt from the containers by the writable open. */
        if (SUCCEEDED(hr)) {
            ddp_chunkstore *cs = NULL;
            hr = ddp_volume_store(v, &cs);
            if (SUCCEEDED(hr)) hr = ddp_chunkstore_commit(cs);
            if (SUCCEEDED(hr)) step_done(&g.cc);
        }
    }
    if (SUCCEEDED(hr)) {
        /* Counts changed or the threshold did: refresh the hotspot copies
         * (cheap when nothing changed). Not this job's failure if it fails. */
        if (FAILED(ddp_hotspot_update(v))) {
            problem(&g, v->root, E_FAIL, ddp_error_detail());
            ddp_clear_error();
        }
    }
    ddp_mstore_free(&g.ms);
    st->seconds = ddp_now() - t0;
    if (SUCCEEDED(hr) && g.problems) hr = DDP_E_JOB_COMPLETED_PARTIAL_SUCCESS;

    char line[512];
    snprintf(line, sizeof line,
             "gc 0x%08X full=%d stubs=%llu containers=%llu collected=%llu dead_records=%llu dead_bytes=%llu "
             "reclaimed=%llu seconds=%.1f",
             (unsigned)hr, full ? 1 : 0, (unsigned long long)st->stubs, (unsigned long long)st->containers_scanned,
             (unsigned long long)st->containers_collected, (unsigned long long)st->dead_records,
             (unsigned long long)st->dead_bytes, (unsigned long long)st->reclaimed_bytes, st->seconds);
    ddp_volume_log_job(v, line);
    return hr;
}
