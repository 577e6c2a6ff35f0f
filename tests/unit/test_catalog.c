/* SPDX-License-Identifier: MIT */
/*
 * test_catalog.c: unit tests for the chunk store's catalog (catalog.h):
 * round trips, the pinned byte layout of docs/FORMAT.md, rejection of every
 * kind of damage (each byte flipped, truncation, bad counts, bad entries,
 * duplicates), find/put ordering, and container file names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store/catalog.h"
#include "base/hash.h"
#include "base/util.h"
#include "testutil.h"

static void make_catalog(ddp_catalog *c)
{
    memset(c, 0, sizeof *c);
    for (int i = 0; i < DDP_STORE_ID_SIZE; i++) c->store_id[i] = (uint8_t)(0xA0 + i);
    ddp_catalog_entry e1 = { DDP_KIND_DATA, 1, 1, 1, 1000 };
    ddp_catalog_entry e2 = { DDP_KIND_DATA, 2, 1, 0, 64 };
    ddp_catalog_entry e3 = { DDP_KIND_STREAM, 1, 3, 0, 0x123456789ull };
    ddp_catalog_put(c, &e3);
    ddp_catalog_put(c, &e2);
    ddp_catalog_put(c, &e1);
}

/* Re-seal a modified encoding with a correct checksum. */
static void reseal(uint8_t *buf, size_t n)
{
    ddp_put_le64(buf + n - 8, ddp_checksum64(buf, n - 8));
}

static void test_roundtrip_and_layout(void **state)
{
    (void)state;
    ddp_catalog c;
    make_catalog(&c);
    assert_int_equal(c.count, 3);
    uint8_t *buf;
    size_t n;
    assert_int_equal(ddp_catalog_encode(&c, &buf, &n), S_OK);
    assert_int_equal(n, 32 + 24 * 3 + 8);
    /* Pinned header. */
    assert_memory_equal(buf, "DDPCATL1", 8);
    assert_int_equal(ddp_get_le32(buf + 8), 1);
    assert_int_equal(ddp_get_le32(buf + 12), 3);
    assert_memory_equal(buf + 16, c.store_id, 16);
    /* Entries sorted by (kind, id): data 1, data 2, stream 1. */
    static const uint8_t e0[24] = { 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0xE8, 0x03, 0, 0, 0, 0, 0, 0 };
    assert_memory_equal(buf + 32, e0, 24);
    assert_int_equal(ddp_get_le32(buf + 32 + 24), DDP_KIND_DATA);
    assert_int_equal(ddp_get_le32(buf + 32 + 28), 2);
    static const uint8_t e2[24] = { 2, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0,
                                    0x89, 0x67, 0x45, 0x23, 0x01, 0, 0, 0 };
    assert_memory_equal(buf + 32 + 48, e2, 24);
    assert_true(ddp_get_le64(buf + n - 8) == ddp_checksum64(buf, n - 8));

    ddp_catalog d;
    assert_int_equal(ddp_catalog_decode(buf, n, &d), S_OK);
    assert_int_equal(d.count, 3);
    assert_memory_equal(d.store_id, c.store_id, 16);
    for (uint32_t i = 0; i < 3; i++) {
        assert_int_equal(d.entries[i].kind, c.entries[i].kind);
        assert_int_equal(d.entries[i].id, c.entries[i].id);
        assert_int_equal(d.entries[i].generation, c.entries[i].generation);
        assert_int_equal(d.entries[i].flags, c.entries[i].flags);
        assert_true(d.entries[i].length == c.entries[i].length);
    }
    ddp_catalog_free(&d);
    ddp_catalog_free(&c);
    free(buf);
}

static void test_empty(void **state)
{
    (void)state;
    ddp_catalog c;
    memset(&c, 0, sizeof c);
    memset(c.store_id, 7, 16);
    uint8_t *buf;
    size_t n;
    assert_int_equal(ddp_catalog_encode(&c, &buf, &n), S_OK);
    assert_int_equal(n, 40);
    ddp_catalog d;
    assert_int_equal(ddp_catalog_decode(buf, n, &d), S_OK);
    assert_int_equal(d.count, 0);
    assert_null(ddp_catalog_find(&d, DDP_KIND_DATA, 1));
    ddp_catalog_free(&d);
    free(buf);
}

static void test_every_byte_flip_rejected(void **state)
{
    (void)state;
    ddp_catalog c;
    make_catalog(&c);
    uint8_t *buf;
    size_t n;
    assert_int_equal(ddp_catalog_encode(&c, &buf, &n), S_OK);
    for (size_t i = 0; i < n; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            buf[i] ^= (uint8_t)(1 << bit);
            ddp_catalog d;
            HRESULT hr = ddp_catalog_decode(buf, n, &d);
            assert_int_equal(hr, DDP_E_INVALID_DATA);
            assert_true(strlen(ddp_error_detail()) > 0);
            buf[i] ^= (uint8_t)(1 << bit);
        }
    }
    /* Every truncation and an extension. */
    for (size_t k = 0; k < n; k++) {
        ddp_catalog d;
        assert_int_equal(ddp_catalog_decode(buf, k, &d), DDP_E_INVALID_DATA);
    }
    uint8_t *longer = calloc(1, n + 1);
    memcpy(longer, buf, n);
    ddp_catalog d;
    assert_int_equal(ddp_catalog_decode(longer, n + 1, &d), DDP_E_INVALID_DATA);
    free(longer);
    ddp_catalog_free(&c);
    free(buf);
}

static void test_bad_fields_rejected(void **state)
{
    (void)state;
    ddp_catalog c;
    make_catalog(&c);
    uint8_t *buf;
    size_t n;
    assert_int_equal(ddp_catalog_encode(&c, &buf, &n), S_OK);
    uint8_t *b = malloc(n);
    ddp_catalog d;
    struct { size_t off; uint32_t val; HRESULT want; } cases[] = {
        { 8, 2, DDP_E_UNSUPPORTED_VERSION },     /* version */
        { 12, 4, DDP_E_INVALID_DATA },           /* count disagrees with size */
        { 12, 0xFFFFFFFFu, DDP_E_INVALID_DATA }, /* absurd count */
        { 32, 0, DDP_E_INVALID_DATA },           /* kind 0 */
        { 32, 4, DDP_E_INVALID_DATA },           /* kind 4 */
        { 36, 0, DDP_E_INVALID_DATA },           /* id 0 */
        { 40, 0, DDP_E_INVALID_DATA },           /* generation 0 */
        { 44, 2, DDP_E_INVALID_DATA },           /* unknown flag */
        { 32 + 24 + 4, 1, DDP_E_INVALID_DATA },  /* duplicate (data, 1) */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(b, buf, n);
        ddp_put_le32(b + cases[i].off, cases[i].val);
        reseal(b, n);
        assert_int_equal(ddp_catalog_decode(b, n, &d), cases[i].want);
    }
    /* Entries out of order in the file are accepted and sorted. */
    memcpy(b, buf, n);
    uint8_t tmp[24];
    memcpy(tmp, b + 32, 24);
    memcpy(b + 32, b + 32 + 48, 24);
    memcpy(b + 32 + 48, tmp, 24);
    reseal(b, n);
    assert_int_equal(ddp_catalog_decode(b, n, &d), S_OK);
    assert_int_equal(d.entries[0].kind, DDP_KIND_DATA);
    assert_int_equal(d.entries[0].id, 1);
    assert_int_equal(d.entries[2].kind, DDP_KIND_STREAM);
    assert_non_null(ddp_catalog_find(&d, DDP_KIND_STREAM, 1));
    ddp_catalog_free(&d);
    free(b);
    free(buf);
    ddp_catalog_free(&c);
}

static void test_find_put(void **state)
{
    (void)state;
    ddp_catalog c;
    memset(&c, 0, sizeof c);
    /* Insert 500 entries in a scrambled order. */
    for (uint32_t i = 0; i < 500; i++) {
        uint32_t id = (i * 337) % 500 + 1;
        ddp_catalog_entry e = { (id % 2) ? DDP_KIND_DATA : DDP_KIND_STREAM, id, 1, 0, 64 + id };
        ddp_catalog_put(&c, &e);
    }
    assert_int_equal(c.count, 500);
    for (uint32_t i = 1; i < c.count; i++) {
        const ddp_catalog_entry *a = &c.entries[i - 1], *b = &c.entries[i];
        assert_true(a->kind < b->kind || (a->kind == b->kind && a->id < b->id));
    }
    for (uint32_t id = 1; id <= 500; id++) {
        uint32_t kind = (id % 2) ? DDP_KIND_DATA : DDP_KIND_STREAM;
        ddp_catalog_entry *e = ddp_catalog_find(&c, kind, id);
        assert_non_null(e);
        assert_true(e->length == 64 + id);
        assert_null(ddp_catalog_find(&c, kind == DDP_KIND_DATA ? DDP_KIND_STREAM : DDP_KIND_DATA, id));
    }
    assert_null(ddp_catalog_find(&c, DDP_KIND_HOTSPOT, 1));
    /* Replace. */
    ddp_catalog_entry r = { DDP_KIND_DATA, 7, 2, 1, 999 };
    ddp_catalog_put(&c, &r);
    assert_int_equal(c.count, 500);
    ddp_catalog_entry *e = ddp_catalog_find(&c, DDP_KIND_DATA, 7);
    assert_int_equal(e->generation, 2);
    assert_int_equal(e->flags, 1);
    ddp_catalog_free(&c);
    assert_int_equal(c.count, 0);
}

static void test_relpath(void **state)
{
    (void)state;
    char p[40];
    ddp_container_relpath(DDP_KIND_DATA, 1, 1, p);
    assert_string_equal(p, "Data/00000001.00000001.ccc");
    ddp_container_relpath(DDP_KIND_STREAM, 0xABCDEF12u, 0x10u, p);
    assert_string_equal(p, "Stream/ABCDEF12.00000010.ccc");
    ddp_container_relpath(DDP_KIND_HOTSPOT, 0xFFFFFFFFu, 0xFFFFFFFFu, p);
    assert_string_equal(p, "Hotspot/FFFFFFFF.FFFFFFFF.ccc");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_and_layout),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_every_byte_flip_rejected),
        cmocka_unit_test(test_bad_fields_rejected),
        cmocka_unit_test(test_find_put),
        cmocka_unit_test(test_relpath),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
