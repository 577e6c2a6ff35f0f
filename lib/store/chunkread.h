/* SPDX-License-Identifier: MIT */
/*
 * chunkread.h: the reader of optimized files' data that ddp_file_* (file.c)
 * and the mount (programs/mount/) share: an authenticated stub's stream
 * map, read and checked against the stub, and one chunk by its stream-map
 * entry, verified (checksums, lengths, decoding, SHA-256), with the fallback
 * to the chunk's hotspot copy when its primary record is damaged
 * (docs/MAINTENANCE.md, "The read fallback").
 */
#ifndef DDP_CHUNKREAD_H
#define DDP_CHUNKREAD_H

#include <stddef.h>
#include <stdint.h>
#include <ddp/ddp.h>
#include "store/chunkstore.h"
#include "store/streammap.h"
#include "store/stub.h"

typedef struct ddp_chunkreader ddp_chunkreader;

/* A reader of the chunk store cs, whose files are in store_dir (the volume
 * layer opens one with ddp_volume_chunkreader). No I/O: the hotspot copies
 * are looked up only when a primary fails. Thread-safe; cs must outlive it. */
HRESULT ddp_chunkreader_open(ddp_chunkstore *cs, const char *store_dir, const uint8_t store_id[DDP_STORE_ID_SIZE],
                             ddp_chunkreader **out);
void ddp_chunkreader_close(ddp_chunkreader *r);

/* The stream map of stub s (authenticated by the caller), read from the
 * store and checked against the stub: map hash, file size, whole-file hash;
 * indexed for ddp_streammap_find. path names the file in the detail of a
 * failure (DDP_E_FILE_CORRUPT, or the error that reading the map met). */
HRESULT ddp_chunkreader_map(ddp_chunkreader *r, const ddp_stub *s, const char *path, ddp_streammap *m);

/* Where a chunk's bytes came from. */
typedef struct ddp_chunk_origin {
    int copy;                   /* 0: its primary record; 1: its hotspot copy (the primary failed) */
    uint32_t copy_container;    /* copy: the hotspot container id */
    uint64_t copy_offset;       /* copy: the copy's record offset */
    char primary_error[512];    /* copy: why the primary record failed */
} ddp_chunk_origin;

/* Chunk e into out (e->loc.logical_len bytes, 1..DDP_CHUNK_MAX): its primary
 * record, read and verified by the chunk store; when that fails for any
 * reason (checksum, SHA-256, decoding, length, short read, missing
 * container), each hotspot copy with e's hash, verified the same way (the
 * container's header names this store and the copy's container; the record
 * is a chunk with e's hash and length; payload checksum, decoding, SHA-256 of
 * the decoded bytes). S_OK with *from saying which served (from may be
 * NULL); else the primary's error, its detail naming the record, with what
 * became of the copies appended. out may hold garbage after a failure: it is
 * never the chunk unless S_OK. */
HRESULT ddp_chunkreader_read(ddp_chunkreader *r, const ddp_streammap_entry *e, void *out, ddp_chunk_origin *from);

#endif /* DDP_CHUNKREAD_H */
