/* SPDX-License-Identifier: MIT */
/*
 * test_chunkstore.c: unit tests for the chunk store (chunkstore.h): store
 * once (a second put of the same chunk writes nothing), concurrent puts and
 * reads from several threads, the codec choice, sealing at the container
 * size limit with every container in the catalog, stream maps, read-only
 * stores picking up new containers, crash recovery (a child process writes,
 * syncs and dies without closing; the parent reopens, including after
 * tearing the container's tail), a damaged or missing index rebuilt from
 * the containers, rebuild_index, damaged chunks reported with the file and
 * offset, and the statistics.
 */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "store/catalog.h"
#include "store/chunkstore.h"
#include "store/compact.h"
#include "base/codec.h"
#include "store/container.h"
#include "base/hash.h"
#include "store/index.h"
#include "store/streammap.h"
#include "base/util.h"
#include "testutil.h"

#define MiB ((uint64_t)1 << 20)

typedef struct fixture {
    char *vol, *store_dir, *state_dir, *index_path, *catalog_path;
    uint8_t store_id[16];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->vol = tu_mkdtemp();
    tu_fill_random(f->store_id, 16, (uint64_t)(uintptr_t)f);
    char guid[39];
    ddp_guid_format(f->store_id, guid);
    char *cs = ddp_xasprintf("%s/.ddp/ChunkStore/%s.ddp", f->vol, guid);
    f->store_dir = cs;
    f->state_dir = ddp_xasprintf("%s/.ddp/State", f->vol);
    f->index_path = ddp_path_join(f->state_dir, "index");
    f->catalog_path = ddp_path_join(f->store_dir, "catalog");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    tu_rmrf(f->vol);
    free(f->vol);
    free(f->store_dir);
    free(f->state_dir);
    free(f->index_path);
    free(f->catalog_path);
    free(f);
    return 0;
}

static ddp_chunkstore *open_store(const fixture *f, int mode, uint64_t limit)
{
    ddp_chunkstore *cs = NULL;
    HRESULT hr = ddp_chunkstore_open(f->store_dir, f->state_dir, f->store_id, mode, limit, &cs);
    if (FAILED(hr)) fail_msg("open: %08x %s", (unsigned)hr, ddp_error_detail());
    return cs;
}

/* Chunk i: random, or compressible text-like bytes. */
typedef struct chunk {
    uint8_t *data;
    uint32_t len;
    uint8_t hash[32];
    ddp_chunk_loc loc;
} chunk;

static void make_chunk(chunk *c, uint32_t len, uint64_t seed, int compressible)
{
    c->data = malloc(len);
    c->len = len;
    tu_fill_random(c->data, len, seed);
    if (compressible)
        for (uint32_t i = 0; i < len; i++) c->data[i] = (uint8_t)('a' + c->data[i] % 4);
    ddp_sha256(c->data, len, c->hash);
    memset(&c->loc, 0, sizeof c->loc);
}

static chunk *make_chunks(size_t n, uint64_t seed, uint32_t len)
{
    chunk *cs = calloc(n, sizeof *cs);
    for (size_t i = 0; i < n; i++)
        make_chunk(&cs[i], len ? len : 1 + (uint32_t)((seed + i * 7919) % 131072), seed * 1000003 + i, i % 3 == 0);
    return cs;
}

static void free_chunks(chunk *c, size_t n)
{
    for (size_t i = 0; i < n; i++) free(c[i].data);
    free(c);
}

static void put_ok(ddp_chunkstore *cs, chunk *c, int level, int want_new)
{
    int was_new = -1;
    HRESULT hr = ddp_chunkstore_put(cs, c->hash, c->data, c->len, level, &c->loc, &was_new);
    if (FAILED(hr)) fail_msg("put: %08x %s", (unsigned)hr, ddp_error_detail());
    if (want_new >= 0) assert_int_equal(was_new, want_new);
}

static void read_ok(ddp_chunkstore *cs, const chunk *c)
{
    uint8_t *out = malloc(c->len);
    HRESULT hr = ddp_chunkstore_read_chunk(cs, &c->loc, c->hash, out);
    if (FAILED(hr)) fail_msg("read: %08x %s", (unsigned)hr, ddp_error_detail());
    assert_memory_equal(out, c->data, c->len);
    free(out);
}

static void assert_same_loc(const ddp_chunk_loc *a, const ddp_chunk_loc *b)
{
    assert_int_equal(a->container, b->container);
    assert_true(a->offset == b->offset);
    assert_int_equal(a->codec, b->codec);
    assert_int_equal(a->stored_len, b->stored_len);
    assert_int_equal(a->logical_len, b->logical_len);
}

static ddp_catalog read_catalog(const fixture *f)
{
    size_t n;
    uint8_t *b = tu_read_file(f->catalog_path, &n);
    assert_non_null(b);
    ddp_catalog c;
    assert_int_equal(ddp_catalog_decode(b, n, &c), S_OK);
    free(b);
    return c;
}

static char *container_path(const fixture *f, uint32_t kind, uint32_t id)
{
    char rel[40];
    ddp_container_relpath(kind, id, 1, rel);
    return ddp_path_join(f->store_dir, rel);
}

typedef struct counter { uint64_t chunks, seals, maps; } counter;

static void count_found(void *ctx, const ddp_record_header *h, uint64_t off)
{
    (void)off;
    counter *c = ctx;
    if (h->type == DDP_RECORD_CHUNK) c->chunks++;
    else if (h->type == DDP_RECORD_SEAL) c->seals++;
    else c->maps++;
}

/* Chunk records in all data containers of the catalog. */
static counter count_records(const fixture *f)
{
    ddp_catalog cat = read_catalog(f);
    counter c = { 0, 0, 0 };
    for (uint32_t i = 0; i < cat.count; i++) {
        if (cat.entries[i].kind != DDP_KIND_DATA) continue;
        char *p = container_path(f, DDP_KIND_DATA, cat.entries[i].id);
        assert_int_equal(ddp_container_scan(p, NULL, count_found, &c, NULL), S_OK);
        free(p);
    }
    ddp_catalog_free(&cat);
    return c;
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (uint64_t)st.st_size;
}

/* ------------------------------------------------------------------ tests */

static void test_put_dedup_read(void **state)
{
    fixture *f = *state;
    ddp_chunkstore *cs = open_store(f, DDP_STORE_WRITABLE, 0);
    chunk c;
    make_chunk(&c, 65536, 1, 0);
    put_ok(cs, &c, 3, 1);
    ddp_chunk_loc first = c.loc;
    assert_int_equal(first.container, 1);
    assert_true(first.offset == 64);
    put_ok(cs, &c, 3, 0);
    assert_same_loc(&c.loc, &first);
    read_ok(cs, &c); /* still in the write buffer: read must see it */
    /* Bad arguments. */
    ddp_chunk_loc l;
    int was_new;
    assert_int_equal(ddp_chunkstore_put(cs, c.hash, c.data, 0, 3, &l, &was_new), E_INVALIDARG);
    assert_int_equal(ddp_chunkstore_put(cs, c.hash, c.data, 131073, 3, &l, &was_new), E_INVALIDARG);
    assert_int_equal(ddp_chunkstore_try_put(cs, c.hash, c.data, 0, 3, &l, &was_new), E_INVALIDARG);
    /* try_put: a chunk nobody else is storing is stored (or found) at once. */
    was_new = -1;
    assert_int_equal(ddp_chunkstore_try_put(cs, c.hash, c.data, c.len, 3, &l, &was_new), S_OK);
    assert_int_equal(was_new, 0);
    assert_same_loc(&l, &first);
    assert_int_equal(ddp_chunkstore_close(cs), S_OK);

    counter n = count_records(f);
    assert_true(n.chunks == 1);
    assert_true(file_size(f->index_path) > 0);

    cs = open_store(f, DDP_STORE_WRITABLE, 0);
    put_ok(cs, &c, 3, 0);
    assert_same_loc(&c.loc, &first);
    read_ok(cs, &c);
    assert_int_equal(ddp_chunkstore_close(cs), S_OK);
    n = count_records(f);
    assert_true(n.chunks == 1);

    cs = open_store(f, DDP_STORE_READONLY, 0);
    read_ok(cs, &c);
    assert_int_equal(ddp_chunkstore_put(cs, c.hash, c.data, c.len, 3, &l, &was_new), DDP_E_INVALID_STATE);
    /* A hash that does not match the record. */
    uint8_t wrong[32];
    memcpy(wrong, c.hash, 32);
    wrong[0] ^= 1;
    uint8_t *out = malloc(c.len);
    assert_int_equal(ddp_chunkstore_read_chunk(cs, &c.loc, wrong, out), DDP_E_FILE_CORRUPT);
    /* A container that does not exist. */
    ddp_chunk_loc bad = c.loc;
    bad.container = 99;
    assert_int_equal(ddp_chunkstore_read_chunk(cs, &bad, c.hash, out), DDP_E_FILE_CORRUPT);
    free(out);
    assert_int_equal(ddp_chunkstore_close(cs), S_OK);
    free(c.data);
}

/* try_put stores a chunk nobody else is storing at once, like put (the
 * S_FALSE of a chunk in flight elsewhere is in test_concurrent's threads). */
static void test_try_put(void **state)
{
    fixture *f = *state;
    ddp_chunkstore *cs = open_store(f, DDP_STORE_WRITABLE, 0);
    chunk d;
    make_chunk(&d, 40000, 2, 1);
    int was_new = -1;
    assert_int_equal(ddp_chunkstore_try_put(cs, d.hash, d.data, d.len, 3, &d.loc, &was_new), S_OK);
    assert_int_equal(was_new, 1);
    assert_true(d.loc.stored_len < d.len); /* compressed as put compresses */
    ddp_chunk_loc first = d.loc;
    assert_int_equal(ddp_chunkstore_try_put(cs, d.hash, d.data, d.len, 3, &d.loc, &was_new), S_OK);
    assert_int_equal(was_new, 0);
    assert_same_loc(&d.loc, &first);
    read_ok(cs, &d);
    assert_int_equal(ddp_chunkstore_close(cs), S_OK);
    assert_true(count_records(f).chunks == 1);
    free(d.data);
}

static void test_codec_choice(void **state)
{
    fixture *f = *state;
    ddp_chunkstore *cs = open_store(f, DDP_STORE_WRITABLE, 0);
    chunk text, rnd, text_raw;
    make_chunk(&text, 100000, 2, 1);
    make_chunk(&rnd, 100000, 3, 0);
    make_chunk(&text_raw, 100000, 4, 1);
    put_ok(cs, &text, 3, 1);
    assert_int_equal(text.loc.codec, DDP_CODEC_ZSTD);
    assert_true(text.loc.stored_len < text.len / 2);
    assert_int_equal(text.loc.logical_len, text.len);
    put_ok(cs, &rnd, 3, 1);
    assert_int_equal(rnd.loc.codec, DDP_CODEC_NONE);
    assert_int_equal(rnd.loc.stored_len, rnd.len);
    put_ok(cs, &text_raw, 0, 1);
    assert_int_equal(text_raw.loc.codec, DDP_CODEC_NONE);
    assert_true(text.loc.offset == 64);
    assert_true(rnd.loc.offset == 64 + 64 + text.loc.stored_len);
    read_ok(cs, &text);
    read_ok(cs, &rnd);
    read_ok(cs, &text_raw);
    assert_int_equal(ddp_chunkstore_sync_data(cs), S_OK);
    read_ok(cs, &text);

    ddp_chunkstore_stats st;
    assert_int_equal(ddp_chunkstore_stats_get(cs, &st), S_OK);
    assert_true(st.chunks == 3);
    assert_true(st.logical_bytes == 300000);
    assert_true(st.stored_bytes == (uint64_t)text.loc.stored_len + rnd.len + text_raw.len);
    assert_true(st.data_containers == 1);
    assert_true(st.stream_containers == 0);
    assert_true(st.container_bytes == 64 + 3 * 64 + st.stored_bytes);
    assert_true(st.index_ram_bytes > 0);
    assert_int_equal(ddp_chunkstore_close(cs), S_OK);

    cs = open_store(f, DDP_STORE_READONLY, 0);
    read_ok(cs, &text);
    read_ok(cs, &rnd);
    read_ok(cs, &text_raw);
    ddp_chunkstore_stats st2;
    assert_int_equal(ddp_chunkstore_stats_get(cs, &st2), S_OK);
    assert_true(st2.chunks == 3);
    assert_true(st2.stored_bytes == st.stored_bytes);
    assert_true(st2.container_bytes == st.container_bytes);
    assert_true(st2.index_file_bytes == file_size(f->index_path));
    assert_true(st2.index_ram_bytes == 0);
    assert_int_equal(ddp_chunkstore_close(cs), S_OK);
    free(text.data);
    free(rnd.data);
    free(text_raw.data);
}

/* ---- threads */

#define NTHREADS 4
#define SHARED 300
#define OWN 300

typedef struct thread_arg {
    ddp_chunkstore *cs;
    chunk *shared;   /* SHARED chunks every thread puts */
    chunk *own;      /* OWN chunks only this thread puts */
    ddp_chunk_loc shared_locs[SHARED];
    int new_count;
    int failures;
    int try_first;   /* ddp_chunkstore_try_put first, ddp_chunkstore_put on S_FALSE */
    int deferred;    /* try_puts that answered S_FALSE (another thread had the chunk in flight) */
} thread_arg;

static void *put_thread(void *p)
{
    thread_arg *a = p;
    int si = 0, oi = 0;
    for (int i = 0; i < SHARED + OWN; i++) {
        /* Alternate between the chunks all threads put and this thread's own. */
        int is_shared = (i % 2 == 0 && si < SHARED) || oi >= OWN;
        chunk *c = is_shared ? &a->shared[si] : &a->own[oi];
        ddp_chunk_loc loc;
        int was_new = 0;
        HRESULT hr = S_FALSE;
        if (a->try_first) {
            hr = ddp_chunkstore_try_put(a->cs, c->hash, c->data, c->len, 1 + i % 3, &loc, &was_new);
            if (hr == S_FALSE) {
                a->deferred++;
                if (was_new) a->failures++; /* nothing was done */
            }
        }
        if (hr == S_FALSE) hr = ddp_chunkstore_put(a->cs, c->hash, c->data, c->len, 1 + i % 3, &loc, &was_new);
        if (FAILED(hr)) {
            a->failures++;
            continue;
        }
        a->new_count += was_new;
        if (is_shared) a->shared_locs[si++] = loc;
        else a->own[oi++].loc = loc;
        /* Read it back at once, from this thread, while others write. */
        uint8_t *out = malloc(c->len);
        if (FAILED(ddp_chunkstore_read_chunk(a->cs, &loc, c->hash, out)) || memcmp(out, c->data, c->len) != 0)
            a->failures++;
        free(out);
        if (i % 50 == 0 && FAILED(ddp_chunkstore_sync_data(a->cs))) a->failures++;
    }
    return NULL;
}

static void test_concurrent(void **state)
{
    fixture *f = *state;
    ddp_chunkstore *cs = open_store(f, DDP_STORE_WRITABLE, 4 * MiB);
    chunk *shared = make_chunks(SHARED, 10, 0);
    chunk *own[NTHREADS];
    thread_arg args[NTHREADS];
    pthread_t th[NTHREADS];
    for (int t = 0; t < NTHREADS; t++) {
        own[t] = make_chunks(OWN, 100 + (uint64_t)t, 0);
        memset(&args[t], 0, sizeof args[t]);
        args[t].cs = cs;
        args[t].shared = shared;
        args[t].own = own[t];
        args[t].try_first = t % 2;
    }
    for (int t = 0; t < NTHREADS; t++) assert_int_equal(pthread_create(&th[t], NULL, put_thread, &args[t]), 0);
    for (int t = 0; t < NTHREADS; t++) assert_int_equal(pthread_join(th[t], NULL), 0);
    int total_new = 0;
    for (int t = 0; t < NTHREADS; t++) {
        assert_int_equal(args[t].failures, 0);
        total_new += args[t].new_count;
    }
    /* Each distinct chunk was new exactly once, and all threads agree on where the shared ones are. */
    assert_int_equal(total_new, SHARED + NTHREADS * OWN);
    for (int i = 0; i < SHARED; i++) {
        for (int t = 1; t < NTHREADS; t++) assert_same_loc(&args[t].shared_locs[i], &args[0].shared_locs[i]);
        shared[i].loc = args[0].shared_locs[i];
    }
    for (int i = 0; i < SHARED; i++) read_ok(cs, &shared[i]);
    for (int t = 0; t < NTHREADS; t++)
        for (int i = 0; i < OWN; i++) read_ok(cs, &own[t][i]);
    ddp_chunkstore_stats st;
    assert_int_equal(ddp_chunkstore_stats_get(cs, &st), S_OK);
    assert_true(st.chunks == (uint64_t)(SHARED + NTHREADS * OWN));
    assert_true(st.data_containers > 1);
    assert_int_equal(ddp_chunkstore_close(cs), S_OK);
    counter n = count_records(f);
    assert_true(n.chunks == (uint64_t)(SHARED + NTHREADS * OWN));

    /* Everything reads back after a reopen, read-only. */
    cs = open_store(f, DDP_STORE_READONLY, 0);
    for (int i = 0; i < SHARED; i++) read_ok(cs, &shared[i]);
    for (int t = 0; t < NTHREADS; t++)
        for (int i = 0; i < OWN; i++) read_ok(cs, &own[t][i]);
    assert_int_equal(ddp_chunkstore_close(cs), S_OK);
    free_chunks(shared, SHARED);
    for (int t = 0; t < NTHREADS; t++) free_chunks(own[t], OWN);
}

static void test_sealing(void **state)
{
    fixture *f = *state;
    ddp_chunkstore *cs = open_store(f, DDP_STORE_WRITABLE, MiB);
    const size_t n = 60;
    chunk *c = make_chunks(n, 20, 65536);
    for (size_t i = 0; i < n; i++) put_ok(cs, &c[i], 0, 1);
    /* A read-only reader opened now must find containers created later. */
    ddp_chunkstore *ro = open_store(f, DDP_STORE_READONLY, 0);
    read_ok(ro, &c[0]);
    chunk *more = make_chunks(40, 21, 65536);
    for (size_t i = 0; i < 40; i++) put_ok(cs, &more[i], 0, 1);
    assert_int_equal(ddp_chunkstore_sync_data(cs), S_OK);
    for (size_t i = 0; i < 40; i++) read_ok(ro, &more[i]);
    assert_int_equal(ddp_chunkstore_close(ro), S_OK);

    ddp_catalog cat = read_catalog(f);
    uint32_t ndata = 0, max_id = 0;
    for (uint32_t i = 0; i < cat.count; i++) {
        if (cat.entries[i].kind != DDP_KIND_DATA) continue;
        ndata++;
        if (cat.entries[i].id > max_id) max_id = cat.entries[i].id;
    }
    /* 100 records of 64 KiB + 64 in 1 MiB containers: 15 per container. */
    assert_true(ndata >= 6);
    for (uint32_t i = 0; i < cat.count; i++) {
        const ddp_catalog_entry *e = &cat.entries[i];
        if (e->kind != DDP_KIND_DATA) continue;
        char *p = container_path(f, DDP_KIND_DATA, e->id);
        uint64_t size = file_size(p);
        counter k = { 0, 0, 0 };
        assert_int_equal(ddp_container_scan(p, NULL, count_found, &k, NULL), S_OK);
        if (e->id < max_id) {
            assert_int_equal(e->flags & 1, 1);
            assert_true(e->length == size);
            assert_true(k.seals == 1);
            assert_true(size <= MiB + 64);
            assert_true(k.chunks == 15);
        } else {
            assert_int_equal(e->flags & 1, 0);
            assert_true(k.seals == 0);
        }
        free(p);
    }
    ddp_catalog_free(&cat);
    ddp_chunkstore_stats st;
    assert_int_equal(ddp_chunkstore_stats_get(cs, &st), S_OK);
    assert_true(st.data_containers == ndata);
    for (size_t i = 0; i < n; i++) read_ok(cs, &c[i]);
    assert_int_equal(ddp_chunkstore_close(cs), S_OK);

    /* The catalog now records the newest container's length too. */
    cat = read_catalog(f);
    ddp_catalog_entry *last = ddp_catalog_find(&cat, DDP_KIND_DATA, max_id);
    char *p = container_path(f, DDP_KIND_DATA, max_id);
    assert_true(last->length == file_size(p));
    free(p);
    ddp_catalog_free(&cat);

    /* Reopen and keep appending to the newest container. */
    cs = open_store(f, DDP_STORE_WRITABLE, MiB);
    chunk extra;
    make_chunk(&extra, 1000, 22, 0);
    put_ok(cs, &extra, 0, 1);
    assert_int_equal(extra.loc.container, max_id);
    for (size_t i = 0; i < n; i++) put_ok(cs, &c[i], 0, 0);
    assert_int_equal(ddp_chunkstore_close(cs), S_OK);
    cs = open_store(f, DDP_STORE_READONLY, 0);
    for (size_t i = 0; i < n; i++) read_ok(cs, &c[i]);
    for (size_t i = 0; i < 40; i++) read_ok(cs, &more[i]);
    read_ok(cs, &extra);
    assert_int_equal(ddp_chunkstore_close(cs), S_OK);
    free(extra.data);
    free_chunks(c, n);
    free_chunks(more, 40);
}

static void test_streammaps(void **state)
{
    fixture *f = *state;
    ddp_chunkstore *cs = open_store(f, DDP_STORE_WRITABLE, MiB);
    chunk *c = make_chunks(10, 30, 0);
    ddp_streammap m;
    ddp_streammap_init(&m);
    ddp_filehash fh;
    ddp_filehash_init(&fh);
    for (int i = 0; i < 10; i++) {
        put_ok(cs, &c[i], 3, 1);
        ddp_streammap_entry e;
        memcpy(e.hash, c[i].hash, 32);
        e.loc = c[i].loc;
        ddp_streammap_add(&m, &e);
        ddp_filehash_add(&fh, c[i].hash, c[i].len);
        m.file_size += c[i].len;
    }
    ddp_filehash_final(&fh, m.file_hash);
    assert_int_equal(ddp_chunkstore_sync_data(cs), S_OK);
    uint8_t *enc;
    size_t n;
    assert_int_equal(ddp_streammap_encode(&m, &enc, &n), S_OK);
    uint8_t h[32];
    ddp_sha256(enc, n, h);
    uint32_t container;
    uint64_t off;
    assert_int_equal(ddp_chunkstore_put_streammap(cs, enc, (uint32_t)n, h, &container, &off), S_OK);
    assert_int_equal(container, 1);
    assert_true(off == 64);
    uint8_t bad[32];
    memcpy(bad, h, 32);
    bad[5] ^= 1;
    uint32_t c2;
    uint64_t o2;
    assert_int_equal(ddp_chunkstore_put_streammap(cs, enc, (uint32_t)n, bad, &c2, &o2), E_INVALIDARG);

    /* Read back before any sync: the buffer is written out first. */
    ddp_streammap r;
    assert_int_equal(ddp_chunkstore_read_streammap(cs, container, off, h, &r), S_OK);
    assert_int_equal(r.count, 10);
    assert_true(r.file_size == m.file_size);
    assert_memory_equal(r.file_hash, m.file_hash, 32);
    for (int i = 0; i < 10; i++) {
        assert_memory_equal(r.entries[i].hash, c[i].hash, 32);
        assert_same_loc(&r.entries[i].loc, &c[i].loc);
    }
    ddp_streammap_free(&r);
    assert_int_equal(ddp_chunkstore_read_streammap(cs, container, off, bad, &r), DDP_E_FILE_CORRUPT);
    assert_int_equal(ddp_chunkstore_sync_streams(cs), S_OK);
    ddp_chunkstore_stats st;
    assert_int_equal(ddp_chunkstore_stats_get(cs, &st), S_OK);
    assert_true(st.stream_containers == 1);
    assert_int_equal(ddp_chunkstore_close(cs), S_OK);

    cs = open_store(f, DDP_STORE_READONLY, 0);
    assert_int_equal(ddp_chunkstore_read_streammap(cs, container, off, NULL, &r), S_OK);
    assert_int_equal(r.count, 10);
    ddp_streammap_free(&r);
    /* Not a record offset. */
    assert_int_equal(ddp_chunkstore_read_streammap(cs, 1, off + 1, NULL, &r), DDP_E_FILE_CORRUPT);
    assert_int_equal(ddp_chunkstore_close(cs), S_OK);

    /* A second writable session appends to the same stream container. */
    cs = open_store(f, DDP_STORE_WRITABLE, MiB);
    uint64_t off2;
    assert_int_equal(ddp_chunkstore_put_streammap(cs, enc, (uint32_t)n, h, &container, &off2), S_OK);
    assert_int_equal(container, 1);
    assert_true(off2 == off + 64 + n);
    assert_int_equal(ddp_chunkstore_close(cs), S_OK);
    free(enc);
    ddp_streammap_free(&m);
    free_chunks(c, 10);
}

/* ---- crash simulation: a child writes and dies without closing. */

#define CRASH_SYNCED 40
#define CRASH_UNSYNCED 5

/* Child: put chunks [0, CRASH_SYNCED) (checkpointing midway if asked),
 * sync, write their locations to locs_path, put a few more without syncing,
 * and _exit without closing. */
static void crash_child(const fixture *f, chunk *c, int checkpoint_midway, const char *locs_path)
{
    ddp_chunkstore *cs = NULL;
    if (FAILED(ddp_chunkstore_open(f->store_dir, f->state_dir, f->store_id, DDP_STORE_WRITABLE, MiB, &cs))) _exit(2);
    for (int i = 0; i < CRASH_SYNCED; i++) {
        int was_new;
        if (FAILED(ddp_chunkstore_put(cs, c[i].hash, c[i].data, c[i].len, 3, &c[i].loc, &was_new))) _exit(3);
        if (checkpoint_midway && i == CRASH_SYNCED / 2 && FAILED(ddp_chunkstore_checkpoint(cs))) _exit(4);
    }
    if (FAILED(ddp_chunkstore_sync_data(cs))) _exit(5);
    FILE *fp = fopen(locs_path, "wb");
    for (int i = 0; i < CRASH_SYNCED; i++)
        if (fwrite(&c[i].loc, sizeof c[i].loc, 1, fp) != 1) _exit(6);
    fclose(fp);
    for (int i = CRASH_SYNCED; i < CRASH_SYNCED + CRASH_UNSYNCED; i++) {
        int was_new;
        if (FAILED(ddp_chunkstore_put(cs, c[i].hash, c[i].data, c[i].len, 3, &c[i].loc, &was_new))) _exit(7);
    }
    _exit(0);
}

static void run_crash_child(const fixture *f, chunk *c, int checkpoint_midway)
{
    char *locs = ddp_path_join(f->vol, "locs");
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) crash_child(f, c, checkpoint_midway, locs);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    size_t n;
    uint8_t *b = tu_read_file(locs, &n);
    assert_int_equal(n, CRASH_SYNCED * sizeof(ddp_chunk_loc));
    for (int i = 0; i < CRASH_SYNCED; i++) memcpy(&c[i].loc, b + i * sizeof(ddp_chunk_loc), sizeof(ddp_chunk_loc));
    free(b);
    free(locs);
}

/* After the crash: synced chunks are readable and indexed at the same place. */
static void check_after_crash(const fixture *f, chunk *c, int nsynced)
{
    ddp_chunkstore *cs = open_store(f, DDP_STORE_WRITABLE, MiB);
    for (int i = 0; i < nsynced; i++) {
        read_ok(cs, &c[i]);
        ddp_chunk_loc before = c[i].loc;
        put_ok(cs, &c[i], 3, 0);
        assert_same_loc(&c[i].loc, &before);
    }
    /* The unsynced ones may or may not have survived; either way they work now. */
    for (int i = nsynced; i < CRASH_SYNCED + CRASH_UNSYNCED; i++) {
        put_ok(cs, &c[i], 3, -1);
        read_ok(cs, &c[i]);
    }
    assert_int_equal(ddp_chunkstore_close(cs), S_OK);
    counter k = count_records(f);
    assert_true(k.chunks == CRASH_SYNCED + CRASH_UNSYNCED);
    cs = open_store(f, DDP_STORE_READONLY, 0);
    for (int i = 0; i < CRASH_SYNCED + CRASH_UNSYNCED; i++) read_ok(cs, &c[i]);
    assert_int_equal(ddp_chunkstore_close(cs), S_OK);
}

static void test_crash_no_index(void **state)
{
    fixture *f = *state;
    chunk *c = make_chunks(CRASH_SYNCED + CRASH_UNSYNCED, 40, 0);
    run_crash_child(f, c, 0);
    /* The child never checkpointed: no index file; the catalog names container 1. */
    struct stat st;
    assert_int_equal(stat(f->index_path, &st), -1);
    check_after_crash(f, c, CRASH_SYNCED);
    free_chunks(c, CRASH_SYNCED + CRASH_UNSYNCED);
}

static void test_crash_after_checkpoint(void **state)
{
    fixture *f = *state;
    chunk *c = make_chunks(CRASH_SYNCED + CRASH_UNSYNCED, 41, 0);
    run_crash_child(f, c, 1);
    /* The index covers the first half; the rest is found by walking from there. */
    ddp_index *ix = NULL;
    assert_int_equal(ddp_index_load(f->index_path, f->store_id, &ix), S_OK);
    assert_true(ddp_index_count(ix) == CRASH_SYNCED / 2 + 1);
    ddp_index_free(ix);
    check_after_crash(f, c, CRASH_SYNCED);
    free_chunks(c, CRASH_SYNCED + CRASH_UNSYNCED);
}

static void test_crash_torn_tail(void **state)
{
    fixture *f = *state;
    chunk *c = make_chunks(CRASH_SYNCED + CRASH_UNSYNCED, 42, 0);
    run_crash_child(f, c, 1);
    /* Tear the last synced record in half, and add zeros after it. */
    int last = CRASH_SYNCED - 1;
    char *p = container_path(f, DDP_KIND_DATA, c[last].loc.container);
    uint64_t cut = c[last].loc.offset + 64 + c[last].loc.stored_len / 2;
    assert_int_equal(truncate(p, (off_t)cut), 0);
    assert_int_equal(truncate(p, (off_t)cut + 5000), 0);
    check_after_crash(f, c, last);
    /* The torn record was cut and the chunk written again after it. */
    ddp_chunkstore *cs = open_store(f, DDP_STORE_WRITABLE, MiB);
    put_ok(cs, &c[last], 3, 0);
    read_ok(cs, &c[last]);
    assert_int_equal(ddp_chunkstore_close(cs), S_OK);
    assert_int_equal(ddp_container_scan(p, NULL, NULL, NULL, NULL), S_OK);
    free(p);
    free_chunks(c, CRASH_SYNCED + CRASH_UNSYNCED);
}

/* ---- the index as a cache */

static void fill_store(const fixture *f, chunk *c, size_t n)
{
    ddp_chunkstore *cs = open_store(f, DDP_STORE_WRITABLE, MiB);
    for (size_t i = 0; i < n; i++) put_ok(cs, &c[i], 3, 1);
    assert_int_equal(ddp_chunkstore_close(cs), S_OK);
}

static void check_indexed(const fixture *f, chunk *c, size_t n)
{
    ddp_chunkstore *cs = open_store(f, DDP_STORE_WRITABLE, MiB);
    ddp_chunkstore_stats st;
    assert_int_equal(ddp_chunkstore_stats_get(cs, &st), S_OK);
    assert_true(st.chunks == n);
    for (size_t i = 0; i < n; i++) {
        ddp_chunk_loc before = c[i].loc;
        put_ok(cs, &c[i], 3, 0);
        assert_same_loc(&c[i].loc, &before);
    }
    assert_int_equal(ddp_chunkstore_close(cs), S_OK);
    /* And the index written at close is sound. */
    ddp_index *ix = NULL;
    assert_int_equal(ddp_index_load(f->index_path, f->store_id, &ix), S_OK);
    assert_true(ddp_index_count(ix) == n);
    ddp_index_free(ix);
    counter k = count_records(f);
    assert_true(k.chunks == n);
}

static void test_damaged_index_rebuilt(void **state)
{
    fixture *f = *state;
    const size_t n = 80;
    chunk *c = make_chunks(n, 50, 0);
    fill_store(f, c, n);
    ddp_index *ix = NULL;
    assert_int_equal(ddp_index_load(f->index_path, f->store_id, &ix), S_OK);
    ddp_index_free(ix);

    /* A flipped byte in an entry. */
    size_t len;
    uint8_t *b = tu_read_file(f->index_path, &len);
    b[len - 30] ^= 0x20;
    unlink(f->index_path);
    tu_write_file(f->index_path, b, len);
    free(b);
    assert_int_equal(ddp_index_load(f->index_path, f->store_id, &ix), DDP_E_FILE_CORRUPT);
    check_indexed(f, c, n);

    /* Missing. */
    unlink(f->index_path);
    check_indexed(f, c, n);

    /* Truncated to its header. */
    b = tu_read_file(f->index_path, &len);
    unlink(f->index_path);
    tu_write_file(f->index_path, b, 64);
    free(b);
    check_indexed(f, c, n);

    /* A stale but intact index (an older checkpoint): the rest is caught up. */
    b = tu_read_file(f->index_path, &len);
    ddp_chunkstore *cs = open_store(f, DDP_STORE_WRITABLE, MiB);
    chunk *more = make_chunks(30, 51, 0);
    for (size_t i = 0; i < 30; i++) put_ok(cs, &more[i], 3, 1);
    assert_int_equal(ddp_chunkstore_close(cs), S_OK);
    unlink(f->index_path);
    tu_write_file(f->index_path, b, len);
    free(b);
    cs = open_store(f, DDP_STORE_WRITABLE, MiB);
    for (size_t i = 0; i < 30; i++) {
        ddp_chunk_loc before = more[i].loc;
        put_ok(cs, &more[i], 3, 0);
        assert_same_loc(&more[i].loc, &before);
    }
    assert_int_equal(ddp_chunkstore_close(cs), S_OK);
    free_chunks(more, 30);
    free_chunks(c, n);
}

static void test_rebuild_index(void **state)
{
    fixture *f = *state;
    const size_t n = 120;
    chunk *c = make_chunks(n, 60, 0);
    ddp_chunkstore *cs = open_store(f, DDP_STORE_WRITABLE, MiB);
    for (size_t i = 0; i < n; i++) put_ok(cs, &c[i], 3, 1);
    ddp_chunkstore_stats before, after;
    assert_int_equal(ddp_chunkstore_stats_get(cs, &before), S_OK);
    assert_int_equal(ddp_chunkstore_rebuild_index(cs), S_OK);
    assert_int_equal(ddp_chunkstore_stats_get(cs, &after), S_OK);
    assert_true(after.chunks == before.chunks);
    assert_true(after.stored_bytes == before.stored_bytes);
    assert_true(after.logical_bytes == before.logical_bytes);
    for (size_t i = 0; i < n; i++) {
        ddp_chunk_loc l = c[i].loc;
        put_ok(cs, &c[i], 3, 0);
        assert_same_loc(&c[i].loc, &l);
        read_ok(cs, &c[i]);
    }
    assert_int_equal(ddp_chunkstore_close(cs), S_OK);
    cs = open_store(f, DDP_STORE_READONLY, 0);
    assert_int_equal(ddp_chunkstore_rebuild_index(cs), DDP_E_INVALID_STATE);
    assert_int_equal(ddp_chunkstore_close(cs), S_OK);
    check_indexed(f, c, n);
    free_chunks(c, n);
}

static void test_damaged_chunk_reported(void **state)
{
    fixture *f = *state;
    chunk *c = make_chunks(5, 70, 0);
    fill_store(f, c, 5);
    char *p = container_path(f, DDP_KIND_DATA, 1);
    int fd = open(p, O_RDWR);
    uint8_t byte;
    uint64_t at = c[2].loc.offset + 64 + c[2].loc.stored_len / 2;
    assert_int_equal(pread(fd, &byte, 1, (off_t)at), 1);
    byte ^= 4;
    assert_int_equal(pwrite(fd, &byte, 1, (off_t)at), 1);
    close(fd);
    ddp_chunkstore *cs = open_store(f, DDP_STORE_READONLY, 0);
    uint8_t *out = malloc(c[2].len);
    assert_int_equal(ddp_chunkstore_read_chunk(cs, &c[2].loc, c[2].hash, out), DDP_E_FILE_CORRUPT);
    char want[256];
    snprintf(want, sizeof want, "Data/00000001.00000001.ccc offset %llu: payload checksum mismatch",
             (unsigned long long)c[2].loc.offset);
    if (!strstr(ddp_error_detail(), want)) fail_msg("detail '%s' lacks '%s'", ddp_error_detail(), want);
    free(out);
    read_ok(cs, &c[1]);
    read_ok(cs, &c[3]);
    assert_int_equal(ddp_chunkstore_close(cs), S_OK);

    /* A writable open that has to walk the damaged container (no index) does
     * not cut it in the middle: it stops appending to it, and the chunks on
     * both sides of the damage stay readable. */
    unlink(f->index_path);
    size_t before = (size_t)file_size(p);
    cs = open_store(f, DDP_STORE_WRITABLE, MiB);
    assert_true(file_size(p) == before);
    read_ok(cs, &c[4]);
    chunk extra;
    make_chunk(&extra, 5000, 71, 0);
    put_ok(cs, &extra, 0, 1);
    assert_int_equal(extra.loc.container, 2);
    read_ok(cs, &extra);
    put_ok(cs, &c[0], 0, 0); /* before the damage: indexed */
    assert_int_equal(ddp_chunkstore_close(cs), S_OK);
    ddp_catalog cat = read_catalog(f);
    assert_int_equal(ddp_catalog_find(&cat, DDP_KIND_DATA, 1)->flags & 1, 1);
    ddp_catalog_free(&cat);
    cs = open_store(f, DDP_STORE_READONLY, 0);
    read_ok(cs, &c[3]);
    read_ok(cs, &c[4]);
    read_ok(cs, &extra);
    assert_int_equal(ddp_chunkstore_close(cs), S_OK);
    free(extra.data);
    free(p);
    free_chunks(c, 5);
}

/* A long job: once the in-memory delta holds 256Ki entries the index is
 * checkpointed on its own (data fsynced first), bounding its RAM. */
static void test_auto_checkpoint(void **state)
{
    fixture *f = *state;
    ddp_chunkstore *cs = open_store(f, DDP_STORE_WRITABLE, 0);
    const uint32_t n = 262144 + 100;
    uint8_t data[12], hash[32];
    struct stat st;
    for (uint32_t i = 0; i < n; i++) {
        memset(data, 0, sizeof data);
        ddp_put_le32(data, i);
        ddp_sha256(data, sizeof data, hash);
        ddp_chunk_loc loc;
        int was_new;
        assert_int_equal(ddp_chunkstore_put(cs, hash, data, sizeof data, 0, &loc, &was_new), S_OK);
        assert_int_equal(was_new, 1);
        if (i == 1000) assert_int_equal(stat(f->index_path, &st), -1);
    }
    /* Checkpointed while the store is still open. */
    assert_int_equal(stat(f->index_path, &st), 0);
    ddp_index *ix = NULL;
    assert_int_equal(ddp_index_load(f->index_path, f->store_id, &ix), S_OK);
    assert_true(ddp_index_count(ix) >= 262144);
    ddp_index_free(ix);
    ddp_chunkstore_stats stats;
    assert_int_equal(ddp_chunkstore_stats_get(cs, &stats), S_OK);
    assert_true(stats.chunks == n);
    printf("index RAM with %u chunks, %u of them in the delta: %llu bytes (%.2f bytes/chunk)\n", n, n - 262144,
           (unsigned long long)stats.index_ram_bytes, (double)stats.index_ram_bytes / n);
    assert_true(stats.index_ram_bytes < 2 * (uint64_t)n);
    assert_int_equal(ddp_chunkstore_close(cs), S_OK);
    cs = open_store(f, DDP_STORE_WRITABLE, 0);
    assert_int_equal(ddp_chunkstore_stats_get(cs, &stats), S_OK);
    assert_true(stats.chunks == n);
    assert_int_equal(ddp_chunkstore_close(cs), S_OK);
}

/* A container file whose header names another container or store is never
 * appended to nor indexed. */
static void test_foreign_container(void **state)
{
    fixture *f = *state;
    chunk *c = make_chunks(30, 90, 65536);
    fill_store(f, c, 30);
    uint32_t newest = c[29].loc.container;
    assert_true(newest > 1);
    char *p = container_path(f, DDP_KIND_DATA, newest);
    int fd = open(p, O_RDWR);
    uint8_t hb[64];
    assert_int_equal(pread(fd, hb, 64, 0), 64);
    hb[16] ^= 1; /* another store id, with a valid checksum */
    ddp_put_le64(hb + 56, ddp_checksum64(hb, 56));
    assert_int_equal(pwrite(fd, hb, 64, 0), 64);
    close(fd);
    uint64_t size = file_size(p);
    unlink(f->index_path);
    ddp_chunkstore *cs = open_store(f, DDP_STORE_WRITABLE, MiB);
    put_ok(cs, &c[29], 0, 1); /* not indexed from the foreign file */
    assert_true(c[29].loc.container > newest);
    put_ok(cs, &c[0], 0, 0);
    assert_int_equal(ddp_chunkstore_close(cs), S_OK);
    assert_true(file_size(p) == size);
    ddp_catalog cat = read_catalog(f);
    assert_int_equal(ddp_catalog_find(&cat, DDP_KIND_DATA, newest)->flags & 1, 1);
    ddp_catalog_free(&cat);
    free(p);
    free_chunks(c, 30);
}

static void test_other_store_refused(void **state)
{
    fixture *f = *state;
    chunk *c = make_chunks(1, 80, 0);
    fill_store(f, c, 1);
    uint8_t other[16];
    memcpy(other, f->store_id, 16);
    other[0] ^= 1;
    ddp_chunkstore *cs = NULL;
    assert_true(FAILED(ddp_chunkstore_open(f->store_dir, f->state_dir, other, DDP_STORE_WRITABLE, 0, &cs)));
    assert_null(cs);
    assert_true(FAILED(ddp_chunkstore_create(f->store_dir, other)));
    assert_int_equal(ddp_chunkstore_create(f->store_dir, f->store_id), S_FALSE);
    free_chunks(c, 1);
}

/* ---- compacted containers (gc's redirection tables) ---- */

typedef struct keep_ids {
    const chunk *c;
    size_t n;
    uint32_t container;
    int parity; /* keep chunk i when i % 2 == parity ... */
    int step;   /* ... and, when step > 0, i % step != 0 */
} keep_ids;

static int kept(const keep_ids *k, size_t i)
{
    return k->c[i].loc.container == k->container && (int)(i % 2) == k->parity && (k->step == 0 || i % (size_t)k->step != 0);
}

static int keep_cb(void *ctx, const ddp_record_header *h, uint64_t id)
{
    (void)h;
    const keep_ids *k = ctx;
    for (size_t i = 0; i < k->n; i++)
        if (k->c[i].loc.container == k->container && k->c[i].loc.offset == id) return kept(k, i);
    return 0;
}

/* Compact data container id from its generation gen into gen + 1, switch
 * the catalog to it, remove the old file (what gc does). */
static void compact_one(const fixture *f, const keep_ids *k, uint32_t gen)
{
    char rel[40];
    ddp_container_relpath(DDP_KIND_DATA, k->container, gen, rel);
    char *path = ddp_path_join(f->store_dir, rel);
    char *dir = ddp_path_join(f->store_dir, "Data");
    int fd = open(path, O_RDONLY), dfd = open(dir, O_RDONLY | O_DIRECTORY);
    assert_true(fd >= 0 && dfd >= 0);
    ddp_catalog cat = read_catalog(f);
    ddp_catalog_entry *e = ddp_catalog_find(&cat, DDP_KIND_DATA, k->container);
    assert_non_null(e);
    assert_int_equal(e->generation, gen);
    ddp_compact_result res;
    HRESULT hr = ddp_container_compact(fd, path, e->length, dfd, keep_cb, (void *)k, &res);
    if (hr != S_OK) fail_msg("compact: %08x %s", (unsigned)hr, ddp_error_detail());
    assert_int_equal(res.generation, gen + 1);
    e->generation = gen + 1;
    e->length = res.new_len;
    e->flags |= 1;
    uint8_t *buf;
    size_t n;
    assert_int_equal(ddp_catalog_encode(&cat, &buf, &n), S_OK);
    assert_int_equal(ddp_write_file_atomic(f->catalog_path, buf, n, 0600), S_OK);
    free(buf);
    ddp_catalog_free(&cat);
    assert_int_equal(unlink(path), 0);
    close(fd);
    close(dfd);
    free(path);
    free(dir);
}

static void read_collected(ddp_chunkstore *cs, const chunk *c)
{
    uint8_t *out = malloc(c->len);
    assert_int_equal(ddp_chunkstore_read_chunk(cs, &c->loc, c->hash, out), DDP_E_FILE_CORRUPT);
    assert_non_null(strstr(ddp_error_detail(), "garbage collection removed it"));
    free(out);
}

static void test_compacted_reads(void **state)
{
    fixture *f = *state;
    const size_t n = 80;
    chunk *c = make_chunks(n, 77, 0);
    ddp_chunkstore *cs = open_store(f, DDP_STORE_WRITABLE, MiB);
    for (size_t i = 0; i < n; i++) put_ok(cs, &c[i], 3, 1);
    assert_int_equal(ddp_chunkstore_close(cs), S_OK);
    assert_true(c[n - 1].loc.container >= 3); /* containers 1 and 2 are sealed */

    /* A long-running reader (the mount) opened before: container 1 cached
     * (its old generation stays open), container 2 never opened. */
    ddp_chunkstore *ro = open_store(f, DDP_STORE_READONLY, 0);
    size_t first1 = 0;
    while (c[first1].loc.container != 1) first1++;
    read_ok(ro, &c[first1]);

    keep_ids k1 = { c, n, 1, 0, 0 }, k2 = { c, n, 2, 1, 0 };
    compact_one(f, &k1, 1);
    compact_one(f, &k2, 1);
    /* Container 2 once more: generation 3, ids unchanged, fewer records. */
    keep_ids k2b = { c, n, 2, 1, 3 };
    compact_one(f, &k2b, 2);

    /* The old reader: container 1 through its open old generation (every
     * record still there), container 2 through a catalog reload. */
    for (size_t i = 0; i < n; i++) {
        if (c[i].loc.container == 1) read_ok(ro, &c[i]);
        else if (c[i].loc.container == 2 && kept(&k2b, i)) read_ok(ro, &c[i]);
        else if (c[i].loc.container == 2) read_collected(ro, &c[i]);
    }
    assert_int_equal(ddp_chunkstore_close(ro), S_OK);

    /* A new writable open: the index (covering generation 1) is rebuilt
     * with local ids; kept chunks dedup to their old location, collected
     * ones are stored again. */
    cs = open_store(f, DDP_STORE_WRITABLE, MiB);
    for (size_t i = 0; i < n; i++) {
        int gone = (c[i].loc.container == 1 && !kept(&k1, i)) || (c[i].loc.container == 2 && !kept(&k2b, i));
        if (gone) {
            read_collected(cs, &c[i]);
            put_ok(cs, &c[i], 3, 1);
            assert_true(c[i].loc.container > 3);
        } else {
            ddp_chunk_loc l = c[i].loc;
            put_ok(cs, &c[i], 3, 0);
            assert_same_loc(&c[i].loc, &l);
        }
        read_ok(cs, &c[i]);
    }
    assert_int_equal(ddp_chunkstore_rebuild_index(cs), S_OK);
    for (size_t i = 0; i < n; i++) {
        ddp_chunk_loc l = c[i].loc;
        put_ok(cs, &c[i], 3, 0);
        assert_same_loc(&c[i].loc, &l);
        read_ok(cs, &c[i]);
    }
    assert_int_equal(ddp_chunkstore_close(cs), S_OK);
    free_chunks(c, n);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_put_dedup_read),       T(test_try_put),
        T(test_codec_choice),
        T(test_concurrent),           T(test_sealing),
        T(test_streammaps),           T(test_crash_no_index),
        T(test_crash_after_checkpoint), T(test_crash_torn_tail),
        T(test_damaged_index_rebuilt), T(test_rebuild_index),
        T(test_damaged_chunk_reported), T(test_auto_checkpoint),
        T(test_foreign_container),    T(test_other_store_refused),
        T(test_compacted_reads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
