/* SPDX-License-Identifier: MIT */
/*
 * backupstore_common.h: what the three backup stores (backupstore_dir.c,
 * backupstore_tar.c, backupstore_set.c) share, from backupstore_common.c:
 * the common head of every store object, QueryInterface and the reference
 * count, safe path handling, the checks of a preview, and a read plan from
 * a manifest. The stores never call each other; the front (backupstore.c)
 * picks one.
 */
#ifndef DDP_BACKUPSTORE_COMMON_H
#define DDP_BACKUPSTORE_COMMON_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <ddp/ddpbackup.h>
#include "backup/backupstore.h"
#include "backup/manifest.h"

/* ---- the common head of a store object ---- */

/* Every store object starts with this: lpVtbl first (COM layout), then the
 * reference count and the counters, so ddp_backupstore_get_stats() works on
 * any of the three. */
typedef struct ddp_bs_base ddp_bs_base;
struct ddp_bs_base {
    const IDedupReadFileCallbackVtbl *lpVtbl;
    atomic_uint refs;
    ddp_backupstore_stats stats;
    /* IDdpListBackupFolder, ddp's own optional interface (QueryInterface
     * answers it with &lister when list is set): the kind's own listing. */
    IDdpListBackupFolder lister;
    HRESULT (*list)(ddp_bs_base *b, const char *folder, ULONG *n, BSTR **names);
};

extern const IDedupReadFileCallbackVtbl ddp_bs_dir_vtbl;
extern const IDedupReadFileCallbackVtbl ddp_bs_tar_vtbl;
extern const IDedupReadFileCallbackVtbl ddp_bs_set_vtbl;
extern const IDedupReadFileCallbackVtbl ddp_bs_s3_vtbl;
/* The S3 store's network counters into st (backupstore_s3.c). */
void ddp_bs_s3_add_stats(IDedupReadFileCallback *store, ddp_backupstore_stats *st);

/* Set up the listing interface of a store with the kind's own list function
 * (folder already checked: absolute, no trailing '/'). */
void ddp_bs_init_lister(ddp_bs_base *b, HRESULT (*list)(ddp_bs_base *b, const char *folder, ULONG *n, BSTR **names));
/* The names of the files ('F') and containers ('C') of manifest m directly in
 * folder (malloc'd, as IDdpListBackupFolder hands them out);
 * ERROR_PATH_NOT_FOUND when none. */
HRESULT ddp_bs_list_from_manifest(const ddp_manifest *m, const char *folder, ULONG *n, BSTR **names);

/* QueryInterface and AddRef, the same for the three. */
HRESULT ddp_bs_query_interface(IDedupReadFileCallback *This, REFIID riid, void **ppv);
ULONG ddp_bs_addref(IDedupReadFileCallback *This);
/* Drop one reference; returns the count left (0: the caller frees). */
ULONG ddp_bs_release_ref(IDedupReadFileCallback *This);

/* The argument checks every ReadBackupFile makes: path (ddp_path_check_absolute),
 * offset >= 0, non-NULL buffers. Sets *ReturnedSize = 0 when it can. */
HRESULT ddp_bs_check_read_args(const char *path, LONGLONG off, ULONG n, const BYTE *buf, ULONG *got);

/* Shared parts of the stores' callbacks (backupstore_common.c): the checks of a
 * PreviewContainerRead, and a read plan built from the manifest's container
 * pieces, one extent per piece, the last piece of each container running to
 * the end, ordered by backup level (DDP_BS_ORDER_BY_LEVEL), by tar member
 * (DDP_BS_ORDER_BY_MEMBER) or by container and offset (DDP_BS_ORDER_BY_CONTAINER). */
enum { DDP_BS_ORDER_BY_LEVEL = 0, DDP_BS_ORDER_BY_MEMBER = 1, DDP_BS_ORDER_BY_CONTAINER = 2 };
HRESULT ddp_bs_check_preview(ddp_bs_base *b, const char *path, ULONG n, const DDP_FILE_EXTENT *ext);
HRESULT ddp_bs_order_from_manifest(ddp_bs_base *b, const ddp_manifest *m, int order, ULONG n, BSTR *paths,
                                   ULONG *entries, DEDUP_CONTAINER_EXTENT **plan);
/* The entry of store path in manifest m, for a ReadBackupFile: a file or
 * container (ERROR_FILE_NOT_FOUND when absent, ERROR_PATH_NOT_FOUND when its
 * directory is; a directory or a symbolic link is refused). */
HRESULT ddp_bs_manifest_lookup(const ddp_manifest *m, const char *path, const ddp_mf_entry **out);
/* The start of a ReadBackupFile over a manifest's store: the call counted,
 * its arguments checked, the file's entry looked up. */
HRESULT ddp_bs_read_entry(ddp_bs_base *b, const ddp_manifest *m, const char *path, LONGLONG off, ULONG n,
                          const BYTE *buf, ULONG *got, const ddp_mf_entry **out);

#endif /* DDP_BACKUPSTORE_COMMON_H */
