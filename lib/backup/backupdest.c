/* SPDX-License-Identifier: MIT */
/*
 * backupdest.c: the destination of a backup (backupdest.h).
 *
 * A directory backup may stop half-way (no space left, a crash, a kill): it
 * then has no manifest, so it is no backup, and a rerun into the same DEST
 * used to be refused because DEST was not empty. The mark
 * DEST/.ddp-backup/unfinished, written before anything else, tells such a
 * leftover from a directory someone filled: a rerun removes the leftover's
 * contents and starts again, and a run that fails removes what it wrote.
 * Removal goes from held directory descriptors with unlinkat and never
 * follows a symbolic link.
 *
 * A tar backup is written to DEST.tmp.PID and renamed to DEST at the end.
 * The temporary file is flock()ed while it is written; a backup to DEST
 * first removes every DEST.tmp.N beside it that no live backup holds (its
 * writer was killed), so nothing is left for good.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup/backupdest.h"
#include "backup/manifest.h"
#include "base/safepath.h"
#include "base/util.h"

#define REMOVE_MAX_DEPTH 4096

/* Remove everything inside the directory dfd (not dfd itself). 0 when all
 * of it went. */
static int remove_contents(int dfd, int depth)
{
    if (depth > REMOVE_MAX_DEPTH) return -1;
    DIR *d = ddp_opendir_held(dfd);
    if (!d) return -1;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        struct stat st;
        if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            int sub = ddp_openat_beneath(dfd, de->d_name, O_RDONLY | O_DIRECTORY, 0);
            if (sub < 0 || remove_contents(sub, depth + 1) != 0) rc = -1;
            if (sub >= 0) close(sub);
            if (unlinkat(dfd, de->d_name, AT_REMOVEDIR) != 0) rc = -1;
        } else if (unlinkat(dfd, de->d_name, 0) != 0) {
            rc = -1;
        }
    }
    closedir(d);
    return rc;
}

/* Is dfd an unfinished backup: the mark, and no manifest? */
static int is_unfinished(int dfd)
{
    struct stat st;
    return fstatat(dfd, DDP_BACKUP_UNFINISHED, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
           fstatat(dfd, DDP_MANIFEST_PATH, &st, AT_SYMLINK_NOFOLLOW) != 0;
}

static int is_empty(int dfd)
{
    DIR *d = ddp_opendir_held(dfd);
    if (!d) return 0;
    struct dirent *de;
    int empty = 1;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            empty = 0;
            break;
        }
    closedir(d);
    return empty;
}

HRESULT ddp_backup_dest_open_dir(const char *dest, int *created, int *destfd)
{
    *created = 0;
    *destfd = -1;
    struct stat st;
    if (lstat(dest, &st) != 0) {
        if (errno != ENOENT) return ddp_fail_errno(errno, "backup destination %s", dest);
        if (mkdir(dest, 0700) != 0) return ddp_fail_errno(errno, "backup: creating %s", dest);
        *created = 1;
    } else if (!S_ISDIR(st.st_mode)) {
        return ddp_fail(HRESULT_FROM_WIN32(ERROR_FILE_EXISTS), "backup destination %s exists and is not a directory", dest);
    }
    int fd = open(dest, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        HRESULT hr = ddp_fail_errno(errno, "backup: opening %s", dest);
        if (*created) (void)rmdir(dest);
        return hr;
    }
    if (!*created && !is_empty(fd)) {
        if (!is_unfinished(fd)) {
            close(fd);
            return ddp_fail(HRESULT_FROM_WIN32(ERROR_DIR_NOT_EMPTY), "backup destination %s exists and is not empty",
                            dest);
        }
        /* What a failed or killed backup left: start again. */
        if (remove_contents(fd, 0) != 0) {
            HRESULT hr = ddp_fail_errno(errno ? errno : EIO, "backup: removing the unfinished backup in %s", dest);
            close(fd);
            return hr;
        }
    }
    HRESULT hr = S_OK;
    if (mkdirat(fd, DDP_MANIFEST_DIR, 0700) != 0 && errno != EEXIST)
        hr = ddp_fail_errno(errno, "backup: creating %s/%s", dest, DDP_MANIFEST_DIR);
    int mfd = -1;
    if (SUCCEEDED(hr)) {
        mfd = ddp_openat_beneath(fd, DDP_BACKUP_UNFINISHED, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (mfd < 0) hr = ddp_fail_errno(errno, "backup: marking %s unfinished", dest);
    }
    if (SUCCEEDED(hr)) hr = ddp_fsync_fd(mfd, dest);
    if (mfd >= 0) close(mfd);
    if (SUCCEEDED(hr) && fsync(fd) != 0) hr = ddp_fail_errno(errno, "backup: syncing %s", dest);
    if (FAILED(hr)) {
        ddp_backup_dest_discard(fd, dest, *created);
        close(fd);
        return hr;
    }
    *destfd = fd;
    return S_OK;
}

HRESULT ddp_backup_dest_finished(int destfd, const char *dest)
{
    if (unlinkat(destfd, DDP_BACKUP_UNFINISHED, 0) != 0 && errno != ENOENT)
        return ddp_fail_errno(errno, "backup: removing the mark %s/%s", dest, DDP_BACKUP_UNFINISHED);
    int mfd = ddp_openat_beneath(destfd, DDP_MANIFEST_DIR, O_RDONLY | O_DIRECTORY, 0);
    if (mfd >= 0) {
        (void)fsync(mfd);
        close(mfd);
    }
    return S_OK;
}

void ddp_backup_dest_discard(int destfd, const char *dest, int created)
{
    if (destfd >= 0) {
        (void)remove_contents(destfd, 0);
        (void)fsync(destfd);
    }
    if (created) (void)rmdir(dest);
}

/* ---- tar ---- */

/* Remove DEST.tmp.N files beside dest that no live backup holds. */
static void remove_abandoned_tar_tmps(const char *dest)
{
    char *c1 = ddp_strdup(dest), *c2 = ddp_strdup(dest);
    const char *dir = dirname(c1);
    const char *base = basename(c2);
    char *prefix = ddp_xasprintf("%s.tmp.", base);
    size_t plen = strlen(prefix);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (!d && dfd >= 0) close(dfd);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, prefix, plen) != 0) continue;
        const char *num = de->d_name + plen;
        if (!*num || strspn(num, "0123456789") != strlen(num)) continue;
        int fd = -1;
        struct stat st;
        if (FAILED(ddp_open_regular_at(dirfd(d), de->d_name, O_RDONLY, NULL, &fd, &st))) {
            ddp_clear_error();
            continue;
        }
        /* Free lock: its writer is gone. Ours (same owner) only. */
        if (st.st_uid == geteuid() && flock(fd, LOCK_EX | LOCK_NB) == 0) {
            struct stat now;
            if (fstatat(dirfd(d), de->d_name, &now, AT_SYMLINK_NOFOLLOW) == 0 && ddp_same_file(&st, &now))
                (void)unlinkat(dirfd(d), de->d_name, 0);
        }
        close(fd);
    }
    if (d) closedir(d);
    free(prefix);
    free(c1);
    free(c2);
}

HRESULT ddp_backup_tar_tmp_open(const char *dest, char **tmp, int *fd)
{
    remove_abandoned_tar_tmps(dest);
    *tmp = ddp_xasprintf("%s.tmp.%ld", dest, (long)getpid());
    /* A stale one with our PID (a PID reused after a kill): not locked, ours. */
    int old = open(*tmp, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (old >= 0) {
        if (flock(old, LOCK_EX | LOCK_NB) == 0) (void)unlink(*tmp);
        close(old);
    }
    *fd = open(*tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (*fd < 0) {
        HRESULT hr = ddp_fail_errno(errno, "backup: creating %s", *tmp);
        free(*tmp);
        *tmp = NULL;
        return hr;
    }
    (void)flock(*fd, LOCK_EX | LOCK_NB);
    return S_OK;
}
