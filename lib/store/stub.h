/* SPDX-License-Identifier: MIT */
/*
 * stub.h: the stub (Windows: reparse point) that replaces an optimized file:
 * 232 bytes that say plainly what they are, name the store and the stream
 * map, carry the size and the whole-file hash, and are authenticated with
 * HMAC-SHA256 under the volume's stub key. Format in docs/FORMAT.md.
 */
#ifndef DDP_STUB_H
#define DDP_STUB_H

#include <stddef.h>
#include <stdint.h>
#include <ddp/ddperror.h>
#include "base/hash.h"
#include "store/identity.h"

#define DDP_STUB_SIZE 232
#define DDP_STUB_TEXT_SIZE 80

typedef struct ddp_stub {
    uint8_t store_id[DDP_STORE_ID_SIZE];
    uint32_t stream_container;
    uint32_t streammap_stored_len;  /* payload bytes of the stream-map record (offset 116) */
    uint64_t stream_offset;
    uint64_t file_size;
    uint8_t file_hash[DDP_HASH_SIZE];
    uint8_t streammap_hash[DDP_HASH_SIZE];
} ddp_stub;

void ddp_stub_encode(const ddp_stub *s, const uint8_t key[DDP_KEY_SIZE], uint8_t out[DDP_STUB_SIZE]);
#define DDP_STUB_PREFIX_SIZE 88
/* Stream-map records are at least a 56-byte header; at most the record limit
 * (zstd's bound of 256 MiB). */
#define DDP_STUB_MIN_MAP_LEN 56u
#define DDP_STUB_MAX_MAP_LEN ((uint32_t)(257u << 20))

/* Does buf begin (n >= 88 bytes) with the stub text and magic? Such a file
 * claims to be a stub: if it then fails to decode it is a malformed or forged
 * stub (DDP_E_INVALID_DATA), not an ordinary file. */
int ddp_stub_has_prefix(const uint8_t *buf, size_t n);
/* Does buf look like a stub (size, text, magic), before any key is known? */
int ddp_stub_looks_like(const uint8_t *buf, size_t n);
/* Parse the fields without checking the MAC (to learn the store id).
 * DDP_E_INVALID_DATA if it does not look like a stub of a supported version. */
HRESULT ddp_stub_peek(const uint8_t *buf, size_t n, ddp_stub *s);
/* Parse and authenticate: DDP_E_INVALID_DATA when malformed or the MAC fails. */
HRESULT ddp_stub_decode(const uint8_t *buf, size_t n, const uint8_t key[DDP_KEY_SIZE], ddp_stub *s);

#endif /* DDP_STUB_H */
