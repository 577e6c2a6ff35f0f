/* SPDX-License-Identifier: MIT */
/*
 * chunkstore.h: a volume's chunk store: data and stream-map containers, the
 * catalog, and the chunk index, behind one handle.
 *
 * Writers (the optimization job) put chunks and stream maps; every put is
 * thread-safe. Durability is the caller's order: ddp_chunkstore_sync_data()
 * before stream maps are put, ddp_chunkstore_sync_streams() before stubs are
 * written. Readers fetch chunks and stream maps by location; a read-only
 * store does not load the index.
 */
#ifndef DDP_CHUNKSTORE_H
#define DDP_CHUNKSTORE_H

#include <stddef.h>
#include <stdint.h>
#include <ddp/ddperror.h>
#include "base/hash.h"
#include "store/identity.h"
#include "store/streammap.h"

typedef struct ddp_chunkstore ddp_chunkstore;

typedef struct ddp_chunkstore_stats {
    uint64_t data_containers, stream_containers;
    uint64_t container_bytes;   /* sum of container file sizes */
    uint64_t chunks;            /* chunk records in the index */
    uint64_t stored_bytes;      /* payload bytes of those chunks */
    uint64_t logical_bytes;     /* logical bytes of those chunks */
    uint64_t index_file_bytes;  /* State/index on disk */
    uint64_t index_ram_bytes;   /* memory the index holds (writable stores) */
} ddp_chunkstore_stats;

enum { DDP_STORE_READONLY = 0, DDP_STORE_WRITABLE = 1 };

/* store_dir: VOLUME/.ddp/ChunkStore/{GUID}.ddp; state_dir: VOLUME/.ddp/State.
 * Writable: loads the index, re-opens the newest unsealed containers
 * (cutting a torn tail, indexing records the index has not seen).
 * container_limit: seal size in bytes. */
HRESULT ddp_chunkstore_open(const char *store_dir, const char *state_dir,
                            const uint8_t store_id[DDP_STORE_ID_SIZE], int mode,
                            uint64_t container_limit, ddp_chunkstore **out);
/* Create an empty store (directories, empty catalog). */
HRESULT ddp_chunkstore_create(const char *store_dir, const uint8_t store_id[DDP_STORE_ID_SIZE]);

/* Store a chunk unless one with this hash exists. compress_level <= 0 means
 * store raw. *loc gets the location; *was_new 1 if it was written now. A put
 * of a hash another put is storing at the same time waits for that one (the
 * chunk is compressed once) and then answers as for a chunk found. */
HRESULT ddp_chunkstore_put(ddp_chunkstore *cs, const uint8_t hash[DDP_HASH_SIZE], const void *data,
                           uint32_t len, int compress_level, ddp_chunk_loc *loc, int *was_new);
/* ddp_chunkstore_put, but S_FALSE (nothing done, *was_new 0) where put would
 * wait for another put of the same hash: the caller stores other chunks
 * meanwhile and comes back with ddp_chunkstore_put. */
HRESULT ddp_chunkstore_try_put(ddp_chunkstore *cs, const uint8_t hash[DDP_HASH_SIZE], const void *data,
                               uint32_t len, int compress_level, ddp_chunk_loc *loc, int *was_new);
/* Append a stream map; *container and *offset name its record. */
HRESULT ddp_chunkstore_put_streammap(ddp_chunkstore *cs, const void *map, uint32_t len,
                                     const uint8_t hash[DDP_HASH_SIZE], uint32_t *container,
                                     uint64_t *offset);
HRESULT ddp_chunkstore_sync_data(ddp_chunkstore *cs);
HRESULT ddp_chunkstore_sync_streams(ddp_chunkstore *cs);
/* Persist the index (at the end of a job; also done by close for writable stores). */
HRESULT ddp_chunkstore_checkpoint(ddp_chunkstore *cs);

/* Read one chunk into out (loc->logical_len bytes), checking checksums and its
 * sha256. DDP_E_FILE_CORRUPT with a detail naming the container file and
 * offset on any mismatch. Thread-safe. */
HRESULT ddp_chunkstore_read_chunk(ddp_chunkstore *cs, const ddp_chunk_loc *loc,
                                  const uint8_t hash[DDP_HASH_SIZE], void *out);
/* Read and decode a stream map; expect_hash (if non-NULL) must match. */
HRESULT ddp_chunkstore_read_streammap(ddp_chunkstore *cs, uint32_t container, uint64_t offset,
                                      const uint8_t *expect_hash, ddp_streammap *m);

HRESULT ddp_chunkstore_stats_get(ddp_chunkstore *cs, ddp_chunkstore_stats *st);
/* Drop the index and rebuild it by scanning every data container. */
HRESULT ddp_chunkstore_rebuild_index(ddp_chunkstore *cs);
/* Make everything written so far durable and described: sync the open
 * containers, checkpoint the index, write the catalog (skipped when its bytes
 * did not change). A job calls this last, so that a failure here reaches its
 * result; close does it again (then a no-op). */
HRESULT ddp_chunkstore_commit(ddp_chunkstore *cs);
/* Closes; a writable store commits first (see above). */
HRESULT ddp_chunkstore_close(ddp_chunkstore *cs);
/* Frees without writing anything (a store about to be removed). */
void ddp_chunkstore_discard(ddp_chunkstore *cs);

#endif /* DDP_CHUNKSTORE_H */
