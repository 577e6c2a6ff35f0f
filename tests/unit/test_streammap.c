/* SPDX-License-Identifier: MIT */
/*
 * test_streammap.c: unit tests for the stream map (streammap.h). Pins the
 * header and entry layout of docs/FORMAT.md, checks the round trip, checks
 * that decode refuses truncated and overlong buffers, chunk counts whose
 * byte size would wrap a 32-bit multiplication, lengths that do not add up
 * to the file size, out-of-range logical and stored lengths, unknown codecs
 * and nonzero reserved bytes (all DDP_E_FILE_CORRUPT), and checks
 * ddp_streammap_find at every chunk boundary and against a linear search.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/codec.h"
#include "store/streammap.h"
#include "testutil.h"
#include "base/util.h"

static ddp_streammap_entry entry(uint32_t logical, uint8_t codec, uint32_t stored, uint64_t seed)
{
    ddp_streammap_entry e;
    memset(&e, 0, sizeof e);
    tu_fill_random(e.hash, sizeof e.hash, seed);
    e.loc.container = (uint32_t)(seed % 1000) + 1;
    e.loc.codec = codec;
    e.loc.offset = 64 + seed * 4096;
    e.loc.stored_len = stored;
    e.loc.logical_len = logical;
    return e;
}

/* A map of the given logical lengths, alternating raw and zstd entries. */
static void build(ddp_streammap *m, const uint32_t *lens, size_t count)
{
    ddp_streammap_init(m);
    uint64_t total = 0;
    for (size_t i = 0; i < count; i++) {
        int z = (i % 2) == 1;
        ddp_streammap_entry e = entry(lens[i], z ? DDP_CODEC_ZSTD : DDP_CODEC_NONE, z ? (lens[i] + 1) / 2 : lens[i], i);
        ddp_streammap_add(m, &e);
        total += lens[i];
    }
    m->file_size = total;
    tu_fill_random(m->file_hash, sizeof m->file_hash, 999);
}

static uint8_t *encode(const ddp_streammap *m, size_t *n)
{
    uint8_t *buf = NULL;
    assert_int_equal(ddp_streammap_encode(m, &buf, n), S_OK);
    assert_non_null(buf);
    return buf;
}

static void expect_corrupt(const uint8_t *buf, size_t n, const char *detail_part)
{
    ddp_streammap m;
    memset(&m, 0x5A, sizeof m);
    ddp_clear_error();
    assert_int_equal(ddp_streammap_decode(buf, n, &m), DDP_E_FILE_CORRUPT);
    assert_string_not_equal(ddp_error_detail(), "");
    if (detail_part && !strstr(ddp_error_detail(), detail_part))
        fail_msg("detail '%s' lacks '%s'", ddp_error_detail(), detail_part);
    /* A failed decode leaves an empty map that is safe to free. */
    assert_int_equal(m.count, 0);
    assert_null(m.entries);
    assert_null(m.starts);
    ddp_streammap_free(&m);
}

static const uint32_t lens4[4] = { 100, 1, 131072, 50 };

static void test_layout_pinned(void **state)
{
    (void)state;
    ddp_streammap m;
    build(&m, lens4, 4);
    size_t n;
    uint8_t *buf = encode(&m, &n);
    assert_int_equal(n, 56 + 56 * 4);
    assert_memory_equal(buf, "DDPSMAP1", 8);
    assert_int_equal(ddp_get_le64(buf + 8), 100 + 1 + 131072 + 50);
    assert_int_equal(ddp_get_le32(buf + 16), 4);
    assert_int_equal(ddp_get_le32(buf + 20), 0);
    assert_memory_equal(buf + 24, m.file_hash, 32);
    for (uint32_t i = 0; i < 4; i++) {
        const uint8_t *p = buf + 56 + 56 * i;
        const ddp_streammap_entry *e = &m.entries[i];
        assert_memory_equal(p, e->hash, 32);
        assert_int_equal(ddp_get_le32(p + 32), e->loc.container);
        assert_int_equal(p[36], e->loc.codec);
        assert_int_equal(p[37] | p[38] | p[39], 0);
        assert_int_equal(ddp_get_le64(p + 40), e->loc.offset);
        assert_int_equal(ddp_get_le32(p + 48), e->loc.stored_len);
        assert_int_equal(ddp_get_le32(p + 52), e->loc.logical_len);
    }
    /* entry 2: the 131072-byte chunk, logical length in bytes 52..55 */
    static const uint8_t len_le[4] = { 0x00, 0x00, 0x02, 0x00 };
    assert_memory_equal(buf + 56 + 112 + 52, len_le, 4);
    free(buf);
    ddp_streammap_free(&m);
}

static void test_round_trip(void **state)
{
    (void)state;
    uint32_t lens[300];
    uint64_t r = 0;
    for (size_t i = 0; i < 300; i++) {
        tu_fill_random(&r, sizeof r, i);
        lens[i] = (uint32_t)(r % 131072) + 1;
    }
    ddp_streammap m, back;
    build(&m, lens, 300);
    size_t n;
    uint8_t *buf = encode(&m, &n);
    assert_int_equal(ddp_streammap_decode(buf, n, &back), S_OK);
    assert_int_equal(back.count, m.count);
    assert_int_equal(back.file_size, m.file_size);
    assert_memory_equal(back.file_hash, m.file_hash, 32);
    for (uint32_t i = 0; i < m.count; i++) {
        assert_memory_equal(back.entries[i].hash, m.entries[i].hash, 32);
        assert_int_equal(back.entries[i].loc.container, m.entries[i].loc.container);
        assert_int_equal(back.entries[i].loc.codec, m.entries[i].loc.codec);
        assert_int_equal(back.entries[i].loc.offset, m.entries[i].loc.offset);
        assert_int_equal(back.entries[i].loc.stored_len, m.entries[i].loc.stored_len);
        assert_int_equal(back.entries[i].loc.logical_len, m.entries[i].loc.logical_len);
    }
    /* re-encoding gives the same bytes */
    size_t n2;
    uint8_t *buf2 = encode(&back, &n2);
    assert_int_equal(n, n2);
    assert_memory_equal(buf, buf2, n);
    free(buf);
    free(buf2);
    ddp_streammap_free(&m);
    ddp_streammap_free(&back);
}

static void test_empty_map(void **state)
{
    (void)state;
    ddp_streammap m, back;
    ddp_streammap_init(&m);
    size_t n;
    uint8_t *buf = encode(&m, &n);
    assert_int_equal(n, 56);
    assert_int_equal(ddp_streammap_decode(buf, n, &back), S_OK);
    assert_int_equal(back.count, 0);
    assert_int_equal(back.file_size, 0);
    ddp_streammap_index(&back);
    ddp_streammap_free(&back);
    /* an empty map that claims a nonzero size does not add up */
    ddp_put_le64(buf + 8, 1);
    expect_corrupt(buf, n, "add up");
    free(buf);
}

static void test_truncated_and_overlong(void **state)
{
    (void)state;
    ddp_streammap m;
    build(&m, lens4, 4);
    size_t n;
    uint8_t *buf = encode(&m, &n);
    for (size_t k = 0; k < n; k++) expect_corrupt(buf, k, NULL);
    uint8_t *big = calloc(1, n + 112);
    assert_non_null(big);
    memcpy(big, buf, n);
    for (size_t k = n + 1; k <= n + 112; k++) expect_corrupt(big, k, "entries");
    free(big);
    free(buf);
    ddp_streammap_free(&m);
}

static void test_counts_that_overflow(void **state)
{
    (void)state;
    ddp_streammap m;
    const uint32_t one[1] = { 4096 };
    build(&m, one, 1);
    size_t n;
    uint8_t *buf = encode(&m, &n);
    assert_int_equal(n, 112);
    /* 56 * (2^29 + 1) = 56 + 7 * 2^32: a 32-bit size computation would see 112. */
    ddp_put_le32(buf + 16, (1u << 29) + 1);
    expect_corrupt(buf, n, NULL);
    ddp_put_le32(buf + 16, UINT32_MAX);
    expect_corrupt(buf, n, NULL);
    ddp_put_le32(buf + 16, 0);
    expect_corrupt(buf, n, NULL);
    ddp_put_le32(buf + 16, 2);
    expect_corrupt(buf, n, NULL);
    ddp_put_le32(buf + 16, 1);
    ddp_streammap ok;
    assert_int_equal(ddp_streammap_decode(buf, n, &ok), S_OK);
    ddp_streammap_free(&ok);
    free(buf);
    ddp_streammap_free(&m);
}

static void test_lengths_must_add_up(void **state)
{
    (void)state;
    ddp_streammap m;
    build(&m, lens4, 4);
    size_t n;
    uint8_t *buf = encode(&m, &n);
    uint64_t size = m.file_size;
    ddp_put_le64(buf + 8, size + 1);
    expect_corrupt(buf, n, "add up");
    ddp_put_le64(buf + 8, size - 1);
    expect_corrupt(buf, n, "exceed");
    ddp_put_le64(buf + 8, 0);
    expect_corrupt(buf, n, "exceed");
    ddp_put_le64(buf + 8, UINT64_MAX);
    expect_corrupt(buf, n, "add up");
    ddp_put_le64(buf + 8, size);
    ddp_streammap ok;
    assert_int_equal(ddp_streammap_decode(buf, n, &ok), S_OK);
    ddp_streammap_free(&ok);
    free(buf);
    ddp_streammap_free(&m);
}

/* Encode a one-entry map with these raw fields. */
static uint8_t *one_entry(uint32_t logical, uint8_t codec, uint32_t stored, size_t *n)
{
    ddp_streammap m;
    ddp_streammap_init(&m);
    ddp_streammap_entry e = entry(logical, codec, stored, 5);
    ddp_streammap_add(&m, &e);
    m.file_size = logical;
    uint8_t *buf = encode(&m, n);
    ddp_streammap_free(&m);
    return buf;
}

static void decodes(uint32_t logical, uint8_t codec, uint32_t stored)
{
    size_t n;
    uint8_t *buf = one_entry(logical, codec, stored, &n);
    ddp_streammap m;
    assert_int_equal(ddp_streammap_decode(buf, n, &m), S_OK);
    ddp_streammap_free(&m);
    free(buf);
}

static void refused(uint32_t logical, uint8_t codec, uint32_t stored, const char *why)
{
    size_t n;
    uint8_t *buf = one_entry(logical, codec, stored, &n);
    expect_corrupt(buf, n, why);
    free(buf);
}

static void test_entry_fields(void **state)
{
    (void)state;
    uint32_t bound_max = (uint32_t)ddp_compress_bound(131072);
    uint32_t bound_1 = (uint32_t)ddp_compress_bound(1);

    decodes(1, DDP_CODEC_NONE, 1);
    decodes(131072, DDP_CODEC_NONE, 131072);
    decodes(131072, DDP_CODEC_ZSTD, 1);
    decodes(131072, DDP_CODEC_ZSTD, bound_max);
    decodes(1, DDP_CODEC_ZSTD, bound_1);

    refused(0, DDP_CODEC_NONE, 0, "logical length");
    refused(131073, DDP_CODEC_NONE, 131073, "logical length");
    refused(131072, DDP_CODEC_ZSTD, 0, "stored length is 0");
    refused(131072, DDP_CODEC_ZSTD, bound_max + 1, "bound");
    refused(1, DDP_CODEC_ZSTD, bound_1 + 1, "bound");
    refused(1000, DDP_CODEC_NONE, 999, "uncompressed");
    refused(1000, DDP_CODEC_NONE, 1001, "uncompressed");
    refused(1000, 2, 500, "codec");
    refused(1000, 255, 500, "codec");
    refused(UINT32_MAX, DDP_CODEC_ZSTD, 10, "logical length");
}

static void test_reserved_and_magic(void **state)
{
    (void)state;
    ddp_streammap m;
    build(&m, lens4, 4);
    size_t n;
    uint8_t *buf = encode(&m, &n);
    for (int i = 20; i < 24; i++) {
        buf[i] = 1;
        expect_corrupt(buf, n, "reserved");
        buf[i] = 0;
    }
    for (uint32_t e = 0; e < 4; e++)
        for (int i = 37; i < 40; i++) {
            buf[56 + 56 * e + i] = 0x80;
            expect_corrupt(buf, n, "reserved");
            buf[56 + 56 * e + i] = 0;
        }
    for (int i = 0; i < 8; i++) {
        buf[i] ^= 0x20;
        expect_corrupt(buf, n, "magic");
        buf[i] ^= 0x20;
    }
    ddp_streammap ok;
    assert_int_equal(ddp_streammap_decode(buf, n, &ok), S_OK);
    ddp_streammap_free(&ok);
    free(buf);
    ddp_streammap_free(&m);
}

static void test_find_boundaries(void **state)
{
    (void)state;
    ddp_streammap m;
    build(&m, lens4, 4);
    size_t n;
    uint8_t *buf = encode(&m, &n);
    ddp_streammap d;
    assert_int_equal(ddp_streammap_decode(buf, n, &d), S_OK);
    ddp_streammap_index(&d);
    assert_int_equal(d.starts[0], 0);
    assert_int_equal(d.starts[1], 100);
    assert_int_equal(d.starts[2], 101);
    assert_int_equal(d.starts[3], 131173);
    assert_int_equal(ddp_streammap_find(&d, 0), 0);
    assert_int_equal(ddp_streammap_find(&d, 99), 0);
    assert_int_equal(ddp_streammap_find(&d, 100), 1);
    assert_int_equal(ddp_streammap_find(&d, 101), 2);
    assert_int_equal(ddp_streammap_find(&d, 131172), 2);
    assert_int_equal(ddp_streammap_find(&d, 131173), 3);
    assert_int_equal(ddp_streammap_find(&d, d.file_size - 1), 3);
    /* indexing twice is fine */
    ddp_streammap_index(&d);
    assert_int_equal(ddp_streammap_find(&d, 100), 1);
    ddp_streammap_free(&d);
    free(buf);
    ddp_streammap_free(&m);

    /* a single chunk */
    const uint32_t one[1] = { 7 };
    build(&m, one, 1);
    ddp_streammap_index(&m);
    for (uint64_t off = 0; off < 7; off++) assert_int_equal(ddp_streammap_find(&m, off), 0);
    ddp_streammap_free(&m);
}

static void test_find_matches_linear(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 20; seed++) {
        size_t count = (size_t)(seed * 37 % 257) + 1;
        uint32_t *lens = malloc(count * sizeof *lens);
        assert_non_null(lens);
        for (size_t i = 0; i < count; i++) {
            uint64_t r;
            tu_fill_random(&r, sizeof r, seed * 1000 + i);
            lens[i] = (r & 3) == 0 ? 1 : (uint32_t)(r % 5000) + 1; /* many 1-byte chunks */
        }
        ddp_streammap m;
        build(&m, lens, count);
        ddp_streammap_index(&m);
        uint32_t idx = 0;
        uint64_t start = 0;
        for (uint64_t off = 0; off < m.file_size; off++) {
            while (off >= start + lens[idx]) start += lens[idx++];
            assert_int_equal(ddp_streammap_find(&m, off), idx);
        }
        ddp_streammap_free(&m);
        free(lens);
    }
}

static void test_add_grows_and_keeps_index(void **state)
{
    (void)state;
    ddp_streammap m;
    ddp_streammap_init(&m);
    for (uint32_t i = 0; i < 5000; i++) {
        ddp_streammap_entry e = entry(i % 100 + 1, DDP_CODEC_NONE, i % 100 + 1, i);
        ddp_streammap_add(&m, &e);
        if (i == 10) ddp_streammap_index(&m); /* index early, keep adding */
    }
    assert_int_equal(m.count, 5000);
    assert_true(m.cap >= 5000);
    uint64_t off = 0;
    for (uint32_t i = 0; i < 5000; i++) {
        ddp_streammap_entry e = entry(i % 100 + 1, DDP_CODEC_NONE, i % 100 + 1, i);
        assert_memory_equal(m.entries[i].hash, e.hash, sizeof e.hash);
        assert_int_equal(m.entries[i].loc.container, e.loc.container);
        assert_int_equal(m.entries[i].loc.offset, e.loc.offset);
        assert_int_equal(m.entries[i].loc.logical_len, e.loc.logical_len);
        assert_int_equal(m.starts[i], off);
        off += i % 100 + 1;
    }
    m.file_size = off;
    assert_int_equal(ddp_streammap_find(&m, off - 1), 4999);
    ddp_streammap_free(&m);
    assert_int_equal(m.count, 0);
    assert_null(m.entries);
    assert_null(m.starts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_pinned),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_empty_map),
        cmocka_unit_test(test_truncated_and_overlong),
        cmocka_unit_test(test_counts_that_overflow),
        cmocka_unit_test(test_lengths_must_add_up),
        cmocka_unit_test(test_entry_fields),
        cmocka_unit_test(test_reserved_and_magic),
        cmocka_unit_test(test_find_boundaries),
        cmocka_unit_test(test_find_matches_linear),
        cmocka_unit_test(test_add_grows_and_keeps_index),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
