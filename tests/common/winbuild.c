/* SPDX-License-Identifier: MIT */
/*
 * tests/common/winbuild.c: writers of Windows dedup structures for tests
 * and the generator (winbuild.h). Layouts: docs/WINDOWS.md.
 */
#include "winbuild.h"

#include <string.h>

#include "base/util.h"

static void put_entry(uint8_t *e, const tw_part *p)
{
    memset(e, 0, 64);
    ddp_put_le32(e, p->seq);
    ddp_put_le32(e + 0x04, p->cid);
    ddp_put_le32(e + 0x08, p->offset);
    ddp_put_le32(e + 0x18, p->smap_size);
    memcpy(e + 0x20, p->hash, 16);
    ddp_put_le64(e + 0x30, p->end);
    ddp_put_le64(e + 0x38, p->begin);
}

void tw_reparse_fix_crc(uint8_t *buf, size_t n)
{
    if (n < 12) return;
    ddp_put_le32(buf + n - 4, ddp_win_crc32(buf + 8, n - 12));
}

/* A property chunk header at c: magic, size, rows; the CRC is set by chunk_seal. */
static void chunk_head(uint8_t *c, uint32_t magic, uint32_t size, uint16_t nrows)
{
    ddp_put_le32(c, magic);
    ddp_put_le32(c + 8, size);
    ddp_put_le16(c + 12, 0);
    ddp_put_le16(c + 14, nrows);
}
static void chunk_row(uint8_t *c, unsigned i, uint16_t type, uint16_t size, uint32_t off)
{
    uint8_t *r = c + 16 + 8 * i;
    ddp_put_le16(r, type);
    ddp_put_le16(r + 2, size);
    ddp_put_le32(r + 4, off);
}
static void chunk_seal(uint8_t *c) { ddp_put_le32(c + 4, ddp_win_crc32(c + 8, ddp_get_le32(c + 8) - 8)); }

size_t tw_reparse_build(uint16_t format, const uint8_t guid[16], uint64_t size, uint64_t filetime,
                        const tw_part *parts, unsigned nparts, uint8_t *out)
{
    memset(out, 0, TW_REPARSE_MAX);
    if (nparts == 0 || nparts > 32) return 0;
    ddp_put_le32(out, 0x80000013u);
    uint8_t *d = out + 8;
    uint32_t N;
    if (format == 0x0201) {
        if (nparts != 1) return 0;
        N = 0x7C;
        ddp_put_le64(out + 0x10, size);
        memcpy(out + 0x20, guid, 16);
        ddp_put_le32(out + 0x40, parts[0].seq);
        ddp_put_le32(out + 0x44, parts[0].cid);
        ddp_put_le32(out + 0x48, parts[0].offset);
        ddp_put_le32(out + 0x58, parts[0].smap_size);
        memcpy(out + 0x60, parts[0].hash, 32);
    } else if (format == 0x0102) {
        uint32_t k = 64 * nparts, hash_at = 0x94 + k, tail_at = hash_at + 32;
        N = tail_at + 8 + 4;
        static const uint16_t fixed[][3] = { { 4, 4, 0x60 }, { 3, 4, 0x64 }, { 3, 4, 0x68 }, { 6, 8, 0x6c },
                                             { 9, 16, 0x74 }, { 5, 8, 0x84 }, { 6, 8, 0x8c } };
        ddp_put_le32(d + 4, 11);
        unsigned r = 0;
        for (; r < 7; r++) {
            ddp_put_le32(d + 8 + 8 * r, fixed[r][0]);
            ddp_put_le16(d + 12 + 8 * r, fixed[r][1]);
            ddp_put_le16(d + 14 + 8 * r, fixed[r][2]);
        }
        uint16_t rest[][3] = { { 10, 32, (uint16_t)hash_at }, { 8, (uint16_t)k, 0x94 }, { 0, 0, 0 }, { 5, 8, (uint16_t)tail_at } };
        for (unsigned j = 0; j < 4; j++, r++) {
            ddp_put_le32(d + 8 + 8 * r, rest[j][0]);
            ddp_put_le16(d + 12 + 8 * r, rest[j][1]);
            ddp_put_le16(d + 14 + 8 * r, rest[j][2]);
        }
        ddp_put_le32(d + 0x60, 1);
        memcpy(d + 0x74, guid, 16);
        for (unsigned i = 0; i < nparts; i++) put_entry(d + 0x94 + 64 * i, &parts[i]);
        memcpy(d + hash_at, parts[0].hash, 32);
    } else if (format == 0x0103) {
        uint8_t *fe = d + 4;
        uint32_t rb_at = 0x88, rb_size = 0x80, dd_at = rb_at + rb_size, dd_size = 0x34 + 64 * nparts;
        uint32_t fe_size = dd_at + dd_size;
        N = 4 + fe_size + 4;
        chunk_head(fe, 0x70526546u, fe_size, 9);
        chunk_row(fe, 0, 10, 4, 0x5c);
        chunk_row(fe, 1, 10, 4, 0x58);
        chunk_row(fe, 2, 12, 16, 0x60);
        chunk_row(fe, 3, 11, 8, 0x70);
        chunk_row(fe, 4, 6, 8, 0x78);
        chunk_row(fe, 5, 5, 4, 0x80);
        chunk_row(fe, 6, 9, 4, 0x84);
        chunk_row(fe, 7, 13, (uint16_t)rb_size, rb_at);
        chunk_row(fe, 8, 13, (uint16_t)dd_size, dd_at);
        ddp_put_le32(fe + 0x5c, 1);
        memcpy(fe + 0x60, guid, 16);
        ddp_put_le64(fe + 0x70, filetime);
        ddp_put_le64(fe + 0x78, size);
        uint8_t *rb = fe + rb_at;
        chunk_head(rb, 0x70526252u, rb_size, 8);
        chunk_row(rb, 0, 10, 4, 0x50);
        chunk_row(rb, 1, 9, 4, 0x74);
        chunk_row(rb, 2, 9, 4, 0x70);
        chunk_row(rb, 3, 6, 8, 0x78);
        chunk_row(rb, 4, 6, 8, 0x54);
        chunk_row(rb, 5, 12, 16, 0x5c);
        chunk_row(rb, 6, 0, 0, 0);
        chunk_row(rb, 7, 5, 4, 0x6c);
        ddp_put_le32(rb + 0x50, 1);
        chunk_seal(rb);
        uint8_t *dd = fe + dd_at;
        chunk_head(dd, 0x70526444u, dd_size, 3);
        chunk_row(dd, 0, 10, 4, 0x28);
        chunk_row(dd, 1, 14, 8, 0x2c);
        chunk_row(dd, 2, 13, (uint16_t)(64 * nparts), 0x34);
        ddp_put_le32(dd + 0x28, 1);
        ddp_put_le32(dd + 0x2c, parts[0].seq);
        ddp_put_le32(dd + 0x30, parts[0].cid);
        for (unsigned i = 0; i < nparts; i++) put_entry(dd + 0x34 + 64 * i, &parts[i]);
        chunk_seal(dd);
        chunk_seal(fe);
    } else {
        return 0;
    }
    if (N + 8 > TW_REPARSE_MAX || N > 0xFFFF) return 0;
    ddp_put_le16(out + 4, (uint16_t)N);
    ddp_put_le16(d, format);
    ddp_put_le16(d + 2, (uint16_t)N);
    tw_reparse_fix_crc(out, N + 8);
    return N + 8;
}

static const uint8_t ckhr_version[4] = { 0x01, 0x03, 0x03, 0x01 };

void tw_cthr(uint8_t out[DDP_WIN_CTHR_SIZE], uint32_t cid, uint32_t gen, uint64_t valid_len, ddp_win_crc64_conv conv)
{
    memset(out, 0, DDP_WIN_CTHR_SIZE);
    ddp_put_le32(out, DDP_WIN_MAGIC_CTHR);
    memcpy(out + 4, ckhr_version, 4);
    ddp_put_le64(out + 0x08, 1);
    ddp_put_le32(out + 0x10, cid);
    ddp_put_le32(out + 0x14, gen);
    ddp_put_le64(out + 0x20, valid_len);
    ddp_put_le32(out + 0x30, DDP_WIN_RRTL_OFFSET);
    ddp_put_le64(out + 0x38, ddp_win_crc64(conv, out, 0x38));
}

void tw_data_hdr(uint8_t out[DDP_WIN_DATA_HDR_SIZE], uint32_t seq, uint32_t stored, uint32_t compression,
                 const uint8_t hash[32], ddp_win_crc64_conv conv)
{
    memset(out, 0, DDP_WIN_DATA_HDR_SIZE);
    ddp_put_le32(out, DDP_WIN_MAGIC_CKHR);
    memcpy(out + 4, ckhr_version, 4);
    ddp_put_le32(out + 0x08, seq);
    ddp_put_le32(out + 0x0C, stored);
    ddp_put_le16(out + 0x10, 1);
    ddp_put_le16(out + 0x12, 0x28);
    ddp_put_le32(out + 0x20, compression);
    memcpy(out + 0x28, hash, 32);
    ddp_put_le64(out + 0x50, ddp_win_crc64(conv, out, 0x50));
}

void tw_smap_hdr(uint8_t out[DDP_WIN_SMAP_ENTRIES_AT], uint32_t seq, uint32_t nentries, const uint8_t hash[32],
                 ddp_win_crc64_conv conv)
{
    memset(out, 0, DDP_WIN_SMAP_ENTRIES_AT);
    ddp_put_le32(out, DDP_WIN_MAGIC_CKHR);
    memcpy(out + 4, ckhr_version, 4);
    ddp_put_le32(out + 0x08, seq);
    ddp_put_le32(out + 0x0C, 8 + 64 * nentries);
    ddp_put_le16(out + 0x10, 2);
    ddp_put_le16(out + 0x12, 0x38);
    memcpy(out + 0x38, hash, 32);
    ddp_put_le64(out + 0x60, ddp_win_crc64(conv, out, 0x60));
    ddp_put_le32(out + 0x68, DDP_WIN_MAGIC_SMAP);
    static const uint8_t smap_version[4] = { 0x01, 0x04, 0x04, 0x01 };
    memcpy(out + 0x6C, smap_version, 4);
}

void tw_smap_entry(uint8_t out[DDP_WIN_SMAP_ENTRY_SIZE], const ddp_win_smap_entry *e)
{
    memset(out, 0, DDP_WIN_SMAP_ENTRY_SIZE);
    ddp_put_le32(out, e->seq);
    ddp_put_le32(out + 0x04, e->cid);
    ddp_put_le32(out + 0x08, e->offset);
    ddp_put_le32(out + 0x0C, e->gen);
    ddp_put_le64(out + 0x10, e->end);
    memcpy(out + 0x18, e->hash, 32);
    ddp_put_le32(out + 0x38, e->stored);
    ddp_put_le32(out + 0x3C, e->reserved);
}

void tw_rrtl(uint8_t *out, const uint32_t *seqs, const uint32_t *offsets, uint32_t count, ddp_win_crc64_conv conv)
{
    memset(out, 0, 0x20);
    ddp_put_le32(out, DDP_WIN_MAGIC_RRTL);
    memcpy(out + 4, ckhr_version, 4);
    ddp_put_le32(out + 0x08, count);
    ddp_put_le32(out + 0x0C, 8);
    ddp_put_le64(out + 0x18, ddp_win_crc64(conv, out, 0x18));
    for (uint32_t i = 0; i < count; i++) {
        ddp_put_le32(out + 0x20 + 8 * i, seqs[i]);
        ddp_put_le32(out + 0x24 + 8 * i, offsets[i]);
    }
}
