/* SPDX-License-Identifier: MIT */
/*
 * chunkcache.h: the cache of decoded, verified chunks behind `ddp mount`
 * (programs/mount/chunkcache.c), shared by every open optimized file, with its
 * read-ahead threads. docs/MOUNT.md describes it.
 */
#ifndef DDP_CHUNKCACHE_H
#define DDP_CHUNKCACHE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "store/chunkread.h"
#include "store/streammap.h"

/* A cached chunk of len bytes, pinned by whoever got it: its bytes stay
 * where they are (and unchanged) until it is let go with cc_put or
 * cc_put_many. They need not be contiguous: read them with cc_copy or
 * cc_iov. */
typedef struct cc_chunk {
    uint32_t len;
} cc_chunk;

typedef struct cc_stats {
    uint64_t loads;           /* chunks decoded and verified */
    uint64_t reader_loads;    /* ... of them by a reader that waited for it (the others by read-ahead) */
    uint64_t in_place;        /* ... of them decoded straight into their pages (the others through a buffer) */
    uint64_t hits;            /* chunks found in the cache, loaded or loading */
    uint64_t failures;        /* loads that failed every check */
    uint64_t copies;          /* loads served by a hotspot copy */
    uint64_t pages;           /* pages of the arena used so far (4 KiB each) */
    uint64_t overflow;        /* chunks held outside the arena (all of it held by readers) */
} cc_stats;

/* Start the cache: at most limit_bytes of decoded chunks (at least 4 MiB;
 * in pages of 4 KiB, a sixteenth more at most), read through rd (NULL: every load fails), with threads read-ahead
 * threads. Returns the number of threads started. */
unsigned cc_start(ddp_chunkreader *rd, uint64_t limit_bytes, unsigned threads);

/* Stop the read-ahead threads and free everything; every chunk must have
 * been let go. *st (if not NULL): what the cache did. */
void cc_stop(cc_stats *st);

/* Chunk e of some stream map, decoded and verified, pinned, in *out. On
 * failure the HRESULT, and its detail copied to detail. note (if not NULL):
 * set to what to log about the chunk (it was served by its hotspot copy),
 * once, malloc'd; or NULL. Concurrent callers for one chunk wait for a
 * single load; nothing that failed stays cached. */
HRESULT cc_get(const ddp_streammap_entry *e, cc_chunk **out, char *detail, size_t dn, char **note);

void cc_put(cc_chunk *c);
void cc_put_many(cc_chunk *const *c, uint32_t n);

/* Bytes [in, in + n) of pinned chunk c (within its len): copied to dst, or
 * described as at most max pieces of memory (the count; 0 if more are
 * needed), which stay valid while c is pinned. */
void cc_copy(const cc_chunk *c, size_t in, void *dst, size_t n);
unsigned cc_iov(const cc_chunk *c, size_t in, size_t n, struct iovec *iov, unsigned max);

/* Queue chunks for the read-ahead threads (those not cached or loading);
 * the cached ones count as just used, so that the window's own loads do not
 * evict them before the reader gets there. */
void cc_prefetch(const ddp_streammap_entry *e, uint32_t n);

#endif /* DDP_CHUNKCACHE_H */
