/* SPDX-License-Identifier: MIT */
/*
 * test_chunkcache.c: the mount's cache of decoded chunks
 * (programs/mount/chunkcache.c), driven directly on an optimized volume.
 *
 * Every chunk reads back as the file's bytes through both accessors (a copy,
 * and the pieces a reply hands the kernel), whether or not its pages are
 * contiguous; concurrent readers and the read-ahead threads load each chunk
 * once; the pages used never exceed the bound (and a sixteenth); a pinned
 * chunk keeps its bytes, in place, while far more than the cache is loaded
 * around it; with the whole arena pinned a chunk still loads (a buffer of
 * its own) and is not kept; a chunk that fails its checks fails again for
 * the next reader (nothing failed is cached).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <cmocka.h>

#include <ddp/ddp.h>
#include "chunkcache.h"
#include "store/chunkread.h"
#include "store/stub.h"
#include "testutil.h"
#include "base/util.h"
#include "volume/volume.h"

#define NFILES 3
#define MIB ((uint64_t)1 << 20)

typedef struct fixture {
    char *dir;
    char *path[NFILES];
    uint8_t *data[NFILES];
    size_t size[NFILES];
    ddp_volume *v;
    ddp_chunkreader *rd;
    ddp_streammap map[NFILES];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->dir = tu_mkdtemp();
    /* Files 0 and 1 share a 6 MiB base; file 2 is 3 MiB of its own. */
    tu_versions spec = { "d", 6 << 20, 300000, 1000, 3 << 20, 11, 12, 13 };
    tu_write_versions(f->dir, &spec, NFILES, f->path, f->data, f->size);
    tu_optimize_volume(f->dir, NULL, NFILES);
    assert_int_equal(ddp_volume_open(f->dir, DDP_OPEN_READ, &f->v), S_OK);
    assert_int_equal(ddp_volume_chunkreader(f->v, &f->rd), S_OK);
    for (int i = 0; i < NFILES; i++) {
        ddp_stub s;
        assert_int_equal(ddp_volume_read_stub(f->v, -1, f->path[i], &s), S_OK);
        assert_int_equal(ddp_chunkreader_map(f->rd, &s, f->path[i], &f->map[i]), S_OK);
        assert_true(f->map[i].count > 10);
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < NFILES; i++) {
        ddp_streammap_free(&f->map[i]);
        free(f->path[i]);
        free(f->data[i]);
    }
    ddp_chunkreader_close(f->rd);
    ddp_volume_close(f->v);
    tu_rmrf(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* Chunk k of file i, got and checked against the file's bytes by cc_copy
 * and by cc_iov; left pinned in *out when out is not NULL. */
static void get_checked(fixture *f, int i, uint32_t k, cc_chunk **out)
{
    const ddp_streammap *m = &f->map[i];
    cc_chunk *c = NULL;
    char detail[256];
    char *note = (char *)"unset";
    assert_int_equal(cc_get(&m->entries[k], &c, detail, sizeof detail, &note), S_OK);
    assert_non_null(c);
    assert_null(note);                   /* served by its primary record */
    assert_int_equal(c->len, m->entries[k].loc.logical_len);
    const uint8_t *want = f->data[i] + m->starts[k];
    uint8_t *got = malloc(c->len);
    cc_copy(c, 0, got, c->len);
    assert_memory_equal(got, want, c->len);
    /* Pieces of a range that starts and ends inside pages. */
    size_t in = c->len / 3, n = c->len / 2;
    struct iovec iov[40];
    unsigned pieces = cc_iov(c, in, n, iov, 40);
    assert_true(pieces >= 1);
    size_t at = 0;
    for (unsigned p = 0; p < pieces; p++) {
        assert_memory_equal(iov[p].iov_base, want + in + at, iov[p].iov_len);
        at += iov[p].iov_len;
    }
    assert_int_equal(at, n);
    assert_int_equal(cc_iov(c, in, n, iov, 0), 0);   /* no room: 0, nothing written */
    memset(got, 0, c->len);
    cc_copy(c, in, got, n);
    assert_memory_equal(got, want + in, n);
    free(got);
    if (out) *out = c;
    else cc_put(c);
}

static void read_file_chunks(fixture *f, int i)
{
    for (uint32_t k = 0; k < f->map[i].count; k++) get_checked(f, i, k, NULL);
}

/* Distinct chunks of all the files. */
static uint64_t distinct(const fixture *f)
{
    uint64_t n = 0;
    for (int i = 0; i < NFILES; i++)
        for (uint32_t k = 0; k < f->map[i].count; k++) {
            int seen = 0;
            for (int j = 0; j <= i && !seen; j++)
                for (uint32_t l = 0; l < (j == i ? k : f->map[j].count) && !seen; l++)
                    seen = !memcmp(f->map[j].entries[l].hash, f->map[i].entries[k].hash, DDP_HASH_SIZE);
            n += !seen;
        }
    return n;
}

/* A large cache: every chunk right, each loaded once (the second file's
 * shared chunks are hits), nothing outside the arena. */
static void test_large_cache(void **state)
{
    fixture *f = *state;
    cc_start(f->rd, 64 * MIB, 2);
    for (int i = 0; i < NFILES; i++) read_file_chunks(f, i);
    read_file_chunks(f, 0);
    cc_stats st;
    cc_stop(&st);
    assert_int_equal(st.loads, distinct(f));
    assert_int_equal(st.reader_loads, st.loads);
    assert_true(st.hits > f->map[0].count);      /* file 1's base, file 0 again */
    assert_int_equal(st.failures, 0);
    assert_int_equal(st.overflow, 0);
    assert_true(st.in_place > 0);
}

typedef struct reader_arg {
    fixture *f;
    int file;
} reader_arg;

static void *reader(void *p)
{
    reader_arg *a = p;
    read_file_chunks(a->f, a->file);
    return NULL;
}

/* Readers of files that share chunks, at once, with read-ahead queued for
 * all of them: each chunk is still decoded once. */
static void test_single_load(void **state)
{
    fixture *f = *state;
    cc_start(f->rd, 64 * MIB, 3);
    for (int i = 0; i < NFILES; i++) cc_prefetch(f->map[i].entries, f->map[i].count);
    pthread_t t[4];
    reader_arg args[4] = { { f, 0 }, { f, 1 }, { f, 0 }, { f, 2 } };
    for (int i = 0; i < 4; i++) assert_int_equal(pthread_create(&t[i], NULL, reader, &args[i]), 0);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    cc_stats st;
    cc_stop(&st);
    assert_int_equal(st.loads, distinct(f));
    assert_int_equal(st.failures, 0);
}

/* The smallest cache (4 MiB) under 15 MiB of chunks, read twice: every
 * chunk right, chunks evicted and loaded again, the pages used within the
 * bound and its sixteenth, and most chunks through the bounce buffer too
 * (freed pages come back in runs of other lengths). */
static void test_small_cache(void **state)
{
    fixture *f = *state;
    cc_start(f->rd, 4 * MIB, 2);
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < NFILES; i++) read_file_chunks(f, i);
    cc_stats st;
    cc_stop(&st);
    assert_true(st.loads > 2 * distinct(f) - 10);
    assert_true(st.pages * 4096 <= 4 * MIB + 4 * MIB / 16);
    assert_true(st.pages * 4096 >= 3 * MIB);
    assert_true(st.in_place < st.loads);
    assert_int_equal(st.overflow, 0);
}

/* A pinned chunk keeps its bytes, where they were, while three times the
 * cache is loaded around it. */
static void test_pinned_stays(void **state)
{
    fixture *f = *state;
    cc_start(f->rd, 4 * MIB, 2);
    cc_chunk *pinned;
    get_checked(f, 2, 3, &pinned);
    struct iovec before[40];
    unsigned n = cc_iov(pinned, 0, pinned->len, before, 40);
    assert_true(n >= 1);
    for (int i = 0; i < NFILES; i++) read_file_chunks(f, i);
    struct iovec after[40];
    assert_int_equal(cc_iov(pinned, 0, pinned->len, after, 40), n);
    size_t at = 0;
    for (unsigned p = 0; p < n; p++) {
        assert_ptr_equal(after[p].iov_base, before[p].iov_base);
        assert_memory_equal(after[p].iov_base, f->data[2] + f->map[2].starts[3] + at, after[p].iov_len);
        at += after[p].iov_len;
    }
    cc_put(pinned);
    cc_stats st;
    cc_stop(&st);
    assert_int_equal(st.overflow, 0);
}

/* With every page of the arena held, a chunk still loads, in a buffer of
 * its own, and is not kept once let go. */
static void test_overflow(void **state)
{
    fixture *f = *state;
    cc_start(f->rd, 4 * MIB, 0);
    const ddp_streammap *m = &f->map[0];
    cc_chunk *held[256];
    uint32_t nheld = 0;
    uint64_t bytes = 0;
    while (bytes < 4 * MIB + 4 * MIB / 16 && nheld < m->count) {
        get_checked(f, 0, nheld, &held[nheld]);
        bytes += held[nheld++]->len;
    }
    assert_true(nheld < m->count);
    cc_chunk *extra;
    get_checked(f, 0, nheld, &extra);   /* no pages left: its own buffer */
    cc_put(extra);
    get_checked(f, 0, nheld, NULL);     /* not kept: loaded again */
    cc_put_many(held, nheld);
    cc_stats st;
    cc_stop(&st);
    assert_true(st.overflow >= 2);
    assert_int_equal(st.loads, nheld + 2);
}

/* A chunk whose record does not match its map entry fails, and fails again
 * for the next reader (loaded twice: nothing failed is cached). */
static void test_failure_not_cached(void **state)
{
    fixture *f = *state;
    cc_start(f->rd, 4 * MIB, 0);
    ddp_streammap_entry e = f->map[2].entries[1];
    e.hash[5] ^= 0x40;
    for (int round = 0; round < 2; round++) {
        cc_chunk *c = NULL;
        char detail[512];
        HRESULT hr = cc_get(&e, &c, detail, sizeof detail, NULL);
        assert_true(FAILED(hr));
        assert_null(c);
        assert_true(strlen(detail) > 0);
    }
    get_checked(f, 2, 1, NULL);   /* the real chunk is fine */
    cc_stats st;
    cc_stop(&st);
    assert_int_equal(st.failures, 2);
    assert_int_equal(st.loads, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_large_cache),
        cmocka_unit_test(test_single_load),
        cmocka_unit_test(test_small_cache),
        cmocka_unit_test(test_pinned_stays),
        cmocka_unit_test(test_overflow),
        cmocka_unit_test(test_failure_not_cached),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
