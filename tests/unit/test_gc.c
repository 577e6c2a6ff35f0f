/* SPDX-License-Identifier: MIT */
/*
 * test_gc.c: garbage collection through the library API (lib/gc.c,
 * docs/MAINTENANCE.md): files are deleted and overwritten, gc retires what
 * no stub references and gives the space back, every remaining file reads
 * back exactly, a second run finds nothing, the regular run's threshold, a
 * re-optimization after gc stores again what gc retired, a copy of a stub
 * keeps its data, a stub of collected data fails cleanly, DEAD records in
 * the container format; an old volume (DEAD records and holes of the
 * in-place gc) compacted by the regular run; and crash safety: gc is
 * stopped (_exit) after each of its durable steps in turn
 * (DDP_GC_CRASH_AFTER; data, stream-map and hotspot containers), and every
 * time every live file still reads back, the next writable open finishes or
 * undoes the job, and a following gc completes and removes State/gc.plan.
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
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <ddp/ddp.h>
#include "store/catalog.h"
#include "store/chunkstore.h"
#include "store/container.h"
#include "store/streammap.h"
#include "store/stub.h"
#include "testutil.h"
#include "base/util.h"
#include "volume/volume.h"

#define NF 7
#define BASE (256 * 1024)

/* f0..f3: a shared base + a unique tail; f4, f5: unique; f6: compressible. */
typedef struct fixture {
    char *dir;
    char *path[NF];
    uint8_t *data[NF];
    size_t size[NF];
    int alive[NF];
} fixture;

static void make_data(fixture *f, int i, uint64_t seed)
{
    static uint8_t base[BASE];
    tu_fill_random(base, sizeof base, 4242);
    size_t n = i < 4 ? BASE + 96 * 1024 + (size_t)i * 1000 : i < 6 ? 400 * 1024 + (size_t)i * 333 : 300 * 1024;
    uint8_t *d = malloc(n);
    if (i < 4) {
        memcpy(d, base, BASE);
        tu_fill_random(d + BASE, n - BASE, seed);
    } else if (i < 6) {
        tu_fill_random(d, n, seed);
    } else {
        for (size_t k = 0; k < n; k++) d[k] = (uint8_t)("garbage collection "[k % 19] + (k / 4096) % 3);
    }
    free(f->data[i]);
    f->data[i] = d;
    f->size[i] = n;
}

static fixture *fixture_new(const char *dir)
{
    fixture *f = calloc(1, sizeof *f);
    f->dir = strdup(dir);
    for (int i = 0; i < NF; i++) {
        f->path[i] = malloc(strlen(dir) + 32);
        sprintf(f->path[i], "%s/d%d/f%d.bin", dir, i % 2, i);
        make_data(f, i, 1000 + (uint64_t)i);
        f->alive[i] = 1;
    }
    return f;
}

static void fixture_free(fixture *f)
{
    for (int i = 0; i < NF; i++) {
        free(f->path[i]);
        free(f->data[i]);
    }
    free(f->dir);
    free(f);
}

/* A fresh volume with every file optimized. */
static int setup(void **state)
{
    char *dir = tu_mkdtemp();
    fixture *f = fixture_new(dir);
    free(dir);
    for (int i = 0; i < NF; i++) tu_write_file(f->path[i], f->data[i], f->size[i]);
    tu_optimize_volume(f->dir, NULL, NF);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    tu_rmrf(f->dir);
    fixture_free(f);
    return 0;
}

/* Read path through the API; 0 when it has exactly want[n]. */
static int read_api(ddp_volume *v, const char *path, const uint8_t *want, size_t n)
{
    ddp_file *h = NULL;
    if (FAILED(ddp_file_open(v, path, &h))) return -1;
    int bad = ddp_file_size(h) != n;
    uint8_t *buf = malloc(n ? n : 1);
    size_t got = 0;
    if (!bad && n) bad = FAILED(ddp_file_pread(h, buf, n, 0, &got)) || got != n || memcmp(buf, want, n) != 0;
    free(buf);
    ddp_file_close(h);
    return bad ? -1 : 0;
}

static void all_read_back(ddp_volume *v, const fixture *f)
{
    for (int i = 0; i < NF; i++) {
        if (!f->alive[i]) continue;
        if (read_api(v, f->path[i], f->data[i], f->size[i]) != 0)
            fail_msg("%s does not read back: %s", f->path[i], ddp_error_detail());
    }
}

static uint64_t store_blocks(const char *dir)
{
    char *cmd = malloc(strlen(dir) + 64);
    sprintf(cmd, "du -sB1 '%s/.ddp/ChunkStore'", dir);
    FILE *p = popen(cmd, "r");
    free(cmd);
    unsigned long long n = 0;
    if (!p || fscanf(p, "%llu", &n) != 1) n = 0;
    if (p) pclose(p);
    return n;
}

static int file_exists(const char *dir, const char *rel)
{
    char *p = malloc(strlen(dir) + strlen(rel) + 2);
    sprintf(p, "%s/%s", dir, rel);
    int ok = access(p, F_OK) == 0;
    free(p);
    return ok;
}

/* Delete f4 and f2 (f2 shares its base), overwrite f5 with a plain file. */
static uint64_t kill_some(fixture *f)
{
    assert_int_equal(unlink(f->path[4]), 0);
    f->alive[4] = 0;
    assert_int_equal(unlink(f->path[2]), 0);
    f->alive[2] = 0;
    uint64_t gone = f->size[4] + (f->size[2] - BASE) + f->size[5];
    assert_int_equal(unlink(f->path[5]), 0);
    make_data(f, 5, 777);
    tu_write_file(f->path[5], f->data[5], f->size[5]);
    return gone; /* unique bytes whose chunks are now dead (about) */
}

static void test_gc_reclaims(void **state)
{
    fixture *f = *state;
    uint64_t before = store_blocks(f->dir);
    uint64_t gone = kill_some(f);

    ddp_volume *v = NULL;
    assert_int_equal(ddp_volume_open(f->dir, DDP_OPEN_JOB, &v), S_OK);
    ddp_gc_stats st;
    assert_int_equal(ddp_gc(v, 0, NULL, &st), S_OK);
    assert_int_equal(st.stubs, NF - 3); /* f5 is a plain file now */
    assert_true(st.dead_records >= 3);
    /* The unique chunks of the three files, plus their stream maps. */
    assert_true(st.dead_bytes >= gone * 9 / 10);
    assert_true(st.dead_bytes <= gone + 256 * 1024);
    /* Whole blocks inside dead payloads: close to all of it. */
    assert_true(st.reclaimed_bytes > 0);
    assert_true(st.reclaimed_bytes <= st.dead_bytes);
    assert_true(st.reclaimed_bytes >= st.dead_bytes * 8 / 10);
    print_message("gc: %llu dead records, %llu dead bytes (~%llu unique bytes deleted), %llu reclaimed\n",
                  (unsigned long long)st.dead_records, (unsigned long long)st.dead_bytes, (unsigned long long)gone,
                  (unsigned long long)st.reclaimed_bytes);
    assert_false(st.punch_unsupported);
    assert_false(file_exists(f->dir, ".ddp/State/gc.plan"));
    all_read_back(v, f);
    ddp_volume_close(v);
    uint64_t after = store_blocks(f->dir);
    assert_true(after < before);
    assert_true(before - after >= st.reclaimed_bytes * 9 / 10);

    /* Nothing dead any more: nothing retired, nothing reclaimed. */
    assert_int_equal(ddp_volume_open(f->dir, DDP_OPEN_JOB, &v), S_OK);
    assert_int_equal(ddp_gc(v, 1, NULL, &st), S_OK);
    assert_int_equal(st.dead_records, 0);
    assert_int_equal(st.reclaimed_bytes, 0);
    all_read_back(v, f);

    /* A re-optimization deduplicates only against live chunks: f4, whose
     * chunks were all retired, is stored again and reads back. */
    tu_write_file(f->path[4], f->data[4], f->size[4]);
    f->alive[4] = 1;
    ddp_job_stats js;
    assert_int_equal(ddp_optimize(v, 2, NULL, &js), S_OK);
    assert_int_equal(js.files_optimized, 2); /* f4 and the new f5 */
    assert_true(js.bytes_new_stored >= f->size[4] + f->size[5] - 64 * 1024);
    all_read_back(v, f);
    /* ... and a file of live chunks only stores nothing new. */
    char *copy = malloc(strlen(f->dir) + 32);
    sprintf(copy, "%s/d0/again.bin", f->dir);
    tu_write_file(copy, f->data[0], f->size[0]);
    assert_int_equal(ddp_optimize(v, 1, NULL, &js), S_OK);
    assert_int_equal(js.files_optimized, 1);
    assert_int_equal(js.chunks_new, 0);
    assert_int_equal(read_api(v, copy, f->data[0], f->size[0]), 0);
    free(copy);

    ddp_status vs;
    assert_int_equal(ddp_volume_status(v, &vs), S_OK);
    assert_non_null(strstr(vs.last_gc, " gc 0x00000000 "));
    assert_non_null(strstr(vs.last_optimize, " optimize 0x00000000 "));
    ddp_volume_close(v);
}

static void test_threshold_and_full(void **state)
{
    fixture *f = *state;
    ddp_volume *v = NULL;
    assert_int_equal(ddp_volume_open(f->dir, DDP_OPEN_JOB, &v), S_OK);
    assert_int_equal(ddp_volume_set(v, "gc_threshold", "101"), E_INVALIDARG);
    assert_int_equal(ddp_volume_set(v, "gc_threshold", "100"), S_OK);
    char *val = NULL;
    assert_int_equal(ddp_volume_get(v, "gc_threshold", &val), S_OK);
    assert_string_equal(val, "100");
    free(val);
    assert_int_equal(unlink(f->path[6]), 0); /* a small share of the store */
    f->alive[6] = 0;
    ddp_gc_stats st;
    assert_int_equal(ddp_gc(v, 0, NULL, &st), S_OK);
    assert_int_equal(st.dead_records, 0);
    assert_int_equal(st.containers_collected, 0);
    assert_true(st.containers_scanned >= 2);
    all_read_back(v, f);
    assert_int_equal(ddp_gc(v, 1, NULL, &st), S_OK);
    assert_true(st.dead_records >= 2); /* its chunk(s) and its stream map */
    assert_true(st.containers_collected >= 1);
    all_read_back(v, f);
    ddp_volume_close(v);
}

static void test_stub_copies(void **state)
{
    fixture *f = *state;
    /* A copy of f4's stub inside the volume keeps f4's data alive; a copy
     * outside it does not, and reads fail cleanly after gc. */
    size_t n = 0;
    uint8_t *stub = tu_read_file(f->path[4], &n);
    assert_int_equal(n, 232);
    char *inside = malloc(strlen(f->dir) + 32), *outside = malloc(strlen(f->dir) + 32);
    sprintf(inside, "%s/d1/copy-of-f4", f->dir);
    sprintf(outside, "%s.f1-stub", f->dir);
    tu_write_file(inside, stub, n);
    free(stub);
    stub = tu_read_file(f->path[1], &n);
    tu_write_file(outside, stub, n);
    free(stub);
    assert_int_equal(unlink(f->path[4]), 0);
    assert_int_equal(unlink(f->path[1]), 0);
    f->alive[4] = f->alive[1] = 0;

    ddp_volume *v = NULL;
    assert_int_equal(ddp_volume_open(f->dir, DDP_OPEN_JOB, &v), S_OK);
    ddp_gc_stats st;
    assert_int_equal(ddp_gc(v, 1, NULL, &st), S_OK);
    assert_true(st.dead_records >= 2);
    assert_int_equal(read_api(v, inside, f->data[4], f->size[4]), 0);
    all_read_back(v, f);
    /* f1's stub put back after gc: its stream map was retired. */
    size_t m = 0;
    uint8_t *s1 = tu_read_file(outside, &m);
    tu_write_file(f->path[1], s1, m);
    free(s1);
    ddp_file *h = NULL;
    assert_int_equal(ddp_file_open(v, f->path[1], &h), DDP_E_FILE_CORRUPT);
    assert_non_null(strstr(ddp_error_detail(), "garbage collection removed it"));
    ddp_volume_close(v);
    unlink(outside);
    free(inside);
    free(outside);
}

/* The container format: a DEAD record is stepped over by scans, refused by
 * readers, and its payload is never checked. */
static void test_dead_record_format(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char *path = malloc(strlen(dir) + 16);
    sprintf(path, "%s/c.ccc", dir);
    ddp_container_header ch;
    memset(&ch, 0, sizeof ch);
    ch.kind = 1;
    ch.id = 1;
    ch.generation = 1;
    ddp_container_writer *w = NULL;
    assert_int_equal(ddp_container_create(path, &ch, &w), S_OK);
    uint8_t payload[3][9000];
    uint64_t off[3];
    for (int i = 0; i < 3; i++) {
        tu_fill_random(payload[i], sizeof payload[i], 50 + (uint64_t)i);
        ddp_record_header h;
        memset(&h, 0, sizeof h);
        h.type = DDP_RECORD_CHUNK;
        h.stored_len = h.logical_len = sizeof payload[i];
        ddp_sha256(payload[i], sizeof payload[i], h.hash);
        assert_int_equal(ddp_container_append(w, &h, payload[i], &off[i]), S_OK);
    }
    assert_int_equal(ddp_container_sync(w), S_OK);
    /* DEAD records are never appended. */
    ddp_record_header dh;
    memset(&dh, 0, sizeof dh);
    dh.type = DDP_RECORD_DEAD;
    dh.stored_len = dh.logical_len = 10;
    assert_int_equal(ddp_container_append(w, &dh, payload[0], NULL), E_INVALIDARG);
    ddp_container_close(w);

    /* Retire the middle record and zero its payload. */
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t hb[64];
    assert_int_equal(ddp_pread_exact(fd, hb, 64, off[1], path), S_OK);
    ddp_record_header h;
    assert_int_equal(ddp_record_header_decode(hb, &h), S_OK);
    uint8_t nb[64];
    ddp_record_header_encode_dead(&h, nb);
    assert_int_equal(ddp_record_header_decode(nb, &h), DDP_E_FILE_CORRUPT);
    assert_non_null(strstr(ddp_error_detail(), "garbage-collected"));
    assert_int_equal(ddp_record_header_decode_any(nb, &h), S_OK);
    assert_int_equal(h.type, DDP_RECORD_DEAD);
    assert_int_equal(h.stored_len, sizeof payload[1]);
    assert_int_equal(ddp_pwrite_all(fd, nb, 64, off[1], path), S_OK);
    static const uint8_t zeros[9000];
    assert_int_equal(ddp_pwrite_all(fd, zeros, sizeof zeros, off[1] + 64, path), S_OK);
    ddp_record_header got;
    uint8_t *out = NULL;
    assert_int_equal(ddp_container_read_record(fd, path, off[1], DDP_RECORD_CHUNK, NULL, &got, &out),
                     DDP_E_FILE_CORRUPT);
    assert_non_null(strstr(ddp_error_detail(), "garbage-collected"));
    assert_int_equal(ddp_container_read_record(fd, path, off[2], DDP_RECORD_CHUNK, NULL, &got, &out), S_OK);
    assert_memory_equal(out, payload[2], sizeof payload[2]);
    free(out);
    close(fd);
    /* A scan passes over it (no damage), reopening for appends too. */
    uint64_t end = 0;
    assert_int_equal(ddp_container_scan(path, NULL, NULL, NULL, &end), S_OK);
    assert_true(end == off[2] + 64 + sizeof payload[2]);
    assert_int_equal(ddp_container_open_append(path, 0, NULL, NULL, &w), S_OK);
    assert_true(ddp_container_size(w) == end);
    ddp_container_close(w);
    tu_rmrf(dir);
    free(dir);
    free(path);
}


/* ---- an old volume: DEAD records and holes left by the in-place gc ---- */

/* Retire the record at (kind, id, off) of generation 1 as the gc of earlier
 * versions did: DEAD header, then the whole blocks of its payload punched. */
static void retire_in_place(ddp_volume *v, uint32_t kind, uint32_t id, uint64_t off)
{
    char rel[40];
    ddp_container_relpath(kind, id, 1, rel);
    char *path = ddp_path_join(v->store_dir, rel);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t hb[64];
    assert_int_equal(ddp_pread_exact(fd, hb, 64, off, path), S_OK);
    ddp_record_header h;
    assert_int_equal(ddp_record_header_decode_any(hb, &h), S_OK);
    if (h.type != DDP_RECORD_DEAD) {
        uint8_t nb[64];
        ddp_record_header_encode_dead(&h, nb);
        assert_int_equal(ddp_pwrite_all(fd, nb, 64, off, path), S_OK);
        uint64_t a = (off + 64 + 4095) / 4096 * 4096, b = (off + 64 + h.stored_len) / 4096 * 4096;
        if (b > a) (void)fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)a, (off_t)(b - a));
    }
    close(fd);
    free(path);
}

typedef struct dead_count { uint64_t dead, records; } dead_count;

static void count_dead(void *ctx, const ddp_record_header *h, uint64_t off)
{
    (void)off;
    dead_count *d = ctx;
    if (h->type == DDP_RECORD_DEAD) d->dead++;
    if (h->type == DDP_RECORD_CHUNK || h->type == DDP_RECORD_STREAMMAP) d->records++;
}

/* DEAD records in every catalog container (and every file is the
 * generation the catalog names). */
static dead_count store_dead(ddp_volume *v, uint32_t *max_gen)
{
    char *cpath = ddp_path_join(v->store_dir, "catalog");
    size_t n = 0;
    uint8_t *b = tu_read_file(cpath, &n);
    ddp_catalog cat;
    assert_int_equal(ddp_catalog_decode(b, n, &cat), S_OK);
    free(b);
    free(cpath);
    dead_count d = { 0, 0 };
    *max_gen = 0;
    for (uint32_t i = 0; i < cat.count; i++) {
        char rel[40];
        ddp_container_relpath(cat.entries[i].kind, cat.entries[i].id, cat.entries[i].generation, rel);
        char *path = ddp_path_join(v->store_dir, rel);
        uint64_t end = 0;
        assert_int_equal(ddp_container_scan(path, NULL, count_dead, &d, &end), S_OK);
        if (cat.entries[i].generation > *max_gen) *max_gen = cat.entries[i].generation;
        free(path);
    }
    ddp_catalog_free(&cat);
    return d;
}

static void test_old_volume_compacted(void **state)
{
    fixture *f = *state;
    ddp_volume *v = NULL;
    assert_int_equal(ddp_volume_open(f->dir, DDP_OPEN_JOB, &v), S_OK);
    /* f4 and f5 are unique: what their stubs name dies with them. Retire it
     * in place, as the gc before compaction did, then delete the files. */
    uint64_t retired = 0;
    for (int i = 4; i <= 5; i++) {
        ddp_stub s;
        assert_int_equal(ddp_volume_read_stub(v, -1, f->path[i], &s), S_OK);
        ddp_chunkstore *cs = NULL;
        assert_int_equal(ddp_volume_store(v, &cs), S_OK);
        ddp_streammap m;
        assert_int_equal(ddp_chunkstore_read_streammap(cs, s.stream_container, s.stream_offset, s.streammap_hash, &m),
                         S_OK);
        for (uint32_t k = 0; k < m.count; k++, retired++)
            retire_in_place(v, DDP_KIND_DATA, m.entries[k].loc.container, m.entries[k].loc.offset);
        ddp_streammap_free(&m);
        retire_in_place(v, DDP_KIND_STREAM, s.stream_container, s.stream_offset);
        retired++;
        assert_int_equal(unlink(f->path[i]), 0);
        f->alive[i] = 0;
    }
    ddp_volume_close(v);
    assert_int_equal(ddp_volume_open(f->dir, DDP_OPEN_JOB, &v), S_OK);
    uint32_t gen = 0;
    dead_count before = store_dead(v, &gen);
    assert_true(before.dead == retired);
    assert_int_equal(gen, 1);
    all_read_back(v, f); /* an old volume reads as it is */

    /* A plan of the in-place gc left behind (version 1): not acted on, removed. */
    char *plan = ddp_path_join(v->state_dir, "gc.plan");
    uint8_t old_plan[136] = "DDPGCPL1";
    tu_write_file(plan, old_plan, sizeof old_plan);
    /* The regular run: the DEAD records are dead bytes; compaction drops them. */
    ddp_gc_stats st;
    assert_int_equal(ddp_gc(v, 0, NULL, &st), S_OK);
    assert_true(st.dead_records >= retired);
    assert_true(st.containers_collected + st.containers_dropped >= 2);
    dead_count after = store_dead(v, &gen);
    assert_int_equal(after.dead, 0);
    assert_int_equal(gen, 2);
    assert_true(after.records == before.records); /* only the DEAD ones went */
    assert_int_equal(access(plan, F_OK), -1);
    free(plan);
    all_read_back(v, f);
    /* A second run finds nothing. */
    assert_int_equal(ddp_gc(v, 1, NULL, &st), S_OK);
    assert_int_equal(st.dead_records, 0);
    all_read_back(v, f);
    ddp_volume_close(v);
}

/* ---- crash safety ---- */

static void copy_tree(const char *from, const char *to)
{
    char *cmd = malloc(strlen(from) + 2 * strlen(to) + 32);
    sprintf(cmd, "rm -rf '%s' && cp -a '%s' '%s'", to, from, to);
    assert_int_equal(system(cmd), 0);
    free(cmd);
}

/* Run gc in a child that stops after step n; its exit status. */
static int gc_child(const char *dir, long n)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char buf[32];
        snprintf(buf, sizeof buf, "%ld", n);
        setenv("DDP_GC_CRASH_AFTER", buf, 1);
        ddp_volume *v = NULL;
        if (FAILED(ddp_volume_open(dir, DDP_OPEN_JOB, &v))) _exit(3);
        ddp_gc_stats st;
        HRESULT hr = ddp_gc(v, 1, NULL, &st);
        ddp_volume_close(v);
        _exit(SUCCEEDED(hr) ? 0 : 4);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static int hotspot_files(const char *dir)
{
    char *cmd = malloc(strlen(dir) + 64);
    sprintf(cmd, "ls '%s'/.ddp/ChunkStore/*/Hotspot | wc -l", dir);
    FILE *p = popen(cmd, "r");
    free(cmd);
    int n = -1;
    if (!p || fscanf(p, "%d", &n) != 1) n = -1;
    if (p) pclose(p);
    return n;
}

/* Containers with more than one generation's file on disk. */
static int two_generations(const char *dir)
{
    char *cmd = malloc(strlen(dir) + 200);
    sprintf(cmd, "cd '%s'/.ddp/ChunkStore/*/ && for d in Data Stream Hotspot; do ls $d | grep -v '^tmp' | cut -d. -f1 | "
                 "sort | uniq -d; done | wc -l", dir);
    FILE *p = popen(cmd, "r");
    free(cmd);
    int n = -1;
    if (!p || fscanf(p, "%d", &n) != 1) n = -1;
    if (p) pclose(p);
    return n;
}

/* all_base: f0, f1 and f3 go too, so the hotspot copies of the shared base
 * die (a volume optimized with hotspot_threshold 2): the hotspot container's
 * steps are crash points as well. */
static void crash_points(fixture *f, int all_base)
{
    kill_some(f);
    if (all_base) {
        static const int more[] = { 0, 1, 3 };
        for (int k = 0; k < 3; k++) {
            assert_int_equal(unlink(f->path[more[k]]), 0);
            f->alive[more[k]] = 0;
        }
    }
    char *work = malloc(strlen(f->dir) + 16);
    sprintf(work, "%s.work", f->dir);
    fixture *g = fixture_new(work); /* the same files, paths under work */
    for (int i = 0; i < NF; i++) {
        free(g->data[i]);
        g->data[i] = malloc(f->size[i]);
        memcpy(g->data[i], f->data[i], f->size[i]);
        g->size[i] = f->size[i];
        g->alive[i] = f->alive[i];
    }

    /* How many steps a whole run takes. */
    copy_tree(f->dir, work);
    int rc = gc_child(work, 1000000);
    assert_int_equal(rc, 0);
    ddp_volume *v = NULL;
    assert_int_equal(ddp_volume_open(work, DDP_OPEN_JOB, &v), S_OK);
    ddp_gc_stats st;
    assert_int_equal(ddp_gc(v, 1, NULL, &st), S_OK);
    assert_int_equal(st.dead_records, 0);
    ddp_volume_close(v);
    /* The number of steps of a whole run: the largest n at which the child
     * stops (exit 99) rather than finishing (exit 0): doubling, then bisection. */
    long lo = 0, hi = 1;
    for (;;) {
        copy_tree(f->dir, work);
        if (gc_child(work, hi) == 0) break;
        lo = hi;
        hi *= 2;
        if (hi > 1000000) fail_msg("gc never finishes");
    }
    while (hi - lo > 1) {
        long mid = lo + (hi - lo) / 2;
        copy_tree(f->dir, work);
        if (gc_child(work, mid) == 0) hi = mid;
        else lo = mid;
    }
    long total = lo;
    assert_true(total >= 8); /* plan, index, headers, fsync, holes, plan removed, index */
    long stride = total > 40 ? total / 40 : 1;
    int tried = 0;
    for (long n = 1; n <= total; n += (n < 6 ? 1 : stride)) {
        copy_tree(f->dir, work);
        assert_int_equal(gc_child(work, n), 99);
        tried++;
        /* A reader (no job, so nothing is resumed) sees every live file. */
        assert_int_equal(ddp_volume_open(work, DDP_OPEN_READ, &v), S_OK);
        all_read_back(v, g);
        ddp_volume_close(v);
        /* A job open finishes or undoes the interrupted run (one generation
         * of each container left, no plan, a dead compaction's named
         * temporary swept); a new gc completes. */
        int planned = file_exists(work, ".ddp/State/gc.plan");
        if (planned) {
            char *cmd = malloc(strlen(work) + 128);
            sprintf(cmd, "for d in %s/.ddp/ChunkStore/*/Data; do touch $d/tmp.999999.0123456789abcdef; done", work);
            assert_int_equal(system(cmd), 0);
            free(cmd);
        }
        assert_int_equal(ddp_volume_open(work, DDP_OPEN_JOB, &v), S_OK);
        all_read_back(v, g);
        assert_false(file_exists(work, ".ddp/State/gc.plan"));
        assert_int_equal(two_generations(work), 0);
        if (planned) {
            char *cmd = malloc(strlen(work) + 128);
            sprintf(cmd, "ls %s/.ddp/ChunkStore/*/Data/ | grep -q '^tmp'", work);
            assert_int_not_equal(system(cmd), 0);
            free(cmd);
        }
        assert_int_equal(ddp_gc(v, 1, NULL, &st), S_OK);
        assert_false(file_exists(work, ".ddp/State/gc.plan"));
        if (all_base) assert_int_equal(hotspot_files(work), 0); /* the dead copies' container went */
        all_read_back(v, g);
        /* The index names live chunks only: f4 is stored again. */
        tu_write_file(g->path[4], g->data[4], g->size[4]);
        ddp_job_stats js;
        assert_int_equal(ddp_optimize(v, 1, NULL, &js), S_OK);
        assert_true(js.chunks_new > 0);
        assert_int_equal(read_api(v, g->path[4], g->data[4], g->size[4]), 0);
        ddp_volume_close(v);
    }
    assert_true(tried >= 8);
    print_message("gc stopped after each of %d of its %ld steps; nothing live was lost\n", tried, total);
    tu_rmrf(work);
    free(work);
    fixture_free(g);
}

static void test_crash_points(void **state) { crash_points(*state, 0); }

/* A fresh volume with every file optimized, hotspot copies at 2 references. */
static int setup_hot(void **state)
{
    char *dir = tu_mkdtemp();
    fixture *f = fixture_new(dir);
    free(dir);
    for (int i = 0; i < NF; i++) tu_write_file(f->path[i], f->data[i], f->size[i]);
    tu_optimize_volume(f->dir, "2", NF);
    *state = f;
    return 0;
}

static void test_crash_points_hotspot(void **state)
{
    fixture *f = *state;
    assert_int_equal(hotspot_files(f->dir), 1);
    crash_points(f, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_gc_reclaims, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threshold_and_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stub_copies, setup, teardown),
        cmocka_unit_test(test_dead_record_format),
        cmocka_unit_test_setup_teardown(test_old_volume_compacted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_points, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_points_hotspot, setup_hot, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
