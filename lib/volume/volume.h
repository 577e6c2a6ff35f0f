/*
 * volume.h: the inside of a ddp_volume handle: where things are, its
 * identity and settings, the job lock, and the chunk store (opened on first use).
 */
#ifndef DDP_VOLUME_H
#define DDP_VOLUME_H

#include <sys/stat.h>

#include <pthread.h>
#include <ddp/ddp.h>
#include "store/chunkstore.h"
#include "store/identity.h"
#include "store/settings.h"

struct ddp_volume {
    char *root;          /* absolute, no trailing slash */
    char *ddp_dir;       /* root/.ddp */
    char *settings_dir;  /* root/.ddp/Settings */
    char *state_dir;     /* root/.ddp/State */
    char *store_dir;     /* root/.ddp/ChunkStore/{GUID}.ddp */
    ddp_identity id;
    ddp_settings settings;
    int flags;
    int lock_fd;         /* -1 unless DDP_OPEN_JOB */
    pthread_mutex_t store_mu;
    ddp_chunkstore *store; /* lazily opened; writable iff DDP_OPEN_JOB */
};

/* The chunk store of v, opened on first use (for a job: writable, after
 * finishing an interrupted gc). */
HRESULT ddp_volume_store(ddp_volume *v, ddp_chunkstore **out);
/* A reader of v's chunk store (store/chunkread.h); v must outlive it. */
struct ddp_chunkreader;
HRESULT ddp_volume_chunkreader(ddp_volume *v, struct ddp_chunkreader **out);
/* Append one line to State/jobs.log ("2026-11-24T22:00:00Z optimize S_OK ..."). */
void ddp_volume_log_job(ddp_volume *v, const char *line);
/* Is path (absolute or relative to cwd) inside v's .ddp directory? */
int ddp_volume_is_internal(const ddp_volume *v, const char *abspath);
/* Read the file at path; if it is a valid stub of v (MAC checks), fill *s and
 * return S_OK; a regular file that is not a stub: S_FALSE; a file that looks
 * like a stub but fails authentication: DDP_E_INVALID_DATA. fd >= 0: use it. */
struct ddp_stub;
HRESULT ddp_volume_read_stub(ddp_volume *v, int fd, const char *path, struct ddp_stub *s);

/* Walk the volume (physical, one file system, never .ddp), calling fn for each
 * regular file (FTSENT from <fts.h>); stops at the first failure fn returns.
 * A directory or file the walk cannot read (not one that vanished during the
 * walk) goes to on_error, which returns S_OK to go on or a failure to stop;
 * on_error NULL stops the walk with an error naming it: a job that must see
 * every stub (unoptimize before it removes the store, gc before it retires
 * records) never goes on past a directory it could not read. */
/* Could the file described by st claim to be a stub (a regular file of a
 * stub's prefix size up to a stub's size)? Such files are read and judged;
 * others are plain files without reading them. */
int ddp_volume_may_be_stub(const struct stat *st);

/* S_OK when v was opened for a job (DDP_OPEN_JOB: it holds the job lock),
 * else DDP_E_INVALID_STATE with a message. */
HRESULT ddp_volume_require_job(const ddp_volume *v);

struct _ftsent;
typedef HRESULT (*ddp_walk_fn)(ddp_volume *v, struct _ftsent *e, void *ctx);
HRESULT ddp_volume_walk(ddp_volume *v, ddp_walk_fn fn, ddp_walk_fn on_error, void *ctx);

#endif /* DDP_VOLUME_H */
