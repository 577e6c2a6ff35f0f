/* SPDX-License-Identifier: MIT */
/*
 * windows/container.c: parsers of the records in Windows' dedup containers
 * (Cthr, Rrtl, Ckhr data and stream-map headers, Smap entries) and of the
 * container file names. Layouts: docs/WINDOWS.md.
 */
#include "windows/container.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/util.h"

#define CORRUPT(...) ddp_fail(DDP_E_FILE_CORRUPT, __VA_ARGS__)

static const char *nz(const char *what) { return what ? what : "record"; }

HRESULT ddp_win_cthr_parse(const uint8_t *b, size_t n, const char *what, ddp_win_cthr *out)
{
    memset(out, 0, sizeof *out);
    if (n < DDP_WIN_CTHR_SIZE) return CORRUPT("%s: container header truncated (%zu of 64 bytes)", nz(what), n);
    if (ddp_get_le32(b) != DDP_WIN_MAGIC_CTHR)
        return CORRUPT("%s: container header magic 0x%08X is not 'Cthr'", nz(what), ddp_get_le32(b));
    out->usn = ddp_get_le64(b + 0x08);
    out->cid = ddp_get_le32(b + 0x10);
    out->gen = ddp_get_le32(b + 0x14);
    out->valid_data_length = ddp_get_le64(b + 0x20);
    out->rrtl_offset = ddp_get_le32(b + 0x30);
    out->crc64 = ddp_get_le64(b + 0x38);
    out->crc = ddp_win_crc64_match(b, 0x38, out->crc64);
    return S_OK;
}

/* The 32 bytes every Ckhr record starts with. */
static HRESULT ckhr_common(const uint8_t *b, const char *what, const char *kind, uint16_t hash_off, uint8_t version[4],
                           uint32_t *seq, uint32_t *payload, uint16_t *type)
{
    if (ddp_get_le32(b) != DDP_WIN_MAGIC_CKHR)
        return CORRUPT("%s: %s magic 0x%08X is not 'Ckhr'", nz(what), kind, ddp_get_le32(b));
    if (ddp_get_le16(b + 0x12) != hash_off)
        return CORRUPT("%s: %s word +0x12 is 0x%x, not 0x%x", nz(what), kind, ddp_get_le16(b + 0x12), hash_off);
    memcpy(version, b + 4, 4);
    *seq = ddp_get_le32(b + 0x08);
    *payload = ddp_get_le32(b + 0x0C);
    *type = ddp_get_le16(b + 0x10);
    return S_OK;
}

HRESULT ddp_win_data_hdr_parse(const uint8_t *b, size_t n, const char *what, ddp_win_data_hdr *out)
{
    memset(out, 0, sizeof *out);
    if (n < DDP_WIN_DATA_HDR_SIZE) return CORRUPT("%s: data chunk header truncated (%zu of 88 bytes)", nz(what), n);
    HRESULT hr = ckhr_common(b, what, "data chunk header", 0x28, out->version, &out->seq, &out->payload_size, &out->type);
    if (FAILED(hr)) return hr;
    out->compression = ddp_get_le32(b + 0x20);
    memcpy(out->hash, b + 0x28, 32);
    out->crc64 = ddp_get_le64(b + 0x50);
    out->crc = ddp_win_crc64_match(b, 0x50, out->crc64);
    return S_OK;
}

HRESULT ddp_win_smap_hdr_parse(const uint8_t *b, size_t n, const char *what, ddp_win_smap_hdr *out)
{
    memset(out, 0, sizeof *out);
    if (n < DDP_WIN_SMAP_ENTRIES_AT)
        return CORRUPT("%s: stream-map header truncated (%zu of 112 bytes)", nz(what), n);
    HRESULT hr = ckhr_common(b, what, "stream-map header", 0x38, out->version, &out->seq, &out->payload_size, &out->type);
    if (FAILED(hr)) return hr;
    memcpy(out->hash, b + 0x38, 32);
    out->crc64 = ddp_get_le64(b + 0x60);
    out->crc = ddp_win_crc64_match(b, 0x60, out->crc64);
    if (ddp_get_le32(b + DDP_WIN_SMAP_HDR_SIZE) != DDP_WIN_MAGIC_SMAP)
        return CORRUPT("%s: no 'Smap' at +0x68 (0x%08X)", nz(what), ddp_get_le32(b + DDP_WIN_SMAP_HDR_SIZE));
    if (out->payload_size < 8 || (out->payload_size - 8) % DDP_WIN_SMAP_ENTRY_SIZE != 0 ||
        out->payload_size > DDP_WIN_SMAP_MAX_SIZE)
        return CORRUPT("%s: stream-map payload size %u is not 8 + 64 * entries (at most %u bytes)", nz(what),
                       out->payload_size, DDP_WIN_SMAP_MAX_SIZE);
    out->nentries = (out->payload_size - 8) / DDP_WIN_SMAP_ENTRY_SIZE;
    return S_OK;
}

void ddp_win_smap_entry_parse(const uint8_t b[64], ddp_win_smap_entry *out)
{
    out->seq = ddp_get_le32(b);
    out->cid = ddp_get_le32(b + 0x04);
    out->offset = ddp_get_le32(b + 0x08);
    out->gen = ddp_get_le32(b + 0x0C);
    out->end = ddp_get_le64(b + 0x10);
    memcpy(out->hash, b + 0x18, 32);
    out->stored = ddp_get_le32(b + 0x38);
    out->reserved = ddp_get_le32(b + 0x3C);
}

HRESULT ddp_win_rrtl_parse(const uint8_t *b, size_t n, const char *what, ddp_win_rrtl *out)
{
    memset(out, 0, sizeof *out);
    if (n < 0x20) return CORRUPT("%s: redirection table header truncated (%zu of 32 bytes)", nz(what), n);
    if (ddp_get_le32(b) != DDP_WIN_MAGIC_RRTL)
        return CORRUPT("%s: no 'Rrtl' redirection table at 0x3000 (0x%08X)", nz(what), ddp_get_le32(b));
    out->count = ddp_get_le32(b + 0x08);
    out->item_size = ddp_get_le32(b + 0x0C);
    out->crc64 = ddp_get_le64(b + 0x18);
    if (out->item_size != 8)
        return CORRUPT("%s: redirection table item size %u (8 expected)", nz(what), out->item_size);
    if (out->count > DDP_WIN_RRTL_MAX_COUNT)
        return CORRUPT("%s: redirection table count %u (at most %u)", nz(what), out->count, DDP_WIN_RRTL_MAX_COUNT);
    return S_OK;
}

HRESULT ddp_win_rrtl_check_sorted(const uint8_t *items, uint32_t count, const char *what)
{
    for (uint32_t i = 1; i < count; i++) {
        uint32_t a = ddp_get_le32(items + 8 * (size_t)(i - 1)), b = ddp_get_le32(items + 8 * (size_t)i);
        if (b <= a) return CORRUPT("%s: redirection table not sorted by seq at item %u (%u after %u)", nz(what), i, b, a);
    }
    return S_OK;
}

int ddp_win_rrtl_lookup(const uint8_t *items, uint32_t count, uint32_t seq, uint32_t *offset)
{
    uint32_t lo = 0, hi = count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        uint32_t s = ddp_get_le32(items + 8 * (size_t)mid);
        if (s == seq) {
            *offset = ddp_get_le32(items + 8 * (size_t)mid + 4);
            return 1;
        }
        if (s < seq) lo = mid + 1;
        else hi = mid;
    }
    return 0;
}

static int hex8(const char *s, uint32_t *v)
{
    uint32_t x = 0;
    for (int i = 0; i < 8; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return 0;
        x = x << 4 | (uint32_t)d;
    }
    *v = x;
    return 1;
}

int ddp_win_ccc_name_parse(const char *name, uint32_t *cid, uint32_t *gen)
{
    if (!name || strlen(name) != 21 || name[8] != '.' || name[17] != '.') return 0;
    if (strcasecmp(name + 18, "ccc") != 0) return 0;
    return hex8(name, cid) && hex8(name + 9, gen);
}

void ddp_win_ccc_name(uint32_t cid, uint32_t gen, char out[22]) { snprintf(out, 22, "%08X.%08X.ccc", cid, gen); }
