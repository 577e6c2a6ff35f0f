/* SPDX-License-Identifier: MIT */
/*
 * test_win_store.c: unit tests for the Windows chunk-store reader
 * (lib/windows/winstore.c) on stores written by the test writer
 * (tests/common/winvol.c) into memory: every reparse format, compressed and
 * raw chunks, 0-byte files, several parts, shared chunks, stale offsets
 * through Rrtl, a decoy higher generation with and without a list function
 * (the probe), large stream maps, both CRC-64 conventions, random access;
 * and corruption of every record giving the documented code and a detail
 * naming the record.
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
#include "memfs.h"
#include "testutil.h"
#include "winbuild.h"
#include "windows/container.h"
#include "windows/reparse.h"
#include "windows/winstore.h"
#include "winvol.h"

/* Deterministic content: text-like (compressible) or random. */
static uint8_t *content(size_t n, int kind, uint64_t seed)
{
    uint8_t *d = malloc(n ? n : 1);
    if (kind == 0) {
        tu_fill_random(d, n, seed);
    } else {
        static const char *w[] = { "volume ", "chunk ", "stream ", "map ", "reparse ", "point ", "data\n", "dedup " };
        uint64_t x = seed;
        for (size_t i = 0; i < n;) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            const char *t = w[(x >> 33) % 8];
            for (size_t k = 0; t[k] && i < n; k++) d[i++] = (uint8_t)t[k];
        }
    }
    return d;
}

/* Read the whole file through pread in pieces of `step` and compare. */
static void read_back(ddp_winfile *f, const uint8_t *want, size_t n, size_t step)
{
    assert_int_equal(ddp_winfile_size(f), n);
    uint8_t *got = malloc(n + 1);
    size_t off = 0;
    while (off < n) {
        size_t k = 0;
        HRESULT hr = ddp_winfile_pread(f, got + off, step, off, &k);
        if (FAILED(hr)) fail_msg("pread at %zu: %s", off, ddp_error_detail());
        assert_true(k > 0);
        off += k;
    }
    assert_int_equal(off, n);
    if (n) assert_memory_equal(got, want, n);
    size_t k = 1;
    assert_int_equal(ddp_winfile_pread(f, got, 10, n, &k), S_OK);
    assert_int_equal(k, 0);
    free(got);
}

typedef struct built {
    memfs fs;
    tw_vol *v;
    uint8_t rbuf[8][TW_REPARSE_MAX];
    size_t rlen[8];
    ddp_win_reparse rp[8];
} built;

static void parse_all(built *b, int n)
{
    for (int i = 0; i < n; i++)
        if (FAILED(ddp_win_reparse_parse(b->rbuf[i], b->rlen[i], &b->rp[i]))) fail_msg("reparse %d: %s", i, ddp_error_detail());
}

static void test_formats_and_kinds(void **state)
{
    (void)state;
    static const uint16_t fmts[] = { 0x0201, 0x0102, 0x0103 };
    static const size_t sizes[] = { 0, 1, 100, 32767, 32768, 200000, 1 << 20 };
    for (int f = 0; f < 3; f++) {
        for (int comp = 0; comp < 2; comp++) {
            built b;
            memset(&b.fs, 0, sizeof b.fs);
            tw_vol_cfg cfg;
            tw_opts o;
            tw_vol_defaults(&cfg, &o);
            o.format = fmts[f];
            o.compress = comp;
            tw_vol *v = tw_vol_new(&cfg, memfs_sink, &b.fs);
            uint8_t *data[7];
            for (int i = 0; i < 7; i++) {
                data[i] = content(sizes[i], i % 2, (uint64_t)(f * 100 + i));
                assert_int_equal(tw_vol_add(v, data[i], sizes[i], &o, b.rbuf[i], &b.rlen[i]), 0);
            }
            assert_int_equal(tw_vol_finish(v), 0);
            parse_all(&b, 7);
            ddp_win_io io = memfs_io(&b.fs, 1);
            ddp_win_store *st = NULL;
            assert_int_equal(ddp_win_store_open(&io, tw_vol_store_dir(v), &st), S_OK);
            for (int i = 0; i < 7; i++) {
                ddp_winfile *wf = NULL;
                HRESULT hr = ddp_winfile_open_in(st, &b.rp[i], &wf);
                if (FAILED(hr)) fail_msg("open %d (fmt %x comp %d): %s", i, fmts[f], comp, ddp_error_detail());
                read_back(wf, data[i], sizes[i], 65536);
                read_back(wf, data[i], sizes[i], 1000);
                /* Compressed where it helps: the text files' chunks are Xpress. */
                if (comp && sizes[i] >= 32768 && i % 2) {
                    const ddp_winfile_chunk *c = ddp_winfile_chunks(wf);
                    assert_true(c[0].stored < c[0].end - c[0].begin);
                }
                if (!comp && ddp_winfile_nchunks(wf)) {
                    const ddp_winfile_chunk *c = ddp_winfile_chunks(wf);
                    assert_int_equal(c[0].stored, c[0].end - c[0].begin);
                }
                ddp_winfile_close(wf);
                /* The private-store entry point, with the store found from the GUID. */
                assert_int_equal(ddp_winfile_open(&io, NULL, &b.rp[i], &wf), S_OK);
                read_back(wf, data[i], sizes[i], 1 << 20);
                ddp_winfile_close(wf);
            }
            ddp_win_store_stats ss;
            ddp_win_store_get_stats(st, &ss);
            assert_int_equal(ss.crc64, DDP_WIN_CRC64_NVME);
            assert_true(ss.crc64_verified > 0);
            assert_int_equal(ss.crc64_unverified, 0);
            ddp_win_store_close(st);
            for (int i = 0; i < 7; i++) free(data[i]);
            tw_vol_free(v);
            memfs_free(&b.fs);
        }
    }
}

static void test_random_access(void **state)
{
    (void)state;
    memfs fs = { 0 };
    tw_vol_cfg cfg;
    tw_opts o;
    tw_vol_defaults(&cfg, &o);
    tw_vol *v = tw_vol_new(&cfg, memfs_sink, &fs);
    size_t n = 3 * 1024 * 1024 + 17;
    uint8_t *d = content(n, 1, 9), rb[TW_REPARSE_MAX];
    size_t rl;
    /* Half the chunks raw: random blocks inside the text. */
    tu_fill_random(d + 500000, 400000, 3);
    assert_int_equal(tw_vol_add(v, d, n, &o, rb, &rl), 0);
    assert_int_equal(tw_vol_finish(v), 0);
    ddp_win_reparse rp;
    assert_int_equal(ddp_win_reparse_parse(rb, rl, &rp), S_OK);
    ddp_win_io io = memfs_io(&fs, 1);
    ddp_winfile *f;
    assert_int_equal(ddp_winfile_open(&io, tw_vol_store_dir(v), &rp, &f), S_OK);
    uint8_t *buf = malloc(300000);
    uint64_t x = 1;
    for (int i = 0; i < 400; i++) {
        x = x * 6364136223846793005ull + 1;
        uint64_t off = (x >> 20) % (n + 100);
        size_t len = (size_t)((x >> 8) % 300000);
        size_t got;
        assert_int_equal(ddp_winfile_pread(f, buf, len, off, &got), S_OK);
        size_t want = off >= n ? 0 : (n - off < len ? (size_t)(n - off) : len);
        assert_int_equal(got, want);
        if (got) assert_memory_equal(buf, d + off, got);
    }
    free(buf);
    ddp_winfile_close(f);
    tw_vol_free(v);
    memfs_free(&fs);
    free(d);
}

static void test_parts_shared_stale_gens(void **state)
{
    (void)state;
    for (int with_list = 0; with_list < 2; with_list++) {
        built b;
        memset(&b.fs, 0, sizeof b.fs);
        tw_vol_cfg cfg;
        tw_opts o;
        tw_vol_defaults(&cfg, &o);
        cfg.decoy_gen = 1;
        cfg.stream_gen = 2;
        cfg.data_gen = 0x10000;
        cfg.conv = DDP_WIN_CRC64_INIT0;
        cfg.maps_per_stream = 3; /* several stream containers */
        cfg.data_max = 300000;   /* several data containers */
        tw_vol *v = tw_vol_new(&cfg, memfs_sink, &b.fs);
        size_t n = 900000;
        uint8_t *a = content(n, 1, 1);
        uint8_t *c = malloc(n + 50000);
        memcpy(c, a, n);
        tu_fill_random(c + n, 50000, 2); /* a's chunks + a tail: shares chunks */
        o.parts = 3;
        assert_int_equal(tw_vol_add(v, a, n, &o, b.rbuf[0], &b.rlen[0]), 0);
        o.parts = 1;
        o.stale = 1;
        o.format = 0x0102;
        assert_int_equal(tw_vol_add(v, c, n + 50000, &o, b.rbuf[1], &b.rlen[1]), 0);
        o.format = 0x0201;
        assert_int_equal(tw_vol_add(v, a, 1000, &o, b.rbuf[2], &b.rlen[2]), 0); /* stale, first in a new container */
        o.stale = 0;
        o.format = 0x0103;
        o.parts = 2;
        assert_int_equal(tw_vol_add(v, c, 0, &o, b.rbuf[3], &b.rlen[3]), 0); /* 0 bytes, 1 part */
        assert_int_equal(tw_vol_finish(v), 0);
        parse_all(&b, 4);
        assert_int_equal(b.rp[0].nentries, 3);
        ddp_win_io io = memfs_io(&b.fs, with_list);
        ddp_win_store *st;
        assert_int_equal(ddp_win_store_open(&io, tw_vol_store_dir(v), &st), S_OK);
        ddp_winfile *f[4];
        const uint8_t *want[4] = { a, c, a, c };
        size_t len[4] = { n, n + 50000, 1000, 0 };
        for (int i = 0; i < 4; i++) {
            if (FAILED(ddp_winfile_open_in(st, &b.rp[i], &f[i]))) fail_msg("open %d: %s", i, ddp_error_detail());
            read_back(f[i], want[i], len[i], 100000);
        }
        assert_int_equal(ddp_winfile_nstreams(f[0]), 3);
        /* The decoy generation 3 is passed over for generation 2. */
        for (size_t s = 0; s < 3; s++) assert_int_equal(ddp_winfile_streams(f[0])[s].gen, 2);
        assert_true(ddp_winfile_streams(f[1])[0].redirected);
        assert_true(ddp_winfile_streams(f[2])[0].redirected);
        assert_false(ddp_winfile_streams(f[0])[0].redirected);
        /* Shared chunks: c's first chunks are a's. */
        const ddp_winfile_chunk *ca = ddp_winfile_chunks(f[0]), *cc = ddp_winfile_chunks(f[1]);
        assert_int_equal(ca[0].offset, cc[0].offset);
        assert_int_equal(ca[0].cid, cc[0].cid);
        assert_int_equal(ca[0].gen, 0x10000);
        /* Several data containers. */
        assert_true(cc[ddp_winfile_nchunks(f[1]) - 1].cid > 1);
        ddp_win_store_stats ss;
        ddp_win_store_get_stats(st, &ss);
        assert_int_equal(ss.crc64, DDP_WIN_CRC64_INIT0);
        assert_int_equal(ss.redirected, 2);
        if (!with_list) assert_true(ss.probes >= 128);
        else assert_int_equal(ss.probes, 0);
        for (int i = 0; i < 4; i++) ddp_winfile_close(f[i]);
        ddp_win_store_close(st);
        free(a);
        free(c);
        tw_vol_free(v);
        memfs_free(&b.fs);
    }
}

static void test_large_map(void **state)
{
    (void)state;
    memfs fs = { 0 };
    tw_vol_cfg cfg;
    tw_opts o;
    tw_vol_defaults(&cfg, &o);
    o.chunk_min = o.chunk_max = 32768;
    size_t nch = 2600, n = nch * 32768;
    uint8_t *d = malloc(n);
    for (size_t i = 0; i < n; i += 8) {
        uint64_t w = i / 32768 * 0x0101010101010101ull ^ (i % 4096);
        memcpy(d + i, &w, 8);
    }
    tw_vol *v = tw_vol_new(&cfg, memfs_sink, &fs);
    uint8_t rb[TW_REPARSE_MAX];
    size_t rl;
    assert_int_equal(tw_vol_add(v, d, n, &o, rb, &rl), 0);
    assert_int_equal(tw_vol_finish(v), 0);
    ddp_win_reparse rp;
    assert_int_equal(ddp_win_reparse_parse(rb, rl, &rp), S_OK);
    assert_int_equal(rp.entries[0].smap_size, 8 + 64 * nch);
    ddp_win_io io = memfs_io(&fs, 0);
    ddp_winfile *f;
    assert_int_equal(ddp_winfile_open(&io, NULL, &rp, &f), S_OK);
    assert_int_equal(ddp_winfile_nchunks(f), nch);
    read_back(f, d, n, 1 << 20);
    ddp_winfile_close(f);
    tw_vol_free(v);
    memfs_free(&fs);
    free(d);
}

/* ---- corruption ------------------------------------------------------------------------ */

typedef struct corrupt_env {
    memfs fs;
    tw_vol *v;
    uint8_t *data;
    size_t n;
    ddp_win_reparse rp;
} corrupt_env;

static void env_make(corrupt_env *e)
{
    memset(e, 0, sizeof *e);
    tw_vol_cfg cfg;
    tw_opts o;
    tw_vol_defaults(&cfg, &o);
    e->v = tw_vol_new(&cfg, memfs_sink, &e->fs);
    e->n = 400000;
    e->data = content(e->n, 1, 77);
    uint8_t rb[TW_REPARSE_MAX];
    size_t rl;
    assert_int_equal(tw_vol_add(e->v, e->data, e->n, &o, rb, &rl), 0);
    assert_int_equal(tw_vol_finish(e->v), 0);
    assert_int_equal(ddp_win_reparse_parse(rb, rl, &e->rp), S_OK);
}

static void env_free(corrupt_env *e)
{
    tw_vol_free(e->v);
    memfs_free(&e->fs);
    free(e->data);
}

/* Open and read everything; return the first failure (S_OK if all went well). */
static HRESULT try_read(corrupt_env *e)
{
    ddp_win_io io = memfs_io(&e->fs, 1);
    ddp_winfile *f = NULL;
    ddp_clear_error();
    HRESULT hr = ddp_winfile_open(&io, NULL, &e->rp, &f);
    if (FAILED(hr)) return hr;
    uint8_t *buf = malloc(e->n);
    size_t got = 0;
    hr = ddp_winfile_pread(f, buf, e->n, 0, &got);
    if (SUCCEEDED(hr)) assert_memory_equal(buf, e->data, e->n);
    free(buf);
    ddp_winfile_close(f);
    return hr;
}

static void expect(corrupt_env *e, HRESULT want, const char *needle)
{
    HRESULT hr = try_read(e);
    if (hr != want) fail_msg("got 0x%08x (%s), wanted 0x%08x", (unsigned)hr, ddp_error_detail(), (unsigned)want);
    if (needle && !strstr(ddp_error_detail(), needle)) fail_msg("detail '%s' lacks '%s'", ddp_error_detail(), needle);
    env_free(e);
}

static void test_corruption(void **state)
{
    (void)state;
    corrupt_env e;
    memfs_file *f;

    env_make(&e);
    assert_int_equal(try_read(&e), S_OK);
    env_free(&e);

    /* A missing data container. */
    env_make(&e);
    f = memfs_find_suffix(&e.fs, "Data/00000001.00000001.ccc");
    memfs_remove(&e.fs, f->path);
    expect(&e, DDP_E_PATH_NOT_FOUND, "Data/00000001.00000001.ccc");

    /* A missing stream container. */
    env_make(&e);
    f = memfs_find_suffix(&e.fs, "Stream/00010000.00000001.ccc");
    memfs_remove(&e.fs, f->path);
    expect(&e, DDP_E_PATH_NOT_FOUND, "00010000");

    /* A truncated data container. */
    env_make(&e);
    f = memfs_find_suffix(&e.fs, "Data/00000001.00000001.ccc");
    f->len -= 100;
    expect(&e, DDP_E_FILE_CORRUPT, "past the end");

    /* Data chunk header: magic, seq, payload size, hash, CRC-64. */
    static const struct {
        size_t at;
        const char *needle;
    } dh[] = { { 0x00, "Ckhr" }, { 0x08, "seq" }, { 0x0C, "payload" }, { 0x30, "hash" }, { 0x50, "CRC-64" } };
    for (size_t k = 0; k < sizeof dh / sizeof dh[0]; k++) {
        env_make(&e);
        f = memfs_find_suffix(&e.fs, "Data/00000001.00000001.ccc");
        f->data[0x5000 + dh[k].at] ^= 0x01;
        expect(&e, DDP_E_FILE_CORRUPT, dh[k].needle);
    }
    /* A compressed payload that no longer decodes to its length (a cut
     * flag word at the start makes the stream run short or long). */
    env_make(&e);
    f = memfs_find_suffix(&e.fs, "Data/00000001.00000001.ccc");
    memset(f->data + 0x5000 + DDP_WIN_DATA_HDR_SIZE, 0xFF, 4);
    expect(&e, DDP_E_FILE_CORRUPT, "Xpress");

    /* Stream map: hash, seq (at the entry's offset and in Rrtl: no redirect helps),
     * Smap magic, an entry end out of order, the last end short of the part. */
    static const struct {
        size_t at;
        const char *needle;
    } sh[] = { { 0x40, "hash" }, { 0x08, "seq" }, { 0x68, "Smap" } };
    for (size_t k = 0; k < sizeof sh / sizeof sh[0]; k++) {
        env_make(&e);
        f = memfs_find_suffix(&e.fs, "Stream/00010000.00000001.ccc");
        f->data[0x5000 + sh[k].at] ^= 0x01;
        /* Keep the CRC-64 valid so that the field itself is what fails. */
        ddp_put_le64(f->data + 0x5000 + 0x60, ddp_win_crc64(DDP_WIN_CRC64_NVME, f->data + 0x5000, 0x60));
        expect(&e, DDP_E_FILE_CORRUPT, sh[k].needle);
    }
    env_make(&e);
    f = memfs_find_suffix(&e.fs, "Stream/00010000.00000001.ccc");
    ddp_put_le64(f->data + 0x5000 + 0x70 + 64 + 0x10, 1); /* entry 1 ends at 1 */
    expect(&e, DDP_E_FILE_CORRUPT, "entry 1");
    env_make(&e);
    f = memfs_find_suffix(&e.fs, "Stream/00010000.00000001.ccc");
    {
        uint32_t n = (e.rp.entries[0].smap_size - 8) / 64;
        uint8_t *last = f->data + 0x5000 + 0x70 + 64 * (n - 1);
        ddp_put_le64(last + 0x10, ddp_get_le64(last + 0x10) - 1);
    }
    expect(&e, DDP_E_FILE_CORRUPT, "end at");
    /* A stale offset and no Rrtl entry for it. */
    env_make(&e);
    e.rp.entries[0].offset += 8;
    f = memfs_find_suffix(&e.fs, "Stream/00010000.00000001.ccc");
    ddp_put_le32(f->data + 0x3020, 999); /* the seq in Rrtl */
    expect(&e, DDP_E_FILE_CORRUPT, "Ckhr");
    /* ... and an Rrtl out of order. */
    env_make(&e);
    e.rp.entries[0].offset += 8;
    f = memfs_find_suffix(&e.fs, "Stream/00010000.00000001.ccc");
    ddp_put_le32(f->data + 0x3008, 2);
    ddp_put_le32(f->data + 0x3028, 0);
    expect(&e, DDP_E_FILE_CORRUPT, NULL);
    /* The stale offset with Rrtl intact: read. */
    env_make(&e);
    e.rp.entries[0].offset += 8;
    assert_int_equal(try_read(&e), S_OK);
    env_free(&e);
    /* A store GUID other than the reparse point's. */
    env_make(&e);
    {
        ddp_win_io io = memfs_io(&e.fs, 1);
        ddp_winfile *wf = NULL;
        ddp_win_reparse other = e.rp;
        other.store_guid[0] ^= 1;
        assert_int_equal(ddp_winfile_open(&io, tw_vol_store_dir(e.v), &other, &wf), DDP_E_INVALID_DATA);
        assert_null(wf);
        /* Found from its own GUID: no such store. */
        assert_int_equal(ddp_winfile_open(&io, NULL, &other, &wf), DDP_E_PATH_NOT_FOUND);
    }
    env_free(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_formats_and_kinds), cmocka_unit_test(test_random_access),
        cmocka_unit_test(test_parts_shared_stale_gens), cmocka_unit_test(test_large_map),
        cmocka_unit_test(test_corruption),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
