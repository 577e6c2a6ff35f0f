/* SPDX-License-Identifier: MIT */
/*
 * backup.h: `ddp backup`: an optimized backup of a volume (stubs as the
 * small files they are, the chunk store's containers copied once), as a
 * directory, an incremental directory that builds on an earlier one, or a
 * tar archive ordered for a one-pass restore; and the first step of a
 * selective restore (copying stubs and files out of such a backup). The
 * manifest that describes a backup is documented in docs/BACKUP.md.
 */
#ifndef DDP_BACKUP_H
#define DDP_BACKUP_H

#include <stddef.h>
#include <stdint.h>
#include <ddp/ddpbackup.h>
#include <ddp/ddperror.h>

enum ddp_backup_format { DDP_BACKUP_DIR = 0, DDP_BACKUP_TAR = 1 };

typedef struct ddp_backup_options {
    int format;                     /* DDP_BACKUP_DIR or DDP_BACKUP_TAR */
    const char *incremental_from;   /* previous backup directory (directory format only), or NULL */
    /* Optional, for a progress display: data bytes copied so far of about
     * total (0 when not known: an incremental backup copies only changes). */
    void (*progress)(void *ctx, uint64_t done, uint64_t total);
    void *progress_ctx;
} ddp_backup_options;

typedef struct ddp_backup_stats {
    uint64_t files;             /* regular files in the tree (stubs and metadata included) */
    uint64_t stubs;             /* of which ddp stubs */
    uint64_t metadata_files;    /* of which store metadata under .ddp (settings, catalog) */
    uint64_t dirs, symlinks;
    uint64_t files_copied;      /* files of the volume written into this backup (store metadata not counted) */
    uint64_t metadata_copied;   /* store metadata files (settings, catalog) written into it */
    uint64_t files_unchanged;   /* incremental: files left in an earlier backup of the chain */
    uint64_t containers;        /* containers listed */
    uint64_t pieces_copied;     /* whole containers or appended tails written now */
    uint64_t container_bytes;   /* container bytes written now */
    uint64_t bytes_written;     /* every data byte written (files, containers, manifest) */
    uint64_t skipped;           /* special files (fifo, socket, device) and the like, not backed up */
    uint64_t changed_during;    /* files that changed while being copied (see the warning) */
    uint32_t level;             /* 0 full, n: n-th increment */
    double seconds;
} ddp_backup_stats;

/* Back up the volume at volume_root to dest (a directory that must not exist
 * or be empty, or for DDP_BACKUP_TAR an archive file that must not exist or
 * be empty). Holds the volume's job lock for the whole backup, so no job
 * changes the volume meanwhile (another job running:
 * DDP_E_JOB_ALREADY_RUNNING). st may be NULL. */
HRESULT ddp_backup(const char *volume_root, const char *dest, const ddp_backup_options *opt,
                   ddp_backup_stats *st);

/* Check and normalize a path inside a backed-up volume as a user types it
 * ("a/b.txt", "./a//b"): relative, no ".." component, not empty, not inside
 * .ddp-backup. *out gets the malloc'd form "a/b.txt". E_INVALIDARG otherwise. */
HRESULT ddp_backup_normalize_relpath(const char *in, char **out);

/* ---- the application's step of a selective restore (extract.c) ---- */

enum ddp_backup_item_kind {
    DDP_ITEM_MISSING = 0, DDP_ITEM_STUB = 1, DDP_ITEM_FILE = 2, DDP_ITEM_DIR = 3, DDP_ITEM_SYMLINK = 4
};

/* What a restore does with a file that exists at a restored path. */
enum ddp_existing {
    DDP_EXISTING_REFUSE = 0,    /* fail that path, ERROR_FILE_EXISTS (the default) */
    DDP_EXISTING_KEEP = 1,      /* leave the existing file alone (S_FALSE, kept) */
    DDP_EXISTING_OVERWRITE = 2, /* replace it (atomically) */
    DDP_EXISTING_RENAME = 3     /* keep it as NAME.~N~ (like cp --backup=numbered), restore NAME */
};

typedef struct ddp_backup_item {
    HRESULT hr;          /* S_OK: in place (a stub: staged, see staged); S_FALSE: an existing file was
                          * kept; a failure (detail says why). DDP_E_NOT_FOUND: not in the backup */
    int kind;            /* enum ddp_backup_item_kind */
    int kept;            /* DDP_EXISTING_KEEP left an existing file in place */
    uint64_t size;       /* bytes of the file as backed up (a stub: its logical size is unknown here) */
    char *path;          /* "a/b.txt": the path in the backup and beneath dest_dir (malloc'd) */
    char *staged;        /* a stub waiting for RestoreFiles: "/proc/self/fd/N/NAME" in the private
                          * staging directory, else NULL */
    char *aside;         /* DDP_EXISTING_RENAME: what the existing file was renamed to, or NULL */
    char detail[512];    /* the failure's detail message */
} ddp_backup_item;

struct ddp_extract_private;
typedef struct ddp_extract {
    size_t n;
    ddp_backup_item *items;  /* sorted by path, each path once */
    struct ddp_extract_private *p;
} ddp_extract;

/* Copy relpaths (normalized, ddp_backup_normalize_relpath) out of the backup
 * at `backup` (directory, incremental directory or tar archive, read in one
 * forward pass) beneath dest_dir, with mode, owner (when permitted) and
 * times: a plain file as its bytes (holes left as holes), a symlink as a
 * symlink (never followed), a directory with everything below it. A stub is
 * staged (items[i].staged) for RestoreFiles; ddp_backup_extract_place puts it
 * in place afterwards. Every path is reached beneath dest_dir from a held
 * descriptor (lib/base/safepath.h): a symbolic link or mount point on the
 * way is refused (ERROR_ACCESS_DENIED), never followed; an entry that the
 * backup lists below a non-directory is DDP_E_INVALID_DATA. Files are
 * written in a private staging directory in dest_dir (".ddp-restore.XXXXXX",
 * 0700, removed by ddp_backup_extract_close, and by the next extraction into
 * dest_dir when a killed one left it) and renamed into place, so a path is
 * either restored whole or left as it was. existing: enum ddp_existing.
 * Returns S_OK (each item has its outcome), or the error that stopped
 * everything (the backup or dest_dir cannot be used); *x is then empty. */
HRESULT ddp_backup_extract(const char *backup, size_t n, char *const *relpaths, const char *dest_dir, int existing,
                           ddp_extract *x);
/* A staged stub after RestoreFiles: restore_result S_OK or S_FALSE makes it
 * ready to be put in place by ddp_backup_extract_finish; a failure removes
 * it (nothing is left at its path). items[i].hr gets the outcome. */
void ddp_backup_extract_place(ddp_extract *x, size_t i, HRESULT restore_result);
/* After RestoreFiles: make everything staged durable (one syncfs), then move
 * each file, link and restored stub into place under the existing-file rule
 * (items[i].hr gets the outcome: an existing file refused or kept, ...).
 * Files are written by several threads (DDP_RESTORE_THREADS, default 4) and
 * wait in the staging directory until then: a crash leaves each path as it
 * was or complete. A failed sync fails every file waiting (nothing moved)
 * and is returned. */
HRESULT ddp_backup_extract_finish(ddp_extract *x);
/* The backup store for step 2 (ddp_backupstore_open(backup)); of an S3
 * backup, on the client and manifest of step 1 (not fetched again). */
HRESULT ddp_backup_extract_store(ddp_extract *x, const char *backup, IDedupReadFileCallback **out);
/* The end: staged files not placed (finish not called) are removed, the directories get their
 * owner, mode and times, the target file system is synced (a failure is
 * returned) and the staging directory removed. *x is emptied. */
HRESULT ddp_backup_extract_close(ddp_extract *x);

#endif /* DDP_BACKUP_H */
