/* SPDX-License-Identifier: MIT */
/*
 * test_restore_windows.c: RestoreFiles over Windows Server Data
 * Deduplication data (lib/restore/rsformat_windows.c): reparse files at
 * FileFullPaths, the chunk store read through ReadBackupFile with Windows'
 * paths, next to ddp's own stubs in one call.
 *
 * A small builder here writes a Windows-format volume with the structure
 * writers of tests/common/winbuild.h (from docs/WINDOWS.md): containers
 * under "System Volume Information/Dedup/ChunkStore/{GUID}.ddp/{Stream,
 * Data}/", each with a Cthr at 0; stream containers with the Rrtl table at
 * 0x3000 and records from 0x5000; data chunks raw or MS-XCA compressed
 * (tests/common/xpress_enc.h), shared between files by content; reparse
 * files of the three formats (0x0201, 0x0102, 0x0103) in a separate
 * "restore target" directory.
 *
 * The backup store is the recording IDedupReadFileCallback of rsrecord.h
 * over the volume, with or without ddp's listing interface
 * (IDdpListBackupFolder); rs_check_sequence() checks R5-R7 on the recorded
 * calls, as for test_restore.c: two
 * OrderContainersRestore calls, stream-map containers first, no path twice;
 * every container read announced by the preview just before it, inside the
 * current plan extent; no read over 4 MiB; no container byte read twice;
 * metadata reads only before the first order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>
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
#include "rsrecord.h"
#include "testutil.h"
#include "winbuild.h"
#include "windows/container.h"
#include "windows/reparse.h"
#include "xpress_enc.h"

#define KiB ((size_t)1024)
#define SVI RS_SVI

/* ======================================================================
 * A Windows-format volume
 * ====================================================================== */

typedef struct wcont {
    uint32_t kind, cid, gen;
    uint8_t *buf;
    size_t len, cap;
    uint32_t nrrtl, rrtl_seq[64], rrtl_off[64];
    int written;
} wcont;

typedef struct wslot { uint8_t hash[32]; int cont; uint32_t off, stored, logical, seq; } wslot;

typedef struct wfile { char *name, *path; uint8_t *data; size_t len; uint8_t *stub; size_t stub_len; } wfile;

typedef struct wvol {
    char *root;    /* the backup: the volume as copied */
    char *target;  /* where the reparse files are restored */
    uint8_t guid[16];
    char guid_s[39];
    wcont conts[16];
    int ncont;
    uint32_t seq;
    wslot slots[512];
    int nslots;
    wfile files[32];
    int nfiles;
} wvol;

static wvol *wv_new(void)
{
    wvol *v = calloc(1, sizeof *v);
    assert_non_null(v);
    v->root = tu_mkdtemp();
    v->target = tu_xprintf("%s/target", v->root);
    tu_mkdirs(v->target);
    static const uint8_t g[16] = { 0xFA, 0x7B, 0x1B, 0x5D, 0x3E, 0xB7, 0xA0, 0x42, 0x95, 0xCB, 0x91, 0xCE, 0x19, 0x21, 0xCF, 0xB2 };
    memcpy(v->guid, g, 16);
    ddp_win_guid_format(v->guid, v->guid_s);
    v->seq = 100;
    return v;
}

static void wv_free(wvol *v)
{
    tu_rmrf(v->root);
    for (int i = 0; i < v->ncont; i++) free(v->conts[i].buf);
    for (int i = 0; i < v->nfiles; i++) {
        free(v->files[i].name);
        free(v->files[i].path);
        free(v->files[i].data);
        free(v->files[i].stub);
    }
    free(v->root);
    free(v->target);
    free(v);
}

static void wc_put(wcont *c, size_t at, const void *p, size_t n)
{
    if (at + n > c->cap) {
        c->cap = (at + n) * 2 + 0x6000;
        c->buf = realloc(c->buf, c->cap);
        assert_non_null(c->buf);
    }
    if (at > c->len) memset(c->buf + c->len, 0, at - c->len);
    memcpy(c->buf + at, p, n);
    if (at + n > c->len) c->len = at + n;
}

static int wv_cont(wvol *v, uint32_t kind, uint32_t cid, uint32_t gen)
{
    for (int i = 0; i < v->ncont; i++)
        if (v->conts[i].kind == kind && v->conts[i].cid == cid && v->conts[i].gen == gen) return i;
    assert_true(v->ncont < 16);
    wcont *c = &v->conts[v->ncont];
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->cid = cid;
    c->gen = gen;
    uint8_t z = 0;
    wc_put(c, kind == 2 ? DDP_WIN_FIRST_RECORD - 1 : 0x1000 - 1, &z, 1);
    return v->ncont++;
}

static uint32_t wc_align(wcont *c)
{
    size_t at = (c->len + 7) & ~(size_t)7;
    uint8_t z[8] = { 0 };
    if (at > c->len) wc_put(c, c->len, z, at - c->len);
    return (uint32_t)at;
}

static char *wv_cont_path(const wvol *v, const wcont *c)
{
    char name[22];
    ddp_win_ccc_name(c->cid, c->gen, name);
    return tu_xprintf("%s" SVI "%s.ddp/%s/%s", v->root, v->guid_s, c->kind == 2 ? "Stream" : "Data", name);
}

/* Write every container (Cthr at 0, stream containers' Rrtl at 0x3000). */
static void wv_flush(wvol *v)
{
    for (int i = 0; i < v->ncont; i++) {
        wcont *c = &v->conts[i];
        uint8_t cthr[DDP_WIN_CTHR_SIZE];
        tw_cthr(cthr, c->cid, c->gen, c->len, DDP_WIN_CRC64_NVME);
        wc_put(c, 0, cthr, sizeof cthr);
        if (c->kind == 2) {
            uint8_t rr[32 + 8 * 64];
            tw_rrtl(rr, c->rrtl_seq, c->rrtl_off, c->nrrtl, DDP_WIN_CRC64_NVME);
            wc_put(c, DDP_WIN_RRTL_OFFSET, rr, 32 + 8 * (size_t)c->nrrtl);
        }
        char *p = wv_cont_path(v, c);
        char *slash = strrchr(p, '/');
        *slash = '\0';
        tu_mkdirs(p);
        *slash = '/';
        tu_write_file(p, c->buf, c->len);
        free(p);
        c->written = 1;
    }
}

/* One chunk into data container dc (shared by content). */
static const wslot *wv_chunk(wvol *v, int dc, const uint8_t *data, uint32_t len, int compress)
{
    uint8_t hash[32];
    ddp_sha256(data, len, hash);
    for (int i = 0; i < v->nslots; i++)
        if (memcmp(v->slots[i].hash, hash, 32) == 0 && v->slots[i].logical == len) return &v->slots[i];
    assert_true(v->nslots < 512);
    wcont *c = &v->conts[dc];
    wslot *s = &v->slots[v->nslots++];
    memcpy(s->hash, hash, 32);
    s->cont = dc;
    s->logical = len;
    s->seq = v->seq++;
    uint8_t *enc = NULL;
    size_t elen = 0;
    if (compress) {
        enc = malloc(TX_XPRESS_BOUND(len));
        assert_non_null(enc);
        elen = tx_xpress_encode(data, len, enc, TX_XPRESS_BOUND(len), 0);
        if (elen == 0 || elen >= len) {
            free(enc);
            enc = NULL;
        }
    }
    s->stored = enc ? (uint32_t)elen : len;
    s->off = wc_align(c);
    uint8_t hdr[DDP_WIN_DATA_HDR_SIZE];
    tw_data_hdr(hdr, s->seq, s->stored, DDP_WIN_COMPRESSION_XPRESS, hash, DDP_WIN_CRC64_NVME);
    wc_put(c, s->off, hdr, sizeof hdr);
    wc_put(c, s->off + sizeof hdr, enc ? enc : data, s->stored);
    free(enc);
    return s;
}

typedef struct wopts {
    uint16_t format;
    int compress;
    uint32_t stream_cid, stream_gen;
    uint32_t data_cid, data_gen;
    size_t piece;       /* chunk size */
    int nparts;         /* 1, or more (0x0102 / 0x0103) */
    int stale;          /* 1: the reparse point names an old offset; the Rrtl knows the new one */
} wopts;

/* A file of the given content; its reparse file at target/name. */
static int wv_file(wvol *v, const char *name, const uint8_t *data, size_t len, const wopts *o)
{
    assert_true(v->nfiles < 32);
    int sc = wv_cont(v, 2, o->stream_cid, o->stream_gen);
    int dc = wv_cont(v, 1, o->data_cid, o->data_gen);
    int nparts = o->nparts ? o->nparts : 1;
    tw_part parts[8];
    size_t nchunks = len ? (len + o->piece - 1) / o->piece : 0;
    size_t per = nchunks ? (nchunks + (size_t)nparts - 1) / (size_t)nparts : 0;
    size_t chunk = 0;
    for (int p = 0; p < nparts; p++) {
        size_t first = chunk, last = chunk + per < nchunks ? chunk + per : nchunks;
        if (p == nparts - 1) last = nchunks;
        uint32_t n = (uint32_t)(last - first);
        uint8_t *ents = calloc((size_t)n + 1, DDP_WIN_SMAP_ENTRY_SIZE);
        assert_non_null(ents);
        uint64_t begin = first * o->piece, end = begin;
        for (size_t k = first; k < last; k++) {
            uint32_t l = (uint32_t)(len - k * o->piece < o->piece ? len - k * o->piece : o->piece);
            const wslot *s = wv_chunk(v, dc, data + k * o->piece, l, o->compress && (k % 3 != 2));
            end += l;
            ddp_win_smap_entry e;
            memset(&e, 0, sizeof e);
            e.seq = s->seq;
            e.cid = o->data_cid;
            e.offset = s->off;
            e.gen = o->data_gen;
            e.end = end;
            memcpy(e.hash, s->hash, 32);
            e.stored = s->stored;
            tw_smap_entry(ents + (k - first) * DDP_WIN_SMAP_ENTRY_SIZE, &e);
        }
        wcont *c = &v->conts[sc];
        tw_part *tp = &parts[p];
        memset(tp, 0, sizeof *tp);
        tp->seq = v->seq++;
        tp->cid = o->stream_cid;
        tp->smap_size = 8 + 64 * n;
        ddp_sha256(ents, (size_t)n * 64, tp->hash);
        tp->begin = begin;
        tp->end = end;
        if (o->stale) { /* a decoy record first: where the reparse point says, another map lies */
            uint32_t decoy = wc_align(c);
            uint8_t hdr[DDP_WIN_SMAP_ENTRIES_AT];
            uint8_t other[32];
            memset(other, 0x5A, sizeof other);
            tw_smap_hdr(hdr, tp->seq + 1000, n, other, DDP_WIN_CRC64_NVME);
            wc_put(c, decoy, hdr, sizeof hdr);
            wc_put(c, decoy + sizeof hdr, ents, (size_t)n * 64);
            tp->offset = decoy;
        }
        uint32_t at = wc_align(c);
        uint8_t hdr[DDP_WIN_SMAP_ENTRIES_AT];
        tw_smap_hdr(hdr, tp->seq, n, tp->hash, DDP_WIN_CRC64_NVME);
        wc_put(c, at, hdr, sizeof hdr);
        wc_put(c, at + sizeof hdr, ents, (size_t)n * 64);
        if (!o->stale) tp->offset = at;
        assert_true(c->nrrtl < 64);
        c->rrtl_seq[c->nrrtl] = tp->seq; /* items sorted by seq: seqs only grow */
        c->rrtl_off[c->nrrtl] = at;
        c->nrrtl++;
        free(ents);
        chunk = last;
    }
    wfile *f = &v->files[v->nfiles];
    f->name = strdup(name);
    f->path = tu_xprintf("%s/%s", v->target, name);
    f->data = malloc(len + 1);
    assert_non_null(f->data);
    if (len) memcpy(f->data, data, len);
    f->len = len;
    f->stub = malloc(TW_REPARSE_MAX);
    assert_non_null(f->stub);
    f->stub_len = tw_reparse_build(o->format, v->guid, len, 0x01D36F6A2B3C4D5Eull, parts, (unsigned)nparts, f->stub);
    assert_true(f->stub_len > 0);
    tu_write_file(f->path, f->stub, f->stub_len);
    return v->nfiles++;
}

static int wv_file_random(wvol *v, const char *name, size_t len, uint64_t seed, const wopts *o)
{
    uint8_t *d = malloc(len + 1);
    assert_non_null(d);
    /* Compressible: runs of random bytes repeated. */
    for (size_t k = 0; k < len; k += 64) tu_fill_random(d + k, len - k < 64 ? len - k : 64, seed + (k / 256));
    int i = wv_file(v, name, d, len, o);
    free(d);
    return i;
}

static void assert_restored(const wvol *v, int i)
{
    size_t n = 0;
    uint8_t *got = tu_read_file(v->files[i].path, &n);
    assert_int_equal(n, v->files[i].len);
    if (n) assert_memory_equal(got, v->files[i].data, n);
    free(got);
}

static void assert_stub_intact(const wvol *v, int i)
{
    size_t n = 0;
    uint8_t *got = tu_read_file(v->files[i].path, &n);
    assert_int_equal(n, v->files[i].stub_len);
    assert_memory_equal(got, v->files[i].stub, n);
    free(got);
}

/* The recording store of rsrecord.h over the volume, reading Windows' paths too. */
static void ws_init(rstore *s, const char *root, int can_list)
{
    rs_init(s, root, can_list);
    s->windows_paths = 1;
}

static HRESULT restore_all(wvol *v, rstore *s, HRESULT *res)
{
    BSTR paths[32];
    for (int i = 0; i < v->nfiles; i++) paths[i] = v->files[i].path;
    return ddp_restore_files((ULONG)v->nfiles, paths, &s->iface, DEDUP_RECONSTRUCT_UNOPTIMIZED, res);
}

static const wopts STD = { 0x0103, 1, 0x00010000, 1, 1, 1, 64 * KiB, 1, 0 };

/* ======================================================================
 * Tests
 * ====================================================================== */

/* The three formats, compressed and raw chunks, chunks shared between
 * files, a file in two and one in three parts, an empty file; with and
 * without the listing interface, without and with a scrambled read plan. */
static void test_formats_shared_parts(void **state)
{
    (void)state;
    for (int mode = 0; mode < 4; mode++) {
        wvol *v = wv_new();
        wopts o = STD;
        o.format = 0x0201;
        wv_file_random(v, "a-0201.bin", 300 * KiB + 17, 1, &o);
        o.format = 0x0102;
        o.compress = 0;
        o.piece = 100 * KiB;
        wv_file_random(v, "b-0102-raw.bin", 250 * KiB, 2, &o);
        o.format = 0x0103;
        o.compress = 1;
        o.piece = 64 * KiB;
        wv_file_random(v, "c-0103-shared.bin", 300 * KiB + 17, 1, &o); /* same content as a */
        o.nparts = 2;
        o.format = 0x0102;
        wv_file_random(v, "d-0102-2parts.bin", 500 * KiB + 3, 4, &o);
        o.nparts = 3;
        o.format = 0x0103;
        o.data_cid = 2;
        wv_file_random(v, "e-0103-3parts.bin", 700 * KiB, 5, &o);
        o.nparts = 1;
        o.piece = 32 * KiB;
        wv_file(v, "f-empty.bin", (const uint8_t *)"", 0, &o);
        wv_flush(v);

        rstore s;
        ws_init(&s, v->root, mode & 1);
        if (mode & 2) { /* 16 KiB pieces in a scrambled order */
            s.plan = rs_plan_scrambled;
            s.plan_arg = 16 * KiB;
        }
        HRESULT res[32];
        assert_int_equal(restore_all(v, &s, res), S_OK);
        for (int i = 0; i < v->nfiles; i++) {
            assert_int_equal(res[i], S_OK);
            assert_restored(v, i);
        }
        rs_check_sequence(&s, 2);
        tu_assert_no_temps(v->target);
        if (mode & 1) {
            assert_int_equal(rs_count(&s, RS_LIST, NULL), 2); /* Stream and Data, once */
        } else {
            /* The probe is bounded: one stream container, 12 candidate generations. */
            size_t probes = 0;
            for (size_t i = 0; i < s.nev; i++)
                if (s.evs[i].type == RS_READ && s.evs[i].off == 0 && s.evs[i].size == 64) probes++;
            assert_int_equal(probes, 12);
        }
        /* The shared chunks of a and c are read once (R7 checked above), and
         * no metadata file was read: Windows has none to read. */
        assert_int_equal(rs_count(&s, RS_READ, "/.ddp/"), 0);
        rs_free(&s);
        wv_free(v);
    }
}

/* ddp's own stubs and Windows reparse files in one call. */
static void test_mixed_with_ddp(void **state)
{
    (void)state;
    wvol *v = wv_new();
    /* A ddp volume in the same root: optimize two files, move their stubs to the target. */
    size_t n1 = 200 * KiB, n2 = 90 * KiB;
    uint8_t *d1 = malloc(n1), *d2 = malloc(n2);
    assert_non_null(d1);
    assert_non_null(d2);
    tu_fill_random(d1, n1, 77);
    tu_fill_random(d2, n2, 78);
    char *p1 = tu_xprintf("%s/ddp1.bin", v->root), *p2 = tu_xprintf("%s/ddp2.bin", v->root);
    tu_write_file(p1, d1, n1);
    tu_write_file(p2, d2, n2);
    tu_optimize_volume(v->root, NULL, 2);
    char *t1 = tu_xprintf("%s/ddp1.bin", v->target), *t2 = tu_xprintf("%s/ddp2.bin", v->target);
    assert_int_equal(rename(p1, t1), 0);
    assert_int_equal(rename(p2, t2), 0);
    wopts o = STD;
    int w1 = wv_file_random(v, "w1.bin", 400 * KiB, 9, &o);
    o.format = 0x0201;
    int w2 = wv_file_random(v, "w2.bin", 130 * KiB, 10, &o);
    wv_flush(v);

    rstore s;
    ws_init(&s, v->root, 1);
    BSTR paths[4] = { t1, v->files[w1].path, t2, v->files[w2].path };
    HRESULT res[4];
    assert_int_equal(ddp_restore_files(4, paths, &s.iface, DEDUP_RECONSTRUCT_UNOPTIMIZED, res), S_OK);
    for (int i = 0; i < 4; i++) assert_int_equal(res[i], S_OK);
    assert_restored(v, w1);
    assert_restored(v, w2);
    size_t n = 0;
    uint8_t *got = tu_read_file(t1, &n);
    assert_int_equal(n, n1);
    assert_memory_equal(got, d1, n1);
    free(got);
    got = tu_read_file(t2, &n);
    assert_int_equal(n, n2);
    assert_memory_equal(got, d2, n2);
    free(got);
    rs_check_sequence(&s, 2);
    /* One order of each kind lists both formats' containers. */
    const rs_event *first = NULL;
    for (size_t i = 0; i < s.nev && !first; i++)
        if (s.evs[i].type == RS_ORDER) first = &s.evs[i];
    assert_non_null(first);
    int ddp_seen = 0, win_seen = 0;
    for (ULONG k = 0; k < first->n; k++) {
        ddp_seen |= strncmp(first->paths[k], "/.ddp/", 6) == 0;
        win_seen |= strncmp(first->paths[k], SVI, strlen(SVI)) == 0;
    }
    assert_true(ddp_seen && win_seen);
    rs_free(&s);
    free(d1);
    free(d2);
    free(p1);
    free(p2);
    free(t1);
    free(t2);
    wv_free(v);
}

/* Stale reparse offsets resolved through the Rrtl table at 0x3000, and the
 * highest of several stream-container generations. */
static void test_stale_offsets_and_generations(void **state)
{
    (void)state;
    for (int can_list = 0; can_list < 2; can_list++) {
        wvol *v = wv_new();
        wopts o = STD;
        o.stream_gen = 2;
        o.data_gen = 0x10000;
        o.stale = 1;
        wv_file_random(v, "stale1.bin", 200 * KiB, 21, &o);
        o.format = 0x0201;
        wv_file_random(v, "stale2.bin", 100 * KiB, 22, &o);
        o.stale = 0;
        o.format = 0x0102;
        wv_file_random(v, "fresh.bin", 150 * KiB, 23, &o);
        /* An older generation of the stream container: garbage past its Cthr. */
        int old = wv_cont(v, 2, 0x00010000, 1);
        uint8_t junk[0x6000];
        tu_fill_random(junk, sizeof junk, 99);
        wc_put(&v->conts[old], 0x100, junk, sizeof junk);
        wv_flush(v);

        rstore s;
        ws_init(&s, v->root, can_list);
        HRESULT res[32];
        assert_int_equal(restore_all(v, &s, res), S_OK);
        for (int i = 0; i < v->nfiles; i++) assert_restored(v, i);
        rs_check_sequence(&s, 2);
        /* The Rrtl was read (header, then its items), the old generation never past a probe. */
        size_t rrtl = 0;
        for (size_t i = 0; i < s.nev; i++)
            if (s.evs[i].type == RS_READ && strstr(s.evs[i].path, "/Stream/00010000.00000002.ccc") &&
                s.evs[i].off <= (int64_t)DDP_WIN_RRTL_OFFSET &&
                s.evs[i].off + s.evs[i].size > (int64_t)DDP_WIN_RRTL_OFFSET)
                rrtl++;
        assert_int_equal(rrtl, 1);
        for (size_t i = 0; i < s.nev; i++)
            if (s.evs[i].type == RS_READ && strstr(s.evs[i].path, "/Stream/00010000.00000001.ccc"))
                assert_true(s.evs[i].off == 0 && s.evs[i].size == 64 && !can_list);
        rs_free(&s);
        wv_free(v);
    }
}

static void poke_cont(wvol *v, const char *sub, uint64_t at, uint8_t x)
{
    for (int i = 0; i < v->ncont; i++) {
        char *p = wv_cont_path(v, &v->conts[i]);
        if (strstr(p, sub)) {
            int fd = open(p, O_RDWR);
            assert_true(fd >= 0);
            uint8_t b;
            assert_int_equal(pread(fd, &b, 1, (off_t)at), 1);
            b ^= x;
            assert_int_equal(pwrite(fd, &b, 1, (off_t)at), 1);
            close(fd);
        }
        free(p);
    }
}

/* Every failure is a file result with its code and the stub left as it was. */
static void test_corruption_codes(void **state)
{
    (void)state;
    wvol *v = wv_new();
    wopts o = STD;
    int good = wv_file_random(v, "good.bin", 100 * KiB, 31, &o);
    int badcrc = wv_file_random(v, "badcrc.bin", 100 * KiB, 32, &o);
    o.stream_cid = 0x00020000;
    int nostream = wv_file_random(v, "nostream.bin", 100 * KiB, 33, &o);
    o.stream_cid = 0x00010000;
    o.data_cid = 7;
    int nodata = wv_file_random(v, "nodata.bin", 100 * KiB, 34, &o);
    o.data_cid = 8;
    int badchunk = wv_file_random(v, "badchunk.bin", 100 * KiB, 35, &o);
    o.data_cid = 9;
    o.compress = 0;
    int badhash = wv_file_random(v, "badhash.bin", 100 * KiB, 36, &o);
    o.data_cid = 1;
    o.compress = 1;
    o.stream_cid = 0x00030000;
    o.stale = 1;
    int norrtl = wv_file_random(v, "norrtl.bin", 100 * KiB, 37, &o);
    v->conts[wv_cont(v, 2, 0x00030000, 1)].nrrtl = 0; /* the table forgets it */
    wv_flush(v);
    /* The reparse file's CRC-32 trailer. */
    v->files[badcrc].stub[v->files[badcrc].stub_len - 1] ^= 1;
    tu_write_file(v->files[badcrc].path, v->files[badcrc].stub, v->files[badcrc].stub_len);
    /* Remove the stream container of nostream and the data container of nodata. */
    char *p = tu_xprintf("%s" SVI "%s.ddp/Stream/00020000.00000001.ccc", v->root, v->guid_s);
    assert_int_equal(unlink(p), 0);
    free(p);
    p = tu_xprintf("%s" SVI "%s.ddp/Data/00000007.00000001.ccc", v->root, v->guid_s);
    assert_int_equal(unlink(p), 0);
    free(p);
    /* A compressed chunk's payload, and a raw chunk's hash in its header. */
    /* The first flag word says "match" before any output: cannot decode. */
    poke_cont(v, "Data/00000008.", 0x1000 + DDP_WIN_DATA_HDR_SIZE + 3, 0x80);
    poke_cont(v, "Data/00000009.", 0x1000 + 0x28, 0x01);

    for (int can_list = 0; can_list < 2; can_list++) {
        rstore s;
        ws_init(&s, v->root, can_list);
        BSTR paths[8];
        HRESULT res[8];
        int order[] = { badcrc, nostream, nodata, badchunk, badhash, norrtl, good };
        for (int i = 0; i < 7; i++) paths[i] = v->files[order[i]].path;
        assert_int_equal(ddp_restore_files(7, paths, &s.iface, DEDUP_RECONSTRUCT_UNOPTIMIZED, res),
                         DDP_E_JOB_COMPLETED_PARTIAL_SUCCESS);
        assert_int_equal(res[0], DDP_E_INVALID_DATA);
        assert_int_equal(res[1], DDP_E_PATH_NOT_FOUND);
        assert_int_equal(res[2], DDP_E_PATH_NOT_FOUND);
        assert_int_equal(res[3], DDP_E_FILE_CORRUPT);
        assert_int_equal(res[4], DDP_E_FILE_CORRUPT);
        assert_int_equal(res[5], DDP_E_FILE_CORRUPT);
        assert_int_equal(res[6], S_OK);
        for (int i = 0; i < 6; i++) assert_stub_intact(v, order[i]);
        assert_restored(v, good);
        rs_check_sequence(&s, 2);
        tu_assert_no_temps(v->target);
        /* The detail names the first failed file and what was wrong. */
        assert_non_null(strstr(ddp_error_detail(), "badcrc.bin"));
        rs_free(&s);
        /* Put the good file's stub back for the second round. */
        tu_write_file(v->files[good].path, v->files[good].stub, v->files[good].stub_len);
    }
    wv_free(v);
}

/* A file of exactly 16 KiB that begins with the tag but does not parse is a
 * malformed reparse point; a larger one, or one without the tag, is an
 * ordinary file (S_FALSE). */
static void test_recognition(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    uint8_t buf[20000];
    memset(buf, 0x11, sizeof buf);
    ddp_put_le32(buf, DDP_WIN_REPARSE_TAG);
    char *a = tu_xprintf("%s/a", dir), *b = tu_xprintf("%s/b", dir), *c = tu_xprintf("%s/c", dir);
    tu_write_file(a, buf, 16384);
    tu_write_file(b, buf, sizeof buf);
    buf[0] = 0;
    tu_write_file(c, buf, 100);
    rstore s;
    ws_init(&s, dir, 0);
    BSTR paths[3] = { a, b, c };
    HRESULT res[3];
    assert_int_equal(ddp_restore_files(3, paths, &s.iface, DEDUP_RECONSTRUCT_UNOPTIMIZED, res), DDP_E_INVALID_DATA);
    assert_int_equal(res[0], DDP_E_INVALID_DATA);
    assert_int_equal(res[1], S_FALSE);
    assert_int_equal(res[2], S_FALSE);
    assert_int_equal(s.nev, 0); /* nothing valid: no callback at all */
    rs_free(&s);
    tu_rmrf(dir);
    free(dir);
    free(a);
    free(b);
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_formats_shared_parts),
        cmocka_unit_test(test_mixed_with_ddp),
        cmocka_unit_test(test_stale_offsets_and_generations),
        cmocka_unit_test(test_corruption_codes),
        cmocka_unit_test(test_recognition),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
