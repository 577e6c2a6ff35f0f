/*
 * extract.c: the backup application's half of a selective restore
 * (ddp_backup_extract): copy the stubs (or plain files, directories,
 * symlinks) of the requested paths out of a directory, incremental or tar
 * backup, with their metadata, before RestoreFiles is called on them. Paths
 * are normalized and checked (relative, no ".."), files are created beside
 * their final name and renamed, and the target file system is synced once.
 */
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
#include "backup/tarreader.h"
#include "backup/extract_internal.h"
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

/* ===================================================== restore, step 1 */

HRESULT ddp_backup_normalize_relpath(const char *in, char **out)
{
    *out = NULL;
    if (!in || !*in) return ddp_fail(E_INVALIDARG, "empty path");
    if (in[0] == '/') return ddp_fail(E_INVALIDARG, "%s: give the path relative to the volume root", in);
    size_t n = strlen(in);
    if (n > PATH_MAX) return ddp_fail(E_INVALIDARG, "path too long");
    char *buf = ddp_xmalloc(n + 1);
    size_t k = 0;
    const char *p = in;
    while (*p) {
        const char *s = strchr(p, '/');
        size_t len = s ? (size_t)(s - p) : strlen(p);
        if (len == 2 && p[0] == '.' && p[1] == '.') {
            free(buf);
            return ddp_fail(E_INVALIDARG, "%s: '..' is not allowed", in);
        }
        if (len > 0 && !(len == 1 && p[0] == '.')) {
            if (k) buf[k++] = '/';
            memcpy(buf + k, p, len);
            k += len;
        }
        p += len;
        if (*p == '/') p++;
    }
    buf[k] = '\0';
    if (k == 0) { free(buf); return ddp_fail(E_INVALIDARG, "%s: names no file", in); }
    if (strcmp(buf, DDP_MANIFEST_DIR) == 0 || strncmp(buf, DDP_MANIFEST_DIR "/", sizeof DDP_MANIFEST_DIR) == 0) {
        free(buf);
        return ddp_fail(E_INVALIDARG, "%s: the backup's own manifest is not a volume file", in);
    }
    *out = buf;
    return S_OK;
}

/* Where the extracted bytes come from. */
typedef struct xsource {
    int fd;                       /* a file of a directory backup, or -1 */
    ddp_tar_reader *tar;          /* or the tar reader, at the member */
    ddp_extract_read_fn fn;       /* or a function (extract_s3.c) */
    void *ctx;
} xsource;

static HRESULT xs_read(xsource *s, void *buf, size_t n, uint64_t off, size_t *got, const char *what)
{
    if (s->fn) return s->fn(s->ctx, buf, n, off, got, what);
    if (s->fd >= 0) return ddp_pread_upto(s->fd, buf, n, off, got, what);
    return ddp_tar_reader_read(s->tar, buf, n, got);
}

/* Make the parent directories of dest_dir/rel (mode 0755). */
static HRESULT make_parents(const char *full)
{
    char *c = ddp_strdup(full);
    char *dir = dirname(c);
    HRESULT hr = ddp_mkdir_p(dir, 0755);
    free(c);
    return hr;
}

static void set_attrs_path(const char *path, const ddp_mf_entry *e, int is_link)
{
    if (lchown(path, e->uid, e->gid) != 0) { /* not permitted */ }
    if (!is_link) (void)chmod(path, e->mode);
    struct timespec ts[2] = { { e->mtime_sec, e->mtime_nsec }, { e->mtime_sec, e->mtime_nsec } };
    (void)utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW);
}

/* Write a file's bytes to full (atomically), with e's metadata. */
static HRESULT extract_file(const char *full, const ddp_mf_entry *e, xsource *src, uint8_t *buf)
{
    HRESULT hr = make_parents(full);
    if (FAILED(hr)) return hr;
    char *tmp = ddp_xasprintf("%s.ddp-restore.%ld", full, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        hr = ddp_fail_errno(errno, "creating %s", tmp);
        free(tmp);
        return hr;
    }
    uint64_t off = 0;
    while (off < e->size && SUCCEEDED(hr)) {
        size_t want = e->size - off > COPY_BUF_SIZE ? COPY_BUF_SIZE : (size_t)(e->size - off);
        size_t got = 0;
        hr = xs_read(src, buf, want, off, &got, e->path);
        if (SUCCEEDED(hr) && got == 0)
            hr = ddp_fail(DDP_E_FILE_CORRUPT, "backup: %s is shorter (%" PRIu64 " bytes) than its manifest says (%" PRIu64 ")",
                          e->path, off, e->size);
        if (SUCCEEDED(hr)) hr = ddp_write_all(fd, buf, got, full);
        off += got;
    }
    if (SUCCEEDED(hr)) ddp_backup_set_attrs_fd(fd, e);
    /* No fsync per file: ddp_backup_extract() syncs the target file system
     * once, after every file is in place (one syncfs instead of thousands). */
    if (close(fd) != 0 && SUCCEEDED(hr)) hr = ddp_fail_errno(errno, "closing %s", full);
    if (SUCCEEDED(hr) && rename(tmp, full) != 0) hr = ddp_fail_errno(errno, "replacing %s", full);
    if (FAILED(hr)) unlink(tmp);
    free(tmp);
    return hr;
}

static HRESULT extract_dir(const char *full, const ddp_mf_entry *e)
{
    HRESULT hr = ddp_mkdir_p(full, 0755);
    if (FAILED(hr)) return hr;
    struct stat st;
    if (lstat(full, &st) != 0 || !S_ISDIR(st.st_mode))
        return ddp_fail(HRESULT_FROM_WIN32(ERROR_FILE_EXISTS), "%s exists and is not a directory", full);
    set_attrs_path(full, e, 0);
    return S_OK;
}

static HRESULT extract_link(const char *full, const ddp_mf_entry *e)
{
    HRESULT hr = make_parents(full);
    if (FAILED(hr)) return hr;
    char *tmp = ddp_xasprintf("%s.ddp-restore.%ld", full, (long)getpid());
    unlink(tmp);
    if (symlink(e->target, tmp) != 0) hr = ddp_fail_errno(errno, "creating link %s", full);
    else if (rename(tmp, full) != 0) {
        hr = ddp_fail_errno(errno, "replacing %s", full);
        unlink(tmp);
    } else {
        set_attrs_path(full, e, 1);
    }
    free(tmp);
    return hr;
}

static int item_kind(const ddp_mf_entry *e)
{
    switch (e->type) {
    case 'D': return DDP_ITEM_DIR;
    case 'L': return DDP_ITEM_SYMLINK;
    case 'F': return e->is_stub ? DDP_ITEM_STUB : DDP_ITEM_FILE;
    default: return DDP_ITEM_MISSING;
    }
}

/* A directory that is a copy of a volume without a manifest (cp -a, rsync):
 * take what is there, by its own metadata. */
static HRESULT extract_plain(int rootfd, const char *rel, const char *full, ddp_backup_item *it, uint8_t *buf)
{
    char *c = ddp_strdup(rel);
    char *slash = strrchr(c, '/');
    int pfd = rootfd;
    const char *name = c;
    HRESULT hr = S_OK;
    if (slash) {
        *slash = '\0';
        name = slash + 1;
        struct stat pst;
        hr = ddp_open_beneath(rootfd, c, 1, &pfd, &pst);
        if (SUCCEEDED(hr) && !S_ISDIR(pst.st_mode)) {
            close(pfd);
            pfd = rootfd;
            hr = HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND);
        }
    }
    struct stat st;
    if (SUCCEEDED(hr) && fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) hr = ddp_hresult_from_errno(errno);
    if (FAILED(hr)) {
        it->hr = ddp_fail(DDP_E_NOT_FOUND, "%s: not in the backup", rel);
        goto out;
    }
    ddp_mf_entry e;
    memset(&e, 0, sizeof e);
    e.path = (char *)rel;
    e.mode = st.st_mode & 07777;
    e.uid = st.st_uid;
    e.gid = st.st_gid;
    e.mtime_sec = st.st_mtim.tv_sec;
    e.mtime_nsec = (uint32_t)st.st_mtim.tv_nsec;
    e.size = (uint64_t)st.st_size;
    if (S_ISDIR(st.st_mode)) {
        it->kind = DDP_ITEM_DIR;
        it->hr = extract_dir(full, &e);
    } else if (S_ISLNK(st.st_mode)) {
        char target[PATH_MAX + 1];
        ssize_t k = readlinkat(pfd, name, target, PATH_MAX);
        it->kind = DDP_ITEM_SYMLINK;
        if (k <= 0) it->hr = ddp_fail_errno(errno, "reading link %s", rel);
        else {
            target[k] = '\0';
            e.target = target;
            it->hr = extract_link(full, &e);
        }
    } else if (S_ISREG(st.st_mode)) {
        xsource src = { -1, NULL, NULL, NULL };
        it->hr = ddp_open_beneath(pfd, name, 0, &src.fd, NULL);
        if (SUCCEEDED(it->hr)) {
            uint8_t head[DDP_STUB_SIZE];
            size_t got = 0;
            it->kind = DDP_ITEM_FILE;
            if (st.st_size == DDP_STUB_SIZE &&
                SUCCEEDED(ddp_pread_upto(src.fd, head, sizeof head, 0, &got, rel)) &&
                ddp_stub_looks_like(head, got))
                it->kind = DDP_ITEM_STUB;
            it->size = e.size;
            it->hr = extract_file(full, &e, &src, buf);
            close(src.fd);
        }
    } else {
        it->hr = ddp_fail(DDP_E_NOT_FOUND, "%s: not a file, directory or link", rel);
    }
out:
    if (pfd != rootfd) close(pfd);
    free(c);
    return S_OK;
}

typedef struct want {
    int64_t member;
    size_t item;
} want;

static int cmp_want(const void *a, const void *b)
{
    const want *x = a, *y = b;
    if (x->member != y->member) return x->member < y->member ? -1 : 1;
    return x->item < y->item ? -1 : x->item > y->item;
}

static HRESULT extract_tar(const char *archive, size_t n, char *const *relpaths, const char *dest_dir,
                           ddp_backup_item *items, uint8_t *buf)
{
    ddp_tar_reader *r;
    HRESULT hr = ddp_tar_reader_open(archive, &r);
    if (FAILED(hr)) return hr;
    const ddp_manifest *m = ddp_tar_reader_manifest(r);
    want *w = ddp_xmalloc((n ? n : 1) * sizeof *w);
    size_t nw = 0;
    for (size_t i = 0; i < n; i++) {
        char *sp = ddp_xasprintf("/%s", relpaths[i]);
        char *full = ddp_path_join(dest_dir, relpaths[i]);
        const ddp_mf_entry *e = ddp_manifest_find(m, sp);
        if (!e || e->type == 'C') {
            items[i].hr = ddp_fail(DDP_E_NOT_FOUND, "%s: not in the backup", relpaths[i]);
        } else {
            items[i].kind = item_kind(e);
            items[i].size = e->size;
            if (e->type == 'D') items[i].hr = extract_dir(full, e);
            else if (e->type == 'L') items[i].hr = extract_link(full, e);
            else w[nw++] = (want){ e->member, i };
        }
        free(full);
        free(sp);
    }
    qsort(w, nw, sizeof *w, cmp_want);
    for (size_t k = 0; k < nw; k++) {
        size_t i = w[k].item;
        char *full = ddp_path_join(dest_dir, relpaths[i]);
        const ddp_mf_entry *e = &m->entries[m->members[w[k].member].entry];
        if (k > 0 && w[k - 1].member == w[k].member) {
            items[i].hr = items[w[k - 1].item].hr; /* the same file named twice */
        } else {
            items[i].hr = ddp_tar_reader_goto(r, (size_t)w[k].member);
            if (SUCCEEDED(items[i].hr)) {
                xsource src = { -1, r, NULL, NULL };
                items[i].hr = extract_file(full, e, &src, buf);
            }
            /* a damaged archive stops everything after it */
            if (FAILED(items[i].hr) && ddp_tar_reader_broken(r)) {
                for (size_t j = k + 1; j < nw; j++) items[w[j].item].hr = items[i].hr;
                free(full);
                break;
            }
        }
        free(full);
    }
    free(w);
    ddp_tar_reader_close(r);
    return S_OK;
}

/* Make what extraction wrote durable: one syncfs of the target's file
 * system. A failure turns every item written so far into that failure. */
static void sync_target(const char *dest_dir, size_t n, ddp_backup_item *items)
{
    int fd = open(dest_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return; /* nothing was written there */
    if (syncfs(fd) != 0) {
        HRESULT hr = ddp_fail_errno(errno, "syncing %s", dest_dir);
        for (size_t i = 0; i < n; i++)
            if (SUCCEEDED(items[i].hr)) items[i].hr = hr;
    }
    close(fd);
}

static HRESULT extract_any(const char *backup, size_t n, char *const *relpaths, const char *dest_dir,
                           ddp_backup_item *items);

HRESULT ddp_extract_file_from(const char *full, const ddp_mf_entry *e, ddp_extract_read_fn fn, void *ctx, uint8_t *buf)
{
    xsource src = { -1, NULL, fn, ctx };
    return extract_file(full, e, &src, buf);
}

HRESULT ddp_extract_dir(const char *full, const ddp_mf_entry *e) { return extract_dir(full, e); }
HRESULT ddp_extract_link(const char *full, const ddp_mf_entry *e) { return extract_link(full, e); }
int ddp_extract_item_kind(const ddp_mf_entry *e) { return item_kind(e); }

HRESULT ddp_backup_extract(const char *backup, size_t n, char *const *relpaths, const char *dest_dir,
                           ddp_backup_item *items)
{
    HRESULT hr = extract_any(backup, n, relpaths, dest_dir, items);
    if (SUCCEEDED(hr) && n > 0) sync_target(dest_dir, n, items);
    return hr;
}

static HRESULT extract_any(const char *backup, size_t n, char *const *relpaths, const char *dest_dir,
                           ddp_backup_item *items)
{
    if (!backup || !dest_dir || (n && (!relpaths || !items))) return E_POINTER;
    for (size_t i = 0; i < n; i++) items[i] = (ddp_backup_item){ DDP_E_NOT_FOUND, DDP_ITEM_MISSING, 0 };
    if (ddp_s3_is_url(backup)) return ddp_extract_s3(backup, n, relpaths, dest_dir, items);
    struct stat st;
    if (stat(backup, &st) != 0) return ddp_fail_errno(errno, "backup %s", backup);
    uint8_t *buf = ddp_xmalloc(COPY_BUF_SIZE);
    HRESULT hr = S_OK;
    if (S_ISREG(st.st_mode)) {
        hr = extract_tar(backup, n, relpaths, dest_dir, items, buf);
        free(buf);
        return hr;
    }
    if (!S_ISDIR(st.st_mode)) {
        free(buf);
        return ddp_fail(E_INVALIDARG, "backup %s: neither a directory nor an archive file", backup);
    }
    ddp_backup_chain chain;
    hr = ddp_backup_chain_open(backup, &chain);
    if (hr == DDP_E_NOT_FOUND) {
        /* no manifest: a plain copy of a volume */
        ddp_clear_error();
        int rootfd = open(backup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (rootfd < 0) {
            free(buf);
            return ddp_fail_errno(errno, "backup %s", backup);
        }
        for (size_t i = 0; i < n; i++) {
            char *full = ddp_path_join(dest_dir, relpaths[i]);
            extract_plain(rootfd, relpaths[i], full, &items[i], buf);
            free(full);
        }
        close(rootfd);
        free(buf);
        return S_OK;
    }
    if (FAILED(hr)) {
        free(buf);
        return hr;
    }
    for (size_t i = 0; i < n; i++) {
        char *sp = ddp_xasprintf("/%s", relpaths[i]);
        char *full = ddp_path_join(dest_dir, relpaths[i]);
        const ddp_mf_entry *e = ddp_manifest_find(&chain.newest, sp);
        if (!e || e->type == 'C') {
            items[i].hr = ddp_fail(DDP_E_NOT_FOUND, "%s: not in the backup", relpaths[i]);
        } else {
            items[i].kind = item_kind(e);
            items[i].size = e->size;
            if (e->type == 'D') items[i].hr = extract_dir(full, e);
            else if (e->type == 'L') items[i].hr = extract_link(full, e);
            else {
                xsource src = { -1, NULL, NULL, NULL };
                struct stat fst;
                items[i].hr = ddp_open_beneath(chain.dirfds[e->level], sp + 1, 0, &src.fd, &fst);
                if (items[i].hr == HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND) ||
                    items[i].hr == HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND))
                    items[i].hr = ddp_fail(DDP_E_NOT_FOUND, "%s: listed in the manifest but missing from %s",
                                           relpaths[i], chain.dirs[e->level]);
                if (SUCCEEDED(items[i].hr)) {
                    if ((uint64_t)fst.st_size != e->size)
                        items[i].hr = ddp_fail(DDP_E_FILE_CORRUPT, "%s: %lld bytes in the backup, %" PRIu64 " in its manifest",
                                               relpaths[i], (long long)fst.st_size, e->size);
                    else
                        items[i].hr = extract_file(full, e, &src, buf);
                    close(src.fd);
                }
            }
        }
        free(full);
        free(sp);
    }
    ddp_backup_chain_close(&chain);
    free(buf);
    return S_OK;
}
