/* SPDX-License-Identifier: MIT */
/*
 * rsfiles.c: IDedupBackupSupport::RestoreFiles from the command line, for
 * the e2e tests: restore the stubs or Windows reparse files at FILE... from
 * the backup BACKUP (a directory, tar archive or incremental set, opened with
 * ddp's own stores), and print one line per file: "HRESULT FILE".
 *
 * usage: rsfiles [--no-list] BACKUP FILE...
 *   --no-list  hide the store's IDdpListBackupFolder (QueryInterface answers
 *              E_NOINTERFACE for it), so ddp probes stream-container
 *              generations instead of listing them.
 * Exit status: 0 when RestoreFiles returned S_OK, 1 otherwise, 2 on usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ddp/ddpbackup.h>

#include "backup/backupstore.h"
#include "base/util.h"

/* A wrapper store that forwards everything but the listing interface. */
typedef struct nolist {
    IDedupReadFileCallback iface;
    IDedupReadFileCallback *inner;
} nolist;

static HRESULT nl_qi(IDedupReadFileCallback *This, REFIID riid, void **ppv)
{
    if (IsEqualIID(riid, &IID_IDdpListBackupFolder)) {
        *ppv = NULL;
        return E_NOINTERFACE;
    }
    if (IsEqualIID(riid, &IID_IUnknown) || IsEqualIID(riid, &IID_IDedupReadFileCallback)) {
        *ppv = This;
        return S_OK;
    }
    *ppv = NULL;
    return E_NOINTERFACE;
}
static ULONG nl_addref(IDedupReadFileCallback *This) { (void)This; return 1; }
static ULONG nl_release(IDedupReadFileCallback *This) { (void)This; return 1; }
static HRESULT nl_read(IDedupReadFileCallback *This, BSTR p, LONGLONG off, ULONG n, BYTE *buf, ULONG *got, DWORD fl)
{
    IDedupReadFileCallback *in = ((nolist *)This)->inner;
    return IDedupReadFileCallback_ReadBackupFile(in, p, off, n, buf, got, fl);
}
static HRESULT nl_order(IDedupReadFileCallback *This, ULONG n, BSTR *paths, ULONG *np, DEDUP_CONTAINER_EXTENT **plan)
{
    IDedupReadFileCallback *in = ((nolist *)This)->inner;
    return IDedupReadFileCallback_OrderContainersRestore(in, n, paths, np, plan);
}
static HRESULT nl_preview(IDedupReadFileCallback *This, BSTR p, ULONG n, DDP_FILE_EXTENT *ext)
{
    IDedupReadFileCallback *in = ((nolist *)This)->inner;
    return IDedupReadFileCallback_PreviewContainerRead(in, p, n, ext);
}
static const IDedupReadFileCallbackVtbl nl_vtbl = { nl_qi, nl_addref, nl_release, nl_read, nl_order, nl_preview };

int main(int argc, char **argv)
{
    int a = 1, no_list = 0;
    if (a < argc && strcmp(argv[a], "--no-list") == 0) {
        no_list = 1;
        a++;
    }
    if (argc - a < 2) {
        fprintf(stderr, "usage: rsfiles [--no-list] BACKUP FILE...\n");
        return 2;
    }
    const char *backup = argv[a++];
    ULONG n = (ULONG)(argc - a);
    IDedupReadFileCallback *store = NULL;
    HRESULT hr = ddp_backupstore_open(backup, &store);
    if (FAILED(hr)) {
        fprintf(stderr, "rsfiles: %s: 0x%08X %s\n", backup, (unsigned)hr, ddp_error_detail());
        return 1;
    }
    nolist nl = { { &nl_vtbl }, store };
    IDedupBackupSupport *bs = NULL;
    if (FAILED(DedupCreateBackupSupport(&bs))) return 1;
    HRESULT *res = calloc(n, sizeof *res);
    if (!res) return 1;
    hr = IDedupBackupSupport_RestoreFiles(bs, n, argv + a, no_list ? &nl.iface : store, DEDUP_RECONSTRUCT_UNOPTIMIZED,
                                          res);
    for (ULONG i = 0; i < n; i++) printf("0x%08X %s\n", (unsigned)res[i], argv[a + (int)i]);
    if (FAILED(hr)) fprintf(stderr, "rsfiles: 0x%08X %s\n", (unsigned)hr, ddp_error_detail());
    free(res);
    IDedupBackupSupport_Release(bs);
    IDedupReadFileCallback_Release(store);
    return hr == S_OK ? 0 : 1;
}
