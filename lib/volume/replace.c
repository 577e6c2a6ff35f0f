/* SPDX-License-Identifier: MIT */
/*
 * replace.c: replacing a file of a volume by a new one through held
 * directory fds (replace.h; docs/SECURITY.md).
 *
 * The jobs run as root in trees that untrusted users write. So the file is
 * opened beneath the volume root (base/safepath.h: no link, no mount point,
 * no "..", O_NONBLOCK, proved regular by fstat, the very file that was
 * checked), the replacement is built in a private temporary in .ddp/Temp
 * (0700; O_TMPFILE where the file system has it, so a killed job leaves
 * nothing), and it is put in place by renameat2(RENAME_EXCHANGE) between
 * .ddp/Temp and the held directory fd: what comes out is checked to be the
 * file that was opened, and is put back if it is not.
 *
 * Leases (Linux's oplocks): before the exchange the job takes a write lease
 * on the file (F_SETLEASE F_WRLCK; root has CAP_LEASE, others only on their
 * own files). The kernel refuses it while any process has the file open, so
 * a file someone is using is skipped and left as it is; a process that opens
 * the file while the lease is held breaks it (its open waits until the lease
 * is let go), and the job then puts the file back as it was. SIGIO, which
 * the kernel sends on a break, is ignored (the lease is polled with
 * F_GETLEASE). Where leases are not available (NFS and other network or
 * FUSE file systems, fs.leases-enable=0, a non-root job on another user's
 * file) only the checks remain and ddp mount's writers are kept by their
 * flock (the lock is taken here too).
 *
 * Directory times. The exchange sets the directory's mtime (and ctime), as
 * any rename does; but the directory holds the same names after it, and the
 * file the same content for anyone who reads it through ddp. So its atime
 * and mtime are taken by fstat just before the exchange and set back by
 * futimens just after (the ctime, which nobody can set, still tells). When
 * the directory shows another change meanwhile (its size or link count
 * differs, or its mtime went back), it is left alone. A user's change that
 * lands in the few microseconds between that fstat and the futimens and
 * leaves size and link count as they were (a rename inside the directory)
 * has its mtime rolled back to the one before: an accepted window
 * (docs/SECURITY.md); the entry itself is never touched.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileattr.h"
#include "base/util.h"
#include "volume/replace.h"

static pthread_once_t sigio_once = PTHREAD_ONCE_INIT;

/* A lease break sends SIGIO, whose default action ends the process. */
static void ignore_sigio(void)
{
    struct sigaction sa;
    if (sigaction(SIGIO, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL && !(sa.sa_flags & SA_SIGINFO)) {
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_IGN;
        sigemptyset(&sa.sa_mask);
        (void)sigaction(SIGIO, &sa, NULL);
    }
}

static void init(ddp_replace *r)
{
    memset(r, 0, sizeof *r);
    r->dirfd = r->fd = r->tmpfd = r->tdir = -1;
}

HRESULT ddp_replace_begin_at(ddp_volume *v, int dirfd, const char *name, const char *what,
                             const struct stat *expect, ddp_replace *r)
{
    (void)v;
    init(r);
    r->what = what;
    r->dirfd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
    if (r->dirfd < 0) return ddp_fail_errno(errno, "%s", what);
    r->name = ddp_strdup(name);
    HRESULT hr = ddp_open_regular_at(r->dirfd, name, O_RDONLY, expect, &r->fd, &r->st);
    if (hr == HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED) && !expect) {
        /* Named, not found by a walk: a link, FIFO or directory at that
         * name is simply not an optimized file. */
        struct stat lst;
        if (fstatat(r->dirfd, name, &lst, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISREG(lst.st_mode)) {
            ddp_clear_error();
            hr = S_FALSE;
        }
    }
    if (hr != S_OK) {
        if (SUCCEEDED(hr)) hr = S_FALSE;
        else hr = ddp_fail(hr, "%s: %s", what, ddp_error_detail());
        ddp_replace_end(r);
    }
    return hr;
}

HRESULT ddp_replace_begin(ddp_volume *v, const char *path, const struct stat *expect, ddp_replace *r)
{
    init(r);
    int dirfd = -1;
    char *name = NULL;
    HRESULT hr = ddp_volume_locate(v, path, &dirfd, &name);
    if (FAILED(hr)) return hr;
    hr = ddp_replace_begin_at(v, dirfd, name, path, expect, r);
    close(dirfd);
    free(name);
    return hr;
}

HRESULT ddp_replace_temp(ddp_volume *v, ddp_replace *r)
{
    int tdir;
    HRESULT hr = ddp_volume_tempdir(v, &tdir);
    if (FAILED(hr)) return hr;
    r->tdir = tdir;
    hr = ddp_tmpfile_at(tdir, 0600, &r->tmpfd, r->tmpname);
    if (FAILED(hr)) hr = ddp_fail(hr, "%s: %s", r->what, ddp_error_detail());
    return hr;
}

/* The directory's times as they were just before the exchange (see the top
 * of this file): put back after it, so that replacing a file by its stub or
 * its stub by the file (the same content for anyone who reads it) does not
 * look like a change of the directory. Best effort: a directory the job may
 * not set times on (not its owner, no CAP_FOWNER) keeps the new ones. */
static void keep_dir_times(const ddp_replace *r, const struct stat *before)
{
    struct stat now;
    if (fstat(r->dirfd, &now) != 0 || now.st_ino != before->st_ino || now.st_dev != before->st_dev) return;
    /* Someone else changed it meanwhile (an entry added or removed, or its
     * times set back): their change stays visible. */
    if (now.st_size != before->st_size || now.st_nlink != before->st_nlink ||
        now.st_mtim.tv_sec < before->st_mtim.tv_sec ||
        (now.st_mtim.tv_sec == before->st_mtim.tv_sec && now.st_mtim.tv_nsec < before->st_mtim.tv_nsec))
        return;
    const struct timespec ts[2] = { before->st_atim, before->st_mtim };
    if (futimens(r->dirfd, ts) == 0 || errno != EBADF) return;
    /* dirfd may be an O_PATH descriptor (ddp mount's): futimens needs a real one. */
    int dfd = openat(r->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return;
    (void)futimens(dfd, ts);
    close(dfd);
}

static int lease_held(const ddp_replace *r) { return !r->leased || fcntl(r->fd, F_GETLEASE) == F_WRLCK; }

/* Put back what the exchange took out (it is at tmpname in tdir). */
static HRESULT exchange_back(ddp_replace *r, int tdir, const char *why, const struct stat *dir_before)
{
    if (renameat2(tdir, r->tmpname, r->dirfd, r->name, RENAME_EXCHANGE) == 0 ||
        renameat2(tdir, r->tmpname, r->dirfd, r->name, RENAME_NOREPLACE) == 0) {
        if (dir_before) keep_dir_times(r, dir_before);
        return ddp_fail(DDP_E_FILE_IN_USE, "%s %s; left as it was", r->what, why);
    }
    return ddp_fail_errno(errno, "%s %s, and putting it back failed (it is in .ddp/Temp/%s)", r->what, why,
                          r->tmpname);
}

HRESULT ddp_replace_commit(ddp_volume *v, ddp_replace *r, const struct stat *unchanged, int sync_dir)
{
    int tdir;
    HRESULT hr = ddp_volume_tempdir(v, &tdir);
    if (FAILED(hr)) return hr;
    /* ddp mount holds a shared flock on every file it has open for writing:
     * such a file is in use. Held until the end (closing fd lets it go). */
    if (flock(r->fd, LOCK_EX | LOCK_NB) != 0)
        return errno == EWOULDBLOCK
                   ? ddp_fail(DDP_E_FILE_IN_USE, "%s is open for writing (through ddp mount); left as it is", r->what)
                   : ddp_fail_errno(errno, "locking %s", r->what);
    pthread_once(&sigio_once, ignore_sigio);
    if (r->no_lease) {
        /* the caller keeps its own users apart */
    } else if (fcntl(r->fd, F_SETLEASE, F_WRLCK) == 0) {
        r->leased = 1;
    } else if (errno == EAGAIN || errno == EBUSY) {
        return ddp_fail(DDP_E_FILE_IN_USE, "%s is open in another process; left as it is", r->what);
    } /* else no leases here (see the top of this file) */
    struct stat now;
    if (fstat(r->fd, &now) != 0) return ddp_fail_errno(errno, "%s", r->what);
    if (unchanged && !ddp_fileattr_unchanged(unchanged, &now))
        return ddp_fail(DDP_E_FILE_IN_USE, "%s changed while it was being worked on; left as it is", r->what);
    hr = ddp_tmpfile_name_at(tdir, r->tmpfd, r->tmpname);
    if (FAILED(hr)) return ddp_fail(hr, "%s: %s", r->what, ddp_error_detail());
    if (!lease_held(r)) return ddp_fail(DDP_E_FILE_IN_USE, "%s was opened by another process; left as it is", r->what);
    struct stat dir_before;
    const struct stat *db = fstat(r->dirfd, &dir_before) == 0 ? &dir_before : NULL;
    if (renameat2(tdir, r->tmpname, r->dirfd, r->name, RENAME_EXCHANGE) == 0) {
        struct stat out;
        if (fstatat(tdir, r->tmpname, &out, AT_SYMLINK_NOFOLLOW) != 0 || !ddp_same_file(&out, &r->st))
            return exchange_back(r, tdir, "was replaced by another file while it was being worked on", db);
        if (!lease_held(r)) return exchange_back(r, tdir, "was opened by another process while it was being replaced", db);
        /* What came out is the old file (this process holds its lock, so no
         * cleaner takes it meanwhile): it goes. */
        if (unlinkat(tdir, r->tmpname, 0) != 0 && errno != ENOENT)
            (void)ddp_fail_errno(errno, "removing the replaced %s from .ddp/Temp", r->what);
    } else if (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP) {
        /* No RENAME_EXCHANGE here: check the name, then rename over it. */
        struct stat cur;
        if (fstatat(r->dirfd, r->name, &cur, AT_SYMLINK_NOFOLLOW) != 0 || !ddp_same_file(&cur, &r->st))
            return ddp_fail(DDP_E_FILE_IN_USE, "%s was replaced while it was being worked on; left as it is", r->what);
        if (renameat(tdir, r->tmpname, r->dirfd, r->name) != 0)
            return ddp_fail_errno(errno, "replacing %s", r->what);
    } else {
        return ddp_fail_errno(errno, "replacing %s", r->what);
    }
    r->tmpname[0] = '\0';
    r->installed = 1;
    if (db) keep_dir_times(r, db);
    if (r->leased) {
        (void)fcntl(r->fd, F_SETLEASE, F_UNLCK);
        r->leased = 0;
    }
    if (sync_dir) {
        /* dirfd may be an O_PATH descriptor (ddp mount's): fsync needs a real one. */
        int dfd = openat(r->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int rc = dfd < 0 ? -1 : fsync(dfd);
        int err = errno;
        if (dfd >= 0) close(dfd);
        if (rc != 0) return ddp_fail_errno(err, "syncing the directory of %s", r->what);
    }
    return S_OK;
}

void ddp_replace_end(ddp_replace *r)
{
    if (r->leased && r->fd >= 0) (void)fcntl(r->fd, F_SETLEASE, F_UNLCK);
    r->leased = 0;
    if (r->tmpname[0] && !r->installed && r->tdir >= 0 && r->tmpfd >= 0) {
        /* Only the name this process gave its own temporary: after a failed
         * exchange it may be another file's name, which stays. */
        struct stat mine, there;
        if (fstat(r->tmpfd, &mine) == 0 && fstatat(r->tdir, r->tmpname, &there, AT_SYMLINK_NOFOLLOW) == 0 &&
            ddp_same_file(&mine, &there))
            (void)unlinkat(r->tdir, r->tmpname, 0);
    }
    if (r->tmpfd >= 0) close(r->tmpfd);
    if (r->fd >= 0) close(r->fd);
    if (r->dirfd >= 0) close(r->dirfd);
    free(r->name);
    r->tmpfd = r->fd = r->dirfd = -1;
    r->name = NULL;
}
