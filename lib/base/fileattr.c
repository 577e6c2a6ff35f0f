/* SPDX-License-Identifier: MIT */
/*
 * fileattr.c: owner, mode, times and xattrs carried from a file to its
 * replacement (see fileattr.h), and the temporary files that replacements
 * are built in.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "base/fileattr.h"
#include "base/util.h"

#define TEMP_MARK ".ddp-tmp."

static HRESULT copy_xattrs(int src, int dst, const char *what)
{
    ssize_t n = flistxattr(src, NULL, 0);
    if (n < 0) return (errno == ENOTSUP || errno == ENOSYS) ? S_OK : ddp_fail_errno(errno, "listing xattrs of %s", what);
    if (n == 0) return S_OK;
    char *names = ddp_xmalloc((size_t)n);
    n = flistxattr(src, names, (size_t)n);
    HRESULT hr = S_OK;
    if (n < 0) hr = ddp_fail_errno(errno, "listing xattrs of %s", what);
    size_t vcap = 4096;
    uint8_t *val = ddp_xmalloc(vcap);
    for (ssize_t i = 0; SUCCEEDED(hr) && i < n; i += (ssize_t)strlen(names + i) + 1) {
        const char *name = names + i;
        ssize_t vl = fgetxattr(src, name, NULL, 0);
        if (vl < 0) { hr = ddp_fail_errno(errno, "reading xattr %s of %s", name, what); break; }
        if ((size_t)vl > vcap) { vcap = (size_t)vl; val = ddp_xrealloc(val, vcap); }
        vl = fgetxattr(src, name, val, vcap);
        if (vl < 0) { hr = ddp_fail_errno(errno, "reading xattr %s of %s", name, what); break; }
        if (fsetxattr(dst, name, val, (size_t)vl, 0) != 0) {
            /* trusted.* and security.* need privilege we may not have: a file
             * whose attributes cannot all be carried over is not replaced. */
            hr = ddp_fail_errno(errno, "copying xattr %s of %s", name, what);
        }
    }
    free(val);
    free(names);
    return hr;
}

HRESULT ddp_fileattr_copy(int src_fd, int dst_fd, const struct stat *st, const char *what)
{
    struct stat cur;
    if (fstat(dst_fd, &cur) != 0) return ddp_fail_errno(errno, "%s", what);
    if ((cur.st_uid != st->st_uid || cur.st_gid != st->st_gid) && fchown(dst_fd, st->st_uid, st->st_gid) != 0)
        return ddp_fail_errno(errno, "keeping the owner (%u:%u) of %s", (unsigned)st->st_uid, (unsigned)st->st_gid, what);
    if (src_fd >= 0) {
        HRESULT hr = copy_xattrs(src_fd, dst_fd, what);
        if (FAILED(hr)) return hr;
    }
    /* Mode after owner: fchown clears set-id bits. */
    if (fchmod(dst_fd, st->st_mode & 07777) != 0) return ddp_fail_errno(errno, "keeping the mode of %s", what);
    struct timespec times[2] = { st->st_atim, st->st_mtim };
    if (futimens(dst_fd, times) != 0) return ddp_fail_errno(errno, "keeping the times of %s", what);
    return S_OK;
}

int ddp_fileattr_unchanged(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

HRESULT ddp_tempfile_beside(const char *path, char **tmp_path, int *fd)
{
    char *copy = ddp_strdup(path);
    char *copy2 = ddp_strdup(path);
    const char *dir = dirname(copy);
    const char *base = basename(copy2);
    /* Keep the name short enough for NAME_MAX. */
    char *tmp = ddp_xasprintf("%s/.%.180s" TEMP_MARK "XXXXXX", dir, base);
    free(copy);
    free(copy2);
    int f = mkostemp(tmp, O_CLOEXEC);
    if (f < 0) {
        HRESULT hr = ddp_fail_errno(errno, "creating a temporary file beside %s", path);
        free(tmp);
        return hr;
    }
    /* A fresh file: nobody else can hold its lock. */
    (void)flock(f, LOCK_EX | LOCK_NB);
    *tmp_path = tmp;
    *fd = f;
    return S_OK;
}

int ddp_is_temp_name(const char *name)
{
    if (name[0] != '.') return 0;
    const char *m = strstr(name, TEMP_MARK);
    return m && strlen(m) == strlen(TEMP_MARK) + 6;
}

int ddp_temp_remove_abandoned(const char *path)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return 0;
    struct stat st;
    int gone = 0;
    /* Regular files only; the lock is free once its writer's descriptor is
     * closed (by exit, or by a crash). A writer between its create and its
     * flock (a few instructions) could lose its file here: it then fails to
     * rename it and reports that; no data is at stake. */
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && flock(fd, LOCK_EX | LOCK_NB) == 0) gone = unlink(path) == 0;
    close(fd);
    return gone;
}
