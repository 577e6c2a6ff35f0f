/* SPDX-License-Identifier: MIT */
/*
 * container.h: append-only container files: the 64-byte header, the 64-byte
 * record header, and the record payloads after it (docs/FORMAT.md).
 *
 * Encoding and decoding work on memory buffers, so the restore engine can
 * parse bytes that came from a backup store; the writer and the reader work on
 * local files.
 */
#ifndef DDP_CONTAINER_H
#define DDP_CONTAINER_H

#include <stddef.h>
#include <stdint.h>
#include <ddp/ddperror.h>
#include "base/hash.h"
#include "store/identity.h"

#define DDP_CONTAINER_HEADER_SIZE 64
#define DDP_RECORD_HEADER_SIZE 64
#define DDP_RECORD_MAGIC 0x43455244u /* "DREC" */
#define DDP_STREAMMAP_MAX_LOGICAL ((uint32_t)256 << 20)

/* DDP_RECORD_DEAD: a chunk or stream-map record that the garbage collection
 * of earlier versions retired in place (docs/MAINTENANCE.md; today's gc
 * compacts, and drops DEAD records), or scrub --repair retired. Its header keeps the
 * codec, lengths, hash and payload checksum of the record it was, so scans
 * step over it; its payload is never checked (it is partly or wholly
 * punched out of the file) and nothing may reference it. */
/* DDP_RECORD_REDIRECT: the redirection table of a compacted container
 * (store/redirect.h): always the first record (offset 64) of a version-2
 * container, never anywhere else. */
enum ddp_record_type {
    DDP_RECORD_CHUNK = 1,
    DDP_RECORD_STREAMMAP = 2,
    DDP_RECORD_SEAL = 3,
    DDP_RECORD_DEAD = 4,
    DDP_RECORD_REDIRECT = 5
};

typedef struct ddp_container_header {
    uint32_t kind;
    uint8_t store_id[DDP_STORE_ID_SIZE];
    uint32_t id, generation;
    uint64_t created;
    /* 0: a version-1 container (records where they were first written: a
     * record's local id is its offset). Else a version-2 (compacted)
     * container: the payload length of its redirection table, the record at
     * offset 64 (docs/FORMAT.md, store/redirect.h). */
    uint64_t redirect_len;
} ddp_container_header;

typedef struct ddp_record_header {
    uint16_t type;
    uint8_t codec;
    uint32_t stored_len, logical_len;
    uint8_t hash[DDP_HASH_SIZE];
    uint64_t payload_checksum;
} ddp_record_header;

void ddp_container_header_encode(const ddp_container_header *h, uint8_t out[DDP_CONTAINER_HEADER_SIZE]);
/* DDP_E_FILE_CORRUPT on bad magic or checksum; DDP_E_UNSUPPORTED_VERSION. */
HRESULT ddp_container_header_decode(const uint8_t in[DDP_CONTAINER_HEADER_SIZE], ddp_container_header *h);

/* Fills payload_checksum from payload, then encodes. */
void ddp_record_header_encode(ddp_record_header *h, const void *payload, uint8_t out[DDP_RECORD_HEADER_SIZE]);
/* Checks magic, header checksum, type, codec and the length limits of docs/FORMAT.md.
 * DDP_E_FILE_CORRUPT on any failure, and for a DEAD record (it holds nothing
 * a reader may use). */
HRESULT ddp_record_header_decode(const uint8_t in[DDP_RECORD_HEADER_SIZE], ddp_record_header *h);
/* The same checks, but a valid DEAD header is accepted (scans, gc, scrub). */
HRESULT ddp_record_header_decode_any(const uint8_t in[DDP_RECORD_HEADER_SIZE], ddp_record_header *h);
/* Encode h as a DEAD header: type DEAD, every other field (payload checksum
 * included) as h has it. */
void ddp_record_header_encode_dead(const ddp_record_header *h, uint8_t out[DDP_RECORD_HEADER_SIZE]);
/* Verify a stored payload against its header, decode it into dst (h->logical_len
 * bytes) and check the sha256. DDP_E_FILE_CORRUPT on any mismatch. */
HRESULT ddp_record_payload_decode(const ddp_record_header *h, const uint8_t *stored, uint8_t *dst);

/* ---- writer (local files) ---- */
typedef struct ddp_container_writer ddp_container_writer;
/* Create a new container file at path (O_EXCL) with its header, fsynced
 * together with its directory. */
HRESULT ddp_container_create(const char *path, const ddp_container_header *h, ddp_container_writer **out);
/* Open an existing unsealed container for appending: checks the header, walks
 * the records from `known_valid` (0 = from the start) and positions the end
 * after the last whole valid record (a torn tail is cut off). For each valid
 * record found past known_valid, calls found(ctx, &hdr, offset) if found != NULL. */
HRESULT ddp_container_open_append(const char *path, uint64_t known_valid,
                                  void (*found)(void *ctx, const ddp_record_header *h, uint64_t off),
                                  void *ctx, ddp_container_writer **out);
/* Append one record; *offset gets the offset of its header. */
HRESULT ddp_container_append(ddp_container_writer *w, ddp_record_header *h, const void *payload,
                             uint64_t *offset);
uint64_t ddp_container_size(const ddp_container_writer *w);
int ddp_container_is_dirty(const ddp_container_writer *w);
HRESULT ddp_container_sync(ddp_container_writer *w);
/* Append a SEAL record and sync. */
HRESULT ddp_container_seal(ddp_container_writer *w);
void ddp_container_close(ddp_container_writer *w);

/* ---- reader (local files) ---- */
/* Read the record at off in fd (the file named `what`), check it, and decode
 * its payload into a malloc'd buffer of h->logical_len bytes. expect_type and,
 * if non-NULL, expect_hash must match. */
HRESULT ddp_container_read_record(int fd, const char *what, uint64_t off, uint16_t expect_type,
                                  const uint8_t *expect_hash, ddp_record_header *h, uint8_t **out);

/* Walk all records of a container file (for index rebuild, scrub). DEAD
 * records are passed to found() too (their payload is not checked): callers
 * that want chunks or stream maps filter on the type. Stops at
 * the first invalid record: returns S_OK with *valid_end at the end of the
 * last valid one if what follows is a torn tail, or DDP_E_FILE_CORRUPT if the
 * damage is not at the tail. */
HRESULT ddp_container_scan(const char *path, ddp_container_header *hdr,
                           void (*found)(void *ctx, const ddp_record_header *h, uint64_t off),
                           void *ctx, uint64_t *valid_end);

/* ---- additions used by the chunk store ---- */
/* Did open_append find the container sealed (appends then fail with
 * DDP_E_INVALID_STATE)? */
int ddp_container_is_sealed(const ddp_container_writer *w);
/* Write the user-space append buffer to the file (pwrite, no fsync). */
HRESULT ddp_container_flush(ddp_container_writer *w);
/* Bytes that are in the file (written, maybe not yet fsynced); the rest of
 * ddp_container_size() is still in the append buffer. */
uint64_t ddp_container_flushed_size(const ddp_container_writer *w);
/* Bytes known durable (fsynced). */
uint64_t ddp_container_synced_size(const ddp_container_writer *w);
/* The writer's file descriptor (for an fsync done outside the store lock on a
 * dup()ed descriptor, after ddp_container_flush), and the way to record that
 * such an fsync made the first `end` bytes durable. */
int ddp_container_fd(const ddp_container_writer *w);
void ddp_container_note_synced(ddp_container_writer *w, uint64_t end);
const char *ddp_container_path(const ddp_container_writer *w);
/* The header read (open_append) or written (create). */
void ddp_container_get_header(const ddp_container_writer *w, ddp_container_header *h);

/* ddp_container_read_record into a caller's buffer of exactly dst_len bytes
 * (a record of another logical length is DDP_E_FILE_CORRUPT). Raw payloads
 * are read straight into dst. */
HRESULT ddp_container_read_record_into(int fd, const char *what, uint64_t off, uint16_t expect_type,
                                       const uint8_t *expect_hash, ddp_record_header *h, uint8_t *dst,
                                       size_t dst_len);

/* ddp_container_scan starting at the record at `start` (0 = the first record);
 * found() is called only for records at or after start. */
HRESULT ddp_container_scan_from(const char *path, uint64_t start, ddp_container_header *hdr,
                                void (*found)(void *ctx, const ddp_record_header *h, uint64_t off),
                                void *ctx, uint64_t *valid_end);

#endif /* DDP_CONTAINER_H */
