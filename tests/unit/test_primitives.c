/* SPDX-License-Identifier: MIT */
/*
 * test_primitives.c: the hashes (SHA-256, HMAC-SHA256 against published
 * vectors; the whole-file hash's definition), the zstd codec (round trips,
 * raw fallback, every decode failure), error codes and messages.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <ddp/ddperror.h>
#include "base/codec.h"
#include "base/hash.h"
#include "testutil.h"
#include "base/util.h"

static void hex(const uint8_t *h, char *out) { ddp_hash_hex(h, out); }

static void test_sha256_vectors(void **state)
{
    (void)state;
    uint8_t h[32];
    char s[65];
    ddp_sha256("abc", 3, h);
    hex(h, s);
    assert_string_equal(s, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    ddp_sha256("", 0, h);
    hex(h, s);
    assert_string_equal(s, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    /* incremental equals one-shot */
    uint8_t buf[100000], h2[32];
    tu_fill_random(buf, sizeof buf, 3);
    ddp_sha256(buf, sizeof buf, h);
    ddp_sha256_ctx *c = ddp_sha256_new();
    ddp_sha256_update(c, buf, 12345);
    ddp_sha256_update(c, buf + 12345, sizeof buf - 12345);
    ddp_sha256_final(c, h2);
    ddp_sha256_free(c);
    assert_memory_equal(h, h2, 32);
}

static void test_hmac_rfc4231(void **state)
{
    (void)state;
    /* RFC 4231 test case 2 */
    uint8_t h[32];
    char s[65];
    ddp_hmac_sha256((const uint8_t *)"Jefe", 4, "what do ya want for nothing?", 28, h);
    hex(h, s);
    assert_string_equal(s, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

static void test_filehash_definition(void **state)
{
    (void)state;
    uint8_t a[32], b[32], got[32], want[32];
    ddp_sha256("chunk one", 9, a);
    ddp_sha256("chunk two", 9, b);
    ddp_filehash fh;
    ddp_filehash_init(&fh);
    ddp_filehash_add(&fh, a, 9);
    ddp_filehash_add(&fh, b, 9);
    ddp_filehash_final(&fh, got);
    uint8_t msg[8 + 64 + 8];
    memcpy(msg, "DDPFILE1", 8);
    memcpy(msg + 8, a, 32);
    memcpy(msg + 40, b, 32);
    ddp_put_le64(msg + 72, 18);
    ddp_sha256(msg, sizeof msg, want);
    assert_memory_equal(got, want, 32);
    /* order matters */
    ddp_filehash_init(&fh);
    ddp_filehash_add(&fh, b, 9);
    ddp_filehash_add(&fh, a, 9);
    ddp_filehash_final(&fh, got);
    assert_memory_not_equal(got, want, 32);
}

static void test_codec(void **state)
{
    (void)state;
    size_t n = 131072;
    uint8_t *src = malloc(n), *dst = malloc(ddp_compress_bound(n)), *back = malloc(n);
    for (size_t i = 0; i < n; i++) src[i] = (uint8_t)("abcabcabd"[i % 9]);
    size_t c = ddp_compress(dst, ddp_compress_bound(n), src, n, 3);
    assert_true(c > 0 && c < n / 10);
    assert_int_equal(ddp_decompress(DDP_CODEC_ZSTD, dst, c, back, n), S_OK);
    assert_memory_equal(src, back, n);
    /* wrong expected size, truncated data, flipped byte, unknown codec */
    assert_int_equal(ddp_decompress(DDP_CODEC_ZSTD, dst, c, back, n - 1), DDP_E_FILE_CORRUPT);
    assert_int_equal(ddp_decompress(DDP_CODEC_ZSTD, dst, c - 3, back, n), DDP_E_FILE_CORRUPT);
    assert_int_equal(ddp_decompress(7, dst, c, back, n), DDP_E_UNSUPPORTED_COMPRESSION);
    assert_int_equal(ddp_decompress(DDP_CODEC_NONE, src, n, back, n - 1), DDP_E_FILE_CORRUPT);
    /* random data does not shrink: stored raw */
    tu_fill_random(src, n, 9);
    assert_int_equal(ddp_compress(dst, ddp_compress_bound(n), src, n, 3), 0);
    free(src);
    free(dst);
    free(back);
}

static void test_errors(void **state)
{
    (void)state;
    assert_int_equal(HRESULT_FROM_WIN32(ERROR_DISK_FULL), (HRESULT)0x80070070);
    assert_int_equal(HRESULT_FROM_WIN32(0), 0);
    assert_int_equal(ddp_hresult_from_errno(ENOSPC), (HRESULT)0x80070070);
    assert_int_equal(ddp_hresult_from_errno(EACCES), (HRESULT)0x80070005);
    assert_int_equal(ddp_hresult_from_errno(ENOENT), (HRESULT)0x80070002);
    assert_string_equal(ddp_strerror(DDP_E_FILE_CORRUPT), "data deduplication encountered a file corruption error");
    assert_string_equal(ddp_strerror(HRESULT_FROM_WIN32(ERROR_DISK_FULL)), "the disk is full");
    /* a detail message that quotes the previous one */
    ddp_fail(E_FAIL, "inner %d", 1);
    ddp_fail(E_FAIL, "outer: %s", ddp_error_detail());
    assert_string_equal(ddp_error_detail(), "outer: inner 1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_hmac_rfc4231),
        cmocka_unit_test(test_filehash_definition),
        cmocka_unit_test(test_codec),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
