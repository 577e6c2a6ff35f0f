/*
 * backupstore_internal.h: what the backup writer (backup.c) and the three
 * backup stores (backupstore_dir.c, backupstore_tar.c, backupstore_set.c)
 * share: the common head of every store object, safe path handling, and the
 * backup manifest (docs/BACKUP.md) in memory.
 */
#ifndef DDP_BACKUPSTORE_INTERNAL_H
#define DDP_BACKUPSTORE_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <ddp/ddpbackup.h>
#include "backup/backupstore.h"
#include "store/identity.h"

/* ---- the common head of a store object ---- */

/* Every store object starts with this: lpVtbl first (COM layout), then the
 * reference count and the counters, so ddp_backupstore_get_stats() works on
 * any of the three. */
typedef struct ddp_bs_base {
    const IDedupReadFileCallbackVtbl *lpVtbl;
    atomic_uint refs;
    ddp_backupstore_stats stats;
} ddp_bs_base;

extern const IDedupReadFileCallbackVtbl ddp_bs_dir_vtbl;
extern const IDedupReadFileCallbackVtbl ddp_bs_tar_vtbl;
extern const IDedupReadFileCallbackVtbl ddp_bs_set_vtbl;

/* QueryInterface and AddRef, the same for the three (backupstore_dir.c). */
HRESULT ddp_bs_query_interface(IDedupReadFileCallback *This, REFIID riid, void **ppv);
ULONG ddp_bs_addref(IDedupReadFileCallback *This);
/* Drop one reference; returns the count left (0: the caller frees). */
ULONG ddp_bs_release_ref(IDedupReadFileCallback *This);

/* The argument checks every ReadBackupFile makes: path (ddp_bs_check_path),
 * offset >= 0, non-NULL buffers. Sets *ReturnedSize = 0 when it can. */
HRESULT ddp_bs_check_read_args(const char *path, LONGLONG off, ULONG n, const BYTE *buf, ULONG *got);

/* A store path: starts with '/', no empty ("//", trailing '/'), "." or ".."
 * component, at most 4096 bytes. E_INVALIDARG (with a detail) otherwise. */
HRESULT ddp_bs_check_path(const char *path);

/* Open rel ("a/b/c", no leading '/') beneath the directory rootfd, one
 * component at a time with O_NOFOLLOW, so that nothing outside the root is
 * ever reached: a symbolic link anywhere on the way is refused
 * (HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED)). A missing last component gives
 * ERROR_FILE_NOT_FOUND, a missing or non-directory parent ERROR_PATH_NOT_FOUND.
 * flags: O_RDONLY for files; the opened object must be a regular file unless
 * allow_dir (then a directory is accepted too). *st gets its fstat. */
struct stat;
HRESULT ddp_bs_open_beneath(int rootfd, const char *rel, int allow_dir, int *fd, struct stat *st);

/* pread until n bytes or end of file; *got = bytes read. Errors via errno. */
HRESULT ddp_bs_pread_upto(int fd, void *buf, size_t n, uint64_t off, size_t *got, const char *what);

/* ---- the manifest ---- */

#define DDP_MANIFEST_PATH ".ddp-backup/manifest"
#define DDP_MANIFEST_DIR ".ddp-backup"
#define DDP_MANIFEST_VERSION 1u
#define DDP_MANIFEST_MAX_SIZE ((size_t)1 << 30)   /* 1 GiB */
#define DDP_BACKUP_MAX_LEVEL 100000u
#define DDP_BACKUP_ID_SIZE 16

enum { DDP_BACKUP_FMT_DIR = 0, DDP_BACKUP_FMT_TAR = 1 };

typedef struct ddp_mf_piece {
    uint32_t level;       /* backup of the chain that holds this piece */
    uint64_t offset;      /* container offset of its first byte */
    uint64_t length;
    int64_t member;       /* tar member index, -1 for directory backups */
    char *file;           /* "/..." path of the piece file inside that backup */
} ddp_mf_piece;

typedef struct ddp_mf_entry {
    char type;            /* 'D' directory, 'F' file, 'L' symlink, 'C' container */
    uint8_t is_stub;      /* F: a ddp stub */
    uint32_t level;       /* F: backup of the chain that holds the file */
    int64_t member;       /* D, F, L: tar member index, -1 for directory backups */
    uint64_t size;        /* F: bytes; C: container length at backup time */
    uint32_t mode, uid, gid;  /* D, F, L (mode with the file type bits masked off) */
    int64_t mtime_sec, ctime_sec;
    uint32_t mtime_nsec, ctime_nsec;
    uint64_t tailsum;     /* C: xxh64 of the last <= 4096 bytes before size */
    char *path;           /* "/a/b": relative to the volume root */
    char *target;         /* L: link target */
    uint32_t npieces;     /* C */
    ddp_mf_piece *pieces; /* C: contiguous, from offset 0 to size */
} ddp_mf_entry;

/* One tar member, in archive order. */
typedef struct ddp_mf_member {
    const char *path;     /* "/..." (points into an entry or piece) */
    uint64_t size;        /* data bytes (0 for directories and links) */
    size_t entry;         /* index into entries */
    int32_t piece;        /* piece index for containers, -1 otherwise */
} ddp_mf_member;

typedef struct ddp_manifest {
    uint32_t version;
    uint8_t id[DDP_BACKUP_ID_SIZE];
    uint32_t level;
    int format;
    char *source;
    int64_t time;
    uint8_t store_id[DDP_STORE_ID_SIZE];
    char *previous;                      /* NULL for a full backup */
    uint8_t previous_id[DDP_BACKUP_ID_SIZE];
    size_t count, cap;
    ddp_mf_entry *entries;
    size_t *by_path;                     /* entry indexes sorted by path */
    size_t nmembers;                     /* tar: members 1..nmembers-1; [0] is the manifest */
    ddp_mf_member *members;
} ddp_manifest;

/* Parse and check a manifest (checksum, every field, bounds, contiguous
 * pieces, unique paths, tar member order). DDP_E_INVALID_DATA with a detail
 * naming `what` and the line on any problem. header_only: stop after the
 * header (the checksum is still verified). */
HRESULT ddp_manifest_parse(const uint8_t *buf, size_t n, const char *what, int header_only,
                           ddp_manifest *m);
/* Load DIR/.ddp-backup/manifest. No manifest: DDP_E_NOT_FOUND. */
HRESULT ddp_manifest_load(const char *dir, int header_only, ddp_manifest *m);
/* Text of m (malloc'd). */
char *ddp_manifest_encode(const ddp_manifest *m, size_t *n);
/* Shared parts of the stores' callbacks (backupstore_dir.c): the checks of a
 * PreviewContainerRead, and a read plan built from the manifest's container
 * pieces, ordered by tar member (by_member) or by backup level, one extent
 * per piece, the last piece of each container running to the end. */
HRESULT ddp_bs_check_preview(ddp_bs_base *b, const char *path, ULONG n, const DDP_FILE_EXTENT *ext);
HRESULT ddp_bs_order_from_manifest(ddp_bs_base *b, const ddp_manifest *m, int by_member, ULONG n, BSTR *paths,
                                   ULONG *entries, DEDUP_CONTAINER_EXTENT **plan);
/* Give fd the owner, mode and times an entry records (backup.c; best effort). */
void ddp_backup_set_attrs_fd(int fd, const ddp_mf_entry *e);
void ddp_manifest_free(ddp_manifest *m);
/* Build by_path (and members for tar); the parser calls it. */
HRESULT ddp_manifest_index(ddp_manifest *m, const char *what);
const ddp_mf_entry *ddp_manifest_find(const ddp_manifest *m, const char *path);
/* Does the manifest know the parent directory of path? ("/" always.) */
int ddp_manifest_has_parent(const ddp_manifest *m, const char *path);

/* ---- a chain of directory backups (backupstore_set.c) ---- */

typedef struct ddp_backup_chain {
    ddp_manifest newest;     /* fully parsed */
    uint32_t nlevels;        /* newest.level + 1 */
    char **dirs;             /* [level]: absolute directory of that backup */
    int *dirfds;             /* [level]: O_DIRECTORY fds, or -1 */
} ddp_backup_chain;

/* Open the backup in dir and every earlier one it builds on (through each
 * manifest's "previous"), checking ids, levels and store ids. */
HRESULT ddp_backup_chain_open(const char *dir, ddp_backup_chain *c);
void ddp_backup_chain_close(ddp_backup_chain *c);
/* Resolve a manifest's previous path against the directory holding dir. */
char *ddp_backup_resolve_previous(const char *dir, const char *previous);

/* ---- reading a tar backup forward (backupstore_tar.c) ---- */

typedef struct ddp_tar_reader ddp_tar_reader;
/* Open the archive and read its first member, the manifest (checked). */
HRESULT ddp_tar_reader_open(const char *archive, ddp_tar_reader **out);
const ddp_manifest *ddp_tar_reader_manifest(const ddp_tar_reader *r);
/* Go to the start of member m's data: forward in this pass, or a new pass
 * when m is behind. Checks the member's name and size against the manifest. */
HRESULT ddp_tar_reader_goto(ddp_tar_reader *r, size_t m);
/* Read the current member's data sequentially: *got < n only at its end. */
HRESULT ddp_tar_reader_read(ddp_tar_reader *r, void *buf, size_t n, size_t *got);
/* Did the archive fail to read (truncated, damaged)? */
int ddp_tar_reader_broken(const ddp_tar_reader *r);
uint64_t ddp_tar_reader_passes(const ddp_tar_reader *r);
void ddp_tar_reader_close(ddp_tar_reader *r);

#endif /* DDP_BACKUPSTORE_INTERNAL_H */
