/* SPDX-License-Identifier: MIT */
/*
 * test_index.c: unit tests for the persistent chunk index (index.h):
 * 200,000 random hashes inserted, checkpointed and reloaded all hit with
 * the right location while 200,000 others miss; merges of a delta into a
 * base; the covered-length table; the pinned file layout; RAM per chunk;
 * and detection of every kind of damage to the file (flipped bytes,
 * truncation, another store's index, entries out of order).
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <xxhash.h>

#include "base/hash.h"
#include "store/index.h"
#include "base/util.h"
#include "testutil.h"

#define N 200000u

static const uint8_t store_a[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };
static const uint8_t store_b[16] = { 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1 };

static ddp_chunk_loc loc_for(uint32_t i)
{
    ddp_chunk_loc l;
    memset(&l, 0, sizeof l);
    l.container = 1 + i % 97;
    l.codec = (uint8_t)(i % 2);
    l.logical_len = 1 + (i * 7919u) % 131072u;
    l.stored_len = l.codec ? 1 + l.logical_len / 2 : l.logical_len;
    l.offset = 64 + (uint64_t)i * 1000;
    return l;
}

static void assert_loc(const ddp_chunk_loc *a, const ddp_chunk_loc *b)
{
    assert_int_equal(a->container, b->container);
    assert_int_equal(a->codec, b->codec);
    assert_true(a->offset == b->offset);
    assert_int_equal(a->stored_len, b->stored_len);
    assert_int_equal(a->logical_len, b->logical_len);
}

typedef struct fixture {
    char *dir, *path;
    uint8_t *present; /* N hashes */
    uint8_t *absent;  /* N other hashes */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->dir = tu_mkdtemp();
    f->path = ddp_path_join(f->dir, "index");
    f->present = malloc((size_t)N * 32);
    f->absent = malloc((size_t)N * 32);
    tu_fill_random(f->present, (size_t)N * 32, 1234);
    tu_fill_random(f->absent, (size_t)N * 32, 98765);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    tu_rmrf(f->dir);
    free(f->dir);
    free(f->path);
    free(f->present);
    free(f->absent);
    free(f);
    return 0;
}

static void check_all(const ddp_index *ix, const fixture *f, uint32_t n_present)
{
    for (uint32_t i = 0; i < n_present; i++) {
        ddp_chunk_loc got, want = loc_for(i);
        if (!ddp_index_lookup(ix, f->present + (size_t)i * 32, &got)) fail_msg("hash %u missing", i);
        assert_loc(&got, &want);
    }
    for (uint32_t i = 0; i < N; i++)
        if (ddp_index_lookup(ix, f->absent + (size_t)i * 32, NULL)) fail_msg("absent hash %u found", i);
}

static ddp_index *build(const fixture *f, uint32_t n)
{
    ddp_index *ix = ddp_index_new(f->path, store_a);
    for (uint32_t i = 0; i < n; i++) {
        ddp_chunk_loc l = loc_for(i);
        assert_int_equal(ddp_index_insert(ix, f->present + (size_t)i * 32, &l), 1);
    }
    return ix;
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (uint64_t)st.st_size;
}

static void test_200k_roundtrip(void **state)
{
    fixture *f = *state;
    ddp_index *ix = build(f, N);
    assert_true(ddp_index_count(ix) == N);
    assert_true(ddp_index_delta_count(ix) == N);
    check_all(ix, f, N);
    ddp_index_set_covered(ix, 5, 1, 123456);
    assert_int_equal(ddp_index_checkpoint(ix), S_OK);
    assert_true(ddp_index_delta_count(ix) == 0);
    assert_false(ddp_index_is_dirty(ix));
    check_all(ix, f, N);
    assert_true(file_size(f->path) == 64 + 16 + (uint64_t)N * 56);
    ddp_index_free(ix);

    ix = NULL;
    assert_int_equal(ddp_index_load(f->path, store_a, &ix), S_OK);
    assert_true(ddp_index_count(ix) == N);
    assert_true(ddp_index_delta_count(ix) == 0);
    check_all(ix, f, N);
    uint64_t count, stored, logical, want_stored = 0, want_logical = 0;
    for (uint32_t i = 0; i < N; i++) {
        ddp_chunk_loc l = loc_for(i);
        want_stored += l.stored_len;
        want_logical += l.logical_len;
    }
    ddp_index_totals(ix, &count, &stored, &logical);
    assert_true(count == N);
    assert_true(stored == want_stored);
    assert_true(logical == want_logical);
    assert_int_equal(ddp_index_max_container(ix), 97);
    ddp_index_cover c;
    assert_int_equal(ddp_index_get_covered(ix, 5, &c), 1);
    assert_int_equal(c.generation, 1);
    assert_true(c.length == 123456);
    assert_int_equal(ddp_index_get_covered(ix, 6, &c), 0);

    double per_chunk = (double)ddp_index_ram_bytes(ix) / N;
    printf("index RAM after load: %zu bytes for %u chunks = %.2f bytes/chunk; file %llu bytes\n",
           ddp_index_ram_bytes(ix), N, per_chunk, (unsigned long long)ddp_index_file_bytes(ix));
    assert_true(per_chunk < 2.0);
    assert_true(ddp_index_file_bytes(ix) == file_size(f->path));

    /* Nothing changed: a checkpoint does not rewrite the file. */
    struct stat before, after;
    assert_int_equal(stat(f->path, &before), 0);
    assert_int_equal(ddp_index_checkpoint(ix), S_OK);
    assert_int_equal(stat(f->path, &after), 0);
    assert_true(before.st_ino == after.st_ino);
    ddp_index_free(ix);
}

static void test_merge_and_duplicates(void **state)
{
    fixture *f = *state;
    uint32_t first = N / 2;
    ddp_index *ix = build(f, first);
    assert_int_equal(ddp_index_checkpoint(ix), S_OK);
    ddp_index_free(ix);
    assert_int_equal(ddp_index_load(f->path, store_a, &ix), S_OK);
    /* The rest into the delta; re-inserting known hashes keeps the first location. */
    for (uint32_t i = first; i < N; i++) {
        ddp_chunk_loc l = loc_for(i);
        assert_int_equal(ddp_index_insert(ix, f->present + (size_t)i * 32, &l), 1);
    }
    for (uint32_t i = 0; i < N; i += 1000) {
        ddp_chunk_loc other = loc_for(i + 1);
        assert_int_equal(ddp_index_insert(ix, f->present + (size_t)i * 32, &other), 0);
    }
    ddp_chunk_loc zero;
    memset(&zero, 0, sizeof zero);
    assert_int_equal(ddp_index_insert(ix, f->absent, &zero), -1);
    assert_true(ddp_index_count(ix) == N);
    assert_true(ddp_index_delta_count(ix) == N - first);
    check_all(ix, f, N);
    assert_int_equal(ddp_index_checkpoint(ix), S_OK);
    check_all(ix, f, N);
    ddp_index_free(ix);
    assert_int_equal(ddp_index_load(f->path, store_a, &ix), S_OK);
    check_all(ix, f, N);
    assert_true(ddp_index_count(ix) == N);

    /* wants_checkpoint: after 256Ki new entries (and at least 1/16 of the base). */
    assert_false(ddp_index_wants_checkpoint(ix));
    uint8_t h[32];
    for (uint32_t i = 0; i < 262144; i++) {
        tu_fill_random(h, 32, 0xABCDEF00000000ull + i);
        ddp_chunk_loc l = loc_for(i);
        assert_int_equal(ddp_index_insert(ix, h, &l), 1);
        if (i < 262143) assert_false(ddp_index_wants_checkpoint(ix));
    }
    assert_true(ddp_index_wants_checkpoint(ix));
    ddp_index_free(ix);
}

static void test_empty_and_covered(void **state)
{
    fixture *f = *state;
    ddp_index *ix = ddp_index_new(f->path, store_a);
    assert_true(ddp_index_is_dirty(ix));
    assert_int_equal(ddp_index_lookup(ix, f->present, NULL), 0);
    assert_int_equal(ddp_index_checkpoint(ix), S_OK);
    assert_true(file_size(f->path) == 64);
    ddp_index_free(ix);
    assert_int_equal(ddp_index_load(f->path, store_a, &ix), S_OK);
    assert_true(ddp_index_count(ix) == 0);
    assert_int_equal(ddp_index_lookup(ix, f->present, NULL), 0);
    /* Covered table: kept sorted, replaced in place. */
    ddp_index_set_covered(ix, 9, 1, 900);
    ddp_index_set_covered(ix, 2, 1, 200);
    ddp_index_set_covered(ix, 5, 3, 500);
    ddp_index_set_covered(ix, 2, 2, 250);
    assert_true(ddp_index_is_dirty(ix));
    assert_int_equal(ddp_index_covered_count(ix), 3);
    assert_int_equal(ddp_index_covered_at(ix, 0)->container, 2);
    assert_int_equal(ddp_index_covered_at(ix, 2)->container, 9);
    assert_null(ddp_index_covered_at(ix, 3));
    assert_int_equal(ddp_index_checkpoint(ix), S_OK);
    ddp_index_free(ix);
    assert_int_equal(ddp_index_load(f->path, store_a, &ix), S_OK);
    ddp_index_cover c;
    assert_int_equal(ddp_index_get_covered(ix, 2, &c), 1);
    assert_int_equal(c.generation, 2);
    assert_true(c.length == 250);
    assert_int_equal(ddp_index_get_covered(ix, 5, &c), 1);
    assert_true(c.length == 500 && c.generation == 3);
    assert_int_equal(ddp_index_covered_count(ix), 3);
    ddp_index_free(ix);
}

static void test_layout(void **state)
{
    fixture *f = *state;
    ddp_index *ix = build(f, 300);
    ddp_index_set_covered(ix, 7, 2, 4096);
    assert_int_equal(ddp_index_checkpoint(ix), S_OK);
    ddp_index_free(ix);
    size_t n;
    uint8_t *b = tu_read_file(f->path, &n);
    assert_int_equal(n, 64 + 16 + 300 * 56);
    assert_memory_equal(b, "DDPINDX1", 8);
    assert_int_equal(ddp_get_le32(b + 8), 1);   /* version */
    assert_int_equal(ddp_get_le32(b + 12), 1);  /* covered entries */
    assert_true(ddp_get_le64(b + 16) == 300);   /* entries */
    assert_memory_equal(b + 24, store_a, 16);
    assert_true(ddp_get_le64(b + 40) == XXH3_64bits(b + 64, n - 64));
    assert_int_equal(ddp_get_le32(b + 48), 56);
    assert_int_equal(ddp_get_le32(b + 52), 0);
    assert_true(ddp_get_le64(b + 56) == ddp_checksum64(b, 56));
    /* Covered entry. */
    assert_int_equal(ddp_get_le32(b + 64), 7);
    assert_int_equal(ddp_get_le32(b + 68), 2);
    assert_true(ddp_get_le64(b + 72) == 4096);
    /* Entries sorted; each one as documented. */
    const uint8_t *e = b + 80;
    for (uint32_t i = 0; i < 300; i++, e += 56) {
        if (i) assert_true(memcmp(e - 56, e, 32) < 0);
        uint32_t which = UINT32_MAX;
        for (uint32_t j = 0; j < 300; j++)
            if (memcmp(f->present + (size_t)j * 32, e, 32) == 0) which = j;
        assert_true(which != UINT32_MAX);
        ddp_chunk_loc l = loc_for(which);
        assert_int_equal(ddp_get_le32(e + 32), l.container);
        assert_int_equal(e[36], l.codec);
        assert_int_equal(e[37] | e[38] | e[39], 0);
        assert_true(ddp_get_le64(e + 40) == l.offset);
        assert_int_equal(ddp_get_le32(e + 48), l.stored_len);
        assert_int_equal(ddp_get_le32(e + 52), l.logical_len);
    }
    free(b);
}

static void write_bytes(const char *path, const uint8_t *b, size_t n)
{
    unlink(path);
    tu_write_file(path, b, n);
}

static void reseal(uint8_t *b, size_t n)
{
    ddp_put_le64(b + 40, XXH3_64bits(b + 64, n - 64));
    ddp_put_le64(b + 56, ddp_checksum64(b, 56));
}

static void test_damage_detected(void **state)
{
    fixture *f = *state;
    ddp_index *ix = build(f, 5000);
    ddp_index_set_covered(ix, 3, 1, 1000);
    assert_int_equal(ddp_index_checkpoint(ix), S_OK);
    ddp_index_free(ix);
    size_t n;
    uint8_t *good = tu_read_file(f->path, &n);
    uint8_t *b = malloc(n);

    /* Flipped bytes anywhere. */
    size_t spots[] = { 0, 7, 8, 12, 16, 24, 39, 40, 48, 56, 63, 64, 70, 79, 80, 100, 80 + 56 * 2500 + 33, n - 1 };
    for (size_t i = 0; i < sizeof spots / sizeof spots[0]; i++) {
        memcpy(b, good, n);
        b[spots[i]] ^= 0x10;
        write_bytes(f->path, b, n);
        ix = NULL;
        HRESULT hr = ddp_index_load(f->path, store_a, &ix);
        if (hr != DDP_E_FILE_CORRUPT) fail_msg("flip at %zu: hr %08x", spots[i], (unsigned)hr);
        assert_null(ix);
        assert_non_null(strstr(ddp_error_detail(), f->path));
    }
    /* Truncated, extended. */
    size_t lens[] = { 0, 10, 63, 64, 80, n - 56, n - 1 };
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        write_bytes(f->path, good, lens[i]);
        assert_int_equal(ddp_index_load(f->path, store_a, &ix), DDP_E_FILE_CORRUPT);
    }
    memcpy(b, good, n);
    write_bytes(f->path, good, n);
    int fd = open(f->path, O_WRONLY | O_APPEND);
    assert_int_equal(write(fd, good + 80, 56), 56);
    close(fd);
    assert_int_equal(ddp_index_load(f->path, store_a, &ix), DDP_E_FILE_CORRUPT);

    /* Another store's index. */
    write_bytes(f->path, good, n);
    assert_int_equal(ddp_index_load(f->path, store_b, &ix), DDP_E_FILE_CORRUPT);
    /* Consistent checksums but entries out of order, or duplicated. */
    memcpy(b, good, n);
    uint8_t tmp[56];
    memcpy(tmp, b + 80, 56);
    memcpy(b + 80, b + 80 + 56, 56);
    memcpy(b + 80 + 56, tmp, 56);
    reseal(b, n);
    write_bytes(f->path, b, n);
    assert_int_equal(ddp_index_load(f->path, store_a, &ix), DDP_E_FILE_CORRUPT);
    memcpy(b, good, n);
    memcpy(b + 80 + 56, b + 80, 56);
    reseal(b, n);
    write_bytes(f->path, b, n);
    assert_int_equal(ddp_index_load(f->path, store_a, &ix), DDP_E_FILE_CORRUPT);
    /* Consistent checksums, a bad field. */
    memcpy(b, good, n);
    ddp_put_le32(b + 80 + 32, 0); /* container 0 */
    reseal(b, n);
    write_bytes(f->path, b, n);
    assert_int_equal(ddp_index_load(f->path, store_a, &ix), DDP_E_FILE_CORRUPT);
    memcpy(b, good, n);
    ddp_put_le32(b + 80 + 52, 131073); /* logical too long */
    reseal(b, n);
    write_bytes(f->path, b, n);
    assert_int_equal(ddp_index_load(f->path, store_a, &ix), DDP_E_FILE_CORRUPT);
    /* A newer version. */
    memcpy(b, good, n);
    ddp_put_le32(b + 8, 2);
    reseal(b, n);
    write_bytes(f->path, b, n);
    assert_int_equal(ddp_index_load(f->path, store_a, &ix), DDP_E_UNSUPPORTED_VERSION);
    /* Missing. */
    unlink(f->path);
    assert_int_equal(ddp_index_load(f->path, store_a, &ix), HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND));
    /* And the good bytes still load. */
    write_bytes(f->path, good, n);
    assert_int_equal(ddp_index_load(f->path, store_a, &ix), S_OK);
    check_all(ix, f, 5000);
    ddp_index_free(ix);
    free(b);
    free(good);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_200k_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_merge_and_duplicates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_and_covered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_layout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damage_detected, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
