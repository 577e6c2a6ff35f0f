/* SPDX-License-Identifier: MIT */
/*
 * backupstore.c: the front of the backup stores (backupstore.h): tells the
 * kinds of backup apart (an s3:// name, a tar archive, a plain directory copy or full
 * backup, an incremental backup set) and opens the right store; and the
 * counters every store keeps.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "backup/backupstore.h"
#include "backup/backupstore_common.h"
#include "backup/manifest.h"
#include "backup/s3config.h"
#include "base/util.h"

void ddp_backupstore_get_stats(IDedupReadFileCallback *store, ddp_backupstore_stats *st)
{
    memset(st, 0, sizeof *st);
    if (!store) return;
    if (store->lpVtbl != &ddp_bs_dir_vtbl && store->lpVtbl != &ddp_bs_tar_vtbl &&
        store->lpVtbl != &ddp_bs_set_vtbl && store->lpVtbl != &ddp_bs_s3_vtbl)
        return;
    *st = ((ddp_bs_base *)store)->stats;
    if (store->lpVtbl == &ddp_bs_s3_vtbl) ddp_bs_s3_add_stats(store, st);
}

HRESULT ddp_backupstore_open(const char *path, IDedupReadFileCallback **out)
{
    if (!out) return E_POINTER;
    *out = NULL;
    if (!path) return E_POINTER;
    if (ddp_s3_is_url(path)) return ddp_backupstore_open_s3(path, out);
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

