/* SPDX-License-Identifier: MIT */
/*
 * test_chunker.c: unit tests for the content-defined chunker (chunker.h).
 * Checks the size bounds, pins the exact cut points on fixed pseudo-random
 * data (the cut rule is part of the store format and must never change),
 * compares against a plain byte-at-a-time statement of the rule built from
 * the documented gear-table procedure, and checks that cut points do not
 * depend on buffering, resynchronize after an insertion, average about
 * 64 KiB, and degrade to DDP_CHUNK_MAX on constant data.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store/chunker.h"
#include "testutil.h"

#define MiB ((size_t)1024 * 1024)

/* Chunk buf[0..n) in one pass; store up to cap lengths; return the count. */
static size_t chunk_all(const uint8_t *buf, size_t n, size_t *lens, size_t cap)
{
    size_t off = 0, count = 0;
    while (off < n) {
        size_t len = ddp_chunker_cut(buf + off, n - off);
        assert_true(len > 0 && len <= n - off);
        if (count < cap)
            lens[count] = len;
        count++;
        off += len;
    }
    return count;
}

static uint8_t *random_buf(size_t n, uint64_t seed)
{
    uint8_t *buf = malloc(n ? n : 1);
    assert_non_null(buf);
    tu_fill_random(buf, n, seed);
    return buf;
}

/* ---- a reference statement of the rule (see the comment in chunker.c) ---- */

static uint64_t ref_gear[256];
static uint64_t ref_mask_strict, ref_mask_loose;

static uint64_t ref_mask(int bits)
{
    uint64_t m = 0;
    for (int j = 0; j < bits; j++)
        m |= UINT64_C(1) << (62 - (j * 48) / bits);
    return m;
}

static void ref_init(void)
{
    uint64_t state = UINT64_C(0x6464702d67656172); /* "ddp-gear" */
    for (int k = 0; k < 256; k++) {
        uint64_t z = (state += UINT64_C(0x9e3779b97f4a7c15));
        z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
        ref_gear[k] = z ^ (z >> 31);
    }
    ref_mask_strict = ref_mask(17);
    ref_mask_loose = ref_mask(13);
}

static size_t ref_cut(const uint8_t *p, size_t n)
{
    if (n <= DDP_CHUNK_MIN)
        return n;
    size_t end = n < DDP_CHUNK_MAX ? n : DDP_CHUNK_MAX;
    uint64_t h = 0;
    for (size_t i = DDP_CHUNK_MIN - 64; i < end; i++) {
        h = (h << 1) + ref_gear[p[i]];
        if (i >= DDP_CHUNK_MIN && (h & (i < DDP_CHUNK_AVG ? ref_mask_strict : ref_mask_loose)) == 0)
            return i + 1;
    }
    return end;
}

/* ---- tests --------------------------------------------------------------- */

static void test_small_inputs(void **state)
{
    (void)state;
    uint8_t *buf = random_buf(DDP_CHUNK_MIN, 1);
    const size_t sizes[] = { 0, 1, 2, 63, 64, 4096, DDP_CHUNK_MIN - 1, DDP_CHUNK_MIN };
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++)
        assert_int_equal(ddp_chunker_cut(buf, sizes[k]), sizes[k]);
    free(buf);
}

static void test_bounds(void **state)
{
    (void)state;
    const size_t n = 16 * MiB;
    uint8_t *buf = random_buf(n, 1);
    size_t off = 0;
    while (off < n) {
        size_t avail = n - off;
        size_t len = ddp_chunker_cut(buf + off, avail);
        if (len < avail) {
            assert_true(len > DDP_CHUNK_MIN);
            assert_true(len <= DDP_CHUNK_MAX);
        } else {
            /* The last chunk: anything up to MAX, all of what is left. */
            assert_true(len <= DDP_CHUNK_MAX);
        }
        off += len;
    }
    assert_int_equal(off, n);

    /* Between MIN and MAX available: a cut in (MIN, n]. */
    for (size_t k = 1; k <= 200; k++) {
        size_t avail = DDP_CHUNK_MIN + k * 487;
        for (size_t at = 0; at + avail <= n; at += 1 * MiB + 4099) {
            size_t len = ddp_chunker_cut(buf + at, avail);
            assert_true(len > DDP_CHUNK_MIN && len <= avail);
        }
    }
    free(buf);
}

/*
 * The pinned vector: 8 MiB of tu_fill_random(seed 42), chunked from the
 * start. These numbers define the format; if this test fails, the chunker
 * (or tu_fill_random) changed, and stores written before would no longer
 * deduplicate against new data.
 */
static const size_t pinned_first[20] = {
    93417, 51621, 65839, 48119, 69929, 71905, 75771, 50170, 69884, 92041,
    77679, 73254, 67540, 66113, 105088, 75218, 78412, 75381, 67223, 49797,
};
static const size_t pinned_count = 119;

static void test_pinned_vector(void **state)
{
    (void)state;
    const size_t n = 8 * MiB;
    uint8_t *buf = random_buf(n, 42);
    size_t lens[20];
    size_t count = chunk_all(buf, n, lens, 20);
    for (size_t k = 0; k < 20; k++)
        assert_int_equal(lens[k], pinned_first[k]);
    assert_int_equal(count, pinned_count);

    /* Deterministic: a second pass gives the same. */
    size_t again[20];
    assert_int_equal(chunk_all(buf, n, again, 20), count);
    assert_memory_equal(again, lens, sizeof(lens));
    free(buf);
}

/* The optimized loop against the plain statement of the rule, at every kind of n. */
static void test_matches_reference(void **state)
{
    (void)state;
    ref_init();
    const size_t n = 16 * MiB;
    uint8_t *buf = random_buf(n, 3);

    /* Whole-stream chunking. */
    for (size_t off = 0; off < n;) {
        size_t len = ddp_chunker_cut(buf + off, n - off);
        assert_int_equal(len, ref_cut(buf + off, n - off));
        off += len;
    }
    /* Available sizes around every boundary, at many starting points. */
    const size_t around[] = { DDP_CHUNK_MIN, DDP_CHUNK_AVG, DDP_CHUNK_MAX };
    for (size_t b = 0; b < 3; b++) {
        for (size_t d = 0; d < 9; d++) {
            size_t avail = around[b] - 4 + d;
            for (size_t at = 0; at + avail <= n; at += 1 * MiB + 12345) {
                assert_int_equal(ddp_chunker_cut(buf + at, avail), ref_cut(buf + at, avail));
            }
        }
    }
    /* Arbitrary sizes and offsets. */
    uint64_t r = 99;
    for (int k = 0; k < 300; k++) {
        uint8_t rnd[8];
        tu_fill_random(rnd, sizeof(rnd), r++);
        size_t at = (size_t)(rnd[0] | (rnd[1] << 8) | (rnd[2] << 16)) % (n - DDP_CHUNK_MAX);
        size_t avail = DDP_CHUNK_MIN + (size_t)(rnd[3] | (rnd[4] << 8) | (rnd[5] << 16)) % (DDP_CHUNK_MAX);
        assert_int_equal(ddp_chunker_cut(buf + at, avail), ref_cut(buf + at, avail));
    }
    /* Low-entropy data: text-like bytes from a small alphabet. */
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)("aeiou tnsrl\n"[buf[i] % 12]);
    for (size_t off = 0; off < n;) {
        size_t len = ddp_chunker_cut(buf + off, n - off);
        assert_int_equal(len, ref_cut(buf + off, n - off));
        off += len;
    }
    free(buf);
}

/* Whether a cut is made depends only on the 64 bytes before it, not on earlier bytes. */
static void test_local_window(void **state)
{
    (void)state;
    const size_t n = 4 * MiB;
    uint8_t *buf = random_buf(n, 5);
    uint8_t *junk = random_buf(DDP_CHUNK_MIN - 64, 6);
    for (size_t off = 0; off + DDP_CHUNK_MAX <= n; off += 100003) {
        size_t len = ddp_chunker_cut(buf + off, DDP_CHUNK_MAX);
        uint8_t save[DDP_CHUNK_MIN - 64];
        memcpy(save, buf + off, sizeof(save));
        memcpy(buf + off, junk, sizeof(save));
        assert_int_equal(ddp_chunker_cut(buf + off, DDP_CHUNK_MAX), len);
        memcpy(buf + off, save, sizeof(save));
    }
    free(junk);
    free(buf);
}

/*
 * Chunk data as a streaming reader would: the source hands out at most
 * `piece` bytes per read, the chunker is called only with >= MAX bytes
 * available unless the source is exhausted. Returns the count of chunks,
 * storing their lengths in lens.
 */
static size_t chunk_streaming(const uint8_t *src, size_t n, size_t piece, size_t cap_extra, size_t *lens, size_t cap)
{
    const size_t bufcap = DDP_CHUNK_MAX + cap_extra;
    uint8_t *win = malloc(bufcap);
    assert_non_null(win);
    size_t have = 0, start = 0, read = 0, count = 0;

    for (;;) {
        /* Refill: move the remainder to the front, read until full or EOF. */
        memmove(win, win + start, have);
        start = 0;
        while (have < bufcap && read < n) {
            size_t k = bufcap - have;
            if (k > piece)
                k = piece;
            if (k > n - read)
                k = n - read;
            memcpy(win + have, src + read, k);
            have += k;
            read += k;
        }
        int eof = read == n;
        if (have == 0)
            break;
        while (have >= DDP_CHUNK_MAX || (eof && have > 0)) {
            size_t len = ddp_chunker_cut(win + start, have);
            assert_true(len > 0 && len <= have);
            assert_true(count < cap);
            lens[count++] = len;
            start += len;
            have -= len;
        }
        if (eof && have == 0)
            break;
    }
    free(win);
    return count;
}

static void test_buffering_independence(void **state)
{
    (void)state;
    const size_t n = 8 * MiB + 777;
    uint8_t *buf = random_buf(n, 11);
    const size_t cap = n / DDP_CHUNK_MIN + 2;
    size_t *want = calloc(cap, sizeof(size_t));
    size_t *got = calloc(cap, sizeof(size_t));
    assert_non_null(want);
    assert_non_null(got);
    size_t count = chunk_all(buf, n, want, cap);

    const struct { size_t piece, extra; } cfg[] = {
        { 4096, 0 }, { 65536, 1 }, { DDP_CHUNK_MAX, 0 }, { DDP_CHUNK_MAX + 1, 4095 },
        { 1 * MiB, 1 * MiB }, { 200001, 300007 }, { 3 * DDP_CHUNK_MAX + 7, 17 }, { 16 * MiB, 16 * MiB },
    };
    for (size_t k = 0; k < sizeof(cfg) / sizeof(cfg[0]); k++) {
        memset(got, 0, cap * sizeof(size_t));
        size_t c = chunk_streaming(buf, n, cfg[k].piece, cfg[k].extra, got, cap);
        assert_int_equal(c, count);
        assert_memory_equal(got, want, count * sizeof(size_t));
    }
    free(got);
    free(want);
    free(buf);
}

/* Cut positions measured back from the end of the data: ends[k] = n - (end of chunk k). */
static size_t cut_ends(const uint8_t *buf, size_t n, size_t *ends, size_t cap)
{
    size_t off = 0, count = 0;
    while (off < n) {
        off += ddp_chunker_cut(buf + off, n - off);
        assert_true(count < cap);
        ends[count++] = n - off;
    }
    return count;
}

/*
 * Insert `ins` bytes at offset `at` of the data and check that the cut
 * points agree everywhere except for at most `changed` chunks from the one
 * holding the insertion on.
 */
static void check_insertion(const uint8_t *buf, size_t n, size_t at, size_t ins, size_t changed)
{
    const size_t m = n + ins;
    uint8_t *mod = malloc(m);
    assert_non_null(mod);
    memcpy(mod, buf, at);
    tu_fill_random(mod + at, ins, 1000 + ins);
    memcpy(mod + at + ins, buf + at, n - at);

    const size_t cap = m / DDP_CHUNK_MIN + 2;
    size_t *a = calloc(cap, sizeof(size_t)), *b = calloc(cap, sizeof(size_t));
    assert_non_null(a);
    assert_non_null(b);
    size_t na = cut_ends(buf, n, a, cap), nb = cut_ends(mod, m, b, cap);

    /* Before the insertion: the same cuts (as absolute offsets). */
    size_t ia = 0;
    while (ia < na && n - a[ia] <= at) {
        assert_true(ia < nb);
        assert_int_equal(n - a[ia], m - b[ia]);
        ia++;
    }
    /* After: resynchronized within `changed` chunks, then identical from the end. */
    size_t ja = ia;
    while (ja < na && ja < ia + changed) {
        size_t jb = ia;
        while (jb < nb && b[jb] > a[ja])
            jb++;
        if (jb < nb && b[jb] == a[ja]) {
            assert_int_equal(na - ja, nb - jb);
            assert_memory_equal(a + ja, b + jb, (na - ja) * sizeof(size_t));
            break;
        }
        ja++;
    }
    assert_true(ja < ia + changed);
    assert_true(ja < na);
    free(b);
    free(a);
    free(mod);
}

static void test_shift_resistance(void **state)
{
    (void)state;
    const size_t n = 8 * MiB;
    uint8_t *buf = random_buf(n, 7);
    /* A few bytes: only the first one or two chunks from the insertion change. */
    const size_t ins[] = { 1, 2, 3, 7, 17, 64 };
    for (size_t k = 0; k < sizeof(ins) / sizeof(ins[0]); k++) {
        check_insertion(buf, n, 0, ins[k], 2);              /* at the start */
        check_insertion(buf, n, 3 * MiB + 1234, ins[k], 2); /* in the middle */
        check_insertion(buf, n, 5 * MiB + 99, ins[k], 2);
    }
    /* A larger insertion may disturb one chunk more. */
    check_insertion(buf, n, 0, 4096, 3);
    check_insertion(buf, n, 3 * MiB + 1234, 4096, 3);
    free(buf);
}

static void test_average(void **state)
{
    (void)state;
    const size_t n = 64 * MiB;
    uint8_t *buf = random_buf(n, 2024);
    size_t count = chunk_all(buf, n, NULL, 0);
    size_t avg = n / count;
    print_message("average chunk %zu B over %zu chunks\n", avg, count);
    assert_true(avg >= 48 * 1024);
    assert_true(avg <= 80 * 1024);
    free(buf);
}

static void test_constant_data(void **state)
{
    (void)state;
    const size_t n = 4 * MiB + 100;
    uint8_t *buf = calloc(n, 1);
    assert_non_null(buf);
    for (int c = 0; c < 256; c++) {
        memset(buf, c, n);
        size_t off = 0;
        while (n - off > DDP_CHUNK_MAX) {
            size_t len = ddp_chunker_cut(buf + off, n - off);
            assert_int_equal(len, DDP_CHUNK_MAX);
            off += len;
        }
        assert_int_equal(ddp_chunker_cut(buf + off, n - off), n - off);
    }
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_inputs),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_pinned_vector),
        cmocka_unit_test(test_matches_reference),
        cmocka_unit_test(test_local_window),
        cmocka_unit_test(test_buffering_independence),
        cmocka_unit_test(test_shift_resistance),
        cmocka_unit_test(test_average),
        cmocka_unit_test(test_constant_data),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
