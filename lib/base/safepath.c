/* SPDX-License-Identifier: MIT */
/*
 * safepath.c: reaching a file beneath a directory that is held open, never
 * outside it, and never by name twice (safepath.h; docs/SECURITY.md).
 *
 * ddp's jobs run as root over trees that untrusted users write, so every
 * path is resolved from a held directory fd with openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV): neither a
 * crafted path ("..", absolute) nor a symbolic link planted anywhere on the
 * way, nor a mount point, can lead out of the root. Where openat2 is missing
 * (ENOSYS, or refused by a seccomp filter), the same walk is done one
 * component at a time with openat(O_NOFOLLOW), checking the device of every
 * directory on the way. Candidates are opened O_NONBLOCK (a FIFO cannot
 * hang the caller) and must prove what they are by fstat before anything
 * reads them.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/safepath.h"
#include "base/util.h"

static HRESULT open_error(int dfd, const char *comp, int err, int last, const char *rel)
{
    struct stat st;
    if (fstatat(dfd, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
        return ddp_fail(HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED),
                        "backup store: /%s: symbolic link '%s' refused", rel, comp);
    if (err == ENOENT || err == ENOTDIR) {
        if (!last || err == ENOTDIR)
            return ddp_fail(HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND),
                            "backup store: /%s: directory '%s' not found", rel, comp);
        return ddp_fail(HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND), "backup store: /%s: no such file", rel);
    }
    return ddp_fail_errno(err, "backup store: opening /%s", rel);
}

HRESULT ddp_open_beneath(int rootfd, const char *rel, int allow_dir, int *out, struct stat *st)
{
    *out = -1;
    int dfd = rootfd;
    const char *p = rel;
    char comp[NAME_MAX + 1];
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0 || len > NAME_MAX || (len == 1 && p[0] == '.') ||
            (len == 2 && p[0] == '.' && p[1] == '.')) {
            if (dfd != rootfd) close(dfd);
            return ddp_fail(E_INVALIDARG, "backup store: bad path /%s", rel);
        }
        memcpy(comp, p, len);
        comp[len] = '\0';
        int last = slash == NULL;
        int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | (last ? O_NONBLOCK : O_DIRECTORY);
        int fd = openat(dfd, comp, flags);
        if (fd < 0) {
            int err = errno;
            HRESULT hr = open_error(dfd, comp, err, last, rel);
            if (dfd != rootfd) close(dfd);
            return hr;
        }
        if (dfd != rootfd) close(dfd);
        if (last) {
            struct stat sb;
            if (fstat(fd, &sb) != 0) {
                HRESULT hr = ddp_fail_errno(errno, "backup store: /%s", rel);
                close(fd);
                return hr;
            }
            if (S_ISDIR(sb.st_mode) && !allow_dir) {
                close(fd);
                return ddp_fail(ddp_hresult_from_errno(EISDIR), "backup store: /%s is a directory", rel);
            }
            if (!S_ISREG(sb.st_mode) && !S_ISDIR(sb.st_mode)) {
                close(fd);
                return ddp_fail(HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED),
                                "backup store: /%s is not a regular file", rel);
            }
            int fl = fcntl(fd, F_GETFL);
            if (fl >= 0) (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
            if (st) *st = sb;
            *out = fd;
            return S_OK;
        }
        dfd = fd;
        p = slash + 1;
    }
}

HRESULT ddp_path_check_absolute(const char *path)
{
    if (!path) return ddp_fail(E_INVALIDARG, "backup store: NULL path");
    size_t n = strnlen(path, PATH_MAX + 1);
    if (n == 0) return ddp_fail(E_INVALIDARG, "backup store: empty path");
    if (n > PATH_MAX) return ddp_fail(E_INVALIDARG, "backup store: path longer than %d bytes", PATH_MAX);
    if (path[0] != '/') return ddp_fail(E_INVALIDARG, "backup store: path '%s' does not start with '/'", path);
    const char *p = path + 1;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0)
            return ddp_fail(E_INVALIDARG, "backup store: path '%s' has an empty component", path);
        if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
            return ddp_fail(E_INVALIDARG, "backup store: path '%s' has a '.' or '..' component", path);
        if (len > NAME_MAX)
            return ddp_fail(E_INVALIDARG, "backup store: path '%s' has a component longer than %d bytes",
                            path, NAME_MAX);
        if (!slash) break;
        p = slash + 1;
    }
    return S_OK;
}

/* ---- openat2 beneath a root, with a component walk where it is missing ---- */

static atomic_int no_openat2; /* set once openat2 proved unavailable */

/* The component walk: every directory opened O_NOFOLLOW|O_DIRECTORY on the
 * device of dirfd, the last component with flags | O_NOFOLLOW. */
int ddp_openat_walk(int dirfd, const char *rel, int flags, mode_t mode)
{
    struct stat root;
    if (fstat(dirfd, &root) != 0) return -1;
    int dfd = dirfd;
    const char *p = rel;
    char comp[NAME_MAX + 1];
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0 || len > NAME_MAX || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.')) {
            if (dfd != dirfd) close(dfd);
            errno = EXDEV;
            return -1;
        }
        memcpy(comp, p, len);
        comp[len] = '\0';
        if (!slash) {
            int fd = openat(dfd, comp, flags | O_NOFOLLOW | O_CLOEXEC, mode);
            int err = errno;
            if (dfd != dirfd) close(dfd);
            errno = err;
            return fd;
        }
        int next = openat(dfd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int err = errno;
        if (dfd != dirfd) close(dfd);
        if (next < 0) {
            errno = err == ELOOP ? ELOOP : err;
            return -1;
        }
        struct stat st;
        if (fstat(next, &st) != 0 || st.st_dev != root.st_dev) {
            close(next);
            errno = EXDEV;
            return -1;
        }
        dfd = next;
        p = slash + 1;
    }
}

int ddp_openat_beneath(int dirfd, const char *rel, int flags, mode_t mode)
{
    if (!rel || !*rel || rel[0] == '/') {
        errno = EXDEV;
        return -1;
    }
    if (!atomic_load_explicit(&no_openat2, memory_order_relaxed)) {
        struct open_how how;
        memset(&how, 0, sizeof how);
        how.flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC);
        how.mode = (flags & (O_CREAT | O_TMPFILE)) ? (uint64_t)mode : 0;
        how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
        long fd;
        do fd = syscall(SYS_openat2, dirfd, rel, &how, sizeof how);
        while (fd < 0 && errno == EAGAIN); /* a rename raced the lookup: try again */
        if (fd >= 0 || (errno != ENOSYS && errno != EPERM)) return (int)fd;
        if (errno == ENOSYS) atomic_store_explicit(&no_openat2, 1, memory_order_relaxed);
    }
    return ddp_openat_walk(dirfd, rel, flags, mode);
}

HRESULT ddp_open_parent_beneath(int rootfd, const char *rel, int *dirfd, const char **base)
{
    *dirfd = -1;
    *base = NULL;
    if (!rel || !*rel || rel[0] == '/') return ddp_fail(E_INVALIDARG, "%s: not a path relative to its root", rel ? rel : "(null)");
    const char *slash = strrchr(rel, '/');
    const char *name = slash ? slash + 1 : rel;
    size_t nlen = strlen(name);
    if (nlen == 0 || nlen > NAME_MAX || !strcmp(name, ".") || !strcmp(name, ".."))
        return ddp_fail(E_INVALIDARG, "%s: bad file name", rel);
    if (!slash) {
        int fd = fcntl(rootfd, F_DUPFD_CLOEXEC, 0);
        if (fd < 0) return ddp_fail_errno(errno, "%s", rel);
        *dirfd = fd;
        *base = name;
        return S_OK;
    }
    size_t dlen = (size_t)(slash - rel);
    if (dlen >= PATH_MAX) return ddp_fail(E_INVALIDARG, "%s: path too long", rel);
    char dir[PATH_MAX];
    memcpy(dir, rel, dlen);
    dir[dlen] = '\0';
    int fd = ddp_openat_beneath(rootfd, dir, O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0) {
        int err = errno;
        struct stat lst;
        /* O_DIRECTORY | O_NOFOLLOW on a symbolic link says ENOTDIR; the
         * look by name only chooses the message, it opens nothing. */
        if (err == ENOTDIR && fstatat(rootfd, dir, &lst, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(lst.st_mode))
            err = ELOOP;
        if (err == ELOOP || err == EXDEV)
            return ddp_fail(HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED),
                            "%s: the path leaves its root or goes through a symbolic link or mount point", rel);
        return ddp_fail_errno(err, "%s: opening its directory", rel);
    }
    *dirfd = fd;
    *base = name;
    return S_OK;
}

HRESULT ddp_open_regular_at(int dirfd, const char *name, int oflags, const struct stat *expect, int *out,
                            struct stat *st)
{
    *out = -1;
    int fd = ddp_openat_beneath(dirfd, name, (oflags & ~O_CREAT) | O_NONBLOCK, 0);
    if (fd < 0) {
        int err = errno;
        if (err == ELOOP || err == EXDEV)
            return ddp_fail(HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED),
                            "%s: a symbolic link or mount point, not followed", name);
        return ddp_fail_errno(err, "%s", name);
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        HRESULT hr = ddp_fail_errno(errno, "%s", name);
        close(fd);
        return hr;
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return ddp_fail(HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED), "%s: not a regular file", name);
    }
    if (expect && !ddp_same_file(expect, &sb)) {
        close(fd);
        return ddp_fail(HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED),
                        "%s: replaced while it was being worked on (not the file that was checked)", name);
    }
    if (!(oflags & O_NONBLOCK)) {
        int fl = fcntl(fd, F_GETFL);
        if (fl >= 0) (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    }
    if (st) *st = sb;
    *out = fd;
    return S_OK;
}

int ddp_same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && (a->st_mode & S_IFMT) == (b->st_mode & S_IFMT);
}

/* ---- added for restore targets (lib/backup/extract.c) ---- */

int ddp_mkdirs_beneath(int rootfd, const char *rel, mode_t mode, int *created)
{
    if (!rel || rel[0] == '/') {
        errno = EXDEV;
        return -1;
    }
    if (!*rel) return fcntl(rootfd, F_DUPFD_CLOEXEC, 0);
    /* Usually the directory is there already: one lookup. */
    int fd = ddp_openat_beneath(rootfd, rel, O_RDONLY | O_DIRECTORY, 0);
    if (fd >= 0 || errno != ENOENT) return fd;
    int dfd = fcntl(rootfd, F_DUPFD_CLOEXEC, 0);
    if (dfd < 0) return -1;
    const char *p = rel;
    char comp[NAME_MAX + 1];
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0 || len > NAME_MAX || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.')) {
            close(dfd);
            errno = EXDEV;
            return -1;
        }
        memcpy(comp, p, len);
        comp[len] = '\0';
        int next = ddp_openat_beneath(dfd, comp, O_RDONLY | O_DIRECTORY, 0);
        if (next < 0 && errno == ENOENT) {
            if (mkdirat(dfd, comp, mode) == 0) {
                if (created) (*created)++;
            } else if (errno != EEXIST) {
                int err = errno;
                close(dfd);
                errno = err;
                return -1;
            }
            next = ddp_openat_beneath(dfd, comp, O_RDONLY | O_DIRECTORY, 0);
        }
        int err = errno;
        close(dfd);
        if (next < 0) {
            /* O_DIRECTORY on a symbolic link says ENOTDIR under O_NOFOLLOW
             * in the walk; openat2 says ELOOP. Either way: not followed. */
            errno = err;
            return -1;
        }
        if (!slash) return next;
        dfd = next;
        p = slash + 1;
    }
}

int ddp_rename_noreplace(int olddirfd, const char *oldname, int newdirfd, const char *newname)
{
    if (renameat2(olddirfd, oldname, newdirfd, newname, RENAME_NOREPLACE) == 0) return 0;
    if (errno != EINVAL && errno != ENOSYS) return -1;
    /* No RENAME_NOREPLACE here: linkat fails with EEXIST just the same. */
    if (linkat(olddirfd, oldname, newdirfd, newname, 0) != 0) return -1;
    if (unlinkat(olddirfd, oldname, 0) != 0) {
        int err = errno;
        (void)unlinkat(newdirfd, newname, 0);
        errno = err;
        return -1;
    }
    return 0;
}

/* ---- private temporaries ---- */

static void tmp_random_name(char name[DDP_TMPNAME_MAX])
{
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        r ^= (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)ts.tv_sec ^ (uint64_t)getpid() << 32;
    }
    snprintf(name, DDP_TMPNAME_MAX, "tmp.%ld.%016llx", (long)getpid(), (unsigned long long)r);
}

HRESULT ddp_tmpfile_at(int dirfd, mode_t mode, int *out, char name[DDP_TMPNAME_MAX])
{
    *out = -1;
    name[0] = '\0';
    int fd = openat(dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, mode);
    if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL || errno == ENOENT)) {
        for (int tries = 0; tries < 100 && fd < 0; tries++) {
            tmp_random_name(name);
            fd = openat(dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
            if (fd < 0 && errno != EEXIST) break;
        }
        if (fd < 0) name[0] = '\0';
    }
    if (fd < 0) return ddp_fail_errno(errno, "creating a temporary file");
    /* A fresh file: nobody else can hold its lock. */
    (void)flock(fd, LOCK_EX | LOCK_NB);
    *out = fd;
    return S_OK;
}

HRESULT ddp_tmpfile_name_at(int dirfd, int fd, char name[DDP_TMPNAME_MAX])
{
    if (name[0]) return S_OK;
    for (int tries = 0; tries < 100; tries++) {
        tmp_random_name(name);
        /* AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; /proc/self/fd does not. */
        if (linkat(fd, "", dirfd, name, AT_EMPTY_PATH) == 0) return S_OK;
        if (errno == ENOENT || errno == EPERM) {
            char proc[64];
            snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
            if (linkat(AT_FDCWD, proc, dirfd, name, AT_SYMLINK_FOLLOW) == 0) return S_OK;
        }
        if (errno != EEXIST) break;
    }
    int err = errno;
    name[0] = '\0';
    return ddp_fail_errno(err, "naming a temporary file");
}

int ddp_tmpdir_sweep(int dirfd)
{
    int dfd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return 0;
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return 0;
    }
    int removed = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, "tmp.", 4) != 0) continue;
        int fd = openat(dirfd, de->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) continue;
        struct stat st, again;
        /* Regular, unlocked (its writer is gone), and still the file at that name. */
        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && flock(fd, LOCK_EX | LOCK_NB) == 0 &&
            fstatat(dirfd, de->d_name, &again, AT_SYMLINK_NOFOLLOW) == 0 && ddp_same_file(&st, &again) &&
            unlinkat(dirfd, de->d_name, 0) == 0)
            removed++;
        close(fd);
    }
    closedir(d);
    return removed;
}

DIR *ddp_opendir_held(int dfd)
{
    int fd = fcntl(dfd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return NULL;
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = errno;
        close(fd);
        errno = e;
        return NULL;
    }
    rewinddir(d); /* a dup shares the offset of a directory read before */
    return d;
}
