/* SPDX-License-Identifier: MIT */
/*
 * backup.c: `ddp backup`: an optimized backup of a volume (the manifest is
 * in manifest.c, the first step of a restore in extract.c).
 *
 * An optimized backup is the volume as it is on disk: stubs as the 232-byte
 * files they are, files that were not optimized, directories and symlinks,
 * each with owner, mode and times; the store's settings and catalog; and
 * every container file once, cut at the length it had when the backup took
 * the volume's job lock (containers are append-only, so that prefix is
 * exactly what the stubs of the backup can reference). .ddp/State (the
 * rebuildable index, the lock, the logs) is left out.
 *
 * Three shapes:
 *   - a directory that mirrors the volume, plus DEST/.ddp-backup/manifest;
 *   - an incremental directory: only the files that changed since the
 *     previous backup (size, times, mode or owner differ), the new
 *     containers, and for a container that grew only the appended tail, as a
 *     piece file "<container path>.@<hex offset>"; the manifest lists the
 *     whole tree and says which backup of the chain holds each file and each
 *     piece, so the newest manifest alone describes the volume;
 *   - a tar archive whose first member is the manifest, then Settings, the
 *     catalog, the stream containers, the data containers, then the rest of
 *     the tree: a restore reads it in one forward pass, like a tape.
 *
 * The manifest is text (docs/BACKUP.md): a header, one line per directory,
 * file, symlink and container, one line per container piece, and a last line
 * with the XXH3-64 of everything before it. Paths are escaped so each line
 * splits on single spaces. The parser checks the checksum, every number
 * against its bounds, every path (absolute, no "." or ".." components),
 * contiguous container pieces, unique paths and the tar member order before
 * anything uses the data: a bad manifest is DDP_E_INVALID_DATA with a detail
 * naming the line.
 *
 * Durability: every file is written to a temporary name and renamed; one
 * syncfs() makes them all durable; the manifest is written last (atomically), so a
 * backup directory without a manifest is an unfinished one.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "backup/manifest.h"
#include "backup/backupchain.h"
#include "backup/backupdest.h"
#include "backup/backupjob.h"
#include "backup/backup_s3.h"
#include "backup/s3config.h"
#include "base/safepath.h"
#include "backup/backup.h"
#include "store/catalog.h"
#include "base/hash.h"
#include "store/identity.h"
#include "store/stub.h"
#include "base/util.h"
#include "volume/volume.h"

#define COPY_BUF_SIZE ((size_t)1 << 20)
#define TAILSUM_BYTES 4096u
#define MANIFEST_MAX_LINE 65536u
#define MANIFEST_MAX_ENTRIES ((size_t)1 << 28)

/* ======================================================== the backup */

void ddp_backup_progress(bctx *b, uint64_t n)
{
    b->done += n;
    if (b->opt && b->opt->progress) b->opt->progress(b->opt->progress_ctx, b->done, b->total);
}

/* The attributes of a manifest entry from the file's stat. */
static void entry_attrs(ddp_mf_entry *e, const struct stat *st)
{
    e->mode = st->st_mode & 07777;
    e->uid = st->st_uid;
    e->gid = st->st_gid;
    e->mtime_sec = st->st_mtim.tv_sec;
    e->mtime_nsec = (uint32_t)st->st_mtim.tv_nsec;
    e->ctime_sec = st->st_ctim.tv_sec;
    e->ctime_nsec = (uint32_t)st->st_ctim.tv_nsec;
}

static ddp_mf_entry *add_entry(bctx *b, char type, const char *path, const struct stat *st)
{
    if (b->m.count == b->m.cap) {
        size_t cap = b->m.cap ? b->m.cap * 2 : 256;
        b->m.entries = ddp_xrealloc(b->m.entries, cap * sizeof *b->m.entries);
        b->copy_piece = ddp_xrealloc(b->copy_piece, cap);
        b->m.cap = cap;
    }
    b->copy_piece[b->m.count] = 0;
    ddp_mf_entry *e = &b->m.entries[b->m.count++];
    memset(e, 0, sizeof *e);
    e->type = type;
    e->member = -1;
    e->level = b->m.level;
    e->path = ddp_strdup(path);
    entry_attrs(e, st);
    return e;
}

/* "/.ddp/ChunkStore/X.ddp/{Data,Stream,Hotspot}/CCCCCCCC.GGGGGGGG.ccc": the
 * container kind, else 0. */
static int container_kind(const char *p)
{
    static const char pre[] = "/.ddp/ChunkStore/";
    if (strncmp(p, pre, sizeof pre - 1) != 0) return 0;
    p += sizeof pre - 1;
    const char *s = strchr(p, '/');
    if (!s || s - p < 5 || memcmp(s - 4, ".ddp", 4) != 0) return 0;
    p = s + 1;
    int kind;
    if (strncmp(p, "Data/", 5) == 0) { kind = DDP_KIND_DATA; p += 5; }
    else if (strncmp(p, "Stream/", 7) == 0) { kind = DDP_KIND_STREAM; p += 7; }
    else if (strncmp(p, "Hotspot/", 8) == 0) { kind = DDP_KIND_HOTSPOT; p += 8; }
    else return 0;
    if (strlen(p) != 21 || p[8] != '.' || strcmp(p + 17, ".ccc") != 0) return 0;
    for (int i = 0; i < 17; i++)
        if (i != 8 && !isxdigit((unsigned char)p[i])) return 0;
    return kind;
}

/* Is the regular file name (in dfd) a valid stub of this volume? */
static int is_volume_stub(bctx *b, int dfd, const char *name)
{
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return 0;
    uint8_t buf[DDP_STUB_SIZE + 1];
    size_t got = 0;
    HRESULT hr = ddp_pread_upto(fd, buf, sizeof buf, 0, &got, name);
    close(fd);
    if (FAILED(hr) || got != DDP_STUB_SIZE) { ddp_clear_error(); return 0; }
    ddp_stub s;
    if (FAILED(ddp_stub_decode(buf, got, b->v->id.key, &s))) { ddp_clear_error(); return 0; }
    return memcmp(s.store_id, b->v->id.store_id, DDP_STORE_ID_SIZE) == 0;
}

/* xxh64 of the container bytes [size - min(size, 4096), size). */
static HRESULT tail_sum(bctx *b, const char *path, uint64_t size, uint64_t *sum)
{
    int fd;
    HRESULT hr = ddp_open_beneath(b->vfd, path + 1, 0, &fd, NULL);
    if (FAILED(hr)) return hr;
    uint64_t t = size < TAILSUM_BYTES ? size : TAILSUM_BYTES;
    uint8_t tail[TAILSUM_BYTES];
    hr = ddp_pread_exact(fd, tail, (size_t)t, size - t, path);
    close(fd);
    if (SUCCEEDED(hr)) *sum = ddp_checksum64(tail, (size_t)t);
    return hr;
}

static int same_file(const ddp_mf_entry *a, const ddp_mf_entry *p)
{
    return p && p->type == 'F' && a->is_stub == p->is_stub && a->size == p->size && a->mode == p->mode &&
           a->uid == p->uid && a->gid == p->gid && a->mtime_sec == p->mtime_sec &&
           a->mtime_nsec == p->mtime_nsec && a->ctime_sec == p->ctime_sec && a->ctime_nsec == p->ctime_nsec;
}

/* The pieces of container e (its size set): carried over from the previous
 * backup where its bytes are unchanged, plus what is new. */
static HRESULT plan_container(bctx *b, ddp_mf_entry *e, size_t idx)
{
    uint64_t L = e->size;
    HRESULT hr = S_OK;
    if (L > 0) {
        hr = tail_sum(b, e->path, L, &e->tailsum);
        if (FAILED(hr)) return hr;
    }
    const ddp_mf_entry *p = b->prev ? ddp_manifest_find(b->prev, e->path) : NULL;
    uint64_t keep = 0; /* bytes covered by earlier pieces */
    if (p && p->type == 'C' && p->size <= L && p->npieces > 0) {
        uint64_t sum = 0;
        hr = tail_sum(b, e->path, p->size, &sum);
        if (FAILED(hr)) return hr;
        if (sum == p->tailsum) keep = p->size;
    }
    uint32_t np = 0;
    e->pieces = ddp_xcalloc((p ? p->npieces : 0) + 1, sizeof *e->pieces);
    if (keep) {
        for (uint32_t j = 0; j < p->npieces; j++) {
            e->pieces[np] = p->pieces[j];
            e->pieces[np].member = -1;
            e->pieces[np].file = ddp_strdup(p->pieces[j].file);
            np++;
        }
    }
    if (L > keep) {
        ddp_mf_piece *q = &e->pieces[np];
        q->level = b->m.level;
        q->offset = keep;
        q->length = L - keep;
        q->member = -1;
        q->file = keep ? ddp_xasprintf("%s.@%" PRIx64, e->path, keep) : ddp_strdup(e->path);
        np++;
        b->copy_piece[idx] = (uint8_t)1; /* the last piece is written now */
    }
    e->npieces = np;
    return S_OK;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Walk the directory dfd (store path rel, "" for the root) in name order. */
static HRESULT walk_dir(bctx *b, int dfd, const char *rel)
{
    DIR *d = ddp_opendir_held(dfd);
    if (!d) return ddp_fail_errno(errno, "listing %s/", rel);
    char **names = NULL;
    size_t nn = 0, cap = 0;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        if (nn == cap) {
            cap = cap ? cap * 2 : 64;
            names = ddp_xrealloc(names, cap * sizeof *names);
        }
        names[nn++] = ddp_strdup(de->d_name);
    }
    int err = errno;
    closedir(d);
    HRESULT hr = S_OK;
    if (err) hr = ddp_fail_errno(err, "listing %s/", rel);
    if (nn) qsort(names, nn, sizeof *names, cmp_names);

    for (size_t i = 0; i < nn && SUCCEEDED(hr); i++) {
        char *child = ddp_xasprintf("%s/%s", rel, names[i]);
        struct stat st;
        if (!*rel && strcmp(names[i], DDP_MANIFEST_DIR) == 0) {
            b->st->skipped++; /* would collide with the backup's own manifest */
        } else if (strcmp(child, "/.ddp/State") == 0) {
            /* the index is rebuildable; the lock and logs belong to the volume */
        } else if (fstatat(dfd, names[i], &st, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno != ENOENT) hr = ddp_fail_errno(errno, "backup: %s", child);
        } else if (S_ISDIR(st.st_mode)) {
            add_entry(b, 'D', child, &st);
            b->st->dirs++;
            int cfd = openat(dfd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (cfd < 0) hr = ddp_fail_errno(errno, "backup: opening %s", child);
            else {
                hr = walk_dir(b, cfd, child);
                close(cfd);
            }
        } else if (S_ISLNK(st.st_mode)) {
            char target[PATH_MAX + 1];
            ssize_t k = readlinkat(dfd, names[i], target, sizeof target);
            if (k < 0) hr = ddp_fail_errno(errno, "backup: reading link %s", child);
            else if (k == 0 || (size_t)k > PATH_MAX) hr = ddp_fail(DDP_E_INVALID_DATA, "backup: link %s: bad target", child);
            else {
                target[k] = '\0';
                ddp_mf_entry *e = add_entry(b, 'L', child, &st);
                e->target = ddp_strdup(target);
                b->st->symlinks++;
            }
        } else if (S_ISREG(st.st_mode)) {
            size_t idx = b->m.count;
            if (container_kind(child)) {
                ddp_mf_entry *e = add_entry(b, 'C', child, &st);
                e->size = (uint64_t)st.st_size; /* the valid length now, under the lock */
                b->st->containers++;
                hr = plan_container(b, e, idx);
            } else {
                ddp_mf_entry *e = add_entry(b, 'F', child, &st);
                e->size = (uint64_t)st.st_size;
                e->is_stub = st.st_size == DDP_STUB_SIZE && is_volume_stub(b, dfd, names[i]);
                b->st->files++;
                if (e->is_stub) b->st->stubs++;
                if (strncmp(child, "/.ddp/", 6) == 0) b->st->metadata_files++;
                const ddp_mf_entry *p = b->prev ? ddp_manifest_find(b->prev, child) : NULL;
                if (same_file(e, p)) {
                    e->level = p->level;
                    e->pack = p->pack; /* an S3 backup's file stays where it is */
                    e->pack_off = p->pack_off;
                    if (strncmp(child, "/.ddp/", 6) != 0) b->st->files_unchanged++;
                } else {
                    b->copy_piece[idx] = 1;
                }
            }
        } else {
            b->st->skipped++; /* fifo, socket, device: not backed up */
        }
        free(child);
    }
    for (size_t i = 0; i < nn; i++) free(names[i]);
    free(names);
    return hr;
}

/* ---- copying ---- */

/* Copy up to len bytes from sfd at soff to dfd at doff; *done = bytes copied
 * (less only at the end of the source). */
static HRESULT copy_range(bctx *b, int sfd, uint64_t soff, int dfd, uint64_t doff, uint64_t len,
                          uint64_t *done, const char *what)
{
    *done = 0;
    int use_cfr = 1;
    while (*done < len) {
        size_t want = len - *done > ((uint64_t)1 << 30) ? (size_t)1 << 30 : (size_t)(len - *done);
        if (use_cfr) {
            loff_t in = (loff_t)(soff + *done), out = (loff_t)(doff + *done);
            ssize_t r = copy_file_range(sfd, &in, dfd, &out, want, 0);
            if (r > 0) { *done += (uint64_t)r; ddp_backup_progress(b, (uint64_t)r); continue; }
            if (r == 0) break;
            if (errno == EINTR) continue;
            if (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP || errno == EPERM) {
                use_cfr = 0;
                continue;
            }
            return ddp_fail_errno(errno, "backup: copying %s", what);
        }
        if (want > COPY_BUF_SIZE) want = COPY_BUF_SIZE;
        size_t got;
        HRESULT hr = ddp_pread_upto(sfd, b->buf, want, soff + *done, &got, what);
        if (FAILED(hr)) return hr;
        if (got == 0) break;
        hr = ddp_pwrite_all(dfd, b->buf, got, doff + *done, what);
        if (FAILED(hr)) return hr;
        *done += got;
        ddp_backup_progress(b, got);
    }
    return S_OK;
}

/* copy_range that keeps holes: only the data extents of [soff, soff+len)
 * are copied (garbage collection punches dead records out of containers,
 * and a sparse user file stays sparse), the rest stays a hole in dfd. */
static HRESULT copy_range_sparse(bctx *b, int sfd, uint64_t soff, int dfd, uint64_t doff, uint64_t len,
                                 uint64_t *done, const char *what)
{
    *done = 0;
    struct stat st;
    if (fstat(sfd, &st) != 0) return ddp_fail_errno(errno, "backup: examining %s", what);
    uint64_t size = (uint64_t)st.st_size;
    /* As many blocks as bytes: no hole to keep (most files, every stub). */
    if ((uint64_t)st.st_blocks * 512 >= size) return copy_range(b, sfd, soff, dfd, doff, len, done, what);
    uint64_t end = soff >= size ? soff : (size - soff < len ? size : soff + len);
    uint64_t pos = soff;
    while (pos < end) {
        off_t data = lseek(sfd, (off_t)pos, SEEK_DATA);
        if (data < 0) {
            if (errno == ENXIO) break; /* a hole to the end of the file */
            /* No SEEK_DATA here: copy the rest as it reads. */
            uint64_t got = 0;
            HRESULT hr = copy_range(b, sfd, pos, dfd, doff + (pos - soff), end - pos, &got, what);
            if (FAILED(hr)) return hr;
            if (got < end - pos) end = pos + got;
            break;
        }
        if ((uint64_t)data >= end) break;
        off_t hole = lseek(sfd, data, SEEK_HOLE);
        uint64_t stop = hole < 0 || (uint64_t)hole > end ? end : (uint64_t)hole;
        uint64_t got = 0;
        HRESULT hr = copy_range(b, sfd, (uint64_t)data, dfd, doff + ((uint64_t)data - soff), stop - (uint64_t)data,
                                &got, what);
        if (FAILED(hr)) return hr;
        if (got < stop - (uint64_t)data) {
            end = (uint64_t)data + got; /* shrank while being copied */
            break;
        }
        pos = stop;
    }
    /* The destination is as long as what was read, holes at its end included. */
    struct stat dst;
    if (fstat(dfd, &dst) != 0) return ddp_fail_errno(errno, "backup: examining the copy of %s", what);
    if ((uint64_t)dst.st_size < doff + (end - soff) && ftruncate(dfd, (off_t)(doff + (end - soff))) != 0)
        return ddp_fail_errno(errno, "backup: sizing the copy of %s", what);
    *done = end - soff;
    return S_OK;
}


/* Create a temporary file beside store path "/dir/name" in the backup:
 * *tmp = "/dir/.ddp-tmp.PID.N" (malloc'd; *at calls use tmp + 1). */
static HRESULT create_tmp(bctx *b, const char *path, char **tmp, int *fd)
{
    const char *slash = strrchr(path, '/');
    for (;;) {
        *tmp = ddp_xasprintf("%.*s/.ddp-tmp.%ld.%" PRIu64, (int)(slash - path), path, (long)getpid(),
                             ++b->tmp_counter);
        *fd = openat(b->destfd, *tmp + 1, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (*fd >= 0) return S_OK;
        int err = errno;
        free(*tmp);
        *tmp = NULL;
        if (err != EEXIST) return ddp_fail_errno(err, "backup: creating a file for %s", path);
    }
}

/* No fsync here: the whole backup is made durable by one syncfs() before
 * the manifest is written (see sync_backup_tree), and a backup without its
 * manifest is not a backup. */
static HRESULT finish_tmp(bctx *b, int fd, char *tmp, const char *path, HRESULT hr)
{
    if (close(fd) != 0 && SUCCEEDED(hr)) hr = ddp_fail_errno(errno, "backup: closing %s", path);
    if (SUCCEEDED(hr) && renameat(b->destfd, tmp + 1, b->destfd, path + 1) != 0)
        hr = ddp_fail_errno(errno, "backup: renaming into %s", path);
    if (FAILED(hr)) unlinkat(b->destfd, tmp + 1, 0);
    free(tmp);
    return hr;
}

/* Did the file change since the walk? Then take what it is now. */
void ddp_backup_refresh_entry(bctx *b, ddp_mf_entry *e, const struct stat *st, int sfd)
{
    if ((uint64_t)st->st_size == e->size && st->st_mtim.tv_sec == e->mtime_sec &&
        (uint32_t)st->st_mtim.tv_nsec == e->mtime_nsec && st->st_ctim.tv_sec == e->ctime_sec &&
        (uint32_t)st->st_ctim.tv_nsec == e->ctime_nsec)
        return;
    b->st->changed_during++;
    e->size = (uint64_t)st->st_size;
    entry_attrs(e, st);
    int was = e->is_stub;
    e->is_stub = 0;
    if (e->size == DDP_STUB_SIZE) {
        uint8_t buf[DDP_STUB_SIZE];
        size_t got;
        ddp_stub s;
        if (SUCCEEDED(ddp_pread_upto(sfd, buf, sizeof buf, 0, &got, e->path)) && got == DDP_STUB_SIZE &&
            SUCCEEDED(ddp_stub_decode(buf, got, b->v->id.key, &s)) &&
            memcmp(s.store_id, b->v->id.store_id, DDP_STORE_ID_SIZE) == 0)
            e->is_stub = 1;
        ddp_clear_error();
    }
    if (was != e->is_stub) {
        if (was) b->st->stubs--;
        else b->st->stubs++;
    }
}

static HRESULT dir_copy_file(bctx *b, ddp_mf_entry *e)
{
    int sfd;
    struct stat st;
    HRESULT hr = ddp_open_beneath(b->vfd, e->path + 1, 0, &sfd, &st);
    if (FAILED(hr)) return hr;
    ddp_backup_refresh_entry(b, e, &st, sfd);
    char *tmp;
    int dfd;
    hr = create_tmp(b, e->path, &tmp, &dfd);
    if (FAILED(hr)) { close(sfd); return hr; }
    uint64_t done = 0;
    hr = copy_range_sparse(b, sfd, 0, dfd, 0, e->size, &done, e->path);
    close(sfd);
    if (SUCCEEDED(hr) && done != e->size) {
        /* shrank while being copied: keep what was read, say so */
        b->st->changed_during++;
        e->size = done;
        if (e->is_stub && done != DDP_STUB_SIZE) { e->is_stub = 0; b->st->stubs--; }
    }
    if (SUCCEEDED(hr)) ddp_backup_set_attrs_fd(dfd, e);
    hr = finish_tmp(b, dfd, tmp, e->path, hr);
    if (SUCCEEDED(hr)) {
        if (strncmp(e->path, "/.ddp/", 6) == 0) b->st->metadata_copied++;
        else b->st->files_copied++;
        b->st->bytes_written += done;
    }
    return hr;
}

static HRESULT dir_copy_piece(bctx *b, const ddp_mf_entry *e, const ddp_mf_piece *p)
{
    int sfd;
    struct stat st;
    HRESULT hr = ddp_open_beneath(b->vfd, e->path + 1, 0, &sfd, &st);
    if (FAILED(hr)) return hr;
    char *tmp;
    int dfd;
    hr = create_tmp(b, p->file, &tmp, &dfd);
    if (FAILED(hr)) { close(sfd); return hr; }
    uint64_t done = 0;
    hr = copy_range_sparse(b, sfd, p->offset, dfd, 0, p->length, &done, e->path);
    close(sfd);
    if (SUCCEEDED(hr) && done != p->length)
        hr = ddp_fail(DDP_E_INVALID_STATE, "backup: container %s shrank during the backup", e->path);
    if (SUCCEEDED(hr)) {
        (void)fchmod(dfd, st.st_mode & 07777);
        struct timespec ts[2] = { st.st_atim, st.st_mtim };
        (void)futimens(dfd, ts);
    }
    hr = finish_tmp(b, dfd, tmp, p->file, hr);
    if (SUCCEEDED(hr)) {
        b->st->pieces_copied++;
        b->st->container_bytes += done;
        b->st->bytes_written += done;
    }
    return hr;
}

static void set_dir_attrs(int destfd, const ddp_mf_entry *e)
{
    const char *rel = e->path + 1;
    if (fchownat(destfd, rel, e->uid, e->gid, AT_SYMLINK_NOFOLLOW) != 0) { /* not permitted */ }
    if (e->type == 'D' && fchmodat(destfd, rel, e->mode, 0) != 0) { /* best effort, as the owner above */ }
    struct timespec ts[2] = { { e->mtime_sec, e->mtime_nsec }, { e->mtime_sec, e->mtime_nsec } };
    (void)utimensat(destfd, rel, ts, AT_SYMLINK_NOFOLLOW);
}

static HRESULT write_dir_backup(bctx *b, const char *dest)
{
    HRESULT hr = S_OK;
    for (size_t i = 0; i < b->m.count && SUCCEEDED(hr); i++) {
        ddp_mf_entry *e = &b->m.entries[i];
        switch (e->type) {
        case 'D':
            if (mkdirat(b->destfd, e->path + 1, 0700) != 0)
                hr = ddp_fail_errno(errno, "backup: creating %s/%s", dest, e->path + 1);
            break;
        case 'L':
            if (symlinkat(e->target, b->destfd, e->path + 1) != 0)
                hr = ddp_fail_errno(errno, "backup: creating link %s/%s", dest, e->path + 1);
            else
                set_dir_attrs(b->destfd, e);
            break;
        case 'F':
            if (b->copy_piece[i]) hr = dir_copy_file(b, e);
            break;
        case 'C':
            if (b->copy_piece[i]) hr = dir_copy_piece(b, e, &e->pieces[e->npieces - 1]);
            break;
        }
    }
    if (FAILED(hr)) return hr;
    /* Directories last, deepest first: their mode may forbid writing into them. */
    for (size_t i = b->m.count; i-- > 0;) {
        const ddp_mf_entry *e = &b->m.entries[i];
        if (e->type != 'D') continue;
        set_dir_attrs(b->destfd, e);
    }
    /* Every file and directory written above becomes durable at once, before
     * the manifest that makes the backup a backup. */
    if (syncfs(b->destfd) != 0) return ddp_fail_errno(errno, "backup: syncing %s", dest);
    return S_OK;
}

static HRESULT write_manifest_dir(bctx *b, const char *dest)
{
    if (mkdirat(b->destfd, DDP_MANIFEST_DIR, 0700) != 0 && errno != EEXIST) /* made with the unfinished mark */
        return ddp_fail_errno(errno, "backup: creating %s/%s", dest, DDP_MANIFEST_DIR);
    size_t n;
    char *text = ddp_manifest_encode(&b->m, &n);
    char *path = ddp_path_join(dest, DDP_MANIFEST_PATH);
    HRESULT hr = ddp_write_file_atomic(path, text, n, 0600);
    free(path);
    free(text);
    if (SUCCEEDED(hr)) {
        b->st->bytes_written += n;
        hr = ddp_fsync_dir(dest);
    }
    return hr;
}

/* ---- tar ---- */

/* Where a store path goes in a tar backup (see the file comment). */
static int tar_section(const ddp_mf_entry *e)
{
    const char *p = e->path;
    if (strcmp(p, "/.ddp") == 0 || strcmp(p, "/.ddp/Settings") == 0 || strncmp(p, "/.ddp/Settings/", 15) == 0)
        return 1;
    if (e->type == 'C') {
        int k = container_kind(p);
        return k == DDP_KIND_STREAM ? 3 : k == DDP_KIND_DATA ? 4 : 5;
    }
    static const char cs[] = "/.ddp/ChunkStore";
    if (strcmp(p, cs) == 0) return 2;
    if (strncmp(p, cs, sizeof cs - 1) == 0 && p[sizeof cs - 1] == '/') {
        const char *rest = p + sizeof cs;
        const char *s = strchr(rest, '/');
        if (!s) return 2;                                   /* the store directory */
        if (e->type == 'F' && strcmp(s, "/catalog") == 0) return 2;
        if (e->type == 'D' && strcmp(s, "/Stream") == 0) return 3;
        if (e->type == 'D' && strcmp(s, "/Data") == 0) return 4;
        if (e->type == 'D' && strcmp(s, "/Hotspot") == 0) return 5;
    }
    return 6;
}

static HRESULT tar_fail(struct archive *a, const char *what)
{
    int err = archive_errno(a);
    const char *msg = archive_error_string(a);
    if (err > 0 && err != EILSEQ && err != EINVAL)
        return ddp_fail(ddp_hresult_from_errno(err), "backup: %s: %s", what, msg ? msg : strerror(err));
    return ddp_fail(E_FAIL, "backup: %s: %s", what, msg ? msg : "libarchive error");
}

static HRESULT tar_write_data(bctx *b, struct archive *a, const void *data, size_t n, const char *what)
{
    const uint8_t *p = data;
    while (n > 0) {
        la_ssize_t w = archive_write_data(a, p, n);
        if (w <= 0) return tar_fail(a, what);
        p += w;
        n -= (size_t)w;
        b->st->bytes_written += (uint64_t)w;
        ddp_backup_progress(b, (uint64_t)w);
    }
    return S_OK;
}

/* Stream len bytes of sfd from off into the current member; pad with zeros
 * if the file ends early (*short_by gets how many). */
static HRESULT tar_copy(bctx *b, struct archive *a, int sfd, uint64_t off, uint64_t len, uint64_t *short_by,
                        const char *what)
{
    uint64_t done = 0;
    *short_by = 0;
    while (done < len) {
        size_t want = len - done > COPY_BUF_SIZE ? COPY_BUF_SIZE : (size_t)(len - done);
        size_t got;
        HRESULT hr = ddp_pread_upto(sfd, b->buf, want, off + done, &got, what);
        if (FAILED(hr)) return hr;
        if (got == 0) {
            *short_by = len - done;
            memset(b->buf, 0, COPY_BUF_SIZE);
            while (done < len) {
                size_t z = len - done > COPY_BUF_SIZE ? COPY_BUF_SIZE : (size_t)(len - done);
                hr = tar_write_data(b, a, b->buf, z, what);
                if (FAILED(hr)) return hr;
                done += z;
            }
            break;
        }
        hr = tar_write_data(b, a, b->buf, got, what);
        if (FAILED(hr)) return hr;
        done += got;
    }
    return S_OK;
}

/* Give a member the sparse map of sfd's first size bytes when they hold a
 * hole (records garbage collection punched out, a sparse user file): the
 * pax writer then stores only the data (GNU sparse 1.0), and every reader
 * (libarchive, GNU tar) gives the holes back as zeros. */
static void tar_add_sparse_map(struct archive_entry *ae, int sfd, const struct stat *st, uint64_t size)
{
    if ((uint64_t)st->st_blocks * 512 >= (uint64_t)st->st_size) return; /* no hole: nothing to probe */
    off_t first_hole = lseek(sfd, 0, SEEK_HOLE);
    if (first_hole < 0 || (uint64_t)first_hole >= size) return; /* no hole, or no SEEK_HOLE */
    uint64_t pos = 0;
    int any = 0;
    while (pos < size) {
        off_t data = lseek(sfd, (off_t)pos, SEEK_DATA);
        if (data < 0 || (uint64_t)data >= size) break;
        off_t hole = lseek(sfd, data, SEEK_HOLE);
        uint64_t stop = hole < 0 || (uint64_t)hole > size ? size : (uint64_t)hole;
        archive_entry_sparse_add_entry(ae, (la_int64_t)data, (la_int64_t)(stop - (uint64_t)data));
        any = 1;
        pos = stop;
    }
    if (!any) archive_entry_sparse_add_entry(ae, 0, 0); /* all hole */
}

typedef struct tar_slot {
    size_t entry;
    int section;
} tar_slot;

static int cmp_slot(const void *a, const void *b)
{
    const tar_slot *x = a, *y = b;
    if (x->section != y->section) return x->section < y->section ? -1 : 1;
    return x->entry < y->entry ? -1 : x->entry > y->entry;
}

static HRESULT write_tar_backup(bctx *b, int fd, const char *dest)
{
    size_t n = b->m.count;
    tar_slot *slots = ddp_xmalloc((n ? n : 1) * sizeof *slots);
    for (size_t i = 0; i < n; i++) {
        slots[i].entry = i;
        slots[i].section = tar_section(&b->m.entries[i]);
    }
    qsort(slots, n, sizeof *slots, cmp_slot);
    /* Number the members; an empty container (no piece) has none. */
    int64_t next = 1;
    for (size_t i = 0; i < n; i++) {
        ddp_mf_entry *e = &b->m.entries[slots[i].entry];
        if (e->type == 'C') {
            for (uint32_t j = 0; j < e->npieces; j++) e->pieces[j].member = next++;
        } else {
            e->member = next++;
        }
    }
    size_t mlen;
    char *text = ddp_manifest_encode(&b->m, &mlen);

    HRESULT hr = S_OK;
    struct archive *a = archive_write_new();
    struct archive_entry *ae = archive_entry_new();
    if (!a || !ae) abort();
    /* A tree with a non-ASCII name: hdrcharset=BINARY, so names are stored
     * as the bytes they are on disk whatever the locale (libarchive would
     * translate them to UTF-8 from the locale's character set, which fails
     * for every non-ASCII name under LANG=C and for names that are not
     * UTF-8). GNU tar extracts such an archive right, with a warning about
     * the keyword; an all-ASCII tree gets plain headers. */
    int binary_names = 0;
    for (size_t i = 0; i < n && !binary_names; i++)
        for (const unsigned char *c = (const unsigned char *)b->m.entries[i].path; *c; c++)
            if (*c >= 0x80) {
                binary_names = 1;
                break;
            }
    if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
        (binary_names && archive_write_set_format_option(a, "pax", "hdrcharset", "BINARY") != ARCHIVE_OK) ||
        archive_write_set_bytes_per_block(a, 65536) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
        archive_write_open_fd(a, fd) != ARCHIVE_OK) {
        hr = tar_fail(a, dest);
        goto out;
    }

    archive_entry_set_pathname(ae, DDP_MANIFEST_PATH);
    archive_entry_set_filetype(ae, AE_IFREG);
    archive_entry_set_perm(ae, 0600);
    archive_entry_set_size(ae, (la_int64_t)mlen);
    archive_entry_set_uid(ae, getuid());
    archive_entry_set_gid(ae, getgid());
    archive_entry_set_mtime(ae, (time_t)b->m.time, 0);
    if (archive_write_header(a, ae) != ARCHIVE_OK) { hr = tar_fail(a, dest); goto out; }
    hr = tar_write_data(b, a, text, mlen, DDP_MANIFEST_PATH);

    for (size_t i = 0; i < n && SUCCEEDED(hr); i++) {
        ddp_mf_entry *e = &b->m.entries[slots[i].entry];
        if (e->type == 'C' && e->npieces == 0) continue;
        archive_entry_clear(ae);
        archive_entry_set_pathname(ae, e->path + 1);
        archive_entry_set_uid(ae, e->uid);
        archive_entry_set_gid(ae, e->gid);
        archive_entry_set_mtime(ae, (time_t)e->mtime_sec, (long)e->mtime_nsec);
        int sfd = -1;
        struct stat st;
        if (e->type == 'D') {
            archive_entry_set_filetype(ae, AE_IFDIR);
            archive_entry_set_perm(ae, e->mode);
            archive_entry_set_size(ae, 0);
        } else if (e->type == 'L') {
            archive_entry_set_filetype(ae, AE_IFLNK);
            archive_entry_set_perm(ae, 0777);
            archive_entry_set_symlink(ae, e->target);
            archive_entry_set_size(ae, 0);
        } else {
            hr = ddp_open_beneath(b->vfd, e->path + 1, 0, &sfd, &st);
            if (FAILED(hr)) break;
            archive_entry_set_filetype(ae, AE_IFREG);
            if (e->type == 'C') {
                archive_entry_set_perm(ae, st.st_mode & 07777);
                archive_entry_set_uid(ae, st.st_uid);
                archive_entry_set_gid(ae, st.st_gid);
                archive_entry_set_mtime(ae, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
                archive_entry_set_size(ae, (la_int64_t)e->size);
            } else {
                archive_entry_set_perm(ae, e->mode);
                archive_entry_set_size(ae, (la_int64_t)e->size);
            }
            tar_add_sparse_map(ae, sfd, &st, e->size);
        }
        if (archive_write_header(a, ae) != ARCHIVE_OK) {
            hr = tar_fail(a, e->path);
        } else if (sfd >= 0) {
            uint64_t short_by = 0;
            hr = tar_copy(b, a, sfd, 0, e->size, &short_by, e->path);
            if (SUCCEEDED(hr) && e->type == 'C') {
                if (short_by) hr = ddp_fail(DDP_E_INVALID_STATE, "backup: container %s shrank during the backup", e->path);
                b->st->pieces_copied++;
                b->st->container_bytes += e->size;
            } else if (SUCCEEDED(hr)) {
                if (strncmp(e->path, "/.ddp/", 6) == 0) b->st->metadata_copied++;
                else b->st->files_copied++;
                if (short_by || (uint64_t)st.st_size != e->size || st.st_mtim.tv_sec != e->mtime_sec ||
                    (uint32_t)st.st_mtim.tv_nsec != e->mtime_nsec)
                    b->st->changed_during++;
            }
        }
        if (sfd >= 0) close(sfd);
        if (SUCCEEDED(hr) && archive_write_finish_entry(a) != ARCHIVE_OK) hr = tar_fail(a, e->path);
    }
    if (SUCCEEDED(hr) && archive_write_close(a) != ARCHIVE_OK) hr = tar_fail(a, dest);
out:
    archive_entry_free(ae);
    archive_write_free(a);
    free(text);
    free(slots);
    return hr;
}

/* ---- the whole job ---- */

/* Absolute form of a path that may not exist yet (its parent must). */
static char *abs_path_of(const char *p)
{
    char *r = realpath(p, NULL);
    if (r) return r;
    char *c1 = ddp_strdup(p), *c2 = ddp_strdup(p);
    char *parent = realpath(dirname(c1), NULL);
    char *out = parent ? ddp_path_join(parent, basename(c2)) : NULL;
    free(parent);
    free(c1);
    free(c2);
    return out;
}

/* How the new backup names the previous one: its name if both sit in the
 * same directory, else its absolute path. */
static char *previous_ref(const char *dest_abs, const char *prev_abs)
{
    char *a = ddp_strdup(dest_abs), *b = ddp_strdup(prev_abs), *c = ddp_strdup(prev_abs);
    char *out = strcmp(dirname(a), dirname(b)) == 0 ? ddp_strdup(basename(c)) : ddp_strdup(prev_abs);
    free(a);
    free(b);
    free(c);
    return out;
}

HRESULT ddp_backup(const char *volume_root, const char *dest, const ddp_backup_options *opt,
                   ddp_backup_stats *st_out)
{
    ddp_backup_stats st_local;
    ddp_backup_stats *st = st_out ? st_out : &st_local;
    memset(st, 0, sizeof *st);
    if (!volume_root || !dest) return E_POINTER;
    ddp_backup_options defaults = { DDP_BACKUP_DIR, NULL, NULL, NULL };
    if (!opt) opt = &defaults;
    if (opt->format != DDP_BACKUP_DIR && opt->format != DDP_BACKUP_TAR)
        return ddp_fail(E_INVALIDARG, "backup: unknown format %d", opt->format);
    if (opt->format == DDP_BACKUP_TAR && opt->incremental_from)
        return ddp_fail(E_INVALIDARG, "backup: incremental backups are directories (not --tar)");
    double t0 = ddp_now();
    int s3 = ddp_s3_is_url(dest);
    if (s3 && opt->format == DDP_BACKUP_TAR)
        return ddp_fail(E_INVALIDARG, "backup: a backup to S3 is a set of objects (not --tar)");
    ddp_backup_s3 *s3w = NULL;

    bctx b;
    memset(&b, 0, sizeof b);
    b.vfd = b.destfd = -1;
    b.st = st;
    ddp_backup_chain chain;
    memset(&chain, 0, sizeof chain);
    int have_chain = 0, dest_created = 0, dest_opened = 0, tar_fd = -1;
    char *vroot = NULL, *dest_abs = NULL, *tar_tmp = NULL;

    HRESULT hr = ddp_volume_open(volume_root, DDP_OPEN_JOB, &b.v);
    if (FAILED(hr)) return hr;

    vroot = realpath(b.v->root, NULL);
    if (s3) {
        if (!vroot) { hr = ddp_fail_errno(errno, "backup: resolving %s", b.v->root); goto out; }
        hr = ddp_backup_s3_begin(dest, opt->incremental_from, &s3w);
        if (FAILED(hr)) goto out;
        b.prev = ddp_backup_s3_prev(s3w);
        if (b.prev && memcmp(b.prev->store_id, b.v->id.store_id, DDP_STORE_ID_SIZE) != 0) {
            hr = ddp_fail(DDP_E_INVALID_DATA, "%s is a backup of another volume (another store id)", opt->incremental_from);
            goto out;
        }
        if (b.prev && b.prev->level + 1 > DDP_BACKUP_MAX_LEVEL) {
            hr = ddp_fail(DDP_E_INVALID_STATE, "%s: the chain is too long; make a full backup", opt->incremental_from);
            goto out;
        }
        goto header;
    }
    dest_abs = abs_path_of(dest);
    if (!vroot || !dest_abs) { hr = ddp_fail_errno(errno, "backup: resolving %s", vroot ? dest : b.v->root); goto out; }
    size_t vl = strlen(vroot);
    if (strcmp(dest_abs, vroot) == 0 || (strncmp(dest_abs, vroot, vl) == 0 && (dest_abs[vl] == '/' || vl == 1))) {
        hr = ddp_fail(E_INVALIDARG, "backup: the destination %s is inside the volume %s", dest, vroot);
        goto out;
    }

    if (opt->incremental_from) {
        hr = ddp_backup_chain_open(opt->incremental_from, &chain);
        if (hr == DDP_E_NOT_FOUND)
            hr = ddp_fail(DDP_E_NOT_FOUND, "%s is not a ddp backup (no %s)", opt->incremental_from, DDP_MANIFEST_PATH);
        if (FAILED(hr)) goto out;
        have_chain = 1;
        if (memcmp(chain.newest.store_id, b.v->id.store_id, DDP_STORE_ID_SIZE) != 0) {
            hr = ddp_fail(DDP_E_INVALID_DATA, "%s is a backup of another volume (another store id)", opt->incremental_from);
            goto out;
        }
        if (chain.newest.level + 1 > DDP_BACKUP_MAX_LEVEL) {
            hr = ddp_fail(DDP_E_INVALID_STATE, "%s: the chain is too long; make a full backup", opt->incremental_from);
            goto out;
        }
        b.prev = &chain.newest;
    }

    /* The destination. */
    if (opt->format == DDP_BACKUP_DIR) {
        /* empty, new, or an unfinished backup's leftover (backupdest.c) */
        hr = ddp_backup_dest_open_dir(dest, &dest_created, &b.destfd);
        if (FAILED(hr)) goto out;
        dest_opened = 1;
        free(dest_abs);
        dest_abs = realpath(dest, NULL);
        if (!dest_abs) { hr = ddp_fail_errno(errno, "backup: resolving %s", dest); goto out; }
    } else {
        struct stat dst;
        if (stat(dest, &dst) == 0 && (!S_ISREG(dst.st_mode) || dst.st_size > 0)) {
            hr = ddp_fail(HRESULT_FROM_WIN32(ERROR_FILE_EXISTS), "backup destination %s exists and is not empty", dest);
            goto out;
        }
        /* DEST.tmp.PID, flock()ed; killed runs' leftovers removed (backupdest.c) */
        hr = ddp_backup_tar_tmp_open(dest, &tar_tmp, &tar_fd);
        if (FAILED(hr)) goto out;
    }

    /* The manifest header. */
header:
    b.m.version = DDP_MANIFEST_VERSION;
    if (ddp_random_bytes(b.m.id, sizeof b.m.id) != 0) { hr = ddp_fail(E_FAIL, "backup: no random bytes"); goto out; }
    b.m.format = opt->format == DDP_BACKUP_TAR ? DDP_BACKUP_FMT_TAR : DDP_BACKUP_FMT_DIR;
    b.m.source = ddp_strdup(vroot);
    b.m.time = (int64_t)time(NULL);
    memcpy(b.m.store_id, b.v->id.store_id, DDP_STORE_ID_SIZE);
    if (b.prev && s3w) {
        b.m.level = b.prev->level + 1;
        b.m.previous = ddp_backup_s3_previous_ref(s3w);
        memcpy(b.m.previous_id, b.prev->id, DDP_BACKUP_ID_SIZE);
    } else if (b.prev) {
        b.m.level = b.prev->level + 1;
        char *prev_abs = realpath(opt->incremental_from, NULL);
        if (!prev_abs) { hr = ddp_fail_errno(errno, "backup: resolving %s", opt->incremental_from); goto out; }
        b.m.previous = previous_ref(dest_abs, prev_abs);
        free(prev_abs);
        memcpy(b.m.previous_id, b.prev->id, DDP_BACKUP_ID_SIZE);
    }
    st->level = b.m.level;
    b.buf = ddp_xmalloc(COPY_BUF_SIZE);

    /* Walk the volume, under the job lock: container lengths are those now. */
    b.vfd = open(vroot, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (b.vfd < 0) { hr = ddp_fail_errno(errno, "backup: opening %s", vroot); goto out; }
    hr = walk_dir(&b, b.vfd, "");
    if (FAILED(hr)) goto out;
    b.opt = opt;
    if (!opt->incremental_from)
        for (size_t i = 0; i < b.m.count; i++)
            if (b.m.entries[i].type == 'F' || b.m.entries[i].type == 'C') b.total += b.m.entries[i].size;
    ddp_backup_progress(&b, 0);

    if (s3w) {
        hr = ddp_backup_s3_write(s3w, &b);
    } else if (opt->format == DDP_BACKUP_DIR) {
        hr = write_dir_backup(&b, dest);
        if (SUCCEEDED(hr)) hr = ddp_manifest_index(&b.m, dest);
        if (SUCCEEDED(hr)) hr = write_manifest_dir(&b, dest);
        if (SUCCEEDED(hr)) hr = ddp_backup_dest_finished(b.destfd, dest);
    } else {
        hr = write_tar_backup(&b, tar_fd, dest);
        if (SUCCEEDED(hr)) hr = ddp_fsync_fd(tar_fd, tar_tmp);
        if (close(tar_fd) != 0 && SUCCEEDED(hr)) hr = ddp_fail_errno(errno, "backup: closing %s", tar_tmp);
        tar_fd = -1;
        if (SUCCEEDED(hr) && rename(tar_tmp, dest) != 0) hr = ddp_fail_errno(errno, "backup: renaming to %s", dest);
        if (SUCCEEDED(hr)) hr = ddp_fsync_parent(dest);
        if (SUCCEEDED(hr)) { free(tar_tmp); tar_tmp = NULL; }
    }

out:
    if (tar_fd >= 0) close(tar_fd);
    if (tar_tmp) { unlink(tar_tmp); free(tar_tmp); }
    if (b.vfd >= 0) close(b.vfd);
    /* A failed backup leaves nothing: what it wrote in DEST is removed (and
     * DEST when it made it). A killed one leaves DEST marked unfinished,
     * which the next backup to DEST takes over. */
    if (dest_opened && FAILED(hr)) ddp_backup_dest_discard(b.destfd, dest, dest_created);
    if (b.destfd >= 0) close(b.destfd);
    if (have_chain) ddp_backup_chain_close(&chain);
    ddp_backup_s3_end(s3w);
    ddp_manifest_free(&b.m);
    free(b.copy_piece);
    free(b.buf);
    free(vroot);
    free(dest_abs);
    if (b.v) {
        /* keep the detail of a failure across the close */
        char detail[1024];
        snprintf(detail, sizeof detail, "%s", ddp_error_detail());
        ddp_volume_close(b.v);
        if (FAILED(hr)) ddp_fail(hr, "%s", detail);
    }
    st->seconds = ddp_now() - t0;
    return hr;
}

