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
    uint64_t files_copied;      /* files written into this backup */
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

/* ---- the application's step of a selective restore ---- */

enum ddp_backup_item_kind {
    DDP_ITEM_MISSING = 0, DDP_ITEM_STUB = 1, DDP_ITEM_FILE = 2, DDP_ITEM_DIR = 3, DDP_ITEM_SYMLINK = 4
};

typedef struct ddp_backup_item {
    HRESULT hr;          /* S_OK when written to dest_dir; DDP_E_NOT_FOUND when not in the backup */
    int kind;            /* enum ddp_backup_item_kind */
    uint64_t size;       /* bytes of the file as backed up (a stub: its logical size is unknown here) */
} ddp_backup_item;

/* Copy each relpaths[i] (normalized, ddp_backup_normalize_relpath) out of the
 * backup at `backup` (directory, incremental directory or tar archive; a tar
 * archive is read in one forward pass) to dest_dir/relpaths[i], with its
 * mode, owner (when permitted) and times: a stub or a plain file as it is, a
 * directory as an empty directory, a symlink as a symlink. An existing file
 * there is replaced atomically. items[i] gets each outcome. Returns S_OK, or
 * the error that stopped everything (the backup cannot be read). */
HRESULT ddp_backup_extract(const char *backup, size_t n, char *const *relpaths, const char *dest_dir,
                           ddp_backup_item *items);

#endif /* DDP_BACKUP_H */
