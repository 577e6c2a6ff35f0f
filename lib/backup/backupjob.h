/* SPDX-License-Identifier: MIT */
/*
 * backupjob.h: the state of one `ddp backup` run (backup.c), shared with
 * the writer of backups to S3 (backup_s3.c): the volume, the manifest being
 * built by the walk, which files and container pieces this backup writes,
 * the previous backup of an incremental one, the counters and the progress.
 */
#ifndef DDP_BACKUPJOB_H
#define DDP_BACKUPJOB_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include "backup/backup.h"
#include "backup/manifest.h"
#include "volume/volume.h"

typedef struct bctx {
    ddp_volume *v;
    int vfd;                  /* volume root */
    int destfd;               /* dir format: the backup directory */
    ddp_manifest m;           /* being built */
    uint8_t *copy_piece;      /* [entry]: C: index of the piece written now + 1 (0: none); F: 1 to copy */
    size_t items_cap;
    const ddp_manifest *prev; /* incremental: the previous backup */
    ddp_backup_stats *st;
    uint8_t *buf;             /* COPY_BUF_SIZE */
    uint64_t tmp_counter;
    const ddp_backup_options *opt;
    uint64_t total, done;     /* progress: data bytes to copy (0: unknown), copied */
} bctx;

/* A file's entry after it was opened for copying (fd, st): if it changed
 * since the walk, take what it is now (counted in changed_during). */
void ddp_backup_refresh_entry(bctx *b, ddp_mf_entry *e, const struct stat *st, int sfd);

/* n more data bytes copied: the caller's progress display (opt->progress). */
void ddp_backup_progress(bctx *b, uint64_t n);

#endif /* DDP_BACKUPJOB_H */
