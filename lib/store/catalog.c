/* SPDX-License-Identifier: MIT */
/*
 * catalog.c: the catalog of a chunk store: which containers exist, of what
 * kind, at which generation, whether they are sealed, and how many bytes of
 * each were known valid when the catalog was last written.
 *
 * The catalog is what lets a reader name every container file without
 * listing a directory (the restore engine reads through a backup callback
 * that cannot list), so it is small, checksummed and rewritten whole and
 * atomically by the chunk store (ddp_write_file_atomic) whenever a container
 * is created, sealed or replaced. The byte layout is in docs/FORMAT.md.
 *
 * In memory the entries are kept sorted by (kind, id): find is a binary
 * search, put keeps the order, and decode sorts a file written in any order
 * (the format does not demand an order) and rejects duplicates.
 */
#include <stdio.h>
#include <stdlib.h>

#include "store/catalog.h"
#include "base/hash.h"
#include "base/util.h"

static const char catalog_magic[8] = { 'D', 'D', 'P', 'C', 'A', 'T', 'L', '1' };

#define CATALOG_VERSION 1u
#define CATALOG_HEADER 32u
#define CATALOG_ENTRY 24u
#define CATALOG_TRAILER 8u

static int entry_cmp(const ddp_catalog_entry *a, uint32_t kind, uint32_t id)
{
    if (a->kind != kind) return a->kind < kind ? -1 : 1;
    if (a->id != id) return a->id < id ? -1 : 1;
    return 0;
}

static int entry_qsort_cmp(const void *pa, const void *pb)
{
    const ddp_catalog_entry *b = pb;
    return entry_cmp(pa, b->kind, b->id);
}

HRESULT ddp_catalog_encode(const ddp_catalog *c, uint8_t **out, size_t *n)
{
    if (!c || !out || !n) return E_POINTER;
    if (c->count > DDP_CATALOG_MAX_ENTRIES)
        return ddp_fail(E_INVALIDARG, "catalog: %u entries, more than the %u allowed", c->count,
                        DDP_CATALOG_MAX_ENTRIES);
    size_t len = CATALOG_HEADER + (size_t)c->count * CATALOG_ENTRY + CATALOG_TRAILER;
    uint8_t *buf = ddp_xcalloc(1, len);
    memcpy(buf, catalog_magic, 8);
    ddp_put_le32(buf + 8, CATALOG_VERSION);
    ddp_put_le32(buf + 12, c->count);
    memcpy(buf + 16, c->store_id, DDP_STORE_ID_SIZE);
    for (uint32_t i = 0; i < c->count; i++) {
        uint8_t *p = buf + CATALOG_HEADER + (size_t)i * CATALOG_ENTRY;
        const ddp_catalog_entry *e = &c->entries[i];
        ddp_put_le32(p, e->kind);
        ddp_put_le32(p + 4, e->id);
        ddp_put_le32(p + 8, e->generation);
        ddp_put_le32(p + 12, e->flags);
        ddp_put_le64(p + 16, e->length);
    }
    ddp_put_le64(buf + len - CATALOG_TRAILER, ddp_checksum64(buf, len - CATALOG_TRAILER));
    *out = buf;
    *n = len;
    return S_OK;
}

HRESULT ddp_catalog_decode(const uint8_t *buf, size_t n, ddp_catalog *c)
{
    if (!buf || !c) return E_POINTER;
    memset(c, 0, sizeof *c);
    if (n < CATALOG_HEADER + CATALOG_TRAILER)
        return ddp_fail(DDP_E_INVALID_DATA, "catalog: %zu bytes is shorter than the smallest catalog (%u)", n,
                        CATALOG_HEADER + CATALOG_TRAILER);
    if (memcmp(buf, catalog_magic, 8) != 0)
        return ddp_fail(DDP_E_INVALID_DATA, "catalog: bad magic");
    uint32_t count = ddp_get_le32(buf + 12);
    if (count > DDP_CATALOG_MAX_ENTRIES)
        return ddp_fail(DDP_E_INVALID_DATA, "catalog: count %u is more than the %u allowed", count,
                        DDP_CATALOG_MAX_ENTRIES);
    size_t want = CATALOG_HEADER + (size_t)count * CATALOG_ENTRY + CATALOG_TRAILER;
    if (n != want)
        return ddp_fail(DDP_E_INVALID_DATA, "catalog: %zu bytes where %u entries take %zu", n, count, want);
    if (ddp_get_le64(buf + n - CATALOG_TRAILER) != ddp_checksum64(buf, n - CATALOG_TRAILER))
        return ddp_fail(DDP_E_INVALID_DATA, "catalog: checksum mismatch");
    uint32_t version = ddp_get_le32(buf + 8);
    if (version != CATALOG_VERSION)
        return ddp_fail(DDP_E_UNSUPPORTED_VERSION, "catalog: version %u (this build reads version %u)", version,
                        CATALOG_VERSION);

    ddp_catalog_entry *entries = ddp_xcalloc(count ? count : 1, sizeof *entries);
    int sorted = 1;
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *p = buf + CATALOG_HEADER + (size_t)i * CATALOG_ENTRY;
        ddp_catalog_entry *e = &entries[i];
        e->kind = ddp_get_le32(p);
        e->id = ddp_get_le32(p + 4);
        e->generation = ddp_get_le32(p + 8);
        e->flags = ddp_get_le32(p + 12);
        e->length = ddp_get_le64(p + 16);
        const char *why = NULL;
        if (e->kind < DDP_KIND_DATA || e->kind > DDP_KIND_HOTSPOT) why = "unknown kind";
        else if (e->id == 0) why = "container id 0";
        else if (e->generation == 0) why = "generation 0";
        else if (e->flags & ~1u) why = "unknown flags";
        if (why) {
            HRESULT hr = ddp_fail(DDP_E_INVALID_DATA, "catalog: entry %u (kind %u, id %u): %s", i, e->kind, e->id,
                                  why);
            free(entries);
            return hr;
        }
        if (i > 0 && entry_cmp(&entries[i - 1], e->kind, e->id) >= 0) sorted = 0;
    }
    if (!sorted) qsort(entries, count, sizeof *entries, entry_qsort_cmp);
    for (uint32_t i = 1; i < count; i++) {
        if (entry_cmp(&entries[i - 1], entries[i].kind, entries[i].id) == 0) {
            HRESULT hr = ddp_fail(DDP_E_INVALID_DATA, "catalog: container (kind %u, id %u) is listed twice",
                                  entries[i].kind, entries[i].id);
            free(entries);
            return hr;
        }
    }
    memcpy(c->store_id, buf + 16, DDP_STORE_ID_SIZE);
    c->entries = entries;
    c->count = count;
    c->cap = count ? count : 1;
    return S_OK;
}

void ddp_catalog_free(ddp_catalog *c)
{
    if (!c) return;
    free(c->entries);
    c->entries = NULL;
    c->count = c->cap = 0;
}

/* Index of the first entry >= (kind, id). */
static uint32_t lower_bound(const ddp_catalog *c, uint32_t kind, uint32_t id)
{
    uint32_t lo = 0, hi = c->count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (entry_cmp(&c->entries[mid], kind, id) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

ddp_catalog_entry *ddp_catalog_find(const ddp_catalog *c, uint32_t kind, uint32_t id)
{
    if (!c || c->count == 0) return NULL;
    uint32_t i = lower_bound(c, kind, id);
    if (i < c->count && entry_cmp(&c->entries[i], kind, id) == 0) return &c->entries[i];
    return NULL;
}

void ddp_catalog_put(ddp_catalog *c, const ddp_catalog_entry *e)
{
    uint32_t i = lower_bound(c, e->kind, e->id);
    if (i < c->count && entry_cmp(&c->entries[i], e->kind, e->id) == 0) {
        c->entries[i] = *e;
        return;
    }
    if (c->count == c->cap || !c->entries) {
        uint32_t ncap = c->cap ? c->cap * 2 : 16;
        if (ncap < c->count + 1) ncap = c->count + 1;
        c->entries = ddp_xrealloc(c->entries, (size_t)ncap * sizeof *c->entries);
        c->cap = ncap;
    }
    memmove(&c->entries[i + 1], &c->entries[i], (size_t)(c->count - i) * sizeof *c->entries);
    c->entries[i] = *e;
    c->count++;
}

void ddp_container_relpath(uint32_t kind, uint32_t id, uint32_t generation, char out[40])
{
    const char *dir = kind == DDP_KIND_DATA ? "Data" : kind == DDP_KIND_STREAM ? "Stream" : "Hotspot";
    snprintf(out, 40, "%s/%08X.%08X.ccc", dir, id, generation);
}
