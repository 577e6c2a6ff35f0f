/* SPDX-License-Identifier: MIT */
/*
 * winfs.c: a read-only FUSE file system over a Windows Server dedup volume
 * (winfs.h). A Windows dedup file (ntfs-3g symlink with
 * system.ntfs_reparse_data, or reparse file) shows as a regular file of its
 * logical size, mode 0444, read through lib/windows (random access, the
 * last decoded chunk cached per open file); everything else passes through
 * read-only. One chunk store per GUID is shared by every open file; reads
 * of one open file are serialized, different files are read in parallel.
 * Every failure is logged to stderr with its HRESULT and reported as EIO.
 */
#ifdef DDP_HAVE_FUSE
#define FUSE_USE_VERSION 35
#include <fuse.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "base/util.h"
#include "winfs.h"
#include "winsrc.h"

#define MAX_STORES 16

static struct {
    char *root;
    win_src *src;
    ddp_win_io io;
    pthread_mutex_t lock;
    ddp_win_store *stores[MAX_STORES];
    uint8_t guids[MAX_STORES][16];
    size_t nstores;
} W;

typedef struct wh {
    int fd;          /* plain files */
    ddp_winfile *f;  /* Windows dedup files */
    pthread_mutex_t lock;
} wh;

static char *full(const char *path) { return ddp_xasprintf("%s%s", W.root, path); }

static HRESULT store_for(const ddp_win_reparse *rp, ddp_win_store **out)
{
    HRESULT hr = S_OK;
    pthread_mutex_lock(&W.lock);
    *out = NULL;
    for (size_t i = 0; i < W.nstores; i++)
        if (!memcmp(W.guids[i], rp->store_guid, 16)) *out = W.stores[i];
    if (!*out) {
        if (W.nstores == MAX_STORES) {
            hr = ddp_fail(DDP_E_INVALID_DATA, "more than %d chunk stores", MAX_STORES);
        } else {
            char dir[DDP_WIN_STORE_DIR_MAX];
            ddp_win_store_dir(rp->store_guid, dir);
            hr = ddp_win_store_open(&W.io, dir, out);
            if (SUCCEEDED(hr)) {
                memcpy(W.guids[W.nstores], rp->store_guid, 16);
                W.stores[W.nstores++] = *out;
            }
        }
    }
    pthread_mutex_unlock(&W.lock);
    return hr;
}

static int w_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
    (void)fi;
    char *p = full(path);
    ddp_win_reparse rp;
    HRESULT hr;
    int win = win_reparse_of(p, &rp, &hr, st);
    int e = 0;
    if (!win && lstat(p, st) != 0) e = -errno;
    free(p);
    if (e) return e;
    if (win) {
        st->st_mode = S_IFREG | 0444;
        st->st_size = SUCCEEDED(hr) ? (off_t)rp.file_size : 0;
        st->st_blocks = (st->st_size + 511) / 512;
        st->st_nlink = 1;
    } else {
        st->st_mode &= ~(mode_t)0222;
    }
    return 0;
}

static int w_readlink(const char *path, char *buf, size_t n)
{
    char *p = full(path);
    ssize_t k = readlink(p, buf, n ? n - 1 : 0);
    int e = k < 0 ? -errno : 0;
    free(p);
    if (e) return e;
    buf[k] = 0;
    return 0;
}

static int w_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t off, struct fuse_file_info *fi,
                     enum fuse_readdir_flags flags)
{
    (void)off;
    (void)fi;
    (void)flags;
    char *p = full(path);
    DIR *d = opendir(p);
    free(p);
    if (!d) return -errno;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (filler(buf, e->d_name, NULL, 0, 0)) break;
    closedir(d);
    return 0;
}

static int w_open(const char *path, struct fuse_file_info *fi)
{
    if ((fi->flags & O_ACCMODE) != O_RDONLY) return -EROFS;
    char *p = full(path);
    ddp_win_reparse rp;
    HRESULT hr;
    struct stat st;
    int win = win_reparse_of(p, &rp, &hr, &st);
    wh *h = ddp_xcalloc(1, sizeof *h);
    h->fd = -1;
    pthread_mutex_init(&h->lock, NULL);
    int e = 0;
    if (win) {
        ddp_win_store *s = NULL;
        if (SUCCEEDED(hr)) hr = store_for(&rp, &s);
        if (SUCCEEDED(hr)) hr = ddp_winfile_open_in(s, &rp, &h->f);
        if (FAILED(hr)) {
            fprintf(stderr, "ddp mount: %s: 0x%08X %s\n", path, (unsigned)hr, ddp_error_detail());
            e = -EIO;
        }
    } else {
        h->fd = open(p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (h->fd < 0) e = -errno;
    }
    free(p);
    if (e) {
        pthread_mutex_destroy(&h->lock);
        free(h);
        return e;
    }
    fi->fh = (uint64_t)(uintptr_t)h;
    fi->keep_cache = 1;
    return 0;
}

static int w_read(const char *path, char *buf, size_t n, off_t off, struct fuse_file_info *fi)
{
    wh *h = (wh *)(uintptr_t)fi->fh;
    if (h->fd >= 0) {
        ssize_t k = pread(h->fd, buf, n, off);
        return k < 0 ? -errno : (int)k;
    }
    size_t got = 0;
    pthread_mutex_lock(&h->lock);
    HRESULT hr = ddp_winfile_pread(h->f, buf, n, (uint64_t)off, &got);
    if (FAILED(hr)) fprintf(stderr, "ddp mount: %s @%lld: 0x%08X %s\n", path, (long long)off, (unsigned)hr, ddp_error_detail());
    pthread_mutex_unlock(&h->lock);
    return FAILED(hr) ? -EIO : (int)got;
}

static int w_release(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    wh *h = (wh *)(uintptr_t)fi->fh;
    if (h->fd >= 0) close(h->fd);
    ddp_winfile_close(h->f);
    pthread_mutex_destroy(&h->lock);
    free(h);
    return 0;
}

static int w_statfs(const char *path, struct statvfs *sv)
{
    (void)path;
    return statvfs(W.root, sv) ? -errno : 0;
}

static const struct fuse_operations wops = {
    .getattr = w_getattr,
    .readlink = w_readlink,
    .readdir = w_readdir,
    .open = w_open,
    .read = w_read,
    .release = w_release,
    .statfs = w_statfs,
};

int winfs_main(const char *root, int fuse_argc, char **fuse_argv)
{
    W.root = ddp_strdup(root);
    pthread_mutex_init(&W.lock, NULL);
    HRESULT hr = win_src_open(root, &W.src);
    if (FAILED(hr)) {
        fprintf(stderr, "ddp mount: %s: 0x%08X %s\n", root, (unsigned)hr, ddp_error_detail());
        return 1;
    }
    W.io = win_src_io(W.src);
    int rc = fuse_main(fuse_argc, fuse_argv, &wops, NULL);
    for (size_t i = 0; i < W.nstores; i++) ddp_win_store_close(W.stores[i]);
    win_src_close(W.src);
    free(W.root);
    return rc;
}
#endif /* DDP_HAVE_FUSE */
