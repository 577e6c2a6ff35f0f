/* SPDX-License-Identifier: MIT */
/*
 * manifest.h: a backup's manifest in memory (docs/BACKUP.md has the text
 * format): what every entry of the backed-up tree was, and where each piece
 * of each container lies in the chain of backups. Parsed, checked, indexed
 * and written by manifest.c.
 */
#ifndef DDP_MANIFEST_H
#define DDP_MANIFEST_H

#include <stddef.h>
#include <stdint.h>
#include "store/identity.h"

#define DDP_MANIFEST_PATH ".ddp-backup/manifest"
#define DDP_MANIFEST_DIR ".ddp-backup"
#define DDP_MANIFEST_VERSION 1u         /* directory and tar backups; S3 without packs */
#define DDP_MANIFEST_VERSION_PACKS 2u   /* S3 backups with pack objects (K records, F pack fields) */
#define DDP_PACK_DIR ".ddp-backup/pack"  /* pack N is the object PREFIX/.ddp-backup/pack/NNNNNNNN */
#define DDP_PACK_MAX_NUMBER 99999999u
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
    uint32_t pack;        /* F (version 2): 0 its own object, else the pack number at `level` */
    uint64_t pack_off;    /* F in a pack: offset of its first byte in the pack */
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

/* A pack object (version 2): many small files of one backup of the chain. */
typedef struct ddp_mf_pack {
    uint32_t level;       /* the backup of the chain that holds it */
    uint32_t number;      /* 1..DDP_PACK_MAX_NUMBER */
    uint64_t size;        /* its length in bytes */
} ddp_mf_pack;

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
    size_t npacks;                       /* version 2: K records, sorted by (level, number) */
    ddp_mf_pack *packs;
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
/* Give fd the owner, mode and times an entry records (backup.c; best effort). */
void ddp_backup_set_attrs_fd(int fd, const ddp_mf_entry *e);
void ddp_manifest_free(ddp_manifest *m);
/* Build by_path (and members for tar); the parser calls it. */
HRESULT ddp_manifest_index(ddp_manifest *m, const char *what);
const ddp_mf_entry *ddp_manifest_find(const ddp_manifest *m, const char *path);
/* Does the manifest know the parent directory of path? ("/" always.) */
int ddp_manifest_has_parent(const ddp_manifest *m, const char *path);

/* The pack (level, number) of m, or NULL. */
const ddp_mf_pack *ddp_manifest_pack(const ddp_manifest *m, uint32_t level, uint32_t number);
/* The store-like path of pack number ("/.ddp-backup/pack/00000001", malloc'd). */
char *ddp_manifest_pack_path(uint32_t number);

/* The piece of container entry e holding byte off, or NULL past the end. */
const ddp_mf_piece *ddp_manifest_piece_at(const ddp_mf_entry *e, uint64_t off);

#endif /* DDP_MANIFEST_H */
