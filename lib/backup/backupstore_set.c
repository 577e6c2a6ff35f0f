/* SPDX-License-Identifier: MIT */
/*
 * backupstore_set.c: the incremental backup set store, over the chain of
 * backups behind it (backupchain.c).
 *
 * `ddp backup VOLUME B2 --incremental B1` writes only what changed since B1;
 * B2's manifest still lists the whole volume, and says for each file and
 * each piece of each container which backup of the chain holds it (its
 * level: 0 for the full backup, n for the n-th increment). A container that
 * grew between backups lies in several pieces: its first bytes in B0 as
 * "<path>", the bytes appended before B1 in B1 as "<path>.@<hex offset>", and
 * so on.
 *
 * Opening the set reads the newest manifest, then follows each manifest's
 * "previous" (relative to the directory that holds the backup, or absolute)
 * down to the full backup, checking that every link names the backup it
 * should (backup id, level, store id): the chain cannot be silently mixed up
 * with another backup that has the same name.
 *
 * ReadBackupFile maps (path, offset, length) onto the pieces that hold those
 * bytes and reads each from its backup directory, with the same safe,
 * symlink-refusing open as the directory store. OrderContainersRestore
 * answers with one extent per piece, the oldest backup first and then each
 * increment, so a restore reads each backup directory once, in order: the
 * same container index appears several times, with different offsets.
 * PreviewContainerRead becomes posix_fadvise(WILLNEED) on the piece files.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup/manifest.h"
#include "backup/backupchain.h"
#include "backup/backupstore_common.h"
#include "base/safepath.h"
#include "base/util.h"

#define SET_FD_CACHE 16


typedef struct set_store {
    ddp_bs_base base;
    ddp_backup_chain chain;
    struct { uint32_t level; char *file; int fd; uint64_t used; } cache[SET_FD_CACHE];
    uint64_t tick;
} set_store;

static HRESULT set_get_fd(set_store *s, uint32_t level, const char *file, int *fd)
{
    int victim = 0;
    for (int i = 0; i < SET_FD_CACHE; i++) {
        if (s->cache[i].file && s->cache[i].level == level && strcmp(s->cache[i].file, file) == 0) {
            s->cache[i].used = ++s->tick;
            *fd = s->cache[i].fd;
            return S_OK;
        }
        if (s->cache[i].used < s->cache[victim].used) victim = i;
    }
    int nfd;
    HRESULT hr = ddp_open_beneath(s->chain.dirfds[level], file + 1, 0, &nfd, NULL);
    if (FAILED(hr)) return hr;
    if (s->cache[victim].file) {
        close(s->cache[victim].fd);
        free(s->cache[victim].file);
    }
    s->cache[victim].level = level;
    s->cache[victim].file = ddp_strdup(file);
    s->cache[victim].fd = nfd;
    s->cache[victim].used = ++s->tick;
    *fd = nfd;
    return S_OK;
}

static HRESULT set_read(IDedupReadFileCallback *This, BSTR path, LONGLONG off, ULONG n, BYTE *buf, ULONG *got,
                        DWORD flags)
{
    (void)flags;
    set_store *s = (set_store *)This;
    const ddp_mf_entry *e;
    HRESULT hr = ddp_bs_read_entry(&s->base, &s->chain.newest, path, off, n, buf, got, &e);
    if (FAILED(hr)) return hr;
    size_t done = 0;
    if (e->type == 'F') {
        int fd;
        hr = set_get_fd(s, e->level, e->path, &fd);
        if (SUCCEEDED(hr) && n > 0) hr = ddp_pread_upto(fd, buf, n, (uint64_t)off, &done, path);
    } else {
        while (done < n && SUCCEEDED(hr)) {
            uint64_t at = (uint64_t)off + done;
            const ddp_mf_piece *p = ddp_manifest_piece_at(e, at);
            if (!p) break; /* past the end */
            uint64_t in_piece = p->length - (at - p->offset);
            size_t want = n - done < in_piece ? n - done : (size_t)in_piece;
            int fd;
            size_t r = 0;
            hr = set_get_fd(s, p->level, p->file, &fd);
            if (SUCCEEDED(hr)) hr = ddp_pread_upto(fd, buf + done, want, at - p->offset, &r, p->file);
            done += r;
            if (r < want) break; /* a truncated piece file: the caller sees a short read */
        }
    }
    if (FAILED(hr)) return hr;
    *got = (ULONG)done;
    s->base.stats.bytes_read += done;
    return S_OK;
}

static HRESULT set_order(IDedupReadFileCallback *This, ULONG n, BSTR *paths, ULONG *entries,
                         DEDUP_CONTAINER_EXTENT **plan)
{
    set_store *s = (set_store *)This;
    /* Oldest backup first (the full, then each increment): one extent per piece. */
    return ddp_bs_order_from_manifest(&s->base, &s->chain.newest, 0, n, paths, entries, plan);
}

static HRESULT set_preview(IDedupReadFileCallback *This, BSTR path, ULONG n, DDP_FILE_EXTENT *ext)
{
    set_store *s = (set_store *)This;
    HRESULT hr = ddp_bs_check_preview(&s->base, path, n, ext);
    if (FAILED(hr)) return hr;
    const ddp_mf_entry *e = ddp_manifest_find(&s->chain.newest, path);
    if (!e || e->type != 'C') return S_OK; /* advisory: the reads will say what is wrong */
    for (ULONG i = 0; i < n; i++) {
        uint64_t at = (uint64_t)ext[i].Offset, left = (uint64_t)ext[i].Length;
        while (left > 0) {
            const ddp_mf_piece *p = ddp_manifest_piece_at(e, at);
            if (!p) break;
            uint64_t in_piece = p->length - (at - p->offset);
            uint64_t len = left < in_piece ? left : in_piece;
            int fd;
            if (SUCCEEDED(set_get_fd(s, p->level, p->file, &fd)))
                (void)posix_fadvise(fd, (off_t)(at - p->offset), (off_t)len, POSIX_FADV_WILLNEED);
            else
                ddp_clear_error();
            at += len;
            left -= len;
        }
    }
    return S_OK;
}

static ULONG set_release(IDedupReadFileCallback *This)
{
    ULONG left = ddp_bs_release_ref(This);
    if (left) return left;
    set_store *s = (set_store *)This;
    for (int i = 0; i < SET_FD_CACHE; i++)
        if (s->cache[i].file) {
            close(s->cache[i].fd);
            free(s->cache[i].file);
        }
    ddp_backup_chain_close(&s->chain);
    free(s);
    return 0;
}

/* IDdpListBackupFolder: the files and containers the manifest lists in the folder. */
static HRESULT set_list(ddp_bs_base *b, const char *folder, ULONG *n, BSTR **names)
{
    return ddp_bs_list_from_manifest(&((set_store *)b)->chain.newest, folder, n, names);
}

const IDedupReadFileCallbackVtbl ddp_bs_set_vtbl = {
    ddp_bs_query_interface, ddp_bs_addref, set_release, set_read, set_order, set_preview,
};

HRESULT ddp_backupstore_open_set(const char *newest_dir, IDedupReadFileCallback **out)
{
    if (!out) return E_POINTER;
    *out = NULL;
    if (!newest_dir) return E_POINTER;
    set_store *s = ddp_xcalloc(1, sizeof *s);
    HRESULT hr = ddp_backup_chain_open(newest_dir, &s->chain);
    if (FAILED(hr)) {
        free(s);
        return hr;
    }
    s->base.lpVtbl = &ddp_bs_set_vtbl;
    ddp_bs_init_lister(&s->base, set_list);
    atomic_init(&s->base.refs, 1u);
    *out = (IDedupReadFileCallback *)s;
    return S_OK;
}
