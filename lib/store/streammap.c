/* SPDX-License-Identifier: MIT */
/*
 * streammap.c: the stream map of an optimized file (docs/FORMAT.md), the
 * logical payload of a type-2 container record:
 *
 *     0  magic "DDPSMAP1"   8  file size   16 chunk count N   20 reserved 0
 *     24 whole-file hash [32]
 *     56 N entries of 56 bytes, in file order:
 *        0 sha256 [32]  32 data container id  36 codec  37 reserved [3] = 0
 *        40 record offset (u64)  48 stored_len (u32)  52 logical_len (u32)
 *
 * Decoding trusts nothing: the buffer must be exactly 56 + 56*N bytes
 * (compared without any multiplication that could overflow), every
 * logical_len is 1..131072 and they add up to the file size, every
 * stored_len is nonzero and within ZSTD_compressBound(logical_len), codec 0
 * stores exactly the logical bytes, the codec is known, and every reserved
 * byte is zero. Anything else is DDP_E_FILE_CORRUPT with a detail saying
 * which entry and which field.
 *
 * For random access, ddp_streammap_index computes the file offset at which
 * each chunk starts, and ddp_streammap_find binary-searches those offsets.
 */
#include <stdio.h>
#include <stdlib.h>

#include "base/codec.h"
#include "store/streammap.h"
#include "base/util.h"

#define STREAMMAP_CHUNK_MAX 131072u

static const uint8_t streammap_magic[8] = { 'D', 'D', 'P', 'S', 'M', 'A', 'P', '1' };

void ddp_streammap_init(ddp_streammap *m)
{
    memset(m, 0, sizeof *m);
}

void ddp_streammap_add(ddp_streammap *m, const ddp_streammap_entry *e)
{
    if (m->count == m->cap) {
        if (m->cap > UINT32_MAX / 2) {
            /* 2^31 chunks would be 128 TiB of file: out of memory long before. */
            fputs("ddp: stream map too large\n", stderr);
            abort();
        }
        uint32_t ncap = m->cap ? m->cap * 2 : 16;
        m->entries = ddp_xrealloc(m->entries, (size_t)ncap * sizeof *m->entries);
        if (m->starts)
            m->starts = ddp_xrealloc(m->starts, (size_t)ncap * sizeof *m->starts);
        m->cap = ncap;
    }
    if (m->starts) {
        /* Keep an existing index valid. */
        m->starts[m->count] = m->count ? m->starts[m->count - 1] + m->entries[m->count - 1].loc.logical_len : 0;
    }
    m->entries[m->count++] = *e;
}

void ddp_streammap_free(ddp_streammap *m)
{
    free(m->entries);
    free(m->starts);
    ddp_streammap_init(m);
}

HRESULT ddp_streammap_encode(const ddp_streammap *m, uint8_t **out, size_t *n)
{
    if (!m || !out || !n) return E_POINTER;
    /* At most 56 + 56 * (2^32 - 1) bytes: fits size_t on 64-bit hosts. */
    uint64_t len64 = DDP_STREAMMAP_HEADER_SIZE + (uint64_t)m->count * DDP_STREAMMAP_ENTRY_SIZE;
    if (len64 != (size_t)len64)
        return ddp_fail(E_OUTOFMEMORY, "stream map: %u entries are too many to encode", m->count);
    size_t len = (size_t)len64;
    uint8_t *buf = ddp_xcalloc(1, len);
    memcpy(buf, streammap_magic, 8);
    ddp_put_le64(buf + 8, m->file_size);
    ddp_put_le32(buf + 16, m->count);
    ddp_put_le32(buf + 20, 0);
    memcpy(buf + 24, m->file_hash, DDP_HASH_SIZE);
    uint8_t *p = buf + DDP_STREAMMAP_HEADER_SIZE;
    for (uint32_t i = 0; i < m->count; i++, p += DDP_STREAMMAP_ENTRY_SIZE) {
        const ddp_streammap_entry *e = &m->entries[i];
        memcpy(p, e->hash, DDP_HASH_SIZE);
        ddp_put_le32(p + 32, e->loc.container);
        p[36] = e->loc.codec;
        p[37] = p[38] = p[39] = 0;
        ddp_put_le64(p + 40, e->loc.offset);
        ddp_put_le32(p + 48, e->loc.stored_len);
        ddp_put_le32(p + 52, e->loc.logical_len);
    }
    *out = buf;
    *n = len;
    return S_OK;
}

/* Check one decoded entry; i is its index, for the message. */
static HRESULT check_entry(const uint8_t *p, uint32_t i)
{
    uint8_t codec = p[36];
    if (p[37] || p[38] || p[39])
        return ddp_fail(DDP_E_FILE_CORRUPT, "stream map entry %u: nonzero reserved bytes", i);
    if (codec != DDP_CODEC_NONE && codec != DDP_CODEC_ZSTD)
        return ddp_fail(DDP_E_FILE_CORRUPT, "stream map entry %u: unknown codec %u", i, codec);
    uint32_t stored = ddp_get_le32(p + 48), logical = ddp_get_le32(p + 52);
    if (logical == 0 || logical > STREAMMAP_CHUNK_MAX)
        return ddp_fail(DDP_E_FILE_CORRUPT, "stream map entry %u: logical length %u is outside 1..%u", i,
                        logical, STREAMMAP_CHUNK_MAX);
    if (stored == 0)
        return ddp_fail(DDP_E_FILE_CORRUPT, "stream map entry %u: stored length is 0", i);
    if (stored > ddp_compress_bound(logical))
        return ddp_fail(DDP_E_FILE_CORRUPT, "stream map entry %u: stored length %u exceeds the bound %zu for %u bytes",
                        i, stored, ddp_compress_bound(logical), logical);
    if (codec == DDP_CODEC_NONE && stored != logical)
        return ddp_fail(DDP_E_FILE_CORRUPT, "stream map entry %u: uncompressed but stored length %u != logical %u", i,
                        stored, logical);
    return S_OK;
}

HRESULT ddp_streammap_decode(const uint8_t *buf, size_t n, ddp_streammap *m)
{
    if (!buf || !m) return E_POINTER;
    ddp_streammap_init(m);
    if (n < DDP_STREAMMAP_HEADER_SIZE)
        return ddp_fail(DDP_E_FILE_CORRUPT, "stream map: %zu bytes is shorter than its %d-byte header", n,
                        DDP_STREAMMAP_HEADER_SIZE);
    if (memcmp(buf, streammap_magic, 8) != 0)
        return ddp_fail(DDP_E_FILE_CORRUPT, "stream map: bad magic");
    uint64_t file_size = ddp_get_le64(buf + 8);
    uint32_t count = ddp_get_le32(buf + 16);
    if (ddp_get_le32(buf + 20) != 0)
        return ddp_fail(DDP_E_FILE_CORRUPT, "stream map: nonzero reserved field");
    /* n must be exactly 56 + 56*count; divide instead of multiplying. */
    size_t body = n - DDP_STREAMMAP_HEADER_SIZE;
    if (body % DDP_STREAMMAP_ENTRY_SIZE != 0 || body / DDP_STREAMMAP_ENTRY_SIZE != count)
        return ddp_fail(DDP_E_FILE_CORRUPT, "stream map: %zu bytes do not hold exactly %u entries", n, count);

    const uint8_t *p = buf + DDP_STREAMMAP_HEADER_SIZE;
    uint64_t total = 0;
    for (uint32_t i = 0; i < count; i++, p += DDP_STREAMMAP_ENTRY_SIZE) {
        HRESULT hr = check_entry(p, i);
        if (FAILED(hr)) return hr;
        uint32_t logical = ddp_get_le32(p + 52);
        if (logical > file_size - total) /* total <= file_size holds here, so no wrap */
            return ddp_fail(DDP_E_FILE_CORRUPT, "stream map: chunks up to entry %u exceed the file size %llu", i,
                            (unsigned long long)file_size);
        total += logical;
    }
    if (total != file_size)
        return ddp_fail(DDP_E_FILE_CORRUPT, "stream map: chunks add up to %llu bytes, not the file size %llu",
                        (unsigned long long)total, (unsigned long long)file_size);

    m->entries = ddp_xmalloc((size_t)(count ? count : 1) * sizeof *m->entries);
    m->cap = count;
    m->count = count;
    m->file_size = file_size;
    memcpy(m->file_hash, buf + 24, DDP_HASH_SIZE);
    p = buf + DDP_STREAMMAP_HEADER_SIZE;
    for (uint32_t i = 0; i < count; i++, p += DDP_STREAMMAP_ENTRY_SIZE) {
        ddp_streammap_entry *e = &m->entries[i];
        memcpy(e->hash, p, DDP_HASH_SIZE);
        e->loc.container = ddp_get_le32(p + 32);
        e->loc.codec = p[36];
        e->loc.offset = ddp_get_le64(p + 40);
        e->loc.stored_len = ddp_get_le32(p + 48);
        e->loc.logical_len = ddp_get_le32(p + 52);
    }
    return S_OK;
}

void ddp_streammap_index(ddp_streammap *m)
{
    free(m->starts);
    m->starts = ddp_xmalloc((size_t)(m->cap ? m->cap : 1) * sizeof *m->starts);
    uint64_t off = 0;
    for (uint32_t i = 0; i < m->count; i++) {
        m->starts[i] = off;
        off += m->entries[i].loc.logical_len;
    }
}

uint32_t ddp_streammap_find(const ddp_streammap *m, uint64_t off)
{
    /* The last entry whose start is <= off. */
    if (m->count == 0) return 0;
    uint32_t lo = 0, hi = m->count - 1;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo + 1) / 2;
        if (m->starts[mid] <= off)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}
