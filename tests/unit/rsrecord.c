/* SPDX-License-Identifier: MIT */
/*
 * rsrecord.c: the recording backup store of the RestoreFiles unit tests and
 * the checker of R5-R7 on its record (rsrecord.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rsrecord.h"

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    assert_non_null(d);
    return d;
}

/* root + bpath; malloc'd. */
static char *local_path(const rstore *s, const char *bpath)
{
    size_t a = strlen(s->root), b = strlen(bpath);
    char *p = malloc(a + b + 1);
    assert_non_null(p);
    memcpy(p, s->root, a);
    memcpy(p + a, bpath, b + 1);
    return p;
}

int rs_is_container(const char *p)
{
    return strstr(p, "/Data/") || strstr(p, "/Stream/") || strstr(p, "/Hotspot/");
}

static rs_event *ev_push(rstore *s, int type)
{
    if (s->nev == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 256;
        s->evs = realloc(s->evs, s->cap * sizeof *s->evs);
        assert_non_null(s->evs);
    }
    rs_event *e = &s->evs[s->nev++];
    memset(e, 0, sizeof *e);
    e->type = type;
    return e;
}

static rstore *of_lister(IDdpListBackupFolder *l)
{
    return (rstore *)(void *)((char *)l - offsetof(rstore, lister));
}

int64_t rs_file_size(const rstore *s, const char *bpath)
{
    char *p = local_path(s, bpath);
    struct stat st;
    int r = stat(p, &st);
    free(p);
    return r == 0 ? st.st_size : 4096;
}

/* ---- IDedupReadFileCallback ---- */

static HRESULT st_qi(IDedupReadFileCallback *This, REFIID riid, void **ppv)
{
    rstore *s = (rstore *)This;
    if (IsEqualIID(riid, &IID_IUnknown) || IsEqualIID(riid, &IID_IDedupReadFileCallback)) {
        *ppv = This;
        return S_OK;
    }
    if (s->can_list && IsEqualIID(riid, &IID_IDdpListBackupFolder)) {
        s->releases_due++;
        *ppv = &s->lister;
        return S_OK;
    }
    *ppv = NULL;
    return E_NOINTERFACE;
}
static ULONG st_addref(IDedupReadFileCallback *This) { (void)This; return 1; }
static ULONG st_release(IDedupReadFileCallback *This) { (void)This; return 1; }

static HRESULT st_read(IDedupReadFileCallback *This, BSTR path, LONGLONG off, ULONG size, BYTE *buf, ULONG *got,
                       DWORD flags)
{
    rstore *s = (rstore *)This;
    assert_int_equal(flags, 0);
    assert_non_null(path);
    assert_true(path[0] == '/');
    assert_null(strstr(path, ".."));
    assert_true(strncmp(path, "/.ddp/", 6) == 0 ||
                (s->windows_paths && strncmp(path, RS_SVI, strlen(RS_SVI)) == 0));
    assert_true(off >= 0);
    assert_true(size > 0);
    rs_event *e = ev_push(s, RS_READ);
    e->path = xstrdup(path);
    e->off = off;
    e->size = size;
    *got = 0;
    if (s->on_read) s->on_read(s, path, off);
    if (s->fail_sub && strstr(path, s->fail_sub)) {
        e->hr = s->fail_hr;
        return s->fail_hr;
    }
    char *local = local_path(s, path);
    int fd = open(local, O_RDONLY | O_CLOEXEC);
    free(local);
    if (fd < 0) {
        e->hr = HRESULT_FROM_WIN32(errno == ENOENT ? ERROR_FILE_NOT_FOUND : ERROR_ACCESS_DENIED);
        return e->hr;
    }
    size_t done = 0;
    while (done < size) {
        ssize_t r = pread(fd, buf + done, size - done, off + (off_t)done);
        assert_true(r >= 0);
        if (r == 0) break;
        done += (size_t)r;
    }
    close(fd);
    if (s->short_sub && strstr(path, s->short_sub) && done > 0) done--;
    *got = (ULONG)done;
    e->got = (uint32_t)done;
    if (rs_is_container(path)) {
        s->cont_bytes += done;
        s->cont_reads++;
    } else {
        s->meta_bytes += done;
    }
    return S_OK;
}

static HRESULT st_order(IDedupReadFileCallback *This, ULONG n, BSTR *paths, ULONG *np, DEDUP_CONTAINER_EXTENT **plan)
{
    rstore *s = (rstore *)This;
    assert_non_null(np);
    assert_non_null(plan);
    s->orders++;
    rs_event *e = ev_push(s, RS_ORDER);
    e->n = n;
    e->paths = calloc((size_t)n + 1, sizeof *e->paths);
    assert_non_null(e->paths);
    for (ULONG i = 0; i < n; i++) {
        assert_non_null(paths[i]);
        e->paths[i] = xstrdup(paths[i]);
    }
    *np = 0;
    *plan = NULL;
    if (s->order_fail_call == s->orders) {
        e->hr = s->order_hr;
        return s->order_hr;
    }
    if (s->plan) s->plan(s, s->orders, n, paths, np, plan);
    if (*np && *plan) {
        e->nplan = *np;
        e->plan = malloc(*np * sizeof **plan);
        assert_non_null(e->plan);
        memcpy(e->plan, *plan, *np * sizeof **plan);
    }
    return S_OK;
}

static HRESULT st_preview(IDedupReadFileCallback *This, BSTR path, ULONG n, DDP_FILE_EXTENT *ext)
{
    rstore *s = (rstore *)This;
    rs_event *e = ev_push(s, RS_PREVIEW);
    e->path = xstrdup(path);
    e->n = n;
    e->ext = malloc((n ? n : 1) * sizeof *ext);
    assert_non_null(e->ext);
    if (n) memcpy(e->ext, ext, n * sizeof *ext);
    return S_OK;
}

/* ---- IDdpListBackupFolder ---- */

static HRESULT sl_qi(IDdpListBackupFolder *This, REFIID riid, void **ppv)
{
    return st_qi(&of_lister(This)->iface, riid, ppv);
}
static ULONG sl_addref(IDdpListBackupFolder *This)
{
    of_lister(This)->releases_due++;
    return 2;
}
static ULONG sl_release(IDdpListBackupFolder *This)
{
    of_lister(This)->releases_due--;
    return 1;
}

static HRESULT sl_list(IDdpListBackupFolder *This, BSTR folder, ULONG *n, BSTR **names)
{
    rstore *s = of_lister(This);
    rs_event *e = ev_push(s, RS_LIST);
    e->path = xstrdup(folder);
    *n = 0;
    *names = NULL;
    char *local = local_path(s, folder);
    DIR *d = opendir(local);
    free(local);
    if (!d) return HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND);
    BSTR *v = NULL;
    ULONG m = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        v = realloc(v, ((size_t)m + 1) * sizeof *v);
        assert_non_null(v);
        v[m++] = xstrdup(de->d_name);
    }
    closedir(d);
    *n = m;
    *names = v;
    return S_OK;
}

static const IDedupReadFileCallbackVtbl st_vtbl = { st_qi, st_addref, st_release, st_read, st_order, st_preview };
static const IDdpListBackupFolderVtbl sl_vtbl = { sl_qi, sl_addref, sl_release, sl_list };

void rs_init(rstore *s, const char *root, int can_list)
{
    memset(s, 0, sizeof *s);
    s->iface.lpVtbl = &st_vtbl;
    s->lister.lpVtbl = &sl_vtbl;
    s->can_list = can_list;
    s->root = xstrdup(root);
}

void rs_clear(rstore *s)
{
    for (size_t i = 0; i < s->nev; i++) {
        rs_event *e = &s->evs[i];
        free(e->path);
        if (e->paths)
            for (ULONG k = 0; k < e->n; k++) free(e->paths[k]);
        free(e->paths);
        free(e->ext);
        free(e->plan);
    }
    s->nev = 0;
    s->orders = 0;
    s->cont_bytes = s->meta_bytes = s->cont_reads = 0;
    s->hook_done = 0;
}

void rs_free(rstore *s)
{
    rs_clear(s);
    free(s->evs);
    free(s->root);
}

size_t rs_count(const rstore *s, int type, const char *sub)
{
    size_t n = 0;
    for (size_t i = 0; i < s->nev; i++)
        if (s->evs[i].type == type && (!sub || (s->evs[i].path && strstr(s->evs[i].path, sub)))) n++;
    return n;
}

void rs_plan_scrambled(rstore *s, int call, ULONG n, BSTR *paths, ULONG *np, DEDUP_CONTAINER_EXTENT **plan)
{
    (void)call;
    int64_t piece = s->plan_arg > 0 ? s->plan_arg : 64 * 1024;
    size_t total = 0;
    for (ULONG i = 0; i < n; i++) total += (size_t)(rs_file_size(s, paths[i]) / piece) + 1;
    DEDUP_CONTAINER_EXTENT *p = malloc((total ? total : 1) * sizeof *p);
    assert_non_null(p);
    size_t m = 0;
    for (ULONG i = 0; i < n; i++) {
        int64_t size = rs_file_size(s, paths[i]);
        for (int64_t a = 0; a < size; a += piece) p[m++] = (DEDUP_CONTAINER_EXTENT){ i, a, piece };
    }
    for (size_t i = 0; i + 1 < m; i++) { /* deterministic scramble */
        size_t j = i + (i * 7919 + 13) % (m - i);
        DEDUP_CONTAINER_EXTENT t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
    *np = (ULONG)m;
    *plan = p;
}

/* ---- R5-R7 on the recorded calls ---- */

typedef struct rd { const char *path; int64_t off, end; } rd;

static int rd_cmp(const void *pa, const void *pb)
{
    const rd *a = pa, *b = pb;
    int c = strcmp(a->path, b->path);
    if (c) return c;
    return a->off < b->off ? -1 : a->off > b->off;
}

static int64_t ext_end(const DEDUP_CONTAINER_EXTENT *x)
{
    if (x->Length == INT64_MAX || x->StartOffset > INT64_MAX - x->Length) return INT64_MAX;
    return x->StartOffset + x->Length;
}

void rs_check_sequence(const rstore *s, int expect_orders)
{
    int orders = 0;
    const rs_event *order = NULL, *preview = NULL;
    size_t next = 0, cur_k = 0;
    int leftover = 0;
    rd *reads = calloc(s->nev + 1, sizeof *reads);
    assert_non_null(reads);
    size_t nreads = 0;
    for (size_t i = 0; i < s->nev; i++) {
        const rs_event *e = &s->evs[i];
        if (e->type == RS_ORDER) {
            orders++;
            /* R5: stream-map containers first, data containers second, no path twice. */
            for (ULONG a = 0; a < e->n; a++) {
                assert_non_null(strstr(e->paths[a], orders == 1 ? "/Stream/" : "/Data/"));
                for (ULONG b = a + 1; b < e->n; b++) assert_string_not_equal(e->paths[a], e->paths[b]);
            }
            order = e;
            preview = NULL;
            cur_k = 0;
            leftover = 0;
        } else if (e->type == RS_LIST) {
            assert_null(order); /* listing is metadata: before any order */
        } else if (e->type == RS_PREVIEW) {
            assert_true(e->n > 0);
            assert_true(rs_is_container(e->path));
            for (ULONG k = 0; k < e->n; k++) {
                assert_true(e->ext[k].Length > 0 && e->ext[k].Length <= RS_READ_MAX);
                assert_true(e->ext[k].Offset >= 0);
                if (k > 0) assert_true(e->ext[k].Offset >= e->ext[k - 1].Offset + e->ext[k - 1].Length);
            }
            if (order) {
                int listed = 0;
                for (ULONG a = 0; a < order->n; a++) listed |= strcmp(order->paths[a], e->path) == 0;
                assert_true(listed);
                if (order->nplan > 0 && !leftover) {
                    /* The reads of one extent of the plan, in plan order - or, once
                     * no extent fits, the reads after the plan. */
                    size_t k;
                    for (k = cur_k; k < order->nplan; k++) {
                        const DEDUP_CONTAINER_EXTENT *x = &order->plan[k];
                        if (strcmp(order->paths[x->ContainerIndex], e->path) != 0) continue;
                        int inside = 1;
                        for (ULONG r = 0; r < e->n; r++)
                            inside &= e->ext[r].Offset >= x->StartOffset &&
                                      e->ext[r].Offset + e->ext[r].Length <= ext_end(x);
                        if (inside) break;
                    }
                    if (k < order->nplan) cur_k = k;
                    else leftover = 1;
                }
            } else if (s->windows_paths) {
                /* A restore, before any order: only the generation probe of
                 * a store that cannot list. (ddp_restore_plan_list previews
                 * ddp's stream maps without any order.) */
                assert_false(s->can_list);
                assert_non_null(strstr(e->path, "/Stream/"));
                assert_true(e->n == 1 && e->ext[0].Offset == 0 && e->ext[0].Length == 64);
            }
            preview = e;
            next = 0;
        } else if (rs_is_container(e->path)) {
            /* R7: announced by the preview just before, in its order. */
            assert_non_null(preview);
            assert_string_equal(preview->path, e->path);
            while (next < preview->n && !(preview->ext[next].Offset == e->off && preview->ext[next].Length == e->size))
                next++;
            assert_true(next < preview->n);
            next++;
            assert_true(e->size <= RS_READ_MAX);
            reads[nreads].path = e->path;
            reads[nreads].off = e->off;
            reads[nreads].end = e->off + e->size;
            nreads++;
        } else {
            /* Metadata is read before any container is ordered. */
            assert_null(order);
        }
    }
    if (expect_orders >= 0) assert_int_equal(orders, expect_orders);
    /* R7: no container byte read twice. */
    qsort(reads, nreads, sizeof *reads, rd_cmp);
    for (size_t i = 1; i < nreads; i++)
        if (strcmp(reads[i].path, reads[i - 1].path) == 0) assert_true(reads[i].off >= reads[i - 1].end);
    free(reads);
    assert_int_equal(s->releases_due, 0); /* the lister was released */
}
