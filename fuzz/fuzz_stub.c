/* SPDX-License-Identifier: MIT */
/*
 * fuzz_stub.c: libFuzzer target for the stub parser (lib/stub.c).
 *
 * A stub is the one structure ddp reads from a place any user can write: the
 * optimized file itself. The input is taken as the bytes of a file that may
 * or may not be a stub, and fed to ddp_stub_has_prefix, ddp_stub_looks_like,
 * ddp_stub_peek and ddp_stub_decode. Checked for every input:
 *
 *   - peek and decode answer S_OK or DDP_E_INVALID_DATA, with a detail on
 *     failure; decode never accepts what peek refuses;
 *   - a stub whose MAC does not verify is never accepted (decode under a
 *     second key must fail);
 *   - with the MAC recomputed under the fuzzer's key, decode accepts exactly
 *     what peek accepts, agrees with peek on every field, and encoding the
 *     decoded stub gives back the same 232 bytes (nothing in a stub is
 *     ignored by the parser, so nothing can be smuggled in it).
 */
#include "fuzz_common.h"
#include "store/stub.h"

static const uint8_t key_a[DDP_KEY_SIZE] = { 0x6b, 0x65, 0x79, 0x2d, 0x61, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
                                             12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27 };
static const uint8_t key_b[DDP_KEY_SIZE] = { 0x6b, 0x65, 0x79, 0x2d, 0x62, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
                                             12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27 };

static int same_stub(const ddp_stub *a, const ddp_stub *b)
{
    return memcmp(a->store_id, b->store_id, sizeof a->store_id) == 0 && a->stream_container == b->stream_container &&
           a->streammap_stored_len == b->streammap_stored_len && a->stream_offset == b->stream_offset &&
           a->file_size == b->file_size && memcmp(a->file_hash, b->file_hash, sizeof a->file_hash) == 0 &&
           memcmp(a->streammap_hash, b->streammap_hash, sizeof a->streammap_hash) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A private copy: the parser must not depend on bytes past size. */
    uint8_t *buf = fz_dup(data, size);
    ddp_clear_error();

    int prefix = ddp_stub_has_prefix(buf, size);
    int looks = ddp_stub_looks_like(buf, size);
    FZ_CHECK(!looks || prefix);
    FZ_CHECK(!looks || size == DDP_STUB_SIZE);

    ddp_stub peeked, decoded;
    HRESULT hp = ddp_stub_peek(buf, size, &peeked);
    FZ_CHECK(hp == S_OK || hp == DDP_E_INVALID_DATA);
    FZ_CHECK_DETAIL(hp);
    FZ_CHECK(FAILED(hp) || looks);
    if (SUCCEEDED(hp)) {
        FZ_CHECK(peeked.streammap_stored_len >= DDP_STUB_MIN_MAP_LEN);
        FZ_CHECK(peeked.streammap_stored_len <= DDP_STUB_MAX_MAP_LEN);
    }

    HRESULT hd = ddp_stub_decode(buf, size, key_a, &decoded);
    FZ_CHECK(hd == S_OK || hd == DDP_E_INVALID_DATA);
    FZ_CHECK_DETAIL(hd);
    FZ_CHECK(FAILED(hd) || SUCCEEDED(hp));

    if (size == DDP_STUB_SIZE) {
        /* The same bytes with a valid MAC under key_a. */
        ddp_hmac_sha256(key_a, DDP_KEY_SIZE, buf, 200, buf + 200);
        hd = ddp_stub_decode(buf, size, key_a, &decoded);
        FZ_CHECK(hd == S_OK || hd == DDP_E_INVALID_DATA);
        FZ_CHECK(SUCCEEDED(hd) == SUCCEEDED(hp));
        /* ... is never valid under another key. */
        ddp_stub other;
        FZ_CHECK(FAILED(ddp_stub_decode(buf, size, key_b, &other)));
        if (SUCCEEDED(hd)) {
            FZ_CHECK(same_stub(&peeked, &decoded));
            uint8_t again[DDP_STUB_SIZE];
            ddp_stub_encode(&decoded, key_a, again);
            FZ_CHECK(memcmp(again, buf, DDP_STUB_SIZE) == 0);
        }
    }
    free(buf);
    return 0;
}
