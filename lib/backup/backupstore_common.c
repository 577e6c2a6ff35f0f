/* SPDX-License-Identifier: MIT */
/*
 * backupstore_common.c: what the three backup stores (dir, tar, set) share
 * (backupstore_common.h): QueryInterface and the reference count of the
 * common object head, the checks of a store path and of ReadBackupFile's
 * arguments, the safe open beneath a backup root (one component at a time,
 * O_NOFOLLOW), the checks of a PreviewContainerRead, a read plan built
 * from a manifest's container pieces, and the frame of IDdpListBackupFolder
 * (ddp's own interface that lists a folder of the backup, which Windows'
 * reparse points need to find a stream container's generation; each kind
 * lists in its own way, a manifest-based listing is here).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup/manifest.h"
#include "backup/backupstore_common.h"
#include "base/safepath.h"
#include "base/util.h"



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
    ddp_bs_base *b = (ddp_bs_base *)This;
    if (b->list && IsEqualIID(riid, &IID_IDdpListBackupFolder)) {
        ddp_bs_addref(This);
        *ppv = &b->lister;
        return S_OK;
    }
    return E_NOINTERFACE;
}

/* ---- IDdpListBackupFolder: the same object, reached through its lister ---- */

static ddp_bs_base *base_of(IDdpListBackupFolder *l)
{
    return (ddp_bs_base *)(void *)((char *)l - offsetof(ddp_bs_base, lister));
}

static HRESULT lister_qi(IDdpListBackupFolder *This, REFIID riid, void **ppv)
{
    if (!This) return E_POINTER;
    return ddp_bs_query_interface((IDedupReadFileCallback *)base_of(This), riid, ppv);
}

static ULONG lister_addref(IDdpListBackupFolder *This)
{
    return ddp_bs_addref((IDedupReadFileCallback *)base_of(This));
}

static ULONG lister_release(IDdpListBackupFolder *This)
{
    IDedupReadFileCallback *o = (IDedupReadFileCallback *)base_of(This);
    return o->lpVtbl->Release(o); /* the kind's Release frees on the last one */
}

static HRESULT lister_list(IDdpListBackupFolder *This, BSTR folder, ULONG *n, BSTR **names)
{
    if (!This || !n || !names) return E_POINTER;
    *n = 0;
    *names = NULL;
    HRESULT hr = ddp_path_check_absolute(folder);
    if (FAILED(hr)) return hr;
    ddp_bs_base *b = base_of(This);
    return b->list(b, folder, n, names);
}

static const IDdpListBackupFolderVtbl lister_vtbl = { lister_qi, lister_addref, lister_release, lister_list };

void ddp_bs_init_lister(ddp_bs_base *b, HRESULT (*list)(ddp_bs_base *b, const char *folder, ULONG *n, BSTR **names))
{
    b->lister.lpVtbl = &lister_vtbl;
    b->list = list;
}

HRESULT ddp_bs_list_from_manifest(const ddp_manifest *m, const char *folder, ULONG *n, BSTR **names)
{
    size_t flen = strlen(folder);
    BSTR *v = NULL;
    ULONG k = 0, cap = 0;
    for (size_t i = 0; i < m->count; i++) {
        const ddp_mf_entry *e = &m->entries[i];
        if (e->type != 'F' && e->type != 'C') continue;
        if (strncmp(e->path, folder, flen) != 0 || e->path[flen] != '/') continue;
        const char *name = e->path + flen + 1;
        if (!*name || strchr(name, '/')) continue;
        if (k == cap) {
            cap = cap ? cap * 2 : 16;
            v = ddp_xrealloc(v, (size_t)cap * sizeof *v);
        }
        v[k++] = ddp_strdup(name);
    }
    if (k == 0) {
        free(v);
        return ddp_manifest_has_parent(m, folder) ? S_OK : HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND);
    }
    *n = k;
    *names = v;
    return S_OK;
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


HRESULT ddp_bs_check_read_args(const char *path, LONGLONG off, ULONG n, const BYTE *buf, ULONG *got)
{
    if (!got) return E_POINTER;
    *got = 0;
    HRESULT hr = ddp_path_check_absolute(path);
    if (FAILED(hr)) return hr;
    if (off < 0) return ddp_fail(E_INVALIDARG, "backup store: negative offset %lld for %s", (long long)off, path);
    if (n > 0 && !buf) return E_POINTER;
    return S_OK;
}

/* Why a component could not be opened: a symlink is refused, a missing
 * entry is "not found" (file or path, by position), the rest maps errno. */




HRESULT ddp_bs_check_preview(ddp_bs_base *b, const char *path, ULONG n, const DDP_FILE_EXTENT *ext)
{
    b->stats.preview_calls++;
    HRESULT hr = ddp_path_check_absolute(path);
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

HRESULT ddp_bs_order_from_manifest(ddp_bs_base *b, const ddp_manifest *m, int order, ULONG n, BSTR *paths,
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
        if (FAILED(ddp_path_check_absolute(paths[i]))) {
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
            int64_t key = order == DDP_BS_ORDER_BY_MEMBER ? pc->member
                        : order == DDP_BS_ORDER_BY_CONTAINER ? 0 : (int64_t)pc->level;
            items[k++] = (plan_item){ key, i, pc->offset, pc->length,
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

HRESULT ddp_bs_manifest_lookup(const ddp_manifest *m, const char *path, const ddp_mf_entry **out)
{
    const ddp_mf_entry *e = ddp_manifest_find(m, path);
    *out = e;
    if (!e) {
        if (ddp_manifest_has_parent(m, path))
            return ddp_fail(HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND), "backup store: %s is not in the backup", path);
        return ddp_fail(HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND),
                        "backup store: the directory of %s is not in the backup", path);
    }
    if (e->type == 'D') return ddp_fail(ddp_hresult_from_errno(EISDIR), "backup store: %s is a directory", path);
    if (e->type == 'L')
        return ddp_fail(HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED), "backup store: %s is a symbolic link: refused", path);
    return S_OK;
}

HRESULT ddp_bs_read_entry(ddp_bs_base *b, const ddp_manifest *m, const char *path, LONGLONG off, ULONG n,
                          const BYTE *buf, ULONG *got, const ddp_mf_entry **out)
{
    b->stats.read_calls++;
    HRESULT hr = ddp_bs_check_read_args(path, off, n, buf, got);
    if (FAILED(hr)) return hr;
    return ddp_bs_manifest_lookup(m, path, out);
}
