/* SPDX-License-Identifier: MIT */
/*
 * stub.c: the 232-byte stub that replaces an optimized file (docs/FORMAT.md).
 *
 *     0   text [80]: "ddp stub: this file was optimized by ddp; read it with
 *         'ddp cat' or ddp mount." padded with spaces to 79 bytes, then '\n'
 *     80  magic "DDPSTUB1"        88  version = 1       92  flags = 0
 *     96  store id [16]           112 stream container  116 stream-map length
 *     120 stream-map offset       128 file size
 *     136 whole-file hash [32]    168 stream-map sha256 [32]
 *     200 HMAC-SHA256(stub key, bytes 0..199) [32]
 *
 * The text makes a stub explain itself to anyone who opens it without ddp.
 * A file is only ever treated as a stub when it is exactly 232 bytes, starts
 * with the text and the magic, has a supported version, zero flags, a
 * plausible stream-map length, and its MAC verifies under the volume's key: an ordinary
 * file that happens to look similar, or a stub copied from another volume,
 * is never trusted. The MAC comparison is constant-time.
 */
#include "store/stub.h"
#include "base/util.h"

#define STUB_VERSION 1u
#define STUB_MAC_OFF 200

static const char stub_sentence[] = "ddp stub: this file was optimized by ddp; read it with 'ddp cat' or ddp mount.";
static const uint8_t stub_magic[8] = { 'D', 'D', 'P', 'S', 'T', 'U', 'B', '1' };

_Static_assert(sizeof stub_sentence - 1 <= DDP_STUB_TEXT_SIZE - 1, "stub sentence must fit in the text field");

/* The 80 text bytes: the sentence, spaces up to byte 78, '\n' at byte 79. */
static void stub_text(uint8_t out[DDP_STUB_TEXT_SIZE])
{
    memset(out, ' ', DDP_STUB_TEXT_SIZE);
    memcpy(out, stub_sentence, sizeof stub_sentence - 1);
    out[DDP_STUB_TEXT_SIZE - 1] = '\n';
}

void ddp_stub_encode(const ddp_stub *s, const uint8_t key[DDP_KEY_SIZE], uint8_t out[DDP_STUB_SIZE])
{
    memset(out, 0, DDP_STUB_SIZE);
    stub_text(out);
    memcpy(out + 80, stub_magic, 8);
    ddp_put_le32(out + 88, STUB_VERSION);
    ddp_put_le32(out + 92, 0);
    memcpy(out + 96, s->store_id, DDP_STORE_ID_SIZE);
    ddp_put_le32(out + 112, s->stream_container);
    ddp_put_le32(out + 116, s->streammap_stored_len);
    ddp_put_le64(out + 120, s->stream_offset);
    ddp_put_le64(out + 128, s->file_size);
    memcpy(out + 136, s->file_hash, DDP_HASH_SIZE);
    memcpy(out + 168, s->streammap_hash, DDP_HASH_SIZE);
    ddp_hmac_sha256(key, DDP_KEY_SIZE, out, STUB_MAC_OFF, out + STUB_MAC_OFF);
}

/* Size, text and magic; on failure records why (as DDP_E_INVALID_DATA). */
static HRESULT check_shape(const uint8_t *buf, size_t n)
{
    if (!buf) return E_POINTER;
    if (n != DDP_STUB_SIZE)
        return ddp_fail(DDP_E_INVALID_DATA, "not a ddp stub: wrong size %zu (a stub is %d bytes)", n, DDP_STUB_SIZE);
    uint8_t text[DDP_STUB_TEXT_SIZE];
    stub_text(text);
    if (memcmp(buf, text, DDP_STUB_TEXT_SIZE) != 0)
        return ddp_fail(DDP_E_INVALID_DATA, "not a ddp stub: wrong text");
    if (memcmp(buf + 80, stub_magic, 8) != 0)
        return ddp_fail(DDP_E_INVALID_DATA, "not a ddp stub: wrong magic");
    return S_OK;
}

int ddp_stub_has_prefix(const uint8_t *buf, size_t n)
{
    if (!buf || n < DDP_STUB_PREFIX_SIZE) return 0;
    uint8_t text[DDP_STUB_TEXT_SIZE];
    stub_text(text);
    return memcmp(buf, text, DDP_STUB_TEXT_SIZE) == 0 && memcmp(buf + 80, stub_magic, 8) == 0;
}

int ddp_stub_looks_like(const uint8_t *buf, size_t n)
{
    if (!buf || n != DDP_STUB_SIZE) return 0;
    uint8_t text[DDP_STUB_TEXT_SIZE];
    stub_text(text);
    return memcmp(buf, text, DDP_STUB_TEXT_SIZE) == 0 && memcmp(buf + 80, stub_magic, 8) == 0;
}

HRESULT ddp_stub_peek(const uint8_t *buf, size_t n, ddp_stub *s)
{
    HRESULT hr = check_shape(buf, n);
    if (FAILED(hr)) return hr;
    if (!s) return E_POINTER;
    uint32_t version = ddp_get_le32(buf + 88);
    if (version != STUB_VERSION)
        return ddp_fail(DDP_E_INVALID_DATA, "ddp stub: unsupported version %u (this ddp reads version %u)",
                        version, STUB_VERSION);
    uint32_t flags = ddp_get_le32(buf + 92);
    if (flags != 0)
        return ddp_fail(DDP_E_INVALID_DATA, "ddp stub: nonzero flags 0x%08x", flags);
    uint32_t maplen = ddp_get_le32(buf + 116);
    if (maplen < DDP_STUB_MIN_MAP_LEN || maplen > DDP_STUB_MAX_MAP_LEN)
        return ddp_fail(DDP_E_INVALID_DATA, "ddp stub: stream-map length %u out of range", maplen);
    s->streammap_stored_len = maplen;
    memcpy(s->store_id, buf + 96, DDP_STORE_ID_SIZE);
    s->stream_container = ddp_get_le32(buf + 112);
    s->stream_offset = ddp_get_le64(buf + 120);
    s->file_size = ddp_get_le64(buf + 128);
    memcpy(s->file_hash, buf + 136, DDP_HASH_SIZE);
    memcpy(s->streammap_hash, buf + 168, DDP_HASH_SIZE);
    return S_OK;
}

HRESULT ddp_stub_decode(const uint8_t *buf, size_t n, const uint8_t key[DDP_KEY_SIZE], ddp_stub *s)
{
    if (!key || !s) return E_POINTER;
    ddp_stub tmp;
    HRESULT hr = ddp_stub_peek(buf, n, &tmp);
    if (FAILED(hr)) return hr;
    uint8_t mac[DDP_HASH_SIZE];
    ddp_hmac_sha256(key, DDP_KEY_SIZE, buf, STUB_MAC_OFF, mac);
    if (!ddp_ct_equal(mac, buf + STUB_MAC_OFF, DDP_HASH_SIZE))
        return ddp_fail(DDP_E_INVALID_DATA, "stub MAC check failed (forged or from another volume)");
    *s = tmp;
    return S_OK;
}
