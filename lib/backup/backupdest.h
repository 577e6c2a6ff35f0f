/* SPDX-License-Identifier: MIT */
/*
 * backupdest.h: where `ddp backup` writes (backupdest.c): a directory
 * destination that is empty, new, or what an unfinished backup left (marked
 * as such, so that a rerun may take it over); a failed backup that leaves
 * nothing behind; and the temporary file of a tar backup, which no killed
 * backup leaves for good.
 */
#ifndef DDP_BACKUPDEST_H
#define DDP_BACKUPDEST_H

#include <ddp/ddperror.h>

/* The mark of a directory backup in progress: DEST/.ddp-backup/unfinished,
 * created before anything else is written and removed once the manifest is
 * in place. A DEST holding it and no manifest is an unfinished backup. */
#define DDP_BACKUP_UNFINISHED ".ddp-backup/unfinished"

/* Check a directory DEST: it must not exist (it is created, 0700, *created
 * = 1), be empty, or be an unfinished backup (a killed or failed run: its
 * contents are removed, never following a link). Then mark it unfinished
 * and return its descriptor in *destfd. ERROR_DIR_NOT_EMPTY for anything
 * else, ERROR_FILE_EXISTS for a non-directory. */
HRESULT ddp_backup_dest_open_dir(const char *dest, int *created, int *destfd);
/* The manifest is in place: remove the mark (and make that durable). */
HRESULT ddp_backup_dest_finished(int destfd, const char *dest);
/* The backup failed: remove everything it wrote in DEST (which was empty or
 * an unfinished backup before), and DEST itself when created. */
void ddp_backup_dest_discard(int destfd, const char *dest, int created);

/* A tar DEST: remove what killed backups to DEST left (DEST.tmp.PID files
 * that no live backup holds), then open the archive's temporary file
 * DEST.tmp.PID, flock()ed while it is written. *tmp is malloc'd. */
HRESULT ddp_backup_tar_tmp_open(const char *dest, char **tmp, int *fd);

#endif /* DDP_BACKUPDEST_H */
