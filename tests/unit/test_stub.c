/* SPDX-License-Identifier: MIT */
/*
 * test_stub.c: unit tests for the stub (stub.h). Pins the 232-byte layout of
 * docs/FORMAT.md byte by byte (the 80-byte text, the magic, every field and
 * the MAC, recomputed here with OpenSSL directly), checks the round trip,
 * and checks that decode refuses every single-bit change, every truncation
 * and extension, the wrong key, and (with the MAC recomputed so that only
 * the field itself is wrong) an unknown version and nonzero flags or
 * reserved bytes, each with a detail message saying what was wrong.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "store/stub.h"
#include "testutil.h"
#include "base/util.h"

static const char expected_sentence[] =
    "ddp stub: this file was optimized by ddp; read it with 'ddp cat' or ddp mount.";

static ddp_stub sample(uint64_t seed)
{
    ddp_stub s;
    memset(&s, 0, sizeof s);
    tu_fill_random(s.store_id, sizeof s.store_id, seed);
    tu_fill_random(s.file_hash, sizeof s.file_hash, seed + 1);
    tu_fill_random(s.streammap_hash, sizeof s.streammap_hash, seed + 2);
    s.stream_container = 0x01020304u + (uint32_t)seed;
    s.streammap_stored_len = 56u + 56u * (uint32_t)seed;
    s.stream_offset = 0x1122334455667788ull + seed;
    s.file_size = 0x0000000123456789ull + seed;
    return s;
}

static void sample_key(uint8_t key[DDP_KEY_SIZE], uint64_t seed) { tu_fill_random(key, DDP_KEY_SIZE, seed ^ 0xABCDEF); }

/* Recompute the MAC after an edit, independently of the library. */
static void remac(uint8_t buf[DDP_STUB_SIZE], const uint8_t key[DDP_KEY_SIZE])
{
    unsigned int len = 0;
    assert_non_null(HMAC(EVP_sha256(), key, DDP_KEY_SIZE, buf, 200, buf + 200, &len));
    assert_int_equal(len, 32);
}

static void assert_same(const ddp_stub *a, const ddp_stub *b)
{
    assert_memory_equal(a->store_id, b->store_id, sizeof a->store_id);
    assert_int_equal(a->stream_container, b->stream_container);
    assert_int_equal(a->stream_offset, b->stream_offset);
    assert_int_equal(a->file_size, b->file_size);
    assert_memory_equal(a->file_hash, b->file_hash, sizeof a->file_hash);
    assert_memory_equal(a->streammap_hash, b->streammap_hash, sizeof a->streammap_hash);
}

static void test_layout_pinned(void **state)
{
    (void)state;
    ddp_stub s = sample(7);
    uint8_t key[DDP_KEY_SIZE], buf[DDP_STUB_SIZE];
    sample_key(key, 7);
    memset(buf, 0xEE, sizeof buf);
    ddp_stub_encode(&s, key, buf);

    /* text: sentence, spaces to byte 78, '\n' at 79 */
    assert_int_equal(strlen(expected_sentence), 78);
    assert_memory_equal(buf, expected_sentence, 78);
    assert_int_equal(buf[78], ' ');
    assert_int_equal(buf[79], '\n');

    assert_memory_equal(buf + 80, "DDPSTUB1", 8);
    assert_int_equal(ddp_get_le32(buf + 88), 1);
    assert_int_equal(ddp_get_le32(buf + 92), 0);
    assert_memory_equal(buf + 96, s.store_id, 16);
    static const uint8_t container_le[4] = { 0x0B, 0x03, 0x02, 0x01 }; /* 0x01020304 + 7 */
    assert_memory_equal(buf + 112, container_le, 4);
    assert_int_equal(ddp_get_le32(buf + 116), s.streammap_stored_len);
    assert_int_equal(buf[120], 0x8F); /* low byte of 0x1122334455667788 + 7 */
    assert_int_equal(buf[127], 0x11);
    assert_int_equal(ddp_get_le64(buf + 120), s.stream_offset);
    assert_int_equal(ddp_get_le64(buf + 128), s.file_size);
    assert_memory_equal(buf + 136, s.file_hash, 32);
    assert_memory_equal(buf + 168, s.streammap_hash, 32);

    uint8_t mac[32];
    unsigned int len = 0;
    assert_non_null(HMAC(EVP_sha256(), key, DDP_KEY_SIZE, buf, 200, mac, &len));
    assert_memory_equal(buf + 200, mac, 32);

    /* ddp_hmac_sha256 agrees */
    uint8_t mac2[32];
    ddp_hmac_sha256(key, DDP_KEY_SIZE, buf, 200, mac2);
    assert_memory_equal(mac, mac2, 32);
}

static void test_round_trip(void **state)
{
    (void)state;
    for (uint64_t seed = 0; seed < 16; seed++) {
        ddp_stub s = sample(seed), back, peeked;
        uint8_t key[DDP_KEY_SIZE], buf[DDP_STUB_SIZE];
        sample_key(key, seed);
        ddp_stub_encode(&s, key, buf);
        assert_true(ddp_stub_looks_like(buf, sizeof buf));
        memset(&back, 0, sizeof back);
        assert_int_equal(ddp_stub_decode(buf, sizeof buf, key, &back), S_OK);
        assert_same(&s, &back);
        memset(&peeked, 0, sizeof peeked);
        assert_int_equal(ddp_stub_peek(buf, sizeof buf, &peeked), S_OK);
        assert_same(&s, &peeked);
    }
}

static void test_every_bit_flip_rejected(void **state)
{
    (void)state;
    ddp_stub s = sample(11), out;
    uint8_t key[DDP_KEY_SIZE], good[DDP_STUB_SIZE], buf[DDP_STUB_SIZE];
    sample_key(key, 11);
    ddp_stub_encode(&s, key, good);
    for (size_t i = 0; i < DDP_STUB_SIZE; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(buf, good, sizeof buf);
            buf[i] ^= (uint8_t)(1u << bit);
            ddp_clear_error();
            memset(&out, 0x77, sizeof out);
            assert_int_equal(ddp_stub_decode(buf, sizeof buf, key, &out), DDP_E_INVALID_DATA);
            assert_string_not_equal(ddp_error_detail(), "");
            /* looks_like only looks at the text and the magic */
            assert_int_equal(ddp_stub_looks_like(buf, sizeof buf), i >= 88);
        }
    }
}

static void test_every_length_rejected(void **state)
{
    (void)state;
    ddp_stub s = sample(12), out;
    uint8_t key[DDP_KEY_SIZE], buf[DDP_STUB_SIZE + 16];
    sample_key(key, 12);
    memset(buf, 0, sizeof buf);
    ddp_stub_encode(&s, key, buf);
    for (size_t n = 0; n <= sizeof buf; n++) {
        if (n == DDP_STUB_SIZE) continue;
        ddp_clear_error();
        assert_int_equal(ddp_stub_decode(buf, n, key, &out), DDP_E_INVALID_DATA);
        assert_non_null(strstr(ddp_error_detail(), "wrong size"));
        assert_int_equal(ddp_stub_peek(buf, n, &out), DDP_E_INVALID_DATA);
        assert_false(ddp_stub_looks_like(buf, n));
    }
    assert_int_equal(ddp_stub_decode(buf, 231, key, &out), DDP_E_INVALID_DATA);
    assert_string_equal(ddp_error_detail(), "not a ddp stub: wrong size 231 (a stub is 232 bytes)");
}

static void test_wrong_key(void **state)
{
    (void)state;
    ddp_stub s = sample(13), out;
    uint8_t key[DDP_KEY_SIZE], other[DDP_KEY_SIZE], buf[DDP_STUB_SIZE];
    sample_key(key, 13);
    memcpy(other, key, sizeof other);
    other[31] ^= 0x01;
    ddp_stub_encode(&s, key, buf);
    assert_int_equal(ddp_stub_decode(buf, sizeof buf, other, &out), DDP_E_INVALID_DATA);
    assert_string_equal(ddp_error_detail(), "stub MAC check failed (forged or from another volume)");
    /* peek does not need the key, and looks_like is still true */
    assert_int_equal(ddp_stub_peek(buf, sizeof buf, &out), S_OK);
    assert_same(&s, &out);
    assert_true(ddp_stub_looks_like(buf, sizeof buf));
}

/* Field errors are caught even when the MAC is right. */
static void test_fields_checked_beyond_mac(void **state)
{
    (void)state;
    ddp_stub s = sample(14), out;
    uint8_t key[DDP_KEY_SIZE], buf[DDP_STUB_SIZE];
    sample_key(key, 14);

    ddp_stub_encode(&s, key, buf);
    ddp_put_le32(buf + 88, 2);
    remac(buf, key);
    assert_int_equal(ddp_stub_decode(buf, sizeof buf, key, &out), DDP_E_INVALID_DATA);
    assert_non_null(strstr(ddp_error_detail(), "version"));
    assert_int_equal(ddp_stub_peek(buf, sizeof buf, &out), DDP_E_INVALID_DATA);

    ddp_stub_encode(&s, key, buf);
    ddp_put_le32(buf + 92, 0x100);
    remac(buf, key);
    assert_int_equal(ddp_stub_decode(buf, sizeof buf, key, &out), DDP_E_INVALID_DATA);
    assert_non_null(strstr(ddp_error_detail(), "flags"));
    assert_int_equal(ddp_stub_peek(buf, sizeof buf, &out), DDP_E_INVALID_DATA);

    static const uint32_t bad_lens[] = { 0, 55, DDP_STUB_MAX_MAP_LEN + 1, 0xFFFFFFFFu };
    for (size_t i = 0; i < sizeof bad_lens / sizeof bad_lens[0]; i++) {
        ddp_stub_encode(&s, key, buf);
        ddp_put_le32(buf + 116, bad_lens[i]);
        remac(buf, key);
        assert_int_equal(ddp_stub_decode(buf, sizeof buf, key, &out), DDP_E_INVALID_DATA);
        assert_non_null(strstr(ddp_error_detail(), "stream-map length"));
        assert_int_equal(ddp_stub_peek(buf, sizeof buf, &out), DDP_E_INVALID_DATA);
    }
    assert_true(ddp_stub_has_prefix(buf, 88));
    assert_false(ddp_stub_has_prefix(buf, 87));

    ddp_stub_encode(&s, key, buf);
    buf[85] = 'X'; /* magic */
    remac(buf, key);
    assert_int_equal(ddp_stub_decode(buf, sizeof buf, key, &out), DDP_E_INVALID_DATA);
    assert_string_equal(ddp_error_detail(), "not a ddp stub: wrong magic");
    assert_false(ddp_stub_looks_like(buf, sizeof buf));

    ddp_stub_encode(&s, key, buf);
    buf[78] = '.'; /* padding is part of the text */
    remac(buf, key);
    assert_int_equal(ddp_stub_decode(buf, sizeof buf, key, &out), DDP_E_INVALID_DATA);
    assert_string_equal(ddp_error_detail(), "not a ddp stub: wrong text");
    assert_false(ddp_stub_looks_like(buf, sizeof buf));

    /* Changing a data field with a correct MAC is (by construction) accepted:
     * the MAC, not the layout, is what binds the fields. */
    ddp_stub_encode(&s, key, buf);
    buf[130] ^= 0xFF;
    remac(buf, key);
    assert_int_equal(ddp_stub_decode(buf, sizeof buf, key, &out), S_OK);
    assert_int_equal(out.file_size, s.file_size ^ (0xFFull << 16));
}

static void test_ordinary_files(void **state)
{
    (void)state;
    uint8_t key[DDP_KEY_SIZE], buf[DDP_STUB_SIZE];
    ddp_stub out;
    sample_key(key, 15);
    memset(buf, 0, sizeof buf);
    assert_false(ddp_stub_looks_like(buf, sizeof buf));
    assert_int_equal(ddp_stub_decode(buf, sizeof buf, key, &out), DDP_E_INVALID_DATA);
    /* The text alone, as a user might type it into a 232-byte file. */
    memset(buf, ' ', sizeof buf);
    memcpy(buf, expected_sentence, 78);
    buf[79] = '\n';
    assert_false(ddp_stub_looks_like(buf, sizeof buf));
    assert_int_equal(ddp_stub_decode(buf, sizeof buf, key, &out), DDP_E_INVALID_DATA);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_pinned),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_every_bit_flip_rejected),
        cmocka_unit_test(test_every_length_rejected),
        cmocka_unit_test(test_wrong_key),
        cmocka_unit_test(test_fields_checked_beyond_mac),
        cmocka_unit_test(test_ordinary_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
