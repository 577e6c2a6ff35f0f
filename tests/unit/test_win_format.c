/* SPDX-License-Identifier: MIT */
/*
 * test_win_format.c: unit tests for the parsers of Windows' dedup format
 * (lib/windows: crc, reparse, container). The real bytes of
 * tests/data/windows/ (copied, with their provenance, from the project's
 * shared samples) decode to the values their headers state; the CRC check
 * values of both CRC-64 conventions hold; buffers built from the documented
 * layouts round-trip; hostile inputs (every truncation, every byte flip,
 * bad lengths, overlapping or non-contiguous parts) are refused with
 * DDP_E_INVALID_DATA or DDP_E_FILE_CORRUPT and a detail message.
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
#include "testutil.h"
#include "winbuild.h"
#include "windows/container.h"
#include "windows/crc.h"
#include "windows/reparse.h"

/* ---- sample files ---------------------------------------------------------------- */

static char *sample_path(const char *name)
{
    const char *src = getenv("DDP_SOURCE_DIR");
    return ddp_xasprintf("%s/tests/data/windows/%s", src ? src : ".", name);
}

/* Lines "XXXX: hh hh ..." of a hex dump (comments skipped) into out. */
static size_t read_hexdump(const char *name, uint8_t *out, size_t cap)
{
    char *p = sample_path(name);
    FILE *f = fopen(p, "r");
    if (!f) fail_msg("cannot open %s (set DDP_SOURCE_DIR)", p);
    free(p);
    char line[512];
    size_t n = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#') continue;
        char *s = strchr(line, ':');
        if (!s) continue;
        unsigned v;
        int used;
        for (s++; sscanf(s, " %2x%n", &v, &used) == 1; s += used) {
            assert_true(n < cap);
            out[n++] = (uint8_t)v;
        }
    }
    fclose(f);
    return n;
}

static void hex_to_bytes(const char *hex, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
}

/* ---- CRCs ---------------------------------------------------------------------------- */

static void test_crc_check_values(void **state)
{
    (void)state;
    const char *c = "123456789";
    assert_int_equal(ddp_win_crc32(c, 9), 0xCBF43926u);
    assert_int_equal(ddp_win_crc32_update(ddp_win_crc32(c, 4), c + 4, 5), 0xCBF43926u);
    assert_int_equal(ddp_win_crc32("", 0), 0);
    assert_true(ddp_win_crc64(DDP_WIN_CRC64_INIT0, c, 9) == 0x87FF3F9B2B57C87Bull);
    assert_true(ddp_win_crc64(DDP_WIN_CRC64_NVME, c, 9) == 0xAE8B14860A799888ull);
    assert_int_equal(ddp_win_crc64_match(c, 9, 0x87FF3F9B2B57C87Bull), DDP_WIN_CRC64_INIT0);
    assert_int_equal(ddp_win_crc64_match(c, 9, 0xAE8B14860A799888ull), DDP_WIN_CRC64_NVME);
    assert_int_equal(ddp_win_crc64_match(c, 9, 0x1234), DDP_WIN_CRC64_UNKNOWN);
    /* The slicing-by-8 path against the bytewise one on longer, unaligned input. */
    uint8_t buf[1000];
    tu_fill_random(buf, sizeof buf, 7);
    for (size_t off = 0; off < 9; off++) {
        uint32_t a = ddp_win_crc32(buf + off, 991 - off), b = 0;
        for (size_t i = 0; i < 991 - off; i++) b = ddp_win_crc32_update(b, buf + off + i, 1);
        assert_int_equal(a, b);
    }
}

/* ---- the real 0x0103 sample ------------------------------------------------------------ */

static void test_sample_0103(void **state)
{
    (void)state;
    uint8_t part[512];
    size_t got = read_hexdump("reparse-0x0103-partial.hex", part, sizeof part);
    assert_int_equal(got, 0xCD);
    /* The published part stops at data 0xCD of 0x184: complete it with an
     * RbRp tail of zeros (two type-0 rows) and a DdRp chunk of our own, then
     * the trailer CRC. The fields of the real bytes must come out as stated. */
    uint8_t buf[8 + 0x184];
    memset(buf, 0, sizeof buf);
    ddp_put_le32(buf, DDP_WIN_REPARSE_TAG);
    ddp_put_le16(buf + 4, 0x184);
    memcpy(buf + 8, part, got);
    uint8_t *fe = buf + 8 + 4, *dd = fe + 0x108;
    assert_int_equal(ddp_get_le32(fe + 0x88), 0x70526252u); /* the real RbRp */
    ddp_put_le32(dd, 0x70526444u);
    ddp_put_le32(dd + 8, 0x74);
    ddp_put_le16(dd + 14, 3);
    uint8_t *r = dd + 16;
    ddp_put_le16(r, 10), ddp_put_le16(r + 2, 4), ddp_put_le32(r + 4, 0x28);
    ddp_put_le16(r + 8, 14), ddp_put_le16(r + 10, 8), ddp_put_le32(r + 12, 0x2c);
    ddp_put_le16(r + 16, 13), ddp_put_le16(r + 18, 64), ddp_put_le32(r + 20, 0x34);
    ddp_put_le32(dd + 0x2c, 5), ddp_put_le32(dd + 0x30, 0x10000);
    uint8_t *e = dd + 0x34;
    ddp_put_le32(e, 5), ddp_put_le32(e + 4, 0x10000), ddp_put_le32(e + 8, 0x5000), ddp_put_le32(e + 0x18, 8 + 64 * 5);
    ddp_put_le64(e + 0x30, 281996);
    ddp_put_le32(dd + 4, ddp_win_crc32(dd + 8, 0x74 - 8));
    tw_reparse_fix_crc(buf, sizeof buf);

    ddp_win_reparse rp;
    assert_int_equal(ddp_win_reparse_parse(buf, sizeof buf, &rp), S_OK);
    assert_int_equal(rp.format, 0x0103);
    assert_int_equal(rp.ferp_size, 0x17C);
    assert_int_equal(rp.ferp_rows, 9);
    assert_int_equal(rp.rbrp_size, 0x80);
    assert_int_equal(rp.rbrp_rows, 8);
    char g[39];
    ddp_win_guid_format(rp.store_guid, g);
    assert_string_equal(g, "{5D1B7BFA-B73E-42A0-95CB-91CE1921CFB2}");
    assert_true(rp.has_filetime);
    /* 2017-12-07 14:19:51 UTC */
    assert_int_equal((rp.filetime - 116444736000000000ull) / 10000000ull, 1512656391ull);
    assert_int_equal(rp.file_size, 281996);
    assert_int_equal(rp.nentries, 1);
    assert_int_equal(rp.entries[0].seq, 5);
    assert_int_equal(rp.entries[0].stream_cid, 0x10000);
    /* The FeRp and RbRp CRCs cover bytes the post did not publish: counted as
     * bad, not fatal (the trailer CRC covers every byte). */
    assert_int_equal(rp.chunk_crcs_checked, 3);
    assert_int_equal(rp.chunk_crcs_bad, 2);
}

/* ---- the real Smap entries ------------------------------------------------------------- */

static void test_sample_smap_entries(void **state)
{
    (void)state;
    char *p = sample_path("smap-entries-real.hex");
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    free(p);
    char line[512];
    uint8_t raw[2][68];
    int k = 0;
    while (fgets(line, sizeof line, f) && k < 2) {
        if (strncmp(line, "seq", 3) != 0) continue;
        char *h = strchr(line, ':') + 2;
        hex_to_bytes(h, raw[k++], 68);
    }
    fclose(f);
    assert_int_equal(k, 2);
    static const uint8_t smap_version[4] = { 1, 4, 4, 1 };
    assert_memory_equal(raw[0], smap_version, 4);
    ddp_win_smap_entry e0, e1;
    ddp_win_smap_entry_parse(raw[0] + 4, &e0);
    ddp_win_smap_entry_parse(raw[1] + 4, &e1);
    assert_int_equal(e0.seq, 0x82);
    assert_int_equal(e0.cid, 4);
    assert_int_equal(e0.gen, 0x10000);
    assert_int_equal(e0.offset, 0x8b7138);
    assert_int_equal(e0.end, 0x9e63);
    assert_int_equal(e0.stored, 0x1bd2);
    assert_int_equal(e0.reserved, 0);
    assert_int_equal(e1.seq, 0x83);
    assert_int_equal(e1.cid, 4);
    assert_int_equal(e1.gen, 0x10000);
    assert_int_equal(e1.offset, 0x8b8d68);
    assert_int_equal(e1.end, 0xb53a);
    assert_int_equal(e1.stored, 0x4ae);
    assert_int_equal(e1.end - e0.end, 0x16d7); /* the logical size the solvers decoded */
    /* The second record starts at the next multiple of 8 after the first. */
    uint64_t next = e0.offset + DDP_WIN_DATA_HDR_SIZE + e0.stored;
    assert_int_equal((next + 7) & ~7ull, e1.offset);
    /* The last 4 bytes before entry 1 are entry 0's reserved word. */
    assert_int_equal(ddp_get_le32(raw[1]), e0.reserved);
    char name[22];
    ddp_win_ccc_name(e0.cid, e0.gen, name);
    assert_string_equal(name, "00000004.00010000.ccc");
}

/* The facts of the two real stores that fix positions in our layouts. */
static void test_sample_facts(void **state)
{
    (void)state;
    /* Stay Hydrated: the chunk-store GUID as bytes and as a name. */
    uint8_t gb[16], gp[16];
    hex_to_bytes("d762f9773215cd4d8ec9224c8b17741f", gb, 16);
    char g[39];
    ddp_win_guid_format(gb, g);
    assert_string_equal(g, "{77F962D7-1532-4DCD-8EC9-224C8B17741F}");
    assert_int_equal(ddp_win_guid_parse(g, gp), 0);
    assert_memory_equal(gb, gp, 16);
    assert_int_equal(ddp_win_guid_parse("77f962d7-1532-4dcd-8ec9-224c8b17741f", gp), 0);
    assert_memory_equal(gb, gp, 16);
    assert_int_not_equal(ddp_win_guid_parse("{77F962D7-1532-4DCD-8EC9-224C8B17741}", gp), 0);
    /* Its 0x0102 buffer: 264 bytes, bytes 8..15 and the 11 table rows as seen. */
    tw_part pt = { .seq = 1, .cid = 0x20000, .offset = 0x3ac60, .smap_size = 136, .begin = 0, .end = 0xb53a };
    hex_to_bytes("f150e35337262396c87edda8d88e2e72", pt.hash, 16);
    uint8_t buf[TW_REPARSE_MAX];
    size_t n = tw_reparse_build(0x0102, gb, pt.end, 0, &pt, 1, buf);
    assert_int_equal(n, 264);
    static const uint8_t head[8] = { 0x02, 0x01, 0x00, 0x01, 0x0b, 0x00, 0x00, 0x00 };
    assert_memory_equal(buf + 8, head, 8);
    static const uint16_t rows[11][3] = { { 4, 4, 0x60 },  { 3, 4, 0x64 },   { 3, 4, 0x68 },  { 6, 8, 0x6c },
                                          { 9, 16, 0x74 }, { 5, 8, 0x84 },   { 6, 8, 0x8c },  { 10, 32, 0xd4 },
                                          { 8, 64, 0x94 }, { 0, 0, 0 },      { 5, 8, 0xf4 } };
    for (int i = 0; i < 11; i++) {
        assert_int_equal(ddp_get_le32(buf + 0x10 + 8 * i), rows[i][0]);
        assert_int_equal(ddp_get_le16(buf + 0x14 + 8 * i), rows[i][1]);
        assert_int_equal(ddp_get_le16(buf + 0x16 + 8 * i), rows[i][2]);
    }
    ddp_win_reparse rp;
    assert_int_equal(ddp_win_reparse_parse(buf, n, &rp), S_OK);
    assert_memory_equal(rp.store_guid, gb, 16);
    assert_int_equal(rp.file_size, 0xb53a);
    assert_int_equal(rp.entries[0].offset, 0x3ac60);
    assert_int_equal(rp.entries[0].smap_size, 136);
    assert_memory_equal(rp.entries[0].hash, pt.hash, 16);
    /* dev01.dat: hash at Ckhr + 0x38 and Smap at Ckhr + 0x68 (0x3ac98, 0x3acc8). */
    assert_int_equal(0x3ac60 + 0x38, 0x3ac98);
    assert_int_equal(0x3ac60 + DDP_WIN_SMAP_HDR_SIZE, 0x3acc8);

    /* STONKS (2012 R2): a 0x0201 buffer of 132 bytes, hash at buffer 0x60. */
    uint8_t sg[16];
    assert_int_equal(ddp_win_guid_parse("{6F89FF76-AE45-4802-BD0E-4075177C075F}", sg), 0);
    tw_part ps = { .seq = 9, .cid = 0x10000, .offset = 0x5260, .smap_size = 8 + 2 * 64, .begin = 0, .end = 0x161E1 };
    hex_to_bytes("F0973CBB3C2B95864EE8409F58687917C2B1865E0175731E6895F7808C867D19", ps.hash, 32);
    n = tw_reparse_build(0x0201, sg, 0x161E1, 0, &ps, 1, buf);
    assert_int_equal(n, 132);
    assert_memory_equal(buf + 0x60, ps.hash, 32);
    assert_int_equal(ddp_win_reparse_parse(buf, n, &rp), S_OK);
    assert_int_equal(rp.format, 0x0201);
    assert_int_equal(rp.file_size, 90593);
    assert_int_equal(rp.entries[0].hash_len, 32);
    assert_memory_equal(rp.entries[0].hash, ps.hash, 32);
    assert_int_equal(rp.entries[0].offset, 0x5260);
    /* Its two chunks: seq 7 and 8, ends 0xEEA7 and 0x161E1, stored raw. */
    assert_int_equal(0xEEA7 + 0x733A, 0x161E1);
}

/* ---- built buffers: round trips and hostile edits -------------------------------------------- */

static size_t build(uint16_t fmt, unsigned nparts, uint64_t size, uint8_t *buf, tw_part *parts)
{
    uint8_t guid[16];
    tu_fill_random(guid, 16, fmt);
    for (unsigned i = 0; i < nparts; i++) {
        memset(&parts[i], 0, sizeof parts[i]);
        parts[i].seq = 100 + i;
        parts[i].cid = 0x10000 + i;
        parts[i].offset = 0x5000 + 0x100 * i;
        parts[i].smap_size = 8 + 64 * (i + 1);
        tu_fill_random(parts[i].hash, 32, 1000 + i);
        parts[i].begin = size * i / nparts;
        parts[i].end = size * (i + 1) / nparts;
    }
    return tw_reparse_build(fmt, guid, size, 0x01d36f667251f859ull, parts, nparts, buf);
}

static void test_reparse_roundtrip(void **state)
{
    (void)state;
    static const uint16_t fmts[] = { 0x0201, 0x0102, 0x0103 };
    for (int f = 0; f < 3; f++) {
        unsigned maxp = fmts[f] == 0x0201 ? 1 : 5;
        for (unsigned np = 1; np <= maxp; np++) {
            uint8_t buf[TW_REPARSE_MAX];
            tw_part parts[8];
            size_t n = build(fmts[f], np, 1000000 + np, buf, parts);
            assert_true(n > 0);
            assert_true(ddp_win_reparse_has_tag(buf, n));
            ddp_win_reparse rp;
            assert_int_equal(ddp_win_reparse_parse(buf, n, &rp), S_OK);
            assert_int_equal(rp.format, fmts[f]);
            assert_int_equal(rp.file_size, 1000000 + np);
            assert_int_equal(rp.nentries, np);
            assert_int_equal(rp.has_filetime, fmts[f] == 0x0103);
            if (fmts[f] == 0x0103) assert_int_equal(rp.chunk_crcs_bad, 0);
            for (unsigned i = 0; i < np; i++) {
                assert_int_equal(rp.entries[i].seq, parts[i].seq);
                assert_int_equal(rp.entries[i].stream_cid, parts[i].cid);
                assert_int_equal(rp.entries[i].offset, parts[i].offset);
                assert_int_equal(rp.entries[i].smap_size, parts[i].smap_size);
                assert_int_equal(rp.entries[i].part_begin, parts[i].begin);
                assert_int_equal(rp.entries[i].part_end, parts[i].end);
                unsigned hl = fmts[f] == 0x0201 || (fmts[f] == 0x0102 && np == 1) ? 32 : 16;
                assert_int_equal(rp.entries[i].hash_len, hl);
                assert_memory_equal(rp.entries[i].hash, parts[i].hash, hl);
            }
        }
    }
}

static void test_reparse_zero_byte(void **state)
{
    (void)state;
    static const uint16_t fmts[] = { 0x0201, 0x0102, 0x0103 };
    for (int f = 0; f < 3; f++) {
        uint8_t buf[TW_REPARSE_MAX], guid[16] = { 1 };
        tw_part p = { .seq = 1, .cid = 0x10000, .offset = 0x5000, .smap_size = 8 };
        size_t n = tw_reparse_build(fmts[f], guid, 0, 0, &p, 1, buf);
        ddp_win_reparse rp;
        assert_int_equal(ddp_win_reparse_parse(buf, n, &rp), S_OK);
        assert_int_equal(rp.file_size, 0);
        /* An empty stream map for a non-empty file is refused. */
        p.end = 10;
        n = tw_reparse_build(fmts[f], guid, 10, 0, &p, 1, buf);
        assert_int_equal(ddp_win_reparse_parse(buf, n, &rp), DDP_E_INVALID_DATA);
        assert_non_null(strstr(ddp_error_detail(), "empty stream map"));
    }
}

static void test_reparse_truncations_and_flips(void **state)
{
    (void)state;
    static const uint16_t fmts[] = { 0x0201, 0x0102, 0x0103 };
    for (int f = 0; f < 3; f++) {
        uint8_t buf[TW_REPARSE_MAX];
        tw_part parts[2];
        size_t n = build(fmts[f], fmts[f] == 0x0201 ? 1 : 2, 555555, buf, parts);
        ddp_win_reparse rp;
        for (size_t k = 0; k < n; k++) {
            ddp_clear_error();
            assert_int_equal(ddp_win_reparse_parse(buf, k, &rp), DDP_E_INVALID_DATA);
            assert_true(ddp_error_detail()[0] != 0);
        }
        uint8_t big[TW_REPARSE_MAX + 4];
        memcpy(big, buf, n);
        big[n] = 0;
        assert_int_equal(ddp_win_reparse_parse(big, n + 1, &rp), DDP_E_INVALID_DATA);
        for (size_t k = 0; k < n; k++) {
            if (k == 6 || k == 7) continue; /* the header's reserved word: not covered, not checked */
            for (int bit = 0; bit < 8; bit += 3) {
                buf[k] ^= (uint8_t)(1u << bit);
                if (ddp_win_reparse_parse(buf, n, &rp) != DDP_E_INVALID_DATA)
                    fail_msg("format 0x%04x: flip of byte %zu bit %d accepted", fmts[f], k, bit);
                buf[k] ^= (uint8_t)(1u << bit);
            }
        }
        assert_int_equal(ddp_win_reparse_parse(buf, n, &rp), S_OK);
        ddp_clear_error();
        buf[n - 1] ^= 0x40;
        assert_int_equal(ddp_win_reparse_parse(buf, n, &rp), DDP_E_INVALID_DATA);
        assert_non_null(strstr(ddp_error_detail(), "CRC-32"));
    }
}

/* Edit a field, recompute the trailer, expect a refusal naming `needle`. */
static void expect_bad(uint8_t *buf, size_t n, const char *needle)
{
    tw_reparse_fix_crc(buf, n);
    ddp_win_reparse rp;
    ddp_clear_error();
    assert_int_equal(ddp_win_reparse_parse(buf, n, &rp), DDP_E_INVALID_DATA);
    if (!strstr(ddp_error_detail(), needle)) fail_msg("detail '%s' lacks '%s'", ddp_error_detail(), needle);
}

static void test_reparse_hostile_fields(void **state)
{
    (void)state;
    uint8_t buf[TW_REPARSE_MAX], b2[TW_REPARSE_MAX];
    tw_part parts[3];
    ddp_win_reparse rp;
    size_t n;

    /* Parts: a gap, an overlap, reversed, not reaching the size, not from 0. */
    struct {
        int idx;
        uint64_t begin, end;
        const char *needle;
    } cases[] = {
        { 1, 0, 0, "contiguous" },  /* part 1 begins at 0 (overlap) */
        { 1, 1, 0, "contiguous" },  /* a gap */
        { 0, 1, 0, "contiguous" },  /* first part not from 0 */
        { 2, 0, 1, "file size" },   /* last ends before the size */
        { 2, 0, 2, "file size" },   /* ... or after it */
    };
    uint8_t g[16] = { 9, 8, 7 };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        build(0x0103, 3, 3000, buf, parts);
        tw_part *p = &parts[cases[c].idx];
        if (c == 0) p->begin = 0;
        if (c == 1) p->begin += 1;
        if (c == 2) p->begin = 1;
        if (c == 3) p->end -= 1;
        if (c == 4) p->end += 1;
        n = tw_reparse_build(0x0103, g, 3000, 0, parts, 3, b2);
        ddp_clear_error();
        assert_int_equal(ddp_win_reparse_parse(b2, n, &rp), DDP_E_INVALID_DATA);
        if (!strstr(ddp_error_detail(), cases[c].needle))
            fail_msg("case %zu: detail '%s' lacks '%s'", c, ddp_error_detail(), cases[c].needle);
    }

    /* smap_size not 8 + 64 k. */
    n = build(0x0201, 1, 4000, buf, parts);
    ddp_put_le32(buf + 0x58, 100);
    expect_bad(buf, n, "stream-map size");
    /* Unknown format word. */
    n = build(0x0201, 1, 4000, buf, parts);
    ddp_put_le16(buf + 8, 0x0301);
    expect_bad(buf, n, "format word");
    /* Length word disagreeing with ReparseDataLength. */
    n = build(0x0201, 1, 4000, buf, parts);
    ddp_put_le16(buf + 10, 0x80);
    expect_bad(buf, n, "differs");
    /* 0x0102: too many rows, a row pointing outside, a missing GUID row, entries of 65 bytes. */
    n = build(0x0102, 1, 4000, buf, parts);
    ddp_put_le32(buf + 12, 1000);
    expect_bad(buf, n, "table rows");
    n = build(0x0102, 1, 4000, buf, parts);
    ddp_put_le16(buf + 0x16 + 8 * 8, 0xf0); /* the entry row at 0xf0: 64 bytes do not fit */
    expect_bad(buf, n, "outside");
    n = build(0x0102, 1, 4000, buf, parts);
    ddp_put_le32(buf + 0x10 + 8 * 4, 7); /* the GUID row's type */
    expect_bad(buf, n, "GUID");
    n = build(0x0102, 1, 4000, buf, parts);
    ddp_put_le16(buf + 0x14 + 8 * 8, 65);
    expect_bad(buf, n, "multiple of 64");
    /* 0x0103: FeRp size beyond the buffer, a wrong magic, a row outside its chunk,
     * DdRp {seq, cid} disagreeing with its entry, a missing file-size row. */
    n = build(0x0103, 1, 4000, buf, parts);
    ddp_put_le32(buf + 12 + 8, 0x400);
    expect_bad(buf, n, "FeRp");
    n = build(0x0103, 1, 4000, buf, parts);
    buf[12] = 'X';
    expect_bad(buf, n, "FeRp expected");
    n = build(0x0103, 1, 4000, buf, parts);
    ddp_put_le32(buf + 12 + 16 + 8 * 2 + 4, 0x170); /* GUID at 0x170: 16 bytes pass the end */
    expect_bad(buf, n, "outside");
    n = build(0x0103, 1, 4000, buf, parts);
    {
        uint8_t *dd = buf + 12 + 0x108;
        ddp_put_le32(dd + 0x2c, 999);
        ddp_put_le32(dd + 4, ddp_win_crc32(dd + 8, ddp_get_le32(dd + 8) - 8));
    }
    expect_bad(buf, n, "disagrees");
    n = build(0x0103, 1, 4000, buf, parts);
    ddp_put_le16(buf + 12 + 16 + 8 * 4, 5); /* the u64 size row becomes a u32 row */
    expect_bad(buf, n, "file-size");
    /* Tag. */
    n = build(0x0103, 1, 4000, buf, parts);
    ddp_put_le32(buf, 0x8000001C);
    expect_bad(buf, n, "tag");
    assert_false(ddp_win_reparse_has_tag(buf, n));
    assert_int_equal(ddp_win_reparse_parse(NULL, 10, &rp), E_INVALIDARG);
}

/* ---- container records --------------------------------------------------------------------- */

static void test_container_records(void **state)
{
    (void)state;
    uint8_t hash[32];
    tu_fill_random(hash, 32, 5);
    for (int conv = DDP_WIN_CRC64_INIT0; conv <= DDP_WIN_CRC64_NVME; conv++) {
        uint8_t c[DDP_WIN_CTHR_SIZE];
        tw_cthr(c, 0x10000, 3, 0x123456, (ddp_win_crc64_conv)conv);
        ddp_win_cthr ct;
        assert_int_equal(ddp_win_cthr_parse(c, sizeof c, "t", &ct), S_OK);
        assert_int_equal(ct.cid, 0x10000);
        assert_int_equal(ct.gen, 3);
        assert_int_equal(ct.valid_data_length, 0x123456);
        assert_int_equal(ct.rrtl_offset, 0x3000);
        assert_int_equal(ct.crc, conv);

        uint8_t d[DDP_WIN_DATA_HDR_SIZE];
        tw_data_hdr(d, 77, 0x1bd2, 2, hash, (ddp_win_crc64_conv)conv);
        ddp_win_data_hdr dh;
        assert_int_equal(ddp_win_data_hdr_parse(d, sizeof d, "t", &dh), S_OK);
        assert_int_equal(dh.seq, 77);
        assert_int_equal(dh.payload_size, 0x1bd2);
        assert_int_equal(dh.compression, 2);
        assert_memory_equal(dh.hash, hash, 32);
        assert_int_equal(dh.crc, conv);
        d[0x30] ^= 1;
        assert_int_equal(ddp_win_data_hdr_parse(d, sizeof d, "t", &dh), S_OK);
        assert_int_equal(dh.crc, DDP_WIN_CRC64_UNKNOWN);

        uint8_t s[DDP_WIN_SMAP_ENTRIES_AT];
        tw_smap_hdr(s, 0x82, 2, hash, (ddp_win_crc64_conv)conv);
        ddp_win_smap_hdr sh;
        assert_int_equal(ddp_win_smap_hdr_parse(s, sizeof s, "t", &sh), S_OK);
        assert_int_equal(sh.seq, 0x82);
        assert_int_equal(sh.payload_size, 136);
        assert_int_equal(sh.nentries, 2);
        assert_int_equal(sh.crc, conv);
        assert_memory_equal(sh.hash, hash, 32);
    }
    /* Hostile records. */
    uint8_t d[DDP_WIN_DATA_HDR_SIZE], s[DDP_WIN_SMAP_ENTRIES_AT];
    ddp_win_data_hdr dh;
    ddp_win_smap_hdr sh;
    tw_data_hdr(d, 1, 10, 0, hash, DDP_WIN_CRC64_NVME);
    assert_int_equal(ddp_win_data_hdr_parse(d, 87, "Data/x @0x5000", &dh), DDP_E_FILE_CORRUPT);
    assert_non_null(strstr(ddp_error_detail(), "Data/x @0x5000"));
    d[1] = 'X';
    assert_int_equal(ddp_win_data_hdr_parse(d, sizeof d, "t", &dh), DDP_E_FILE_CORRUPT);
    assert_non_null(strstr(ddp_error_detail(), "Ckhr"));
    tw_data_hdr(d, 1, 10, 0, hash, DDP_WIN_CRC64_NVME);
    ddp_put_le16(d + 0x12, 0x38); /* a stream-map header where a data one is due */
    assert_int_equal(ddp_win_data_hdr_parse(d, sizeof d, "t", &dh), DDP_E_FILE_CORRUPT);
    tw_smap_hdr(s, 1, 1, hash, DDP_WIN_CRC64_NVME);
    assert_int_equal(ddp_win_smap_hdr_parse(s, sizeof s - 1, "t", &sh), DDP_E_FILE_CORRUPT);
    s[0x68] = 'x';
    assert_int_equal(ddp_win_smap_hdr_parse(s, sizeof s, "t", &sh), DDP_E_FILE_CORRUPT);
    assert_non_null(strstr(ddp_error_detail(), "Smap"));
    tw_smap_hdr(s, 1, 1, hash, DDP_WIN_CRC64_NVME);
    ddp_put_le32(s + 0x0C, 8 + 64 + 1);
    assert_int_equal(ddp_win_smap_hdr_parse(s, sizeof s, "t", &sh), DDP_E_FILE_CORRUPT);
    ddp_put_le32(s + 0x0C, 4);
    assert_int_equal(ddp_win_smap_hdr_parse(s, sizeof s, "t", &sh), DDP_E_FILE_CORRUPT);
    ddp_put_le32(s + 0x0C, 8 + 64u * 0x1000000u);
    assert_int_equal(ddp_win_smap_hdr_parse(s, sizeof s, "t", &sh), DDP_E_FILE_CORRUPT);
    ddp_win_cthr ct;
    uint8_t c[64] = { 0 };
    assert_int_equal(ddp_win_cthr_parse(c, sizeof c, "t", &ct), DDP_E_FILE_CORRUPT);
}

static void test_rrtl(void **state)
{
    (void)state;
    uint32_t seqs[5] = { 2, 5, 9, 100, 0xFFFFFFF0u }, offs[5] = { 0x5000, 0x5100, 0x5200, 0x9000, 0xA000 };
    uint8_t t[0x20 + 40];
    tw_rrtl(t, seqs, offs, 5, DDP_WIN_CRC64_NVME);
    ddp_win_rrtl r;
    assert_int_equal(ddp_win_rrtl_parse(t, sizeof t, "t", &r), S_OK);
    assert_int_equal(r.count, 5);
    assert_int_equal(ddp_win_rrtl_check_sorted(t + 0x20, 5, "t"), S_OK);
    uint32_t o = 0;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(ddp_win_rrtl_lookup(t + 0x20, 5, seqs[i], &o), 1);
        assert_int_equal(o, offs[i]);
    }
    assert_int_equal(ddp_win_rrtl_lookup(t + 0x20, 5, 3, &o), 0);
    assert_int_equal(ddp_win_rrtl_lookup(t + 0x20, 5, 0, &o), 0);
    assert_int_equal(ddp_win_rrtl_lookup(t + 0x20, 0, 2, &o), 0);
    ddp_put_le32(t + 0x20 + 8 * 2, 5); /* a duplicate seq */
    assert_int_equal(ddp_win_rrtl_check_sorted(t + 0x20, 5, "t"), DDP_E_FILE_CORRUPT);
    ddp_put_le32(t + 0x0C, 12);
    assert_int_equal(ddp_win_rrtl_parse(t, sizeof t, "t", &r), DDP_E_FILE_CORRUPT);
    ddp_put_le32(t + 0x0C, 8);
    ddp_put_le32(t + 0x08, DDP_WIN_RRTL_MAX_COUNT + 1);
    assert_int_equal(ddp_win_rrtl_parse(t, sizeof t, "t", &r), DDP_E_FILE_CORRUPT);
    t[0] = 'r';
    assert_int_equal(ddp_win_rrtl_parse(t, sizeof t, "t", &r), DDP_E_FILE_CORRUPT);
}

static void test_ccc_names(void **state)
{
    (void)state;
    uint32_t c = 0, g = 0;
    assert_int_equal(ddp_win_ccc_name_parse("00010000.00000001.ccc", &c, &g), 1);
    assert_int_equal(c, 0x10000);
    assert_int_equal(g, 1);
    assert_int_equal(ddp_win_ccc_name_parse("0001000a.0000000B.CCC", &c, &g), 1);
    assert_int_equal(c, 0x1000a);
    assert_int_equal(g, 0xb);
    const char *bad[] = { "00010000.00000001.ccc.delete", "00010000.00000001.ccc_", "x0010000.00000001.ccc",
                          "0001000.000000001.ccc", "00010000.00000001.cc", "00010000-00000001.ccc",
                          "00010000.00000001.ccd", "delete.00000001.ccc", "", "00010000.0000001g.ccc" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (ddp_win_ccc_name_parse(bad[i], &c, &g)) fail_msg("'%s' accepted as a container name", bad[i]);
    char name[22];
    ddp_win_ccc_name(0xABCDEF01u, 0x10000, name);
    assert_string_equal(name, "ABCDEF01.00010000.ccc");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc_check_values),
        cmocka_unit_test(test_sample_0103),
        cmocka_unit_test(test_sample_smap_entries),
        cmocka_unit_test(test_sample_facts),
        cmocka_unit_test(test_reparse_roundtrip),
        cmocka_unit_test(test_reparse_zero_byte),
        cmocka_unit_test(test_reparse_truncations_and_flips),
        cmocka_unit_test(test_reparse_hostile_fields),
        cmocka_unit_test(test_container_records),
        cmocka_unit_test(test_rrtl),
        cmocka_unit_test(test_ccc_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
