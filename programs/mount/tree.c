/* SPDX-License-Identifier: MIT */
/*
 * tree.c: the FUSE operations on the volume's tree (programs/mount/,
 * mountfs.h says what is where), passed through: each resolves its path
 * beneath the volume root (mnt_resolve, fs.c) and is the *at() call on the
 * last name, never following a symlink there. What the caller creates is
 * given to the caller when the daemon runs as root. A stub opened, truncated
 * or linked for writing is rehydrated first and a file open for writing is
 * a writer (rehydrate.c); stubs are recognized and read by stubread.c, which
 * also answers read_buf.
 */
#ifdef DDP_HAVE_FUSE

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "base/fileattr.h"
#include "base/util.h"
#include "mountfs.h"

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
        if (k == K_PLAIN) {
            int ra = mnt_refuse_appended(fd, &a, path, &st);
            if (ra < 0) k = ra;
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
        int hide = d->is_root && !strcmp(name, ".ddp"); /* ddp's temporaries are in .ddp/Temp */
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

#else
/* Built without libfuse3: nothing here. */
typedef int ddp_mount_tree_not_built;
#endif /* DDP_HAVE_FUSE */
