/* SPDX-License-Identifier: MIT */
/*
 * ddp/ddp.h: libddp, Data Deduplication for Linux: volumes, jobs, reading.
 *
 * A volume is a directory tree with a .ddp/ directory (settings and chunk
 * store). The optimization job replaces files in policy with small
 * authenticated stubs whose data lives, deduplicated and compressed, in the
 * chunk store; every file still reads back exactly as it was, through
 * ddp_file_* here, `ddp cat`, or `ddp mount`. Every call returns an HRESULT
 * (ddp/ddperror.h); ddp_error_detail() names what went wrong.
 *
 * The Windows-compatible backup-support API is in ddp/ddpbackup.h.
 */
#ifndef DDP_DDP_H
#define DDP_DDP_H

#include <stddef.h>
#include <stdint.h>
#include <ddp/ddperror.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DDP_VERSION_STRING "0.1.0"

typedef struct ddp_volume ddp_volume;

/* ---- volumes ---- */

/* Create VOLUME/.ddp with default settings for usage_type ("Default",
 * "HyperV", "Backup"; NULL = Default), a new store id and stub key.
 * A volume already enabled: HRESULT_FROM_WIN32(ERROR_ALREADY_EXISTS). */
DDP_API HRESULT ddp_volume_enable(const char *path, const char *usage_type);

enum {
    DDP_OPEN_READ = 0,  /* read files and status; no lock */
    DDP_OPEN_JOB = 1    /* take the volume's job lock (DDP_E_JOB_ALREADY_RUNNING if held) */
};
/* Open the volume rooted at path (the directory holding .ddp). Not a volume:
 * DDP_E_VOLUME_DEDUP_DISABLED. */
DDP_API HRESULT ddp_volume_open(const char *path, int flags, ddp_volume **out);
/* The volume that contains path (walks up to the nearest .ddp). */
DDP_API HRESULT ddp_volume_open_containing(const char *path, int flags, ddp_volume **out);
DDP_API void ddp_volume_close(ddp_volume *v);
DDP_API const char *ddp_volume_root(const ddp_volume *v);

/* Settings (`ddp set` / `ddp get`): keys as in docs/FORMAT.md. value is malloc'd. */
DDP_API HRESULT ddp_volume_set(ddp_volume *v, const char *key, const char *value);
DDP_API HRESULT ddp_volume_get(ddp_volume *v, const char *key, char **value);
/* NULL-terminated list of setting keys. */
DDP_API const char *const *ddp_setting_keys(void);

/* ---- the optimization job ---- */

typedef struct ddp_job_stats {
    uint64_t files_scanned;      /* regular files seen */
    uint64_t files_optimized;    /* became stubs in this run */
    uint64_t files_already;      /* were stubs already */
    uint64_t files_skipped_policy; /* too small, too new, excluded */
    uint64_t files_changed;      /* changed while being optimized: left as they were */
    uint64_t files_failed;       /* unreadable or other error: left as they were */
    uint64_t bytes_scanned;      /* logical bytes of files optimized in this run */
    uint64_t chunks_total, chunks_new;
    uint64_t bytes_new_stored;   /* bytes added to containers */
    double seconds;
} ddp_job_stats;

/* Called for each file the job skips or fails (reason is a full sentence)
 * and, if non-NULL, after each file (progress). Both may be NULL. */
typedef struct ddp_job_callbacks {
    void (*file_problem)(void *ctx, const char *path, HRESULT hr, const char *reason);
    void (*progress)(void *ctx, const ddp_job_stats *sofar);
    void *ctx;
    /* Optional: a file's chunks are stored and its stub is about to be
     * committed (called from a worker thread). */
    void (*file_chunked)(void *ctx, const char *path);
    /* Optional, for a progress display (gc, scrub): the job is in its phase
     * `phase` ("stubs", "containers") and has done `done` items of `total`
     * there (0: the total is not known). Called from the job's thread. */
    void (*step)(void *ctx, const char *phase, uint64_t done, uint64_t total);
} ddp_job_callbacks;

/* Optimize the volume (opened with DDP_OPEN_JOB). threads 0 = one per core.
 * Returns S_OK, or DDP_E_JOB_COMPLETED_PARTIAL_SUCCESS when some files failed,
 * or the error that stopped the job (the volume stays consistent). */
DDP_API HRESULT ddp_optimize(ddp_volume *v, unsigned threads, const ddp_job_callbacks *cb,
                             ddp_job_stats *stats);

/* Rehydrate one optimized file in place (atomic; keeps owner, mode, times).
 * A file that is not a stub: S_FALSE. */
DDP_API HRESULT ddp_unoptimize_file(ddp_volume *v, const char *path);
/* Rehydrate every stub of the volume. */
DDP_API HRESULT ddp_unoptimize_volume(ddp_volume *v, const ddp_job_callbacks *cb, ddp_job_stats *stats);

/* Drop the chunk index and rebuild it from the data containers (volume opened
 * with DDP_OPEN_JOB). The index is a cache: this never loses data. */
DDP_API HRESULT ddp_volume_rebuild_index(ddp_volume *v);

/* ---- reading ---- */

typedef struct ddp_file ddp_file;
/* Open any file of a volume for reading: a stub reads as its original content,
 * any other regular file as itself. */
DDP_API HRESULT ddp_file_open(ddp_volume *v, const char *path, ddp_file **out);
DDP_API uint64_t ddp_file_size(const ddp_file *f);
DDP_API int ddp_file_is_optimized(const ddp_file *f);
/* Read up to n bytes at off; *got < n only at end of file. Thread-safe per handle.
 * A chunk whose record is damaged is read from its hotspot copy when it has an
 * intact one (verified the same way: the bytes are the file's either way);
 * without one the read fails with DDP_E_FILE_CORRUPT, never with wrong bytes. */
DDP_API HRESULT ddp_file_pread(ddp_file *f, void *buf, size_t n, uint64_t off, size_t *got);
/* How many chunks this handle has read from a hotspot copy because their
 * primary record failed its checks: 0 on a healthy store; more says that
 * `ddp scrub --repair` has something to mend. */
DDP_API uint64_t ddp_file_copies_used(ddp_file *f);
DDP_API void ddp_file_close(ddp_file *f);

/* ---- status ---- */

typedef struct ddp_status {
    uint64_t files_optimized;    /* stubs on the volume */
    uint64_t files_other;        /* regular files that are not stubs */
    uint64_t logical_bytes;      /* what the optimized files hold */
    uint64_t stub_bytes;         /* what their stubs take */
    uint64_t other_bytes;        /* bytes of files not optimized */
    uint64_t store_bytes;        /* chunk store on disk (containers, catalog) */
    uint64_t chunks;             /* chunks in the store */
    uint64_t data_containers, stream_containers;
    uint64_t index_bytes;        /* index file size */
    uint64_t saved_bytes;        /* logical_bytes - their holes - stub_bytes - store_bytes - index (>= 0) */
    double savings_rate;         /* saved / (logical + other - hole), 0..1 */
    uint64_t hole_bytes;         /* what the files held as holes, not on disk: the unallocated bytes of
                                    files not optimized, and the all-zero chunks of optimized files (which
                                    a sparse original held as holes). Never counted as savings. */
    char last_job[256];          /* last line of the jobs log, or "" */
    /* The last line of each job in the jobs log ("" if it never ran):
     * "2026-11-24T22:00:00Z gc 0x00000000 ..." (the HRESULT is the result). */
    char last_optimize[256];
    char last_gc[256];
    char last_scrub[256];
    char last_unoptimize[256];
} ddp_status;
DDP_API HRESULT ddp_volume_status(ddp_volume *v, ddp_status *st);

/* ---- maintenance jobs (docs/MAINTENANCE.md) ---- */

/* Garbage collection (Windows: Start-DedupJob -Type GarbageCollection).
 * Chunks and stream maps that no stub on the volume references are retired in
 * place (their record becomes DEAD and its payload's blocks are punched out
 * of the container file); nothing is moved, so no stub or stream map changes.
 * A regular run only touches containers whose dead share is at least the
 * gc_threshold setting (percent); full = 1 touches every container with dead
 * records. Crash-safe: the plan is written to State/gc.plan first, and the
 * next writable open of the store finishes an interrupted run. The volume
 * must be opened with DDP_OPEN_JOB. The job closes and reopens the volume's
 * chunk store: close every ddp_file opened on v before calling it. */
typedef struct ddp_gc_stats {
    uint64_t stubs;               /* stubs found: what they reference is live */
    uint64_t containers_scanned;  /* data, stream-map and hotspot containers */
    uint64_t containers_collected;/* containers compacted into their next generation (only live records) */
    uint64_t live_records;        /* chunk and stream-map records still referenced */
    uint64_t dead_records;        /* records collected by this run (DEAD ones of older versions too) */
    uint64_t dead_bytes;          /* their size in the containers (headers + payloads) */
    uint64_t reclaimed_bytes;     /* disk space given back (allocated bytes of old files - new files) */
    uint64_t store_bytes;         /* container bytes the run looked at */
    int punch_unsupported;        /* always 0 (gc compacts; it punched holes before version 2 containers) */
    double seconds;
    uint64_t containers_dropped;  /* containers with nothing live, removed */
} ddp_gc_stats;
DDP_API HRESULT ddp_gc(ddp_volume *v, int full, const ddp_job_callbacks *cb, ddp_gc_stats *st);

/* Integrity scrubbing (Windows: Start-DedupJob -Type Scrubbing). Checks every
 * container header and record (checksums, decoding, SHA-256), every stream
 * map a stub references, and every stub (MAC, its stream map's size and
 * hash); each damage is reported with the files it affects. repair = 1 mends
 * a damaged record from an intact copy with the same hash (its hotspot copy,
 * or any other), and retires damaged records that no file references.
 * Returns S_OK when nothing is (left) damaged, DDP_E_FILE_CORRUPT when some
 * damage remains, or the error that stopped the job; *out is filled in every
 * case and must be freed with ddp_scrub_report_free(). DDP_OPEN_JOB needed. */
enum {
    DDP_SCRUB_CONTAINER = 1,   /* a container file: missing, bad header, data after the seal */
    DDP_SCRUB_RECORD = 2,      /* a chunk record (or a damaged region of a container) */
    DDP_SCRUB_STREAMMAP = 3,   /* a stream-map record, or a stream map that does not match its stub */
    DDP_SCRUB_STUB = 4,        /* a stub: MAC, or a reference to something that does not exist */
    DDP_SCRUB_HOTSPOT = 5      /* a hotspot copy */
};
typedef struct ddp_scrub_item {
    int kind;                  /* DDP_SCRUB_* */
    char *file;                /* container path relative to the store ("Data/00000001.00000001.ccc"),
                                  or the stub's path */
    uint64_t offset;           /* record offset in the container (0 for stubs and whole containers) */
    char *what;                /* what is wrong, one line */
    int repaired;              /* 1: mended or retired by --repair */
    char *repair;              /* what --repair did, or why it could not ("" without --repair) */
    size_t nfiles;
    char **files;              /* the optimized files it affects (paths) */
} ddp_scrub_item;
typedef struct ddp_scrub_report {
    uint64_t containers, records, stream_maps, stubs;
    uint64_t bytes_checked;    /* container bytes read */
    uint64_t damaged, repaired, unrepaired;
    uint64_t files_affected;   /* distinct files named by unrepaired items */
    size_t count;
    ddp_scrub_item *items;
    double seconds;
} ddp_scrub_report;
DDP_API HRESULT ddp_scrub(ddp_volume *v, int repair, const ddp_job_callbacks *cb, ddp_scrub_report *out);
DDP_API void ddp_scrub_report_free(ddp_scrub_report *r);

/* The Unoptimization job (`ddp unoptimize VOLUME`): ddp_unoptimize_volume
 * (free space checked first), then, when every stub was rehydrated and none is
 * left, remove VOLUME/.ddp (chunk store, State, Settings): the directory is no
 * longer a ddp volume. Interrupted, run it again: it finishes. Close every
 * ddp_file opened on v first; after success only ddp_volume_close(v) is valid. */
DDP_API HRESULT ddp_unoptimize_job(ddp_volume *v, const ddp_job_callbacks *cb, ddp_job_stats *stats);
/* An Unoptimization job interrupted after it removed the identity leaves
 * DIR/.ddp with neither an identity nor a chunk store (no data, not a
 * volume): this removes the rest. S_OK: removed; S_FALSE: DIR has no .ddp;
 * DDP_E_INVALID_STATE: DIR/.ddp still holds a chunk store (data), or DIR is
 * a volume; DDP_E_JOB_ALREADY_RUNNING: a job holds its lock. */
DDP_API HRESULT ddp_unoptimize_finish(const char *dir);

#ifdef __cplusplus
}
#endif
#endif /* DDP_DDP_H */
