/* SPDX-License-Identifier: MIT */
/*
 * restore.h: the restore engine behind IDedupBackupSupport::RestoreFiles,
 * and its planning step on its own (for `ddp restore --list-containers`).
 */
#ifndef DDP_RESTORE_H
#define DDP_RESTORE_H

#include <ddp/ddpbackup.h>

/* The RestoreFiles call itself (the COM object's method forwards here). */
HRESULT ddp_restore_files(ULONG n, BSTR *paths, IDedupReadFileCallback *store, DWORD flags,
                          HRESULT *results);

/* RestoreFiles for stubs that the caller staged in a private directory of
 * its own (ddp restore's staging directory, mode 0700, which it moves them
 * out of afterwards): each file's content is written into its stub's own
 * inode (truncated first) instead of a temporary file renamed over it, and
 * nothing is synced: the caller syncs once before it moves the files into
 * place. A failed file is left partly written: the caller removes it. Every
 * other rule (checks of content, size, attributes) is that of
 * ddp_restore_files. */
HRESULT ddp_restore_files_staged(ULONG n, BSTR *paths, IDedupReadFileCallback *store, HRESULT *results);
/* Plan a restore of the stubs at paths without writing anything: reads the
 * stubs, the store metadata and the stream maps through store, and calls
 * emit() for every container byte range the data phase would read (container
 * path as in the backup, offset, length; coalesced, in container/offset
 * order), first the stream-map ranges already read (kind 2), then the data
 * ranges (kind 1). results (optional) gets each file's status as RestoreFiles
 * would report it so far (S_OK = plannable). Does not call
 * OrderContainersRestore; its own stream-map reads are announced with
 * PreviewContainerRead like any other. */
HRESULT ddp_restore_plan_list(ULONG n, BSTR *paths, IDedupReadFileCallback *store,
                              void (*emit)(void *ctx, int kind, const char *container_path,
                                           uint64_t offset, uint64_t length),
                              void *ctx, HRESULT *results);

#endif /* DDP_RESTORE_H */
