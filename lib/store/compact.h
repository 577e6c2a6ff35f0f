/* SPDX-License-Identifier: MIT */
/*
 * compact.h: writing a container's next generation with only the records
 * that are still referenced (Windows' GC compaction, docs/MAINTENANCE.md).
 *
 * The new generation is a version-2 container (store/redirect.h): the
 * header, the redirection table of every kept record {local id, new
 * offset}, the kept records copied byte for byte in their old order, and a
 * SEAL record. It is written unnamed (O_TMPFILE, or a locked "tmp.*" name
 * where the file system has none), fsynced, and only then named
 * CCCCCCCC.GGGGGGGG.ccc (generation + 1) in the same directory, without
 * replacing anything, and the directory fsynced. Making it the current
 * generation (the catalog) and removing the old file are the caller's
 * steps (lib/volume/gc.c), in that order.
 *
 * Every kept record is checked while it is copied (header checksum, limits,
 * payload checksum): a damaged live record fails the compaction and nothing
 * is named. Dropped records are not read past their headers.
 */
#ifndef DDP_COMPACT_H
#define DDP_COMPACT_H

#include <stdint.h>
#include <ddp/ddperror.h>
#include "store/container.h"

/* Keep the record (chunk or stream map) of local id `id`? 1 keep, 0 drop. */
typedef int (*ddp_compact_keep_fn)(void *ctx, const ddp_record_header *h, uint64_t id);

typedef struct ddp_compact_result {
    uint32_t generation;       /* of the new file */
    uint32_t kept, dropped;    /* records (chunks and stream maps; DEAD ones count as dropped) */
    uint64_t kept_bytes;       /* record bytes (headers and payloads) copied */
    uint64_t dropped_bytes;    /* record bytes left behind */
    uint64_t new_len;          /* length of the new file */
    uint64_t old_len;          /* the old generation's records end (src_end) */
} ddp_compact_result;

/* Compact the container open at src_fd (named src_what in messages) whose
 * records end at src_end (its catalog length; every record before it must be
 * whole and valid) into the next generation in dirfd (the container's
 * directory). Returns S_OK with the new file named, S_FALSE when no record is
 * kept (nothing written: the caller drops the container), or a failure with
 * nothing named. DDP_E_FILE_CORRUPT for damage in the old generation;
 * HRESULT_FROM_WIN32(ERROR_FILE_EXISTS) when the next generation's name is
 * taken (a leftover of a stopped compaction: the caller removes it first). */
HRESULT ddp_container_compact(int src_fd, const char *src_what, uint64_t src_end, int dirfd,
                              ddp_compact_keep_fn keep, void *ctx, ddp_compact_result *res);

#endif /* DDP_COMPACT_H */
