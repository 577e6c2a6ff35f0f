/* SPDX-License-Identifier: MIT */
/*
 * streammap.h: the stream map of an optimized file: its chunks in file order
 * (hash, data container, record offset, stored and logical length), its size
 * and its whole-file hash. Format in docs/FORMAT.md.
 */
#ifndef DDP_STREAMMAP_H
#define DDP_STREAMMAP_H

#include <stddef.h>
#include <stdint.h>
#include <ddp/ddperror.h>
#include "base/hash.h"

#define DDP_STREAMMAP_HEADER_SIZE 56
#define DDP_STREAMMAP_ENTRY_SIZE 56

typedef struct ddp_chunk_loc {
    uint32_t container;   /* data container id */
    uint8_t codec;
    uint64_t offset;      /* offset of the record header */
    uint32_t stored_len, logical_len;
} ddp_chunk_loc;

typedef struct ddp_streammap_entry {
    uint8_t hash[DDP_HASH_SIZE];
    ddp_chunk_loc loc;
} ddp_streammap_entry;

typedef struct ddp_streammap {
    uint64_t file_size;
    uint8_t file_hash[DDP_HASH_SIZE];
    uint32_t count, cap;
    ddp_streammap_entry *entries;
    uint64_t *starts;  /* optional: file offset of each entry (ddp_streammap_index) */
} ddp_streammap;

void ddp_streammap_init(ddp_streammap *m);
void ddp_streammap_add(ddp_streammap *m, const ddp_streammap_entry *e);
void ddp_streammap_free(ddp_streammap *m);
/* malloc'd encoding (file_size/file_hash must be set). */
HRESULT ddp_streammap_encode(const ddp_streammap *m, uint8_t **out, size_t *n);
/* Bounds-checked decode: DDP_E_FILE_CORRUPT when anything is inconsistent. */
HRESULT ddp_streammap_decode(const uint8_t *buf, size_t n, ddp_streammap *m);
/* Compute starts[] for random access. */
void ddp_streammap_index(ddp_streammap *m);
/* Entry that holds file offset off (off < file_size), after ddp_streammap_index. */
uint32_t ddp_streammap_find(const ddp_streammap *m, uint64_t off);

#endif /* DDP_STREAMMAP_H */
