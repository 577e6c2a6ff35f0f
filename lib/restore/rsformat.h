/* SPDX-License-Identifier: MIT */
/*
 * rsformat.h: the one interface an on-disk format implements for the
 * restore engine (restore.c, restore_plan.c, restore_write.c), which knows
 * no format of its own. A format says:
 *
 *   - whether a regular file at a FileFullPath is one of its stubs
 *     (recognise), and what it says (parse);
 *   - which metadata to read through ReadBackupFile before any container is
 *     ordered, and whether each stub checks out against it (prepare); it then
 *     names each valid file's first stream-map record: a container (by the
 *     format's own key), an offset and a length (rs_file_need);
 *   - the path in the backup of each container key (container_path);
 *   - what a fetched stream-phase record means (stream_record): a stream map
 *     (then rs_file_mapped with the number of chunks), another record to
 *     read first (rs_file_need again, e.g. a redirection table), or a
 *     failure (rs_file_fail / rs_record_fail);
 *   - where each chunk of a mapped file is (chunk_ref: container, record
 *     offset and length, file offset, logical length);
 *   - the file bytes of a fetched chunk record, checked against what each
 *     file expects (chunk_record, which hands them to rs_write_chunk);
 *   - a last check of a complete file (content_problem).
 *
 * The engine does everything else, the same for every format: the checks of
 * the arguments and of the files, the two OrderContainersRestore calls
 * (stream-map containers, then data containers), previews, coalesced
 * forward reads, reassembly of records that straddle reads, the temporary
 * files, the atomic replacement of each stub, and the results (R1-R10).
 *
 * A record callback gets the record's bytes and its uses (ph->uses[
 * r->use_first .. + r->use_count]: file, and entry = chunk number or need
 * tag); it must look only at files still pending (rs_file_pending).
 */
#ifndef DDP_RSFORMAT_H
#define DDP_RSFORMAT_H

#include <stddef.h>
#include <stdint.h>
#include "restore/restore_internal.h"

/* The most bytes of a stub the engine reads from a file at FileFullPaths. */
#define RS_STUB_MAX 16384u

typedef struct rs_chunkref {
    uint64_t cont;        /* the format's data-container key (< 2^56) */
    uint64_t rec_off;     /* record offset in the container */
    uint32_t rec_len;     /* record bytes (header and payload) */
    uint64_t file_off;    /* where its bytes go in the file */
} rs_chunkref;

typedef struct rs_format {
    const char *name;
    /* 1: read stream-phase containers exactly, without coalescing over the
     * unread gaps between records, because a later round may need those
     * bytes (R7 forbids reading a byte twice). */
    int stream_exact;
    /* Is this regular file (size bytes, the first n of them at head, n =
     * min(size, RS_STUB_MAX)) one of this format's stubs? A file that is
     * claims that it is a stub: if parse then fails, it is a malformed one. */
    int (*recognise)(const uint8_t *head, size_t n, uint64_t size);
    /* File i is this format's: parse its stub (the n bytes at stub, size the
     * file's size) into c->files[i].fs and .size. DDP_E_INVALID_DATA (with
     * a detail) when it does not parse. */
    HRESULT (*parse)(rs_ctx *c, uint32_t i, const uint8_t *stub, size_t n, uint64_t size);
    /* Read the metadata (rs_read_meta), check each pending file of this
     * format against it (fail those that do not pass), and give each that
     * passes its first stream-phase need. Returns how many passed. */
    uint32_t (*prepare)(rs_ctx *c, uint32_t fmt);
    /* The path of container (kind, local key) in the backup (malloc'd);
     * *missing = 1 when the format already knows the backup lacks it. */
    char *(*container_path)(rs_ctx *c, uint32_t fmt, uint32_t kind, uint64_t key, int *missing);
    /* A stream-phase record of this format is complete. */
    void (*stream_record)(rs_ctx *c, rs_phase *ph, rs_record *r, const uint8_t *bytes);
    /* A stream-phase record lies (partly) past the end of its container. May
     * be NULL: its files fail with hr (DDP_E_FILE_CORRUPT). */
    void (*stream_unreadable)(rs_ctx *c, rs_phase *ph, rs_record *r, HRESULT hr);
    /* Chunk k of mapped file i. */
    void (*chunk_ref)(rs_ctx *c, uint32_t i, uint32_t k, rs_chunkref *out);
    /* A chunk record of this format is complete: check it for each file that
     * uses it, decode it once, rs_write_chunk it for each. */
    void (*chunk_record)(rs_ctx *c, rs_phase *ph, rs_record *r, const uint8_t *bytes);
    /* Every chunk of file i is written: NULL when the content is right, else
     * what is wrong (the engine has checked every chunk was written; it checks
     * the size after). May be NULL. */
    const char *(*content_problem)(rs_ctx *c, uint32_t i);
    /* Containers whose records cannot be placed before some of their bytes
     * are read (ddp: a compacted container, whose records are named by local
     * ids that its redirection table maps to offsets). All four may be NULL
     * (no container of the format has a prelude).
     *
     * prelude_first: does container k need a prelude? 1 with the first
     * range to read (*off, *len), else 0 (its records are where the format
     * named them). Called once, when the call first meets the container.
     * prelude_bytes: the range is read (len bytes at bytes): S_OK with
     * *len = 0 when the prelude is complete, S_OK with the next range in
     * *off and *len (after the previous one), or a failure (its detail set)
     * that fails every file needing anything of the container.
     * place: the offset of the record the format named by id (len bytes),
     * once the prelude is complete: S_OK and *off, or a failure (detail
     * set) that fails the files using that record.
     * cont_release: free k->fstate (end of the call). */
    int (*prelude_first)(rs_ctx *c, uint32_t fmt, rs_cstate *k, uint64_t *off, uint32_t *len);
    HRESULT (*prelude_bytes)(rs_ctx *c, uint32_t fmt, rs_cstate *k, const uint8_t *bytes, uint64_t *off,
                             uint32_t *len);
    HRESULT (*place)(rs_ctx *c, uint32_t fmt, rs_cstate *k, uint64_t id, uint32_t len, uint64_t *off);
    void (*cont_release)(rs_ctx *c, uint32_t fmt, rs_cstate *k);
    /* Let go of file i's large state (may be called more than once; the
     * engine frees fs itself at the end). */
    void (*file_release)(rs_ctx *c, uint32_t i);
    /* Free the format's state of the call (c->fctx[fmt]). */
    void (*ctx_free)(rs_ctx *c, uint32_t fmt);
} rs_format;

extern const rs_format rs_format_ddp;
extern const rs_format rs_format_windows;

/* The formats, in the order they are asked to recognise a file. */
extern const rs_format *const rs_formats[];
extern const uint32_t rs_nformats;

#endif /* DDP_RSFORMAT_H */
