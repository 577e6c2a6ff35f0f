/* SPDX-License-Identifier: MIT */
/*
 * redirect.h: the redirection table of a compacted container, and the
 * translation of a record's local id to where the record now lies.
 *
 * Stubs, stream maps and the index name a record by (container id, local
 * id). A record's local id is the offset at which it was first written, in
 * its container's generation 1, and it never changes. In a version-1
 * container (never compacted) a record lies at its local id. Garbage
 * collection compacts a container into its next generation (store/compact.h):
 * a version-2 container whose first record, at offset 64, is the
 * redirection table (record type DDP_RECORD_REDIRECT): one 16-byte entry
 * per record of the container, {u64 local id, u64 offset}, in the order of
 * the records, both fields strictly increasing. The records follow the table
 * byte for byte as they were (header and payload), so every check a reader
 * makes (checksums, the sha256 the reference names) is the same in every
 * generation. Byte layout in docs/FORMAT.md.
 *
 * A reader resolves a reference once per container generation: version 1,
 * the id is the offset; version 2, a binary search in the table (loaded once
 * per open container: 16 bytes per record). An id the table does not hold
 * was garbage-collected: DDP_E_FILE_CORRUPT naming container and id.
 *
 * Everything here works on memory buffers too, so the restore engine can
 * parse a table that came through a backup store's ReadBackupFile.
 */
#ifndef DDP_REDIRECT_H
#define DDP_REDIRECT_H

#include <stddef.h>
#include <stdint.h>
#include <ddp/ddperror.h>

#define DDP_REDIRECT_ENTRY_SIZE 16u
/* At most 2^24 entries (a 256 MiB table): far above what a container can
 * hold at its size limit, and a bound on what a hostile header can ask for. */
#define DDP_REDIRECT_MAX_LEN ((uint64_t)DDP_REDIRECT_ENTRY_SIZE << 24)
/* The offset of the table record in a version-2 container, and of its
 * first record after it. */
#define DDP_REDIRECT_TABLE_OFFSET 64u
#define DDP_REDIRECT_FIRST_RECORD(redirect_len) ((uint64_t)DDP_REDIRECT_TABLE_OFFSET + 64u + (redirect_len))

typedef struct ddp_redirect {
    uint32_t count;    /* 0: identity (a version-1 container) */
    uint64_t *ids;     /* strictly increasing */
    uint64_t *offsets; /* strictly increasing; offsets[i] is where ids[i] lies */
} ddp_redirect;

/* Encode n entries (ids and offsets strictly increasing, checked by the
 * caller) into out, which holds n * DDP_REDIRECT_ENTRY_SIZE bytes. */
void ddp_redirect_encode(const uint64_t *ids, const uint64_t *offsets, uint32_t n, uint8_t *out);

/* Decode and check a table payload of len bytes, from a container whose
 * header gave redirect_len == len and whose file is container_len bytes long
 * (UINT64_MAX when unknown). Checks: len a nonzero multiple of 16 within the
 * limit; every id >= 64; ids strictly increasing; offsets strictly
 * increasing, the first at DDP_REDIRECT_FIRST_RECORD(len), every one leaving
 * room for a record header before container_len. DDP_E_FILE_CORRUPT naming
 * `what` and the entry otherwise. */
HRESULT ddp_redirect_decode(const uint8_t *buf, size_t len, uint64_t container_len, const char *what,
                            ddp_redirect *r);

/* Where the record of local id `id` lies: S_OK and *off, or DDP_E_FILE_CORRUPT
 * ("record N of WHAT is not in its redirection table: garbage-collected").
 * An identity table (count 0) answers id itself. */
HRESULT ddp_redirect_resolve(const ddp_redirect *r, uint64_t id, const char *what, uint64_t *off);

/* The local id of the record at offset off: 1 and *id, or 0 when no entry
 * has that offset. An identity table answers off itself. */
int ddp_redirect_id_at(const ddp_redirect *r, uint64_t off, uint64_t *id);

/* Read the table of an open local container file whose header h was decoded
 * (a version-1 header gives the identity table without reading). */
struct ddp_container_header;
HRESULT ddp_redirect_load(int fd, const char *what, const struct ddp_container_header *h, ddp_redirect *r);

void ddp_redirect_free(ddp_redirect *r);

#endif /* DDP_REDIRECT_H */
