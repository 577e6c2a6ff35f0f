/* SPDX-License-Identifier: MIT */
/*
 * backupstore.h: the backup stores in the box, each an IDedupReadFileCallback
 * over one kind of optimized backup written by `ddp backup`: a plain
 * directory copy, a tar archive read in one forward pass like tape, and an
 * incremental backup set in which one container may lie in several pieces.
 */
#ifndef DDP_BACKUPSTORE_H
#define DDP_BACKUPSTORE_H

#include <stdint.h>
#include <ddp/ddpbackup.h>

typedef struct ddp_backupstore_stats {
    uint64_t read_calls;       /* ReadBackupFile calls */
    uint64_t bytes_read;       /* bytes returned by them */
    uint64_t preview_calls;
    uint64_t order_calls;
    uint64_t passes;           /* forward passes over an archive (tar) */
    uint64_t fetched;          /* S3: body bytes received from the service (read-ahead included) */
    uint64_t requests;         /* S3: HTTP requests (retries included) */
} ddp_backupstore_stats;

/* Open the backup at path: s3://BUCKET/PREFIX (the S3 store), a directory written by `ddp backup` (full or
 * incremental; an incremental one brings in its predecessors) or a tar
 * archive. The object has one reference; Release frees it. */
HRESULT ddp_backupstore_open(const char *path, IDedupReadFileCallback **out);
HRESULT ddp_backupstore_open_dir(const char *dir, IDedupReadFileCallback **out);
HRESULT ddp_backupstore_open_tar(const char *archive, IDedupReadFileCallback **out);
HRESULT ddp_backupstore_open_set(const char *newest_dir, IDedupReadFileCallback **out);
/* A backup in S3, "s3://BUCKET/PREFIX" (full or incremental; settings and
 * credentials as s3config.h reads them). */
HRESULT ddp_backupstore_open_s3(const char *url, IDedupReadFileCallback **out);
/* The same on a client and chain already open (a restore's first step
 * loaded the manifest: it is not fetched again); both are taken over (freed
 * with the store, or here on failure; *chain is emptied). */
struct ddp_s3;
struct ddp_s3_chain;
HRESULT ddp_backupstore_open_s3_opened(struct ddp_s3 *s3, struct ddp_s3_chain *chain, IDedupReadFileCallback **out);
/* Counters of a store opened above. */
void ddp_backupstore_get_stats(IDedupReadFileCallback *store, ddp_backupstore_stats *st);

#endif /* DDP_BACKUPSTORE_H */
