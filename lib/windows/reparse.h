/* SPDX-License-Identifier: MIT */
/*
 * windows/reparse.h: Windows Server Data Deduplication's reparse point
 * (REPARSE_DATA_BUFFER with tag IO_REPARSE_TAG_DEDUP = 0x80000013), the
 * record an optimized file keeps instead of its data. docs/WINDOWS.md has
 * the layouts byte by byte; three formats exist:
 *
 *   0x0201  Server 2012 / 2012 R2: fixed layout, data length 0x7C, the whole
 *           32-byte stream-map hash;
 *   0x0102  Server 2016: a typed property table {u32 type, u16 size, u16 offset},
 *           walked by type (type-0 rows skipped), one or more 64-byte entries;
 *   0x0103  Server 1709 / 2019 / 2022: nested property chunks FeRp > RbRp, DdRp.
 *
 * The parser reads a byte buffer of explicit length and trusts nothing in it:
 * every offset and size is bounded by the buffer, the CRC-32 trailer must hold,
 * and the entries' logical parts must be contiguous and cover [0, file size).
 */
#ifndef DDP_WIN_REPARSE_H
#define DDP_WIN_REPARSE_H

#include <stddef.h>
#include <stdint.h>
#include <ddp/ddperror.h>

#define DDP_WIN_REPARSE_TAG 0x80000013u
/* A reparse buffer is at most 16 KiB (MAXIMUM_REPARSE_DATA_BUFFER_SIZE). */
#define DDP_WIN_REPARSE_MAX 16384u
/* Entries (parts) kept per reparse point; more is refused as unsupported data. */
#define DDP_WIN_REPARSE_MAX_ENTRIES 64u

#define DDP_WIN_FMT_0201 0x0201u
#define DDP_WIN_FMT_0102 0x0102u
#define DDP_WIN_FMT_0103 0x0103u

/* One DEDUP_REPARSE_ENTRY: where the stream map of one logical part of the
 * file is. The stream container is named by id only (no generation). */
typedef struct ddp_win_reparse_entry {
    uint32_t seq;        /* the stream-map record's local id (== stream Ckhr +0x08) */
    uint32_t stream_cid; /* Stream/<cid>.<gen>.ccc */
    uint32_t offset;     /* offset of the stream Ckhr (may be stale: Rrtl) */
    uint32_t smap_size;  /* stream Ckhr payload size == 8 + 64 * chunks */
    uint8_t hash[32];    /* stream-map hash: first hash_len bytes are valid */
    uint32_t hash_len;   /* 16 (0x0102/0x0103) or 32 (0x0201, or 0x0102 with its type-10 row) */
    uint64_t part_begin; /* logical range [part_begin, part_end) this stream map covers */
    uint64_t part_end;
} ddp_win_reparse_entry;

typedef struct ddp_win_reparse {
    uint16_t format;        /* DDP_WIN_FMT_* */
    uint16_t data_len;      /* N: the buffer is N + 8 bytes */
    uint8_t store_guid[16]; /* chunk-store GUID, as the bytes of a Windows GUID */
    uint64_t file_size;
    uint64_t filetime;      /* creation FILETIME (100 ns since 1601), 0x0103 only */
    int has_filetime;
    /* 0x0103 only: the FeRp/RbRp/DdRp chunks' own CRC-32s (confidence [1]). A
     * mismatch does not fail the parse (the [C] trailer CRC covers all bytes);
     * it is counted here so that scrub can report it. */
    uint32_t chunk_crcs_checked, chunk_crcs_bad;
    /* 0x0103 only: sizes and row counts of the FeRp and RbRp chunks (0 when absent). */
    uint32_t ferp_size, ferp_rows, rbrp_size, rbrp_rows;
    uint32_t nentries;
    ddp_win_reparse_entry entries[DDP_WIN_REPARSE_MAX_ENTRIES];
} ddp_win_reparse;

/* Does buf look like a dedup reparse buffer (at least 8 bytes, tag 0x80000013)?
 * A cheap test for "which kind of file is this"; it proves nothing more. */
int ddp_win_reparse_has_tag(const void *buf, size_t n);

/* Parse a whole REPARSE_DATA_BUFFER (8-byte header included) of exactly n bytes.
 * S_OK: *out is filled, the trailer CRC-32 holds, nentries >= 1, entries are in
 * part order, entries[0].part_begin == 0, each part starts where the previous
 * ends, the last ends at file_size, and every part is non-empty unless the file
 * is 0 bytes (one empty part). Each entry's smap_size is 8 + 64 k (k >= 1, or
 * k == 0 only for an empty part).
 * DDP_E_INVALID_DATA: anything else, with a detail naming the field and its offset
 * in the buffer. E_INVALIDARG for NULL pointers. */
HRESULT ddp_win_reparse_parse(const void *buf, size_t n, ddp_win_reparse *out);

/* "{XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}" upper case (Windows' GUID byte order). */
void ddp_win_guid_format(const uint8_t guid[16], char out[39]);
/* Parse that form (braces optional, any case) into the 16 bytes; 0 on success, -1 otherwise. */
int ddp_win_guid_parse(const char *s, uint8_t guid[16]);

#endif /* DDP_WIN_REPARSE_H */
