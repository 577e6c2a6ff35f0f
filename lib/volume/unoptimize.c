/* SPDX-License-Identifier: MIT */
/*
 * unoptimize.c: rehydration (Windows: Expand-DedupFile, and the
 * Unoptimization job): a stub becomes its file again, in place.
 *
 * The stub is opened from a held directory fd beneath the volume root and
 * read from that fd (volume/replace.h: never by name twice, never through a
 * link, O_NONBLOCK, proved regular). The content is written to a private
 * temporary in .ddp/Temp (O_TMPFILE: a killed run leaves nothing) through
 * the verified read path (every chunk checked against its SHA-256; the
 * chunk hashes folded into the whole-file hash and compared with the
 * stub's), sparse (whole 4 KiB blocks of zeros stay holes), gets the stub's
 * owner, mode, times and xattrs by fd, is synced, and is exchanged with the
 * stub under a write lease (refused while anyone has the stub open), after
 * checking the stub unchanged; the directory is synced. A failure at any
 * point leaves the stub as it was.
 *
 * The Unoptimization job (ddp_unoptimize_job, `ddp unoptimize VOLUME`)
 * rehydrates every stub, then removes VOLUME/.ddp, but only when no file
 * that claims to be a stub of this store is left (a damaged stub keeps the
 * store: its data may still be rescued). The order makes an interrupted run
 * safe to repeat: the chunk store and State (but the job lock) go first
 * (the directory is still a volume, with no stubs, and a second run
 * finishes), then the identity (from here on it is no longer a volume; an
 * interruption now leaves a .ddp without an identity, which is not a volume
 * and which `ddp enable` reuses, or ddp_unoptimize_finish removes), then
 * the rest of .ddp; the root is fsynced at the end.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fts.h>
#include <sys/file.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "base/fileattr.h"
#include "volume/maintenance.h"
#include "store/stub.h"
#include "base/util.h"
#include "volume/replace.h"
#include "volume/volume.h"

#define COPY_BLOCK ((size_t)4 << 20)

/* Is buf all zero? */
static int all_zero(const uint8_t *buf, size_t n)
{
    static const uint8_t zero[4096];
    while (n >= sizeof zero) {
        if (memcmp(buf, zero, sizeof zero) != 0) return 0;
        buf += sizeof zero;
        n -= sizeof zero;
    }
    return n == 0 || memcmp(buf, zero, n) == 0;
}

/* Write buf (n bytes at off of the file) to fd, leaving holes where whole
 * 4 KiB blocks are zero: a sparse file stays sparse. */
static HRESULT write_sparse(int fd, const uint8_t *buf, size_t n, uint64_t off, const char *what)
{
    const size_t blk = 4096;
    size_t i = 0;
    while (i < n) {
        size_t len = n - i < blk ? n - i : blk;
        if (all_zero(buf + i, len)) {
            i += len;
            continue;
        }
        size_t j = i + len;
        while (j < n) {
            size_t l2 = n - j < blk ? n - j : blk;
            if (all_zero(buf + j, l2)) break;
            j += l2;
        }
        HRESULT hr = ddp_pwrite_all(fd, buf + i, j - i, off + i, what);
        if (FAILED(hr)) return hr;
        i = j;
    }
    return S_OK;
}

/* Copy the bytes [from, r->st.st_size) of r->fd to r->tmpfd at `to`. */
static HRESULT copy_tail(ddp_replace *r, uint64_t from, uint64_t to, uint8_t *buf)
{
    uint64_t end = (uint64_t)r->st.st_size;
    while (from < end) {
        size_t want = end - from < COPY_BLOCK ? (size_t)(end - from) : COPY_BLOCK;
        HRESULT hr = ddp_pread_exact(r->fd, buf, want, from, r->what);
        if (SUCCEEDED(hr)) hr = write_sparse(r->tmpfd, buf, want, to, r->what);
        if (FAILED(hr)) return hr;
        from += want;
        to += want;
    }
    return S_OK;
}

/* Rehydrate the file r has open (a stub of v, authenticated as s) into
 * r's temporary and put it in place. tail: the file is a stub with bytes
 * appended (ddp_volume_read_appended_stub), which follow the content. */
static HRESULT rehydrate(ddp_volume *v, ddp_replace *r, const ddp_stub *s, int tail)
{
    ddp_file *f = NULL;
    /* The content comes from the chunk store through the stub that was read
     * from r->fd: nothing is opened by name again. */
    HRESULT hr = ddp_file_open_stub(v, s, r->what, &f);
    if (SUCCEEDED(hr)) hr = ddp_replace_temp(v, r);
    uint8_t *buf = SUCCEEDED(hr) ? ddp_xmalloc(COPY_BLOCK) : NULL;
    uint64_t off = 0, size = f ? ddp_file_size(f) : 0;
    while (SUCCEEDED(hr) && off < size) {
        size_t got = 0;
        hr = ddp_file_pread(f, buf, COPY_BLOCK, off, &got);
        if (SUCCEEDED(hr) && got == 0)
            hr = ddp_fail(DDP_E_FILE_CORRUPT, "%s: short read at %llu", r->what, (unsigned long long)off);
        if (SUCCEEDED(hr)) hr = write_sparse(r->tmpfd, buf, got, off, r->what);
        off += got;
    }
    if (SUCCEEDED(hr) && tail && r->st.st_size > DDP_STUB_SIZE) {
        hr = copy_tail(r, DDP_STUB_SIZE, size, buf);
        size += (uint64_t)r->st.st_size - DDP_STUB_SIZE;
    }
    free(buf);
    ddp_file_close(f);
    if (SUCCEEDED(hr) && ftruncate(r->tmpfd, (off_t)size) != 0)
        hr = ddp_fail_errno(errno, "setting the size of %s", r->what);
    /* Every chunk was checked against its hash as it was read; the stream
     * map was checked against the stub's whole-file hash. Owner, mode,
     * xattrs and times from the stub, by fd. */
    if (SUCCEEDED(hr)) hr = ddp_fileattr_copy(r->fd, r->tmpfd, &r->st, r->what);
    if (SUCCEEDED(hr)) hr = ddp_fsync_fd(r->tmpfd, r->what);
    if (SUCCEEDED(hr)) hr = ddp_replace_commit(v, r, &r->st, 1);
    return hr;
}

/* A file that claims to be a stub of v but does not authenticate, read
 * from fd: 1 with *s filled when one damaged byte could be mended (a stub
 * ddp wrote, hit by bit rot, or a copy someone damaged: either way what it
 * names is what its one-byte-off original named). */
static int mended_stub(ddp_volume *v, int fd, const struct stat *st, ddp_stub *s)
{
    uint8_t buf[DDP_STUB_SIZE];
    int ok = st->st_size == DDP_STUB_SIZE && SUCCEEDED(ddp_pread_exact(fd, buf, sizeof buf, 0, "stub")) &&
             ddp_volume_mend_stub_bytes(v, buf) && SUCCEEDED(ddp_stub_decode(buf, sizeof buf, v->id.key, s)) &&
             memcmp(s->store_id, v->id.store_id, DDP_STORE_ID_SIZE) == 0;
    ddp_clear_error();
    return ok;
}

static HRESULT unoptimize_opened(ddp_volume *v, ddp_replace *r)
{
    ddp_stub s;
    HRESULT hr = ddp_volume_read_stub(v, r->fd, r->what, &s);
    if (hr != S_OK) return hr;
    hr = rehydrate(v, r, &s, 0);
    return SUCCEEDED(hr) ? S_OK : hr;
}

HRESULT ddp_unoptimize_at(ddp_volume *v, int dirfd, const char *name, const char *what, int flags)
{
    ddp_clear_error();
    HRESULT hr = ddp_volume_require_writable(v, "unoptimize");
    if (FAILED(hr)) return hr;
    ddp_replace r;
    hr = ddp_replace_begin_at(v, dirfd, name, what, NULL, &r);
    if (hr != S_OK) return hr;
    r.no_lease = (flags & DDP_UNOPT_NO_LEASE) != 0;
    hr = unoptimize_opened(v, &r);
    ddp_replace_end(&r);
    return hr;
}

DDP_API HRESULT ddp_unoptimize_file(ddp_volume *v, const char *path)
{
    ddp_clear_error();
    HRESULT hr = ddp_volume_require_writable(v, "unoptimize");
    if (FAILED(hr)) return hr;
    ddp_replace r;
    hr = ddp_replace_begin(v, path, NULL, &r);
    if (hr != S_OK) return hr;
    hr = unoptimize_opened(v, &r);
    ddp_replace_end(&r);
    return hr;
}

HRESULT ddp_volume_restore_appended(ddp_volume *v, const char *path, const struct stat *expect, uint64_t *content,
                                    uint64_t *appended)
{
    *content = *appended = 0;
    HRESULT hr = ddp_volume_require_writable(v, "restoring a stub with bytes appended");
    if (FAILED(hr)) return hr;
    ddp_replace r;
    hr = ddp_replace_begin(v, path, expect, &r);
    if (hr != S_OK) return hr;
    /* Judged again from the fd that is replaced: still such a file? */
    ddp_stub s;
    hr = ddp_volume_read_appended_stub(v, r.fd, &r.st, path, &s, appended);
    if (hr == S_OK) {
        *content = s.file_size;
        hr = rehydrate(v, &r, &s, 1);
        if (SUCCEEDED(hr)) hr = S_OK;
    }
    ddp_replace_end(&r);
    return hr;
}

typedef struct unopt_ctx {
    const ddp_job_callbacks *cb;
    ddp_job_stats *stats;
    uint64_t need;
    int measure;
} unopt_ctx;

static HRESULT unopt_one(ddp_volume *v, FTSENT *e, void *arg)
{
    unopt_ctx *c = arg;
    if (e->fts_statp->st_size > DDP_STUB_SIZE && !c->measure) {
        /* A stub with bytes appended: its content is still in the store.
         * Which content the file should have is scrub --repair's to say
         * (and to say that it said it); here it is reported and counted as
         * failed, so the job keeps the store. */
        int fd = -1;
        struct stat st;
        ddp_stub s;
        uint64_t appended = 0;
        if (SUCCEEDED(ddp_volume_open_regular(v, e->fts_path, O_RDONLY, e->fts_statp, &fd, &st)) &&
            ddp_volume_read_appended_stub(v, fd, &st, e->fts_path, &s, &appended) == S_OK) {
            c->stats->files_failed++;
            HRESULT hr = ddp_fail(DDP_E_FILE_CORRUPT,
                                  "%llu bytes were appended to this stub (not through ddp mount); left as it is, "
                                  "and the chunk store is kept: `ddp scrub --repair` restores its content with them",
                                  (unsigned long long)appended);
            if (c->cb && c->cb->file_problem) c->cb->file_problem(c->cb->ctx, e->fts_path, hr, ddp_error_detail());
        }
        if (fd >= 0) close(fd);
        ddp_clear_error();
        return S_OK;
    }
    if (e->fts_statp->st_size != DDP_STUB_SIZE) return S_OK;
    /* One open (beneath the root, the file the walk saw) for the check, the
     * read and the replacement. */
    ddp_replace r;
    HRESULT hr = ddp_replace_begin(v, e->fts_path, e->fts_statp, &r);
    if (hr != S_OK) {
        ddp_clear_error(); /* gone or replaced since the walk saw it */
        return S_OK;
    }
    ddp_stub s;
    hr = ddp_volume_read_stub(v, r.fd, e->fts_path, &s);
    if (hr == DDP_E_INVALID_DATA) {
        /* Claims to be a stub and does not authenticate. One byte off: what
         * it names is rehydrated (as scrub --repair would mend it). More:
         * no tool could read it, so it holds nothing back: reported, left
         * as it is, and the job goes on to the end (a forged or damaged copy
         * must not keep a volume from ever being unoptimized). */
        char why[900];
        snprintf(why, sizeof why, "%s", ddp_error_detail());
        if (mended_stub(v, r.fd, &r.st, &s)) {
            hr = S_OK;
        } else if (!c->measure) {
            c->stats->files_skipped_policy++;
            char *msg = ddp_xasprintf("%s; not a stub any tool can read (damaged in more than one byte, or "
                                      "forged): left as it is", why);
            if (c->cb && c->cb->file_problem) c->cb->file_problem(c->cb->ctx, e->fts_path, DDP_E_INVALID_DATA, msg);
            free(msg);
        }
    }
    ddp_clear_error();
    if (hr != S_OK || c->measure) {
        if (hr == S_OK) c->need += s.file_size;
        ddp_replace_end(&r);
        return S_OK;
    }
    c->stats->files_scanned++;
    hr = rehydrate(v, &r, &s, 0);
    ddp_replace_end(&r);
    if (SUCCEEDED(hr)) {
        c->stats->files_optimized++;
        c->stats->bytes_scanned += s.file_size;
    } else {
        c->stats->files_failed++;
        if (c->cb && c->cb->file_problem) c->cb->file_problem(c->cb->ctx, e->fts_path, hr, ddp_error_detail());
        if (hr == HRESULT_FROM_WIN32(ERROR_DISK_FULL)) return hr;
    }
    if (c->cb && c->cb->progress) c->cb->progress(c->cb->ctx, c->stats);
    return S_OK;
}

/* A directory the walk cannot read: its stubs stay stubs. Reported and
 * counted as failed, so the job keeps the chunk store they need. */
static HRESULT unopt_unreadable(ddp_volume *v, FTSENT *e, void *arg)
{
    (void)v;
    unopt_ctx *c = arg;
    if (c->measure) return S_OK;
    c->stats->files_failed++;
    HRESULT hr = ddp_fail_errno(e->fts_errno, "cannot read %s; the stubs in it were not rehydrated", e->fts_path);
    if (c->cb && c->cb->file_problem) c->cb->file_problem(c->cb->ctx, e->fts_path, hr, ddp_error_detail());
    return S_OK;
}

DDP_API HRESULT ddp_unoptimize_volume(ddp_volume *v, const ddp_job_callbacks *cb, ddp_job_stats *stats)
{
    ddp_clear_error();
    ddp_job_stats local;
    if (!stats) stats = &local;
    memset(stats, 0, sizeof *stats);
    HRESULT jr = ddp_volume_require_job(v);
    if (FAILED(jr)) return jr;
    double t0 = ddp_now();
    unopt_ctx c = { cb, stats, 0, 1 };
    HRESULT hr = ddp_volume_walk(v, unopt_one, unopt_unreadable, &c);
    if (FAILED(hr)) return hr;
    struct statvfs vfs;
    if (statvfs(v->root, &vfs) == 0) {
        uint64_t avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
        if (c.need > avail)
            return ddp_fail(DDP_E_DISK_FULL,
                            "%s: rehydrating needs %llu bytes but only %llu are free; nothing was changed",
                            v->root, (unsigned long long)c.need, (unsigned long long)avail);
    }
    c.measure = 0;
    hr = ddp_volume_walk(v, unopt_one, unopt_unreadable, &c);
    stats->seconds = ddp_now() - t0;
    if (SUCCEEDED(hr) && stats->files_failed) hr = DDP_E_JOB_COMPLETED_PARTIAL_SUCCESS;
    char line[256];
    snprintf(line, sizeof line, "unoptimize 0x%08X files=%llu failed=%llu bytes=%llu seconds=%.1f", (unsigned)hr,
             (unsigned long long)stats->files_optimized, (unsigned long long)stats->files_failed,
             (unsigned long long)stats->bytes_scanned, stats->seconds);
    ddp_volume_log_job(v, line);
    return hr;
}

/* ---- the Unoptimization job ---- */

/* rm -rf of dir's entry `name` (no symlinks followed). */
static HRESULT remove_tree_at(int dfd, const char *name, const char *what)
{
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return errno == ENOENT ? S_OK : ddp_fail_errno(errno, "removing %s", what);
    if (!S_ISDIR(st.st_mode)) {
        if (unlinkat(dfd, name, 0) != 0 && errno != ENOENT) return ddp_fail_errno(errno, "removing %s", what);
        return S_OK;
    }
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return ddp_fail_errno(errno, "removing %s", what);
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return ddp_fail_errno(errno, "removing %s", what);
    }
    HRESULT hr = S_OK;
    struct dirent *de;
    while (SUCCEEDED(hr) && (de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char *sub = ddp_path_join(what, de->d_name);
        hr = remove_tree_at(dirfd(d), de->d_name, sub);
        free(sub);
    }
    closedir(d);
    if (SUCCEEDED(hr) && unlinkat(dfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
        hr = ddp_fail_errno(errno, "removing %s", what);
    return hr;
}

static HRESULT remove_tree(const char *path)
{
    char *parent = ddp_strdup(path);
    char *slash = strrchr(parent, '/');
    if (!slash || slash == parent) {
        free(parent);
        return ddp_fail(E_INVALIDARG, "refusing to remove %s", path);
    }
    *slash = '\0';
    int dfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    HRESULT hr = dfd < 0 ? ddp_fail_errno(errno, "%s", parent) : remove_tree_at(dfd, slash + 1, path);
    if (dfd >= 0) close(dfd);
    free(parent);
    return hr;
}

typedef struct left_ctx {
    uint64_t stubs;
    char first[512];
} left_ctx;

/* Count files that claim to be stubs of this store (valid or not, or with
 * bytes appended). */
static HRESULT count_left(ddp_volume *v, FTSENT *e, void *arg)
{
    left_ctx *c = arg;
    if (!ddp_volume_may_be_stub(e->fts_statp) && e->fts_statp->st_size <= DDP_STUB_SIZE) return S_OK;
    int fd = -1;
    struct stat st;
    if (FAILED(ddp_volume_open_regular(v, e->fts_path, O_RDONLY, e->fts_statp, &fd, &st))) {
        ddp_clear_error(); /* gone or replaced: the stable walk reads its directory again */
        return S_OK;
    }
    ddp_stub s;
    HRESULT hr = ddp_volume_read_stub(v, fd, e->fts_path, &s);
    ddp_clear_error();
    /* A stub, or one that is one byte off (whose data scrub could rescue);
     * not a file that no tool could read (reported by the job). */
    uint64_t appended = 0;
    if (hr == S_OK || (hr == DDP_E_INVALID_DATA && mended_stub(v, fd, &st, &s)) ||
        (hr == DDP_E_FILE_CORRUPT && ddp_volume_read_appended_stub(v, fd, &st, e->fts_path, &s, &appended) == S_OK)) {
        if (!c->stubs++) snprintf(c->first, sizeof c->first, "%s", e->fts_path);
    }
    close(fd);
    return S_OK;
}

DDP_API HRESULT ddp_unoptimize_job(ddp_volume *v, const ddp_job_callbacks *cb, ddp_job_stats *stats)
{
    ddp_job_stats local;
    if (!stats) stats = &local;
    HRESULT hr = ddp_unoptimize_volume(v, cb, stats);
    if (FAILED(hr) || stats->files_failed) return hr;
    left_ctx left;
    memset(&left, 0, sizeof left);
    if (FAILED(hr = ddp_volume_walk_stable(v, count_left, NULL, &left))) return hr;
    if (left.stubs)
        return ddp_fail(DDP_E_JOB_COMPLETED_PARTIAL_SUCCESS,
                        "%s: %llu file(s) still claim to be stubs (for example %s); the chunk store is kept", v->root,
                        (unsigned long long)left.stubs, left.first);

    /* No stub is left: the store, State and Settings go, in an order that a
     * second run can finish (see the top of this file). */
    pthread_mutex_lock(&v->store_mu);
    ddp_chunkstore_discard(v->store); /* about to be removed: nothing to write */
    v->store = NULL;
    pthread_mutex_unlock(&v->store_mu);
    ddp_clear_error();
    char *chunkstore = ddp_path_join(v->ddp_dir, "ChunkStore");
    char *identity = ddp_path_join(v->settings_dir, "identity");
    hr = remove_tree(chunkstore);
    /* State, but the job lock, which a second run needs to open the volume. */
    DIR *sd = SUCCEEDED(hr) ? opendir(v->state_dir) : NULL;
    if (sd) {
        struct dirent *de;
        while (SUCCEEDED(hr) && (de = readdir(sd)) != NULL) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") || !strcmp(de->d_name, "job.lock")) continue;
            char *p = ddp_path_join(v->state_dir, de->d_name);
            hr = remove_tree_at(dirfd(sd), de->d_name, p);
            free(p);
        }
        closedir(sd);
    }
    if (SUCCEEDED(hr)) hr = ddp_fsync_dir(v->state_dir);
    if (SUCCEEDED(hr)) hr = ddp_fsync_dir(v->ddp_dir);
    if (SUCCEEDED(hr) && unlink(identity) != 0 && errno != ENOENT)
        hr = ddp_fail_errno(errno, "removing %s", identity);
    if (SUCCEEDED(hr)) hr = ddp_fsync_dir(v->settings_dir);
    if (SUCCEEDED(hr)) hr = remove_tree(v->ddp_dir);
    if (SUCCEEDED(hr)) hr = ddp_fsync_dir(v->root);
    free(chunkstore);
    free(identity);
    return hr;
}

DDP_API HRESULT ddp_unoptimize_finish(const char *dir)
{
    ddp_clear_error();
    if (!dir) return E_POINTER;
    char *root = realpath(dir, NULL);
    if (!root) return ddp_fail_errno(errno, "%s", dir);
    char *ddp_dir = ddp_path_join(root, ".ddp");
    char *identity = ddp_path_join(ddp_dir, "Settings/identity");
    char *store = ddp_path_join(ddp_dir, "ChunkStore");
    char *lock = ddp_path_join(ddp_dir, "State/job.lock");
    struct stat st;
    HRESULT hr = S_OK;
    int lfd = -1;
    if (lstat(ddp_dir, &st) != 0) {
        hr = errno == ENOENT ? S_FALSE : ddp_fail_errno(errno, "%s", ddp_dir);
    } else if (!S_ISDIR(st.st_mode)) {
        hr = ddp_fail(DDP_E_INVALID_STATE, "%s is not a directory; not removed", ddp_dir);
    } else if (lstat(identity, &st) == 0) {
        hr = ddp_fail(DDP_E_INVALID_STATE, "%s is a ddp volume (run 'ddp unoptimize %s')", root, dir);
    } else if (lstat(store, &st) == 0 || errno != ENOENT) {
        hr = ddp_fail(DDP_E_INVALID_STATE,
                      "%s has no identity but still holds a chunk store (%s); not removed, since files may need it",
                      ddp_dir, store);
    } else {
        lfd = open(lock, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        if (lfd >= 0 && flock(lfd, LOCK_EX | LOCK_NB) != 0)
            hr = ddp_fail(DDP_E_JOB_ALREADY_RUNNING, "%s: another ddp job is running on this volume", root);
        if (SUCCEEDED(hr)) hr = remove_tree(ddp_dir);
        if (SUCCEEDED(hr)) hr = ddp_fsync_dir(root);
    }
    if (lfd >= 0) close(lfd);
    free(lock);
    free(store);
    free(identity);
    free(ddp_dir);
    free(root);
    return hr;
}
