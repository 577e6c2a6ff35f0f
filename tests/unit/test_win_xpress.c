/*
 * test_win_xpress.c: unit tests for the [MS-XCA] Plain LZ77 decoder
 * (lib/windows/xpress.c): the two examples of [MS-XCA] 3.1 decode exactly
 * (tests/data/windows/ms-xca-vectors.txt); streams from the test encoder
 * (tests/common/xpress_enc.c) round-trip for 32-128 KiB chunks of every kind
 * of data, with match lengths in each extension (3 bits, shared nibble,
 * byte, u16, u32); and the decoder refuses every stream that does not decode
 * to exactly the expected length, matches reaching before the output start
 * and truncated input, without touching memory outside its buffers (the
 * output buffers are exactly sized, so ASan sees any overrun).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/util.h"
#include "testutil.h"
#include "windows/xpress.h"
#include "xpress_enc.h"

static HRESULT dec(const uint8_t *in, size_t in_n, size_t out_n, uint8_t **out)
{
    *out = malloc(out_n ? out_n : 1);
    assert_non_null(*out);
    return ddp_win_xpress_decode(in, in_n, *out, out_n, "test");
}

static void test_spec_vectors(void **state)
{
    (void)state;
    const char *src = getenv("DDP_SOURCE_DIR");
    char *p = ddp_xasprintf("%s/tests/data/windows/ms-xca-vectors.txt", src ? src : ".");
    FILE *f = fopen(p, "r");
    if (!f) fail_msg("cannot open %s", p);
    free(p);
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        char *tab = strchr(line, '\t');
        assert_non_null(tab);
        *tab = 0;
        char *want_s = tab + 1;
        want_s[strcspn(want_s, "\r\n")] = 0;
        size_t hn = strlen(line) / 2;
        uint8_t in[512];
        for (size_t i = 0; i < hn; i++) {
            unsigned v;
            assert_int_equal(sscanf(line + 2 * i, "%2x", &v), 1);
            in[i] = (uint8_t)v;
        }
        /* "abc*100" means "abc" 100 times. */
        char want[1024] = "";
        char *star = strchr(want_s, '*');
        if (star) {
            *star = 0;
            for (int k = atoi(star + 1); k > 0; k--) strcat(want, want_s);
        } else {
            strcpy(want, want_s);
        }
        size_t wn = strlen(want);
        uint8_t *out;
        assert_int_equal(dec(in, hn, wn, &out), S_OK);
        assert_memory_equal(out, want, wn);
        free(out);
        /* One byte more or less expected: refused. */
        assert_int_equal(dec(in, hn, wn - 1, &out), DDP_E_FILE_CORRUPT);
        free(out);
        assert_int_equal(dec(in, hn, wn + 1, &out), DDP_E_FILE_CORRUPT);
        free(out);
        /* Every truncation: refused, or (only when the cut drops the final flag
         * word, which holds no symbol) the same bytes. */
        for (size_t k = 0; k < hn; k++) {
            HRESULT hr = dec(in, k, wn, &out);
            if (SUCCEEDED(hr)) assert_memory_equal(out, want, wn);
            else assert_int_equal(hr, DDP_E_FILE_CORRUPT);
            free(out);
        }
        n++;
    }
    fclose(f);
    assert_int_equal(n, 2);
}

static void test_hand_streams(void **state)
{
    (void)state;
    uint8_t *out;
    /* A match first: nothing to copy from. */
    static const uint8_t m0[] = { 0x00, 0x00, 0x00, 0x80, 0x00, 0x00 };
    assert_int_equal(dec(m0, sizeof m0, 3, &out), DDP_E_FILE_CORRUPT);
    assert_non_null(strstr(ddp_error_detail(), "before the start"));
    free(out);
    /* "ab" then a match of distance 3: before the start. */
    static const uint8_t m1[] = { 0xff, 0xff, 0xff, 0x3f, 'a', 'b', 0x10, 0x00 };
    assert_int_equal(dec(m1, sizeof m1, 5, &out), DDP_E_FILE_CORRUPT);
    free(out);
    /* 32 literals and no further flag word: the stream ends at the boundary. */
    uint8_t lit[36] = { 0, 0, 0, 0 };
    for (int i = 0; i < 32; i++) lit[4 + i] = (uint8_t)('A' + i);
    assert_int_equal(dec(lit, sizeof lit, 32, &out), S_OK);
    assert_memory_equal(out, lit + 4, 32);
    free(out);
    /* ... with 1-3 stray bytes after it: a truncated flag word. */
    uint8_t lit2[38];
    memcpy(lit2, lit, 36);
    lit2[36] = lit2[37] = 0xff;
    assert_int_equal(dec(lit2, sizeof lit2, 32, &out), DDP_E_FILE_CORRUPT);
    free(out);
    /* Empty input, empty output: fine; empty input, 1 byte expected: not. */
    assert_int_equal(dec(lit, 0, 0, &out), S_OK);
    free(out);
    assert_int_equal(dec(lit, 0, 1, &out), DDP_E_FILE_CORRUPT);
    free(out);
    /* A 32-bit length below 22 is invalid. */
    static const uint8_t bad32[] = { 0xff, 0xff, 0xff, 0x7f, 'a', 0x07, 0x00, 0x0f, 0xff, 0x00, 0x00, 0x05, 0, 0, 0 };
    assert_int_equal(dec(bad32, sizeof bad32, 100, &out), DDP_E_FILE_CORRUPT);
    free(out);
    /* A long match that would run past the expected length. */
    static const uint8_t longm[] = { 0xff, 0xff, 0xff, 0x7f, 'a', 0x07, 0x00, 0x0f, 0xff, 0x26, 0x01 };
    assert_int_equal(dec(longm, sizeof longm, 1 + 297, &out), S_OK);
    for (int i = 0; i < 298; i++) assert_int_equal(out[i], (uint8_t)0x61);
    free(out);
    assert_int_equal(dec(longm, sizeof longm, 1 + 296, &out), DDP_E_FILE_CORRUPT);
    assert_non_null(strstr(ddp_error_detail(), "more bytes"));
    free(out);
}

/* Round-trip n bytes through the test encoder and the decoder. */
static void roundtrip(const uint8_t *data, size_t n, size_t max_len)
{
    size_t cap = TX_XPRESS_BOUND(n);
    uint8_t *enc = malloc(cap);
    size_t en = tx_xpress_encode(data, n, enc, cap, max_len);
    assert_true(en > 0);
    uint8_t *out;
    HRESULT hr = dec(enc, en, n, &out);
    if (FAILED(hr)) fail_msg("decode of %zu bytes failed: %s", n, ddp_error_detail());
    assert_memory_equal(out, data, n);
    free(out);
    if (n > 0) {
        assert_int_equal(dec(enc, en, n - 1, &out), DDP_E_FILE_CORRUPT);
        free(out);
    }
    assert_int_equal(dec(enc, en, n + 1, &out), DDP_E_FILE_CORRUPT);
    free(out);
    free(enc);
}

static void test_roundtrip_kinds(void **state)
{
    (void)state;
    static const size_t sizes[] = { 32768, 65536, 65537, 100000, 131072 };
    uint8_t *buf = malloc(131072);
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        /* random (all literals) */
        tu_fill_random(buf, n, n);
        roundtrip(buf, n, 0);
        /* text-like: words from a small vocabulary */
        static const char *w[] = { "chunk ", "store ", "stream ", "map ", "volume ", "reparse ", "point\n", "a " };
        uint64_t x = n;
        for (size_t i = 0; i < n;) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            const char *t = w[(x >> 33) % 8];
            for (size_t k = 0; t[k] && i < n; k++) buf[i++] = (uint8_t)t[k];
        }
        roundtrip(buf, n, 0);
        roundtrip(buf, n, 9); /* short matches only */
        /* zeros (one huge match: u32 length when n - 4 > 65535) */
        memset(buf, 0, n);
        roundtrip(buf, n, 0);
        /* mixed blocks of random and repeats at every distance up to 8 KiB */
        tu_fill_random(buf, n, n + 1);
        for (size_t i = 8192; i + 300 < n; i += 1000) memmove(buf + i, buf + i - 1 - (i % 8191), 1 + (i % 290));
        roundtrip(buf, n, 0);
    }
    free(buf);
}

static void test_roundtrip_lengths(void **state)
{
    (void)state;
    /* Runs of a byte pattern of each length around the encoding boundaries:
     * 3-9 (3 bits), 10-24 (nibble), 25-279 (byte), 280-65538 (u16), more (u32). */
    static const size_t lens[] = { 3,   4,    9,     10,    11,    24,    25,    26,    278,   279,  280,
                                   281, 1000, 65537, 65538, 65539, 65540, 70000, 100000, 131000 };
    uint8_t *buf = malloc(131072 + 16);
    for (size_t d = 1; d <= 17; d += 4) {
        for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
            size_t n = d + lens[k];
            tu_fill_random(buf, d, d);
            for (size_t i = d; i < n; i++) buf[i] = buf[i - d];
            roundtrip(buf, n, 0);
        }
    }
    /* Many extended matches in a row share nibbles pairwise. */
    size_t n = 0;
    tu_fill_random(buf, 64, 3);
    n = 64;
    for (int i = 0; i < 200 && n < 100000; i++) {
        size_t l = 10 + (size_t)(i * 7 % 30);
        memcpy(buf + n, buf + n - 64, l);
        n += l;
        tu_fill_random(buf + n, 1, (uint64_t)i);
        n += 1;
    }
    roundtrip(buf, n, 0);
    free(buf);
}

/* Every single-bit flip of an encoded chunk: refused, or decodes to n bytes
 * (a flipped literal), never out of bounds (ASan). */
static void test_flips(void **state)
{
    (void)state;
    size_t n = 40000;
    uint8_t *buf = malloc(n);
    static const char *w[] = { "alpha ", "beta ", "gamma ", "delta\n" };
    for (size_t i = 0, k = 0; i < n; k++) {
        const char *t = w[(k * 7 + k / 3) % 4];
        for (size_t j = 0; t[j] && i < n; j++) buf[i++] = (uint8_t)t[j];
    }
    size_t cap = TX_XPRESS_BOUND(n);
    uint8_t *enc = malloc(cap);
    size_t en = tx_xpress_encode(buf, n, enc, cap, 0);
    uint8_t *out = malloc(n);
    size_t bad = 0;
    for (size_t i = 0; i < en; i++) {
        enc[i] ^= (uint8_t)(1u << (i % 8));
        HRESULT hr = ddp_win_xpress_decode(enc, en, out, n, "t");
        assert_true(hr == S_OK || hr == DDP_E_FILE_CORRUPT);
        if (FAILED(hr)) bad++;
        enc[i] ^= (uint8_t)(1u << (i % 8));
    }
    assert_true(bad > 0);
    free(out);
    free(enc);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_vectors),      cmocka_unit_test(test_hand_streams),
        cmocka_unit_test(test_roundtrip_kinds),   cmocka_unit_test(test_roundtrip_lengths),
        cmocka_unit_test(test_flips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
