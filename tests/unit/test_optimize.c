/* SPDX-License-Identifier: MIT */
/*
 * test_optimize.c: the optimization job and the read path through the
 * library API: files become stubs and read back exactly (whole and at
 * random ranges), a file changed during the job is left as it is and
 * reported, one job at a time, stubs keep mode and times, rehydration.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <ddp/ddp.h>
#include "testutil.h"

#define NFILES 8

typedef struct fixture {
    char *dir;
    char *paths[NFILES];
    uint8_t *data[NFILES];
    size_t size[NFILES];
} fixture;

/* Files that share content: a common 1 MiB base with per-file edits, plus one
 * of zeros and one compressible text. */
static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->dir = tu_mkdtemp();
    uint8_t *base = malloc(1 << 20);
    tu_fill_random(base, 1 << 20, 7);
    for (int i = 0; i < NFILES; i++) {
        size_t n = (1 << 20) + (size_t)i * 77777;
        uint8_t *d = malloc(n);
        memcpy(d, base, 1 << 20);
        tu_fill_random(d + (1 << 20), n - (1 << 20), 100 + (uint64_t)i);
        if (i == 6) memset(d, 0, n);
        if (i == 7) for (size_t k = 0; k < n; k++) d[k] = (uint8_t)("ddp dedup "[k % 10]);
        if (i > 0 && i < 6) d[(size_t)i * 4096] ^= 0xFF; /* a small edit in the shared part */
        f->paths[i] = malloc(strlen(f->dir) + 32);
        sprintf(f->paths[i], "%s/sub%d/file%d.bin", f->dir, i % 3, i);
        tu_write_file(f->paths[i], d, n);
        f->data[i] = d;
        f->size[i] = n;
    }
    free(base);
    chmod(f->paths[1], 0640);
    struct timespec t[2] = { { 1000000000, 0 }, { 1200000000, 123456789 } };
    utimensat(AT_FDCWD, f->paths[2], t, 0);
    assert_int_equal(ddp_volume_enable(f->dir, "Backup"), S_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    tu_rmrf(f->dir);
    for (int i = 0; i < NFILES; i++) { free(f->paths[i]); free(f->data[i]); }
    free(f->dir);
    free(f);
    return 0;
}

static int is_stub_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && st.st_size == 232;
}

static void read_back(ddp_volume *v, const fixture *f, int i)
{
    ddp_file *h = NULL;
    assert_int_equal(ddp_file_open(v, f->paths[i], &h), S_OK);
    assert_int_equal(ddp_file_size(h), f->size[i]);
    uint8_t *buf = malloc(f->size[i] + 10);
    size_t got = 0;
    assert_int_equal(ddp_file_pread(h, buf, f->size[i] + 10, 0, &got), S_OK);
    assert_int_equal(got, f->size[i]);
    assert_memory_equal(buf, f->data[i], f->size[i]);
    /* random ranges, across chunk boundaries, and past the end */
    uint64_t x = 99 + (uint64_t)i;
    for (int k = 0; k < 200; k++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t off = (x >> 20) % (f->size[i] + 100);
        size_t len = (size_t)((x >> 8) % 300000);
        got = 12345;
        assert_int_equal(ddp_file_pread(h, buf, len, off, &got), S_OK);
        size_t want = off >= f->size[i] ? 0 : (len < f->size[i] - off ? len : f->size[i] - off);
        assert_int_equal(got, want);
        if (want) assert_memory_equal(buf, f->data[i] + off, want);
    }
    free(buf);
    ddp_file_close(h);
}

typedef struct cbctx {
    const char *victim;
    int problems;
    HRESULT last_hr;
    char last_path[4096];
} cbctx;

static void on_problem(void *ctx, const char *path, HRESULT hr, const char *reason)
{
    (void)reason;
    cbctx *c = ctx;
    c->problems++;
    c->last_hr = hr;
    snprintf(c->last_path, sizeof c->last_path, "%s", path);
}

/* Change the victim right after its chunks were stored: the job must notice. */
static void on_chunked(void *ctx, const char *path)
{
    cbctx *c = ctx;
    if (c->victim && strcmp(path, c->victim) == 0) {
        FILE *fp = fopen(path, "ab");
        assert_non_null(fp);
        fputs("late write", fp);
        fclose(fp);
    }
}

static void test_optimize_and_read(void **state)
{
    fixture *f = *state;
    ddp_volume *v = NULL;
    assert_int_equal(ddp_volume_open(f->dir, DDP_OPEN_JOB, &v), S_OK);

    /* one job at a time */
    ddp_volume *second = NULL;
    assert_int_equal(ddp_volume_open(f->dir, DDP_OPEN_JOB, &second), DDP_E_JOB_ALREADY_RUNNING);
    assert_null(second);

    struct stat before2;
    assert_int_equal(stat(f->paths[2], &before2), 0);
    cbctx c = { f->paths[5], 0, S_OK, "" };
    ddp_job_callbacks cb = { on_problem, NULL, &c, on_chunked, NULL };
    ddp_job_stats st;
    assert_int_equal(ddp_optimize(v, 2, &cb, &st), S_OK);
    assert_int_equal(st.files_optimized, NFILES - 1);
    assert_int_equal(st.files_changed, 1);
    assert_int_equal(c.problems, 1);
    assert_int_equal(c.last_hr, DDP_E_FILE_IN_USE);
    assert_string_equal(c.last_path, f->paths[5]);

    /* the changed file is untouched (with the late write), the others are stubs */
    size_t n = 0;
    uint8_t *now5 = tu_read_file(f->paths[5], &n);
    assert_int_equal(n, f->size[5] + 10);
    assert_memory_equal(now5, f->data[5], f->size[5]);
    free(now5);
    for (int i = 0; i < NFILES; i++)
        if (i != 5) assert_true(is_stub_file(f->paths[i]));

    /* dedup: the shared 1 MiB base is stored once */
    assert_true(st.chunks_new < st.chunks_total);

    struct stat s1, s2;
    assert_int_equal(stat(f->paths[1], &s1), 0);
    assert_int_equal(s1.st_mode & 07777, 0640);
    assert_int_equal(stat(f->paths[2], &s2), 0);
    assert_int_equal(s2.st_mtim.tv_sec, before2.st_mtim.tv_sec);
    assert_int_equal(s2.st_mtim.tv_nsec, before2.st_mtim.tv_nsec);

    for (int i = 0; i < NFILES; i++)
        if (i != 5) read_back(v, f, i);

    ddp_status vs;
    assert_int_equal(ddp_volume_status(v, &vs), S_OK);
    assert_int_equal(vs.files_optimized, NFILES - 1);
    assert_true(vs.saved_bytes > 0);
    ddp_volume_close(v);

    /* a reader on its own (no job) */
    assert_int_equal(ddp_volume_open(f->dir, DDP_OPEN_READ, &v), S_OK);
    read_back(v, f, 3);
    ddp_volume_close(v);

    /* rehydrate one file, then the rest */
    assert_int_equal(ddp_volume_open(f->dir, DDP_OPEN_JOB, &v), S_OK);
    assert_int_equal(ddp_unoptimize_file(v, f->paths[2]), S_OK);
    assert_int_equal(ddp_unoptimize_file(v, f->paths[2]), S_FALSE);
    uint8_t *back = tu_read_file(f->paths[2], &n);
    assert_int_equal(n, f->size[2]);
    assert_memory_equal(back, f->data[2], n);
    free(back);
    assert_int_equal(stat(f->paths[2], &s2), 0);
    assert_int_equal(s2.st_mtim.tv_sec, before2.st_mtim.tv_sec);
    ddp_job_stats us;
    assert_int_equal(ddp_unoptimize_volume(v, NULL, &us), S_OK);
    assert_int_equal(us.files_optimized, NFILES - 2);
    for (int i = 0; i < NFILES; i++) {
        if (i == 5) continue;
        back = tu_read_file(f->paths[i], &n);
        assert_int_equal(n, f->size[i]);
        assert_memory_equal(back, f->data[i], n);
        free(back);
    }
    ddp_volume_close(v);
}

/* The same data optimized with 1 or 2 threads gives the same chunks. */
static void test_deterministic_across_threads(void **state)
{
    fixture *f = *state;
    ddp_job_stats a, b;
    ddp_volume *v = NULL;
    assert_int_equal(ddp_volume_open(f->dir, DDP_OPEN_JOB, &v), S_OK);
    assert_int_equal(ddp_optimize(v, 1, NULL, &a), S_OK);
    assert_int_equal(ddp_unoptimize_volume(v, NULL, NULL), S_OK);
    ddp_volume_close(v);
    /* a second pass finds every chunk already stored */
    assert_int_equal(ddp_volume_open(f->dir, DDP_OPEN_JOB, &v), S_OK);
    assert_int_equal(ddp_optimize(v, 2, NULL, &b), S_OK);
    ddp_volume_close(v);
    assert_int_equal(a.chunks_total, b.chunks_total);
    assert_int_equal(b.chunks_new, 0);
    assert_int_equal(a.files_optimized, b.files_optimized);
}

static void test_not_a_volume(void **state)
{
    (void)state;
    char *d = tu_mkdtemp();
    ddp_volume *v = NULL;
    assert_int_equal(ddp_volume_open(d, DDP_OPEN_READ, &v), DDP_E_VOLUME_DEDUP_DISABLED);
    assert_non_null(strstr(ddp_error_detail(), "not a ddp volume"));
    assert_int_equal(ddp_volume_enable(d, "Nonsense"), E_INVALIDARG);
    assert_int_equal(ddp_volume_enable(d, NULL), S_OK);
    assert_int_equal(ddp_volume_enable(d, NULL), HRESULT_FROM_WIN32(ERROR_ALREADY_EXISTS));
    assert_int_equal(ddp_volume_open(d, DDP_OPEN_READ, &v), S_OK);
    /* a read-only handle cannot run a job */
    assert_int_equal(ddp_optimize(v, 1, NULL, NULL), DDP_E_INVALID_STATE);
    ddp_volume_close(v);
    tu_rmrf(d);
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_optimize_and_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deterministic_across_threads, setup, teardown),
        cmocka_unit_test(test_not_a_volume),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
