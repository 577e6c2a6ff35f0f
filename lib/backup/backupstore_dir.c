/*
 * backupstore_dir.c: the plain-directory backup store, and what the three
 * stores share.
 *
 * A directory backup (`ddp backup VOLUME DEST`, or any copy of a volume made
 * with cp -a or rsync) holds every chunk-store file at the path it had in the
 * volume, so ReadBackupFile("/.ddp/ChunkStore/{GUID}.ddp/Data/....ccc") is a
 * pread of DEST/.ddp/ChunkStore/{GUID}.ddp/Data/....ccc. The store leaves the
 * order to ddp (OrderContainersRestore answers with no plan) and turns each
 * PreviewContainerRead into posix_fadvise(WILLNEED) so the kernel reads ahead
 * exactly the ranges that will be wanted.
 *
 * Safety: a path coming from the restore engine is checked (absolute, no
 * empty, "." or ".." component) and then opened one component at a time with
 * openat(O_NOFOLLOW) beneath the backup root, so neither a crafted path nor a
 * symbolic link planted inside the backup can reach a file outside it.
 *
 * Shared with the tar and set stores: the object head (lpVtbl, reference
 * count, counters), QueryInterface/AddRef, the path checks, the safe open,
 * ddp_backupstore_get_stats() and ddp_backupstore_open(), which tells the
 * three kinds of backup apart.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup/backupstore_internal.h"
#include "base/util.h"

#define DIR_FD_CACHE 8

/* ---------------------------------------------------------------- shared */

HRESULT ddp_bs_query_interface(IDedupReadFileCallback *This, REFIID riid, void **ppv)
{
    if (!ppv) return E_POINTER;
    *ppv = NULL;
    if (!This || !riid) return E_POINTER;
    if (IsEqualIID(riid, &IID_IUnknown) || IsEqualIID(riid, &IID_IDedupReadFileCallback)) {
        ddp_bs_addref(This);
        *ppv = This;
        return S_OK;
    }
    return E_NOINTERFACE;
}

ULONG ddp_bs_addref(IDedupReadFileCallback *This)
{
    ddp_bs_base *b = (ddp_bs_base *)This;
    return atomic_fetch_add(&b->refs, 1u) + 1u;
}

ULONG ddp_bs_release_ref(IDedupReadFileCallback *This)
{
    ddp_bs_base *b = (ddp_bs_base *)This;
    unsigned old = atomic_fetch_sub(&b->refs, 1u);
    if (old == 0) abort(); /* released more often than referenced */
    return old - 1u;
}

HRESULT ddp_bs_check_path(const char *path)
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

HRESULT ddp_bs_check_read_args(const char *path, LONGLONG off, ULONG n, const BYTE *buf, ULONG *got)
{
    if (!got) return E_POINTER;
    *got = 0;
    HRESULT hr = ddp_bs_check_path(path);
    if (FAILED(hr)) return hr;
    if (off < 0) return ddp_fail(E_INVALIDARG, "backup store: negative offset %lld for %s", (long long)off, path);
    if (n > 0 && !buf) return E_POINTER;
    return S_OK;
}

/* Why a component could not be opened: a symlink is refused, a missing
 * entry is "not found" (file or path, by position), the rest maps errno. */
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

HRESULT ddp_bs_open_beneath(int rootfd, const char *rel, int allow_dir, int *out, struct stat *st)
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

HRESULT ddp_bs_pread_upto(int fd, void *buf, size_t n, uint64_t off, size_t *got, const char *what)
{
    uint8_t *p = buf;
    size_t done = 0;
    *got = 0;
    while (done < n) {
        ssize_t r = pread(fd, p + done, n - done, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR) continue;
            return ddp_fail_errno(errno, "backup store: reading %s", what);
        }
        if (r == 0) break;
        done += (size_t)r;
    }
    *got = done;
    return S_OK;
}

void ddp_backupstore_get_stats(IDedupReadFileCallback *store, ddp_backupstore_stats *st)
{
    memset(st, 0, sizeof *st);
    if (!store) return;
    if (store->lpVtbl != &ddp_bs_dir_vtbl && store->lpVtbl != &ddp_bs_tar_vtbl &&
        store->lpVtbl != &ddp_bs_set_vtbl)
        return;
    *st = ((ddp_bs_base *)store)->stats;
}

HRESULT ddp_backupstore_open(const char *path, IDedupReadFileCallback **out)
{
    if (!out) return E_POINTER;
    *out = NULL;
    if (!path) return E_POINTER;
    struct stat st;
    if (stat(path, &st) != 0) return ddp_fail_errno(errno, "backup %s", path);
    if (S_ISREG(st.st_mode)) return ddp_backupstore_open_tar(path, out);
    if (!S_ISDIR(st.st_mode))
        return ddp_fail(E_INVALIDARG, "backup %s: neither a directory nor an archive file", path);
    ddp_manifest m;
    HRESULT hr = ddp_manifest_load(path, 1, &m);
    if (hr == DDP_E_NOT_FOUND) return ddp_backupstore_open_dir(path, out); /* a plain copy */
    if (FAILED(hr)) return hr;
    int incremental = m.previous != NULL;
    ddp_manifest_free(&m);
    return incremental ? ddp_backupstore_open_set(path, out) : ddp_backupstore_open_dir(path, out);
}

/* ------------------------------------------------------------- dir store */

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
    HRESULT hr = ddp_bs_open_beneath(s->rootfd, path + 1, 0, &nfd, NULL);
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
        hr = ddp_bs_pread_upto(fd, buf, n, (uint64_t)off, &r, path);
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
    s->root = ddp_strdup(dir);
    s->rootfd = fd;
    *out = (IDedupReadFileCallback *)s;
    return S_OK;
}

/* ---- shared by the tar and set stores ---- */

HRESULT ddp_bs_check_preview(ddp_bs_base *b, const char *path, ULONG n, const DDP_FILE_EXTENT *ext)
{
    b->stats.preview_calls++;
    HRESULT hr = ddp_bs_check_path(path);
    if (FAILED(hr)) return hr;
    if (n > 0 && !ext) return E_POINTER;
    for (ULONG i = 0; i < n; i++)
        if (ext[i].Offset < 0 || ext[i].Length < 0)
            return ddp_fail(E_INVALIDARG, "backup store: preview of %s: negative extent", path);
    return S_OK;
}

typedef struct plan_item {
    int64_t key;      /* tar member, or backup level */
    ULONG index;
    uint64_t offset, length;
    int last;
} plan_item;

static int cmp_plan(const void *a, const void *b)
{
    const plan_item *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    if (x->index != y->index) return x->index < y->index ? -1 : 1;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

HRESULT ddp_bs_order_from_manifest(ddp_bs_base *b, const ddp_manifest *m, int by_member, ULONG n, BSTR *paths,
                                   ULONG *entries, DEDUP_CONTAINER_EXTENT **plan)
{
    b->stats.order_calls++;
    if (!entries || !plan) return E_POINTER;
    *entries = 0;
    *plan = NULL;
    if (n > 0 && !paths) return E_POINTER;
    size_t k = 0, cap = 0;
    plan_item *items = NULL;
    for (ULONG i = 0; i < n; i++) {
        if (FAILED(ddp_bs_check_path(paths[i]))) {
            ddp_clear_error();
            continue; /* never ours: ddp will ask, and be told */
        }
        const ddp_mf_entry *e = ddp_manifest_find(m, paths[i]);
        if (!e || e->type != 'C') continue;
        for (uint32_t j = 0; j < e->npieces; j++) {
            if (k == cap) {
                cap = cap ? cap * 2 : 64;
                items = ddp_xrealloc(items, cap * sizeof *items);
            }
            const ddp_mf_piece *pc = &e->pieces[j];
            items[k++] = (plan_item){ by_member ? pc->member : (int64_t)pc->level, i, pc->offset, pc->length,
                                      j + 1 == e->npieces };
        }
    }
    if (k == 0) {
        free(items);
        return S_OK;
    }
    qsort(items, k, sizeof *items, cmp_plan);
    /* The application allocates the plan with malloc; ddp frees it with free. */
    DEDUP_CONTAINER_EXTENT *p = malloc(k * sizeof *p);
    if (!p) {
        free(items);
        return E_OUTOFMEMORY;
    }
    for (size_t i = 0; i < k; i++) {
        p[i].ContainerIndex = items[i].index;
        p[i].StartOffset = (LONGLONG)items[i].offset;
        p[i].Length = items[i].last ? INT64_MAX : (LONGLONG)items[i].length;
    }
    free(items);
    *plan = p;
    *entries = (ULONG)k;
    return S_OK;
}
