/* SPDX-License-Identifier: MIT */
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
    int lock_fd;         /* -1 unless DDP_OPEN_JOB (and -1 on a read-only file system) */
    int root_fd;         /* the root, held: every file is reached beneath it */
    int readonly;        /* the volume's file system is mounted read-only */
    int temp_fd;         /* .ddp/Temp (private temporaries), opened on first use */
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
 * like a stub but fails authentication: DDP_E_INVALID_DATA; a stub with
 * bytes appended (ddp_volume_read_appended_stub): DDP_E_FILE_CORRUPT, with a
 * message that says how many and what restores it. fd >= 0: use it. */
struct ddp_stub;
HRESULT ddp_volume_read_stub(ddp_volume *v, int fd, const char *path, struct ddp_stub *s);
/* Is the regular file open at fd (st: its fstat) "a stub with bytes
 * appended": longer than a stub, its first DDP_STUB_SIZE bytes a valid,
 * authenticated stub of v (someone wrote to the stub directly, not through
 * ddp mount; docs/FORMAT.md)? S_OK with *s and *appended (the bytes after
 * the stub); S_FALSE for any other file (one that only begins like a stub
 * is an ordinary file); a failure only when reading fails. */
HRESULT ddp_volume_read_appended_stub(ddp_volume *v, int fd, const struct stat *st, const char *path,
                                      struct ddp_stub *s, uint64_t *appended);

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

/* .ddp/Temp, a directory only the volume's owner can reach (0700, created on
 * first use), where replacements are built (volume/replace.h). *fd is v's. */
HRESULT ddp_volume_tempdir(ddp_volume *v, int *fd);
/* The directory that holds path (absolute inside v's root, or relative to
 * the current directory), opened beneath v's root (base/safepath.h), and
 * the file's name there (malloc'd). HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED)
 * when the way leaves the root or goes through a link or mount point. */
HRESULT ddp_volume_locate(ddp_volume *v, const char *path, int *dirfd, char **name);
/* Open path (as for ddp_volume_locate) with oflags (O_RDONLY...), O_NONBLOCK
 * until fstat proves it a regular file, and, with expect, the file that was
 * checked (device, inode, type). *st (optional) gets its fstat. */
HRESULT ddp_volume_open_regular(ddp_volume *v, const char *path, int oflags, const struct stat *expect, int *fd,
                                struct stat *st);
/* Fails with HRESULT_FROM_WIN32(ERROR_WRITE_PROTECT) naming `what` when v's
 * file system is read-only. */
HRESULT ddp_volume_require_writable(const ddp_volume *v, const char *what);

/* A reader of the file whose (already read and authenticated) stub is s;
 * nothing is opened by name. path names it in messages. */
struct ddp_stub;
HRESULT ddp_file_open_stub(ddp_volume *v, const struct ddp_stub *s, const char *path, ddp_file **out);

/* Rehydrate the stub `name` in the directory dirfd (held by the caller,
 * beneath v's root) in place; what names it in messages. S_FALSE when it is
 * not a stub of v. flags: DDP_UNOPT_NO_LEASE for a caller that keeps its
 * own users of the stub apart (ddp mount, whose readers hold stubs open). */
#define DDP_UNOPT_NO_LEASE 1
HRESULT ddp_unoptimize_at(ddp_volume *v, int dirfd, const char *name, const char *what, int flags);

struct _ftsent;
typedef HRESULT (*ddp_walk_fn)(ddp_volume *v, struct _ftsent *e, void *ctx);
HRESULT ddp_volume_walk(ddp_volume *v, ddp_walk_fn fn, ddp_walk_fn on_error, void *ctx);
/* The same, for a job that must see every stub (gc before it retires
 * records, unoptimize before it removes the store) while users may rename
 * things: afterwards every directory the walk read is looked at again, and
 * those that changed since (an entry added, removed or renamed; another
 * directory in its place) are read again, fn seeing their files again,
 * until none changed. DDP_E_FILE_IN_USE when the tree keeps changing. */
HRESULT ddp_volume_walk_stable(ddp_volume *v, ddp_walk_fn fn, ddp_walk_fn on_error, void *ctx);

#endif /* DDP_VOLUME_H */
