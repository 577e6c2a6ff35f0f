/* SPDX-License-Identifier: MIT */
/*
 * windows/container.h: the records of Windows' dedup chunk-store containers
 * (`Data/` and `Stream/` files named %08X.%08X.ccc = ContainerId.Generation).
 * Layouts and confidence tags: docs/WINDOWS.md.
 *
 *   Cthr   container header at offset 0, 64 bytes
 *   Rrtl   redirection table of stream containers at 0x3000: {u32 seq; u32 offset}[count]
 *   Ckhr   record: data chunk header (88 bytes, payload at +0x58) or stream-map
 *          header (104 bytes, then 'Smap' + 4 version bytes, entries from +0x70)
 *   Smap entry, 64 bytes: one chunk of a file
 *
 * Every parser works on a byte buffer of explicit length, checks magics, the
 * fixed words and lengths, and fails with DDP_E_FILE_CORRUPT and a detail
 * naming `what` (the caller's name for the record, e.g. "Stream/00010000.00000001.ccc
 * @0x5000"). CRC-64s are computed in both conventions and reported, not
 * enforced: which convention Windows uses is not settled (windows/crc.h); the
 * store reader decides.
 */
#ifndef DDP_WIN_CONTAINER_H
#define DDP_WIN_CONTAINER_H

#include <stddef.h>
#include <stdint.h>
#include <ddp/ddperror.h>

#include "windows/crc.h"

#define DDP_WIN_MAGIC_CTHR 0x72687443u /* "Cthr" */
#define DDP_WIN_MAGIC_CKHR 0x72686B43u /* "Ckhr" */
#define DDP_WIN_MAGIC_SMAP 0x70616D53u /* "Smap" */
#define DDP_WIN_MAGIC_RRTL 0x6C747252u /* "Rrtl" */

#define DDP_WIN_CTHR_SIZE 0x40u
#define DDP_WIN_DATA_HDR_SIZE 0x58u      /* payload starts here */
#define DDP_WIN_SMAP_HDR_SIZE 0x68u      /* 'Smap' starts here (counted in the payload) */
#define DDP_WIN_SMAP_ENTRIES_AT 0x70u    /* first entry */
#define DDP_WIN_SMAP_ENTRY_SIZE 0x40u
#define DDP_WIN_RRTL_OFFSET 0x3000u
#define DDP_WIN_RRTL_ITEMS_AT 0x3020u
#define DDP_WIN_FIRST_RECORD 0x5000u     /* first record seen on real volumes */
#define DDP_WIN_RECORD_ALIGN 8u
#define DDP_WIN_CHUNK_MAX_LOGICAL 0x20000u /* a compressed chunk decodes to at most 128 KiB */
#define DDP_WIN_SMAP_MAX_SIZE (256u << 20) /* 4 Mi entries: bound of what is read into memory */
#define DDP_WIN_RRTL_MAX_COUNT (1u << 20)
#define DDP_WIN_COMPRESSION_XPRESS 2u      /* data Ckhr +0x20 for Xpress plain LZ77 [1] */

typedef struct ddp_win_cthr {
    uint64_t usn;
    uint32_t cid, gen;
    uint64_t valid_data_length;
    uint32_t rrtl_offset;
    uint64_t crc64;
    ddp_win_crc64_conv crc; /* which convention matches crc64 over [0, 0x38); UNKNOWN: neither */
} ddp_win_cthr;

typedef struct ddp_win_data_hdr {
    uint8_t version[4]; /* bytes +4..+7 (01 03 03 01 seen) */
    uint32_t seq;
    uint32_t payload_size; /* stored bytes after the 88-byte header */
    uint16_t type;         /* 1 data [1] (not enforced) */
    uint32_t compression;  /* +0x20: 2 = Xpress [1] */
    uint8_t hash[32];      /* +0x28 */
    uint64_t crc64;        /* +0x50 */
    ddp_win_crc64_conv crc; /* over [0, 0x50) */
} ddp_win_data_hdr;

typedef struct ddp_win_smap_hdr {
    uint8_t version[4];
    uint32_t seq;
    uint32_t payload_size; /* 8 + 64 * nentries */
    uint16_t type;         /* 2 stream map [1] (not enforced) */
    uint8_t hash[32];      /* +0x38 */
    uint64_t crc64;        /* +0x60 */
    ddp_win_crc64_conv crc; /* over [0, 0x60) */
    uint32_t nentries;
} ddp_win_smap_hdr;

typedef struct ddp_win_smap_entry {
    uint32_t seq;     /* == data Ckhr seq */
    uint32_t cid;     /* data container id */
    uint32_t offset;  /* of the data Ckhr */
    uint32_t gen;     /* data container generation */
    uint64_t end;     /* cumulative logical end in the file */
    uint8_t hash[32]; /* == data Ckhr hash */
    uint32_t stored;  /* == data Ckhr payload size */
    uint32_t reserved;
} ddp_win_smap_entry;

typedef struct ddp_win_rrtl {
    uint32_t count;
    uint32_t item_size;
    uint64_t crc64; /* coverage unknown: not checked */
} ddp_win_rrtl;

/* Cthr at offset 0 (n >= 64): magic only is required; fields are reported. */
HRESULT ddp_win_cthr_parse(const uint8_t *b, size_t n, const char *what, ddp_win_cthr *out);
/* Data-chunk Ckhr (n >= 88): magic Ckhr, +0x12 == 0x28 (the hash's offset). */
HRESULT ddp_win_data_hdr_parse(const uint8_t *b, size_t n, const char *what, ddp_win_data_hdr *out);
/* Stream-map Ckhr and the Smap header after it (n >= 0x70): magic Ckhr,
 * +0x12 == 0x38, 'Smap' at +0x68, payload_size == 8 + 64 k with
 * payload_size <= DDP_WIN_SMAP_MAX_SIZE. */
HRESULT ddp_win_smap_hdr_parse(const uint8_t *b, size_t n, const char *what, ddp_win_smap_hdr *out);
/* One 64-byte stream-map entry (always succeeds: every bit pattern is a value;
 * the cross-checks are the reader's). */
void ddp_win_smap_entry_parse(const uint8_t b[64], ddp_win_smap_entry *out);
/* Rrtl header (the 32 bytes at 0x3000): magic, item size 8, count <= DDP_WIN_RRTL_MAX_COUNT. */
HRESULT ddp_win_rrtl_parse(const uint8_t *b, size_t n, const char *what, ddp_win_rrtl *out);
/* Check that count {u32 seq; u32 offset} items are sorted by strictly increasing seq. */
HRESULT ddp_win_rrtl_check_sorted(const uint8_t *items, uint32_t count, const char *what);
/* Binary search of seq in sorted items: 1 and *offset when found, else 0. */
int ddp_win_rrtl_lookup(const uint8_t *items, uint32_t count, uint32_t seq, uint32_t *offset);

/* A container file name "%08X.%08X.ccc" (hex digits of either case, nothing
 * before or after): 1 and its id and generation, else 0 (names with a suffix
 * after .ccc, or holding "delete", are not containers to read). */
int ddp_win_ccc_name_parse(const char *name, uint32_t *cid, uint32_t *gen);
/* The canonical name "%08X.%08X.ccc" (upper case, as Windows writes it). */
void ddp_win_ccc_name(uint32_t cid, uint32_t gen, char out[22]);

#endif /* DDP_WIN_CONTAINER_H */
