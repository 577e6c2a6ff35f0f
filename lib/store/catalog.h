/* SPDX-License-Identifier: MIT */
/*
 * catalog.h: the list of a chunk store's containers (kind, id, generation,
 * sealed, length), so that a reader, including the restore engine reading
 * through a backup callback, can name every container file without listing
 * a directory. Format in docs/FORMAT.md.
 */
#ifndef DDP_CATALOG_H
#define DDP_CATALOG_H

#include <stddef.h>
#include <stdint.h>
#include <ddp/ddperror.h>
#include "store/identity.h"

#define DDP_CATALOG_MAX_ENTRIES (1u << 20)

enum ddp_container_kind { DDP_KIND_DATA = 1, DDP_KIND_STREAM = 2, DDP_KIND_HOTSPOT = 3 };

typedef struct ddp_catalog_entry {
    uint32_t kind, id, generation, flags; /* flags bit 0: sealed */
    uint64_t length;
} ddp_catalog_entry;

typedef struct ddp_catalog {
    uint8_t store_id[DDP_STORE_ID_SIZE];
    uint32_t count, cap;
    ddp_catalog_entry *entries;
} ddp_catalog;

/* malloc'd encoding. */
HRESULT ddp_catalog_encode(const ddp_catalog *c, uint8_t **out, size_t *n);
/* Bounds- and checksum-checked: DDP_E_INVALID_DATA on any inconsistency. */
HRESULT ddp_catalog_decode(const uint8_t *buf, size_t n, ddp_catalog *c);
void ddp_catalog_free(ddp_catalog *c);
/* The entry for (kind, id), or NULL. */
ddp_catalog_entry *ddp_catalog_find(const ddp_catalog *c, uint32_t kind, uint32_t id);
/* Add or replace the entry for (kind, id). */
void ddp_catalog_put(ddp_catalog *c, const ddp_catalog_entry *e);

/* Path of a container relative to the store directory: "Data/00000001.00000001.ccc"
 * (Stream/, Hotspot/ by kind). out must hold 40 bytes. */
void ddp_container_relpath(uint32_t kind, uint32_t id, uint32_t generation, char out[40]);

#endif /* DDP_CATALOG_H */
