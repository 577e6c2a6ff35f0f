/* SPDX-License-Identifier: MIT */
/*
 * readprogress.c: an IDedupReadFileCallback that passes every call on to
 * the backup store it wraps and draws `ddp restore`'s progress line from the
 * bytes ReadBackupFile returns (how much of the backup has been read, and how
 * fast; the total is not known before the restore plans its reads).
 */
#include <stdlib.h>

#include "cli.h"

typedef struct readprogress {
    IDedupReadFileCallback base;
    IDedupReadFileCallback *inner;
    cli_progress *bar;
    uint64_t bytes;
    ULONG refs;
} readprogress;

static HRESULT rp_query(IDedupReadFileCallback *This, REFIID riid, void **ppv)
{
    readprogress *r = (readprogress *)This;
    return IDedupReadFileCallback_QueryInterface(r->inner, riid, ppv);
}

static ULONG rp_addref(IDedupReadFileCallback *This) { return ++((readprogress *)This)->refs; }

static ULONG rp_release(IDedupReadFileCallback *This)
{
    readprogress *r = (readprogress *)This;
    ULONG left = --r->refs;
    if (!left) {
        IDedupReadFileCallback_Release(r->inner);
        free(r);
    }
    return left;
}

static HRESULT rp_read(IDedupReadFileCallback *This, BSTR path, LONGLONG off, ULONG n, BYTE *buf, ULONG *got,
                       DWORD flags)
{
    readprogress *r = (readprogress *)This;
    HRESULT hr = IDedupReadFileCallback_ReadBackupFile(r->inner, path, off, n, buf, got, flags);
    if (SUCCEEDED(hr) && got) {
        r->bytes += *got;
        cli_progress_update(r->bar, r->bytes, 0);
    }
    return hr;
}

static HRESULT rp_order(IDedupReadFileCallback *This, ULONG n, BSTR *paths, ULONG *entries,
                        DEDUP_CONTAINER_EXTENT **plan)
{
    readprogress *r = (readprogress *)This;
    return IDedupReadFileCallback_OrderContainersRestore(r->inner, n, paths, entries, plan);
}

static HRESULT rp_preview(IDedupReadFileCallback *This, BSTR path, ULONG n, DDP_FILE_EXTENT *ext)
{
    readprogress *r = (readprogress *)This;
    return IDedupReadFileCallback_PreviewContainerRead(r->inner, path, n, ext);
}

static const IDedupReadFileCallbackVtbl rp_vtbl = { rp_query, rp_addref, rp_release, rp_read, rp_order, rp_preview };

IDedupReadFileCallback *cli_read_progress(IDedupReadFileCallback *inner, cli_progress *bar)
{
    readprogress *r = calloc(1, sizeof *r);
    if (!r) return inner;
    r->base.lpVtbl = &rp_vtbl;
    r->inner = inner; /* the wrapper now holds the caller's reference */
    r->bar = bar;
    r->refs = 1;
    return &r->base;
}
