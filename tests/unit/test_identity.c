/* SPDX-License-Identifier: MIT */
/*
 * test_identity.c: unit tests for the identity file and GUID text
 * (identity.h). Pins the 72-byte layout of docs/FORMAT.md (magic, version,
 * flags, store id, key, checksum position), checks the round trip, checks
 * that every size but 72, every flipped byte, a bad magic, unknown flags and
 * an unknown version are refused with the documented codes, and checks the
 * GUID text form in both directions, including what parsing must refuse.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/hash.h"
#include "store/identity.h"
#include "testutil.h"
#include "base/util.h"

static ddp_identity sample(uint64_t seed)
{
    ddp_identity id;
    tu_fill_random(&id, sizeof id, seed);
    return id;
}

/* Re-seal bytes 0..63 after an edit, so a test reaches past the checksum. */
static void reseal(uint8_t buf[DDP_IDENTITY_SIZE])
{
    ddp_put_le64(buf + 64, ddp_checksum64(buf, 64));
}

static void test_generate_is_random(void **state)
{
    (void)state;
    ddp_identity a, b;
    assert_int_equal(ddp_identity_generate(&a), S_OK);
    assert_int_equal(ddp_identity_generate(&b), S_OK);
    assert_memory_not_equal(a.store_id, b.store_id, DDP_STORE_ID_SIZE);
    assert_memory_not_equal(a.key, b.key, DDP_KEY_SIZE);
    static const uint8_t zero[DDP_KEY_SIZE];
    assert_memory_not_equal(a.key, zero, DDP_KEY_SIZE);
}

static void test_layout_pinned(void **state)
{
    (void)state;
    ddp_identity id = sample(1);
    uint8_t buf[DDP_IDENTITY_SIZE];
    memset(buf, 0xAA, sizeof buf);
    ddp_identity_encode(&id, buf);
    assert_memory_equal(buf, "DDPIDNT1", 8);
    assert_int_equal(buf[8], 1);
    assert_int_equal(buf[9], 0);
    assert_int_equal(buf[10], 0);
    assert_int_equal(buf[11], 0);
    for (int i = 12; i < 16; i++) assert_int_equal(buf[i], 0);
    assert_memory_equal(buf + 16, id.store_id, 16);
    assert_memory_equal(buf + 32, id.key, 32);
    uint64_t sum = ddp_checksum64(buf, 64);
    for (int i = 0; i < 8; i++) assert_int_equal(buf[64 + i], (uint8_t)(sum >> (8 * i)));
}

static void test_round_trip(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed < 20; seed++) {
        ddp_identity id = sample(seed), back;
        uint8_t buf[DDP_IDENTITY_SIZE];
        ddp_identity_encode(&id, buf);
        memset(&back, 0, sizeof back);
        assert_int_equal(ddp_identity_decode(buf, sizeof buf, &back), S_OK);
        assert_memory_equal(&id, &back, sizeof id);
    }
}

static void test_wrong_sizes(void **state)
{
    (void)state;
    ddp_identity id = sample(2), back;
    uint8_t buf[DDP_IDENTITY_SIZE + 8];
    memset(buf, 0, sizeof buf);
    ddp_identity_encode(&id, buf);
    for (size_t n = 0; n <= sizeof buf; n++) {
        if (n == DDP_IDENTITY_SIZE) continue;
        ddp_clear_error();
        assert_int_equal(ddp_identity_decode(buf, n, &back), DDP_E_INVALID_DATA);
        assert_non_null(strstr(ddp_error_detail(), "size"));
    }
}

static void test_every_flipped_byte_rejected(void **state)
{
    (void)state;
    ddp_identity id = sample(3), back;
    uint8_t good[DDP_IDENTITY_SIZE], buf[DDP_IDENTITY_SIZE];
    ddp_identity_encode(&id, good);
    for (size_t i = 0; i < DDP_IDENTITY_SIZE; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(buf, good, sizeof buf);
            buf[i] ^= (uint8_t)(1u << bit);
            ddp_clear_error();
            assert_int_equal(ddp_identity_decode(buf, sizeof buf, &back), DDP_E_INVALID_DATA);
            assert_string_not_equal(ddp_error_detail(), "");
        }
    }
}

static void test_magic_version_flags(void **state)
{
    (void)state;
    ddp_identity id = sample(4), back;
    uint8_t buf[DDP_IDENTITY_SIZE];

    ddp_identity_encode(&id, buf);
    buf[7] = '2';
    reseal(buf);
    assert_int_equal(ddp_identity_decode(buf, sizeof buf, &back), DDP_E_INVALID_DATA);
    assert_non_null(strstr(ddp_error_detail(), "magic"));

    ddp_identity_encode(&id, buf);
    ddp_put_le32(buf + 8, 2);
    reseal(buf);
    assert_int_equal(ddp_identity_decode(buf, sizeof buf, &back), DDP_E_UNSUPPORTED_VERSION);
    assert_non_null(strstr(ddp_error_detail(), "version"));

    ddp_identity_encode(&id, buf);
    ddp_put_le32(buf + 8, 0);
    reseal(buf);
    assert_int_equal(ddp_identity_decode(buf, sizeof buf, &back), DDP_E_UNSUPPORTED_VERSION);

    ddp_identity_encode(&id, buf);
    ddp_put_le32(buf + 12, 1);
    reseal(buf);
    assert_int_equal(ddp_identity_decode(buf, sizeof buf, &back), DDP_E_INVALID_DATA);
    assert_non_null(strstr(ddp_error_detail(), "flags"));

    /* A checksum mismatch is reported as such. */
    ddp_identity_encode(&id, buf);
    buf[40] ^= 1;
    assert_int_equal(ddp_identity_decode(buf, sizeof buf, &back), DDP_E_INVALID_DATA);
    assert_non_null(strstr(ddp_error_detail(), "checksum"));
}

static const uint8_t known_guid[16] = { 0x3F, 0x25, 0x04, 0xE0, 0x4F, 0x89, 0x11, 0xD3,
                                        0x9A, 0x0C, 0x03, 0x05, 0xE8, 0x2C, 0x33, 0x01 };

static void test_guid_format(void **state)
{
    (void)state;
    char text[39];
    memset(text, 'x', sizeof text);
    ddp_guid_format(known_guid, text);
    assert_string_equal(text, "{3F2504E0-4F89-11D3-9A0C-0305E82C3301}");
    assert_int_equal(strlen(text), 38);

    uint8_t ff[16];
    memset(ff, 0xFF, sizeof ff);
    ddp_guid_format(ff, text);
    assert_string_equal(text, "{FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF}");
}

static void test_guid_parse(void **state)
{
    (void)state;
    uint8_t id[16];
    assert_int_equal(ddp_guid_parse("{3F2504E0-4F89-11D3-9A0C-0305E82C3301}", id), 0);
    assert_memory_equal(id, known_guid, 16);
    memset(id, 0, sizeof id);
    assert_int_equal(ddp_guid_parse("3F2504E0-4F89-11D3-9A0C-0305E82C3301", id), 0);
    assert_memory_equal(id, known_guid, 16);
    memset(id, 0, sizeof id);
    assert_int_equal(ddp_guid_parse("{3f2504e0-4f89-11d3-9a0c-0305e82c3301}", id), 0);
    assert_memory_equal(id, known_guid, 16);

    static const char *const bad[] = {
        "",
        "{}",
        "{3F2504E0-4F89-11D3-9A0C-0305E82C3301",    /* no closing brace */
        "3F2504E0-4F89-11D3-9A0C-0305E82C3301}",    /* no opening brace */
        "{3F2504E0-4F89-11D3-9A0C-0305E82C330}",    /* one digit short */
        "{3F2504E0-4F89-11D3-9A0C-0305E82C33011}",  /* one digit long */
        "{3F2504E04F89-11D3-9A0C-0305E82C3301}",    /* missing dash */
        "{3F2504E-04F89-11D3-9A0C-0305E82C3301}",   /* dash in the wrong place */
        "{3F2504E0-4F89-11D3-9A0C-0305E82C33G1}",   /* not hex */
        "{3F2504E0-4F89-11D3-9A0C-0305E82C3301} ",  /* trailing space */
        " {3F2504E0-4F89-11D3-9A0C-0305E82C3301}",  /* leading space */
        "3F2504E04F8911D39A0C0305E82C3301",         /* no dashes at all */
        "{3F2504E0-4F89-11D3-9A0C-0305E82C3301}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t before[16];
        memset(id, 0x5A, sizeof id);
        memcpy(before, id, sizeof id);
        assert_int_not_equal(ddp_guid_parse(bad[i], id), 0);
        assert_memory_equal(id, before, 16); /* untouched on failure */
    }
    assert_int_not_equal(ddp_guid_parse(NULL, id), 0);
}

static void test_guid_round_trip(void **state)
{
    (void)state;
    for (uint64_t seed = 0; seed < 200; seed++) {
        uint8_t id[16], back[16];
        char text[39];
        tu_fill_random(id, sizeof id, seed);
        ddp_guid_format(id, text);
        assert_int_equal(strlen(text), 38);
        assert_int_equal(ddp_guid_parse(text, back), 0);
        assert_memory_equal(id, back, 16);
        /* without braces too */
        text[37] = '\0';
        assert_int_equal(ddp_guid_parse(text + 1, back), 0);
        assert_memory_equal(id, back, 16);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate_is_random),
        cmocka_unit_test(test_layout_pinned),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_wrong_sizes),
        cmocka_unit_test(test_every_flipped_byte_rejected),
        cmocka_unit_test(test_magic_version_flags),
        cmocka_unit_test(test_guid_format),
        cmocka_unit_test(test_guid_parse),
        cmocka_unit_test(test_guid_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
