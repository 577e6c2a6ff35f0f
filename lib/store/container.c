/* SPDX-License-Identifier: MIT */
/*
 * container.c: the append-only container files that hold chunks (Data/) and
 * stream maps (Stream/). Byte layout in docs/FORMAT.md; summary:
 *
 *     [64-byte container header][record][record]...[SEAL record]
 *     record = [64-byte record header][stored_len payload bytes]
 *
 * Every header carries its own XXH3-64 checksum and every payload is covered
 * by a second one, so a torn write or bit rot is caught before anything is
 * parsed or decompressed; the payload's SHA-256 is checked after decoding.
 *
 * Three parts:
 *
 * - Encoding and checking of headers and payloads on memory buffers. Every
 *   limit of the format is enforced here (magic, checksums, type, codec,
 *   lengths), so the restore engine, which gets bytes from a backup store,
 *   uses the same checks as the local reader.
 *
 * - The writer. Appends go into a user-space buffer (1 MiB) that is written
 *   with pwrite() at the tracked end offset when it fills, on sync and on seal,
 *   so an append costs a memcpy. A record larger than the buffer is written
 *   straight through. A failed write makes the writer refuse everything after
 *   it (the error is sticky): the caller must not believe later records are
 *   there. ddp_container_open_append() re-opens a container after a restart:
 *   it walks the records from a point known to be valid and cuts a torn tail
 *   (ftruncate to the end of the last whole record, then fsync).
 *
 * - The reader and the scanner. ddp_container_read_record() reads one record
 *   at a location and checks it fully; every failure names the file and the
 *   offset. ddp_container_scan() walks a whole container (index rebuild,
 *   scrub).
 *
 * Torn tail or damage? A crash can leave a partial record, zeros or garbage
 * after the last record that reached the disk. Nothing references such bytes
 * (records are only referenced after the caller's fsync), so they may be cut.
 * But an invalid record in the middle of synced data is corruption, and
 * cutting there would throw away good records. The walker therefore looks,
 * past the first invalid record, for any later whole valid record (magic,
 * header checksum, payload checksum); if there is one the damage is not a
 * tail: scan reports DDP_E_FILE_CORRUPT and open_append refuses to cut.
 *
 * DEAD records (type 4): garbage collection (gc.c) retires an unreferenced
 * record in place by rewriting its header with type DEAD and punching the
 * blocks of its payload out of the file. A DEAD header is checked like any
 * other (magic, checksum, lengths) and its stored_len is stepped over, but
 * its payload is never checked: zeros there are not damage. Walkers hand
 * DEAD records to their callers (which filter on the type); a reader that
 * asks for one gets DDP_E_FILE_CORRUPT "record was garbage-collected".
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "store/catalog.h"
#include "base/codec.h"
#include "store/container.h"
#include "store/redirect.h"
#include "base/util.h"

static const char container_magic[8] = { 'D', 'D', 'P', 'C', 'N', 'T', 'R', '1' };

#define CONTAINER_VERSION 1u
#define CONTAINER_VERSION_COMPACTED 2u
#define CHUNK_MAX_LOGICAL 131072u
#define WRITE_BUFFER_SIZE ((size_t)1 << 20)
#define IO_PIECE ((size_t)1 << 20)
#define WRITEBACK_STEP ((uint64_t)8 << 20)

/* ======================================================================
 * Headers and payloads in memory
 * ====================================================================== */

void ddp_container_header_encode(const ddp_container_header *h, uint8_t out[DDP_CONTAINER_HEADER_SIZE])
{
    memset(out, 0, DDP_CONTAINER_HEADER_SIZE);
    memcpy(out, container_magic, 8);
    ddp_put_le32(out + 8, h->redirect_len ? CONTAINER_VERSION_COMPACTED : CONTAINER_VERSION);
    ddp_put_le32(out + 12, h->kind);
    memcpy(out + 16, h->store_id, DDP_STORE_ID_SIZE);
    ddp_put_le32(out + 32, h->id);
    ddp_put_le32(out + 36, h->generation);
    ddp_put_le64(out + 40, h->created);
    ddp_put_le64(out + 48, h->redirect_len);
    ddp_put_le64(out + 56, ddp_checksum64(out, 56));
}

/* NULL when in is a valid container header (then *h is filled), else why not. */
static const char *container_header_check(const uint8_t in[DDP_CONTAINER_HEADER_SIZE], ddp_container_header *h,
                                          int *bad_version)
{
    *bad_version = 0;
    if (memcmp(in, container_magic, 8) != 0) return "bad container magic";
    if (ddp_get_le64(in + 56) != ddp_checksum64(in, 56)) return "container header checksum mismatch";
    uint32_t version = ddp_get_le32(in + 8);
    if (version != CONTAINER_VERSION && version != CONTAINER_VERSION_COMPACTED) {
        *bad_version = 1;
        return "unsupported container version";
    }
    uint32_t kind = ddp_get_le32(in + 12);
    if (kind < DDP_KIND_DATA || kind > DDP_KIND_HOTSPOT) return "unknown container kind";
    if (ddp_get_le32(in + 32) == 0) return "container id 0";
    if (ddp_get_le32(in + 36) == 0) return "generation 0";
    uint64_t redirect_len = ddp_get_le64(in + 48);
    if (version == CONTAINER_VERSION && redirect_len != 0) return "nonzero reserved field in the container header";
    if (version == CONTAINER_VERSION_COMPACTED &&
        (redirect_len == 0 || redirect_len % DDP_REDIRECT_ENTRY_SIZE != 0 || redirect_len > DDP_REDIRECT_MAX_LEN))
        return "redirection table length out of range in a compacted container's header";
    if (version == CONTAINER_VERSION_COMPACTED && ddp_get_le32(in + 36) < 2)
        return "compacted container of generation 1";
    h->kind = kind;
    memcpy(h->store_id, in + 16, DDP_STORE_ID_SIZE);
    h->id = ddp_get_le32(in + 32);
    h->generation = ddp_get_le32(in + 36);
    h->created = ddp_get_le64(in + 40);
    h->redirect_len = redirect_len;
    return NULL;
}

HRESULT ddp_container_header_decode(const uint8_t in[DDP_CONTAINER_HEADER_SIZE], ddp_container_header *h)
{
    int bad_version;
    const char *why = container_header_check(in, h, &bad_version);
    if (!why) return S_OK;
    if (bad_version)
        return ddp_fail(DDP_E_UNSUPPORTED_VERSION, "container header: version %u (this build reads versions %u and %u)",
                        ddp_get_le32(in + 8), CONTAINER_VERSION, CONTAINER_VERSION_COMPACTED);
    return ddp_fail(DDP_E_FILE_CORRUPT, "container header: %s", why);
}

static uint64_t empty_checksum(void) { return ddp_checksum64("", 0); }

void ddp_record_header_encode(ddp_record_header *h, const void *payload, uint8_t out[DDP_RECORD_HEADER_SIZE])
{
    h->payload_checksum = ddp_checksum64(payload && h->stored_len ? payload : "", h->stored_len);
    memset(out, 0, DDP_RECORD_HEADER_SIZE);
    ddp_put_le32(out, DDP_RECORD_MAGIC);
    ddp_put_le16(out + 4, h->type);
    out[6] = h->codec;
    ddp_put_le32(out + 8, h->stored_len);
    ddp_put_le32(out + 12, h->logical_len);
    memcpy(out + 16, h->hash, DDP_HASH_SIZE);
    ddp_put_le64(out + 48, h->payload_checksum);
    ddp_put_le64(out + 56, ddp_checksum64(out, 56));
}

static int all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

/* NULL when in is a valid record header (then *h is filled), else why not. */
static const char *record_header_check(const uint8_t in[DDP_RECORD_HEADER_SIZE], ddp_record_header *h)
{
    if (ddp_get_le32(in) != DDP_RECORD_MAGIC) return "bad record magic";
    if (ddp_get_le64(in + 56) != ddp_checksum64(in, 56)) return "record header checksum mismatch";
    uint16_t type = ddp_get_le16(in + 4);
    uint8_t codec = in[6];
    uint32_t stored = ddp_get_le32(in + 8), logical = ddp_get_le32(in + 12);
    if (in[7] != 0) return "nonzero reserved byte in the record header";
    if (codec != DDP_CODEC_NONE && codec != DDP_CODEC_ZSTD) return "unknown codec in the record header";
    switch (type) {
    case DDP_RECORD_CHUNK:
        if (logical == 0 || logical > CHUNK_MAX_LOGICAL) return "chunk record length out of range";
        break;
    case DDP_RECORD_STREAMMAP:
        if (logical > DDP_STREAMMAP_MAX_LOGICAL) return "stream-map record length out of range";
        break;
    case DDP_RECORD_SEAL:
        if (stored != 0 || logical != 0 || codec != DDP_CODEC_NONE || !all_zero(in + 16, DDP_HASH_SIZE) ||
            ddp_get_le64(in + 48) != empty_checksum())
            return "seal record with a payload";
        break;
    case DDP_RECORD_DEAD:
        /* Was a chunk or a stream map: the larger limit of the two. */
        if (logical > DDP_STREAMMAP_MAX_LOGICAL) return "dead record length out of range";
        break;
    case DDP_RECORD_REDIRECT:
        if (codec != DDP_CODEC_NONE || logical == 0 || logical % DDP_REDIRECT_ENTRY_SIZE != 0 ||
            logical > DDP_REDIRECT_MAX_LEN)
            return "redirection-table record of a bad codec or length";
        break;
    default:
        return "unknown record type";
    }
    if (codec == DDP_CODEC_NONE && stored != logical) return "raw record whose stored and logical lengths differ";
    if ((uint64_t)stored > (uint64_t)ddp_compress_bound(logical)) return "stored length larger than the codec allows";
    if (codec == DDP_CODEC_ZSTD && stored == 0) return "empty compressed payload";
    h->type = type;
    h->codec = codec;
    h->stored_len = stored;
    h->logical_len = logical;
    memcpy(h->hash, in + 16, DDP_HASH_SIZE);
    h->payload_checksum = ddp_get_le64(in + 48);
    return NULL;
}

HRESULT ddp_record_header_decode_any(const uint8_t in[DDP_RECORD_HEADER_SIZE], ddp_record_header *h)
{
    const char *why = record_header_check(in, h);
    if (why) return ddp_fail(DDP_E_FILE_CORRUPT, "record header: %s", why);
    return S_OK;
}

HRESULT ddp_record_header_decode(const uint8_t in[DDP_RECORD_HEADER_SIZE], ddp_record_header *h)
{
    HRESULT hr = ddp_record_header_decode_any(in, h);
    if (SUCCEEDED(hr) && h->type == DDP_RECORD_DEAD)
        return ddp_fail(DDP_E_FILE_CORRUPT, "record header: record was garbage-collected");
    return hr;
}

void ddp_record_header_encode_dead(const ddp_record_header *h, uint8_t out[DDP_RECORD_HEADER_SIZE])
{
    memset(out, 0, DDP_RECORD_HEADER_SIZE);
    ddp_put_le32(out, DDP_RECORD_MAGIC);
    ddp_put_le16(out + 4, DDP_RECORD_DEAD);
    out[6] = h->codec;
    ddp_put_le32(out + 8, h->stored_len);
    ddp_put_le32(out + 12, h->logical_len);
    memcpy(out + 16, h->hash, DDP_HASH_SIZE);
    ddp_put_le64(out + 48, h->payload_checksum);
    ddp_put_le64(out + 56, ddp_checksum64(out, 56));
}

HRESULT ddp_record_payload_decode(const ddp_record_header *h, const uint8_t *stored, uint8_t *dst)
{
    if (h->stored_len && !stored) return E_POINTER;
    if (h->type == DDP_RECORD_DEAD) return ddp_fail(DDP_E_FILE_CORRUPT, "record was garbage-collected");
    if (ddp_checksum64(h->stored_len ? (const void *)stored : "", h->stored_len) != h->payload_checksum)
        return ddp_fail(DDP_E_FILE_CORRUPT, "payload checksum mismatch");
    if (h->type == DDP_RECORD_SEAL) return S_OK;
    if (h->codec == DDP_CODEC_NONE && h->stored_len != h->logical_len)
        return ddp_fail(DDP_E_FILE_CORRUPT, "raw record whose stored and logical lengths differ");
    if (h->logical_len) {
        HRESULT hr = ddp_decompress(h->codec, stored, h->stored_len, dst, h->logical_len);
        if (FAILED(hr)) {
            /* A bad codec after a good checksum is still damage (or a foreign file). */
            return hr == DDP_E_UNSUPPORTED_COMPRESSION ? ddp_fail(DDP_E_FILE_CORRUPT, "%s", ddp_error_detail()) : hr;
        }
    }
    uint8_t sum[DDP_HASH_SIZE];
    ddp_sha256(h->logical_len ? (const void *)dst : "", h->logical_len, sum);
    if (memcmp(sum, h->hash, DDP_HASH_SIZE) != 0)
        return ddp_fail(DDP_E_FILE_CORRUPT, "sha256 of the decoded payload does not match the record");
    return S_OK;
}

/* Re-issue this thread's detail message with a prefix naming file and offset. */
static HRESULT fail_at(HRESULT hr, const char *what, uint64_t off)
{
    char inner[1024];
    snprintf(inner, sizeof inner, "%s", ddp_error_detail());
    return ddp_fail(hr, "container %s offset %llu: %s", what, (unsigned long long)off, inner);
}

/* ======================================================================
 * Shared walking of records in a file
 * ====================================================================== */

/* Checksum of len bytes at off, read in pieces; 1 match, 0 mismatch, <0 I/O error
 * (hr in *err). */
static int payload_checksum_ok(int fd, const char *what, uint64_t off, uint64_t len, uint64_t expect,
                               uint8_t *scratch, HRESULT *err)
{
    if (len == 0) return empty_checksum() == expect;
    XXH3_state_t *st = XXH3_createState();
    if (!st) abort();
    XXH3_64bits_reset(st);
    int ok = 1;
    while (len > 0) {
        size_t k = len < IO_PIECE ? (size_t)len : IO_PIECE;
        HRESULT hr = ddp_pread_exact(fd, scratch, k, off, what);
        if (FAILED(hr)) {
            *err = hr;
            ok = -1;
            break;
        }
        XXH3_64bits_update(st, scratch, k);
        off += k;
        len -= k;
    }
    if (ok == 1) ok = XXH3_64bits_digest(st) == expect;
    XXH3_freeState(st);
    return ok;
}

/* Is there a whole valid record (header and payload checksums) anywhere in
 * [from, size)? 1 yes, 0 no, <0 I/O error. */
static int valid_record_after(int fd, const char *what, uint64_t from, uint64_t size, uint8_t *scratch,
                              HRESULT *err)
{
    uint8_t *win = ddp_xmalloc(IO_PIECE);
    int result = 0;
    uint64_t pos = from;
    while (result == 0 && pos + DDP_RECORD_HEADER_SIZE <= size) {
        size_t n = size - pos < IO_PIECE ? (size_t)(size - pos) : IO_PIECE;
        HRESULT hr = ddp_pread_exact(fd, win, n, pos, what);
        if (FAILED(hr)) {
            *err = hr;
            result = -1;
            break;
        }
        for (size_t i = 0; i + 4 <= n && result == 0;) {
            uint8_t *m = memmem(win + i, n - i, "DREC", 4);
            if (!m) break;
            i = (size_t)(m - win);
            uint64_t at = pos + i;
            i++;
            if (at + DDP_RECORD_HEADER_SIZE > size) continue;
            uint8_t hb[DDP_RECORD_HEADER_SIZE];
            if ((size_t)(at - pos) + DDP_RECORD_HEADER_SIZE <= n) {
                memcpy(hb, win + (at - pos), sizeof hb);
            } else if (FAILED(hr = ddp_pread_exact(fd, hb, sizeof hb, at, what))) {
                *err = hr;
                result = -1;
                break;
            }
            ddp_record_header h;
            if (record_header_check(hb, &h)) continue;
            if (at + DDP_RECORD_HEADER_SIZE + h.stored_len > size) continue;
            /* A DEAD header is a whole record by itself (its payload is not checked). */
            int ok = h.type == DDP_RECORD_DEAD
                         ? 1
                         : payload_checksum_ok(fd, what, at + DDP_RECORD_HEADER_SIZE, h.stored_len,
                                               h.payload_checksum, scratch, err);
            if (ok != 0) result = ok;
        }
        if (pos + n >= size) break;
        pos += n - 3; /* a magic split across windows is seen in the next one */
    }
    free(win);
    return result;
}

typedef void (*found_fn)(void *ctx, const ddp_record_header *h, uint64_t off);

typedef struct walk_result {
    uint64_t end;       /* end of the last whole valid record */
    int sealed;         /* stopped at a SEAL record */
    int torn;           /* an invalid record starts at end */
    int damage;         /* ... and a valid record follows it: not a torn tail */
    const char *why;    /* what was wrong at end */
} walk_result;

/* Walk records of fd (size bytes) from start. Fails only on I/O errors. */
static HRESULT walk_records(int fd, const char *what, uint64_t size, uint64_t start, found_fn found, void *ctx,
                            walk_result *r)
{
    memset(r, 0, sizeof *r);
    uint8_t *scratch = ddp_xmalloc(IO_PIECE);
    HRESULT hr = S_OK;
    uint64_t off = start;
    while (off < size) {
        ddp_record_header h;
        uint8_t hb[DDP_RECORD_HEADER_SIZE];
        if (size - off < DDP_RECORD_HEADER_SIZE) {
            r->why = "incomplete record header";
            r->torn = 1;
            break;
        }
        if (FAILED(hr = ddp_pread_exact(fd, hb, sizeof hb, off, what))) goto out;
        const char *why = record_header_check(hb, &h);
        if (!why && off + DDP_RECORD_HEADER_SIZE + h.stored_len > size) why = "record runs past the end of the file";
        if (!why && h.type != DDP_RECORD_DEAD) { /* a DEAD record's payload is never checked */
            int ok = payload_checksum_ok(fd, what, off + DDP_RECORD_HEADER_SIZE, h.stored_len, h.payload_checksum,
                                         scratch, &hr);
            if (ok < 0) goto out;
            if (!ok) why = "payload checksum mismatch";
        }
        if (why) {
            r->why = why;
            r->torn = 1;
            break;
        }
        if (found) found(ctx, &h, off);
        off += DDP_RECORD_HEADER_SIZE + (uint64_t)h.stored_len;
        if (h.type == DDP_RECORD_SEAL) {
            r->sealed = 1;
            break;
        }
    }
    r->end = off;
    if (r->torn) {
        int later = valid_record_after(fd, what, off + 1, size, scratch, &hr);
        if (later < 0) goto out;
        r->damage = later;
    }
out:
    free(scratch);
    return hr;
}

/* ======================================================================
 * Writer
 * ====================================================================== */

struct ddp_container_writer {
    int fd;
    char *path;
    uint64_t end;       /* logical end, including buffered bytes */
    uint64_t flushed;   /* bytes written to the file */
    uint64_t synced;    /* bytes known durable */
    uint64_t kicked;    /* writeback started (sync_file_range) up to here */
    uint8_t *buf;       /* append buffer: bytes [flushed, end) when they fit */
    size_t buf_len;
    int sealed;
    HRESULT err;        /* sticky write failure */
    ddp_container_header hdr;
};

static ddp_container_writer *writer_new(int fd, const char *path, uint64_t end, const ddp_container_header *h)
{
    ddp_container_writer *w = ddp_xcalloc(1, sizeof *w);
    w->hdr = *h;
    w->fd = fd;
    w->path = ddp_strdup(path);
    w->end = w->flushed = w->synced = w->kicked = end;
    return w;
}

HRESULT ddp_container_create(const char *path, const ddp_container_header *h, ddp_container_writer **out)
{
    if (!path || !h || !out) return E_POINTER;
    *out = NULL;
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return ddp_fail_errno(errno, "creating container %s", path);
    ddp_container_header hh = *h;
    if (!hh.created) hh.created = (uint64_t)time(NULL);
    uint8_t hb[DDP_CONTAINER_HEADER_SIZE];
    ddp_container_header_encode(&hh, hb);
    HRESULT hr = ddp_pwrite_all(fd, hb, sizeof hb, 0, path);
    if (SUCCEEDED(hr)) hr = ddp_fsync_fd(fd, path);
    if (SUCCEEDED(hr)) hr = ddp_fsync_parent(path);
    if (FAILED(hr)) {
        close(fd);
        unlink(path);
        return hr;
    }
    *out = writer_new(fd, path, DDP_CONTAINER_HEADER_SIZE, &hh);
    return S_OK;
}

static HRESULT read_header_of(int fd, const char *path, uint64_t size, ddp_container_header *hdr)
{
    if (size < DDP_CONTAINER_HEADER_SIZE)
        return ddp_fail(DDP_E_FILE_CORRUPT, "container %s: %llu bytes, shorter than its header", path,
                        (unsigned long long)size);
    uint8_t hb[DDP_CONTAINER_HEADER_SIZE];
    HRESULT hr = ddp_pread_exact(fd, hb, sizeof hb, 0, path);
    if (FAILED(hr)) return hr;
    ddp_container_header tmp;
    hr = ddp_container_header_decode(hb, hdr ? hdr : &tmp);
    if (FAILED(hr)) return fail_at(hr, path, 0);
    return S_OK;
}

HRESULT ddp_container_open_append(const char *path, uint64_t known_valid,
                                  void (*found)(void *ctx, const ddp_record_header *h, uint64_t off),
                                  void *ctx, ddp_container_writer **out)
{
    if (!path || !out) return E_POINTER;
    *out = NULL;
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) return ddp_fail_errno(errno, "opening container %s", path);
    HRESULT hr;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        hr = ddp_fail_errno(errno, "opening container %s", path);
        goto fail;
    }
    uint64_t size = (uint64_t)st.st_size;
    ddp_container_header hdr;
    if (FAILED(hr = read_header_of(fd, path, size, &hdr))) goto fail;
    uint64_t start = known_valid ? known_valid : DDP_CONTAINER_HEADER_SIZE;
    if (start < DDP_CONTAINER_HEADER_SIZE || start > size) {
        hr = ddp_fail(DDP_E_FILE_CORRUPT, "container %s: %llu bytes are known valid but the file has %llu", path,
                      (unsigned long long)start, (unsigned long long)size);
        goto fail;
    }
    walk_result r;
    if (start >= DDP_CONTAINER_HEADER_SIZE + DDP_RECORD_HEADER_SIZE) {
        /* Known valid up to a SEAL record: sealed, though nothing is walked.
         * (A chunk that happens to end in a seal header only costs a new
         * container.) */
        uint8_t hb[DDP_RECORD_HEADER_SIZE];
        ddp_record_header sh;
        if (FAILED(hr = ddp_pread_exact(fd, hb, sizeof hb, start - DDP_RECORD_HEADER_SIZE, path))) goto fail;
        if (!record_header_check(hb, &sh) && sh.type == DDP_RECORD_SEAL) {
            memset(&r, 0, sizeof r);
            r.end = start;
            r.sealed = 1;
            goto opened;
        }
    }
    if (FAILED(hr = walk_records(fd, path, size, start, found, ctx, &r))) goto fail;
    if (r.torn) {
        if (r.damage) {
            hr = ddp_fail(DDP_E_FILE_CORRUPT,
                          "container %s offset %llu: %s, and valid records follow (damage, not a torn tail)", path,
                          (unsigned long long)r.end, r.why);
            goto fail;
        }
        if (ftruncate(fd, (off_t)r.end) != 0) {
            hr = ddp_fail_errno(errno, "cutting the torn tail of container %s at %llu", path,
                                (unsigned long long)r.end);
            goto fail;
        }
    }
    /* What we found may have been only in the page cache of a crashed
     * process: make it durable before anyone indexes or references it. */
opened:
    if (FAILED(hr = ddp_fsync_fd(fd, path))) goto fail;
    ddp_container_writer *w = writer_new(fd, path, r.end, &hdr);
    w->sealed = r.sealed;
    *out = w;
    return S_OK;
fail:
    close(fd);
    return hr;
}

HRESULT ddp_container_flush(ddp_container_writer *w)
{
    if (!w) return E_POINTER;
    if (FAILED(w->err)) return ddp_fail(w->err, "container %s: an earlier write failed", w->path);
    if (w->buf_len == 0) return S_OK;
    HRESULT hr = ddp_pwrite_all(w->fd, w->buf, w->buf_len, w->flushed, w->path);
    if (FAILED(hr)) {
        w->err = hr;
        return hr;
    }
    w->flushed += w->buf_len;
    w->buf_len = 0;
    /* Start the writeback of what is in the file every WRITEBACK_STEP bytes,
     * so the fsync that makes it durable (ddp_container_sync, the caller's
     * durability order) finds little left to write and the disk works while
     * the workers compress. Only a hint: nothing is durable until fsync. */
    if (w->flushed < w->kicked) w->kicked = w->flushed;
    if (w->flushed - w->kicked >= WRITEBACK_STEP) {
        (void)sync_file_range(w->fd, (off_t)w->kicked, (off_t)(w->flushed - w->kicked), SYNC_FILE_RANGE_WRITE);
        w->kicked = w->flushed;
    }
    return S_OK;
}

/* Append one encoded record (header bytes + payload). */
static HRESULT append_raw(ddp_container_writer *w, const uint8_t hb[DDP_RECORD_HEADER_SIZE], const void *payload,
                          uint32_t stored, uint64_t *offset)
{
    size_t total = DDP_RECORD_HEADER_SIZE + (size_t)stored;
    HRESULT hr;
    if (w->buf_len + total > WRITE_BUFFER_SIZE && FAILED(hr = ddp_container_flush(w))) return hr;
    uint64_t at = w->end;
    if (total > WRITE_BUFFER_SIZE) {
        /* Too big to buffer: straight to the file (the buffer is empty now). */
        hr = ddp_pwrite_all(w->fd, hb, DDP_RECORD_HEADER_SIZE, at, w->path);
        if (SUCCEEDED(hr) && stored)
            hr = ddp_pwrite_all(w->fd, payload, stored, at + DDP_RECORD_HEADER_SIZE, w->path);
        if (FAILED(hr)) {
            w->err = hr;
            return hr;
        }
        w->flushed += total;
    } else {
        if (!w->buf) w->buf = ddp_xmalloc(WRITE_BUFFER_SIZE);
        memcpy(w->buf + w->buf_len, hb, DDP_RECORD_HEADER_SIZE);
        if (stored) memcpy(w->buf + w->buf_len + DDP_RECORD_HEADER_SIZE, payload, stored);
        w->buf_len += total;
    }
    w->end += total;
    if (offset) *offset = at;
    return S_OK;
}

HRESULT ddp_container_append(ddp_container_writer *w, ddp_record_header *h, const void *payload, uint64_t *offset)
{
    if (!w || !h || (h->stored_len && !payload)) return E_POINTER;
    if (FAILED(w->err)) return ddp_fail(w->err, "container %s: an earlier write failed", w->path);
    if (w->sealed) return ddp_fail(DDP_E_INVALID_STATE, "container %s is sealed", w->path);
    if (h->type == DDP_RECORD_SEAL) return ddp_fail(E_INVALIDARG, "container %s: use ddp_container_seal", w->path);
    if (h->type == DDP_RECORD_DEAD)
        return ddp_fail(E_INVALIDARG, "container %s: DEAD records are only made in place, by gc", w->path);
    uint8_t hb[DDP_RECORD_HEADER_SIZE];
    ddp_record_header_encode(h, payload, hb);
    ddp_record_header check;
    const char *why = record_header_check(hb, &check);
    if (why) return ddp_fail(E_INVALIDARG, "container %s: refusing to append an invalid record: %s", w->path, why);
    return append_raw(w, hb, payload, h->stored_len, offset);
}

uint64_t ddp_container_size(const ddp_container_writer *w) { return w->end; }
uint64_t ddp_container_flushed_size(const ddp_container_writer *w) { return w->flushed; }
uint64_t ddp_container_synced_size(const ddp_container_writer *w) { return w->synced; }
int ddp_container_is_dirty(const ddp_container_writer *w) { return w->end > w->synced; }
int ddp_container_is_sealed(const ddp_container_writer *w) { return w->sealed; }
int ddp_container_fd(const ddp_container_writer *w) { return w->fd; }
const char *ddp_container_path(const ddp_container_writer *w) { return w->path; }
void ddp_container_get_header(const ddp_container_writer *w, ddp_container_header *h) { *h = w->hdr; }

void ddp_container_note_synced(ddp_container_writer *w, uint64_t end)
{
    if (end > w->synced && end <= w->flushed) w->synced = end;
}

HRESULT ddp_container_sync(ddp_container_writer *w)
{
    if (!w) return E_POINTER;
    HRESULT hr = ddp_container_flush(w);
    if (FAILED(hr)) return hr;
    if (w->synced == w->end) return S_OK;
    if (FAILED(hr = ddp_fsync_fd(w->fd, w->path))) {
        w->err = hr;
        return hr;
    }
    w->synced = w->end;
    return S_OK;
}

HRESULT ddp_container_seal(ddp_container_writer *w)
{
    if (!w) return E_POINTER;
    if (FAILED(w->err)) return ddp_fail(w->err, "container %s: an earlier write failed", w->path);
    if (w->sealed) return S_OK;
    ddp_record_header h;
    memset(&h, 0, sizeof h);
    h.type = DDP_RECORD_SEAL;
    uint8_t hb[DDP_RECORD_HEADER_SIZE];
    ddp_record_header_encode(&h, NULL, hb);
    HRESULT hr = append_raw(w, hb, NULL, 0, NULL);
    if (SUCCEEDED(hr)) hr = ddp_container_sync(w);
    if (SUCCEEDED(hr)) w->sealed = 1;
    return hr;
}

void ddp_container_close(ddp_container_writer *w)
{
    if (!w) return;
    if (SUCCEEDED(w->err)) (void)ddp_container_flush(w);
    close(w->fd);
    free(w->buf);
    free(w->path);
    free(w);
}

/* ======================================================================
 * Reader and scanner
 * ====================================================================== */

/* Read and check the record at off; decode into dst (dst_len bytes) or, when
 * dst is NULL, into a malloc'd *outp. */
static HRESULT read_record_at(int fd, const char *what, uint64_t off, uint16_t expect_type,
                              const uint8_t *expect_hash, ddp_record_header *h, uint8_t **outp, uint8_t *dst,
                              size_t dst_len)
{
    if (off < DDP_CONTAINER_HEADER_SIZE)
        return ddp_fail(DDP_E_FILE_CORRUPT, "container %s offset %llu: not a record offset", what,
                        (unsigned long long)off);
    uint8_t hb[DDP_RECORD_HEADER_SIZE];
    HRESULT hr = ddp_pread_exact(fd, hb, sizeof hb, off, what);
    if (FAILED(hr)) return fail_at(hr, what, off);
    const char *why = record_header_check(hb, h);
    if (why)
        return ddp_fail(DDP_E_FILE_CORRUPT, "container %s offset %llu: %s", what, (unsigned long long)off, why);
    if (h->type == DDP_RECORD_DEAD)
        return ddp_fail(DDP_E_FILE_CORRUPT, "container %s offset %llu: record was garbage-collected", what,
                        (unsigned long long)off);
    if (h->type != expect_type)
        return ddp_fail(DDP_E_FILE_CORRUPT, "container %s offset %llu: record of type %u where type %u was expected",
                        what, (unsigned long long)off, h->type, expect_type);
    if (expect_hash && memcmp(expect_hash, h->hash, DDP_HASH_SIZE) != 0)
        return ddp_fail(DDP_E_FILE_CORRUPT, "container %s offset %llu: record is not the expected one (hash differs)",
                        what, (unsigned long long)off);
    if (dst && dst_len != h->logical_len)
        return ddp_fail(DDP_E_FILE_CORRUPT, "container %s offset %llu: record holds %u bytes where %zu were expected",
                        what, (unsigned long long)off, h->logical_len, dst_len);
    uint8_t *mine = NULL;
    if (!dst) dst = mine = ddp_xmalloc(h->logical_len ? h->logical_len : 1);
    uint64_t poff = off + DDP_RECORD_HEADER_SIZE;
    if (h->codec == DDP_CODEC_NONE) {
        /* Raw: read straight into the destination, then check. */
        if (h->stored_len && FAILED(hr = ddp_pread_exact(fd, dst, h->stored_len, poff, what))) {
            hr = fail_at(hr, what, off);
        } else if (ddp_checksum64(h->stored_len ? (const void *)dst : "", h->stored_len) != h->payload_checksum) {
            hr = ddp_fail(DDP_E_FILE_CORRUPT, "container %s offset %llu: payload checksum mismatch", what,
                          (unsigned long long)off);
        } else {
            uint8_t sum[DDP_HASH_SIZE];
            ddp_sha256(h->logical_len ? (const void *)dst : "", h->logical_len, sum);
            if (memcmp(sum, h->hash, DDP_HASH_SIZE) != 0)
                hr = ddp_fail(DDP_E_FILE_CORRUPT,
                              "container %s offset %llu: sha256 of the payload does not match the record", what,
                              (unsigned long long)off);
        }
    } else {
        uint8_t *stored = ddp_xmalloc(h->stored_len ? h->stored_len : 1);
        hr = ddp_pread_exact(fd, stored, h->stored_len, poff, what);
        if (SUCCEEDED(hr)) hr = ddp_record_payload_decode(h, stored, dst);
        if (FAILED(hr)) hr = fail_at(hr, what, off);
        free(stored);
    }
    if (FAILED(hr)) {
        free(mine);
        return hr;
    }
    if (outp) *outp = mine;
    return S_OK;
}

HRESULT ddp_container_read_record(int fd, const char *what, uint64_t off, uint16_t expect_type,
                                  const uint8_t *expect_hash, ddp_record_header *h, uint8_t **out)
{
    if (!h || !out) return E_POINTER;
    *out = NULL;
    return read_record_at(fd, what ? what : "?", off, expect_type, expect_hash, h, out, NULL, 0);
}

HRESULT ddp_container_read_record_into(int fd, const char *what, uint64_t off, uint16_t expect_type,
                                       const uint8_t *expect_hash, ddp_record_header *h, uint8_t *dst,
                                       size_t dst_len)
{
    if (!h || !dst) return E_POINTER;
    return read_record_at(fd, what ? what : "?", off, expect_type, expect_hash, h, NULL, dst, dst_len);
}

HRESULT ddp_container_scan_from(const char *path, uint64_t start, ddp_container_header *hdr,
                                void (*found)(void *ctx, const ddp_record_header *h, uint64_t off),
                                void *ctx, uint64_t *valid_end)
{
    if (!path) return E_POINTER;
    if (valid_end) *valid_end = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ddp_fail_errno(errno, "opening container %s", path);
    HRESULT hr;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        hr = ddp_fail_errno(errno, "reading container %s", path);
        goto out;
    }
    uint64_t size = (uint64_t)st.st_size;
    if (FAILED(hr = read_header_of(fd, path, size, hdr))) goto out;
    if (start == 0) start = DDP_CONTAINER_HEADER_SIZE;
    if (start < DDP_CONTAINER_HEADER_SIZE || start > size) {
        hr = ddp_fail(DDP_E_FILE_CORRUPT, "container %s: scan from %llu but the file has %llu bytes", path,
                      (unsigned long long)start, (unsigned long long)size);
        goto out;
    }
    walk_result r;
    if (FAILED(hr = walk_records(fd, path, size, start, found, ctx, &r))) goto out;
    if (valid_end) *valid_end = r.end;
    if (r.sealed && r.end != size)
        hr = ddp_fail(DDP_E_FILE_CORRUPT, "container %s offset %llu: data after the seal record", path,
                      (unsigned long long)r.end);
    else if (r.torn && r.damage)
        hr = ddp_fail(DDP_E_FILE_CORRUPT, "container %s offset %llu: %s, and valid records follow", path,
                      (unsigned long long)r.end, r.why);
out:
    close(fd);
    return hr;
}

HRESULT ddp_container_scan(const char *path, ddp_container_header *hdr,
                           void (*found)(void *ctx, const ddp_record_header *h, uint64_t off),
                           void *ctx, uint64_t *valid_end)
{
    return ddp_container_scan_from(path, 0, hdr, found, ctx, valid_end);
}
