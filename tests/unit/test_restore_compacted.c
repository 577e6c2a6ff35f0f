/* SPDX-License-Identifier: MIT */
/*
 * test_restore_compacted.c: RestoreFiles (R1-R10, SPEC-backup-api.md) over
 * a backup of a compacted chunk store (docs/FORMAT.md, "Compacted
 * containers"): stubs and stream maps name records by local ids, which only
 * the redirection table of each container's current generation maps to
 * offsets.
 *
 * A real volume is optimized (1 MiB containers, so there are several),
 * then its containers are compacted the way gc does it (store/compact.h:
 * every record kept, so every reference goes through a table, or one record
 * dropped), the catalog is rewritten to the new generations and the old
 * files are removed. The volume then plays the backup (the recording store
 * of rsrecord.h serves its files) and the stubs are copied to a target
 * directory, as a backup application restores them.
 *
 * Checked: every file comes back byte for byte, without a plan and with
 * plans of small scrambled pieces (a table straddles extents), and the
 * recorded calls keep R5-R7 (the header and table are container reads:
 * previewed, inside the plan, never a byte twice); a container of
 * generation 1 costs no extra read; ddp_restore_plan_list lists the header
 * and table reads; hostile backups fail the files that need the damaged
 * container, with DDP_E_FILE_CORRUPT and their stubs intact, and restore
 * the others: a damaged table, a header claiming a huge table, a stub
 * naming a garbage-collected record.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ddp/ddp.h>
#include <ddp/ddpbackup.h>

#include "base/hash.h"
#include "base/util.h"
#include "restore/restore.h"
#include "store/catalog.h"
#include "store/compact.h"
#include "store/container.h"
#include "store/identity.h"
#include "store/redirect.h"
#include "store/stub.h"
#include "rsrecord.h"
#include "testutil.h"

#define KiB ((size_t)1024)
#define NF 6

typedef struct fixture {
    char *root, *vol, *target, *store_dir;
    char *src[NF], *dst[NF];
    uint8_t *data[NF];
    size_t len[NF];
    ddp_catalog cat; /* after compaction */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->root = tu_mkdtemp();
    f->vol = tu_xprintf("%s/vol", f->root);
    f->target = tu_xprintf("%s/target", f->root);
    tu_mkdirs(f->vol);
    tu_mkdirs(f->target);
    /* Files 0..3 share a base; 4 and 5 are their own. */
    uint8_t *base = malloc(600 * KiB);
    assert_non_null(base);
    tu_fill_random(base, 600 * KiB, 77);
    for (int i = 0; i < NF; i++) {
        f->len[i] = i < 4 ? 600 * KiB + (size_t)i * 70001 : 900 * KiB + (size_t)i;
        f->data[i] = malloc(f->len[i]);
        assert_non_null(f->data[i]);
        if (i < 4) {
            memcpy(f->data[i], base, 600 * KiB);
            tu_fill_random(f->data[i] + 600 * KiB, f->len[i] - 600 * KiB, 100 + (uint64_t)i);
        } else {
            tu_fill_random(f->data[i], f->len[i], 200 + (uint64_t)i);
        }
        f->src[i] = tu_xprintf("%s/file%d", f->vol, i);
        f->dst[i] = tu_xprintf("%s/file%d", f->target, i);
        tu_write_file(f->src[i], f->data[i], f->len[i]);
    }
    free(base);
    assert_int_equal(ddp_volume_enable(f->vol, "Backup"), S_OK);
    ddp_volume *v = NULL;
    assert_int_equal(ddp_volume_open(f->vol, DDP_OPEN_JOB, &v), S_OK);
    assert_int_equal(ddp_volume_set(v, "container_size_limit", "1M"), S_OK);
    ddp_job_stats js;
    assert_int_equal(ddp_optimize(v, 1, NULL, &js), S_OK);
    assert_int_equal(js.files_optimized, NF);
    ddp_volume_close(v);
    /* The store directory: the only directory of .ddp/ChunkStore. */
    size_t n = 0;
    char *idp = tu_xprintf("%s/.ddp/Settings/identity", f->vol);
    uint8_t *idbuf = tu_read_file(idp, &n);
    free(idp);
    assert_non_null(idbuf);
    ddp_identity id;
    assert_int_equal(ddp_identity_decode(idbuf, n, &id), S_OK);
    free(idbuf);
    char guid[39];
    ddp_guid_format(id.store_id, guid);
    f->store_dir = tu_xprintf("%s/.ddp/ChunkStore/%s.ddp", f->vol, guid);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    tu_rmrf(f->root);
    for (int i = 0; i < NF; i++) {
        free(f->src[i]);
        free(f->dst[i]);
        free(f->data[i]);
    }
    ddp_catalog_free(&f->cat);
    free(f->root);
    free(f->vol);
    free(f->target);
    free(f->store_dir);
    free(f);
    return 0;
}

static void read_catalog(const fixture *f, ddp_catalog *cat)
{
    char *p = tu_xprintf("%s/catalog", f->store_dir);
    size_t n = 0;
    uint8_t *b = tu_read_file(p, &n);
    free(p);
    assert_non_null(b);
    assert_int_equal(ddp_catalog_decode(b, n, cat), S_OK);
    free(b);
}

static char *cont_path(const fixture *f, uint32_t kind, uint32_t id, uint32_t gen)
{
    char rel[40];
    ddp_container_relpath(kind, id, gen, rel);
    return tu_xprintf("%s/%s", f->store_dir, rel);
}

/* ---- compaction, as gc does it ---- */

typedef struct drop { uint32_t kind, id; uint64_t local; } drop;
typedef struct keep_ctx { uint32_t kind, id; const drop *d; } keep_ctx;

static int keep_fn(void *ctx, const ddp_record_header *h, uint64_t id)
{
    (void)h;
    const keep_ctx *k = ctx;
    return !(k->d && k->d->kind == k->kind && k->d->id == k->id && k->d->local == id);
}

/* Compact every data and stream container (only: that kind, 0 = both;
 * skip_id: leave that data container at generation 1), dropping d. */
static void compact(fixture *f, uint32_t only, uint32_t skip_data_id, const drop *d)
{
    ddp_catalog cat;
    read_catalog(f, &cat);
    for (uint32_t i = 0; i < cat.count; i++) {
        ddp_catalog_entry *e = &cat.entries[i];
        if (e->kind != DDP_KIND_DATA && e->kind != DDP_KIND_STREAM) continue;
        if (only && e->kind != only) continue;
        if (e->kind == DDP_KIND_DATA && e->id == skip_data_id) continue;
        char *path = cont_path(f, e->kind, e->id, e->generation);
        char *dir = tu_xprintf("%s/%s", f->store_dir, e->kind == DDP_KIND_DATA ? "Data" : "Stream");
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(fd >= 0 && dfd >= 0);
        keep_ctx kc = { e->kind, e->id, d };
        ddp_compact_result res;
        assert_int_equal(ddp_container_compact(fd, path, e->length, dfd, keep_fn, &kc, &res), S_OK);
        close(fd);
        close(dfd);
        assert_int_equal(unlink(path), 0);
        free(path);
        free(dir);
        e->generation = res.generation;
        e->flags |= 1u;
        e->length = res.new_len;
    }
    uint8_t *enc;
    size_t n;
    assert_int_equal(ddp_catalog_encode(&cat, &enc, &n), S_OK);
    char *p = tu_xprintf("%s/catalog", f->store_dir);
    assert_int_equal(ddp_write_file_atomic(p, enc, n, 0600), S_OK);
    free(p);
    free(enc);
    ddp_catalog_free(&f->cat);
    f->cat = cat;
}

/* The backup application puts the stubs in the target, with their metadata. */
static void place_stubs(fixture *f)
{
    for (int i = 0; i < NF; i++) {
        size_t n = 0;
        uint8_t *stub = tu_read_file(f->src[i], &n);
        assert_non_null(stub);
        assert_int_equal(n, DDP_STUB_SIZE);
        (void)unlink(f->dst[i]);
        tu_write_file(f->dst[i], stub, n);
        free(stub);
    }
}

static ddp_stub stub_of(const fixture *f, int i)
{
    size_t n = 0;
    uint8_t *b = tu_read_file(f->src[i], &n);
    assert_non_null(b);
    ddp_stub s;
    assert_int_equal(ddp_stub_peek(b, n, &s), S_OK);
    free(b);
    return s;
}

static HRESULT restore(fixture *f, rstore *s, HRESULT *res)
{
    IDedupBackupSupport *bs = NULL;
    assert_int_equal(DedupCreateBackupSupport(&bs), S_OK);
    HRESULT hr = IDedupBackupSupport_RestoreFiles(bs, NF, f->dst, &s->iface, DEDUP_RECONSTRUCT_UNOPTIMIZED, res);
    assert_int_equal(IDedupBackupSupport_Release(bs), 0);
    return hr;
}

static void assert_restored(const fixture *f, int i)
{
    size_t n = 0;
    uint8_t *b = tu_read_file(f->dst[i], &n);
    assert_non_null(b);
    assert_int_equal(n, f->len[i]);
    assert_memory_equal(b, f->data[i], n);
    free(b);
}

static void assert_stub_left(const fixture *f, int i)
{
    size_t n = 0, m = 0;
    uint8_t *b = tu_read_file(f->dst[i], &n);
    uint8_t *a = tu_read_file(f->src[i], &m);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(n, DDP_STUB_SIZE);
    assert_memory_equal(a, b, n);
    free(a);
    free(b);
}

/* Was offset 0 of a container of generation gen read? */
static size_t reads_at(const rstore *s, const char *sub, int64_t off)
{
    size_t n = 0;
    for (size_t i = 0; i < s->nev; i++)
        if (s->evs[i].type == RS_READ && s->evs[i].off == off && strstr(s->evs[i].path, sub)) n++;
    return n;
}

/* ---- the tests ---- */

static void restore_all_checked(fixture *f, rs_plan_fn plan, int arg)
{
    place_stubs(f);
    rstore s;
    rs_init(&s, f->vol, 0);
    s.plan = plan;
    s.plan_arg = arg;
    HRESULT res[NF];
    HRESULT hr = restore(f, &s, res);
    if (hr != S_OK) fprintf(stderr, "restore: 0x%08X %s\n", (unsigned)hr, ddp_error_detail());
    assert_int_equal(hr, S_OK);
    for (int i = 0; i < NF; i++) {
        assert_int_equal(res[i], S_OK);
        assert_restored(f, i);
    }
    rs_check_sequence(&s, 2);
    /* Every compacted container's header (offset 0) and table (offset 64)
     * were read: once each. */
    for (uint32_t i = 0; i < f->cat.count; i++) {
        const ddp_catalog_entry *e = &f->cat.entries[i];
        if (e->kind != DDP_KIND_DATA && e->kind != DDP_KIND_STREAM) continue;
        char rel[40];
        ddp_container_relpath(e->kind, e->id, e->generation, rel);
        size_t at0 = reads_at(&s, rel, 0);
        if (e->generation >= 2) {
            assert_int_equal(at0, 1);
            assert_int_equal(reads_at(&s, rel, 64), 1);
        } else {
            assert_int_equal(at0, 0); /* generation 1: no read more than before */
        }
    }
    rs_free(&s);
}

static void test_restore_compacted_all(void **state)
{
    fixture *f = *state;
    compact(f, 0, 0, NULL);
    uint32_t ndata = 0;
    for (uint32_t i = 0; i < f->cat.count; i++) ndata += f->cat.entries[i].kind == DDP_KIND_DATA;
    assert_true(ndata >= 3);
    restore_all_checked(f, NULL, 0);
    restore_all_checked(f, rs_plan_scrambled, 0);
    restore_all_checked(f, rs_plan_scrambled, 100);  /* tables straddle extents */
    restore_all_checked(f, rs_plan_scrambled, 4096);
}

static void test_restore_partly_compacted(void **state)
{
    fixture *f = *state;
    /* Data container 2 stays at generation 1; the stream containers too. */
    compact(f, DDP_KIND_DATA, 2, NULL);
    restore_all_checked(f, NULL, 0);
    restore_all_checked(f, rs_plan_scrambled, 777);
}

static void test_compacted_twice(void **state)
{
    fixture *f = *state;
    compact(f, 0, 0, NULL);
    compact(f, 0, 0, NULL); /* generation 3: the ids of generation 1 still hold */
    for (uint32_t i = 0; i < f->cat.count; i++)
        if (f->cat.entries[i].kind != DDP_KIND_HOTSPOT) assert_int_equal(f->cat.entries[i].generation, 3);
    restore_all_checked(f, rs_plan_scrambled, 5000);
}

/* The files restored, failed (with hr and the stub left) by mask. */
static void expect_results(fixture *f, rstore *s, unsigned failed_mask, HRESULT fail_hr)
{
    HRESULT res[NF];
    HRESULT hr = restore(f, s, res);
    assert_int_equal(hr, failed_mask == (1u << NF) - 1 ? fail_hr : DDP_E_JOB_COMPLETED_PARTIAL_SUCCESS);
    for (int i = 0; i < NF; i++) {
        if (failed_mask & (1u << i)) {
            assert_int_equal(res[i], fail_hr);
            assert_stub_left(f, i);
        } else {
            assert_int_equal(res[i], S_OK);
            assert_restored(f, i);
        }
    }
    rs_check_sequence(s, 2);
}

/* Which files have a chunk in data container id (by their stream maps,
 * read before the compaction through ddp_cat's reader: here, by restoring
 * with the container missing). */
static unsigned users_of_data(fixture *f, uint32_t kind, uint32_t id, uint32_t gen)
{
    place_stubs(f);
    rstore s;
    rs_init(&s, f->vol, 0);
    char rel[40];
    ddp_container_relpath(kind, id, gen, rel);
    s.fail_sub = rel;
    s.fail_hr = HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND);
    HRESULT res[NF];
    (void)restore(f, &s, res);
    unsigned mask = 0;
    for (int i = 0; i < NF; i++) {
        if (res[i] == DDP_E_PATH_NOT_FOUND) mask |= 1u << i;
        else assert_int_equal(res[i], S_OK);
    }
    rs_free(&s);
    return mask;
}

static void test_hostile_table(void **state)
{
    fixture *f = *state;
    compact(f, 0, 0, NULL);
    const ddp_catalog_entry *d1 = ddp_catalog_find(&f->cat, DDP_KIND_DATA, 1);
    assert_non_null(d1);
    unsigned users = users_of_data(f, DDP_KIND_DATA, 1, d1->generation);
    assert_true(users != 0 && users != (1u << NF) - 1);
    char *path = cont_path(f, DDP_KIND_DATA, 1, d1->generation);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);

    /* 1. A byte of the table flipped: its checksum fails. */
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, 128 + 8), 1);
    b ^= 0x40;
    assert_int_equal(pwrite(fd, &b, 1, 128 + 8), 1);
    place_stubs(f);
    rstore s;
    rs_init(&s, f->vol, 0);
    expect_results(f, &s, users, DDP_E_FILE_CORRUPT);
    rs_free(&s);
    b ^= 0x40;
    assert_int_equal(pwrite(fd, &b, 1, 128 + 8), 1);

    /* 2. A table whose checksums hold but whose entries do not (an offset
     *    out of order): the decoder refuses it. */
    uint8_t hb[DDP_CONTAINER_HEADER_SIZE];
    assert_int_equal(pread(fd, hb, sizeof hb, 0), (ssize_t)sizeof hb);
    ddp_container_header h;
    assert_int_equal(ddp_container_header_decode(hb, &h), S_OK);
    size_t tl = (size_t)h.redirect_len;
    uint8_t *rec = malloc(64 + tl), *orig = malloc(64 + tl);
    assert_non_null(rec);
    assert_non_null(orig);
    assert_int_equal(pread(fd, rec, 64 + tl, 64), (ssize_t)(64 + tl));
    memcpy(orig, rec, 64 + tl);
    assert_true(tl >= 32);
    ddp_put_le64(rec + 64 + 16 + 8, ddp_get_le64(rec + 64 + 8) + 1); /* entry 1's offset: inside record 0 */
    ddp_record_header rh;
    assert_int_equal(ddp_record_header_decode(rec, &rh), S_OK);
    ddp_sha256(rec + 64, tl, rh.hash);
    ddp_record_header_encode(&rh, rec + 64, rec);
    assert_int_equal(pwrite(fd, rec, 64 + tl, 64), (ssize_t)(64 + tl));
    place_stubs(f);
    rs_init(&s, f->vol, 0);
    expect_results(f, &s, users, DDP_E_FILE_CORRUPT);
    rs_free(&s);
    assert_int_equal(pwrite(fd, orig, 64 + tl, 64), (ssize_t)(64 + tl));

    /* 3. A header claiming a huge table (2^28 bytes, the format's limit):
     *    refused from the header alone, nothing more of it read. */
    ddp_container_header big = h;
    big.redirect_len = DDP_REDIRECT_MAX_LEN;
    uint8_t bb[DDP_CONTAINER_HEADER_SIZE];
    ddp_container_header_encode(&big, bb);
    assert_int_equal(pwrite(fd, bb, sizeof bb, 0), (ssize_t)sizeof bb);
    place_stubs(f);
    rs_init(&s, f->vol, 0);
    s.plan = rs_plan_scrambled;
    expect_results(f, &s, users, DDP_E_FILE_CORRUPT);
    char rel[40];
    ddp_container_relpath(DDP_KIND_DATA, 1, d1->generation, rel);
    assert_int_equal(rs_count(&s, RS_READ, rel), 1); /* the header only */
    rs_free(&s);

    /* 4. The header of another container (its id changed, checksum good). */
    ddp_container_header other = h;
    other.id = 99;
    ddp_container_header_encode(&other, bb);
    assert_int_equal(pwrite(fd, bb, sizeof bb, 0), (ssize_t)sizeof bb);
    place_stubs(f);
    rs_init(&s, f->vol, 0);
    expect_results(f, &s, users, DDP_E_FILE_CORRUPT);
    rs_free(&s);

    /* 5. The container truncated inside its table. */
    assert_int_equal(pwrite(fd, hb, sizeof hb, 0), (ssize_t)sizeof hb);
    assert_int_equal(ftruncate(fd, 64 + 64 + (off_t)tl / 2), 0);
    place_stubs(f);
    rs_init(&s, f->vol, 0);
    expect_results(f, &s, users, DDP_E_FILE_CORRUPT);
    rs_free(&s);

    close(fd);
    free(rec);
    free(orig);
    free(path);
}

static void test_collected_record(void **state)
{
    fixture *f = *state;
    /* File 5's stream map is garbage-collected from its container. */
    ddp_stub st = stub_of(f, 5);
    drop d = { DDP_KIND_STREAM, st.stream_container, st.stream_offset };
    compact(f, 0, 0, &d);
    place_stubs(f);
    rstore s;
    rs_init(&s, f->vol, 0);
    s.plan = rs_plan_scrambled;
    expect_results(f, &s, 1u << 5, DDP_E_FILE_CORRUPT);
    rs_free(&s);
}

static void test_collected_chunk(void **state)
{
    fixture *f = *state;
    /* The first chunk record of data container 1 is dropped: every file
     * that uses it fails (its id is not in the table), the others restore. */
    ddp_catalog cat;
    read_catalog(f, &cat);
    const ddp_catalog_entry *e = ddp_catalog_find(&cat, DDP_KIND_DATA, 1);
    assert_non_null(e);
    assert_int_equal(e->generation, 1);
    ddp_catalog_free(&cat);
    unsigned users_all = users_of_data(f, DDP_KIND_DATA, 1, 1);
    drop d = { DDP_KIND_DATA, 1, DDP_CONTAINER_HEADER_SIZE };
    compact(f, 0, 0, &d);
    place_stubs(f);
    rstore s;
    rs_init(&s, f->vol, 0);
    HRESULT res[NF];
    HRESULT hr = restore(f, &s, res);
    unsigned failed = 0;
    for (int i = 0; i < NF; i++) {
        if (res[i] == S_OK) {
            assert_restored(f, i);
        } else {
            assert_int_equal(res[i], DDP_E_FILE_CORRUPT);
            assert_stub_left(f, i);
            failed |= 1u << i;
        }
    }
    assert_true(failed != 0);
    assert_int_equal(failed & ~users_all, 0);
    assert_true(hr == DDP_E_JOB_COMPLETED_PARTIAL_SUCCESS || hr == DDP_E_FILE_CORRUPT);
    rs_check_sequence(&s, 2);
    rs_free(&s);
}

typedef struct listed { size_t n, at0; } listed;

static void on_emit(void *ctx, int kind, const char *path, uint64_t off, uint64_t len)
{
    (void)kind;
    (void)path;
    listed *l = ctx;
    assert_true(len > 0);
    l->n++;
    l->at0 += off == 0;
}

static void test_plan_list(void **state)
{
    fixture *f = *state;
    compact(f, 0, 0, NULL);
    place_stubs(f);
    rstore s;
    rs_init(&s, f->vol, 0);
    listed l = { 0 };
    HRESULT res[NF];
    assert_int_equal(ddp_restore_plan_list(NF, f->dst, &s.iface, on_emit, &l, res), S_OK);
    size_t ncompacted = 0;
    for (uint32_t i = 0; i < f->cat.count; i++) ncompacted += f->cat.entries[i].generation >= 2;
    /* Each compacted container's reads begin at 0 (header, then table). */
    assert_int_equal(l.at0, ncompacted);
    rs_check_sequence(&s, 0);
    rs_free(&s);
    for (int i = 0; i < NF; i++) assert_stub_left(f, i);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_restore_compacted_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore_partly_compacted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compacted_twice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_collected_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_collected_chunk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plan_list, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
