/* SPDX-License-Identifier: MIT */
/*
 * backup_s3.h: `ddp backup VOLUME s3://BUCKET/PREFIX [--incremental PREV]`
 * (backup_s3.c): the writer of a backup into S3, called by ddp_backup()
 * (backup.c) once the walk has built the manifest.
 */
#ifndef DDP_BACKUP_S3_H
#define DDP_BACKUP_S3_H

#include "backup/backupjob.h"

typedef struct ddp_backup_s3 ddp_backup_s3;

/* Get ready to write the backup dest (s3://...): the bucket must exist and
 * dest must not hold a complete backup yet (objects of an interrupted one
 * are reused where they hold the same bytes); prev_url (or NULL) is the
 * backup an incremental one builds on. */
HRESULT ddp_backup_s3_begin(const char *dest, const char *prev_url, ddp_backup_s3 **out);
/* The previous backup's manifest (NULL for a full backup). */
const ddp_manifest *ddp_backup_s3_prev(ddp_backup_s3 *u);
/* How the new manifest names the previous backup (malloc'd). */
char *ddp_backup_s3_previous_ref(ddp_backup_s3 *u);
/* Upload what b's walk planned, check that every object the manifest
 * names exists, then put the manifest. */
HRESULT ddp_backup_s3_write(ddp_backup_s3 *u, bctx *b);
void ddp_backup_s3_end(ddp_backup_s3 *u);

#endif /* DDP_BACKUP_S3_H */
