/* SPDX-License-Identifier: MIT */
/*
 * extract.c: the backup application's half of a selective restore
 * (ddp_backup_extract): copy the requested paths (stubs, plain files,
 * directories with everything below them, symlinks) out of a directory,
 * incremental, tar or S3 backup (the bytes of an S3 one fetched by
 * extract_s3.c, many at a time) into a target directory, with their metadata,
 * before RestoreFiles is called on the stubs. docs/SECURITY.md, restore side.
 *
 * A backup is hostile input and the target is often a live tree that
 * untrusted users write, so:
 *  - every path is reached beneath the held target directory with
 *    lib/base/safepath.h (openat2 RESOLVE_BENEATH | NO_SYMLINKS |
 *    NO_MAGICLINKS | NO_XDEV, or its O_NOFOLLOW walk): a symbolic link or a
 *    mount point on the way, planted by a user or restored from the backup a
 *    moment before, is refused (ERROR_ACCESS_DENIED), never followed;
 *  - a link entry is created as a symlink (symlinkat) and never traversed;
 *    an entry the manifest lists below a link or a file is refused
 *    (DDP_E_INVALID_DATA); the manifest itself refuses absolute paths,
 *    "..", and paths listed twice;
 *  - data is written in a private staging directory in the target
 *    (".ddp-restore.XXXXXX", mode 0700, flock()ed while in use), never
 *    beside a user's file under a name a user could guess, and renamed into
 *    place from there (renameat between held descriptors): a path is
 *    restored whole or left as it was, also on a full disk; a staging
 *    directory a killed restore left is removed by the next one;
 *  - an existing file is refused by default (enum ddp_existing);
 *  - all-zero blocks are not written (base/sparse.h): holes stay holes.
 * Files are written by worker threads (extract_pool.c), each in its own
 * subdirectory of the staging directory; directories, links and the checks
 * stay on the reading thread, in path order. Nothing is moved into place
 * before one syncfs has made every staged file durable
 * (ddp_backup_extract_finish, after RestoreFiles rewrote the stubs); the
 * renames are synced once more at the end (ddp_backup_extract_close).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backup/backup.h"
#include "backup/backupchain.h"
#include "backup/backupstore.h"
#include "backup/extract_internal.h"
#include "backup/extract_pool.h"
#include "backup/manifest.h"
#include "backup/s3config.h"
#include "backup/tarreader.h"
#include "base/hash.h"
#include "base/safepath.h"
#include "base/sparse.h"
#include "base/util.h"
#include "store/stub.h"

#define COPY_BUF_SIZE ((size_t)1 << 20)
#define STAGE_PREFIX ".ddp-restore."
#define STAGE_SUFFIX_LEN 6
#define ASIDE_MAX 1000
/* A file up to this size is read into memory by the reading thread (tar,
 * S3) and written by a worker; a larger one is written as it is read. */
#define JOB_MEM_MAX ((uint64_t)16 << 20)
/* Bytes read ahead for the workers at most. */
#define POOL_BYTES ((uint64_t)64 << 20)

/* ===================================================== paths as typed */

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

/* ===================================================== the extraction */

/* One path to restore: its entry (a copy; path and target owned). */
typedef struct xent {
    ddp_mf_entry e;       /* path "/a/b" */
    int plain;            /* from a plain copy (no manifest): level/member unused */
    int dir_attrs;        /* a directory whose attributes are set at the end */
    int staged;           /* in the staging directory, not yet placed */
    int ready;            /* staged and complete: ddp_backup_extract_finish places it */
    HRESULT ok;           /* its outcome once placed (a stub: RestoreFiles' S_OK or S_FALSE) */
    char stagename[40];
} xent;

struct ddp_extract_private {
    int destfd;           /* the target directory (--to) */
    int stagefd;          /* the private staging directory in it (flock()ed) */
    char stagename[32];
    char *dest;           /* for messages */
    int existing;
    xent *ents;           /* parallel to items */
    ddp_xpool *pool;      /* the worker threads of the file step */
    int nbufs;            /* one copy buffer per worker, and the reading thread's (the last) */
    uint8_t **bufs;
    int finished;         /* ddp_backup_extract_finish ran */
    ddp_extract_s3 *s3;   /* an S3 source kept for the store (its manifest is not fetched again) */
};

enum { SRC_PLAIN = 0, SRC_CHAIN = 1, SRC_TAR = 2, SRC_S3 = 3 };

typedef struct source {
    int kind;             /* SRC_*: plain copy, manifest directory chain, tar, S3 */
    int rootfd;           /* plain copy */
    ddp_backup_chain chain;
    ddp_tar_reader *tar;
    ddp_extract_s3 *s3;
    const ddp_manifest *m;
} source;

static void item_fail(ddp_backup_item *it, HRESULT hr)
{
    it->hr = hr;
    snprintf(it->detail, sizeof it->detail, "%s", ddp_error_detail());
}

/* ---- collecting the paths (a directory brings everything below it) ---- */

typedef struct xlist {
    xent *v;
    size_t n, cap;
} xlist;

static xent *xl_add(xlist *l)
{
    if (l->n == l->cap) {
        l->cap = l->cap * 2 + 16;
        l->v = ddp_xrealloc(l->v, l->cap * sizeof *l->v);
    }
    xent *x = &l->v[l->n++];
    memset(x, 0, sizeof *x);
    x->e.member = -1;
    return x;
}

static void xl_add_entry(xlist *l, const ddp_mf_entry *e)
{
    xent *x = xl_add(l);
    x->e = *e;
    x->e.path = ddp_strdup(e->path);
    x->e.target = e->target ? ddp_strdup(e->target) : NULL;
    x->e.pieces = NULL;
    x->e.npieces = 0;
}

/* Index in by_path of the first path >= key. */
static size_t lower_bound(const ddp_manifest *m, const char *key)
{
    size_t lo = 0, hi = m->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(m->entries[m->by_path[mid]].path, key) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static void collect_manifest(xlist *l, const ddp_manifest *m, const char *rel)
{
    char *sp = ddp_xasprintf("/%s", rel);
    const ddp_mf_entry *e = ddp_manifest_find(m, sp);
    if (!e || e->type == 'C') {
        xent *x = xl_add(l);
        x->e.path = sp;
        x->e.type = 0; /* not in the backup */
        return;
    }
    xl_add_entry(l, e);
    if (e->type == 'D') {
        char *prefix = ddp_xasprintf("%s/", sp);
        size_t plen = strlen(prefix);
        for (size_t k = lower_bound(m, prefix); k < m->count; k++) {
            const ddp_mf_entry *c = &m->entries[m->by_path[k]];
            if (strncmp(c->path, prefix, plen) != 0) break;
            if (c->type != 'C') xl_add_entry(l, c);
        }
        free(prefix);
    }
    free(sp);
}

/* A plain copy: what is there, by its own metadata (lstat: links are links). */
static void plain_entry(xent *x, const char *sp, const struct stat *st)
{
    x->plain = 1;
    x->e.path = ddp_strdup(sp);
    x->e.mode = st->st_mode & 07777;
    x->e.uid = st->st_uid;
    x->e.gid = st->st_gid;
    x->e.mtime_sec = st->st_mtim.tv_sec;
    x->e.mtime_nsec = (uint32_t)st->st_mtim.tv_nsec;
    x->e.size = (uint64_t)st->st_size;
    x->e.type = S_ISDIR(st->st_mode) ? 'D' : S_ISLNK(st->st_mode) ? 'L' : S_ISREG(st->st_mode) ? 'F' : 'X';
}

static void collect_plain_dir(xlist *l, int dfd, const char *sp, int depth)
{
    if (depth > PATH_MAX / 2) return;
    DIR *d = ddp_opendir_held(dfd);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        struct stat st;
        if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        char *cp = ddp_xasprintf("%s/%s", sp, de->d_name);
        if (strlen(cp) > PATH_MAX) {
            free(cp);
            continue;
        }
        plain_entry(xl_add(l), cp, &st);
        if (S_ISDIR(st.st_mode)) {
            int sub = ddp_openat_beneath(dfd, de->d_name, O_RDONLY | O_DIRECTORY, 0);
            if (sub >= 0) {
                collect_plain_dir(l, sub, cp, depth + 1);
                close(sub);
            }
        }
        free(cp);
    }
    closedir(d);
}

static void collect_plain(xlist *l, int rootfd, const char *rel)
{
    char *sp = ddp_xasprintf("/%s", rel);
    int fd = -1;
    struct stat st;
    /* The entry itself without following it: its parent beneath the root. */
    int pfd = -1;
    const char *base = NULL;
    HRESULT hr = ddp_open_parent_beneath(rootfd, rel, &pfd, &base);
    if (SUCCEEDED(hr) && fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) != 0) hr = E_FAIL;
    if (FAILED(hr)) {
        ddp_clear_error();
        xent *x = xl_add(l);
        x->e.path = sp;
        if (pfd >= 0) close(pfd);
        return;
    }
    plain_entry(xl_add(l), sp, &st);
    if (S_ISDIR(st.st_mode) && (fd = ddp_openat_beneath(pfd, base, O_RDONLY | O_DIRECTORY, 0)) >= 0) {
        collect_plain_dir(l, fd, sp, 1);
        close(fd);
    }
    close(pfd);
    free(sp);
}

static int cmp_xent(const void *a, const void *b)
{
    return strcmp(((const xent *)a)->e.path, ((const xent *)b)->e.path);
}

static void xent_free(xent *x)
{
    free(x->e.path);
    free(x->e.target);
}

/* ---- the target: the parent of a path, beneath the held directory ---- */

/* The directory of x's path beneath the target (created 0755 as needed) and
 * the path's last component. */
static HRESULT open_parent(struct ddp_extract_private *p, const xent *x, int *pfd, const char **base)
{
    const char *rel = x->e.path + 1;
    const char *slash = strrchr(rel, '/');
    *pfd = -1;
    *base = slash ? slash + 1 : rel;
    char dir[PATH_MAX + 1];
    size_t dlen = slash ? (size_t)(slash - rel) : 0;
    if (dlen > PATH_MAX) return ddp_fail(E_INVALIDARG, "%s: path too long", rel);
    memcpy(dir, rel, dlen);
    dir[dlen] = '\0';
    *pfd = ddp_mkdirs_beneath(p->destfd, dir, 0755, NULL);
    if (*pfd >= 0) return S_OK;
    int err = errno;
    struct stat lst;
    /* ENOTDIR from an O_NOFOLLOW open of a link: a look by name, only to
     * choose the message (nothing is opened through it). */
    if (err == ENOTDIR && fstatat(p->destfd, dir, &lst, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(lst.st_mode)) err = ELOOP;
    if (err == ELOOP || err == EXDEV)
        return ddp_fail(HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED),
                        "%s: refused: the way to it in %s goes through a symbolic link or a mount point "
                        "(restore never follows one)", rel, p->dest);
    if (err == ENOTDIR)
        return ddp_fail(HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND), "%s: a file in %s is in the way of its directory",
                        rel, p->dest);
    return ddp_fail_errno(err, "%s: making its directory in %s", rel, p->dest);
}

/* Refuse an entry the manifest lists below something that is not a directory
 * (a link entry "/a" -> "/etc" and a file "/a/passwd"). */
static HRESULT check_ancestors(const ddp_manifest *m, const char *path)
{
    char buf[PATH_MAX + 2];
    size_t n = strlen(path);
    if (n > PATH_MAX) return ddp_fail(DDP_E_INVALID_DATA, "backup: path too long");
    memcpy(buf, path, n + 1);
    for (char *s = strchr(buf + 1, '/'); s; s = strchr(s + 1, '/')) {
        *s = '\0';
        const ddp_mf_entry *a = ddp_manifest_find(m, buf);
        if (a && a->type != 'D') {
            HRESULT hr = ddp_fail(DDP_E_INVALID_DATA,
                                  "backup: %s is listed below %s, which is %s, not a directory: refused", path,
                                  buf, a->type == 'L' ? "a symbolic link" : "a file");
            return hr;
        }
        *s = '/';
    }
    return S_OK;
}

/* ---- existing files ---- */

/* Move pfd/base aside to base.~N~ (the lowest N free). Nothing there: fine. */
static HRESULT move_aside(int pfd, const char *base, const char *rel, char **aside)
{
    for (int k = 1; k <= ASIDE_MAX; k++) {
        char *name = ddp_xasprintf("%s.~%d~", base, k);
        if (strlen(name) > NAME_MAX) {
            free(name);
            return ddp_fail(HRESULT_FROM_WIN32(ERROR_FILE_EXISTS), "%s: exists, and its name is too long to keep it "
                            "beside as NAME.~N~", rel);
        }
        if (ddp_rename_noreplace(pfd, base, pfd, name) == 0) {
            *aside = name;
            return S_OK;
        }
        int err = errno;
        free(name);
        if (err == ENOENT) return S_OK;
        if (err != EEXIST) return ddp_fail_errno(err, "%s: renaming the existing file", rel);
    }
    return ddp_fail(HRESULT_FROM_WIN32(ERROR_FILE_EXISTS), "%s: exists, and %s.~1~ to .~%d~ all exist too", rel, base,
                    ASIDE_MAX);
}

static HRESULT exists_error(struct ddp_extract_private *p, const char *rel)
{
    return ddp_fail(HRESULT_FROM_WIN32(ERROR_FILE_EXISTS),
                    "%s: exists in %s; not overwritten (--existing overwrite replaces it, --existing rename keeps it "
                    "as %s.~1~, --existing keep leaves it)", rel, p->dest, rel);
}

/* Before anything is read for it: what the existing-file rule says about
 * x's path. S_OK: go on; S_FALSE: kept; a failure: refused. */
static HRESULT existing_check(struct ddp_extract_private *p, const xent *x, ddp_backup_item *it)
{
    int pfd;
    const char *base;
    HRESULT hr = open_parent(p, x, &pfd, &base);
    if (FAILED(hr)) return hr;
    struct stat st;
    int there = fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0;
    close(pfd);
    if (!there) return S_OK;
    if (x->e.type == 'D' && S_ISDIR(st.st_mode)) return S_OK; /* merged into */
    if (p->existing == DDP_EXISTING_KEEP) {
        it->kept = 1;
        return S_FALSE;
    }
    if (p->existing == DDP_EXISTING_REFUSE) return exists_error(p, it->path);
    return S_OK;
}

/* Move the staged file x into its place, under the existing-file rule. */
static HRESULT place(struct ddp_extract_private *p, xent *x, ddp_backup_item *it)
{
    int pfd;
    const char *base;
    HRESULT hr = open_parent(p, x, &pfd, &base);
    if (SUCCEEDED(hr) && p->existing == DDP_EXISTING_RENAME) hr = move_aside(pfd, base, it->path, &it->aside);
    if (SUCCEEDED(hr)) {
        int r = p->existing == DDP_EXISTING_OVERWRITE ? renameat(p->stagefd, x->stagename, pfd, base)
                                                      : ddp_rename_noreplace(p->stagefd, x->stagename, pfd, base);
        if (r != 0) {
            int err = errno;
            if (err == EEXIST && p->existing == DDP_EXISTING_KEEP) {
                it->kept = 1;
                hr = S_FALSE;
            } else if (err == EEXIST) {
                hr = exists_error(p, it->path);
            } else if (err == EISDIR || err == ENOTEMPTY) {
                hr = ddp_fail(HRESULT_FROM_WIN32(ERROR_FILE_EXISTS), "%s: a directory in %s is in the way; not replaced",
                              it->path, p->dest);
            } else {
                hr = ddp_fail_errno(err, "%s: moving it into place in %s", it->path, p->dest);
            }
        }
    }
    if (pfd >= 0) close(pfd);
    if (hr != S_OK) (void)unlinkat(p->stagefd, x->stagename, 0);
    x->staged = 0;
    return hr;
}

/* ---- writing into the staging directory ---- */

/* x's name in the staging directory: "W/I", in the subdirectory of the
 * thread that writes it (one directory per thread: creating files in one
 * directory is serialized by its lock). */
static void stage_name(int w, size_t i, xent *x)
{
    snprintf(x->stagename, sizeof x->stagename, "%d/%zu", w, i);
}

static void set_link_attrs(int dfd, const char *name, const ddp_mf_entry *e)
{
    if (fchownat(dfd, name, e->uid, e->gid, AT_SYMLINK_NOFOLLOW) != 0) { /* not permitted: keep ours */ }
    struct timespec ts[2] = { { e->mtime_sec, e->mtime_nsec }, { e->mtime_sec, e->mtime_nsec } };
    (void)utimensat(dfd, name, ts, AT_SYMLINK_NOFOLLOW);
}

/* The bytes of x, read by rd (through buf, COPY_BUF_SIZE bytes) or, with
 * rd NULL, the x->e.size bytes at mem, to a new file in the staging
 * directory. */
typedef ddp_extract_read_fn read_fn;

static HRESULT stage_file(struct ddp_extract_private *p, int w, size_t i, xent *x, read_fn rd, void *ctx,
                          const uint8_t *mem)
{
    uint8_t *buf = p->bufs[w];
    stage_name(w, i, x);
    const char *rel = x->e.path + 1;
    int fd = openat(p->stagefd, x->stagename, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return ddp_fail_errno(errno, "%s: creating it in %s", rel, p->dest);
    HRESULT hr = S_OK;
    uint64_t off = 0;
    while (off < x->e.size && SUCCEEDED(hr)) {
        size_t want = x->e.size - off > COPY_BUF_SIZE ? COPY_BUF_SIZE : (size_t)(x->e.size - off);
        size_t got = want;
        const uint8_t *src = mem ? mem + off : buf;
        if (!mem) hr = rd(ctx, buf, want, off, &got);
        if (SUCCEEDED(hr) && got == 0)
            hr = ddp_fail(DDP_E_FILE_CORRUPT, "backup: %s is shorter (%" PRIu64 " bytes) than its manifest says (%" PRIu64 ")",
                          rel, off, x->e.size);
        if (SUCCEEDED(hr)) hr = ddp_pwrite_sparse(fd, src, got, off, rel);
        off += got;
    }
    if (SUCCEEDED(hr)) hr = ddp_sparse_finish(fd, x->e.size, rel);
    if (SUCCEEDED(hr)) ddp_backup_set_attrs_fd(fd, &x->e);
    /* No fsync per file: everything staged is synced at once before it is
     * moved into place (ddp_backup_extract_finish). Writing back starts now,
     * so that sync has less to wait for (a stub is rewritten by RestoreFiles:
     * not worth it). */
    if (SUCCEEDED(hr) && !x->e.is_stub && x->e.size > 0) (void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
    if (close(fd) != 0 && SUCCEEDED(hr)) hr = ddp_fail_errno(errno, "%s: writing it in %s", rel, p->dest);
    if (FAILED(hr)) (void)unlinkat(p->stagefd, x->stagename, 0);
    else x->staged = 1;
    return hr;
}

static HRESULT stage_link(struct ddp_extract_private *p, size_t i, xent *x)
{
    stage_name(p->nbufs - 1, i, x);
    if (!x->e.target || !*x->e.target)
        return ddp_fail(DDP_E_INVALID_DATA, "backup: %s: a symbolic link without a target", x->e.path);
    if (symlinkat(x->e.target, p->stagefd, x->stagename) != 0)
        return ddp_fail_errno(errno, "%s: creating the symbolic link in %s", x->e.path + 1, p->dest);
    set_link_attrs(p->stagefd, x->stagename, &x->e);
    x->staged = 1;
    return S_OK;
}

static HRESULT make_dir(struct ddp_extract_private *p, xent *x, ddp_backup_item *it)
{
    int pfd;
    const char *base;
    HRESULT hr = open_parent(p, x, &pfd, &base);
    if (FAILED(hr)) return hr;
    struct stat st;
    if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (S_ISDIR(st.st_mode)) {
            x->dir_attrs = p->existing == DDP_EXISTING_OVERWRITE;
            close(pfd);
            return S_OK;
        }
        if (p->existing == DDP_EXISTING_RENAME) hr = move_aside(pfd, base, it->path, &it->aside);
        else if (p->existing == DDP_EXISTING_OVERWRITE && unlinkat(pfd, base, 0) != 0)
            hr = ddp_fail_errno(errno, "%s: removing the file in the way", it->path);
        else if (p->existing != DDP_EXISTING_OVERWRITE)
            hr = exists_error(p, it->path);
    }
    if (SUCCEEDED(hr) && mkdirat(pfd, base, 0700) != 0) hr = ddp_fail_errno(errno, "%s: creating it in %s", it->path, p->dest);
    if (SUCCEEDED(hr)) x->dir_attrs = 1;
    close(pfd);
    return hr;
}

/* ---- the sources of bytes ---- */

typedef struct fd_ctx { int fd; const char *rel; } fd_ctx;

static HRESULT read_fd(void *vctx, void *buf, size_t n, uint64_t off, size_t *got)
{
    fd_ctx *c = vctx;
    return ddp_pread_upto(c->fd, buf, n, off, got, c->rel);
}

static HRESULT read_tar(void *vctx, void *buf, size_t n, uint64_t off, size_t *got)
{
    (void)off; /* sequential */
    return ddp_tar_reader_read(vctx, buf, n, got);
}

/* A file of a plain copy or of a directory backup (level's directory). */
static HRESULT stage_from_dir(struct ddp_extract_private *p, int w, size_t i, xent *x, int rootfd,
                              const char *where, ddp_backup_item *it)
{
    fd_ctx c = { -1, x->e.path + 1 };
    struct stat st;
    HRESULT hr = ddp_open_beneath(rootfd, x->e.path + 1, 0, &c.fd, &st);
    if (hr == HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND) || hr == HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND))
        return ddp_fail(DDP_E_NOT_FOUND, "%s: listed in the manifest but missing from %s", x->e.path + 1, where);
    if (FAILED(hr)) return hr;
    if (x->plain) {
        x->e.size = (uint64_t)st.st_size;
        uint8_t head[DDP_STUB_SIZE];
        size_t got = 0;
        x->e.is_stub = st.st_size == DDP_STUB_SIZE &&
                       SUCCEEDED(ddp_pread_upto(c.fd, head, sizeof head, 0, &got, x->e.path)) &&
                       ddp_stub_looks_like(head, got);
        x->e.mode = st.st_mode & 07777;
    } else if ((uint64_t)st.st_size != x->e.size) {
        close(c.fd);
        return ddp_fail(DDP_E_FILE_CORRUPT, "%s: %lld bytes in the backup, %" PRIu64 " in its manifest", x->e.path + 1,
                        (long long)st.st_size, x->e.size);
    }
    it->kind = x->e.is_stub ? DDP_ITEM_STUB : DDP_ITEM_FILE;
    it->size = x->e.size;
    hr = stage_file(p, w, i, x, read_fd, &c, NULL);
    close(c.fd);
    return hr;
}

/* ---- the staging directory ---- */

/* A thread's subdirectory of a staging directory, emptied and removed
 * (nothing below it is followed). 0: gone. */
static int remove_stage_subdir(int stagefd, const char *name)
{
    int fd = ddp_openat_beneath(stagefd, name, O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0) return -1;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -1;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) (void)unlinkat(dirfd(d), de->d_name, 0);
    closedir(d);
    return unlinkat(stagefd, name, AT_REMOVEDIR);
}

/* Remove a staging directory (ours when done, or one a killed restore left
 * in the target: ours by owner, mode 0700 and name, and not locked by a live
 * restore) with its threads' subdirectories. */
static void remove_stage_dir(int destfd, const char *name, int fd)
{
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return;
    }
    rewinddir(d);
    struct dirent *de;
    int dirs_left = 0;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        if (unlinkat(dirfd(d), de->d_name, 0) != 0 && errno == EISDIR &&
            remove_stage_subdir(dirfd(d), de->d_name) != 0)
            dirs_left = 1;
    }
    closedir(d); /* the lock goes with it */
    if (!dirs_left) (void)unlinkat(destfd, name, AT_REMOVEDIR);
}

static void remove_abandoned_stages(int destfd)
{
    DIR *d = ddp_opendir_held(destfd);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, STAGE_PREFIX, sizeof STAGE_PREFIX - 1) != 0 ||
            strlen(de->d_name) != sizeof STAGE_PREFIX - 1 + STAGE_SUFFIX_LEN)
            continue;
        int sfd = ddp_openat_beneath(destfd, de->d_name, O_RDONLY | O_DIRECTORY, 0);
        if (sfd < 0) continue;
        struct stat st;
        if (fstat(sfd, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == geteuid() && (st.st_mode & 07777) == 0700 &&
            flock(sfd, LOCK_EX | LOCK_NB) == 0)
            remove_stage_dir(destfd, de->d_name, sfd);
        else
            close(sfd);
    }
    closedir(d);
}

static HRESULT make_stage_dir(struct ddp_extract_private *p)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    for (int attempt = 0; attempt < 100; attempt++) {
        uint8_t rnd[STAGE_SUFFIX_LEN];
        if (ddp_random_bytes(rnd, sizeof rnd) != 0) return ddp_fail(E_FAIL, "the system random number generator failed");
        char suffix[STAGE_SUFFIX_LEN + 1];
        for (int k = 0; k < STAGE_SUFFIX_LEN; k++) suffix[k] = alphabet[rnd[k] % (sizeof alphabet - 1)];
        suffix[STAGE_SUFFIX_LEN] = '\0';
        snprintf(p->stagename, sizeof p->stagename, STAGE_PREFIX "%s", suffix);
        if (mkdirat(p->destfd, p->stagename, 0700) != 0) {
            if (errno == EEXIST) continue;
            return ddp_fail_errno(errno, "creating a staging directory in %s", p->dest);
        }
        p->stagefd = ddp_openat_beneath(p->destfd, p->stagename, O_RDONLY | O_DIRECTORY, 0);
        if (p->stagefd < 0) return ddp_fail_errno(errno, "opening the staging directory in %s", p->dest);
        struct stat st;
        if (fstat(p->stagefd, &st) != 0 || st.st_uid != geteuid() || (st.st_mode & 0077) != 0)
            return ddp_fail(HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED), "the staging directory %s/%s was replaced",
                            p->dest, p->stagename);
        (void)fchmod(p->stagefd, 0700); /* whatever the umask */
        (void)flock(p->stagefd, LOCK_EX | LOCK_NB);
        /* ext4: the threads' subdirectories below are unrelated, spread them
         * over the block groups (chattr +T); elsewhere a no-op. */
        int fl = 0;
        if (ioctl(p->stagefd, FS_IOC_GETFLAGS, &fl) == 0) {
            fl |= FS_TOPDIR_FL;
            (void)ioctl(p->stagefd, FS_IOC_SETFLAGS, &fl);
        }
        for (int k = 0; k < p->nbufs; k++) {
            char sub[16];
            snprintf(sub, sizeof sub, "%d", k);
            if (mkdirat(p->stagefd, sub, 0700) != 0)
                return ddp_fail_errno(errno, "creating the staging directory %s/%s/%s", p->dest, p->stagename, sub);
        }
        return S_OK;
    }
    return ddp_fail(DDP_E_UNEXPECTED, "no free staging directory name in %s", p->dest);
}

/* ---- the whole extraction ---- */

static HRESULT open_source(const char *backup, source *s)
{
    memset(s, 0, sizeof *s);
    s->rootfd = -1;
    if (ddp_s3_is_url(backup)) {
        HRESULT hr = ddp_extract_s3_open(backup, &s->s3);
        if (FAILED(hr)) return hr;
        s->kind = SRC_S3;
        s->m = ddp_extract_s3_manifest(s->s3);
        return S_OK;
    }
    struct stat st;
    if (stat(backup, &st) != 0) return ddp_fail_errno(errno, "backup %s", backup);
    if (S_ISREG(st.st_mode)) {
        s->kind = SRC_TAR;
        HRESULT hr = ddp_tar_reader_open(backup, &s->tar);
        if (SUCCEEDED(hr)) s->m = ddp_tar_reader_manifest(s->tar);
        return hr;
    }
    if (!S_ISDIR(st.st_mode)) return ddp_fail(E_INVALIDARG, "backup %s: neither a directory nor an archive file", backup);
    HRESULT hr = ddp_backup_chain_open(backup, &s->chain);
    if (SUCCEEDED(hr)) {
        s->kind = SRC_CHAIN;
        s->m = &s->chain.newest;
        return S_OK;
    }
    if (hr != DDP_E_NOT_FOUND) return hr;
    ddp_clear_error(); /* no manifest: a plain copy of a volume (cp -a, rsync) */
    s->kind = SRC_PLAIN;
    s->rootfd = open(backup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->rootfd < 0) return ddp_fail_errno(errno, "backup %s", backup);
    return S_OK;
}

static void close_source(source *s)
{
    if (s->kind == SRC_CHAIN) ddp_backup_chain_close(&s->chain);
    ddp_extract_s3_close(s->s3);
    if (s->tar) ddp_tar_reader_close(s->tar);
    if (s->rootfd >= 0) close(s->rootfd);
}

typedef struct want {
    int64_t member;
    size_t item;
} want;

static int cmp_want(const void *a, const void *b)
{
    const want *x = a, *y = b;
    return x->member < y->member ? -1 : x->member > y->member;
}

static int item_kind(const xent *x)
{
    switch (x->e.type) {
    case 'D': return DDP_ITEM_DIR;
    case 'L': return DDP_ITEM_SYMLINK;
    case 'F': return x->e.is_stub ? DDP_ITEM_STUB : DDP_ITEM_FILE;
    default: return DDP_ITEM_MISSING;
    }
}

/* Everything but the bytes of files: checks, directories, links; a file gets
 * its existing-file check. S_OK: the item goes on (a file: to its bytes). */
static HRESULT prepare(struct ddp_extract_private *p, const source *s, size_t i, xent *x, ddp_backup_item *it)
{
    it->kind = item_kind(x);
    it->size = x->e.size;
    if (x->e.type == 0) return ddp_fail(DDP_E_NOT_FOUND, "%s: not in the backup", it->path);
    if (x->e.type == 'X') return ddp_fail(DDP_E_NOT_FOUND, "%s: not a file, directory or link", it->path);
    if (s->m) {
        HRESULT hr = check_ancestors(s->m, x->e.path);
        if (FAILED(hr)) return hr;
    }
    if (x->e.type == 'D') return make_dir(p, x, it);
    HRESULT hr = existing_check(p, x, it);
    if (hr != S_OK) return hr;
    if (x->e.type == 'L') {
        if (x->plain) {
            /* the link of a plain copy: its target, read without following */
            int pfd;
            const char *base;
            hr = ddp_open_parent_beneath(s->rootfd, x->e.path + 1, &pfd, &base);
            if (FAILED(hr)) return hr;
            char target[PATH_MAX + 1];
            ssize_t k = readlinkat(pfd, base, target, PATH_MAX);
            close(pfd);
            if (k <= 0) return ddp_fail_errno(k < 0 ? errno : EINVAL, "reading the link %s in the backup", it->path);
            target[k] = '\0';
            free(x->e.target);
            x->e.target = ddp_strdup(target);
        }
        hr = stage_link(p, i, x);
        if (SUCCEEDED(hr)) {
            x->ready = 1; /* placed by ddp_backup_extract_finish */
            x->ok = S_OK;
        }
        return hr;
    }
    return S_OK;
}

/* A file's bytes are staged (or failed): a stub waits for RestoreFiles,
 * the rest for ddp_backup_extract_finish. */
static void finish_file(struct ddp_extract_private *p, xent *x, ddp_backup_item *it, HRESULT hr)
{
    if (FAILED(hr)) {
        item_fail(it, hr);
        return;
    }
    it->hr = S_OK;
    if (it->kind == DDP_ITEM_STUB) {
        it->staged = ddp_xasprintf("/proc/self/fd/%d/%s", p->stagefd, x->stagename);
        return;
    }
    x->ready = 1;
    x->ok = S_OK;
}

/* ---- the file step's jobs, run by the worker threads ---- */

typedef struct file_job {
    struct ddp_extract_private *p;
    ddp_backup_item *it;
    size_t i;
    int rootfd;           /* a directory source: the file beneath it */
    const char *where;
    uint8_t *data;        /* else its bytes (x->e.size of them), read ahead; freed by the job */
} file_job;

static void run_file_job(void *varg, int worker)
{
    file_job *j = varg;
    struct ddp_extract_private *p = j->p;
    xent *x = &p->ents[j->i];
    HRESULT hr = j->rootfd >= 0 ? stage_from_dir(p, worker, j->i, x, j->rootfd, j->where, j->it)
                                : stage_file(p, worker, j->i, x, NULL, NULL, j->data);
    finish_file(p, x, j->it, hr);
    free(j->data);
    free(j);
}

static void submit_dir_file(struct ddp_extract_private *p, size_t i, ddp_backup_item *it, int rootfd,
                            const char *where)
{
    file_job *j = ddp_xcalloc(1, sizeof *j);
    *j = (file_job){ p, it, i, rootfd, where, NULL };
    ddp_xpool_submit(p->pool, run_file_job, j, 0);
}

/* File i's bytes, read by rd: into memory and to a worker when small, else
 * written here as they are read. */
static HRESULT submit_read_file(struct ddp_extract_private *p, size_t i, ddp_backup_item *it, read_fn rd, void *ctx)
{
    xent *x = &p->ents[i];
    if (x->e.size > JOB_MEM_MAX) {
        HRESULT hr = stage_file(p, p->nbufs - 1, i, x, rd, ctx, NULL);
        finish_file(p, x, it, hr);
        return hr;
    }
    uint8_t *data = ddp_xmalloc(x->e.size ? (size_t)x->e.size : 1);
    uint64_t off = 0;
    HRESULT hr = S_OK;
    while (off < x->e.size && SUCCEEDED(hr)) {
        size_t got = 0;
        hr = rd(ctx, data + off, (size_t)(x->e.size - off), off, &got);
        if (SUCCEEDED(hr) && got == 0)
            hr = ddp_fail(DDP_E_FILE_CORRUPT, "backup: %s is shorter (%" PRIu64 " bytes) than its manifest says (%" PRIu64 ")",
                          x->e.path + 1, off, x->e.size);
        off += got;
    }
    if (FAILED(hr)) {
        free(data);
        finish_file(p, x, it, hr);
        return hr;
    }
    file_job *j = ddp_xcalloc(1, sizeof *j);
    *j = (file_job){ p, it, i, -1, NULL, data };
    ddp_xpool_submit(p->pool, run_file_job, j, x->e.size);
    return S_OK;
}

/* An S3 backup: the files in the order of their paths, fetched ahead. */
typedef struct s3_put_ctx {
    struct ddp_extract_private *p;
    ddp_backup_item *items;
    const want *w;
} s3_put_ctx;

static void s3_put(void *vctx, size_t k, HRESULT fetched, ddp_extract_read_fn rd, void *rctx)
{
    s3_put_ctx *c = vctx;
    size_t i = c->w[k].item;
    if (FAILED(fetched)) finish_file(c->p, &c->p->ents[i], &c->items[i], fetched);
    else (void)submit_read_file(c->p, i, &c->items[i], rd, rctx);
}

static void extract_s3_files(struct ddp_extract_private *p, source *s, const want *w, size_t nw,
                             ddp_backup_item *items)
{
    const ddp_mf_entry **ents = ddp_xmalloc((nw ? nw : 1) * sizeof *ents);
    for (size_t k = 0; k < nw; k++) ents[k] = &p->ents[w[k].item].e;
    s3_put_ctx c = { p, items, w };
    ddp_extract_s3_fetch(s->s3, nw, ents, s3_put, &c);
    free(ents);
}

static void extract_all(struct ddp_extract_private *p, source *s, size_t n, ddp_backup_item *items)
{
    want *w = ddp_xmalloc((n ? n : 1) * sizeof *w);
    size_t nw = 0;
    for (size_t i = 0; i < n; i++) {
        xent *x = &p->ents[i];
        ddp_backup_item *it = &items[i];
        HRESULT hr = prepare(p, s, i, x, it);
        if (hr == S_FALSE) {
            it->hr = S_FALSE;
            continue;
        }
        if (FAILED(hr)) {
            item_fail(it, hr);
            continue;
        }
        if (x->e.type != 'F') {
            it->hr = S_OK;
            continue;
        }
        if (s->kind == SRC_TAR || s->kind == SRC_S3) {
            w[nw++] = (want){ s->kind == SRC_TAR ? x->e.member : 0, i };
            continue;
        }
        int rootfd = s->kind == SRC_PLAIN ? s->rootfd : s->chain.dirfds[x->e.level];
        const char *where = s->kind == SRC_PLAIN ? "the backup" : s->chain.dirs[x->e.level];
        submit_dir_file(p, i, it, rootfd, where);
    }
    if (s->kind == SRC_S3) {
        extract_s3_files(p, s, w, nw, items);
        free(w);
        return;
    }
    /* A tar archive: the files in archive order, one forward pass. */
    qsort(w, nw, sizeof *w, cmp_want);
    for (size_t k = 0; k < nw; k++) {
        size_t i = w[k].item;
        HRESULT hr = ddp_tar_reader_goto(s->tar, (size_t)w[k].member);
        if (SUCCEEDED(hr)) hr = submit_read_file(p, i, &items[i], read_tar, s->tar);
        else finish_file(p, &p->ents[i], &items[i], hr);
        if (FAILED(hr) && ddp_tar_reader_broken(s->tar)) {
            /* a damaged archive stops everything after it */
            for (size_t j = k + 1; j < nw; j++) {
                ddp_backup_item *later = &items[w[j].item];
                later->hr = hr;
                if (later != &items[i]) memcpy(later->detail, items[i].detail, sizeof later->detail);
            }
            break;
        }
    }
    free(w);
}

HRESULT ddp_backup_extract(const char *backup, size_t n, char *const *relpaths, const char *dest_dir, int existing,
                           ddp_extract *x)
{
    memset(x, 0, sizeof *x);
    if (!backup || !dest_dir || (n && !relpaths)) return E_POINTER;
    if (existing < DDP_EXISTING_REFUSE || existing > DDP_EXISTING_RENAME) return E_INVALIDARG;
    source s;
    HRESULT hr = open_source(backup, &s);
    if (FAILED(hr)) {
        close_source(&s);
        return hr;
    }
    /* The paths, a directory with everything below it, sorted, each once. */
    xlist l = { NULL, 0, 0 };
    for (size_t i = 0; i < n; i++) {
        if (s.kind == SRC_PLAIN) collect_plain(&l, s.rootfd, relpaths[i]);
        else collect_manifest(&l, s.m, relpaths[i]);
    }
    if (l.n) qsort(l.v, l.n, sizeof *l.v, cmp_xent);
    size_t m = 0;
    for (size_t i = 0; i < l.n; i++) {
        if (m > 0 && strcmp(l.v[m - 1].e.path, l.v[i].e.path) == 0) {
            if (l.v[m - 1].e.type == 0) { /* a missing path named, then found below a directory */
                xent_free(&l.v[m - 1]);
                l.v[m - 1] = l.v[i];
            } else {
                xent_free(&l.v[i]);
            }
            continue;
        }
        l.v[m++] = l.v[i];
    }
    struct ddp_extract_private *p = ddp_xcalloc(1, sizeof *p);
    p->destfd = p->stagefd = -1;
    p->existing = existing;
    p->dest = ddp_strdup(dest_dir);
    p->ents = l.v;
    x->p = p;
    x->n = m;
    x->items = ddp_xcalloc(m ? m : 1, sizeof *x->items);
    for (size_t i = 0; i < m; i++) {
        x->items[i].hr = DDP_E_NOT_FOUND;
        x->items[i].path = ddp_strdup(l.v[i].e.path + 1);
    }
    /* The target: made if missing (the administrator's path, followed as
     * given), then held; everything else happens beneath it. */
    hr = ddp_mkdir_p(dest_dir, 0755);
    if (SUCCEEDED(hr)) {
        p->destfd = open(dest_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (p->destfd < 0) hr = ddp_fail_errno(errno, "restore target %s", dest_dir);
    }
    int nthreads = ddp_xpool_default_threads();
    p->nbufs = nthreads + 1;
    p->bufs = ddp_xcalloc((size_t)p->nbufs, sizeof *p->bufs);
    for (int k = 0; k < p->nbufs; k++) p->bufs[k] = ddp_xmalloc(COPY_BUF_SIZE);
    if (SUCCEEDED(hr)) {
        remove_abandoned_stages(p->destfd);
        hr = make_stage_dir(p);
    }
    if (FAILED(hr)) {
        close_source(&s);
        ddp_saved_error se;
        ddp_error_save(&se);
        (void)ddp_backup_extract_close(x);
        return ddp_first_error(hr, &se, hr);
    }
    p->pool = ddp_xpool_new(nthreads, POOL_BYTES);
    extract_all(p, &s, m, x->items);
    ddp_xpool_free(p->pool); /* every job done */
    p->pool = NULL;
    p->s3 = s.s3; /* for ddp_backup_extract_store */
    s.s3 = NULL;
    close_source(&s);
    return S_OK;
}

HRESULT ddp_backup_extract_store(ddp_extract *x, const char *backup, IDedupReadFileCallback **out)
{
    struct ddp_extract_private *p = x->p;
    if (p && p->s3) {
        ddp_extract_s3 *s = p->s3;
        p->s3 = NULL;
        return ddp_extract_s3_to_store(s, out);
    }
    return ddp_backupstore_open(backup, out);
}

void ddp_backup_extract_place(ddp_extract *x, size_t i, HRESULT restore_result)
{
    struct ddp_extract_private *p = x->p;
    xent *e = &p->ents[i];
    ddp_backup_item *it = &x->items[i];
    free(it->staged);
    it->staged = NULL;
    if (!e->staged) return;
    if (FAILED(restore_result)) {
        (void)unlinkat(p->stagefd, e->stagename, 0);
        e->staged = 0;
        it->hr = restore_result;
        return;
    }
    /* RestoreFiles replaced the stub by its content (or found it no stub):
     * a regular file in the private directory, moved into place by
     * ddp_backup_extract_finish. */
    struct stat st;
    if (fstatat(p->stagefd, e->stagename, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) {
        item_fail(it, ddp_fail(DDP_E_UNEXPECTED, "%s: the restored file vanished from the staging directory", it->path));
        (void)unlinkat(p->stagefd, e->stagename, 0);
        e->staged = 0;
        return;
    }
    it->size = (uint64_t)st.st_size;
    it->hr = restore_result;
    e->ready = 1;
    e->ok = restore_result;
}

HRESULT ddp_backup_extract_finish(ddp_extract *x)
{
    struct ddp_extract_private *p = x->p;
    if (!p || p->finished) return S_OK;
    p->finished = 1;
    size_t nready = 0;
    for (size_t i = 0; i < x->n; i++) nready += p->ents[i].ready != 0;
    if (nready == 0) return S_OK;
    /* Everything staged is durable before anything is in place. */
    if (syncfs(p->stagefd) != 0) {
        HRESULT hr = ddp_fail_errno(errno, "syncing the restored files in %s", p->dest);
        for (size_t i = 0; i < x->n; i++) {
            xent *e = &p->ents[i];
            if (!e->ready) continue;
            item_fail(&x->items[i], hr);
            e->ready = 0; /* removed with the staging directory */
        }
        return hr;
    }
    for (size_t i = 0; i < x->n; i++) {
        xent *e = &p->ents[i];
        ddp_backup_item *it = &x->items[i];
        if (!e->ready) continue;
        e->ready = 0;
        HRESULT hr = place(p, e, it);
        if (FAILED(hr)) item_fail(it, hr);
        else it->hr = hr == S_FALSE ? S_FALSE : e->ok;
    }
    return S_OK;
}

static int cmp_rev_index(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

HRESULT ddp_backup_extract_close(ddp_extract *x)
{
    struct ddp_extract_private *p = x->p;
    HRESULT hr = S_OK;
    if (p) {
        /* Directories last, deepest first: creating what is inside them
         * changed their times. */
        size_t *order = ddp_xmalloc((x->n ? x->n : 1) * sizeof *order);
        size_t nd = 0;
        for (size_t i = 0; i < x->n; i++)
            if (p->ents[i].dir_attrs && SUCCEEDED(x->items[i].hr)) order[nd++] = i;
        qsort(order, nd, sizeof *order, cmp_rev_index);
        for (size_t k = 0; k < nd && p->destfd >= 0; k++) {
            xent *e = &p->ents[order[k]];
            int fd = ddp_openat_beneath(p->destfd, e->e.path + 1, O_RDONLY | O_DIRECTORY, 0);
            if (fd < 0) continue;
            ddp_backup_set_attrs_fd(fd, &e->e);
            close(fd);
        }
        free(order);
        if (p->stagefd >= 0) {
            for (size_t i = 0; i < x->n; i++)
                if (p->ents[i].staged) (void)unlinkat(p->stagefd, p->ents[i].stagename, 0);
            remove_stage_dir(p->destfd, p->stagename, p->stagefd); /* closes stagefd */
        }
        if (p->destfd >= 0 && x->n > 0 && syncfs(p->destfd) != 0)
            hr = ddp_fail_errno(errno, "syncing %s", p->dest);
        if (p->destfd >= 0) close(p->destfd);
        for (size_t i = 0; i < x->n; i++) xent_free(&p->ents[i]);
        free(p->ents);
        ddp_extract_s3_close(p->s3);
        ddp_xpool_free(p->pool);
        for (int k = 0; k < p->nbufs; k++) free(p->bufs[k]);
        free(p->bufs);
        free(p->dest);
        free(p);
    }
    for (size_t i = 0; i < x->n; i++) {
        free(x->items[i].path);
        free(x->items[i].staged);
        free(x->items[i].aside);
    }
    free(x->items);
    memset(x, 0, sizeof *x);
    return hr;
}
