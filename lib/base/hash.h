/* SPDX-License-Identifier: MIT */
/*
 * hash.h: the hashes ddp uses.
 *
 * - SHA-256 (OpenSSL libcrypto, which uses the CPU's SHA instructions): the
 *   identity of a chunk, and of a stream map.
 * - The whole-file hash: SHA-256 over "DDPFILE1", each chunk's SHA-256 in
 *   file order, and the file length (le64). It binds the whole content and
 *   its order while costing no second pass over the data (docs/FORMAT.md).
 * - HMAC-SHA256 with the volume's key: the stub's MAC.
 * - XXH3-64 (libxxhash): the fast checksum of every on-disk header and payload,
 *   to catch torn writes and bit rot before any parsing or decompression.
 */
#ifndef DDP_HASH_H
#define DDP_HASH_H

#include <stddef.h>
#include <stdint.h>

#define DDP_HASH_SIZE 32

void ddp_sha256(const void *data, size_t n, uint8_t out[DDP_HASH_SIZE]);

/* Incremental SHA-256. */
typedef struct ddp_sha256_ctx ddp_sha256_ctx;
ddp_sha256_ctx *ddp_sha256_new(void);               /* never NULL */
void ddp_sha256_update(ddp_sha256_ctx *c, const void *data, size_t n);
void ddp_sha256_final(ddp_sha256_ctx *c, uint8_t out[DDP_HASH_SIZE]); /* c may be reused after */
void ddp_sha256_free(ddp_sha256_ctx *c);

/* The whole-file hash, fed one chunk hash at a time. */
typedef struct ddp_filehash { ddp_sha256_ctx *sha; uint64_t length; } ddp_filehash;
void ddp_filehash_init(ddp_filehash *fh);
void ddp_filehash_add(ddp_filehash *fh, const uint8_t chunk_hash[DDP_HASH_SIZE], uint64_t chunk_len);
void ddp_filehash_final(ddp_filehash *fh, uint8_t out[DDP_HASH_SIZE]); /* frees the context */

void ddp_hmac_sha256(const uint8_t *key, size_t keylen, const void *data, size_t n,
                     uint8_t out[DDP_HASH_SIZE]);

uint64_t ddp_checksum64(const void *data, size_t n);

/* Constant-time comparison: 1 when equal. */
int ddp_ct_equal(const void *a, const void *b, size_t n);

/* Cryptographically random bytes (store ids, keys). 0 on success. */
int ddp_random_bytes(void *buf, size_t n);

/* 64 lowercase hex digits + NUL. */
void ddp_hash_hex(const uint8_t h[DDP_HASH_SIZE], char out[2 * DDP_HASH_SIZE + 1]);

#endif /* DDP_HASH_H */
