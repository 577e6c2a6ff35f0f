/* SPDX-License-Identifier: MIT */
/*
 * windows/winstore.h: reading files out of a Windows Server Data
 * Deduplication chunk store, given their reparse points (windows/reparse.h).
 *
 * Everything is read through an abstract I/O interface, ddp_win_io, with
 * paths relative to the volume root, '/' separators, as Windows' backup API
 * names them (ReadBackupFile):
 *   /System Volume Information/Dedup/ChunkStore/{GUID}.ddp/Stream/00010000.00000001.ccc
 * so the same reader serves a mounted NTFS volume, a copied tree, or a
 * backup application's callback (RestoreFiles).
 *
 * Resolving a file (docs/WINDOWS.md, "Rebuilding a file"):
 *   1. For each reparse entry (part): the stream container Stream/<cid>.<gen>.ccc.
 *      The reparse point has no generation: the candidates are the names the
 *      I/O lists in Stream/ (io->list), or, without a list function, the
 *      generations of the bounded probe below that exist; they are tried from
 *      the highest generation down and the first whose record validates wins.
 *   2. The stream-map record at the entry's offset must validate: magic Ckhr,
 *      word +0x12 == 0x38, payload size == smap_size, seq == the entry's seq,
 *      the stream-map hash prefix (16 or 32 bytes) equal to the reparse point's,
 *      'Smap' at +0x68, and the CRC-64 (see below). When it does not (a stale
 *      offset), the seq is looked up in the container's Rrtl table at 0x3000
 *      (sorted by seq, checked) and the record at that offset must validate.
 *   3. Entries (any number up to DDP_WIN_SMAP_MAX_SIZE bytes of map): each
 *      chunk non-empty, cumulative ends strictly increasing from part_begin
 *      and the last exactly part_end; a compressed chunk (stored != logical)
 *      decodes to at most 128 KiB.
 *   4. Data chunks, Data/<cid>.<gen>.ccc (exact name from the entry): magic
 *      Ckhr, word +0x12 == 0x28, seq == entry seq, payload size == stored
 *      size, the 32-byte chunk hash == the entry's hash, CRC-64; the payload
 *      is the data when stored == logical, else it must Xpress-decode to
 *      exactly `logical` bytes (windows/xpress.h).
 *
 * What is NOT verified, because it cannot be: the 32-byte chunk hash and the
 * stream-map hash are of an unknown algorithm (not SHA-256), so the bytes of a
 * raw (uncompressed) chunk are taken as they are; they are only compared as
 * keys between records. CRC-64 (windows/crc.h): a record's CRC-64 is checked
 * against both conventions; the first record matching one fixes the store's
 * convention, and from then on a record matching neither is corrupt. While no
 * record has matched, records are counted as unverified (ddp_win_store_stats).
 * Not handled (no public implementation handles them either): a data
 * container rewritten under another generation than the stream map names,
 * Hotspot copies, multi-level stream maps.
 *
 * Probe without io->list (bounded, 128 reads of 64 bytes per stream container
 * id, once per store): generations 1..64, then 0xK0000 + j for K = 1..4 and
 * j = 0..15 (0x00010000 and 0x00020000 are seen on real volumes).
 *
 * Errors (every one with a detail naming the record, e.g.
 * "Stream/00010000.00000001.ccc @0x5000: ..."):
 *   DDP_E_PATH_NOT_FOUND  a container (or every generation of one) is missing;
 *   DDP_E_FILE_CORRUPT    a record that does not validate, a bad decode, a
 *                         container shorter than a record;
 *   DDP_E_INVALID_DATA    a reparse point whose entries are unusable (e.g. a
 *                         store GUID other than the store's);
 *   other failures of io->read are passed on unchanged.
 * Never are zero bytes or wrong bytes returned as success.
 *
 * Threads: a ddp_win_store may be shared by files used on different threads
 * (its caches are locked); one ddp_winfile is used by one thread at a time.
 */
#ifndef DDP_WIN_WINSTORE_H
#define DDP_WIN_WINSTORE_H

#include <stddef.h>
#include <stdint.h>
#include <ddp/ddperror.h>

#include "windows/crc.h"
#include "windows/reparse.h"

/* Called once per name in a listed directory (no "." or ".."); a failure stops the listing. */
typedef HRESULT (*ddp_win_list_fn)(void *cbctx, const char *name);

typedef struct ddp_win_io {
    /* Read up to n bytes of the file at path from offset off into buf; *got =
     * bytes read, fewer than n only at the end of the file (off past the end:
     * *got = 0, S_OK). A file that does not exist: one of the codes
     * ddp_win_io_not_found() accepts. Required. */
    HRESULT (*read)(void *ctx, const char *path, uint64_t off, void *buf, size_t n, size_t *got);
    /* List the directory at path: fn(cbctx, name) for each entry. A missing
     * directory: a not-found code. Optional (NULL: the bounded probe). */
    HRESULT (*list)(void *ctx, const char *dir, ddp_win_list_fn fn, void *cbctx);
    void *ctx;
} ddp_win_io;

/* Is hr one of the "no such file" codes the read and list functions may give:
 * HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND or ERROR_PATH_NOT_FOUND),
 * DDP_E_PATH_NOT_FOUND, DDP_E_NOT_FOUND? */
int ddp_win_io_not_found(HRESULT hr);

/* "/System Volume Information/Dedup/ChunkStore" */
#define DDP_WIN_CHUNKSTORE_DIR "/System Volume Information/Dedup/ChunkStore"
#define DDP_WIN_STORE_DIR_MAX 96
/* The store directory of a chunk-store GUID:
 * "/System Volume Information/Dedup/ChunkStore/{GUID}.ddp" (GUID upper case). */
void ddp_win_store_dir(const uint8_t guid[16], char out[DDP_WIN_STORE_DIR_MAX]);
/* "<store_dir>/Stream/<cid>.<gen>.ccc" (stream != 0) or ".../Data/..."; malloc'd. */
char *ddp_win_container_path(const char *store_dir, int stream, uint32_t cid, uint32_t gen);

typedef struct ddp_win_store ddp_win_store;

/* A store at store_dir as the io names it (e.g. ddp_win_store_dir's path).
 * No I/O happens here; io is copied (its ctx must outlive the store). When the
 * last component is "{GUID}.ddp", files of another GUID are refused. */
HRESULT ddp_win_store_open(const ddp_win_io *io, const char *store_dir, ddp_win_store **out);
void ddp_win_store_close(ddp_win_store *st);
const char *ddp_win_store_path(const ddp_win_store *st);

typedef struct ddp_win_store_stats {
    ddp_win_crc64_conv crc64;    /* the convention the records showed, or UNKNOWN */
    uint64_t crc64_verified;     /* records whose CRC-64 matched */
    uint64_t crc64_unverified;   /* records read before any matched (and matching neither) */
    uint64_t redirected;         /* stream maps found through Rrtl (stale offsets) */
    uint64_t probes;             /* container reads spent on the generation probe */
} ddp_win_store_stats;
void ddp_win_store_get_stats(ddp_win_store *st, ddp_win_store_stats *out);

/* One chunk of a file, in file order. Its record in the data container spans
 * [offset, offset + 88 + stored). */
typedef struct ddp_winfile_chunk {
    uint64_t begin, end; /* logical range in the file */
    uint32_t seq;        /* data Ckhr seq */
    uint32_t cid, gen;   /* Data/<cid>.<gen>.ccc */
    uint32_t offset;     /* of the data Ckhr */
    uint32_t stored;     /* payload bytes (== end - begin: raw, else Xpress) */
    uint8_t hash[32];
} ddp_winfile_chunk;

/* The stream map a part was read from. Its record spans [offset, offset + 0x68 + smap_size). */
typedef struct ddp_winfile_stream {
    uint32_t cid, gen, offset, smap_size;
    int redirected; /* 1: found through Rrtl (the reparse point's offset was stale) */
} ddp_winfile_stream;

typedef struct ddp_winfile ddp_winfile;

/* Open a file: resolve every part's stream map (steps 1-3 above), so that on
 * S_OK the chunk list is complete and checked; data chunks are read by pread.
 * ddp_winfile_open: a private store at store_dir (NULL: ddp_win_store_dir of
 * the reparse point's GUID). ddp_winfile_open_in: in a shared store, which
 * must outlive the file. rp is copied. */
HRESULT ddp_winfile_open(const ddp_win_io *io, const char *store_dir, const ddp_win_reparse *rp, ddp_winfile **out);
HRESULT ddp_winfile_open_in(ddp_win_store *st, const ddp_win_reparse *rp, ddp_winfile **out);
void ddp_winfile_close(ddp_winfile *f);

uint64_t ddp_winfile_size(const ddp_winfile *f);
/* Read up to n bytes at off (random access: binary search of the chunk ends;
 * the last decoded chunk is cached). *got = min(n, size - off), 0 at or past
 * the end. A failure (any of the errors above) leaves buf unspecified. */
HRESULT ddp_winfile_pread(ddp_winfile *f, void *buf, size_t n, uint64_t off, size_t *got);

size_t ddp_winfile_nchunks(const ddp_winfile *f);
const ddp_winfile_chunk *ddp_winfile_chunks(const ddp_winfile *f);
size_t ddp_winfile_nstreams(const ddp_winfile *f);
const ddp_winfile_stream *ddp_winfile_streams(const ddp_winfile *f);

#endif /* DDP_WIN_WINSTORE_H */
