/* SPDX-License-Identifier: MIT */
/*
 * test_scrub.c: integrity scrubbing and hotspot copies through the library
 * API (lib/scrub.c, lib/hotspot.c, docs/MAINTENANCE.md). Bytes are flipped
 * in a chunk payload, a record header, a stream-map payload and stubs; scrub
 * must report each, at the right container and offset, with exactly the
 * files that reference the damage. With hotspot_threshold 2, chunks shared
 * by several files get a copy in Hotspot/; --repair mends a damaged primary
 * (payload or header) from it and a damaged copy from its primary, mends a
 * stub with one damaged byte, retires damage no file uses, and says what it
 * could not mend (a chunk with no other copy). Garbage collection retires
 * hotspot copies that nothing references any more.
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
#include "store/catalog.h"
#include "store/chunkstore.h"
#include "store/container.h"
#include "store/storewalk.h"
#include "volume/maintenance.h"
#include "store/streammap.h"
#include "store/stub.h"
#include "testutil.h"
#include "base/util.h"
#include "volume/volume.h"

#define NF 5
#define BASE (256 * 1024)

typedef struct fixture {
    char *dir;
    char *path[NF];
    uint8_t *data[NF];
    size_t size[NF];
} fixture;

/* f0..f3: a shared base + a unique tail; f4: unique. hotspot: threshold 2. */
static int setup_with(void **state, int hotspot)
{
    fixture *f = calloc(1, sizeof *f);
    char *d = tu_mkdtemp();
    f->dir = realpath(d, NULL);
    free(d);
    const tu_versions spec = { "s", BASE, 128 * 1024, 100, 300 * 1024, 99, 200, 300 };
    tu_write_versions(f->dir, &spec, NF, f->path, f->data, f->size);
    tu_optimize_volume(f->dir, hotspot ? "2" : NULL, NF);
    *state = f;
    return 0;
}

static int setup(void **state) { return setup_with(state, 0); }
static int setup_hot(void **state) { return setup_with(state, 1); }

static int teardown(void **state)
{
    fixture *f = *state;
    tu_rmrf(f->dir);
    for (int i = 0; i < NF; i++) {
        free(f->path[i]);
        free(f->data[i]);
    }
    free(f->dir);
    free(f);
    return 0;
}

static int read_ok(ddp_volume *v, const fixture *f, int i)
{
    ddp_file *h = NULL;
    if (FAILED(ddp_file_open(v, f->path[i], &h))) return 0;
    uint8_t *buf = malloc(f->size[i]);
    size_t got = 0;
    int ok = ddp_file_size(h) == f->size[i] && SUCCEEDED(ddp_file_pread(h, buf, f->size[i], 0, &got)) &&
             got == f->size[i] && memcmp(buf, f->data[i], got) == 0;
    free(buf);
    ddp_file_close(h);
    ddp_clear_error();
    return ok;
}

/* The stub and stream map of file i. */
static void map_of(ddp_volume *v, const fixture *f, int i, ddp_stub *s, ddp_streammap *m)
{
    assert_int_equal(ddp_volume_read_stub(v, -1, f->path[i], s), S_OK);
    ddp_chunkstore *cs = NULL;
    assert_int_equal(ddp_volume_store(v, &cs), S_OK);
    assert_int_equal(ddp_chunkstore_read_streammap(cs, s->stream_container, s->stream_offset, s->streammap_hash, m),
                     S_OK);
}

static char *container_path(ddp_volume *v, uint32_t kind, uint32_t id)
{
    char rel[40];
    ddp_container_relpath(kind, id, 1, rel);
    return ddp_path_join(v->store_dir, rel);
}

static void flip(const char *path, uint64_t off)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
    b ^= 0x5A;
    assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
    close(fd);
}

/* The files (indexes) whose stream maps name (container, offset). */
static int referencing(ddp_volume *v, const fixture *f, uint32_t container, uint64_t off, int out[NF])
{
    int n = 0;
    for (int i = 0; i < NF; i++) {
        ddp_stub s;
        ddp_streammap m;
        map_of(v, f, i, &s, &m);
        for (uint32_t k = 0; k < m.count; k++)
            if (m.entries[k].loc.container == container && m.entries[k].loc.offset == off) {
                out[n++] = i;
                break;
            }
        ddp_streammap_free(&m);
    }
    return n;
}

/* The report's item at (file, offset), or fail. */
static const ddp_scrub_item *item_at(const ddp_scrub_report *r, const char *file, uint64_t off)
{
    for (size_t i = 0; i < r->count; i++)
        if (strcmp(r->items[i].file, file) == 0 && r->items[i].offset == off) return &r->items[i];
    for (size_t i = 0; i < r->count; i++)
        print_message("item: %s @%llu: %s\n", r->items[i].file, (unsigned long long)r->items[i].offset,
                      r->items[i].what);
    fail_msg("no damage reported at %s offset %llu", file, (unsigned long long)off);
    return NULL;
}

static void dump(const ddp_scrub_report *r)
{
    for (size_t i = 0; i < r->count; i++) {
        print_message("item %zu: %s @%llu: %s [%s]", i, r->items[i].file, (unsigned long long)r->items[i].offset,
                      r->items[i].what, r->items[i].repair);
        for (size_t k = 0; k < r->items[i].nfiles; k++) print_message(" %s", r->items[i].files[k]);
        print_message("\n");
    }
}

static void expect_files(const fixture *f, const ddp_scrub_item *it, const int *idx, int n)
{
    if ((int)it->nfiles != n) fail_msg("%zu files reported, %d expected (%s)", it->nfiles, n, it->what);
    for (int k = 0; k < n; k++) {
        int found = 0;
        for (size_t j = 0; j < it->nfiles; j++) found |= strcmp(it->files[j], f->path[idx[k]]) == 0;
        if (!found) fail_msg("%s is not reported as affected", f->path[idx[k]]);
    }
}

static void test_clean(void **state)
{
    fixture *f = *state;
    ddp_volume *v = NULL;
    assert_int_equal(ddp_volume_open(f->dir, DDP_OPEN_JOB, &v), S_OK);
    ddp_scrub_report r;
    assert_int_equal(ddp_scrub(v, 0, NULL, &r), S_OK);
    assert_int_equal(r.damaged, 0);
    assert_int_equal(r.count, 0);
    assert_int_equal(r.stubs, NF);
    assert_int_equal(r.stream_maps, NF);
    assert_true(r.containers >= 2);
    assert_true(r.records > NF);
    assert_true(r.bytes_checked > 0);
    ddp_scrub_report_free(&r);
    /* The default threshold (100): no hotspot copies. */
    ddp_mstore ms;
    ddp_hotset hs;
    assert_int_equal(ddp_mstore_load(v->store_dir, v->id.store_id, &ms), S_OK);
    assert_int_equal(ddp_hotset_load(&ms, &hs), S_OK);
    assert_int_equal(hs.n, 0);
    ddp_hotset_free(&hs);
    ddp_mstore_free(&ms);
    ddp_status st;
    assert_int_equal(ddp_volume_status(v, &st), S_OK);
    assert_non_null(strstr(st.last_scrub, " scrub 0x00000000 "));
    ddp_volume_close(v);
}

/* One flipped byte each in: a unique chunk's payload (f4), a shared chunk's
 * header (f0..f3), a stream map's payload (f1), two stubs (f2: in its MAC,
 * f3: in its fields). */
static void test_damage_found(void **state)
{
    fixture *f = *state;
    ddp_volume *v = NULL;
    assert_int_equal(ddp_volume_open(f->dir, DDP_OPEN_JOB, &v), S_OK);
    ddp_stub s;
    ddp_streammap m4, m0, m1;
    map_of(v, f, 4, &s, &m4);
    map_of(v, f, 0, &s, &m0);
    map_of(v, f, 1, &s, &m1);
    const ddp_chunk_loc unique = m4.entries[1].loc;
    const ddp_chunk_loc shared = m0.entries[0].loc;
    int refs[NF];
    assert_int_equal(referencing(v, f, unique.container, unique.offset, refs), 1);
    assert_int_equal(referencing(v, f, shared.container, shared.offset, refs), 4);
    /* f1's stream map is damaged too, so scrub cannot know f1 uses it;
     * f2 and f3 are named although their stubs do not authenticate. */
    int shared_refs[3] = { 0, 2, 3 };
    char *dpath = container_path(v, DDP_KIND_DATA, unique.container);
    flip(dpath, unique.offset + 64 + unique.stored_len / 2);
    char *spath = container_path(v, DDP_KIND_DATA, shared.container);
    flip(spath, shared.offset + 20); /* in the record's hash */
    ddp_stub s1;
    assert_int_equal(ddp_volume_read_stub(v, -1, f->path[1], &s1), S_OK);
    char *mpath = container_path(v, DDP_KIND_STREAM, s1.stream_container);
    flip(mpath, s1.stream_offset + 64 + 60); /* in the first entry */
    flip(f->path[2], 210);                   /* the MAC */
    flip(f->path[3], 130);                   /* the file size */
    ddp_volume_close(v);

    assert_int_equal(ddp_volume_open(f->dir, DDP_OPEN_JOB, &v), S_OK);
    ddp_scrub_report r;
    assert_int_equal(ddp_scrub(v, 0, NULL, &r), DDP_E_FILE_CORRUPT);
    assert_int_equal(r.damaged, 5);
    assert_int_equal(r.unrepaired, 5);
    const ddp_scrub_item *it = item_at(&r, dpath, unique.offset);
    assert_int_equal(it->kind, DDP_SCRUB_RECORD);
    assert_non_null(strstr(it->what, "checksum"));
    int one[1] = { 4 };
    expect_files(f, it, one, 1);
    it = item_at(&r, spath, shared.offset);
    assert_int_equal(it->kind, DDP_SCRUB_RECORD);
    assert_non_null(strstr(it->what, "header"));
    expect_files(f, it, shared_refs, 3);
    it = item_at(&r, mpath, s1.stream_offset);
    assert_int_equal(it->kind, DDP_SCRUB_STREAMMAP);
    int f1[1] = { 1 };
    expect_files(f, it, f1, 1);
    it = item_at(&r, f->path[2], 0);
    assert_int_equal(it->kind, DDP_SCRUB_STUB);
    assert_non_null(strstr(it->what, "authenticate"));
    it = item_at(&r, f->path[3], 0);
    assert_int_equal(it->kind, DDP_SCRUB_STUB);
    if (r.files_affected != 5) dump(&r);
    assert_int_equal(r.files_affected, 5);
    ddp_scrub_report_free(&r);

    /* Repair: both stubs are mended (one byte each); the chunks and the
     * stream map have no other copy. */
    assert_int_equal(ddp_scrub(v, 1, NULL, &r), DDP_E_FILE_CORRUPT);
    assert_int_equal(r.damaged, 5);
    assert_int_equal(r.repaired, 2);
    assert_int_equal(r.unrepaired, 3);
    it = item_at(&r, f->path[2], 0);
    assert_true(it->repaired);
    it = item_at(&r, f->path[3], 0);
    assert_true(it->repaired);
    it = item_at(&r, dpath, unique.offset);
    assert_false(it->repaired);
    assert_non_null(strstr(it->repair, "could not mend"));
    ddp_scrub_report_free(&r);
    ddp_volume_close(v);

    assert_int_equal(ddp_volume_open(f->dir, DDP_OPEN_READ, &v), S_OK);
    /* Never wrong bytes: every file uses a damaged record (f0..f3 the shared chunk). */
    for (int i = 0; i < NF; i++) assert_false(read_ok(v, f, i));
    ddp_volume_close(v);
    ddp_streammap_free(&m4);
    ddp_streammap_free(&m0);
    ddp_streammap_free(&m1);
    free(dpath);
    free(spath);
    free(mpath);
}

static void test_stub_mended(void **state)
{
    fixture *f = *state;
    struct stat before;
    assert_int_equal(stat(f->path[2], &before), 0);
    flip(f->path[2], 5);   /* the text */
    flip(f->path[3], 225); /* the MAC */
    ddp_volume *v = NULL;
    assert_int_equal(ddp_volume_open(f->dir, DDP_OPEN_JOB, &v), S_OK);
    ddp_scrub_report r;
    assert_int_equal(ddp_scrub(v, 1, NULL, &r), S_OK);
    assert_int_equal(r.damaged, 2);
    assert_int_equal(r.repaired, 2);
    assert_non_null(strstr(r.items[0].repair, "mended"));
    ddp_scrub_report_free(&r);
    for (int i = 0; i < NF; i++) assert_true(read_ok(v, f, i));
    struct stat after;
    assert_int_equal(stat(f->path[2], &after), 0);
    assert_int_equal(after.st_mode, before.st_mode);
    assert_int_equal(ddp_scrub(v, 0, NULL, &r), S_OK);
    assert_int_equal(r.damaged, 0);
    ddp_scrub_report_free(&r);
    ddp_volume_close(v);
}

/* Damage nothing references is retired, and gc does not mind it. */
static void test_unreferenced_retired(void **state)
{
    fixture *f = *state;
    ddp_volume *v = NULL;
    assert_int_equal(ddp_volume_open(f->dir, DDP_OPEN_JOB, &v), S_OK);
    ddp_stub s;
    ddp_streammap m;
    map_of(v, f, 4, &s, &m);
    ddp_chunk_loc loc = m.entries[0].loc;
    ddp_streammap_free(&m);
    char *dpath = container_path(v, DDP_KIND_DATA, loc.container);
    assert_int_equal(unlink(f->path[4]), 0);
    flip(dpath, loc.offset + 64 + 100);
    ddp_scrub_report r;
    assert_int_equal(ddp_scrub(v, 1, NULL, &r), S_OK);
    assert_int_equal(r.damaged, 1);
    assert_int_equal(r.repaired, 1);
    assert_int_equal(r.items[0].nfiles, 0);
    assert_non_null(strstr(r.items[0].repair, "retired"));
    ddp_scrub_report_free(&r);
    assert_int_equal(ddp_scrub(v, 0, NULL, &r), S_OK);
    ddp_scrub_report_free(&r);
    ddp_gc_stats gs;
    assert_int_equal(ddp_gc(v, 1, NULL, &gs), S_OK);
    assert_true(gs.dead_records >= 1);
    for (int i = 0; i < 4; i++) assert_true(read_ok(v, f, i));
    free(dpath);
    ddp_volume_close(v);
}

static void test_hotspot(void **state)
{
    fixture *f = *state;
    ddp_volume *v = NULL;
    assert_int_equal(ddp_volume_open(f->dir, DDP_OPEN_JOB, &v), S_OK);
    ddp_mstore ms;
    ddp_hotset hs;
    assert_int_equal(ddp_mstore_load(v->store_dir, v->id.store_id, &ms), S_OK);
    assert_int_equal(ddp_hotset_load(&ms, &hs), S_OK);
    ddp_mstore_free(&ms);
    /* The chunks of the base, referenced by f0..f3, have copies; f4's not. */
    ddp_stub s;
    ddp_streammap m0, m4;
    map_of(v, f, 0, &s, &m0);
    map_of(v, f, 4, &s, &m4);
    assert_true(m0.count >= 3);
    assert_true(hs.n >= 2);
    assert_non_null(ddp_hotset_find(&hs, m0.entries[0].hash));
    assert_non_null(ddp_hotset_find(&hs, m0.entries[1].hash));
    for (uint32_t k = 0; k < m4.count; k++) assert_null(ddp_hotset_find(&hs, m4.entries[k].hash));
    const ddp_hotrec copy1 = *ddp_hotset_find(&hs, m0.entries[1].hash);
    ddp_hotset_free(&hs);
    /* A second run changes nothing (and costs a stamp check). */
    assert_int_equal(ddp_hotspot_update(v), S_FALSE);

    /* Damage: the payload of base chunk 0, the header of base chunk 1, and
     * a chunk of f4 (which has no copy). */
    ddp_chunk_loc c0 = m0.entries[0].loc, c1 = m0.entries[1].loc, u = m4.entries[0].loc;
    char *p0 = container_path(v, DDP_KIND_DATA, c0.container), *p1 = container_path(v, DDP_KIND_DATA, c1.container);
    char *pu = container_path(v, DDP_KIND_DATA, u.container);
    char *ph = container_path(v, DDP_KIND_HOTSPOT, copy1.id);
    flip(p0, c0.offset + 64 + 1000);
    flip(p1, c1.offset + 30);
    flip(pu, u.offset + 64 + 2000);
    ddp_volume_close(v);

    assert_int_equal(ddp_volume_open(f->dir, DDP_OPEN_JOB, &v), S_OK);
    ddp_scrub_report r;
    assert_int_equal(ddp_scrub(v, 1, NULL, &r), DDP_E_FILE_CORRUPT);
    assert_int_equal(r.damaged, 3);
    assert_int_equal(r.repaired, 2);
    assert_int_equal(r.unrepaired, 1);
    const ddp_scrub_item *it = item_at(&r, p0, c0.offset);
    assert_true(it->repaired);
    assert_non_null(strstr(it->repair, "Hotspot/"));
    assert_int_equal(it->nfiles, 4);
    it = item_at(&r, p1, c1.offset);
    assert_true(it->repaired);
    assert_non_null(strstr(it->repair, "Hotspot/"));
    it = item_at(&r, pu, u.offset);
    assert_false(it->repaired);
    assert_non_null(strstr(it->repair, "could not mend"));
    int four[1] = { 4 };
    expect_files(f, it, four, 1);
    ddp_scrub_report_free(&r);
    for (int i = 0; i < 4; i++) assert_true(read_ok(v, f, i));
    assert_false(read_ok(v, f, 4));

    /* A damaged copy is mended from its primary. */
    flip(ph, copy1.off + 64 + 500);
    assert_int_equal(ddp_scrub(v, 1, NULL, &r), DDP_E_FILE_CORRUPT); /* f4's chunk is still damaged */
    it = item_at(&r, ph, copy1.off);
    assert_int_equal(it->kind, DDP_SCRUB_HOTSPOT);
    assert_true(it->repaired);
    assert_non_null(strstr(it->repair, "Data/"));
    ddp_scrub_report_free(&r);

    /* Once no file references the base, gc retires the copies too. */
    for (int i = 0; i < NF; i++) assert_int_equal(unlink(f->path[i]), 0);
    ddp_gc_stats gs;
    HRESULT ghr = ddp_gc(v, 1, NULL, &gs);
    if (ghr != S_OK) print_message("gc: %s\n", ddp_error_detail());
    assert_int_equal(ghr, S_OK);
    assert_int_equal(gs.stubs, 0);
    assert_int_equal(ddp_mstore_load(v->store_dir, v->id.store_id, &ms), S_OK);
    assert_int_equal(ddp_hotset_load(&ms, &hs), S_OK);
    assert_int_equal(hs.n, 0);
    ddp_hotset_free(&hs);
    ddp_mstore_free(&ms);
    if (ddp_scrub(v, 0, NULL, &r) != S_OK) dump(&r);
    assert_int_equal(r.damaged, 0);
    ddp_scrub_report_free(&r);
    ddp_volume_close(v);
    ddp_streammap_free(&m0);
    ddp_streammap_free(&m4);
    free(p0);
    free(p1);
    free(pu);
    free(ph);
}

/* The Unoptimization job removes .ddp and keeps every byte; run again after
 * an interruption (simulated: the store already gone), it finishes. */
static void test_unoptimize_job(void **state)
{
    fixture *f = *state;
    ddp_volume *v = NULL;
    assert_int_equal(ddp_volume_open(f->dir, DDP_OPEN_JOB, &v), S_OK);
    ddp_job_stats js;
    assert_int_equal(ddp_unoptimize_job(v, NULL, &js), S_OK);
    assert_int_equal(js.files_optimized, NF);
    ddp_volume_close(v);
    char *ddp = ddp_path_join(f->dir, ".ddp");
    assert_int_equal(access(ddp, F_OK), -1);
    for (int i = 0; i < NF; i++) {
        size_t n = 0;
        uint8_t *b = tu_read_file(f->path[i], &n);
        assert_int_equal(n, f->size[i]);
        assert_memory_equal(b, f->data[i], n);
        free(b);
    }
    assert_int_equal(ddp_volume_open(f->dir, DDP_OPEN_READ, &v), DDP_E_VOLUME_DEDUP_DISABLED);

    /* Interrupted after the chunk store went: a second run finishes. */
    assert_int_equal(ddp_volume_enable(f->dir, "Backup"), S_OK);
    assert_int_equal(ddp_volume_open(f->dir, DDP_OPEN_JOB, &v), S_OK);
    assert_int_equal(ddp_optimize(v, 1, NULL, &js), S_OK);
    assert_int_equal(ddp_unoptimize_volume(v, NULL, &js), S_OK);
    ddp_volume_close(v);
    char *cs = ddp_path_join(ddp, "ChunkStore");
    tu_rmrf(cs);
    assert_int_equal(ddp_volume_open(f->dir, DDP_OPEN_JOB, &v), S_OK);
    assert_int_equal(ddp_unoptimize_job(v, NULL, &js), S_OK);
    assert_int_equal(js.files_optimized, 0);
    ddp_volume_close(v);
    assert_int_equal(access(ddp, F_OK), -1);

    /* A stub one byte off is mended and rehydrated; one damaged beyond
     * mending (forged, or a copy someone damaged) is reported and left,
     * and the job finishes all the same (docs/SECURITY.md). */
    assert_int_equal(ddp_volume_enable(f->dir, "Backup"), S_OK);
    assert_int_equal(ddp_volume_open(f->dir, DDP_OPEN_JOB, &v), S_OK);
    assert_int_equal(ddp_optimize(v, 1, NULL, &js), S_OK);
    ddp_volume_close(v);
    flip(f->path[0], 210);
    flip(f->path[1], 100);
    flip(f->path[1], 101);
    flip(f->path[1], 150);
    assert_int_equal(ddp_volume_open(f->dir, DDP_OPEN_JOB, &v), S_OK);
    assert_int_equal(ddp_unoptimize_job(v, NULL, &js), S_OK);
    assert_int_equal(js.files_optimized, NF - 1);
    assert_int_equal(js.files_skipped_policy, 1);
    ddp_volume_close(v);
    assert_int_equal(access(ddp, F_OK), -1);
    size_t n = 0;
    uint8_t *b = tu_read_file(f->path[0], &n);
    assert_int_equal(n, f->size[0]);
    assert_memory_equal(b, f->data[0], n);
    free(b);
    struct stat st;
    assert_int_equal(stat(f->path[1], &st), 0);
    assert_int_equal(st.st_size, DDP_STUB_SIZE);
    free(cs);
    free(ddp);
}

/* After gc compacted the store: scrub checks the version-2 containers and
 * resolves every reference through their tables (clean); a stub put back
 * after its data was collected is reported as such; a damaged redirection
 * table is container damage, and reads through it fail cleanly. */
static void test_compacted(void **state)
{
    fixture *f = *state;
    ddp_volume *v = NULL;
    assert_int_equal(ddp_volume_open(f->dir, DDP_OPEN_JOB, &v), S_OK);
    size_t sn = 0;
    uint8_t *stub4 = tu_read_file(f->path[4], &sn);
    assert_int_equal(unlink(f->path[4]), 0);
    ddp_gc_stats gs;
    assert_int_equal(ddp_gc(v, 1, NULL, &gs), S_OK);
    assert_true(gs.containers_collected >= 1);

    ddp_scrub_report r;
    if (ddp_scrub(v, 0, NULL, &r) != S_OK) dump(&r);
    assert_int_equal(r.damaged, 0);
    ddp_scrub_report_free(&r);
    for (int i = 0; i < 4; i++) assert_true(read_ok(v, f, i));

    /* f4's stub back: what it names was collected. */
    tu_write_file(f->path[4], stub4, sn);
    assert_int_not_equal(ddp_scrub(v, 0, NULL, &r), S_OK);
    int found = 0;
    for (size_t i = 0; i < r.count; i++)
        if (strcmp(r.items[i].file, f->path[4]) == 0 && strstr(r.items[i].what, "garbage collection removed it")) found = 1;
    if (!found) dump(&r);
    assert_true(found);
    ddp_scrub_report_free(&r);
    assert_false(read_ok(v, f, 4));
    assert_int_equal(unlink(f->path[4]), 0);
    free(stub4);

    /* A byte of a compacted data container's table. */
    ddp_mstore ms;
    assert_int_equal(ddp_mstore_load(v->store_dir, v->id.store_id, &ms), S_OK);
    char *victim = NULL;
    for (size_t i = 0; i < ms.n && !victim; i++)
        if (ms.c[i].kind == DDP_KIND_DATA && ms.c[i].generation == 2) victim = ddp_strdup(ms.c[i].path);
    ddp_mstore_free(&ms);
    assert_non_null(victim);
    flip(victim, 128 + 3); /* the first entry's local id */
    assert_int_equal(ddp_scrub(v, 0, NULL, &r), DDP_E_FILE_CORRUPT);
    const ddp_scrub_item *it = item_at(&r, victim, 64);
    assert_int_equal(it->kind, DDP_SCRUB_CONTAINER);
    assert_non_null(strstr(it->what, "redirection table"));
    ddp_scrub_report_free(&r);
    /* The files whose chunks are in it fail cleanly. */
    ddp_volume_close(v);
    assert_int_equal(ddp_volume_open(f->dir, DDP_OPEN_JOB, &v), S_OK);
    int bad = 0;
    for (int i = 0; i < 4; i++) bad += !read_ok(v, f, i);
    assert_true(bad > 0);
    flip(victim, 128 + 3);
    free(victim);
    ddp_volume_close(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_clean, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damage_found, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stub_mended, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreferenced_retired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hotspot, setup_hot, teardown),
        cmocka_unit_test_setup_teardown(test_unoptimize_job, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compacted, setup_hot, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
