/* SPDX-License-Identifier: MIT */
/*
 * tests/common/winbuild.h: writers of Windows dedup structures for the tests
 * and the test-volume generator (tests/tools/mkwinstore.c), written from
 * docs/WINDOWS.md (the layouts of ../shared/windows/FORMAT.md): reparse
 * buffers in the three formats, Cthr, Rrtl, Ckhr data and stream-map
 * records, Smap entries, with valid CRC-32s and CRC-64s. Fields the format
 * leaves unknown ("?") are written as zero.
 */
#ifndef DDP_TEST_WINBUILD_H
#define DDP_TEST_WINBUILD_H

#include <stddef.h>
#include <stdint.h>

#include "windows/container.h"
#include "windows/crc.h"

typedef struct tw_part {
    uint32_t seq, cid, offset, smap_size;
    uint8_t hash[32]; /* the stream-map hash (0x0201 keeps 32 bytes, the others 16) */
    uint64_t begin, end;
} tw_part;

/* Largest buffer tw_reparse_build writes. */
#define TW_REPARSE_MAX 4096

/* A whole REPARSE_DATA_BUFFER of the given format (0x0201: one part only;
 * 0x0102 and 0x0103: up to 32 parts) into out (TW_REPARSE_MAX bytes); returns
 * its size, 0 when the request cannot be written. The CRC-32s are valid. */
size_t tw_reparse_build(uint16_t format, const uint8_t guid[16], uint64_t size, uint64_t filetime,
                        const tw_part *parts, unsigned nparts, uint8_t *out);
/* Recompute the trailer CRC-32 of a buffer after an edit. */
void tw_reparse_fix_crc(uint8_t *buf, size_t n);

void tw_cthr(uint8_t out[DDP_WIN_CTHR_SIZE], uint32_t cid, uint32_t gen, uint64_t valid_len, ddp_win_crc64_conv conv);
void tw_data_hdr(uint8_t out[DDP_WIN_DATA_HDR_SIZE], uint32_t seq, uint32_t stored, uint32_t compression,
                 const uint8_t hash[32], ddp_win_crc64_conv conv);
/* The 104-byte stream-map Ckhr and the 8-byte 'Smap 01 04 04 01' after it. */
void tw_smap_hdr(uint8_t out[DDP_WIN_SMAP_ENTRIES_AT], uint32_t seq, uint32_t nentries, const uint8_t hash[32],
                 ddp_win_crc64_conv conv);
void tw_smap_entry(uint8_t out[DDP_WIN_SMAP_ENTRY_SIZE], const ddp_win_smap_entry *e);
/* The Rrtl header (32 bytes) followed by count {seq, offset} items. */
void tw_rrtl(uint8_t *out, const uint32_t *seqs, const uint32_t *offsets, uint32_t count, ddp_win_crc64_conv conv);

#endif
