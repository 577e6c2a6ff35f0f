/* SPDX-License-Identifier: MIT */
/*
 * storewalk.h: walking a chunk store's container files, what the maintenance
 * jobs (volume/gc.c, volume/scrub.c, volume/hotspot.c) and the reader's
 * hotspot fallback (store/chunkread.c) share (docs/MAINTENANCE.md):
 *
 * - a view of the store's container files: the catalog's data and
 *   stream-map containers plus the hotspot containers found in Hotspot/
 *   (which the catalog does not list: nothing references them by location),
 *   sorted by (kind, id), each with a vector of record offsets for the job
 *   to fill (live offsets for gc, record offsets for scrub, references for
 *   the hotspot count);
 * - sorted uint64 vectors: a job's memory is 8 bytes per distinct record
 *   (duplicates are folded whenever a vector doubles);
 * - a walk over record headers only (no payload reads) and a full read of
 *   one record (header + stored payload, every check);
 * - the hotspot copies, by hash.
 */
#ifndef DDP_STOREWALK_H
#define DDP_STOREWALK_H

#include <stddef.h>
#include <stdint.h>
#include <ddp/ddp.h>
#include "store/container.h"
#include "store/identity.h"
#include "store/redirect.h"

/* ---- sorted offset vectors ---- */

typedef struct ddp_offvec {
    uint64_t *v;
    size_t n, cap;
    size_t clean;       /* v[0..clean) sorted and unique */
    int keep_dups;      /* counting: never fold duplicates */
} ddp_offvec;

void ddp_offvec_push(ddp_offvec *a, uint64_t x);
/* Sort (and, unless keep_dups, drop duplicates). */
void ddp_offvec_finish(ddp_offvec *a);
/* After finish: is x in it? */
int ddp_offvec_has(const ddp_offvec *a, uint64_t x);
void ddp_offvec_free(ddp_offvec *a);

/* ---- the store's containers ---- */

typedef struct ddp_mcont {
    uint32_t kind, id, generation;
    int in_catalog;     /* data and stream: listed; hotspot: found in Hotspot/ */
    int sealed;         /* the catalog says sealed */
    uint64_t catalog_len;
    char rel[40];       /* "Data/00000001.00000001.ccc" */
    char *path;         /* absolute */
    ddp_offvec offs;    /* for the job: local ids (gc, hotspot) or offsets (scrub) */
    size_t ndamage;     /* scrub: damaged records in it */
    /* Its redirection table (store/redirect.h), loaded by ddp_mcont_open:
     * identity for a version-1 container. Local id <-> offset. */
    ddp_redirect redir;
    int redir_loaded;
    uint64_t redirect_len; /* from its header: 0 for version 1 */
} ddp_mcont;

typedef struct ddp_mstore {
    char *store_dir;
    uint8_t store_id[DDP_STORE_ID_SIZE];
    ddp_mcont *c;
    size_t n;
} ddp_mstore;

/* Read the catalog and list Hotspot/. */
HRESULT ddp_mstore_load(const char *store_dir, const uint8_t store_id[DDP_STORE_ID_SIZE], ddp_mstore *s);
ddp_mcont *ddp_mstore_find(const ddp_mstore *s, uint32_t kind, uint32_t id);
void ddp_mstore_free(ddp_mstore *s);

/* Walk the record headers of container file fd (size bytes) from the first
 * record, reading headers only. The redirection table of a version-2
 * container (its record at offset 64) is stepped over, not passed to fn:
 * fn gets file offsets; ddp_mcont_id_at() turns one into the record's
 * local id, the name references use. fn gets every valid record (DEAD ones too);
 * it returns nonzero to stop. The walk stops at a SEAL record, at the end, or
 * at the first invalid header: *stop is where it stopped (the end of the
 * last valid record), *why NULL or what was wrong there. */
typedef int (*ddp_hdr_fn)(void *ctx, const ddp_record_header *h, uint64_t off);
HRESULT ddp_walk_headers(int fd, const char *what, uint64_t size, ddp_hdr_fn fn, void *ctx, uint64_t *stop,
                         const char **why);

/* Read the record at off (header and stored payload, *rec malloc'd with
 * 64 + stored_len bytes) and check it completely: header, payload checksum,
 * decoding and SHA-256 (a stream map is also decoded). DEAD and SEAL records
 * are DDP_E_FILE_CORRUPT. */
HRESULT ddp_read_raw_record(int fd, const char *what, uint64_t off, ddp_record_header *h, uint8_t **rec);

/* Open a container of the view and check its header names it (store, kind,
 * id, generation); the first open also loads its redirection table into
 * c->redir (a damaged table is DDP_E_FILE_CORRUPT). flags: O_RDONLY or O_RDWR. */
HRESULT ddp_mcont_open(const ddp_mstore *s, ddp_mcont *c, int flags, int *fd);
/* The local id of the record at file offset off of c (opened once): 1 and
 * *id, 0 when its table names no record there. */
int ddp_mcont_id_at(const ddp_mcont *c, uint64_t off, uint64_t *id);
/* Where the record of local id `id` lies in c (opened once): S_OK and *off,
 * or DDP_E_FILE_CORRUPT (garbage-collected: not in its table). */
HRESULT ddp_mcont_resolve(const ddp_mcont *c, uint64_t id, uint64_t *off);

/* ---- hotspot copies ---- */

typedef struct ddp_hotrec {
    uint8_t hash[DDP_HASH_SIZE];
    uint32_t id;        /* hotspot container id */
    uint64_t off;       /* where the copy lies (for reading) */
    uint64_t lid;       /* its local id (gc's live set) */
    uint32_t stored_len;
    uint8_t codec;
} ddp_hotrec;

typedef struct ddp_hotset {
    ddp_hotrec *r;
    size_t n, cap;
} ddp_hotset;

/* The chunk records of every hotspot container (headers only), by hash. */
HRESULT ddp_hotset_load(const ddp_mstore *s, ddp_hotset *hs);
/* The first copy with this hash, or NULL; copies with the same hash follow it. */
const ddp_hotrec *ddp_hotset_find(const ddp_hotset *hs, const uint8_t hash[DDP_HASH_SIZE]);
void ddp_hotset_free(ddp_hotset *hs);

#endif /* DDP_STOREWALK_H */
