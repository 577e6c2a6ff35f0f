/* SPDX-License-Identifier: MIT */
/*
 * restore_internal.h: the pieces of the restore engine shared by its files:
 *
 *   restore.c        RestoreFiles and the plan listing: arguments, the files
 *                    at FileFullPaths, the two phases, results (the "what").
 *   restore_plan.c   the read engine: the containers of the call, which byte
 *                    ranges are needed, OrderContainersRestore plans,
 *                    previews, coalesced reads, and reassembly of records
 *                    from the bytes as they arrive (the "how it is read").
 *   restore_write.c  the target files: temporary files beside the stubs, a
 *                    small LRU of open descriptors, the final checks and the
 *                    atomic replacement of each stub (the "where it goes").
 *   rsformat.h       the one interface an on-disk format implements (what a
 *                    stub is, which records to read, what they mean), and
 *   rsformat_*.c     the formats: ddp's own (rsformat_ddp.c).
 *
 * The engine knows no on-disk format: it reads byte ranges [offset, offset +
 * length) of containers the formats name, and hands each complete range (a
 * "record") to the format that asked for it.
 *
 * Nothing here is part of the library's interface.
 */
#ifndef DDP_RESTORE_INTERNAL_H
#define DDP_RESTORE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <ddp/ddpbackup.h>

/* Largest single ReadBackupFile, and the largest read buffer (R7, R10). */
#define RS_MAX_READ ((uint64_t)4 << 20)
/* Needed ranges separated by at most this many unneeded, unread bytes are
 * read as one (fewer callback round trips; at most 4 KiB wasted per gap). */
#define RS_COALESCE_GAP ((uint64_t)4096)
/* Temporary files kept open at once (least recently used one closed first). */
#define RS_MAX_OPEN_TEMPS 64
/* The decode buffer the engine lends a format (c->chunk): the largest chunk
 * that is decoded rather than used in place. */
#define RS_CHUNK_MAX 131072u
/* One past the last byte any container can have: LONGLONG's maximum. */
#define RS_OFF_END ((uint64_t)INT64_MAX)
/* Rounds of the stream-map phase: a format may ask for further records after
 * the first (e.g. a redirection table, then the record it points to). */
#define RS_MAX_ROUNDS 16
/* Container kinds, as the phases name them (the values of ddp's catalog). */
#define RS_KIND_DATA 1u
#define RS_KIND_STREAM 2u
/* A container key: the format's index in the top 8 bits, the format's own
 * number for the container below (< 2^56). */
#define RS_KEY_FMT_SHIFT 56
#define RS_KEY(fmt, k) (((uint64_t)(fmt) << RS_KEY_FMT_SHIFT) | (uint64_t)(k))
#define RS_KEY_FMT(key) ((uint32_t)((key) >> RS_KEY_FMT_SHIFT))
#define RS_KEY_LOCAL(key) ((key) & (((uint64_t)1 << RS_KEY_FMT_SHIFT) - 1))

enum rs_state {
    RS_PENDING = 0, /* a stub still being restored */
    RS_SKIPPED,     /* not a stub (S_FALSE) */
    RS_FAILED,      /* result holds the failure; the stub is untouched */
    RS_RESTORED,    /* replaced by its content */
    RS_ALIAS        /* the same directory entry as an earlier path: shares its result */
};

typedef struct rs_file {
    const char *path;     /* the caller's string */
    int state;
    HRESULT result;
    uint32_t alias_of;
    char *dir, *base;     /* the stub's directory and name (malloc'd) */
    struct stat st;       /* the stub as found at the start */
    dev_t dir_dev;
    ino_t dir_ino;
    uint32_t fmt;         /* index of its format (rs_formats) */
    void *fs;             /* the format's state of this file (malloc'd) */
    uint64_t size;        /* the logical size the stub states */
    int mapped;           /* the format knows its chunks (rs_file_mapped) */
    uint32_t nchunks;
    uint8_t *filled;      /* one bit per chunk: written to the temp file */
    uint64_t remaining;   /* chunks not yet written */
    char *tmpname;        /* temp file name in dir, NULL until created */
    dev_t tmp_dev;
    ino_t tmp_ino;
    int slot;             /* index in the open-temp LRU, or -1 */
    int ready;            /* content checked, attributes set: waits for the batch commit */
} rs_file;

/* A sorted set of disjoint half-open byte intervals. */
typedef struct rs_interval { uint64_t a, b; } rs_interval;
typedef struct rs_ivset { rs_interval *v; size_t n, cap; } rs_ivset;

/* One use of a record: a file that needs it (and, for chunks, which of its
 * chunks; in the stream phase, the need's tag). The sort key fields name
 * the record. */
typedef struct rs_use {
    uint64_t cont;        /* container key */
    uint64_t off;         /* first byte of the record */
    uint32_t len;         /* bytes of the record */
    uint32_t file, entry;
} rs_use;

/* One distinct record to fetch: [off, end) of container cont. */
typedef struct rs_record {
    uint64_t off, end;
    uint32_t cont;        /* index in the phase's container list */
    uint32_t len;
    size_t use_first, use_count;
    uint64_t received;    /* bytes delivered so far (each byte is read once) */
    uint8_t *buf;         /* partial record while it straddles reads, else NULL */
    int done;             /* processed, failed, or no longer needed */
} rs_record;

/* A container of the call (both phases, every round): its path in the
 * backup and what has been read of it. */
typedef struct rs_cstate {
    uint32_t kind;        /* RS_KIND_* */
    uint64_t key;
    char *path;           /* in the backup: "/.ddp/ChunkStore/{GUID}.ddp/Data/..." */
    rs_ivset read;        /* bytes already read (or tried) in this call */
    /* Copies of the records read so far, kept for a later round that needs
     * bytes again (stream phase of a format with stream_exact only). */
    struct rs_kept { uint64_t off; uint32_t len; uint8_t *bytes; } *kept;
    size_t nkept, kept_cap;
    int missing;          /* the store said it has no such file, or the format knows it absent */
    /* Its prelude (rsformat.h: prelude_first): the byte ranges its format
     * reads, one after another, before the container's records can be
     * placed (ddp: a compacted container's header, then its redirection
     * table). While it is RS_PRE_READING, the records of the container hold
     * the format's local ids in off (their order is that of the offsets
     * they will get), and only the range [pre_off, pre_off + pre_len) is
     * read, exactly, bytes buffered in pre_buf as they arrive. */
    int pre;              /* RS_PRE_* */
    uint64_t pre_off;
    uint32_t pre_len, pre_got;
    uint8_t *pre_buf;
    HRESULT pre_hr;       /* RS_PRE_FAILED: why, for the files of later phases */
    char *pre_why;
    void *fstate;         /* the format's state of this container (cont_release frees it) */
} rs_cstate;

enum { RS_PRE_NONE = 0, RS_PRE_READING, RS_PRE_DONE, RS_PRE_FAILED };

/* A container of one phase (one round). */
typedef struct rs_container {
    rs_cstate *st;
    size_t rec_first, rec_count; /* its records, sorted by offset */
} rs_container;

typedef struct rs_ctx rs_ctx;
typedef struct rs_phase rs_phase;

struct rs_phase {
    uint32_t kind;        /* RS_KIND_STREAM or RS_KIND_DATA */
    const char *name;     /* "stream-map" or "data", for messages */
    rs_container *conts;
    uint32_t ncont;
    rs_record *recs;
    size_t nrec;
    uint64_t *maxend;     /* per record: max end of the records of its container up to it */
    rs_use *uses;         /* sorted by record */
    size_t nuse;
    /* A record is complete: its len bytes are at bytes (set by rs_phase_run). */
    void (*on_record)(rs_ctx *c, rs_phase *ph, rs_record *r, const uint8_t *bytes);
};

/* A record's bytes cannot all be read: the container ends before it (a
 * short read or ERROR_HANDLE_EOF). Its format may ask for another record
 * instead (a stale offset); else its files fail with hr. */
void rs_record_unreadable(rs_ctx *c, rs_phase *ph, rs_record *r, HRESULT hr);

struct rs_lru_slot { uint32_t file; int fd; uint64_t used; };

#define RS_MAX_FORMATS 4

struct rs_ctx {
    IDedupReadFileCallback *store;
    rs_file *files;
    uint32_t n;
    int writing;          /* RestoreFiles (1) or the plan listing (0) */
    int in_place;         /* ddp_restore_files_staged: content written into the stub's own inode,
                           * nothing synced or renamed (restore_write.c) */
    void *fctx[RS_MAX_FORMATS]; /* each format's state of the call */
    rs_cstate **conts;    /* the call's containers, sorted by (kind, key) */
    size_t nconts, conts_cap;
    uint8_t *rbuf;        /* read buffer, grown up to RS_MAX_READ */
    size_t rbuf_cap;
    uint8_t *chunk;       /* a decode buffer of RS_CHUNK_MAX bytes for the formats */
    struct rs_lru_slot lru[RS_MAX_OPEN_TEMPS];
    int nlru;
    uint64_t clock;
    rs_use *needs;        /* stream-phase records asked for the next round (rs_file_need) */
    size_t nneeds, needs_cap;
    uint32_t *ready;      /* files waiting for the batch commit (rs_commit_ready) */
    uint32_t nready;
    uint32_t detail_file; /* lowest index of a failed file, for the detail message */
    char detail[2048];
};

/* ---- restore.c ---- */
/* Mark file i failed with hr; the thread's current detail message says why.
 * Discards its temporary file. No effect unless the file is pending. */
void rs_file_fail(rs_ctx *c, uint32_t i, HRESULT hr);
int rs_file_pending(const rs_ctx *c, uint32_t i);
/* Fail every pending file of format fmt with hr (detail already set). */
void rs_fail_format(rs_ctx *c, uint32_t fmt, HRESULT hr);
/* File i needs [off, off + len) of container (kind stream, the format's
 * local key) in the next round of the stream-map phase (a file may need
 * several records in one round; tag tells the format which is which). */
void rs_file_need(rs_ctx *c, uint32_t i, uint64_t local_key, uint64_t off, uint32_t len, uint32_t tag);
/* File i's chunks are known: nchunks of them (the format answers chunk_ref). */
void rs_file_mapped(rs_ctx *c, uint32_t i, uint32_t nchunks);
/* Read n bytes of a metadata file (not a container: no preview) through the
 * callback, in pieces of at most RS_MAX_READ. Absent: DDP_E_NOT_FOUND;
 * truncated: DDP_E_FILE_CORRUPT; other failures: the callback's HRESULT. */
HRESULT rs_read_meta(rs_ctx *c, const char *path, uint64_t off, uint8_t *buf, size_t n);

/* ---- restore_plan.c ---- */
void rs_ivset_add(rs_ivset *s, uint64_t a, uint64_t b);
void rs_ivset_free(rs_ivset *s);
/* The call's container (kind, key), made on first use (its path from its format). */
rs_cstate *rs_cont_get(rs_ctx *c, uint32_t kind, uint64_t key);
void rs_conts_free(rs_ctx *c);
/* Let go of the records kept for later rounds (end of the stream phase). */
void rs_conts_drop_kept(rs_ctx *c);
/* Build a phase from uses (sorted here). */
void rs_phase_build(rs_ctx *c, rs_phase *ph, uint32_t kind, rs_use *uses, size_t nuse);
void rs_phase_free(rs_phase *ph);
/* Read everything the phase's live records need, handing each complete
 * record to on_record. ask_order: call OrderContainersRestore first and
 * follow its plan. Returns S_OK, or the HRESULT that ended the call (every
 * pending file has then failed with it). */
HRESULT rs_phase_run(rs_ctx *c, rs_phase *ph, int ask_order,
                     void (*on_record)(rs_ctx *c, rs_phase *ph, rs_record *r, const uint8_t *bytes));
/* Read the preludes of the phase's containers (and nothing else), in ddp's
 * order, each range previewed: then their records are placed (the plan
 * listing: what a restore would read). */
void rs_phase_preludes(rs_ctx *c, rs_phase *ph);
/* Is any file that uses record r still pending? */
int rs_record_live(const rs_ctx *c, const rs_phase *ph, const rs_record *r);
/* Fail every pending file that uses r with hr (detail already set); r is done. */
void rs_record_fail(rs_ctx *c, rs_phase *ph, rs_record *r, HRESULT hr);
/* The ranges of container ci the live records need that are not read yet,
 * within [s, e): merged, coalesced over small unread gaps. *out is malloc'd. */
size_t rs_needed_ranges(rs_ctx *c, rs_phase *ph, uint32_t ci, uint64_t s, uint64_t e, rs_interval **out);

/* ---- restore_write.c ---- */
/* Create file i's temporary file beside its stub. */
HRESULT rs_temp_create(rs_ctx *c, uint32_t i);
/* Write one verified chunk (number entry) at file offset off; marks it
 * filled, and finishes the file when it was the last one. Fails the file on
 * error. */
void rs_write_chunk(rs_ctx *c, uint32_t i, uint32_t entry, uint64_t off, const uint8_t *data, uint32_t len);
/* All chunks are in: check the content, carry the stub's attributes, and
 * queue the file for the batch commit. */
void rs_finish_file(rs_ctx *c, uint32_t i);
/* Commit the queued files: make them durable (one syncfs for a batch, an
 * fsync each for a few), check each stub unchanged, rename over it, and make
 * the renames durable. */
void rs_commit_ready(rs_ctx *c);
#define RS_COMMIT_BATCH 64
#define RS_SYNCFS_MIN 8
/* Close and remove file i's temporary file (if any). */
void rs_temp_discard(rs_ctx *c, uint32_t i);
/* Close every descriptor still open (end of the call). */
void rs_temps_close_all(rs_ctx *c);

#endif /* DDP_RESTORE_INTERNAL_H */
