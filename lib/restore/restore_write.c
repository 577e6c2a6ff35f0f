/* SPDX-License-Identifier: MIT */
/*
 * restore_write.c: where restored data goes (RestoreFiles rule R9, and the
 * "nothing written outside FileFullPaths' directories" part of R10).
 *
 * Each file is rebuilt in a temporary file in its stub's own directory,
 * named ".NAME.ddp-tmp.XXXXXX" (the project's temporary-file pattern, so
 * ddp_is_temp_name() recognizes a leftover of a crash), created with
 * O_CREAT|O_EXCL|O_NOFOLLOW and mode 0600 relative to a descriptor of that
 * directory. Chunks are written with pwrite() at their file offsets, in
 * whatever order the backup store delivers them, leaving every aligned 4 KiB
 * block of zeros (or the part of one a chunk covers) unwritten
 * (base/sparse.h): holes stay holes, and the
 * file gets its size (ftruncate) once its last chunk is in.
 *
 * A restore may span 10,000 files whose chunks arrive interleaved, so the
 * temporary files are not all kept open: at most RS_MAX_OPEN_TEMPS (64)
 * descriptors, the least recently used closed first. A file is reopened by
 * name through a fresh descriptor of its directory, and both the directory
 * and the temporary file must still be the very inodes seen before (device
 * and inode numbers); otherwise the file fails rather than write somewhere
 * else.
 *
 * When a file's last chunk is written it is checked at once:
 *   1. every chunk slot was filled, the format's own check passes (ddp: the
 *      whole-file hash recomputed from the chunk hashes, each chunk's sha256
 *      having been verified on the decoded bytes, equals the stub's), and
 *      the size is the one the stub states;
 *   2. the stub's owner, xattrs, mode and times go to the new file
 *      (ddp_fileattr_copy: a different owner that cannot be set, e.g. when
 *      not root, fails the file rather than restore it unfaithfully);
 * then it waits for the batch commit (rs_commit_ready, every 64 files and at
 * the end of the data phase):
 *   3. the batch's temporary files are made durable (one syncfs() for 8 or
 *      more, else an fsync each); each stub is checked unchanged since the
 *      start (device, inode, size, mtime, ctime) and the temporary file
 *      renamed over it; the renames are made durable the same way.
 * Once the rename is done the file counts as restored: a failure of the
 * final directory fsync cannot undo it, and reporting a failure then would
 * break "a failed file is left exactly as it was".
 *
 * A failed file loses its temporary file (unlinked after checking the name
 * still is ours) and keeps its stub untouched.
 *
 * ddp_restore_files_staged (the stubs are in the caller's private staging
 * directory, ddp restore's): the stub's own inode, checked to be the one
 * seen at the start and emptied, takes the content in place of a temporary
 * file; no rename, no sync (the caller syncs once before it moves the files
 * into place), and a failed file is left for the caller to remove. That
 * saves a file creation, a rename and the freeing of the stub's block per
 * file, and a syncfs per batch.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileattr.h"
#include "base/hash.h"
#include "base/sparse.h"
#include "base/util.h"
#include "restore/restore_internal.h"
#include "restore/rsformat.h"

/* Open file i's directory and check it is the one seen at the start. */
static int open_dir(rs_ctx *c, uint32_t i, HRESULT *hr)
{
    rs_file *f = &c->files[i];
    int dfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        *hr = ddp_fail_errno(errno, "opening directory %s", f->dir);
        return -1;
    }
    struct stat st;
    if (fstat(dfd, &st) != 0) {
        *hr = ddp_fail_errno(errno, "examining directory %s", f->dir);
        close(dfd);
        return -1;
    }
    if (st.st_dev != f->dir_dev || st.st_ino != f->dir_ino) {
        *hr = ddp_fail(DDP_E_FILE_IN_USE, "directory %s was replaced during the restore", f->dir);
        close(dfd);
        return -1;
    }
    return dfd;
}

/* ---- the LRU of open temporary files ---- */

static void lru_remove(rs_ctx *c, uint32_t i)
{
    rs_file *f = &c->files[i];
    if (f->slot < 0) return;
    int s = f->slot;
    close(c->lru[s].fd);
    f->slot = -1;
    c->nlru--;
    if (s != c->nlru) {
        c->lru[s] = c->lru[c->nlru];
        c->files[c->lru[s].file].slot = s;
    }
}

static void lru_insert(rs_ctx *c, uint32_t i, int fd)
{
    if (c->nlru == RS_MAX_OPEN_TEMPS) {
        int old = 0;
        for (int s = 1; s < c->nlru; s++)
            if (c->lru[s].used < c->lru[old].used) old = s;
        lru_remove(c, c->lru[old].file);
    }
    int s = c->nlru++;
    c->lru[s].file = i;
    c->lru[s].fd = fd;
    c->lru[s].used = ++c->clock;
    c->files[i].slot = s;
}

void rs_temps_close_all(rs_ctx *c)
{
    while (c->nlru > 0) lru_remove(c, c->lru[c->nlru - 1].file);
}

/* ---- temporary files ---- */

/* ddp_restore_files_staged: the stub itself, emptied, takes the content. */
static HRESULT in_place_create(rs_ctx *c, uint32_t i, int dfd)
{
    rs_file *f = &c->files[i];
    const int flags = O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
    int fd = openat(dfd, f->base, flags);
    /* A read-only stub (not root): ours, in our private directory; its mode
     * comes back with the other attributes when the content is in. */
    if (fd < 0 && errno == EACCES && fchmodat(dfd, f->base, 0600, 0) == 0) fd = openat(dfd, f->base, flags);
    HRESULT hr = S_OK;
    struct stat st;
    if (fd < 0) hr = ddp_fail_errno(errno, "opening the staged stub %s", f->path);
    else if (fstat(fd, &st) != 0) hr = ddp_fail_errno(errno, "examining the staged stub %s", f->path);
    else if (!S_ISREG(st.st_mode) || st.st_dev != f->st.st_dev || st.st_ino != f->st.st_ino)
        hr = ddp_fail(DDP_E_FILE_IN_USE, "the staged stub %s changed during the restore", f->path);
    else if (ftruncate(fd, 0) != 0)
        hr = ddp_fail_errno(errno, "emptying the staged stub %s", f->path);
    close(dfd);
    if (FAILED(hr)) {
        if (fd >= 0) close(fd);
        return hr;
    }
    f->tmpname = ddp_strdup(f->base);
    f->tmp_dev = st.st_dev;
    f->tmp_ino = st.st_ino;
    lru_insert(c, i, fd);
    return S_OK;
}

HRESULT rs_temp_create(rs_ctx *c, uint32_t i)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    rs_file *f = &c->files[i];
    HRESULT hr = S_OK;
    int dfd = open_dir(c, i, &hr);
    if (dfd < 0) return hr;
    if (c->in_place) return in_place_create(c, i, dfd);
    int fd = -1;
    char *name = NULL;
    for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
        uint8_t rnd[6];
        char suffix[7];
        if (ddp_random_bytes(rnd, sizeof rnd) != 0) {
            hr = ddp_fail(E_FAIL, "the system random number generator failed");
            break;
        }
        for (int k = 0; k < 6; k++) suffix[k] = alphabet[rnd[k] % (sizeof alphabet - 1)];
        suffix[6] = '\0';
        /* Keep the name within NAME_MAX whatever the stub's name. */
        free(name);
        name = ddp_xasprintf(".%.180s.ddp-tmp.%s", f->base, suffix);
        fd = openat(dfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        /* Held while open: a job's cleaner leaves a locked temporary alone. */
        if (fd >= 0) (void)flock(fd, LOCK_EX | LOCK_NB);
        if (fd < 0 && errno != EEXIST) {
            hr = ddp_fail_errno(errno, "creating a temporary file in %s", f->dir);
            break;
        }
    }
    if (fd < 0) {
        close(dfd);
        free(name);
        return FAILED(hr) ? hr : ddp_fail(DDP_E_UNEXPECTED, "no free temporary file name in %s", f->dir);
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        hr = ddp_fail_errno(errno, "examining a temporary file in %s", f->dir);
        close(fd);
        (void)unlinkat(dfd, name, 0);
        close(dfd);
        free(name);
        return hr;
    }
    close(dfd);
    f->tmpname = name;
    f->tmp_dev = st.st_dev;
    f->tmp_ino = st.st_ino;
    lru_insert(c, i, fd);
    return S_OK;
}

/* An open descriptor of file i's temporary file (reopened if it was closed). */
static int temp_fd(rs_ctx *c, uint32_t i, HRESULT *hr)
{
    rs_file *f = &c->files[i];
    if (f->slot >= 0) {
        c->lru[f->slot].used = ++c->clock;
        return c->lru[f->slot].fd;
    }
    int dfd = open_dir(c, i, hr);
    if (dfd < 0) return -1;
    int fd = openat(dfd, f->tmpname, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    int err = errno;
    if (fd >= 0) (void)flock(fd, LOCK_EX | LOCK_NB); /* held again (see create) */
    close(dfd);
    if (fd < 0) {
        *hr = ddp_fail_errno(err, "reopening temporary file %s in %s", f->tmpname, f->dir);
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_dev != f->tmp_dev || st.st_ino != f->tmp_ino) {
        *hr = ddp_fail(DDP_E_FILE_IN_USE, "temporary file %s in %s was replaced during the restore", f->tmpname,
                       f->dir);
        close(fd);
        return -1;
    }
    lru_insert(c, i, fd);
    return fd;
}

void rs_temp_discard(rs_ctx *c, uint32_t i)
{
    rs_file *f = &c->files[i];
    lru_remove(c, i);
    if (!f->tmpname) return;
    if (c->in_place) { /* the stub itself: the caller removes it */
        free(f->tmpname);
        f->tmpname = NULL;
        return;
    }
    HRESULT hr;
    int dfd = open_dir(c, i, &hr);
    if (dfd >= 0) {
        /* Remove the name only if it still is the file we created. */
        struct stat st;
        if (fstatat(dfd, f->tmpname, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_dev == f->tmp_dev &&
            st.st_ino == f->tmp_ino)
            (void)unlinkat(dfd, f->tmpname, 0);
        close(dfd);
    }
    free(f->tmpname);
    f->tmpname = NULL;
}

void rs_write_chunk(rs_ctx *c, uint32_t i, uint32_t entry, uint64_t off, const uint8_t *data, uint32_t len)
{
    rs_file *f = &c->files[i];
    if (f->filled[entry / 8] & (1u << (entry % 8))) return; /* already written */
    HRESULT hr = S_OK;
    int fd = temp_fd(c, i, &hr);
    if (fd < 0) {
        rs_file_fail(c, i, hr);
        return;
    }
    /* Zeros are left as holes (the temporary file is new and each chunk
     * slot is written once, so they read as zeros): a sparse file stays
     * sparse. */
    hr = ddp_pwrite_sparse(fd, data, len, off, f->tmpname);
    if (FAILED(hr)) {
        rs_file_fail(c, i, hr);
        return;
    }
    f->filled[entry / 8] |= (uint8_t)(1u << (entry % 8));
    if (--f->remaining == 0) rs_finish_file(c, i);
}

/* Step 1 of finishing: NULL when the written content is complete and right. */
static const char *content_problem(rs_ctx *c, uint32_t i, int fd)
{
    const rs_file *f = &c->files[i];
    for (uint32_t k = 0; k < f->nchunks; k++)
        if (!(f->filled[k / 8] & (1u << (k % 8)))) return "a chunk was never written";
    const rs_format *fmt = rs_formats[f->fmt];
    const char *why = fmt->content_problem ? fmt->content_problem(c, i) : NULL;
    if (why) return why;
    struct stat st;
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_size != f->size) return "the content has the wrong size";
    return NULL;
}

/* Step 2 of finishing: the stub, still the same file, gives the new one its
 * owner, xattrs, mode and times. */
static HRESULT carry_stub_attrs(rs_ctx *c, uint32_t i, int fd)
{
    rs_file *f = &c->files[i];
    HRESULT hr = S_OK;
    int dfd = open_dir(c, i, &hr);
    if (dfd < 0) return hr;
    /* The stub itself, for its xattrs, and to see that it is still the same file. */
    int sfd = openat(dfd, f->base, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    struct stat now;
    if (sfd < 0) {
        hr = errno == ENOENT || errno == ELOOP
                 ? ddp_fail(DDP_E_FILE_IN_USE, "the stub was removed or replaced during the restore")
                 : ddp_fail_errno(errno, "reopening the stub");
    } else if (fstat(sfd, &now) != 0) {
        hr = ddp_fail_errno(errno, "examining the stub");
    } else if (!ddp_fileattr_unchanged(&f->st, &now)) {
        hr = ddp_fail(DDP_E_FILE_IN_USE, "the stub changed during the restore");
    }
    if (SUCCEEDED(hr)) hr = ddp_fileattr_copy(sfd, fd, &f->st, f->path);
    if (sfd >= 0) close(sfd);
    close(dfd);
    return hr;
}

void rs_finish_file(rs_ctx *c, uint32_t i)
{
    rs_file *f = &c->files[i];
    HRESULT hr = S_OK;
    int fd = temp_fd(c, i, &hr);
    if (fd < 0) {
        rs_file_fail(c, i, hr);
        return;
    }
    /* A hole at the end was never written: give the file its size. */
    hr = ddp_sparse_finish(fd, f->size, f->tmpname);
    if (FAILED(hr)) {
        rs_file_fail(c, i, hr);
        return;
    }
    const char *why = content_problem(c, i, fd);
    if (why) {
        rs_file_fail(c, i, ddp_fail(DDP_E_FILE_CORRUPT, "restored data rejected: %s", why));
        return;
    }
    hr = c->in_place ? ddp_fileattr_copy(-1, fd, &f->st, f->path) /* the stub's own inode: xattrs are there */
                     : carry_stub_attrs(c, i, fd);
    /* In place nothing is synced here: start writing it back, so that the
     * caller's sync has less to wait for. */
    if (SUCCEEDED(hr) && c->in_place) (void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
    if (FAILED(hr)) {
        rs_file_fail(c, i, hr);
        return;
    }
    f->ready = 1;
    if (!c->ready) c->ready = ddp_xcalloc(c->n, sizeof *c->ready);
    c->ready[c->nready++] = i;
    if (c->nready >= RS_COMMIT_BATCH) rs_commit_ready(c);
}

/* File i is restored: let go of what it held. */
static void mark_restored(rs_ctx *c, uint32_t i)
{
    rs_file *f = &c->files[i];
    lru_remove(c, i);
    free(f->tmpname);
    f->tmpname = NULL;
    f->state = RS_RESTORED;
    f->result = S_OK;
    rs_formats[f->fmt]->file_release(c, i);
    free(f->filled);
    f->filled = NULL;
}

/* Rename file i (queued, its data durable) over its stub. */
static void commit_one(rs_ctx *c, uint32_t i, int sync_each, int *any_dfd)
{
    rs_file *f = &c->files[i];
    HRESULT hr = S_OK;
    struct stat now;
    int dfd = open_dir(c, i, &hr);
    if (dfd < 0) {
        rs_file_fail(c, i, hr);
        return;
    }
    /* Last look just before the rename. */
    if (fstatat(dfd, f->base, &now, AT_SYMLINK_NOFOLLOW) != 0 || !ddp_fileattr_unchanged(&f->st, &now))
        hr = ddp_fail(DDP_E_FILE_IN_USE, "the stub changed during the restore");
    if (SUCCEEDED(hr) && renameat(dfd, f->tmpname, dfd, f->base) != 0)
        hr = ddp_fail_errno(errno, "replacing the stub");
    if (FAILED(hr)) {
        close(dfd);
        rs_file_fail(c, i, hr);
        return;
    }
    mark_restored(c, i);
    if (sync_each) (void)fsync(dfd); /* best effort: the rename is done and cannot be taken back */
    if (*any_dfd < 0) *any_dfd = dfd;
    else close(dfd);
}

void rs_commit_ready(rs_ctx *c)
{
    uint32_t n = c->nready;
    if (n == 0) return;
    c->nready = 0;
    if (c->in_place) { /* nothing to rename; the caller syncs before it moves them */
        for (uint32_t k = 0; k < n; k++) {
            rs_file *f = &c->files[c->ready[k]];
            f->ready = 0;
            if (f->state == RS_PENDING) mark_restored(c, c->ready[k]);
        }
        return;
    }
    int batch = n >= RS_SYNCFS_MIN;
    /* 1. the data of every queued file is durable */
    if (batch) {
        HRESULT hr = S_OK;
        int dfd = open_dir(c, c->ready[0], &hr);
        if (dfd >= 0 && syncfs(dfd) != 0) hr = ddp_fail_errno(errno, "syncing the restored files");
        if (dfd >= 0) close(dfd);
        if (FAILED(hr))
            for (uint32_t k = 0; k < n; k++) {
                c->files[c->ready[k]].ready = 0;
                rs_file_fail(c, c->ready[k], hr);
            }
        if (FAILED(hr)) return;
    }
    int any_dfd = -1;
    for (uint32_t k = 0; k < n; k++) {
        uint32_t i = c->ready[k];
        rs_file *f = &c->files[i];
        f->ready = 0;
        if (f->state != RS_PENDING) continue;
        if (!batch) {
            HRESULT hr = S_OK;
            int fd = temp_fd(c, i, &hr);
            if (fd >= 0) hr = ddp_fsync_fd(fd, f->path);
            if (FAILED(hr)) {
                rs_file_fail(c, i, hr);
                continue;
            }
        }
        commit_one(c, i, !batch, &any_dfd);
    }
    /* 2. the renames are durable (best effort: they cannot be taken back) */
    if (batch && any_dfd >= 0) (void)syncfs(any_dfd);
    if (any_dfd >= 0) close(any_dfd);
}
