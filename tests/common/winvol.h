/* SPDX-License-Identifier: MIT */
/*
 * tests/common/winvol.h: a writer of Windows-format dedup chunk stores for
 * tests, from docs/WINDOWS.md only: data and stream containers
 * (Cthr at 0, Rrtl at 0x3000 in stream containers, records from 0x5000,
 * 8-byte aligned Ckhr data records and stream maps with Smap entries,
 * CRC-64s in the chosen convention) and the reparse point of each file in
 * any of the three formats. Files are cut in chunks of chunk_min..chunk_max
 * bytes at boundaries fixed by their offset (so files with a common prefix
 * share chunks); identical chunks are stored once. Output goes through a
 * sink (files for tests/tools/mkwinstore.c, memory for the unit tests), with
 * paths as Windows names them from the volume root.
 */
#ifndef DDP_TEST_WINVOL_H
#define DDP_TEST_WINVOL_H

#include <stddef.h>
#include <stdint.h>

#include "windows/crc.h"

/* Write n bytes at off of the file at path (created as needed); 0 on success. */
typedef int (*tw_sink_fn)(void *ctx, const char *path, uint64_t off, const void *data, size_t n);

typedef struct tw_vol_cfg {
    uint8_t guid[16];
    ddp_win_crc64_conv conv;   /* CRC-64 convention of the records (INIT0 or NVME) */
    uint32_t stream_cid;       /* first stream container id (0x10000) */
    uint32_t stream_gen;       /* generation of stream containers (1) */
    uint32_t data_gen;         /* generation of data containers (1) */
    int decoy_gen;             /* also write Stream/<cid>.<gen+1>.ccc without valid records, and a .ccc.delete */
    uint64_t data_max;         /* start a new data container past this size (64 MiB) */
    uint32_t maps_per_stream;  /* start a new stream container after this many maps (at most 1020) */
} tw_vol_cfg;

typedef struct tw_opts {
    uint16_t format;    /* 0x0201, 0x0102, 0x0103 */
    int compress;       /* Xpress-compress chunks that get smaller (else raw) */
    unsigned parts;     /* stream maps (reparse entries) per file, 1.. */
    int stale;          /* the reparse point's offset is stale: found through Rrtl */
    size_t chunk_min, chunk_max;
    uint64_t filetime;  /* 0x0103's creation FILETIME */
} tw_opts;

typedef struct tw_vol tw_vol;

void tw_vol_defaults(tw_vol_cfg *cfg, tw_opts *o);
tw_vol *tw_vol_new(const tw_vol_cfg *cfg, tw_sink_fn sink, void *ctx);
/* Store a file of n bytes; its reparse buffer goes to reparse (TW_REPARSE_MAX
 * bytes), its size to *rlen. 0 on success, -1 (with a message on stderr) else. */
int tw_vol_add(tw_vol *v, const uint8_t *data, uint64_t n, const tw_opts *o, uint8_t *reparse, size_t *rlen);
/* Write the container headers and redirection tables; 0 on success. */
int tw_vol_finish(tw_vol *v);
void tw_vol_free(tw_vol *v);
/* "/System Volume Information/Dedup/ChunkStore/{GUID}.ddp" */
const char *tw_vol_store_dir(const tw_vol *v);

#endif
