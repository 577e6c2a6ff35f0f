/* SPDX-License-Identifier: MIT */
/*
 * backupstore_dir.c: the plain-directory backup store.
 *
 * A directory backup (`ddp backup VOLUME DEST`, or any copy of a volume made
 * with cp -a or rsync) holds every chunk-store file at the path it had in the
 * volume, so ReadBackupFile("/.ddp/ChunkStore/{GUID}.ddp/Data/....ccc") is a
 * pread of DEST/.ddp/ChunkStore/{GUID}.ddp/Data/....ccc. The store leaves the
 * order to ddp (OrderContainersRestore answers with no plan) and turns each
 * PreviewContainerRead into posix_fadvise(WILLNEED) so the kernel reads ahead
 * exactly the ranges that will be wanted.
 *
 * It also lists a folder (IDdpListBackupFolder, ddp's own interface): the
 * names of the regular files directly in it, at most DIR_LIST_MAX.
 *
 * Safety: a path coming from the restore engine is checked (absolute, no
 * empty, "." or ".." component) and then opened one component at a time with
 * openat(O_NOFOLLOW) beneath the backup root, so neither a crafted path nor a
 * symbolic link planted inside the backup can reach a file outside it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup/backupstore_common.h"
#include "base/safepath.h"
#include "base/util.h"

#define DIR_FD_CACHE 8
#define DIR_LIST_MAX 1000000u


typedef struct dir_store {
    ddp_bs_base base;
    char *root;
    int rootfd;
    struct { char *path; int fd; uint64_t used; } cache[DIR_FD_CACHE];
    uint64_t tick;
} dir_store;

/* An fd for store path (validated), from the small cache of open files. */
static HRESULT dir_get_fd(dir_store *s, const char *path, int *fd)
{
    int victim = 0;
    for (int i = 0; i < DIR_FD_CACHE; i++) {
        if (s->cache[i].path && strcmp(s->cache[i].path, path) == 0) {
            s->cache[i].used = ++s->tick;
            *fd = s->cache[i].fd;
            return S_OK;
        }
        if (s->cache[i].used < s->cache[victim].used) victim = i;
    }
    int nfd;
    HRESULT hr = ddp_open_beneath(s->rootfd, path + 1, 0, &nfd, NULL);
    if (FAILED(hr)) return hr;
    if (s->cache[victim].path) {
        close(s->cache[victim].fd);
        free(s->cache[victim].path);
    }
    s->cache[victim].path = ddp_strdup(path);
    s->cache[victim].fd = nfd;
    s->cache[victim].used = ++s->tick;
    *fd = nfd;
    return S_OK;
}

static ULONG dir_release(IDedupReadFileCallback *This)
{
    ULONG left = ddp_bs_release_ref(This);
    if (left) return left;
    dir_store *s = (dir_store *)This;
    for (int i = 0; i < DIR_FD_CACHE; i++)
        if (s->cache[i].path) {
            close(s->cache[i].fd);
            free(s->cache[i].path);
        }
    if (s->rootfd >= 0) close(s->rootfd);
    free(s->root);
    free(s);
    return 0;
}

static HRESULT dir_read(IDedupReadFileCallback *This, BSTR path, LONGLONG off, ULONG n, BYTE *buf,
                        ULONG *got, DWORD flags)
{
    (void)flags;
    dir_store *s = (dir_store *)This;
    s->base.stats.read_calls++;
    HRESULT hr = ddp_bs_check_read_args(path, off, n, buf, got);
    if (FAILED(hr)) return hr;
    int fd;
    hr = dir_get_fd(s, path, &fd);
    if (FAILED(hr)) return hr;
    size_t r = 0;
    if (n > 0) {
        hr = ddp_pread_upto(fd, buf, n, (uint64_t)off, &r, path);
        if (FAILED(hr)) return hr;
    }
    *got = (ULONG)r;
    s->base.stats.bytes_read += r;
    return S_OK;
}

static HRESULT dir_order(IDedupReadFileCallback *This, ULONG n, BSTR *paths, ULONG *entries,
                         DEDUP_CONTAINER_EXTENT **plan)
{
    (void)n;
    (void)paths;
    dir_store *s = (dir_store *)This;
    s->base.stats.order_calls++;
    if (!entries || !plan) return E_POINTER;
    *entries = 0;
    *plan = NULL;
    return S_OK; /* no preference: ddp picks the order */
}

static HRESULT dir_preview(IDedupReadFileCallback *This, BSTR path, ULONG n, DDP_FILE_EXTENT *ext)
{
    dir_store *s = (dir_store *)This;
    HRESULT hr = ddp_bs_check_preview(&s->base, path, n, ext);
    if (FAILED(hr)) return hr;
    int fd;
    if (FAILED(dir_get_fd(s, path, &fd))) {
        ddp_clear_error();
        return S_OK; /* advisory only: the read will report the problem */
    }
    for (ULONG i = 0; i < n; i++)
        (void)posix_fadvise(fd, (off_t)ext[i].Offset, (off_t)ext[i].Length, POSIX_FADV_WILLNEED);
    return S_OK;
}

static HRESULT dir_list(ddp_bs_base *b, const char *folder, ULONG *n, BSTR **names)
{
    dir_store *s = (dir_store *)b;
    int fd;
    struct stat st;
    HRESULT hr = ddp_open_beneath(s->rootfd, folder + 1, 1, &fd, &st);
    if (FAILED(hr)) return hr == HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND) ? HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND) : hr;
    if (!S_ISDIR(st.st_mode)) {
        close(fd);
        return HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND);
    }
    DIR *d = fdopendir(fd);
    if (!d) {
        hr = ddp_fail_errno(errno, "listing %s in the backup", folder);
        close(fd);
        return hr;
    }
    BSTR *v = NULL;
    ULONG k = 0, cap = 0;
    const struct dirent *e;
    while ((e = readdir(d)) != NULL && k < DIR_LIST_MAX) {
        struct stat est;
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2]))) continue;
        if (fstatat(dirfd(d), e->d_name, &est, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(est.st_mode)) continue;
        if (k == cap) {
            cap = cap ? cap * 2 : 16;
            v = ddp_xrealloc(v, (size_t)cap * sizeof *v);
        }
        v[k++] = ddp_strdup(e->d_name);
    }
    closedir(d);
    *n = k;
    *names = v;
    return S_OK;
}

const IDedupReadFileCallbackVtbl ddp_bs_dir_vtbl = {
    ddp_bs_query_interface, ddp_bs_addref, dir_release, dir_read, dir_order, dir_preview,
};

HRESULT ddp_backupstore_open_dir(const char *dir, IDedupReadFileCallback **out)
{
    if (!out) return E_POINTER;
    *out = NULL;
    if (!dir) return E_POINTER;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return ddp_fail_errno(errno, "backup %s", dir);
    dir_store *s = ddp_xcalloc(1, sizeof *s);
    s->base.lpVtbl = &ddp_bs_dir_vtbl;
    atomic_init(&s->base.refs, 1u);
    ddp_bs_init_lister(&s->base, dir_list);
    s->root = ddp_strdup(dir);
    s->rootfd = fd;
    *out = (IDedupReadFileCallback *)s;
    return S_OK;
}

