/* SPDX-License-Identifier: MIT */
/*
 * test_win_xpress.c: unit tests for the [MS-XCA] Plain LZ77 decoder
 * (lib/windows/xpress.c): the two examples of [MS-XCA] 3.1 decode exactly
 * (tests/data/windows/ms-xca-vectors.txt); streams from the test encoder
 * (tests/common/xpress_enc.c) round-trip for 32-128 KiB chunks of every kind
 * of data, with match lengths in each extension (3 bits, shared nibble,
 * byte, u16, u32); and the decoder refuses every stream that does not decode
 * to exactly the expected length, matches reaching before the output start
 * and truncated input, without touching memory outside its buffers (the
 * output buffers are exactly sized, so ASan sees any overrun). Streams
 * written symbol by symbol (sw_*) reach each edge of the decoder's fast loop
 * and careful step: overlapping matches at distances 1-20 in and out of the
 * slack, literal runs across flag words, length extensions ending the input,
 * refusals met inside the fast loop.
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

/* ---- a symbol-by-symbol stream writer, with the bytes the stream stands for ---- */

#define SW_CAP (1u << 18)
typedef struct {
    uint8_t b[SW_CAP];   /* the stream */
    size_t n, flag_at;   /* its length, where the current flag word goes */
    uint32_t fl;         /* flags of the current word so far */
    unsigned nf;         /* how many */
    size_t nib;          /* the byte holding an unpaired length nibble, or SIZE_MAX */
    uint8_t ref[SW_CAP]; /* the decoded bytes */
    size_t rn;
    uint64_t seed;
    int pad_word; /* the last 4 bytes are a flag word with no symbol in it */
} sw;

static void put32le(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static sw *sw_new(uint64_t seed)
{
    sw *w = calloc(1, sizeof *w);
    assert_non_null(w);
    w->n = 4;
    w->nib = SIZE_MAX;
    w->seed = seed;
    return w;
}

static void sw_flag(sw *w, unsigned bit)
{
    w->fl = w->fl << 1 | bit;
    if (++w->nf == 32) {
        put32le(w->b + w->flag_at, w->fl);
        w->flag_at = w->n;
        w->n += 4;
        w->fl = 0;
        w->nf = 0;
    }
}

/* k random literals */
static void sw_lits(sw *w, size_t k)
{
    for (size_t i = 0; i < k; i++) {
        uint8_t c;
        tu_fill_random(&c, 1, w->seed++);
        assert_true(w->n < SW_CAP && w->rn < SW_CAP);
        w->b[w->n++] = c;
        w->ref[w->rn++] = c;
        sw_flag(w, 0);
    }
}

/* A match symbol with the length field L = len - 3 encoded as [MS-XCA] 2.3
 * says; raw16 (when not 0) is written as the 16-bit length instead, to
 * make invalid ones. The reference grows by len bytes (when valid). */
static void sw_match_raw(sw *w, size_t dist, size_t len, uint32_t raw16)
{
    assert_true(dist >= 1 && dist <= 8192 && len >= 3);
    size_t L = len - 3;
    uint8_t *p = w->b + w->n;
    uint32_t sym = (uint32_t)(dist - 1) << 3 | (uint32_t)(L < 7 ? L : 7);
    p[0] = (uint8_t)sym;
    p[1] = (uint8_t)(sym >> 8);
    w->n += 2;
    if (L >= 7) {
        size_t r = L - 7;
        uint8_t nib = (uint8_t)(r < 15 ? r : 15);
        if (w->nib == SIZE_MAX) {
            w->nib = w->n;
            w->b[w->n++] = nib;
        } else {
            w->b[w->nib] |= (uint8_t)(nib << 4);
            w->nib = SIZE_MAX;
        }
        if (r >= 15) {
            if (r - 15 < 255 && !raw16) {
                w->b[w->n++] = (uint8_t)(r - 15);
            } else {
                w->b[w->n++] = 255;
                if (raw16 || L <= 0xFFFF) {
                    uint32_t v = raw16 ? raw16 : (uint32_t)L;
                    w->b[w->n++] = (uint8_t)v;
                    w->b[w->n++] = (uint8_t)(v >> 8);
                } else {
                    w->b[w->n++] = 0;
                    w->b[w->n++] = 0;
                    put32le(w->b + w->n, (uint32_t)L);
                    w->n += 4;
                }
            }
        }
    }
    if (!raw16 && dist <= w->rn) {
        assert_true(w->rn + len <= SW_CAP);
        for (size_t i = 0; i < len; i++, w->rn++) w->ref[w->rn] = w->ref[w->rn - dist];
    }
    sw_flag(w, 1);
}

static void sw_match(sw *w, size_t dist, size_t len) { sw_match_raw(w, dist, len, 0); }

/* Close the stream: the last flag word padded with 1 bits. */
static void sw_end(sw *w)
{
    unsigned pad = 32 - w->nf;
    w->pad_word = pad == 32;
    put32le(w->b + w->flag_at, pad == 32 ? 0xFFFFFFFFu : (w->fl << pad) | ((1u << pad) - 1));
}

/* The stream decodes to exactly ref; one byte more or less expected is
 * refused; so is every cut of its last `cuts` bytes (each loses output or
 * truncates a symbol), but for dropping a final flag word that holds no
 * symbol: the stream then ends where a new word is due, which is valid. */
static void sw_check(const sw *w, size_t cuts)
{
    uint8_t *out;
    HRESULT hr = dec(w->b, w->n, w->rn, &out);
    if (FAILED(hr)) fail_msg("decode failed: %s", ddp_error_detail());
    assert_memory_equal(out, w->ref, w->rn);
    free(out);
    assert_int_equal(dec(w->b, w->n, w->rn + 1, &out), DDP_E_FILE_CORRUPT);
    free(out);
    if (w->rn > 0) {
        assert_int_equal(dec(w->b, w->n, w->rn - 1, &out), DDP_E_FILE_CORRUPT);
        free(out);
    }
    for (size_t k = 1; k <= cuts && k <= w->n; k++) {
        hr = dec(w->b, w->n - k, w->rn, &out);
        if (k == 4 && w->pad_word) {
            assert_int_equal(hr, S_OK);
            assert_memory_equal(out, w->ref, w->rn);
        } else {
            assert_int_equal(hr, DDP_E_FILE_CORRUPT);
        }
        free(out);
    }
}

/* Matches at distances 1-20 (overlapping copies, pattern widening, 8- and
 * 16-byte steps) of many lengths: once with slack around (fast loop), once
 * ending exactly at the end of the output (careful step). */
static void test_match_copies(void **state)
{
    (void)state;
    static const size_t lens[] = { 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 23, 24,
                                   25, 26, 31, 32, 33, 40, 47, 48, 49, 64, 100, 279, 280, 1000, 70000 };
    for (size_t d = 1; d <= 20; d++) {
        for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
            sw *w = sw_new(d * 1000 + k);
            sw_lits(w, 100);
            sw_match(w, d, lens[k]);
            sw_lits(w, 150);
            sw_match(w, d, lens[k]);
            sw_end(w);
            sw_check(w, 12);
            /* The same match right after the first literals, the only one. */
            free(w);
            w = sw_new(d * 1000 + k + 500);
            sw_lits(w, d);
            sw_match(w, d, lens[k]);
            sw_end(w);
            sw_check(w, 12);
            free(w);
        }
    }
}

/* Literal runs of 1-70 bytes starting at every position of a flag word
 * (0-35 matches before them), so runs end in, at and across word
 * boundaries; and runs that end the output. */
static void test_literal_runs(void **state)
{
    (void)state;
    for (size_t k = 0; k <= 35; k++) {
        for (size_t r = 1; r <= 70; r++) {
            sw *w = sw_new(k * 100 + r);
            sw_lits(w, 100);
            for (size_t i = 0; i < k; i++) sw_match(w, 50 + i, 3 + i % 7);
            sw_lits(w, r);
            sw_match(w, 20, 5);
            sw_lits(w, 150);
            sw_lits(w, r);
            sw_end(w);
            sw_check(w, 4);
            free(w);
        }
    }
}

/* A match in each length encoding (3 bits, nibble alone or shared, byte,
 * u16, u32) as the last symbol: the input ends right after its length
 * bytes; every cut into them is refused. */
static void test_length_ends(void **state)
{
    (void)state;
    static const size_t lens[] = { 9, 10, 24, 25, 26, 279, 280, 281, 65538, 65539, 65540, 200000 };
    for (int shared = 0; shared < 2; shared++) {
        for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
            for (size_t before = 0; before < 120; before += 119) {
                sw *w = sw_new(k + 77);
                sw_lits(w, 40 + before);
                if (shared) sw_match(w, 13, 12); /* leaves a nibble for the last match */
                sw_match(w, 7, lens[k]);
                sw_end(w);
                sw_check(w, 10);
                free(w);
            }
        }
    }
}

/* Refusals met inside the fast loop (slack on both sides): a match reaching
 * before the start, a match longer than the output left, a u16 length below
 * 22; each names what was wrong. */
static void test_fast_refusals(void **state)
{
    (void)state;
    uint8_t *out;
    sw *w = sw_new(1);
    sw_lits(w, 200);
    sw_match(w, 201, 5); /* reaches before the start */
    sw_lits(w, 200);
    sw_end(w);
    assert_int_equal(dec(w->b, w->n, 405, &out), DDP_E_FILE_CORRUPT);
    assert_non_null(strstr(ddp_error_detail(), "before the start"));
    free(out);
    free(w);

    w = sw_new(2);
    sw_lits(w, 200);
    sw_match(w, 10, 500);
    sw_lits(w, 200);
    sw_end(w);
    for (size_t n = 200; n < 700; n += 37) {
        assert_int_equal(dec(w->b, w->n, n, &out), DDP_E_FILE_CORRUPT);
        assert_non_null(strstr(ddp_error_detail(), "more bytes"));
        free(out);
    }
    free(w);

    w = sw_new(3);
    sw_lits(w, 200);
    sw_match_raw(w, 10, 300, 21); /* a u16 length of 21 */
    sw_lits(w, 200);
    sw_end(w);
    assert_int_equal(dec(w->b, w->n, 1000, &out), DDP_E_FILE_CORRUPT);
    assert_non_null(strstr(ddp_error_detail(), "below 22"));
    free(out);
    free(w);
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
        cmocka_unit_test(test_flips),             cmocka_unit_test(test_match_copies),
        cmocka_unit_test(test_literal_runs),      cmocka_unit_test(test_length_ends),
        cmocka_unit_test(test_fast_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
