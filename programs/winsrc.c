/* SPDX-License-Identifier: MIT */
/*
 * winsrc.c: reparse points and chunk stores of Windows dedup volumes on
 * Linux, for the ddp program (winsrc.h).
 */
#include "winsrc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "base/safepath.h"
#include "base/util.h"

#define XATTR_NAME "system.ntfs_reparse_data"
#define FD_CACHE 16

int win_reparse_of(const char *path, ddp_win_reparse *rp, HRESULT *hr, struct stat *st)
{
    *hr = S_OK;
    if (lstat(path, st) != 0) return 0;
    uint8_t buf[DDP_WIN_REPARSE_MAX];
    size_t n = 0;
    if (S_ISLNK(st->st_mode)) {
        /* ntfs-3g: ask for the size first (a too-small buffer gets EIO). */
        ssize_t sz = lgetxattr(path, XATTR_NAME, NULL, 0);
        if (sz < 8) return 0;
        if ((size_t)sz > sizeof buf) {
            *hr = ddp_fail(DDP_E_INVALID_DATA, "%s: reparse data of %zd bytes (at most %u)", path, sz, DDP_WIN_REPARSE_MAX);
            return 1;
        }
        ssize_t got = lgetxattr(path, XATTR_NAME, buf, (size_t)sz);
        if (got < 0) {
            *hr = ddp_fail_errno(errno, "%s: reading its reparse data (%s)", path, XATTR_NAME);
            return 1;
        }
        n = (size_t)got;
        if (!ddp_win_reparse_has_tag(buf, n)) return 0;
    } else if (S_ISREG(st->st_mode)) {
        if (st->st_size < 16 || st->st_size > DDP_WIN_REPARSE_MAX) return 0;
        int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) return 0;
        size_t got = 0;
        HRESULT h = ddp_pread_upto(fd, buf, (size_t)st->st_size, 0, &got, path);
        close(fd);
        if (FAILED(h) || got != (size_t)st->st_size) return 0;
        n = got;
        /* A reparse file: the tag, and a length that is the whole file. */
        if (!ddp_win_reparse_has_tag(buf, n) || (size_t)ddp_get_le16(buf + 4) + 8 != n) return 0;
    } else {
        return 0;
    }
    *hr = ddp_win_reparse_parse(buf, n, rp);
    return 1;
}

int win_is_volume(const char *dir)
{
    char *p = ddp_xasprintf("%s/System Volume Information/Dedup/ChunkStore", dir);
    struct stat st;
    int ok = stat(p, &st) == 0 && S_ISDIR(st.st_mode);
    free(p);
    return ok;
}

char *win_find_volume(const char *path)
{
    char *real = realpath(path, NULL);
    if (!real) {
        /* a dangling symlink (ntfs-3g's dedup files): its directory */
        char *d = ddp_strdup(path);
        char *s = strrchr(d, '/');
        if (s) *s = 0;
        else strcpy(d, ".");
        real = realpath(d[0] ? d : "/", NULL);
        free(d);
        if (!real) return NULL;
    }
    struct stat st;
    if (lstat(real, &st) == 0 && !S_ISDIR(st.st_mode)) {
        char *s = strrchr(real, '/');
        if (s && s != real) *s = 0;
        else if (s) s[1] = 0;
    }
    for (;;) {
        if (win_is_volume(real)) return real;
        char *s = strrchr(real, '/');
        if (!s || s == real) {
            if (strcmp(real, "/") != 0 && win_is_volume("/")) {
                free(real);
                return ddp_strdup("/");
            }
            free(real);
            return NULL;
        }
        *s = 0;
    }
}

typedef struct fd_slot {
    char *path;
    int fd;
    uint64_t used;
} fd_slot;

struct win_src {
    int rootfd;
    char *root;
    pthread_mutex_t lock;
    fd_slot slots[FD_CACHE];
    uint64_t tick;
    uint64_t reads;
};

HRESULT win_src_open(const char *root, win_src **out)
{
    *out = NULL;
    int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return ddp_fail_errno(errno, "%s", root);
    win_src *s = ddp_xcalloc(1, sizeof *s);
    s->rootfd = fd;
    s->root = ddp_strdup(root);
    pthread_mutex_init(&s->lock, NULL);
    for (int i = 0; i < FD_CACHE; i++) s->slots[i].fd = -1;
    *out = s;
    return S_OK;
}

void win_src_close(win_src *s)
{
    if (!s) return;
    for (int i = 0; i < FD_CACHE; i++) {
        if (s->slots[i].fd >= 0) close(s->slots[i].fd);
        free(s->slots[i].path);
    }
    close(s->rootfd);
    pthread_mutex_destroy(&s->lock);
    free(s->root);
    free(s);
}

uint64_t win_src_reads(const win_src *s) { return s->reads; }

/* The name in dir (relative to the root) that equals base ignoring case; malloc'd rel path, or NULL. */
static char *case_match(win_src *s, const char *rel)
{
    const char *slash = strrchr(rel, '/');
    if (!slash) return NULL;
    char *dir = ddp_strdup(rel);
    dir[slash - rel] = 0;
    int dfd = -1;
    struct stat st;
    char *found = NULL;
    if (SUCCEEDED(ddp_open_beneath(s->rootfd, dir, 1, &dfd, &st)) && S_ISDIR(st.st_mode)) {
        DIR *d = fdopendir(dfd);
        if (d) {
            struct dirent *e;
            while ((e = readdir(d)) != NULL)
                if (strcasecmp(e->d_name, slash + 1) == 0) {
                    found = ddp_xasprintf("%s/%s", dir, e->d_name);
                    break;
                }
            closedir(d);
            dfd = -1;
        }
    }
    if (dfd >= 0) close(dfd);
    free(dir);
    return found;
}

/* An fd for path (from the cache or opened beneath the root); the lock is held. */
static HRESULT get_fd(win_src *s, const char *path, int *fd)
{
    for (int i = 0; i < FD_CACHE; i++)
        if (s->slots[i].path && strcmp(s->slots[i].path, path) == 0) {
            s->slots[i].used = ++s->tick;
            *fd = s->slots[i].fd;
            return S_OK;
        }
    const char *rel = path;
    while (*rel == '/') rel++;
    struct stat st;
    int nfd = -1;
    HRESULT hr = ddp_open_beneath(s->rootfd, rel, 0, &nfd, &st);
    if (hr == HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND)) {
        char *alt = case_match(s, rel);
        if (alt) {
            hr = ddp_open_beneath(s->rootfd, alt, 0, &nfd, &st);
            free(alt);
        }
    }
    if (FAILED(hr)) return hr;
    int victim = 0;
    for (int i = 1; i < FD_CACHE; i++)
        if (s->slots[i].used < s->slots[victim].used) victim = i;
    if (s->slots[victim].fd >= 0) close(s->slots[victim].fd);
    free(s->slots[victim].path);
    s->slots[victim].path = ddp_strdup(path);
    s->slots[victim].fd = nfd;
    s->slots[victim].used = ++s->tick;
    *fd = nfd;
    return S_OK;
}

static HRESULT src_read(void *ctx, const char *path, uint64_t off, void *buf, size_t n, size_t *got)
{
    win_src *s = ctx;
    *got = 0;
    pthread_mutex_lock(&s->lock);
    s->reads++;
    int fd = -1;
    HRESULT hr = get_fd(s, path, &fd);
    /* A private duplicate: another thread may evict the cached fd meanwhile. */
    int mine = SUCCEEDED(hr) ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
    if (SUCCEEDED(hr) && mine < 0) hr = ddp_fail_errno(errno, "%s", path);
    pthread_mutex_unlock(&s->lock);
    if (FAILED(hr)) return hr;
    hr = ddp_pread_upto(mine, buf, n, off, got, path);
    close(mine);
    return hr;
}

static HRESULT src_list(void *ctx, const char *dir, ddp_win_list_fn fn, void *cbctx)
{
    win_src *s = ctx;
    const char *rel = dir;
    while (*rel == '/') rel++;
    int dfd = -1;
    struct stat st;
    HRESULT hr = ddp_open_beneath(s->rootfd, rel, 1, &dfd, &st);
    if (FAILED(hr)) return hr;
    if (!S_ISDIR(st.st_mode)) {
        close(dfd);
        return HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND);
    }
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return ddp_fail_errno(errno, "%s", dir);
    }
    struct dirent *e;
    while (SUCCEEDED(hr) && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        hr = fn(cbctx, e->d_name);
    }
    closedir(d);
    return hr;
}

ddp_win_io win_src_io(win_src *s)
{
    ddp_win_io io = { src_read, src_list, s };
    return io;
}
