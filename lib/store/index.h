/* SPDX-License-Identifier: MIT */
/*
 * index.h: the persistent chunk index: SHA-256 of a chunk -> where its record
 * is (ddp_chunk_loc). It lives in VOLUME/.ddp/State/index (format in
 * docs/FORMAT.md, section "index") and is a cache: everything in it can be
 * rebuilt by scanning the data containers, so a missing or damaged file is
 * rebuilt, never trusted.
 *
 * Small in RAM: the sorted on-disk base is memory-mapped; only a sparse
 * sample of its hashes (8 bytes per 256 entries) and a Bloom filter (about 10
 * bits per entry) are kept in memory, plus a hash table of the entries added
 * since the last checkpoint. ddp_index_checkpoint() merges those into a new
 * base file.
 *
 * Not thread-safe: the chunk store serializes calls with its own lock.
 */
#ifndef DDP_INDEX_H
#define DDP_INDEX_H

#include <stddef.h>
#include <stdint.h>
#include <ddp/ddperror.h>
#include "base/hash.h"
#include "store/identity.h"
#include "store/streammap.h"

#define DDP_INDEX_HEADER_SIZE 64
#define DDP_INDEX_COVER_SIZE 16
#define DDP_INDEX_ENTRY_SIZE 56

typedef struct ddp_index ddp_index;

/* How much of a data container the index has seen: every chunk record that
 * starts before `length` is in the index. */
typedef struct ddp_index_cover {
    uint32_t container, generation;
    uint64_t length;
} ddp_index_cover;

/* A new, empty index that ddp_index_checkpoint() will write to path. */
ddp_index *ddp_index_new(const char *path, const uint8_t store_id[DDP_STORE_ID_SIZE]);
/* Load and verify path (every checksum, the order and sanity of every entry,
 * the store id). A missing file gives HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND);
 * a damaged one or one of another store DDP_E_FILE_CORRUPT; a newer version
 * DDP_E_UNSUPPORTED_VERSION. */
HRESULT ddp_index_load(const char *path, const uint8_t store_id[DDP_STORE_ID_SIZE], ddp_index **out);
void ddp_index_free(ddp_index *ix);

/* 1 and *loc (if loc != NULL) when hash is in the index, else 0. */
int ddp_index_lookup(const ddp_index *ix, const uint8_t hash[DDP_HASH_SIZE], ddp_chunk_loc *loc);
/* Add hash -> loc: 1 added, 0 already present (the existing entry is kept),
 * -1 invalid location (container 0). */
int ddp_index_insert(ddp_index *ix, const uint8_t hash[DDP_HASH_SIZE], const ddp_chunk_loc *loc);

uint64_t ddp_index_count(const ddp_index *ix);        /* all entries */
uint64_t ddp_index_delta_count(const ddp_index *ix);  /* entries since the last checkpoint */
/* Sums over all entries (any pointer may be NULL). */
void ddp_index_totals(const ddp_index *ix, uint64_t *count, uint64_t *stored_bytes, uint64_t *logical_bytes);
/* Largest container id any entry names (0 when empty). */
uint32_t ddp_index_max_container(const ddp_index *ix);

/* The covered-length table. set replaces the entry for container. */
void ddp_index_set_covered(ddp_index *ix, uint32_t container, uint32_t generation, uint64_t length);
/* 1 and *cover when container has an entry, else 0. */
int ddp_index_get_covered(const ddp_index *ix, uint32_t container, ddp_index_cover *cover);
uint32_t ddp_index_covered_count(const ddp_index *ix);
const ddp_index_cover *ddp_index_covered_at(const ddp_index *ix, uint32_t i);

/* Has anything changed since the file was loaded or written? */
int ddp_index_is_dirty(const ddp_index *ix);
/* Is the in-memory delta large enough that a checkpoint is due (at least
 * 256Ki entries, and at least 1/16 of the base)? */
int ddp_index_wants_checkpoint(const ddp_index *ix);
/* Merge base + delta into PATH.tmp, fsync, rename over path, fsync the
 * directory, and switch to the new base. Only call when every entry's record
 * is durable (the index must never name a record a crash can lose). */
HRESULT ddp_index_checkpoint(ddp_index *ix);

/* Heap bytes the index holds (samples, Bloom filter, delta table, covered
 * table); the mapped base file is page cache and not counted. */
size_t ddp_index_ram_bytes(const ddp_index *ix);
/* Size of the base file (0 when none has been loaded or written). */
uint64_t ddp_index_file_bytes(const ddp_index *ix);

#endif /* DDP_INDEX_H */
