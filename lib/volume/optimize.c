/* SPDX-License-Identifier: MIT */
/*
 * optimize.c: the optimization job (Windows: Start-DedupJob -Type
 * Optimization). Walks the volume, and for each file in policy: chunks it
 * (content-defined), hashes each chunk, stores the chunks the store does not
 * have yet (compressed when they shrink), and replaces the file with a stub.
 *
 * Threads: the calling thread walks the tree and feeds a bounded queue;
 * one worker per core takes a file, reads it in blocks and cuts each block
 * into chunks; the block's chunks are hashed and stored by the owner and by
 * every worker with no file to take (see "steps 1 and 2" below), so one
 * large file keeps every core busy, and its chunks are those of one pass
 * over the file. Finished files wait
 * in a commit batch; a committer thread commits each batch (so workers never
 * wait for the disk), in the durability order of DESIGN.md:
 *   1. the chunks of every file in the batch are synced (sync_data),
 *   2. their stream maps are appended and synced (sync_streams),
 *   3. each stub is written to a private temporary (.ddp/Temp, O_TMPFILE)
 *      with the original's owner, mode, times and xattrs, synced; the
 *      original, opened beneath the root from a held directory fd, is
 *      checked unchanged (device, inode, size, mtime, ctime) under a write
 *      lease (volume/replace.h: a file anyone has open is left as it is),
 *      the stub is exchanged with it, and every touched directory is synced.
 *   4. the replaced originals' last close (which frees their blocks and may
 *      wait for the device's discards) is left to reaper threads.
 * Where the time goes (walk, read, chunk, hash, store, the commit's steps,
 * waits, CPU of each kind of thread) is written to the job log as an
 * "optimize-timing" line (bench/bench_optimize.sh prints it).
 * A crash at any point leaves each file either as it was or as a complete
 * stub; chunks written for files that never got their stub are found again by
 * the next run (the store re-indexes a container's tail on open).
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <fts.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/chunker.h"
#include "store/container.h"
#include "base/fileattr.h"
#include "volume/maintenance.h"
#include "store/stub.h"
#include "base/util.h"
#include "volume/replace.h"
#include "volume/volume.h"

/* A file is read in blocks of this size (see "steps 1 and 2": small enough
 * to be still in the cache when its chunks are hashed and compressed). */
#define READ_BLOCK ((size_t)1 << 20)
#define QUEUE_CAP 256
#define BATCH_FILES 64
#define BATCH_BYTES ((uint64_t)128 << 20)
/* Replaced originals waiting for their last close (see reaper()), and the
 * threads that close them. */
#define REAP_MAX 256
#define REAPERS 4

/* Where a job's time goes (seconds; summed over threads), written to the
 * job log as an "optimize-timing" line (bench/bench_optimize.sh prints it). */
enum {
    T_OPEN, T_READ, T_CHUNK, T_HASH, T_PUT_NEW, T_PUT_DUP, T_QUEUE_WAIT, T_HELP_WAIT, T_BATCH_WAIT, T_WORKER_OTHER,
    T_WALK, T_FEED_WAIT,
    T_CWAIT, T_SYNC_DATA, T_STREAMS, T_SYNC_STREAMS, T_PREPARE, T_SYNC_STUBS, T_REPLACE, T_SYNC_DIRS, T_END,
    T_JOIN_WORKERS, T_JOIN_COMMIT, T_JOIN_REAPERS, T_HOTSPOT, T_STORE_COMMIT,
    T_CPU_WORKERS, T_CPU_COMMITTER, T_CPU_MAIN, /* CPU time of the threads */
    T_COUNT
};
static const char *const t_name[T_COUNT] = {
    "open", "read", "chunk", "hash", "put_new", "put_dup", "queue_wait", "help_wait", "batch_wait", "worker_other",
    "walk", "feed_wait",
    "commit_wait", "sync_data", "streammaps", "sync_streams", "stub_prepare", "sync_stubs", "replace",
    "sync_dirs", "replace_end",
    "join_workers", "join_committer", "join_reapers", "hotspot", "store_commit",
    "cpu_workers", "cpu_committer", "cpu_main",
};

/* CPU seconds the calling thread has used. */
static double thread_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct work_item {
    char *path;
    struct stat st;
} work_item;

typedef struct pending {
    char *path;
    struct stat st;
    uint8_t *map;
    size_t map_len;
    uint8_t map_hash[DDP_HASH_SIZE];
    uint8_t file_hash[DDP_HASH_SIZE];
    uint64_t size;
} pending;

typedef struct job {
    ddp_volume *v;
    ddp_chunkstore *cs;
    const ddp_job_callbacks *cb;
    ddp_job_stats *stats;
    double t0;

    pthread_mutex_t mu;          /* queue, stats, callbacks */
    pthread_cond_t not_empty, not_full;
    work_item queue[QUEUE_CAP];
    size_t qhead, qlen;
    int done_feeding;
    unsigned busy;               /* workers inside a file (they may still publish blocks) */
    struct block *open[64];      /* published blocks with chunks nobody has taken yet */
    size_t nopen;
    pthread_cond_t block_done;   /* a published block's last chunk is stored */
    _Atomic HRESULT fatal;       /* first error that stops the job */
    char fatal_detail[1024];     /* its detail line (set in whichever thread failed) */

    pthread_mutex_t commit_mu;   /* the waiting batch */
    pthread_cond_t batch_full, batch_room;
    pending *batch;
    size_t batch_len, batch_cap;
    uint64_t batch_bytes;
    int workers_done;
    time_t now;                  /* the policy's "now" (minimum age) */

    pthread_mutex_t reap_mu;     /* replaced originals to close */
    pthread_cond_t reap_more;
    int reap[REAP_MAX];
    size_t reap_len;
    int reap_done;
    unsigned reapers;
    double t[T_COUNT];           /* under mu */
} job;

/* Adds the time since *mark to slot k of a thread's own table; moves *mark. */
static void tick(double *t, int k, double *mark)
{
    double now = ddp_now();
    t[k] += now - *mark;
    *mark = now;
}

static void add_times(job *j, const double *t)
{
    pthread_mutex_lock(&j->mu);
    for (int k = 0; k < T_COUNT; k++) j->t[k] += t[k];
    pthread_mutex_unlock(&j->mu);
}

static void report(job *j, const char *path, HRESULT hr, const char *reason)
{
    if (j->cb && j->cb->file_problem) j->cb->file_problem(j->cb->ctx, path, hr, reason);
}

static void set_fatal(job *j, HRESULT hr)
{
    pthread_mutex_lock(&j->mu);
    if (SUCCEEDED(j->fatal)) {
        /* The detail is thread-local: keep it for the caller's thread. */
        snprintf(j->fatal_detail, sizeof j->fatal_detail, "%s", ddp_error_detail());
        j->fatal = hr;
    }
    pthread_cond_broadcast(&j->not_empty);
    pthread_cond_broadcast(&j->not_full);
    pthread_mutex_unlock(&j->mu);
    pthread_mutex_lock(&j->commit_mu);
    pthread_cond_broadcast(&j->batch_room);
    pthread_mutex_unlock(&j->commit_mu);
}

static int is_fatal_error(HRESULT hr)
{
    /* Errors of the store or the disk stop the job; errors of one file do not. */
    return hr == HRESULT_FROM_WIN32(ERROR_DISK_FULL) || hr == HRESULT_FROM_WIN32(ERROR_DISK_QUOTA_EXCEEDED) ||
           hr == HRESULT_FROM_WIN32(ERROR_WRITE_PROTECT) || hr == DDP_E_FILE_SYSTEM_CORRUPT ||
           hr == E_OUTOFMEMORY;
}

/* ---- freeing the replaced originals ---- */

/* The last close of a replaced original frees its blocks and page cache,
 * and may wait for the device (ext4 with -o discard discards synchronously
 * there): the reapers do it, so the committer goes on with the next batch.
 * The original is already out of the tree (exchanged and unlinked, the
 * exchange synced); only space comes back here. */
static void *reaper(void *arg)
{
    job *j = arg;
    pthread_mutex_lock(&j->reap_mu);
    for (;;) {
        while (j->reap_len == 0 && !j->reap_done) pthread_cond_wait(&j->reap_more, &j->reap_mu);
        if (j->reap_len == 0) break;
        int fd = j->reap[--j->reap_len];
        pthread_mutex_unlock(&j->reap_mu);
        close(fd);
        pthread_mutex_lock(&j->reap_mu);
    }
    pthread_mutex_unlock(&j->reap_mu);
    return NULL;
}

/* Hand r's original (installed: replaced) to the reapers, or close it here
 * when they have enough to do or there are none. */
static void reap_original(job *j, ddp_replace *r)
{
    if (!r->installed || r->fd < 0 || r->leased || j->reapers == 0) return;
    pthread_mutex_lock(&j->reap_mu);
    if (j->reap_len < REAP_MAX) {
        j->reap[j->reap_len++] = r->fd;
        r->fd = -1;
        pthread_cond_signal(&j->reap_more);
    }
    pthread_mutex_unlock(&j->reap_mu);
}

/* ---- step 3: the stubs ---- */

/* Is the file the walk saw still at path? (Only chooses between "changed
 * meanwhile" and the error itself; nothing is opened by this name.) */
static int still_there(const char *path, const struct stat *seen)
{
    struct stat now;
    return lstat(path, &now) == 0 && ddp_same_file(&now, seen);
}

/* Write the stub of p to a private temporary (volume/replace.h), with the
 * original's owner, mode, times and xattrs (not yet synced). The original
 * is opened beneath the root and must be the file that was chunked. */
static HRESULT stub_prepare(job *j, const pending *p, uint32_t sc, uint64_t soff, ddp_replace *r)
{
    ddp_stub s;
    memset(&s, 0, sizeof s);
    memcpy(s.store_id, j->v->id.store_id, DDP_STORE_ID_SIZE);
    s.stream_container = sc;
    s.stream_offset = soff;
    s.streammap_stored_len = (uint32_t)p->map_len;
    s.file_size = p->size;
    memcpy(s.file_hash, p->file_hash, DDP_HASH_SIZE);
    memcpy(s.streammap_hash, p->map_hash, DDP_HASH_SIZE);
    uint8_t buf[DDP_STUB_SIZE];
    ddp_stub_encode(&s, j->v->id.key, buf);

    HRESULT hr = ddp_replace_begin(j->v, p->path, &p->st, r);
    if (hr == S_FALSE || (FAILED(hr) && !still_there(p->path, &p->st)))
        return ddp_fail(DDP_E_FILE_IN_USE, "%s changed while it was being optimized; left as it is", p->path);
    if (FAILED(hr)) return hr;
    hr = ddp_replace_temp(j->v, r);
    if (SUCCEEDED(hr)) hr = ddp_write_all(r->tmpfd, buf, sizeof buf, p->path);
    if (SUCCEEDED(hr)) hr = ddp_fileattr_copy(r->fd, r->tmpfd, &p->st, p->path);
    return hr;
}

/* Below this many stubs (or directories) a batch fsyncs each; from this many,
 * one syncfs() flushes them all at once (one device flush instead of hundreds). */
#define SYNCFS_THRESHOLD 8
/* Stubs put in place at once (each holds three descriptors meanwhile). */
#define SLICE 128

/* Put the stubs of n files (n <= SLICE) in place; their stream maps are synced. */
static HRESULT commit_slice(job *j, pending *batch, const uint32_t *sc, const uint64_t *soff, size_t n,
                            double *t)
{
    HRESULT hr = S_OK;
    double mark = ddp_now();
    ddp_replace r[SLICE];
    HRESULT fh[SLICE];
    for (size_t i = 0; i < n; i++) {
        ddp_clear_error();
        fh[i] = stub_prepare(j, &batch[i], sc[i], soff[i], &r[i]);
        if (FAILED(fh[i])) {
            pthread_mutex_lock(&j->mu);
            if (fh[i] == DDP_E_FILE_IN_USE) {
                j->stats->files_changed++;
            } else {
                j->stats->files_failed++;
                if (is_fatal_error(fh[i]) && SUCCEEDED(hr)) hr = fh[i];
            }
            report(j, batch[i].path, fh[i], ddp_error_detail());
            pthread_mutex_unlock(&j->mu);
        }
    }
    tick(t, T_PREPARE, &mark);
    size_t ready = 0;
    for (size_t i = 0; i < n; i++) ready += SUCCEEDED(fh[i]);
    if (SUCCEEDED(hr) && ready >= SYNCFS_THRESHOLD) {
        if (syncfs(j->v->root_fd) != 0) hr = ddp_fail_errno(errno, "syncing the stubs of %s", j->v->root);
    } else if (SUCCEEDED(hr)) {
        for (size_t i = 0; i < n; i++)
            if (SUCCEEDED(fh[i])) fh[i] = ddp_fsync_fd(r[i].tmpfd, batch[i].path);
    }
    tick(t, T_SYNC_STUBS, &mark);
    size_t done = 0;
    for (size_t i = 0; i < n; i++) {
        pending *p = &batch[i];
        if (FAILED(fh[i])) continue; /* reported above, or a sync failure below */
        ddp_clear_error();
        HRESULT f = SUCCEEDED(hr) ? ddp_replace_commit(j->v, &r[i], &p->st, ready < SYNCFS_THRESHOLD) : hr;
        pthread_mutex_lock(&j->mu);
        if (SUCCEEDED(f)) {
            j->stats->files_optimized++;
            j->stats->bytes_scanned += p->size;
            done++;
        } else if (f == DDP_E_FILE_IN_USE) {
            j->stats->files_changed++;
            report(j, p->path, f, ddp_error_detail());
        } else if (f != hr) {
            j->stats->files_failed++;
            report(j, p->path, f, ddp_error_detail());
            if (is_fatal_error(f) && SUCCEEDED(hr)) hr = f;
        }
        if (j->cb && j->cb->progress) j->cb->progress(j->cb->ctx, j->stats);
        pthread_mutex_unlock(&j->mu);
    }
    tick(t, T_REPLACE, &mark);
    /* One flush makes every exchange of the slice durable. */
    if (SUCCEEDED(hr) && done && ready >= SYNCFS_THRESHOLD && syncfs(j->v->root_fd) != 0)
        hr = ddp_fail_errno(errno, "syncing the directories of %s", j->v->root);
    tick(t, T_SYNC_DIRS, &mark);
    for (size_t i = 0; i < n; i++) {
        reap_original(j, &r[i]);
        ddp_replace_end(&r[i]);
    }
    tick(t, T_END, &mark);
    return hr;
}

/* Commit n finished files (the committer thread). */
static HRESULT commit_batch(job *j, pending *batch, size_t n, double *t)
{
    if (n == 0) return S_OK;
    double mark = ddp_now();
    HRESULT hr = ddp_chunkstore_sync_data(j->cs);
    tick(t, T_SYNC_DATA, &mark);
    uint32_t *sc = ddp_xcalloc(n, sizeof *sc);
    uint64_t *soff = ddp_xcalloc(n, sizeof *soff);
    for (size_t i = 0; SUCCEEDED(hr) && i < n; i++)
        hr = ddp_chunkstore_put_streammap(j->cs, batch[i].map, (uint32_t)batch[i].map_len,
                                          batch[i].map_hash, &sc[i], &soff[i]);
    tick(t, T_STREAMS, &mark);
    if (SUCCEEDED(hr)) hr = ddp_chunkstore_sync_streams(j->cs);
    tick(t, T_SYNC_STREAMS, &mark);
    for (size_t i = 0; SUCCEEDED(hr) && i < n; i += SLICE)
        hr = commit_slice(j, batch + i, sc + i, soff + i, n - i < SLICE ? n - i : SLICE, t);
    free(sc);
    free(soff);
    return hr;
}

static void free_pending(pending *batch, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(batch[i].path);
        free(batch[i].map);
    }
}

/* The committer: takes the waiting batch when it is full, when a second has
 * passed, or when the workers are done, and commits it. */
static void *committer(void *arg)
{
    job *j = arg;
    double t[T_COUNT] = { 0 };
    for (;;) {
        double mark = ddp_now();
        pthread_mutex_lock(&j->commit_mu);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        while (j->batch_len < BATCH_FILES && j->batch_bytes < BATCH_BYTES && !j->workers_done)
            if (pthread_cond_timedwait(&j->batch_full, &j->commit_mu, &until) == ETIMEDOUT) break;
        pending *take = j->batch;
        size_t n = j->batch_len;
        int last = j->workers_done;
        j->batch = NULL;
        j->batch_len = j->batch_cap = 0;
        j->batch_bytes = 0;
        pthread_cond_broadcast(&j->batch_room);
        pthread_mutex_unlock(&j->commit_mu);
        tick(t, T_CWAIT, &mark);
        if (SUCCEEDED(j->fatal)) {
            HRESULT hr = commit_batch(j, take, n, t);
            if (FAILED(hr)) set_fatal(j, hr);
        }
        free_pending(take, n);
        free(take);
        if (last) break;
    }
    t[T_CPU_COMMITTER] = thread_cpu();
    add_times(j, t);
    return NULL;
}

/* ---- steps 1 and 2 for one file ---- */

/*
 * A file is read in blocks of READ_BLOCK bytes. The worker that owns the file
 * cuts a whole block into chunks first (the chunker is serial and cheap, and
 * cuts exactly as one pass over the file does: a chunk is cut only with
 * DDP_CHUNK_MAX bytes ahead of it or at the end of the file, and the bytes
 * after the last cut are carried to the next block). The block's chunks are
 * then hashed and stored by the owner and by any worker that has nothing
 * else to do (one large file keeps every core busy); each chunk's entry goes
 * to its own slot, and the owner appends them to the stream map in order, so
 * the map is the one a single pass makes. While others store block n, the
 * owner reads and cuts block n+1 into its second buffer.
 */
#define BLOCK_CHUNKS (READ_BLOCK / DDP_CHUNK_MIN + 8)
_Static_assert((READ_BLOCK + DDP_CHUNK_MAX) / DDP_CHUNK_MIN + 1 <= BLOCK_CHUNKS, "a block's chunks fit");

typedef struct block {
    uint8_t *buf;
    size_t have;                 /* bytes in buf */
    int eof;                     /* buf runs to the end of the file */
    size_t cut;                  /* bytes of buf in chunks */
    size_t n;                    /* chunks */
    uint32_t off[BLOCK_CHUNKS], len[BLOCK_CHUNKS];
    ddp_streammap_entry e[BLOCK_CHUNKS];
    uint8_t was_new[BLOCK_CHUNKS];
    int level;
    /* under j->mu: */
    size_t next, done;           /* chunks taken, chunks stored */
    HRESULT hr;                  /* the first chunk that failed */
    char detail[512];            /* its detail line */
} block;

static size_t take_chunk(job *j, block *b);

/* Hash and store chunk i of b (any worker). A chunk another worker is
 * storing right now (the same new chunk met in two files at once) is left
 * for later: this worker stores the block's next chunk first, and only then
 * waits for the other put, if it is still not done. */
static void store_chunk(job *j, block *b, size_t i, double *t, double *mark)
{
    ddp_streammap_entry *e = &b->e[i];
    const uint8_t *p = b->buf + b->off[i];
    ddp_sha256(p, b->len[i], e->hash);
    tick(t, T_HASH, mark);
    int was_new = 0;
    ddp_clear_error();
    HRESULT hr = FAILED(j->fatal) ? j->fatal
                                  : ddp_chunkstore_try_put(j->cs, e->hash, p, b->len[i], b->level, &e->loc, &was_new);
    if (hr == S_FALSE) {
        tick(t, T_PUT_DUP, mark);
        pthread_mutex_lock(&j->mu);
        int other = b->next < b->n;
        size_t k = other ? take_chunk(j, b) : 0;
        pthread_mutex_unlock(&j->mu);
        if (other) store_chunk(j, b, k, t, mark);
        ddp_clear_error();
        hr = FAILED(j->fatal) ? j->fatal : ddp_chunkstore_put(j->cs, e->hash, p, b->len[i], b->level, &e->loc, &was_new);
    }
    tick(t, was_new ? T_PUT_NEW : T_PUT_DUP, mark);
    b->was_new[i] = (uint8_t)was_new;
    pthread_mutex_lock(&j->mu);
    if (FAILED(hr) && SUCCEEDED(b->hr)) {
        b->hr = hr;
        snprintf(b->detail, sizeof b->detail, "%s", ddp_error_detail());
    }
    if (++b->done == b->n) pthread_cond_broadcast(&j->block_done);
    pthread_mutex_unlock(&j->mu);
}

/* Take the next chunk of b nobody has taken (under j->mu); a block whose
 * chunks are all taken leaves the published list. */
static size_t take_chunk(job *j, block *b)
{
    size_t i = b->next++;
    if (b->next == b->n) {
        for (size_t k = 0; k < j->nopen; k++)
            if (j->open[k] == b) {
                j->open[k] = j->open[--j->nopen];
                break;
            }
    }
    return i;
}

/* Fill b from fd after the carry already in it, and cut it into chunks. */
static HRESULT fill_block(job *j, block *b, int fd, size_t cap, const char *path, double *t, double *mark)
{
    (void)j;
    while (!b->eof && b->have < cap) {
        ssize_t r = read(fd, b->buf + b->have, cap - b->have);
        if (r < 0) {
            if (errno == EINTR) continue;
            return ddp_fail_errno(errno, "reading %s; skipped", path);
        }
        if (r == 0) b->eof = 1;
        b->have += (size_t)r;
    }
    tick(t, T_READ, mark);
    size_t pos = 0;
    b->n = 0;
    while (b->have - pos >= DDP_CHUNK_MAX || (b->eof && pos < b->have)) {
        size_t n = ddp_chunker_cut(b->buf + pos, b->have - pos);
        b->off[b->n] = (uint32_t)pos;
        b->len[b->n] = (uint32_t)n;
        b->n++;
        pos += n;
    }
    b->cut = pos;
    b->next = b->done = 0;
    b->hr = S_OK;
    tick(t, T_CHUNK, mark);
    return S_OK;
}

/* Store b's chunks with whoever helps, and wait until every one is stored. */
static HRESULT store_block(job *j, block *b, double *t, double *mark)
{
    pthread_mutex_lock(&j->mu);
    while (b->next < b->n) {
        size_t i = take_chunk(j, b);
        pthread_mutex_unlock(&j->mu);
        store_chunk(j, b, i, t, mark);
        pthread_mutex_lock(&j->mu);
    }
    while (b->done < b->n) pthread_cond_wait(&j->block_done, &j->mu);
    HRESULT hr = b->hr;
    pthread_mutex_unlock(&j->mu);
    tick(t, T_HELP_WAIT, mark);
    if (FAILED(hr)) return ddp_fail(hr, "%s", b->detail);
    return S_OK;
}

/* Offer b's chunks to idle workers (when it has more than one). */
static void publish_block(job *j, block *b)
{
    if (b->n < 2) return;
    pthread_mutex_lock(&j->mu);
    if (j->nopen < sizeof j->open / sizeof j->open[0]) {
        j->open[j->nopen++] = b;
        pthread_cond_broadcast(&j->not_empty);
    }
    pthread_mutex_unlock(&j->mu);
}

static HRESULT optimize_file(job *j, const work_item *w, block *blk, size_t cap, double *t)
{
    double mark = ddp_now();
    const char *path = w->path;
    /* Beneath the root, no link or mount point on the way, O_NONBLOCK, a
     * regular file, the one the walk saw; every byte is read from this fd. */
    int fd = -1;
    struct stat st;
    HRESULT ho = ddp_volume_open_regular(j->v, path, O_RDONLY | O_NOATIME, &w->st, &fd, &st);
    if (FAILED(ho) && !still_there(path, &w->st))
        return ddp_fail(DDP_E_FILE_IN_USE, "%s changed while it was being optimized; left as it is (%s)", path,
                        ddp_error_detail());
    if (FAILED(ho)) return ddp_fail(ho, "%s; skipped", ddp_error_detail());
    if (!ddp_fileattr_unchanged(&w->st, &st)) {
        close(fd);
        return ddp_fail(DDP_E_FILE_IN_USE, "%s changed while it was being optimized; left as it is", path);
    }
    /* A stub with bytes appended is not data to chunk: its first bytes are
     * a stub, and its content is in the store. */
    ddp_stub old;
    uint64_t appended = 0;
    HRESULT ha = ddp_volume_read_appended_stub(j->v, fd, &st, path, &old, &appended);
    if (ha != S_FALSE) {
        close(fd);
        if (FAILED(ha)) return ddp_fail(ha, "%s; skipped", ddp_error_detail());
        return ddp_fail(DDP_E_FILE_CORRUPT,
                        "%s: %llu bytes were appended to a stub (not through ddp mount); left as it is: `ddp scrub "
                        "--repair` restores its content with them",
                        path, (unsigned long long)appended);
    }
    tick(t, T_OPEN, &mark);
    int level = ddp_settings_no_compress(&j->v->settings, path) ? 0 : j->v->settings.compression_level;
    ddp_streammap map;
    ddp_streammap_init(&map);
    ddp_filehash fh;
    ddp_filehash_init(&fh);
    uint64_t total = 0, new_chunks = 0, new_stored = 0;
    block *cur = &blk[0], *nxt = &blk[1];
    cur->have = 0;
    cur->eof = 0;
    cur->level = nxt->level = level;
    HRESULT hr = fill_block(j, cur, fd, cap, path, t, &mark);
    while (SUCCEEDED(hr)) {
        publish_block(j, cur);
        /* The next block (the bytes after the last cut first), read and cut
         * while others store this one. */
        HRESULT hn = S_OK;
        int more = !(cur->eof && cur->cut == cur->have);
        if (more) {
            nxt->have = cur->have - cur->cut;
            nxt->eof = cur->eof;
            memcpy(nxt->buf, cur->buf + cur->cut, nxt->have);
            hn = fill_block(j, nxt, fd, cap, path, t, &mark);
        }
        hr = store_block(j, cur, t, &mark);
        if (FAILED(hr)) break;
        for (size_t i = 0; i < cur->n; i++) {
            if (cur->was_new[i]) {
                new_chunks++;
                new_stored += cur->e[i].loc.stored_len + 64;
            }
            ddp_streammap_add(&map, &cur->e[i]);
            ddp_filehash_add(&fh, cur->e[i].hash, cur->len[i]);
            total += cur->len[i];
        }
        if (!more) break;
        hr = hn;
        block *sw = cur;
        cur = nxt;
        nxt = sw;
    }
    tick(t, T_WORKER_OTHER, &mark);
    struct stat after;
    if (SUCCEEDED(hr) && (fstat(fd, &after) != 0 || !ddp_fileattr_unchanged(&st, &after) ||
                          total != (uint64_t)st.st_size))
        hr = ddp_fail(DDP_E_FILE_IN_USE, "%s changed while it was being optimized; left as it is", path);
    close(fd);
    map.file_size = total;
    ddp_filehash_final(&fh, map.file_hash);

    pending p;
    memset(&p, 0, sizeof p);
    if (SUCCEEDED(hr)) hr = ddp_streammap_encode(&map, &p.map, &p.map_len);
    if (SUCCEEDED(hr) && p.map_len > DDP_STREAMMAP_MAX_LOGICAL)
        hr = ddp_fail(DDP_E_INVALID_STATE, "%s is too large for one stream map; skipped", path);
    pthread_mutex_lock(&j->mu);
    j->stats->chunks_total += map.count;
    j->stats->chunks_new += new_chunks;
    j->stats->bytes_new_stored += new_stored;
    pthread_mutex_unlock(&j->mu);
    if (FAILED(hr)) {
        free(p.map);
        ddp_streammap_free(&map);
        return hr;
    }
    p.path = ddp_strdup(path);
    p.st = st;
    p.size = total;
    memcpy(p.file_hash, map.file_hash, DDP_HASH_SIZE);
    ddp_sha256(p.map, p.map_len, p.map_hash);
    ddp_streammap_free(&map);

    if (j->cb && j->cb->file_chunked) j->cb->file_chunked(j->cb->ctx, path);
    tick(t, T_WORKER_OTHER, &mark);
    pthread_mutex_lock(&j->commit_mu);
    while (j->batch_len >= 64 * BATCH_FILES && SUCCEEDED(j->fatal)) pthread_cond_wait(&j->batch_room, &j->commit_mu);
    if (j->batch_len == j->batch_cap) {
        j->batch_cap = j->batch_cap ? 2 * j->batch_cap : 64;
        j->batch = ddp_xrealloc(j->batch, j->batch_cap * sizeof *j->batch);
    }
    j->batch[j->batch_len++] = p;
    j->batch_bytes += p.size;
    if (j->batch_len >= BATCH_FILES || j->batch_bytes >= BATCH_BYTES) pthread_cond_signal(&j->batch_full);
    pthread_mutex_unlock(&j->commit_mu);
    tick(t, T_BATCH_WAIT, &mark);
    return S_OK;
}

/* A worker: takes the next file from the queue; with none queued, stores
 * chunks of another worker's block; stops when the walk is over and no
 * worker is inside a file any more. */
static void *worker(void *arg)
{
    job *j = arg;
    size_t cap = READ_BLOCK + DDP_CHUNK_MAX;
    block *blk = ddp_xcalloc(2, sizeof *blk);
    blk[0].buf = ddp_xmalloc(cap);
    blk[1].buf = ddp_xmalloc(cap);
    double t[T_COUNT] = { 0 };
    for (;;) {
        double mark = ddp_now();
        pthread_mutex_lock(&j->mu);
        while (j->qlen == 0 && j->nopen == 0 && !(j->done_feeding && j->busy == 0) && SUCCEEDED(j->fatal))
            pthread_cond_wait(&j->not_empty, &j->mu);
        if (j->qlen == 0 && j->nopen > 0) {
            block *b = j->open[0];
            size_t i = take_chunk(j, b);
            pthread_mutex_unlock(&j->mu);
            tick(t, T_QUEUE_WAIT, &mark);
            store_chunk(j, b, i, t, &mark);
            continue;
        }
        if (j->qlen == 0 || FAILED(j->fatal)) {
            pthread_mutex_unlock(&j->mu);
            break;
        }
        work_item w = j->queue[j->qhead];
        j->qhead = (j->qhead + 1) % QUEUE_CAP;
        j->qlen--;
        j->busy++;
        pthread_cond_signal(&j->not_full);
        pthread_mutex_unlock(&j->mu);
        tick(t, T_QUEUE_WAIT, &mark);

        ddp_clear_error();
        HRESULT hr = optimize_file(j, &w, blk, cap, t);
        pthread_mutex_lock(&j->mu);
        j->busy--;
        if (j->busy == 0 && j->done_feeding) pthread_cond_broadcast(&j->not_empty);
        if (FAILED(hr)) {
            if (hr == DDP_E_FILE_IN_USE) j->stats->files_changed++;
            else j->stats->files_failed++;
            report(j, w.path, hr, ddp_error_detail());
        }
        pthread_mutex_unlock(&j->mu);
        if (FAILED(hr) && is_fatal_error(hr)) set_fatal(j, hr);
        free(w.path);
    }
    t[T_CPU_WORKERS] = thread_cpu();
    add_times(j, t);
    free(blk[0].buf);
    free(blk[1].buf);
    free(blk);
    return NULL;
}

static int feed(job *j, const char *path, const struct stat *st)
{
    pthread_mutex_lock(&j->mu);
    if (j->qlen == QUEUE_CAP) {
        double mark = ddp_now();
        while (j->qlen == QUEUE_CAP && SUCCEEDED(j->fatal)) pthread_cond_wait(&j->not_full, &j->mu);
        j->t[T_FEED_WAIT] += ddp_now() - mark;
    }
    int ok = SUCCEEDED(j->fatal);
    if (ok) {
        work_item *w = &j->queue[(j->qhead + j->qlen) % QUEUE_CAP];
        w->path = ddp_strdup(path);
        w->st = *st;
        j->qlen++;
        pthread_cond_signal(&j->not_empty);
    }
    pthread_mutex_unlock(&j->mu);
    return ok;
}

static void count(job *j, uint64_t *field)
{
    pthread_mutex_lock(&j->mu);
    (*field)++;
    pthread_mutex_unlock(&j->mu);
}

/* Is this file in policy? Counts the ones that are not. */
static int in_policy(job *j, FTSENT *e, time_t now)
{
    const ddp_settings *s = &j->v->settings;
    const struct stat *st = e->fts_statp;
    const char *rel = e->fts_path + strlen(j->v->root);
    while (*rel == '/') rel++;
    if ((uint64_t)st->st_size < s->min_file_size) return 0;
    if (s->min_file_age_days > 0 && now - st->st_mtim.tv_sec < (time_t)s->min_file_age_days * 86400) return 0;
    if (ddp_settings_excluded(s, rel)) return 0;
    if (st->st_nlink > 1) return 0; /* replacing one name of a hard-linked file saves nothing */
    return 1;
}

/* The walker's side: each regular file is counted, checked against the
 * policy and queued for the workers. */
static HRESULT walk_one(ddp_volume *v, FTSENT *e, void *ctx)
{
    job *j = ctx;
    if (FAILED(j->fatal)) return E_ABORT; /* the job has failed: stop walking */
    count(j, &j->stats->files_scanned);
    if (e->fts_statp->st_size == DDP_STUB_SIZE) {
        ddp_stub s;
        if (ddp_volume_read_stub(v, -1, e->fts_path, &s) == S_OK) {
            count(j, &j->stats->files_already);
            return S_OK;
        }
    }
    if (!in_policy(j, e, j->now)) {
        count(j, &j->stats->files_skipped_policy);
        return S_OK;
    }
    feed(j, e->fts_path, e->fts_statp);
    return S_OK;
}

/* A directory or file the walk cannot read: skipped, reported, counted as
 * failed (its files stay as they are). */
static HRESULT walk_unreadable(ddp_volume *v, FTSENT *e, void *ctx)
{
    (void)v;
    job *j = ctx;
    count(j, &j->stats->files_failed);
    ddp_fail_errno(e->fts_errno, "cannot read %s; skipped", e->fts_path);
    pthread_mutex_lock(&j->mu);
    report(j, e->fts_path, ddp_hresult_from_errno(e->fts_errno), ddp_error_detail());
    pthread_mutex_unlock(&j->mu);
    return S_OK;
}

DDP_API HRESULT ddp_optimize(ddp_volume *v, unsigned threads, const ddp_job_callbacks *cb, ddp_job_stats *stats)
{
    ddp_clear_error();
    ddp_job_stats local;
    if (!stats) stats = &local;
    memset(stats, 0, sizeof *stats);
    if (!v) return E_POINTER;
    HRESULT jr = ddp_volume_require_job(v);
    if (SUCCEEDED(jr)) jr = ddp_volume_require_writable(v, "optimize");
    if (FAILED(jr)) return jr;
    if (!v->settings.enabled)
        return ddp_fail(DDP_E_VOLUME_DEDUP_DISABLED, "%s: deduplication is disabled (ddp set %s enabled true)",
                        v->root, v->root);
    job j;
    memset(&j, 0, sizeof j);
    j.v = v;
    j.cb = cb;
    j.stats = stats;
    j.t0 = ddp_now();
    HRESULT hr = ddp_volume_store(v, &j.cs);
    if (FAILED(hr)) return hr;
    pthread_mutex_init(&j.mu, NULL);
    pthread_mutex_init(&j.commit_mu, NULL);
    pthread_cond_init(&j.batch_full, NULL);
    pthread_cond_init(&j.batch_room, NULL);
    pthread_mutex_init(&j.reap_mu, NULL);
    pthread_cond_init(&j.reap_more, NULL);
    pthread_t reap_tid[REAPERS];
    memset(reap_tid, 0, sizeof reap_tid);
    for (; j.reapers < REAPERS; j.reapers++)
        if (pthread_create(&reap_tid[j.reapers], NULL, reaper, &j) != 0) break;
    pthread_t commit_tid;
    int committing = pthread_create(&commit_tid, NULL, committer, &j) == 0;
    if (!committing) hr = ddp_fail(E_OUTOFMEMORY, "cannot start the committer thread");
    pthread_cond_init(&j.not_empty, NULL);
    pthread_cond_init(&j.not_full, NULL);
    pthread_cond_init(&j.block_done, NULL);

    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (unsigned)n : 1;
    }
    if (threads > 64) threads = 64;
    pthread_t tid[64];
    unsigned started = 0;
    for (; started < threads; started++)
        if (pthread_create(&tid[started], NULL, worker, &j) != 0) break;
    if (started == 0) hr = ddp_fail(E_OUTOFMEMORY, "cannot start worker threads");

    j.now = time(NULL);
    /* The walk ends early (E_ABORT from walk_one) once the job has failed;
     * j.fatal then says why. */
    double mark = ddp_now();
    if (SUCCEEDED(hr)) {
        HRESULT hw = ddp_volume_walk(v, walk_one, walk_unreadable, &j);
        if (FAILED(hw) && hw != E_ABORT) hr = hw;
    }
    double t[T_COUNT] = { 0 };
    tick(t, T_WALK, &mark);

    pthread_mutex_lock(&j.mu);
    j.done_feeding = 1;
    pthread_cond_broadcast(&j.not_empty);
    pthread_mutex_unlock(&j.mu);
    for (unsigned i = 0; i < started; i++) pthread_join(tid[i], NULL);
    tick(t, T_JOIN_WORKERS, &mark);
    /* Workers stopped by a fatal error leave the rest of the queue. */
    for (; j.qlen; j.qlen--, j.qhead = (j.qhead + 1) % QUEUE_CAP) free(j.queue[j.qhead].path);

    pthread_mutex_lock(&j.commit_mu);
    j.workers_done = 1;
    pthread_cond_signal(&j.batch_full);
    pthread_mutex_unlock(&j.commit_mu);
    if (committing) pthread_join(commit_tid, NULL);
    tick(t, T_JOIN_COMMIT, &mark);
    pthread_mutex_lock(&j.reap_mu);
    j.reap_done = 1;
    pthread_cond_broadcast(&j.reap_more);
    pthread_mutex_unlock(&j.reap_mu);
    for (unsigned i = 0; i < j.reapers; i++) pthread_join(reap_tid[i], NULL);
    tick(t, T_JOIN_REAPERS, &mark);
    free_pending(j.batch, j.batch_len);
    free(j.batch);
    if (SUCCEEDED(hr) && FAILED(j.fatal)) hr = ddp_fail(j.fatal, "%s", j.fatal_detail);
    /* Second copies of chunks now referenced hotspot_threshold times (hotspot.c). */
    if (SUCCEEDED(hr)) {
        HRESULT hh = ddp_hotspot_update(v);
        if (FAILED(hh)) hr = hh; /* the files are safe; the disk said no: say so */
    }
    tick(t, T_HOTSPOT, &mark);
    /* Containers synced, index checkpointed, catalog written: a failure
     * here is this job's failure (the files are safe; the disk said no). */
    ddp_saved_error se;
    ddp_error_save(&se);
    hr = ddp_first_error(hr, &se, ddp_chunkstore_commit(j.cs));
    tick(t, T_STORE_COMMIT, &mark);
    stats->seconds = ddp_now() - j.t0;
    if (SUCCEEDED(hr) && (stats->files_failed > 0)) hr = DDP_E_JOB_COMPLETED_PARTIAL_SUCCESS;

    char line[512];
    snprintf(line, sizeof line,
             "optimize 0x%08X files_optimized=%llu files_failed=%llu files_changed=%llu bytes=%llu seconds=%.1f",
             (unsigned)hr, (unsigned long long)stats->files_optimized, (unsigned long long)stats->files_failed,
             (unsigned long long)stats->files_changed, (unsigned long long)stats->bytes_scanned, stats->seconds);
    ddp_volume_log_job(v, line);
    /* Where the time went: the calling thread's phases, then the sums over
     * the workers and the committer. */
    t[T_CPU_MAIN] = thread_cpu();
    add_times(&j, t);
    char timing[1024];
    int len = snprintf(timing, sizeof timing, "optimize-timing threads=%u wall=%.3f", started, stats->seconds);
    for (int k = 0; k < T_COUNT && len > 0 && (size_t)len < sizeof timing; k++)
        len += snprintf(timing + len, sizeof timing - (size_t)len, " %s=%.3f", t_name[k], j.t[k]);
    ddp_volume_log_job(v, timing);

    pthread_cond_destroy(&j.not_empty);
    pthread_cond_destroy(&j.not_full);
    pthread_cond_destroy(&j.block_done);
    pthread_mutex_destroy(&j.mu);
    pthread_mutex_destroy(&j.commit_mu);
    pthread_cond_destroy(&j.batch_full);
    pthread_cond_destroy(&j.batch_room);
    pthread_mutex_destroy(&j.reap_mu);
    pthread_cond_destroy(&j.reap_more);
    return hr;
}
