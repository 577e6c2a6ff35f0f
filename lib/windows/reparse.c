/* SPDX-License-Identifier: MIT */
/*
 * windows/reparse.c: parser of Windows' dedup reparse point in its three
 * formats (0x0201 fixed, 0x0102 property table, 0x0103 FeRp/RbRp/DdRp
 * chunks). Layouts and confidence tags: docs/WINDOWS.md.
 */
#include "windows/reparse.h"

#include <stdio.h>
#include <string.h>

#include "base/util.h"
#include "windows/crc.h"

#define BAD(...) ddp_fail(DDP_E_INVALID_DATA, "dedup reparse point: " __VA_ARGS__)

#define MAGIC_FERP 0x70526546u
#define MAGIC_RBRP 0x70526252u
#define MAGIC_DDRP 0x70526444u

int ddp_win_reparse_has_tag(const void *buf, size_t n)
{
    return buf && n >= 8 && ddp_get_le32(buf) == DDP_WIN_REPARSE_TAG;
}

/* One 64-byte DEDUP_REPARSE_ENTRY. */
static void entry64(const uint8_t *e, ddp_win_reparse_entry *o)
{
    memset(o, 0, sizeof *o);
    o->seq = ddp_get_le32(e);
    o->stream_cid = ddp_get_le32(e + 0x04);
    o->offset = ddp_get_le32(e + 0x08);
    o->smap_size = ddp_get_le32(e + 0x18);
    memcpy(o->hash, e + 0x20, 16);
    o->hash_len = 16;
    o->part_end = ddp_get_le64(e + 0x30);
    o->part_begin = ddp_get_le64(e + 0x38);
}

/* k 64-byte entries at e (value at buffer offset `at`). */
static HRESULT take_entries(const uint8_t *e, uint32_t size, size_t at, ddp_win_reparse *out)
{
    if (size == 0 || size % 64 != 0)
        return BAD("entry value at buffer offset 0x%zx is %u bytes, not a multiple of 64", at, size);
    if (size / 64 > DDP_WIN_REPARSE_MAX_ENTRIES)
        return BAD("%u entries at buffer offset 0x%zx (at most %u are supported)", size / 64, at,
                   DDP_WIN_REPARSE_MAX_ENTRIES);
    out->nentries = size / 64;
    for (uint32_t i = 0; i < out->nentries; i++) entry64(e + 64 * i, &out->entries[i]);
    return S_OK;
}

/* ---- 0x0201 -------------------------------------------------------------------- */

static HRESULT parse_0201(const uint8_t *b, size_t n, ddp_win_reparse *out)
{
    if (n != 8 + 0x7C) return BAD("format 0x0201 with data length 0x%zx (0x7C expected)", n - 8);
    out->file_size = ddp_get_le64(b + 0x10);
    memcpy(out->store_guid, b + 0x20, 16);
    ddp_win_reparse_entry *e = &out->entries[0];
    e->seq = ddp_get_le32(b + 0x40);
    e->stream_cid = ddp_get_le32(b + 0x44);
    e->offset = ddp_get_le32(b + 0x48);
    e->smap_size = ddp_get_le32(b + 0x58);
    memcpy(e->hash, b + 0x60, 32);
    e->hash_len = 32;
    e->part_begin = 0;
    e->part_end = out->file_size;
    out->nentries = 1;
    return S_OK;
}

/* ---- 0x0102 -------------------------------------------------------------------- */

static HRESULT parse_0102(const uint8_t *d, uint32_t N, ddp_win_reparse *out)
{
    const uint32_t end = N - 4; /* values stop before the CRC */
    if (end < 8) return BAD("format 0x0102: data length 0x%x too short for its table header", N);
    uint32_t nrows = ddp_get_le32(d + 4);
    if (nrows == 0 || nrows > (end - 8) / 8)
        return BAD("format 0x0102: %u table rows at buffer offset 0x0C do not fit in data length 0x%x", nrows, N);
    const uint32_t values = 8 + 8 * nrows;
    int have_guid = 0, have_entries = 0, have_hash = 0;
    uint8_t full_hash[32];
    for (uint32_t i = 0; i < nrows; i++) {
        const uint8_t *r = d + 8 + 8 * i;
        uint32_t type = ddp_get_le32(r);
        uint32_t size = ddp_get_le16(r + 4), off = ddp_get_le16(r + 6);
        size_t at = 8 + 8 + 8 * (size_t)i; /* buffer offset of the row */
        if (type == 0) continue;           /* placeholder row */
        if (off < values || off > end || size > end - off)
            return BAD("format 0x0102: row %u (buffer offset 0x%zx) points at [0x%x, +%u), outside the values "
                       "[0x%x, 0x%x) of the data", i, at, off, size, values, end);
        if (type == 9) {
            if (size != 16) return BAD("format 0x0102: GUID row %u (buffer offset 0x%zx) is %u bytes, not 16", i, at, size);
            if (have_guid++) return BAD("format 0x0102: two GUID rows (second: row %u)", i);
            memcpy(out->store_guid, d + off, 16);
        } else if (type == 8) {
            if (have_entries++) return BAD("format 0x0102: two entry rows (second: row %u)", i);
            HRESULT hr = take_entries(d + off, size, 8 + (size_t)off, out);
            if (FAILED(hr)) return hr;
        } else if (type == 10 && size == 32) {
            if (have_hash++) return BAD("format 0x0102: two 32-byte hash rows (second: row %u)", i);
            memcpy(full_hash, d + off, 32);
        }
    }
    if (!have_guid) return BAD("format 0x0102: no chunk-store GUID row (type 9) in the table");
    if (!have_entries) return BAD("format 0x0102: no entry row (type 8) in the table");
    /* The type-10 row holds the whole stream-map hash when its first 16 bytes
     * are the entry's prefix: then all 32 bytes are compared later. */
    if (have_hash && out->nentries == 1 && memcmp(full_hash, out->entries[0].hash, 16) == 0) {
        memcpy(out->entries[0].hash, full_hash, 32);
        out->entries[0].hash_len = 32;
    }
    out->file_size = out->entries[out->nentries - 1].part_end;
    return S_OK;
}

/* ---- 0x0103 -------------------------------------------------------------------- */

typedef struct pchunk {
    const uint8_t *p; /* the magic */
    uint32_t size;
    uint32_t nrows;
    size_t at; /* buffer offset of the magic, for messages */
} pchunk;

static const char *magic_name(uint32_t m)
{
    return m == MAGIC_FERP ? "FeRp" : m == MAGIC_RBRP ? "RbRp" : "DdRp";
}

static HRESULT chunk_open(const uint8_t *p, size_t avail, uint32_t magic, size_t at, pchunk *c, ddp_win_reparse *out)
{
    if (avail < 16) return BAD("%s chunk at buffer offset 0x%zx: %zu bytes left, 16 needed", magic_name(magic), at, avail);
    if (ddp_get_le32(p) != magic)
        return BAD("chunk at buffer offset 0x%zx: magic 0x%08x, %s expected", at, ddp_get_le32(p), magic_name(magic));
    c->p = p;
    c->at = at;
    c->size = ddp_get_le32(p + 8);
    c->nrows = ddp_get_le16(p + 14);
    if (c->size < 16 || c->size > avail)
        return BAD("%s chunk at buffer offset 0x%zx: size 0x%x outside [16, 0x%zx]", magic_name(magic), at, c->size, avail);
    if (16 + 8 * (size_t)c->nrows > c->size)
        return BAD("%s chunk at buffer offset 0x%zx: %u rows do not fit in its 0x%x bytes", magic_name(magic), at,
                   c->nrows, c->size);
    out->chunk_crcs_checked++;
    if (ddp_win_crc32(p + 8, c->size - 8) != ddp_get_le32(p + 4)) out->chunk_crcs_bad++;
    return S_OK;
}

/* Row i of chunk c: its type, size and value (bounded by the chunk). */
static HRESULT chunk_row(const pchunk *c, uint32_t i, uint32_t *type, uint32_t *size, const uint8_t **val,
                         uint32_t *off)
{
    const uint8_t *r = c->p + 16 + 8 * (size_t)i;
    *type = ddp_get_le16(r);
    *size = ddp_get_le16(r + 2);
    *off = ddp_get_le32(r + 4);
    if (*type == 0) return S_OK; /* placeholder: never dereferenced */
    uint32_t first = 16 + 8 * c->nrows;
    if (*off < first || *off > c->size || *size > c->size - *off)
        return BAD("%s chunk at buffer offset 0x%zx: row %u (type %u) points at [0x%x, +%u), outside its values "
                   "[0x%x, 0x%x)", magic_name(ddp_get_le32(c->p)), c->at, i, *type, *off, *size, first, c->size);
    *val = c->p + *off;
    return S_OK;
}

static HRESULT parse_ddrp(const pchunk *dd, ddp_win_reparse *out)
{
    int have_entries = 0, have_id = 0;
    uint32_t id_seq = 0, id_cid = 0;
    for (uint32_t i = 0; i < dd->nrows; i++) {
        uint32_t type, size, off;
        const uint8_t *v = NULL;
        HRESULT hr = chunk_row(dd, i, &type, &size, &v, &off);
        if (FAILED(hr)) return hr;
        if (type == 13) {
            if (have_entries++) return BAD("DdRp chunk at buffer offset 0x%zx: two entry rows (second: row %u)", dd->at, i);
            hr = take_entries(v, size, dd->at + off, out);
            if (FAILED(hr)) return hr;
        } else if (type == 14) {
            if (size != 8) return BAD("DdRp chunk at buffer offset 0x%zx: row %u {seq, cid} is %u bytes, not 8", dd->at, i, size);
            have_id = 1;
            id_seq = ddp_get_le32(v);
            id_cid = ddp_get_le32(v + 4);
        }
    }
    if (!have_entries) return BAD("DdRp chunk at buffer offset 0x%zx: no entry row (type 13)", dd->at);
    if (have_id && (id_seq != out->entries[0].seq || id_cid != out->entries[0].stream_cid))
        return BAD("DdRp chunk at buffer offset 0x%zx: {seq %u, cid 0x%08X} disagrees with its entry {seq %u, cid 0x%08X}",
                   dd->at, id_seq, id_cid, out->entries[0].seq, out->entries[0].stream_cid);
    return S_OK;
}

static HRESULT parse_0103(const uint8_t *d, uint32_t N, ddp_win_reparse *out)
{
    pchunk fe;
    HRESULT hr = chunk_open(d + 4, (size_t)N - 8, MAGIC_FERP, 8 + 4, &fe, out);
    if (FAILED(hr)) return hr;
    out->ferp_size = fe.size;
    out->ferp_rows = fe.nrows;
    int have_guid = 0, have_size = 0, have_ddrp = 0;
    for (uint32_t i = 0; i < fe.nrows; i++) {
        uint32_t type, size, off;
        const uint8_t *v = NULL;
        hr = chunk_row(&fe, i, &type, &size, &v, &off);
        if (FAILED(hr)) return hr;
        switch (type) {
        case 12:
            if (size != 16) return BAD("FeRp row %u: GUID of %u bytes", i, size);
            if (have_guid++) return BAD("FeRp: two GUID rows (second: row %u)", i);
            memcpy(out->store_guid, v, 16);
            break;
        case 11:
            if (size != 8) return BAD("FeRp row %u: FILETIME of %u bytes", i, size);
            if (!out->has_filetime) {
                out->filetime = ddp_get_le64(v);
                out->has_filetime = 1;
            }
            break;
        case 6:
            if (size != 8) return BAD("FeRp row %u: u64 of %u bytes", i, size);
            if (have_size++) return BAD("FeRp: two u64 rows (second: row %u); which is the file size is unknown", i);
            out->file_size = ddp_get_le64(v);
            break;
        case 13: {
            if (size < 16) return BAD("FeRp row %u: nested blob of %u bytes", i, size);
            uint32_t m = ddp_get_le32(v);
            pchunk sub;
            if (m == MAGIC_RBRP) {
                hr = chunk_open(v, size, MAGIC_RBRP, fe.at + off, &sub, out);
                if (FAILED(hr)) return hr;
                out->rbrp_size = sub.size;
                out->rbrp_rows = sub.nrows;
                for (uint32_t k = 0; k < sub.nrows; k++) { /* bounds only: no field of it is needed */
                    uint32_t t2, s2, o2;
                    const uint8_t *v2 = NULL;
                    hr = chunk_row(&sub, k, &t2, &s2, &v2, &o2);
                    if (FAILED(hr)) return hr;
                }
            } else if (m == MAGIC_DDRP) {
                if (have_ddrp++) return BAD("FeRp: two DdRp chunks (second: row %u)", i);
                hr = chunk_open(v, size, MAGIC_DDRP, fe.at + off, &sub, out);
                if (SUCCEEDED(hr)) hr = parse_ddrp(&sub, out);
                if (FAILED(hr)) return hr;
            }
            break;
        }
        default: break;
        }
    }
    if (!have_guid) return BAD("FeRp: no chunk-store GUID row (type 12)");
    if (!have_size) return BAD("FeRp: no file-size row (type 6)");
    if (!have_ddrp) return BAD("FeRp: no DdRp chunk (type 13 row holding 'DdRp')");
    return S_OK;
}

/* ---- common ---------------------------------------------------------------------- */

static HRESULT check_parts(ddp_win_reparse *out)
{
    uint64_t at = 0;
    for (uint32_t i = 0; i < out->nentries; i++) {
        const ddp_win_reparse_entry *e = &out->entries[i];
        if (e->part_begin != at)
            return BAD("entry %u covers [%llu, %llu) but the previous part ended at %llu (parts must be contiguous from 0)",
                       i, (unsigned long long)e->part_begin, (unsigned long long)e->part_end, (unsigned long long)at);
        if (e->part_end < e->part_begin || (e->part_end == e->part_begin && out->file_size != 0))
            return BAD("entry %u covers [%llu, %llu): an empty or reversed part", i, (unsigned long long)e->part_begin,
                       (unsigned long long)e->part_end);
        if (e->smap_size < 8 || (e->smap_size - 8) % 64 != 0)
            return BAD("entry %u: stream-map size %u is not 8 + 64 * entries", i, e->smap_size);
        if (e->smap_size == 8 && e->part_end != e->part_begin)
            return BAD("entry %u: an empty stream map for %llu bytes", i,
                       (unsigned long long)(e->part_end - e->part_begin));
        at = e->part_end;
    }
    if (at != out->file_size)
        return BAD("the parts end at %llu but the file size is %llu", (unsigned long long)at,
                   (unsigned long long)out->file_size);
    if (out->file_size == 0 && out->nentries != 1) return BAD("a 0-byte file with %u parts", out->nentries);
    return S_OK;
}

HRESULT ddp_win_reparse_parse(const void *buf, size_t n, ddp_win_reparse *out)
{
    if (!buf || !out) return ddp_fail(E_INVALIDARG, "dedup reparse point: NULL argument");
    memset(out, 0, sizeof *out);
    const uint8_t *b = buf;
    if (n < 8 + 8) return BAD("%zu bytes, too short for a buffer (16 at least)", n);
    if (n > DDP_WIN_REPARSE_MAX) return BAD("%zu bytes, more than a reparse buffer holds (%u)", n, DDP_WIN_REPARSE_MAX);
    if (ddp_get_le32(b) != DDP_WIN_REPARSE_TAG)
        return BAD("tag 0x%08X at offset 0 is not IO_REPARSE_TAG_DEDUP (0x80000013)", ddp_get_le32(b));
    uint32_t N = ddp_get_le16(b + 4);
    if (N % 4 != 0 || N < 8) return BAD("ReparseDataLength 0x%x at offset 4 is not a multiple of 4 of at least 8", N);
    if ((size_t)N + 8 != n) return BAD("ReparseDataLength 0x%x at offset 4 says %u bytes, the buffer has %zu", N, N + 8, n);
    const uint8_t *d = b + 8;
    uint16_t fmt = ddp_get_le16(d);
    if (ddp_get_le16(d + 2) != N)
        return BAD("length 0x%x at offset 0x0A differs from ReparseDataLength 0x%x", ddp_get_le16(d + 2), N);
    uint32_t want = ddp_get_le32(d + N - 4), got = ddp_win_crc32(d, N - 4);
    if (want != got) return BAD("CRC-32 at offset 0x%x is 0x%08X, the data gives 0x%08X", 8 + N - 4, want, got);
    out->format = fmt;
    out->data_len = (uint16_t)N;
    HRESULT hr;
    switch (fmt) {
    case DDP_WIN_FMT_0201: hr = parse_0201(b, n, out); break;
    case DDP_WIN_FMT_0102: hr = parse_0102(d, N, out); break;
    case DDP_WIN_FMT_0103: hr = parse_0103(d, N, out); break;
    default: return BAD("unknown format word 0x%04X at offset 8 (0x0201, 0x0102, 0x0103 are known)", fmt);
    }
    if (SUCCEEDED(hr)) hr = check_parts(out);
    return hr;
}

void ddp_win_guid_format(const uint8_t g[16], char out[39])
{
    snprintf(out, 39, "{%08X-%04X-%04X-%02X%02X-%02X%02X%02X%02X%02X%02X}", ddp_get_le32(g), ddp_get_le16(g + 4),
             ddp_get_le16(g + 6), g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15]);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int ddp_win_guid_parse(const char *s, uint8_t g[16])
{
    if (!s) return -1;
    size_t len = strlen(s);
    int braces = len == 38 && s[0] == '{' && s[37] == '}';
    if (!braces && len != 36) return -1;
    if (braces) s++;
    uint8_t raw[16];
    int k = 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-') return -1;
            continue;
        }
        int h = hexval(s[i]), l = hexval(s[i + 1]);
        if (h < 0 || l < 0) return -1;
        raw[k++] = (uint8_t)(h << 4 | l);
        i++;
    }
    /* Text order -> Windows' byte order: Data1, Data2, Data3 little-endian. */
    g[0] = raw[3], g[1] = raw[2], g[2] = raw[1], g[3] = raw[0];
    g[4] = raw[5], g[5] = raw[4], g[6] = raw[7], g[7] = raw[6];
    memcpy(g + 8, raw + 8, 8);
    return 0;
}
