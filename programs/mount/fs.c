/*
 * fusefs.c: the FUSE file system behind `ddp mount` (libfuse3, high-level
 * API, multithreaded): the volume's tree passed through, with every
 * optimized file reading as the file it was.
 *
 * Passthrough. Every path is resolved relative to an O_PATH descriptor of
 * the volume root: the parent directory is opened with openat2(2)
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS (or, on kernels without it, one
 * O_NOFOLLOW component at a time), and the operation is the *at() call on
 * the last name, never following a symlink there either. FUSE paths never
 * contain symlinks (the kernel resolves them through readlink), so nothing a
 * user does inside the volume can make the daemon act outside it. Library
 * calls that take a path get "/proc/self/fd/DIRFD/NAME". `.ddp` is hidden
 * from readdir and every lookup of it fails with ENOENT (creating it, EPERM);
 * ddp's own temporary files (`.NAME.ddp-tmp.XXXXXX`) are hidden from
 * readdir. Permission checks are the kernel's (default_permissions is always
 * on); when the daemon runs as root, what it creates is given to the caller.
 *
 * Stubs. A regular file of exactly 232 bytes whose MAC verifies with the
 * volume's key is a stub: getattr reports its logical size (a small cache
 * keyed by device, inode, mtime and ctime remembers each verdict, so a stub
 * is read once). A file that begins like a stub but fails authentication
 * (forged, or copied from another volume) is logged and served as the small
 * plain file it is: never as anyone's data.
 *
 * Reading a stub. Open authenticates the stub, reads its stream map and
 * checks it against the stub (hash, size, whole-file hash). Reads are served
 * from the cache of decoded, verified chunks that every open file shares
 * (programs/chunkcache.c: keyed by the chunk's SHA-256, bounded in bytes,
 * loaded by the library's reader of optimized files, lib/chunkread.c, with
 * every check and the hotspot-copy fallback; the log names the file and
 * both records when a copy served). A chunk that fails with no intact copy
 * fails the read with EIO and a log line naming the file, the chunk and the
 * container; never wrong bytes, never a short read. A reader that reads
 * sequentially gets read-ahead: the chunks of the next few MiB are queued
 * for the cache's read-ahead threads. A reply hands the kernel the cache's
 * own pages (vmsplice into a pipe of the thread, which libfuse splices into
 * the reply), the chunks pinned until it has left (reply_pins).
 *
 * Writing. Opening a stub for writing (or truncating it to a size > 0, or
 * hard-linking it) first rehydrates it in place with ddp_unoptimize_file
 * (atomic; owner, mode, times and xattrs kept), then the plain file is
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
 * includes every write) is copied beside it with its owner, mode, times and
 * xattrs, synced and renamed over the stub, and the open handles move to it.
 * A file that was unlinked or renamed over through the mount is left alone.
 */
#ifdef DDP_HAVE_FUSE

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <limits.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "chunkcache.h"
#include "store/chunkread.h"
#include "store/chunkstore.h"
#include "base/fileattr.h"
#include "mountfs.h"
#include "store/streammap.h"
#include "store/stub.h"
#include "base/util.h"
#include "volume/volume.h"

#define KERNEL_RA_MIN_KB 128u           /* the kernel's own read-ahead of a FUSE mount */

/* ------------------------------------------------------------------ state */

mnt_state mnt;

/* -------------------------------------------------------------------- log */

/* A log line (errors: LOG_ERR; what the mount does: LOG_INFO). */
void mnt_log_at(int prio, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (mnt.use_syslog) {
        syslog(prio, "%s", msg);
        return;
    }
    if (!mnt.logf) return;
    char stamp[32];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
    pthread_mutex_lock(&mnt.logmu);
    fprintf(mnt.logf, "%s ddp mount: %s\n", stamp, msg);
    fflush(mnt.logf);
    pthread_mutex_unlock(&mnt.logmu);
}

/* The errno for a library failure. */
int mnt_hr_errno(HRESULT hr)
{
    if (hr == HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND) || hr == HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND) ||
        hr == DDP_E_NOT_FOUND || hr == DDP_E_PATH_NOT_FOUND)
        return ENOENT;
    if (hr == HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED)) return EACCES;
    if (hr == HRESULT_FROM_WIN32(ERROR_DISK_FULL) || hr == DDP_E_DISK_FULL) return ENOSPC;
    if (hr == HRESULT_FROM_WIN32(ERROR_DISK_QUOTA_EXCEEDED)) return EDQUOT;
    if (hr == HRESULT_FROM_WIN32(ERROR_WRITE_PROTECT)) return EROFS;
    if (hr == HRESULT_FROM_WIN32(ERROR_TOO_MANY_OPEN_FILES)) return EMFILE;
    if (hr == E_OUTOFMEMORY) return ENOMEM;
    if (hr == DDP_E_FILE_IN_USE) return EBUSY;
    return EIO;
}

/* ------------------------------------------------------- path resolution */

static int is_hidden(const char *path)
{
    return strncmp(path, "/.ddp", 5) == 0 && (path[5] == '\0' || path[5] == '/');
}

/* Open directory rel ("" = the root) beneath the root, following no symlink. */
static int open_dir_beneath(const char *rel)
{
    if (!*rel) return mnt.rootfd;
    if (atomic_load(&mnt.have_openat2)) {
        struct open_how how;
        memset(&how, 0, sizeof how);
        how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
        how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
        for (int tries = 0; tries < 8; tries++) {
            long fd = syscall(SYS_openat2, mnt.rootfd, rel, &how, sizeof how);
            if (fd >= 0) return (int)fd;
            if (errno == EAGAIN || errno == EINTR) continue;   /* a concurrent rename: try again */
            if (errno != ENOSYS && errno != EPERM) return -errno;
            break;
        }
        if (errno == ENOSYS || errno == EPERM) atomic_store(&mnt.have_openat2, 0);   /* EPERM: seccomp */
        else return -errno;
    }
    char buf[PATH_MAX];
    size_t n = strlen(rel);
    if (n >= sizeof buf) return -ENAMETOOLONG;
    memcpy(buf, rel, n + 1);
    int cur = mnt.rootfd;
    char *save = NULL;
    for (char *comp = strtok_r(buf, "/", &save); comp; comp = strtok_r(NULL, "/", &save)) {
        if (!strcmp(comp, "..")) {
            if (cur != mnt.rootfd) close(cur);
            return -EACCES;
        }
        int next = openat(cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int e = errno;
        if (cur != mnt.rootfd) close(cur);
        if (next < 0) return -e;
        cur = next;
    }
    return cur;
}

/* Split a FUSE path into its parent directory (opened) and last name.
 * creating: the caller makes the name (hidden names: EPERM, not ENOENT). */
int mnt_resolve(const char *path, at_path *a, int creating)
{
    a->dirfd = -1;
    a->own = 0;
    a->name = NULL;
    if (!path || path[0] != '/') return -ENOENT;
    if (is_hidden(path)) return creating ? -EPERM : -ENOENT;
    const char *slash = strrchr(path, '/');
    if (slash == path && path[1] == '\0') {
        a->dirfd = mnt.rootfd;
        a->name = ".";
        return 0;
    }
    size_t plen = (size_t)(slash - path);   /* "/a/b" -> "a" (without the leading slash) */
    char rel[PATH_MAX];
    if (plen >= sizeof rel) return -ENAMETOOLONG;
    if (plen > 0) memcpy(rel, path + 1, plen - 1);
    rel[plen > 0 ? plen - 1 : 0] = '\0';
    int fd = open_dir_beneath(rel);
    if (fd < 0) return fd;
    a->dirfd = fd;
    a->own = fd != mnt.rootfd;
    a->name = slash + 1;
    return 0;
}

void mnt_at_done(at_path *a)
{
    if (a->own && a->dirfd >= 0) close(a->dirfd);
    a->own = 0;
    a->dirfd = -1;
}

/* A path the library (or path-only syscalls) can use for a: through the
 * parent's descriptor when /proc is there, else the root's path + path. */
int mnt_lib_path(char *buf, size_t n, const at_path *a, const char *path)
{
    int w = mnt.have_proc ? snprintf(buf, n, "/proc/self/fd/%d/%s", a->dirfd, a->name)
                          : snprintf(buf, n, "%s%s", mnt.root, path);
    return w < 0 || (size_t)w >= n ? -ENAMETOOLONG : 0;
}

/* ------------------------------------------------------------ operations */

static handle *H(const struct fuse_file_info *fi) { return (handle *)(uintptr_t)fi->fh; }

/* The descriptor behind an open file or directory (both begin with kind). */
static int fh_fd(const struct fuse_file_info *fi)
{
    const handle *h = H(fi);
    if (h->kind == H_DIR) return dirfd(((const dirh *)(uintptr_t)fi->fh)->dp);
    return h->fd;
}

/* Give what the caller created to the caller (when the daemon is root). */
static int set_owner(const at_path *a, int fd, mode_t mode, int is_dir)
{
    if (!mnt.is_root) return 0;
    struct fuse_context *ctx = fuse_get_context();
    gid_t gid = ctx->gid;
    struct stat dst;
    if (fstat(a->dirfd, &dst) == 0 && (dst.st_mode & S_ISGID)) gid = (gid_t)-1;   /* inherited */
    int r = fd >= 0 ? fchown(fd, ctx->uid, gid) : fchownat(a->dirfd, a->name, ctx->uid, gid, AT_SYMLINK_NOFOLLOW);
    if (r != 0) {
        int e = errno;
        unlinkat(a->dirfd, a->name, is_dir ? AT_REMOVEDIR : 0);
        return -e;
    }
    if (!is_dir && (mode & (S_ISUID | S_ISGID))) {   /* chown cleared them */
        if (fd >= 0) r = fchmod(fd, mode & 07777);
        else r = fchmodat(a->dirfd, a->name, mode & 07777, AT_SYMLINK_NOFOLLOW);
        (void)r;
    }
    return 0;
}

static int op_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
    if (fi && fi->fh) {
        handle *h = H(fi);
        if (fstat(fh_fd(fi), st) != 0) return -errno;
        if (h->kind == H_STUB) st->st_size = (off_t)h->size;
        return 0;
    }
    at_path a;
    int r = mnt_resolve(path, &a, 0);
    if (r) return r;
    if (fstatat(a.dirfd, a.name, st, AT_SYMLINK_NOFOLLOW) != 0) {
        r = -errno;
    } else if (mnt_could_be_stub(st)) {
        uint64_t logical;
        int k = mnt_classify(-1, &a, path, st, &logical);
        if (k == K_STUB && atomic_load(&mnt.nwn) > 0 && mnt_recover_path(path, 0) > 0) {
            if (fstatat(a.dirfd, a.name, st, AT_SYMLINK_NOFOLLOW) != 0) r = -errno;
        } else if (k == K_STUB) {
            st->st_size = (off_t)logical;
        } else if (k < 0) {
            r = k;
        }
    }
    mnt_at_done(&a);
    return r;
}

static int op_readlink(const char *path, char *buf, size_t size)
{
    if (size == 0) return -EINVAL;
    at_path a;
    int r = mnt_resolve(path, &a, 0);
    if (r) return r;
    ssize_t n = readlinkat(a.dirfd, a.name, buf, size - 1);
    if (n < 0) r = -errno;
    else buf[n] = '\0';
    mnt_at_done(&a);
    return r;
}

static int op_mknod(const char *path, mode_t mode, dev_t rdev)
{
    at_path a;
    int r = mnt_resolve(path, &a, 1);
    if (r) return r;
    if (S_ISREG(mode)) {
        int fd = openat(a.dirfd, a.name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, mode);
        if (fd < 0) r = -errno;
        else close(fd);
    } else if (S_ISFIFO(mode)) {
        if (mkfifoat(a.dirfd, a.name, mode) != 0) r = -errno;
    } else if (mknodat(a.dirfd, a.name, mode, rdev) != 0) {
        r = -errno;
    }
    if (!r) r = set_owner(&a, -1, mode, 0);
    mnt_at_done(&a);
    return r;
}

static int op_mkdir(const char *path, mode_t mode)
{
    at_path a;
    int r = mnt_resolve(path, &a, 1);
    if (r) return r;
    if (mkdirat(a.dirfd, a.name, mode) != 0) r = -errno;
    else r = set_owner(&a, -1, mode, 1);
    mnt_at_done(&a);
    return r;
}

static int op_unlink(const char *path)
{
    at_path a;
    int r = mnt_resolve(path, &a, 0);
    if (r) return r;
    struct stat st;
    int known = fstatat(a.dirfd, a.name, &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (unlinkat(a.dirfd, a.name, 0) != 0) r = -errno;
    else if (known && S_ISREG(st.st_mode) && st.st_nlink <= 1) mnt_wn_mark_gone(st.st_dev, st.st_ino);
    mnt_at_done(&a);
    return r;
}

static int op_rmdir(const char *path)
{
    at_path a;
    int r = mnt_resolve(path, &a, 0);
    if (r) return r;
    if (unlinkat(a.dirfd, a.name, AT_REMOVEDIR) != 0) r = -errno;
    mnt_at_done(&a);
    return r;
}

static int op_symlink(const char *target, const char *linkpath)
{
    at_path a;
    int r = mnt_resolve(linkpath, &a, 1);
    if (r) return r;
    if (symlinkat(target, a.dirfd, a.name) != 0) r = -errno;
    else r = set_owner(&a, -1, 0, 0);
    mnt_at_done(&a);
    return r;
}

static int op_rename(const char *from, const char *to, unsigned int flags)
{
    at_path a, b;
    int r = mnt_resolve(from, &a, 0);
    if (r) return r;
    if ((r = mnt_resolve(to, &b, 1)) != 0) {
        mnt_at_done(&a);
        return r;
    }
    struct stat src, dst;
    int have_src = fstatat(a.dirfd, a.name, &src, AT_SYMLINK_NOFOLLOW) == 0;
    int replaces = !(flags & RENAME_EXCHANGE) && fstatat(b.dirfd, b.name, &dst, AT_SYMLINK_NOFOLLOW) == 0 &&
                   S_ISREG(dst.st_mode) && dst.st_nlink <= 1 &&
                   !(have_src && src.st_ino == dst.st_ino && src.st_dev == dst.st_dev);
    if (renameat2(a.dirfd, a.name, b.dirfd, b.name, flags) != 0) {
        r = -errno;
    } else {
        if (replaces) mnt_wn_mark_gone(dst.st_dev, dst.st_ino);
        mnt_wn_rename(from, to, (flags & RENAME_EXCHANGE) != 0);
    }
    mnt_at_done(&a);
    mnt_at_done(&b);
    return r;
}

static int op_link(const char *from, const char *to)
{
    at_path a, b;
    int r = mnt_resolve(from, &a, 0);
    if (r) return r;
    if ((r = mnt_resolve(to, &b, 1)) != 0) {
        mnt_at_done(&a);
        return r;
    }
    /* Two names for a stub would split when one of them is written:
     * rehydrate first, so the link shares the real content. */
    r = mnt_rehydrate_if_stub(&a, from);
    if (!r && linkat(a.dirfd, a.name, b.dirfd, b.name, 0) != 0) r = -errno;
    mnt_at_done(&a);
    mnt_at_done(&b);
    return r;
}

static int op_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    if (fi && fi->fh) return fchmod(fh_fd(fi), mode) != 0 ? -errno : 0;
    at_path a;
    int r = mnt_resolve(path, &a, 0);
    if (r) return r;
    if (fchmodat(a.dirfd, a.name, mode, AT_SYMLINK_NOFOLLOW) != 0) r = -errno;
    mnt_at_done(&a);
    return r;
}

static int op_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
    if (fi && fi->fh) return fchown(fh_fd(fi), uid, gid) != 0 ? -errno : 0;
    at_path a;
    int r = mnt_resolve(path, &a, 0);
    if (r) return r;
    if (fchownat(a.dirfd, a.name, uid, gid, AT_SYMLINK_NOFOLLOW) != 0) r = -errno;
    mnt_at_done(&a);
    return r;
}

static int op_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
    if (fi && fi->fh && H(fi)->kind == H_PLAIN) {
        handle *h = H(fi);
        if (h->wn) pthread_rwlock_rdlock(&h->wn->io);
        int r = ftruncate(h->fd, size) != 0 ? -errno : 0;
        if (h->wn) pthread_rwlock_unlock(&h->wn->io);
        mnt_check_writer(h);
        return r;
    }
    if (!path) return -EBADF;
    at_path a;
    int r = mnt_resolve(path, &a, 0);
    if (r) return r;
    for (int tries = 0;; tries++) {
        int fd = openat(a.dirfd, a.name, O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0) {
            r = -errno;
            break;
        }
        struct stat st;
        uint64_t logical;
        int k = fstat(fd, &st) == 0 ? mnt_classify(fd, &a, path, &st, &logical) : -errno;
        if (k == K_STUB && size == 0 && atomic_load(&mnt.nwn) == 0) k = K_PLAIN;   /* cut the stub itself */
        if (k == K_STUB && tries < 5) {
            close(fd);
            r = mnt_rehydrate_if_stub(&a, path);
            if (r) break;
            continue;
        }
        if (k < 0) r = k;
        else if (ftruncate(fd, size) != 0) r = -errno;
        close(fd);
        break;
    }
    mnt_at_done(&a);
    return r;
}

/* Open path's file with flags (O_CREAT already dealt with). */
static int open_existing(const char *path, struct fuse_file_info *fi)
{
    at_path a;
    int r = mnt_resolve(path, &a, 0);
    if (r) return r;
    int flags = fi->flags;
    int writing = (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
    int oflags = (flags & ~(O_CREAT | O_EXCL | O_NOCTTY)) | O_NOFOLLOW | O_CLOEXEC;
    handle *h = NULL;
    for (int tries = 0;; tries++) {
        int fd = openat(a.dirfd, a.name, oflags);
        if (fd < 0) {
            r = -errno;
            break;
        }
        struct stat st;
        uint64_t logical;
        int k = fstat(fd, &st) == 0 ? mnt_classify(fd, &a, path, &st, &logical) : -errno;
        if (k == K_STUB && atomic_load(&mnt.nwn) > 0 && tries < 5 && mnt_recover_path(path, 0) > 0) {
            close(fd);        /* a job had replaced a file open for writing: look again */
            continue;
        }
        if (k == K_STUB && !writing) {
            r = mnt_handle_stub(fd, flags, path, &h);
            if (r) close(fd);
            break;
        }
        if (k == K_STUB) {
            close(fd);
            if (tries >= 5) {
                mlog("%s: the file kept changing while it was being rehydrated", path);
                r = -EBUSY;
                break;
            }
            r = mnt_rehydrate_if_stub(&a, path);
            if (r) break;
            continue;
        }
        if (k < 0) {
            close(fd);
            r = k;
            break;
        }
        if (writing && mnt_lock_writer(fd, &a)) {
            close(fd);        /* replaced by its stub while we opened it */
            if (tries >= 5) {
                mlog("%s: the file kept changing while it was being opened for writing", path);
                r = -EBUSY;
                break;
            }
            continue;
        }
        h = mnt_handle_new(H_PLAIN, fd, flags);
        if (writing) mnt_wn_register(h, &st, path);
        r = 0;
        break;
    }
    mnt_at_done(&a);
    if (!r) fi->fh = (uintptr_t)h;
    return r;
}

static int op_open(const char *path, struct fuse_file_info *fi) { return open_existing(path, fi); }

static int op_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    at_path a;
    int r = mnt_resolve(path, &a, 1);
    if (r) return r;
    int fd = openat(a.dirfd, a.name, fi->flags | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0) {
        r = -errno;
        mnt_at_done(&a);
        if (r == -EEXIST && !(fi->flags & O_EXCL)) return open_existing(path, fi);
        return r;
    }
    r = set_owner(&a, fd, mode, 0);
    if (!r && (fi->flags & O_ACCMODE) != O_RDONLY) (void)mnt_lock_writer(fd, &a); /* a new file: nothing replaced it */
    struct stat st;
    if (!r && fstat(fd, &st) != 0) r = -errno;
    mnt_at_done(&a);
    if (r) {
        close(fd);
        return r;
    }
    handle *h = mnt_handle_new(H_PLAIN, fd, fi->flags);
    if ((fi->flags & O_ACCMODE) != O_RDONLY) mnt_wn_register(h, &st, path);
    fi->fh = (uintptr_t)h;
    return 0;
}

static int op_write(const char *path, const char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
    (void)path;
    handle *h = H(fi);
    if (h->kind != H_PLAIN) return -EBADF;
    wnode *wn = h->wn;
    if (wn) pthread_rwlock_rdlock(&wn->io);
    ssize_t n;
    do n = pwrite(h->fd, buf, size, off);
    while (n < 0 && errno == EINTR);
    int e = errno;
    int orphan = wn && n >= 0 && mnt_wn_orphaned_locked(wn);
    if (wn) pthread_rwlock_unlock(&wn->io);
    if (orphan) mnt_recover(wn, 0);
    return n < 0 ? -e : (int)n;
}

static int op_statfs(const char *path, struct statvfs *st)
{
    (void)path;
    return fstatvfs(mnt.rootfd, st) != 0 ? -errno : 0;
}

static int op_flush(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    handle *h = H(fi);
    if (h->kind != H_PLAIN) return 0;
    mnt_check_writer(h);
    /* Closing a duplicate reports what close would (NFS, quotas) and drops
     * POSIX locks as close(2) on the mount would. */
    if (h->wn) pthread_rwlock_rdlock(&h->wn->io);
    int d = dup(h->fd);
    int r = d < 0 ? -errno : (close(d) != 0 ? -errno : 0);
    if (h->wn) pthread_rwlock_unlock(&h->wn->io);
    return r;
}

static int op_release(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    handle *h = H(fi);
    if (h->wn) {
        mnt_check_writer(h);
        mnt_wn_unregister(h);
    }
    mnt_handle_free(h);
    return 0;
}

static int op_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
    (void)path;
    handle *h = H(fi);
    if (h->kind != H_PLAIN) return 0;
    mnt_check_writer(h);
    if (h->wn) pthread_rwlock_rdlock(&h->wn->io);
    int r = (datasync ? fdatasync(h->fd) : fsync(h->fd)) != 0 ? -errno : 0;
    if (h->wn) pthread_rwlock_unlock(&h->wn->io);
    return r;
}

static int xattr_path(const char *path, char *buf, size_t n, at_path *a)
{
    int r = mnt_resolve(path, a, 0);
    if (r) return r;
    r = mnt_lib_path(buf, n, a, path);
    if (r) mnt_at_done(a);
    return r;
}

static int op_setxattr(const char *path, const char *name, const char *value, size_t size, int flags)
{
    at_path a;
    char p[PROC_PATH_MAX];
    int r = xattr_path(path, p, sizeof p, &a);
    if (r) return r;
    if (lsetxattr(p, name, value, size, flags) != 0) r = -errno;
    mnt_at_done(&a);
    return r;
}

static int op_getxattr(const char *path, const char *name, char *value, size_t size)
{
    at_path a;
    char p[PROC_PATH_MAX];
    int r = xattr_path(path, p, sizeof p, &a);
    if (r) return r;
    ssize_t n = lgetxattr(p, name, value, size);
    r = n < 0 ? -errno : (int)n;
    mnt_at_done(&a);
    return r;
}

static int op_listxattr(const char *path, char *list, size_t size)
{
    at_path a;
    char p[PROC_PATH_MAX];
    int r = xattr_path(path, p, sizeof p, &a);
    if (r) return r;
    ssize_t n = llistxattr(p, list, size);
    r = n < 0 ? -errno : (int)n;
    mnt_at_done(&a);
    return r;
}

static int op_removexattr(const char *path, const char *name)
{
    at_path a;
    char p[PROC_PATH_MAX];
    int r = xattr_path(path, p, sizeof p, &a);
    if (r) return r;
    if (lremovexattr(p, name) != 0) r = -errno;
    mnt_at_done(&a);
    return r;
}

static int op_opendir(const char *path, struct fuse_file_info *fi)
{
    at_path a;
    int r = mnt_resolve(path, &a, 0);
    if (r) return r;
    int fd = openat(a.dirfd, a.name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) r = -errno;
    mnt_at_done(&a);
    if (r) return r;
    DIR *dp = fdopendir(fd);
    if (!dp) {
        r = -errno;
        close(fd);
        return r;
    }
    dirh *d = ddp_xcalloc(1, sizeof *d);
    d->kind = H_DIR;
    d->dp = dp;
    d->is_root = !strcmp(path, "/");
    fi->fh = (uintptr_t)d;
    return 0;
}

static int op_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t off, struct fuse_file_info *fi,
                      enum fuse_readdir_flags flags)
{
    (void)path;
    (void)flags;
    dirh *d = (dirh *)(uintptr_t)fi->fh;
    if (off != d->off) {
        seekdir(d->dp, off);
        d->entry = NULL;
        d->off = off;
    }
    for (;;) {
        if (!d->entry) {
            errno = 0;
            d->entry = readdir(d->dp);
            if (!d->entry) {
                if (errno) return -errno;
                break;
            }
        }
        const char *name = d->entry->d_name;
        off_t next = d->entry->d_off;
        int hide = (d->is_root && !strcmp(name, ".ddp")) || ddp_is_temp_name(name);
        if (!hide) {
            struct stat st;
            memset(&st, 0, sizeof st);
            st.st_ino = d->entry->d_ino;
            st.st_mode = (mode_t)DTTOIF(d->entry->d_type);
            if (filler(buf, name, &st, next, 0)) break;
        }
        d->entry = NULL;
        d->off = next;
    }
    return 0;
}

static int op_releasedir(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    dirh *d = (dirh *)(uintptr_t)fi->fh;
    closedir(d->dp);
    free(d);
    return 0;
}

static int op_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi)
{
    (void)path;
    dirh *d = (dirh *)(uintptr_t)fi->fh;
    int fd = dirfd(d->dp);
    return (datasync ? fdatasync(fd) : fsync(fd)) != 0 ? -errno : 0;
}

static int op_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
    if (fi && fi->fh) return futimens(fh_fd(fi), tv) != 0 ? -errno : 0;
    at_path a;
    int r = mnt_resolve(path, &a, 0);
    if (r) return r;
    if (utimensat(a.dirfd, a.name, tv, AT_SYMLINK_NOFOLLOW) != 0) r = -errno;
    mnt_at_done(&a);
    return r;
}

static int op_fallocate(const char *path, int mode, off_t off, off_t len, struct fuse_file_info *fi)
{
    (void)path;
    handle *h = H(fi);
    if (h->kind != H_PLAIN) return -EBADF;
    if (h->wn) pthread_rwlock_rdlock(&h->wn->io);
    int r = fallocate(h->fd, mode, off, len) != 0 ? -errno : 0;
    if (h->wn) pthread_rwlock_unlock(&h->wn->io);
    mnt_check_writer(h);
    return r;
}

void mnt_tree_operations(struct fuse_operations *ops)
{
    ops->getattr = op_getattr;
    ops->readlink = op_readlink;
    ops->mknod = op_mknod;
    ops->mkdir = op_mkdir;
    ops->unlink = op_unlink;
    ops->rmdir = op_rmdir;
    ops->symlink = op_symlink;
    ops->rename = op_rename;
    ops->link = op_link;
    ops->chmod = op_chmod;
    ops->chown = op_chown;
    ops->truncate = op_truncate;
    ops->open = op_open;
    ops->write = op_write;
    ops->statfs = op_statfs;
    ops->flush = op_flush;
    ops->release = op_release;
    ops->fsync = op_fsync;
    ops->setxattr = op_setxattr;
    ops->getxattr = op_getxattr;
    ops->listxattr = op_listxattr;
    ops->removexattr = op_removexattr;
    ops->opendir = op_opendir;
    ops->readdir = op_readdir;
    ops->releasedir = op_releasedir;
    ops->fsyncdir = op_fsyncdir;
    ops->create = op_create;
    ops->utimens = op_utimens;
    ops->fallocate = op_fallocate;
}

/* The kernel reads a FUSE mount ahead by 128 KiB, which the protocol cannot
 * raise (FUSE_INIT only lowers it): a sequential reader then waits for each
 * 1 MiB request in turn. Only the mount's backing device's sysfs knob raises
 * it (/sys/class/bdi/MAJ:MIN/read_ahead_kb, root only). Set it to half of
 * --readahead-mb: the kernel asks that far ahead, the read-ahead threads
 * decode twice as far. Run on its own thread once the mount is up (the stat
 * of the mount point is a request to this daemon). */
static void *kernel_ra_thread(void *arg)
{
    (void)arg;
    uint64_t kb = mnt.opt.readahead_bytes / 2 / 1024;
    struct stat st;
    if (kb <= KERNEL_RA_MIN_KB || !mnt.opt.mountpoint || stat(mnt.opt.mountpoint, &st) != 0) return NULL;
    char knob[128];
    snprintf(knob, sizeof knob, "/sys/class/bdi/%u:%u/read_ahead_kb", major(st.st_dev), minor(st.st_dev));
    int fd = open(knob, O_WRONLY | O_CLOEXEC);
    char val[32];
    int n = snprintf(val, sizeof val, "%llu\n", (unsigned long long)kb);
    if (fd >= 0 && write(fd, val, (size_t)n) == n) {
        atomic_store(&mnt.kernel_ra_bytes, kb * 1024);
        minfo("kernel read-ahead of %s: %llu KiB (%s)", mnt.opt.mountpoint, (unsigned long long)kb, knob);
    } else {
        minfo("kernel read-ahead of %s stays at its default (%s: %s; only root may set it, see docs/MOUNT.md)",
              mnt.opt.mountpoint, knob, strerror(errno));
    }
    if (fd >= 0) close(fd);
    return NULL;
}

static void *op_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    conn->max_read = DDPFS_MAX_READ;
    mnt.splice = (conn->capable & FUSE_CAP_SPLICE_WRITE) && mnt_pipe_fits_reply();
    if (mnt.splice) conn->want |= FUSE_CAP_SPLICE_WRITE;
    cfg->use_ino = 1;
    cfg->readdir_ino = 1;
    cfg->nullpath_ok = 1;
    cfg->hard_remove = 1;     /* no .fuse_hidden files in the volume */
    umask(0);                 /* the kernel applied the caller's umask already */
    if (!mnt.logf && !mnt.opt.foreground) {
        openlog("ddp-mount", LOG_PID, LOG_DAEMON);
        mnt.use_syslog = 1;
    }
    HRESULT hr = ddp_volume_chunkreader(mnt.v, &mnt.rd);
    if (FAILED(hr)) {
        mlog("%s: opening the chunk store: %s (0x%08X); optimized files cannot be read", mnt.root,
             ddp_error_detail(), (unsigned)hr);
        mnt.rd = NULL;
    }
    mnt_reply_start();
    unsigned threads = cc_start(mnt.rd, mnt.opt.cache_bytes, mnt.opt.workers);
    minfo("serving %s (chunk cache %llu MiB, read-ahead %llu MiB, %u read-ahead threads)", mnt.root,
          (unsigned long long)(mnt.opt.cache_bytes >> 20), (unsigned long long)(mnt.opt.readahead_bytes >> 20),
          threads);
    mnt_watch_start();
    mnt.kernel_ra_started = pthread_create(&mnt.kernel_ra, NULL, kernel_ra_thread, NULL) == 0;
    return NULL;
}

static void op_destroy(void *data)
{
    (void)data;
    mnt_watch_stop();
    if (mnt.kernel_ra_started) pthread_join(mnt.kernel_ra, NULL);
    mnt_reply_stop();
    cc_stats st;
    cc_stop(&st);
    minfo("unmounted %s: %llu chunks decoded (%llu by read-ahead, %llu by readers that waited for them), %llu cache "
          "hits, %llu failed checks, %llu served by hotspot copies; cache: %llu MiB used, %llu chunks decoded in "
          "place, %llu held outside it",
          mnt.root, (unsigned long long)st.loads, (unsigned long long)(st.loads - st.reader_loads),
          (unsigned long long)st.reader_loads, (unsigned long long)st.hits, (unsigned long long)st.failures,
          (unsigned long long)st.copies, (unsigned long long)(st.pages * 4096 >> 20), (unsigned long long)st.in_place,
          (unsigned long long)st.overflow);
    ddp_chunkreader_close(mnt.rd);
    mnt.rd = NULL;
    if (mnt.use_syslog) closelog();
}

int ddpfs_main(ddp_volume *v, const ddpfs_options *opt, int fuse_argc, char **fuse_argv)
{
    mnt.v = v;
    mnt.opt = *opt;
    if (!mnt.opt.workers) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        mnt.opt.workers = n < 2 ? 2 : n > 8 ? 8 : (unsigned)n;
    }
    mnt.root = ddp_volume_root(v);
    mnt.rootfd = open(mnt.root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (mnt.rootfd < 0) {
        fprintf(stderr, "ddp mount: %s: %s\n", mnt.root, strerror(errno));
        return 1;
    }
    mnt.is_root = geteuid() == 0;
    mnt.have_proc = access("/proc/self/fd", X_OK) == 0;
    atomic_store(&mnt.have_openat2, 1);
    pthread_mutex_init(&mnt.logmu, NULL);
    pthread_mutex_init(&mnt.szmu, NULL);
    pthread_mutex_init(&mnt.wmu, NULL);
    for (int i = 0; i < STRIPES; i++) pthread_mutex_init(&mnt.stripes[i], NULL);
    mnt.sz = ddp_xcalloc(SZ_SLOTS, sizeof *mnt.sz);
    if (opt->log_path) {
        mnt.logf = fopen(opt->log_path, "ae");
        if (!mnt.logf) {
            fprintf(stderr, "ddp mount: log file %s: %s\n", opt->log_path, strerror(errno));
            close(mnt.rootfd);
            free(mnt.sz);
            return 1;
        }
    } else if (opt->foreground) {
        mnt.logf = stderr;
    }

    struct fuse_operations ops;
    memset(&ops, 0, sizeof ops);
    mnt_tree_operations(&ops);
    ops.read_buf = mnt_read_buf;
    ops.init = op_init;
    ops.destroy = op_destroy;

    int rc = fuse_main(fuse_argc, fuse_argv, &ops, NULL);

    if (mnt.logf && mnt.logf != stderr) fclose(mnt.logf);
    mnt.logf = NULL;
    for (int i = 0; i < STRIPES; i++) pthread_mutex_destroy(&mnt.stripes[i]);
    pthread_mutex_destroy(&mnt.wmu);
    pthread_mutex_destroy(&mnt.szmu);
    pthread_mutex_destroy(&mnt.logmu);
    free(mnt.sz);
    close(mnt.rootfd);
    return rc == 0 ? 0 : 1;
}

#else
/* Built without libfuse3: cmd_mount.c says so; nothing here. */
typedef int ddp_fusefs_not_built;
#endif /* DDP_HAVE_FUSE */
