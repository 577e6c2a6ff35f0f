/* SPDX-License-Identifier: MIT */
/*
 * rehydrate.c: files open for writing through the mount (programs/mount/,
 * mountfs.h says what is where): the writers, rehydrating a stub before it
 * is written, and putting a file back after a job replaced it meanwhile.
 *
 * Writing. Opening a stub for writing (or truncating it to a size > 0, or
 * hard-linking it) first rehydrates it in place with ddp_unoptimize_at
 * (from the held directory fd, by fds only; atomic; owner, mode, times and
 * xattrs kept), then the plain file is
 * opened; O_TRUNC and truncation to 0 act on the stub itself, which keeps
 * the inode, owner, mode and xattrs and needs no rehydration.
 *
 * A job running meanwhile. The optimization job replaces a file by renaming
 * a stub over it after checking it unchanged. A file held open for writing
 * through the mount can pass that check between two writes; what is written
 * after the rename would go to the replaced inode. Every file open for
 * writing is tracked (a "writer" per inode); after each write and on flush,
 * fsync and close (and once a second from a watcher thread) the daemon
 * checks that the inode still has a name. If it has none and the name now
 * holds a valid stub with the same owner and mode and an mtime not newer
 * than the file's, a job replaced it: the file's current content (which
 * includes every write) is copied to a private temporary (.ddp/Temp) with its
 * owner, mode, times and xattrs, synced and exchanged with the stub through
 * the held directory fd (lib/volume/replace.h), and the open handles move to it.
 * A file that was unlinked or renamed over through the mount is left alone.
 */
#ifdef DDP_HAVE_FUSE

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "base/fileattr.h"
#include "base/util.h"
#include "mountfs.h"
#include "store/stub.h"
#include "volume/replace.h"
#include "volume/volume.h"

#define WATCH_BATCH 64

/* ---------------------------------------------- writers and job recovery */

static pthread_mutex_t *stripe_for(const char *path)
{
    uint32_t h = 2166136261u;
    for (const char *p = path; *p; p++) h = (h ^ (uint8_t)*p) * 16777619u;
    return &mnt.stripes[h % STRIPES];
}

void mnt_wn_register(handle *h, const struct stat *st, const char *path)
{
    pthread_mutex_lock(&mnt.wmu);
    wnode *wn = mnt.wnodes;
    while (wn && !(wn->dev == st->st_dev && wn->ino == st->st_ino)) wn = wn->next;
    if (!wn) {
        wn = ddp_xcalloc(1, sizeof *wn);
        wn->dev = st->st_dev;
        wn->ino = st->st_ino;
        pthread_rwlock_init(&wn->io, NULL);
        wn->path = ddp_strdup(path);
        wn->next = mnt.wnodes;
        mnt.wnodes = wn;
        atomic_fetch_add(&mnt.nwn, 1);
    }
    wn->refs++;
    pthread_mutex_unlock(&mnt.wmu);
    pthread_rwlock_wrlock(&wn->io);
    h->wn = wn;
    h->wnext = wn->handles;
    wn->handles = h;
    pthread_rwlock_unlock(&wn->io);
}

static void wn_unref(wnode *wn)
{
    pthread_mutex_lock(&mnt.wmu);
    if (--wn->refs == 0) {
        for (wnode **p = &mnt.wnodes; *p; p = &(*p)->next)
            if (*p == wn) {
                *p = wn->next;
                break;
            }
        atomic_fetch_sub(&mnt.nwn, 1);
        pthread_rwlock_destroy(&wn->io);
        free(wn->path);
        free(wn);
    }
    pthread_mutex_unlock(&mnt.wmu);
}

void mnt_wn_unregister(handle *h)
{
    wnode *wn = h->wn;
    pthread_rwlock_wrlock(&wn->io);
    for (handle **p = &wn->handles; *p; p = &(*p)->wnext)
        if (*p == h) {
            *p = h->wnext;
            break;
        }
    pthread_rwlock_unlock(&wn->io);
    h->wn = NULL;
    wn_unref(wn);
}

/* The inode (dev, ino) lost its last name through the mount. */
void mnt_wn_mark_gone(dev_t dev, ino_t ino)
{
    if (atomic_load(&mnt.nwn) == 0) return;
    pthread_mutex_lock(&mnt.wmu);
    for (wnode *wn = mnt.wnodes; wn; wn = wn->next)
        if (wn->dev == dev && wn->ino == ino) wn->gone = 1;
    pthread_mutex_unlock(&mnt.wmu);
}

/* A rename through the mount: the writers under from are now under to. */
static char *renamed(const char *p, const char *from, const char *to)
{
    size_t n = strlen(from);
    if (strncmp(p, from, n) != 0 || (p[n] != '\0' && p[n] != '/')) return NULL;
    return ddp_xasprintf("%s%s", to, p + n);
}

void mnt_wn_rename(const char *from, const char *to, int exchange)
{
    if (atomic_load(&mnt.nwn) == 0) return;
    pthread_mutex_lock(&mnt.wmu);
    for (wnode *wn = mnt.wnodes; wn; wn = wn->next) {
        char *np = renamed(wn->path, from, to);
        if (!np && exchange) np = renamed(wn->path, to, from);
        if (np) {
            free(wn->path);
            wn->path = np;
        }
    }
    pthread_mutex_unlock(&mnt.wmu);
}

/* Has the inode behind wn lost its every name? (caller holds wn->io) */
int mnt_wn_orphaned_locked(wnode *wn)
{
    struct stat st;
    return !wn->gone && wn->handles && fstat(wn->handles->fd, &st) == 0 && st.st_nlink == 0;
}

static int wn_orphaned(wnode *wn)
{
    pthread_rwlock_rdlock(&wn->io);
    int r = mnt_wn_orphaned_locked(wn);
    pthread_rwlock_unlock(&wn->io);
    return r;
}

static int copy_content(int from, int to, uint64_t size)
{
    uint64_t off = 0;
    while (off < size) {
        loff_t in = (loff_t)off, outo = (loff_t)off;
        size_t want = size - off > ((size_t)1 << 30) ? ((size_t)1 << 30) : (size_t)(size - off);
        ssize_t n = copy_file_range(from, &in, to, &outo, want, 0);
        if (n > 0) {
            off += (uint64_t)n;
            continue;
        }
        if (n == 0) return -EIO;
        if (errno == EINTR) continue;
        if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP) return -errno;
        /* No copy_file_range here: copy by hand. */
        size_t cap = (size_t)1 << 20;
        char *buf = ddp_xmalloc(cap);
        while (off < size) {
            size_t k = size - off > cap ? cap : (size_t)(size - off);
            ssize_t r = pread(from, buf, k, (off_t)off);
            if (r <= 0) {
                int e = r < 0 ? errno : EIO;
                if (r < 0 && e == EINTR) continue;
                free(buf);
                return -e;
            }
            HRESULT hr = ddp_pwrite_all(to, buf, (size_t)r, off, "the recovered file");
            if (FAILED(hr)) {
                free(buf);
                return -mnt_hr_errno(hr);
            }
            off += (uint64_t)r;
        }
        free(buf);
    }
    return 0;
}

/* A job replaced a file while it was open for writing here: put the file's
 * content (every write included) back over the job's stub, and move the
 * handles to it. have_stripe: the caller holds the path's stripe lock. */
int mnt_recover(wnode *wn, int have_stripe)
{
    pthread_mutex_lock(&mnt.wmu);
    char *path = ddp_strdup(wn->path);
    pthread_mutex_unlock(&mnt.wmu);
    pthread_mutex_t *sm = have_stripe ? NULL : stripe_for(path);
    if (sm) pthread_mutex_lock(sm);
    pthread_rwlock_wrlock(&wn->io);
    int done = 0, sfd = -1, ofd = -1;
    at_path a = { -1, NULL, 0 };
    struct stat o, cur, again;
    if (!mnt_wn_orphaned_locked(wn) || fstat(wn->handles->fd, &o) != 0) goto out;
    if (mnt_resolve(path, &a, 0) != 0 || fstatat(a.dirfd, a.name, &cur, AT_SYMLINK_NOFOLLOW) != 0 ||
        !mnt_could_be_stub(&cur)) {
        wn->gone = 1;         /* unlinked or replaced by a plain file, not through the mount: not a job's doing */
        goto out;
    }
    sfd = mnt_open_noatime(a.dirfd, a.name);
    ddp_stub s;
    if (sfd < 0 || fstat(sfd, &again) != 0 || again.st_ino != cur.st_ino ||
        ddp_volume_read_stub(mnt.v, sfd, path, &s) != S_OK)
        goto out;             /* changing under us: the watcher looks again */
    int same = cur.st_uid == o.st_uid && cur.st_gid == o.st_gid && (cur.st_mode & 07777) == (o.st_mode & 07777) &&
               (cur.st_mtim.tv_sec < o.st_mtim.tv_sec ||
                (cur.st_mtim.tv_sec == o.st_mtim.tv_sec && cur.st_mtim.tv_nsec <= o.st_mtim.tv_nsec));
    if (!same) {
        mlog("%s: replaced by another optimized file while open for writing through the mount; the writes made "
             "through the open handles stay with the replaced file",
             path);
        wn->gone = 1;
        goto out;
    }
    /* A reader of the content: any handle that can read, else a new one. */
    for (handle *h = wn->handles; h && ofd < 0; h = h->wnext)
        if ((h->flags & O_ACCMODE) == O_RDWR) ofd = dup(h->fd);
    if (ofd < 0) {
        char pp[64];
        snprintf(pp, sizeof pp, "/proc/self/fd/%d", wn->handles->fd);
        ofd = open(pp, O_RDONLY | O_CLOEXEC);
    }
    HRESULT hr = S_OK;
    ddp_replace r;
    if (ofd < 0) {
        hr = ddp_fail_errno(errno, "reopening the file for reading");
    } else if ((hr = ddp_replace_begin_at(mnt.v, a.dirfd, a.name, path, &cur, &r)) == S_OK) {
        /* Built in the volume's private .ddp/Temp and exchanged with the
         * job's stub through the held directory fd (lib/volume/replace.h). */
        r.no_lease = 1;
        hr = ddp_replace_temp(mnt.v, &r);
        int e = SUCCEEDED(hr) ? copy_content(ofd, r.tmpfd, (uint64_t)o.st_size) : 0;
        if (e) hr = ddp_fail_errno(-e, "copying the content");
        struct stat o2;
        if (SUCCEEDED(hr) && fstat(ofd, &o2) == 0) o = o2;
        if (SUCCEEDED(hr)) hr = ddp_fileattr_copy(ofd, r.tmpfd, &o, path);
        if (SUCCEEDED(hr)) hr = ddp_fsync_fd(r.tmpfd, path);
        if (SUCCEEDED(hr)) hr = ddp_replace_commit(mnt.v, &r, &cur, 0);
        ddp_replace_end(&r);
    } else if (hr == S_FALSE) {
        hr = ddp_fail(DDP_E_FILE_IN_USE, "the stub changed meanwhile");
    }
    if (FAILED(hr)) {
        mlog("%s: a job optimized this file while it was open for writing through the mount, and putting the "
             "writes back failed: %s (0x%08X); will try again",
             path, ddp_error_detail(), (unsigned)hr);
        goto out;
    }
    int dfd = openat(a.dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    /* Move every handle to the file now at the name. */
    struct stat now;
    int moved = 0;
    for (handle *h = wn->handles; h; h = h->wnext) {
        int flags = (h->flags & (O_ACCMODE | O_APPEND | O_SYNC | O_DSYNC | O_NOATIME)) | O_NOFOLLOW | O_CLOEXEC;
        int nfd = openat(a.dirfd, a.name, flags);
        if (nfd < 0 || dup3(nfd, h->fd, O_CLOEXEC) < 0) {
            mlog("%s: reopening a handle after recovery: %s", path, strerror(errno));
        } else {
            if ((h->flags & O_ACCMODE) != O_RDONLY) (void)flock(h->fd, LOCK_SH); /* see mnt_lock_writer */
            moved++;
        }
        if (nfd >= 0) close(nfd);
    }
    if (fstat(wn->handles->fd, &now) == 0) {
        pthread_mutex_lock(&mnt.wmu);
        wn->dev = now.st_dev;
        wn->ino = now.st_ino;
        pthread_mutex_unlock(&mnt.wmu);
    }
    minfo("%s: a job optimized this file while it was open for writing through the mount; its content with every "
         "write (%llu bytes) was put back over the stub and %d open handle(s) moved to it",
         path, (unsigned long long)o.st_size, moved);
    done = 1;
out:
    if (sfd >= 0) close(sfd);
    if (ofd >= 0) close(ofd);
    mnt_at_done(&a);
    pthread_rwlock_unlock(&wn->io);
    if (sm) pthread_mutex_unlock(sm);
    free(path);
    return done;
}

/* Recover the orphaned writers of path (see mnt_recover); how many were. */
int mnt_recover_path(const char *path, int have_stripe)
{
    if (atomic_load(&mnt.nwn) == 0) return 0;
    wnode *list[WATCH_BATCH];
    int n = 0, done = 0;
    pthread_mutex_lock(&mnt.wmu);
    for (wnode *wn = mnt.wnodes; wn && n < WATCH_BATCH; wn = wn->next)
        if (!wn->gone && !strcmp(wn->path, path)) {
            wn->refs++;
            list[n++] = wn;
        }
    pthread_mutex_unlock(&mnt.wmu);
    for (int i = 0; i < n; i++) {
        if (wn_orphaned(list[i])) done += mnt_recover(list[i], have_stripe);
        wn_unref(list[i]);
    }
    return done;
}

void mnt_check_writer(handle *h)
{
    if (h->kind == H_PLAIN && h->wn && wn_orphaned(h->wn)) mnt_recover(h->wn, 0);
}

static void *watch_thread(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mnt.watchmu);
    while (!mnt.stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&mnt.watchcv, &mnt.watchmu, &until);
        if (mnt.stopping) break;
        pthread_mutex_unlock(&mnt.watchmu);
        if (atomic_load(&mnt.nwn) > 0) {
            wnode *list[WATCH_BATCH];
            int n = 0;
            pthread_mutex_lock(&mnt.wmu);
            for (wnode *wn = mnt.wnodes; wn && n < WATCH_BATCH; wn = wn->next)
                if (!wn->gone) {
                    wn->refs++;
                    list[n++] = wn;
                }
            pthread_mutex_unlock(&mnt.wmu);
            for (int i = 0; i < n; i++) {
                if (wn_orphaned(list[i])) mnt_recover(list[i], 0);
                wn_unref(list[i]);
            }
        }
        pthread_mutex_lock(&mnt.watchmu);
    }
    pthread_mutex_unlock(&mnt.watchmu);
    return NULL;
}

void mnt_watch_start(void)
{
    pthread_mutex_init(&mnt.watchmu, NULL);
    pthread_cond_init(&mnt.watchcv, NULL);
    mnt.watcher_started = pthread_create(&mnt.watcher, NULL, watch_thread, NULL) == 0;
}

void mnt_watch_stop(void)
{
    pthread_mutex_lock(&mnt.watchmu);
    mnt.stopping = 1;
    pthread_cond_broadcast(&mnt.watchcv);
    pthread_mutex_unlock(&mnt.watchmu);
    if (mnt.watcher_started) pthread_join(mnt.watcher, NULL);
    pthread_cond_destroy(&mnt.watchcv);
    pthread_mutex_destroy(&mnt.watchmu);
}

/* Rehydrate the stub at a in place (the caller holds the path's stripe). */
static int rehydrate(const at_path *a, const char *path)
{
    /* From the directory fd the mount holds (beneath the root), by fds
     * only: the stub read is the one rehydrated (lib/volume/replace.h). */
    HRESULT hr = ddp_unoptimize_at(mnt.v, a->dirfd, a->name, path, DDP_UNOPT_NO_LEASE);
    if (FAILED(hr)) {
        if (hr != DDP_E_FILE_IN_USE)
            mlog("%s: rehydrating it for writing failed: %s (0x%08X)", path, ddp_error_detail(), (unsigned)hr);
        return -mnt_hr_errno(hr);
    }
    return 0;
}

/* Rehydrate a's file if it is a stub (for writing, linking, truncating). */
int mnt_rehydrate_if_stub(const at_path *a, const char *path)
{
    for (int tries = 0; tries < 5; tries++) {
        struct stat st;
        if (fstatat(a->dirfd, a->name, &st, AT_SYMLINK_NOFOLLOW) != 0) return -errno;
        uint64_t logical;
        int k = mnt_classify(-1, a, path, &st, &logical);
        if (k < 0) return k;
        if (k == K_PLAIN) return 0;
        pthread_mutex_t *sm = stripe_for(path);
        pthread_mutex_lock(sm);
        int rec = mnt_recover_path(path, 1);
        int r = rec ? 0 : rehydrate(a, path);
        pthread_mutex_unlock(sm);
        if (r && r != -EBUSY) return r;
    }
    mlog("%s: the file kept changing while it was being rehydrated", path);
    return -EBUSY;
}

/* A writer's handle holds a shared flock on its plain file for as long as
 * it is open: the optimizer takes an exclusive one (non-blocking) before it
 * replaces a file with its stub and leaves a file it cannot lock, so no job
 * replaces a file open for writing through the mount
 * (lib/volume/optimize.c). The flock waits out a replacement in progress
 * (microseconds); 1 is returned when the name no longer names fd's file
 * (replaced meanwhile: open again). */
int mnt_lock_writer(int fd, const at_path *a)
{
    while (flock(fd, LOCK_SH) != 0)
        if (errno != EINTR) return 0; /* cannot lock (not supported): the watcher still covers it */
    struct stat mine, named;
    if (fstat(fd, &mine) != 0 || fstatat(a->dirfd, a->name, &named, AT_SYMLINK_NOFOLLOW) != 0) return 1;
    return mine.st_dev != named.st_dev || mine.st_ino != named.st_ino;
}

#else
/* Built without libfuse3: nothing here. */
typedef int ddp_mount_rehydrate_not_built;
#endif /* DDP_HAVE_FUSE */
