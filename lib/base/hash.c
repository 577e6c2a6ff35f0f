/* SPDX-License-Identifier: MIT */
/*
 * hash.c: SHA-256 and HMAC-SHA256 through OpenSSL's libcrypto, the
 * whole-file hash built on chunk hashes, and XXH3-64 checksums through
 * libxxhash (see hash.h for what each is used for).
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <xxhash.h>

#include "base/hash.h"
#include "base/util.h"

struct ddp_sha256_ctx { EVP_MD_CTX *md; };

void ddp_sha256(const void *data, size_t n, uint8_t out[DDP_HASH_SIZE])
{
    unsigned int len = 0;
    if (!EVP_Digest(data, n, out, &len, EVP_sha256(), NULL) || len != DDP_HASH_SIZE) abort();
}

ddp_sha256_ctx *ddp_sha256_new(void)
{
    ddp_sha256_ctx *c = ddp_xmalloc(sizeof *c);
    c->md = EVP_MD_CTX_new();
    if (!c->md || !EVP_DigestInit_ex(c->md, EVP_sha256(), NULL)) abort();
    return c;
}

void ddp_sha256_update(ddp_sha256_ctx *c, const void *data, size_t n)
{
    if (!EVP_DigestUpdate(c->md, data, n)) abort();
}

void ddp_sha256_final(ddp_sha256_ctx *c, uint8_t out[DDP_HASH_SIZE])
{
    unsigned int len = 0;
    if (!EVP_DigestFinal_ex(c->md, out, &len) || !EVP_DigestInit_ex(c->md, EVP_sha256(), NULL)) abort();
}

void ddp_sha256_free(ddp_sha256_ctx *c)
{
    if (!c) return;
    EVP_MD_CTX_free(c->md);
    free(c);
}

void ddp_filehash_init(ddp_filehash *fh)
{
    fh->sha = ddp_sha256_new();
    fh->length = 0;
    ddp_sha256_update(fh->sha, "DDPFILE1", 8);
}

void ddp_filehash_add(ddp_filehash *fh, const uint8_t chunk_hash[DDP_HASH_SIZE], uint64_t chunk_len)
{
    ddp_sha256_update(fh->sha, chunk_hash, DDP_HASH_SIZE);
    fh->length += chunk_len;
}

void ddp_filehash_final(ddp_filehash *fh, uint8_t out[DDP_HASH_SIZE])
{
    uint8_t len[8];
    ddp_put_le64(len, fh->length);
    ddp_sha256_update(fh->sha, len, sizeof len);
    ddp_sha256_final(fh->sha, out);
    ddp_sha256_free(fh->sha);
    fh->sha = NULL;
}

void ddp_hmac_sha256(const uint8_t *key, size_t keylen, const void *data, size_t n,
                     uint8_t out[DDP_HASH_SIZE])
{
    unsigned int len = 0;
    if (!HMAC(EVP_sha256(), key, (int)keylen, data, n, out, &len) || len != DDP_HASH_SIZE) abort();
}

uint64_t ddp_checksum64(const void *data, size_t n) { return XXH3_64bits(data, n); }

int ddp_ct_equal(const void *a, const void *b, size_t n)
{
    const volatile uint8_t *x = a, *y = b;
    uint8_t d = 0;
    for (size_t i = 0; i < n; i++) d |= (uint8_t)(x[i] ^ y[i]);
    return d == 0;
}

int ddp_random_bytes(void *buf, size_t n) { return RAND_bytes(buf, (int)n) == 1 ? 0 : -1; }

void ddp_hash_hex(const uint8_t h[DDP_HASH_SIZE], char out[2 * DDP_HASH_SIZE + 1])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < DDP_HASH_SIZE; i++) {
        out[2 * i] = hex[h[i] >> 4];
        out[2 * i + 1] = hex[h[i] & 15];
    }
    out[2 * DDP_HASH_SIZE] = '\0';
}
