/* SPDX-License-Identifier: MIT */
/*
 * chunker.h: content-defined chunking (FastCDC-style gear hash with
 * normalized chunking), with Windows' bounds: min 32 KiB, average 64 KiB,
 * max 128 KiB. Deterministic across machines and pinned by test vectors
 * (tests/unit/test_chunker.c); changing the cut rule changes every store.
 */
#ifndef DDP_CHUNKER_H
#define DDP_CHUNKER_H

#include <stddef.h>
#include <stdint.h>

#define DDP_CHUNK_MIN ((size_t)32 * 1024)
#define DDP_CHUNK_AVG ((size_t)64 * 1024)
#define DDP_CHUNK_MAX ((size_t)128 * 1024)

/*
 * The length of the chunk that starts at p, given n bytes available there.
 * If n <= DDP_CHUNK_MIN the answer is n. Otherwise the first cut point in
 * (DDP_CHUNK_MIN, min(n, DDP_CHUNK_MAX)] is returned, or min(n, DDP_CHUNK_MAX)
 * if there is none. The caller passes n >= DDP_CHUNK_MAX unless p..p+n runs
 * to the end of the input, so that cut points do not depend on buffering.
 */
size_t ddp_chunker_cut(const uint8_t *p, size_t n);

#endif /* DDP_CHUNKER_H */
