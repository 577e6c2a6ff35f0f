/* SPDX-License-Identifier: MIT */
/*
 * test_compact.c: unit tests for compacted containers (store/redirect.h,
 * store/compact.h): the version-2 header, the redirection table's checks
 * on hostile bytes, and compaction itself: kept records are found by their
 * local ids in generation 2 and again in generation 3 (ids survive every
 * compaction), dropped ones are reported as garbage-collected, the bytes of
 * every kept record are unchanged, a damaged kept record fails the
 * compaction with nothing named, a taken name is ERROR_FILE_EXISTS, and a
 * container with nothing kept writes nothing (S_FALSE).
 */
#include <dirent.h>
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

#include "base/hash.h"
#include "base/util.h"
#include "store/catalog.h"
#include "store/compact.h"
#include "store/container.h"
#include "store/redirect.h"
#include "testutil.h"

#define NREC 40

typedef struct fixture {
    char *dir;
    char *path;                 /* generation 1 */
    uint64_t off[NREC];         /* = local ids */
    uint8_t hash[NREC][DDP_HASH_SIZE];
    uint8_t *data[NREC];
    uint32_t len[NREC];
    uint64_t end;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->dir = tu_mkdtemp();
    f->path = tu_xprintf("%s/00000007.00000001.ccc", f->dir);
    ddp_container_header h = { .kind = DDP_KIND_DATA, .id = 7, .generation = 1, .created = 1700000000 };
    for (int i = 0; i < DDP_STORE_ID_SIZE; i++) h.store_id[i] = (uint8_t)(i + 3);
    ddp_container_writer *w;
    assert_int_equal(ddp_container_create(f->path, &h, &w), S_OK);
    for (int i = 0; i < NREC; i++) {
        f->len[i] = 1000 + (uint32_t)i * 977;
        f->data[i] = malloc(f->len[i]);
        tu_fill_random(f->data[i], f->len[i], (uint64_t)i + 11);
        ddp_record_header rh = { .type = DDP_RECORD_CHUNK, .codec = 0 };
        rh.stored_len = rh.logical_len = f->len[i];
        ddp_sha256(f->data[i], f->len[i], rh.hash);
        memcpy(f->hash[i], rh.hash, DDP_HASH_SIZE);
        assert_int_equal(ddp_container_append(w, &rh, f->data[i], &f->off[i]), S_OK);
    }
    assert_int_equal(ddp_container_seal(w), S_OK);
    f->end = ddp_container_size(w);
    ddp_container_close(w);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    tu_rmrf(f->dir);
    for (int i = 0; i < NREC; i++) free(f->data[i]);
    free(f->dir);
    free(f->path);
    free(f);
    return 0;
}

/* keep ids whose record index (by id lookup in the fixture) passes a mask */
typedef struct keepset {
    const fixture *f;
    int mod, rem; /* keep index i when i % mod == rem ... */
    int also;     /* ... or i % also == 0 (0: no) */
    int calls;
} keepset;

static int index_of(const fixture *f, uint64_t id)
{
    for (int i = 0; i < NREC; i++)
        if (f->off[i] == id) return i;
    return -1;
}

static int keep_cb(void *ctx, const ddp_record_header *h, uint64_t id)
{
    keepset *k = ctx;
    k->calls++;
    int i = index_of(k->f, id);
    assert_true(i >= 0);
    assert_memory_equal(h->hash, k->f->hash[i], DDP_HASH_SIZE);
    return i % k->mod == k->rem;
}

static int keep_none(void *ctx, const ddp_record_header *h, uint64_t id)
{
    (void)ctx, (void)h, (void)id;
    return 0;
}

static int keep_all(void *ctx, const ddp_record_header *h, uint64_t id)
{
    (void)ctx, (void)h, (void)id;
    return 1;
}

/* Open generation g of container 7 in f->dir, check its header, load its table. */
static int open_gen(const fixture *f, uint32_t g, ddp_container_header *h, ddp_redirect *r)
{
    char *p = tu_xprintf("%s/00000007.%08X.ccc", f->dir, g);
    int fd = open(p, O_RDONLY);
    free(p);
    assert_true(fd >= 0);
    uint8_t hb[DDP_CONTAINER_HEADER_SIZE];
    assert_int_equal(pread(fd, hb, sizeof hb, 0), (ssize_t)sizeof hb);
    assert_int_equal(ddp_container_header_decode(hb, h), S_OK);
    assert_int_equal(ddp_get_le32(hb + 8), g > 1 ? 2 : 1);
    assert_int_equal(h->generation, g);
    assert_int_equal(ddp_redirect_load(fd, "test", h, r), S_OK);
    return fd;
}

/* Every record i with want[i] resolves by its id and reads back its bytes;
 * every other one is reported as collected. */
static void check_gen(const fixture *f, uint32_t g, const int *want)
{
    ddp_container_header h;
    ddp_redirect r;
    int fd = open_gen(f, g, &h, &r);
    for (int i = 0; i < NREC; i++) {
        uint64_t off;
        HRESULT hr = ddp_redirect_resolve(&r, f->off[i], "c7", &off);
        if (!want[i]) {
            assert_int_equal(hr, DDP_E_FILE_CORRUPT);
            assert_non_null(strstr(ddp_error_detail(), "garbage collection"));
            continue;
        }
        assert_int_equal(hr, S_OK);
        uint64_t back;
        assert_true(ddp_redirect_id_at(&r, off, &back));
        assert_true(back == f->off[i]);
        ddp_record_header rh;
        uint8_t *out = NULL;
        assert_int_equal(ddp_container_read_record(fd, "c7", off, DDP_RECORD_CHUNK, f->hash[i], &rh, &out), S_OK);
        assert_int_equal(rh.logical_len, f->len[i]);
        assert_memory_equal(out, f->data[i], f->len[i]);
        free(out);
    }
    /* The whole file scans clean: table, records, seal. */
    char *p = tu_xprintf("%s/00000007.%08X.ccc", f->dir, g);
    uint64_t end;
    assert_int_equal(ddp_container_scan(p, NULL, NULL, NULL, &end), S_OK);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_true(end == (uint64_t)st.st_size);
    free(p);
    ddp_redirect_free(&r);
    close(fd);
}

static int dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

static void test_compact_twice(void **state)
{
    fixture *f = *state;
    int dfd = open(f->dir, O_RDONLY | O_DIRECTORY);
    int src = open(f->path, O_RDONLY);
    keepset k = { .f = f, .mod = 2, .rem = 0 };
    ddp_compact_result res;
    assert_int_equal(ddp_container_compact(src, "c7", f->end, dfd, keep_cb, &k, &res), S_OK);
    close(src);
    assert_int_equal(k.calls, NREC);
    assert_int_equal(res.generation, 2);
    assert_int_equal(res.kept, NREC / 2);
    assert_int_equal(res.dropped, NREC / 2);
    int want[NREC];
    for (int i = 0; i < NREC; i++) want[i] = i % 2 == 0;
    check_gen(f, 2, want);
    /* The old generation is untouched (readers holding it keep reading). */
    assert_true(dir_entries(f->dir) == 2);

    /* Generation 2 -> 3, keeping every fourth: ids are still the first ones. */
    char *p2 = tu_xprintf("%s/00000007.00000002.ccc", f->dir);
    src = open(p2, O_RDONLY);
    struct stat st;
    assert_int_equal(fstat(src, &st), 0);
    keepset k2 = { .f = f, .mod = 4, .rem = 0 };
    assert_int_equal(ddp_container_compact(src, "c7g2", (uint64_t)st.st_size, dfd, keep_cb, &k2, &res), S_OK);
    assert_int_equal(k2.calls, NREC / 2); /* only the records generation 2 holds */
    assert_int_equal(res.generation, 3);
    for (int i = 0; i < NREC; i++) want[i] = i % 4 == 0;
    check_gen(f, 3, want);
    /* Once more into generation 3 (its name is taken now): refused, nothing left behind. */
    keepset k3 = { .f = f, .mod = 1, .rem = 0 };
    assert_int_equal(ddp_container_compact(src, "c7g2", (uint64_t)st.st_size, dfd, keep_cb, &k3, &res),
                     HRESULT_FROM_WIN32(ERROR_FILE_EXISTS));
    assert_true(dir_entries(f->dir) == 3);
    close(src);
    free(p2);
    close(dfd);
}

static void test_compact_nothing_kept(void **state)
{
    fixture *f = *state;
    int dfd = open(f->dir, O_RDONLY | O_DIRECTORY);
    int src = open(f->path, O_RDONLY);
    ddp_compact_result res;
    assert_int_equal(ddp_container_compact(src, "c7", f->end, dfd, keep_none, NULL, &res), S_FALSE);
    assert_int_equal(res.kept, 0);
    assert_int_equal(res.dropped, NREC);
    assert_true(dir_entries(f->dir) == 1);
    close(src);
    close(dfd);
}

static void test_compact_damaged_live_record(void **state)
{
    fixture *f = *state;
    /* Flip a payload byte of record 5 (a kept one): nothing may be named. */
    int fd = open(f->path, O_RDWR);
    uint8_t b;
    off_t at = (off_t)(f->off[5] + DDP_RECORD_HEADER_SIZE + 10);
    assert_int_equal(pread(fd, &b, 1, at), 1);
    b ^= 1;
    assert_int_equal(pwrite(fd, &b, 1, at), 1);
    close(fd);
    int dfd = open(f->dir, O_RDONLY | O_DIRECTORY);
    int src = open(f->path, O_RDONLY);
    ddp_compact_result res;
    assert_int_equal(ddp_container_compact(src, "c7", f->end, dfd, keep_all, NULL, &res), DDP_E_FILE_CORRUPT);
    assert_non_null(strstr(ddp_error_detail(), "payload checksum"));
    assert_true(dir_entries(f->dir) == 1);
    /* A damaged record that is dropped does not matter. */
    keepset k = { .f = f, .mod = 2, .rem = 0 }; /* 5 is odd: dropped */
    assert_int_equal(ddp_container_compact(src, "c7", f->end, dfd, keep_cb, &k, &res), S_OK);
    close(src);
    close(dfd);
}

static void test_header_v2(void **state)
{
    (void)state;
    ddp_container_header h = { .kind = DDP_KIND_STREAM, .id = 3, .generation = 2, .created = 5, .redirect_len = 32 };
    uint8_t b[DDP_CONTAINER_HEADER_SIZE], c[DDP_CONTAINER_HEADER_SIZE];
    ddp_container_header_encode(&h, b);
    assert_int_equal(ddp_get_le32(b + 8), 2);
    assert_true(ddp_get_le64(b + 48) == 32);
    ddp_container_header d;
    assert_int_equal(ddp_container_header_decode(b, &d), S_OK);
    assert_true(d.redirect_len == 32);
    /* Hostile lengths: not a multiple of 16, zero in version 2, too long, generation 1. */
    const uint64_t bad_len[] = { 0, 17, DDP_REDIRECT_MAX_LEN + 16 };
    for (size_t i = 0; i < sizeof bad_len / sizeof *bad_len; i++) {
        memcpy(c, b, sizeof c);
        ddp_put_le64(c + 48, bad_len[i]);
        ddp_put_le64(c + 56, ddp_checksum64(c, 56));
        assert_int_equal(ddp_container_header_decode(c, &d), DDP_E_FILE_CORRUPT);
    }
    memcpy(c, b, sizeof c);
    ddp_put_le32(c + 36, 1);
    ddp_put_le64(c + 56, ddp_checksum64(c, 56));
    assert_int_equal(ddp_container_header_decode(c, &d), DDP_E_FILE_CORRUPT);
    /* Version 1 with a table length is damage, version 3 unsupported. */
    memcpy(c, b, sizeof c);
    ddp_put_le32(c + 8, 1);
    ddp_put_le64(c + 56, ddp_checksum64(c, 56));
    assert_int_equal(ddp_container_header_decode(c, &d), DDP_E_FILE_CORRUPT);
    ddp_put_le32(c + 8, 3);
    ddp_put_le64(c + 56, ddp_checksum64(c, 56));
    assert_int_equal(ddp_container_header_decode(c, &d), DDP_E_UNSUPPORTED_VERSION);
}

static void test_table_decode_hostile(void **state)
{
    (void)state;
    uint64_t ids[3] = { 64, 500, 9000 };
    uint64_t len = 3 * DDP_REDIRECT_ENTRY_SIZE;
    uint64_t first = DDP_REDIRECT_FIRST_RECORD(len);
    uint64_t offs[3] = { first, first + 100, first + 200 };
    uint8_t buf[3 * DDP_REDIRECT_ENTRY_SIZE];
    ddp_redirect r;
    ddp_redirect_encode(ids, offs, 3, buf);
    assert_int_equal(ddp_redirect_decode(buf, sizeof buf, first + 400, "t", &r), S_OK);
    uint64_t off;
    assert_int_equal(ddp_redirect_resolve(&r, 500, "t", &off), S_OK);
    assert_true(off == first + 100);
    assert_int_equal(ddp_redirect_resolve(&r, 501, "t", &off), DDP_E_FILE_CORRUPT);
    assert_int_equal(ddp_redirect_resolve(&r, 1, "t", &off), DDP_E_FILE_CORRUPT);
    assert_int_equal(ddp_redirect_resolve(&r, UINT64_MAX, "t", &off), DDP_E_FILE_CORRUPT);
    ddp_redirect_free(&r);
    /* Past the file's end. */
    assert_int_equal(ddp_redirect_decode(buf, sizeof buf, first + 250, "t", &r), DDP_E_FILE_CORRUPT);
    struct {
        uint64_t ids[3], offs[3];
    } bad[] = {
        { { 64, 64, 9000 }, { first, first + 100, first + 200 } },       /* ids repeat */
        { { 64, 500, 100 }, { first, first + 100, first + 200 } },       /* ids decrease */
        { { 8, 500, 9000 }, { first, first + 100, first + 200 } },       /* id inside the header */
        { { 64, 500, 9000 }, { first + 1, first + 100, first + 200 } },  /* first not after the table */
        { { 64, 500, 9000 }, { first, first + 10, first + 200 } },       /* overlapping records */
        { { 64, 500, 9000 }, { first, first + 200, first + 100 } },      /* offsets decrease */
        { { 64, 500, 9000 }, { first, first + 100, UINT64_MAX - 8 } },   /* overflow */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ddp_redirect_encode(bad[i].ids, bad[i].offs, 3, buf);
        assert_int_equal(ddp_redirect_decode(buf, sizeof buf, UINT64_MAX, "t", &r), DDP_E_FILE_CORRUPT);
        assert_null(r.ids);
    }
    assert_int_equal(ddp_redirect_decode(buf, 0, UINT64_MAX, "t", &r), DDP_E_FILE_CORRUPT);
    assert_int_equal(ddp_redirect_decode(buf, 17, UINT64_MAX, "t", &r), DDP_E_FILE_CORRUPT);
    /* The identity table of a version-1 container. */
    ddp_redirect id = { 0 };
    assert_int_equal(ddp_redirect_resolve(&id, 4242, "t", &off), S_OK);
    assert_true(off == 4242);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_v2),
        cmocka_unit_test(test_table_decode_hostile),
        cmocka_unit_test_setup_teardown(test_compact_twice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compact_nothing_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compact_damaged_live_record, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
