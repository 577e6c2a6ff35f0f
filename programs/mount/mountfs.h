/* SPDX-License-Identifier: MIT */
/*
 * mountfs.h: what the files of the FUSE file system behind `ddp mount`
 * share: the mount's state, the open-file handles, the writers, path
 * resolution beneath the volume and the log. fusefs.h is the entry point
 * (cmd_mount.c calls ddpfs_main); docs/MOUNT.md describes the whole.
 *
 *   fs.c          the file system object: its state, the log, path
 *                 resolution beneath the volume root, the table of FUSE
 *                 operations, init and destroy, the kernel's read-ahead,
 *                 ddpfs_main
 *   tree.c        the operations on the tree, passed through to the volume
 *                 (getattr, readdir, mkdir, rename, open, write, xattrs, ...)
 *   stubread.c    stub verdicts (is this file a stub of the volume? its
 *                 logical size, cached), reading stubs through the chunk
 *                 cache, the read replies (spliced from the cache's pages)
 *   rehydrate.c   files open for writing (the writers, their flock),
 *                 rehydrating a stub before it is written, putting a file
 *                 back after a job replaced it while open for writing, the
 *                 watcher thread
 *   chunkcache.c  the cache of decoded, verified chunks and its read-ahead
 *                 threads (chunkcache.h)
 *
 * Only built with libfuse3 (DDP_HAVE_FUSE): include it inside that #ifdef.
 */
#ifndef DDP_MOUNTFS_H
#define DDP_MOUNTFS_H

#define FUSE_USE_VERSION 35
#include <fuse.h>

#include <dirent.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <syslog.h>
#include <time.h>

#include "fusefs.h"
#include "store/chunkread.h"
#include "store/streammap.h"

#define SZ_SLOTS 8192                   /* stub verdict cache entries (direct-mapped) */
#define STRIPES 16                      /* locks by path: one rehydration or recovery of a path at a time */
#define PROC_PATH_MAX (PATH_MAX + 64)   /* a path for the library (mnt_lib_path) */

enum { K_STUB = 1, K_PLAIN = 2 };             /* what a file is (mnt_classify) */
enum { H_PLAIN = 1, H_STUB = 2, H_DIR = 3 };  /* what an open handle is (fi->fh) */

typedef struct wnode wnode;

/* An open file (fi->fh): a plain file, or a stub read through the chunk cache. */
typedef struct handle {
    int kind;
    int fd;                   /* plain: the file; stub: the stub (fstat, fchmod, ...) */
    int flags;                /* open(2) flags */
    /* stubs */
    uint64_t size;            /* logical size */
    ddp_streammap map;
    char *display;            /* the path at open, for log lines */
    pthread_mutex_t mu;       /* read-ahead state */
    uint64_t ra_pos;          /* high-water mark of the reads */
    uint32_t ra_next;         /* first chunk not yet queued for read-ahead */
    unsigned seq;             /* sequential reads in a row */
    uint32_t logged_chunk;    /* last chunk whose failure was logged (+1) */
    /* files open for writing */
    wnode *wn;
    struct handle *wnext;
} handle;

/* An inode open for writing through the mount. */
struct wnode {
    dev_t dev;
    ino_t ino;
    int refs;                 /* handles + temporary users; under mnt.wmu */
    int gone;                 /* unlinked or replaced through the mount: nothing to recover */
    pthread_rwlock_t io;      /* I/O on the handles' fds: shared; recovery and handle list: exclusive */
    handle *handles;
    char *path;               /* FUSE path, kept current by rename; under mnt.wmu */
    wnode *next;
};

/* An open directory (fi->fh); it begins with kind, as a handle does. */
typedef struct dirh {
    int kind;                 /* H_DIR */
    DIR *dp;
    struct dirent *entry;
    off_t off;
    int is_root;
} dirh;

/* A stub verdict, remembered (stubread.c). */
typedef struct sz_slot {
    dev_t dev;
    ino_t ino;
    struct timespec mtime, ctime;
    uint64_t logical;
    int kind;                 /* 0 empty, K_STUB, K_PLAIN */
} sz_slot;

/* The mount: one, shared by every file of programs/mount/ (defined in fs.c). */
typedef struct mnt_state {
    ddp_volume *v;
    ddp_chunkreader *rd;      /* NULL when the chunk store cannot be opened */
    const char *root;
    int rootfd;
    int is_root;
    int have_proc;
    atomic_int have_openat2;
    ddpfs_options opt;
    /* log */
    pthread_mutex_t logmu;
    FILE *logf;
    int use_syslog;
    /* stub verdicts */
    pthread_mutex_t szmu;
    sz_slot *sz;
    /* writers */
    pthread_mutex_t wmu;
    wnode *wnodes;
    atomic_int nwn;
    pthread_mutex_t stripes[STRIPES];
    /* watcher */
    pthread_t watcher;
    _Atomic uint64_t kernel_ra_bytes;   /* the kernel's read-ahead of the mount, once set */
    int watcher_started;
    int splice;               /* read replies are spliced (mnt_read_buf) */
    pthread_t kernel_ra;      /* sets the kernel's read-ahead once mounted */
    int kernel_ra_started;
    pthread_mutex_t watchmu;
    pthread_cond_t watchcv;
    int stopping;
} mnt_state;

extern mnt_state mnt;

/* ---------------------------------------------------------------- fs.c */

/* A log line (errors: LOG_ERR; what the mount does: LOG_INFO). */
void mnt_log_at(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define mlog(...) mnt_log_at(LOG_ERR, __VA_ARGS__)
#define minfo(...) mnt_log_at(LOG_INFO, __VA_ARGS__)

/* The errno for a library failure. */
int mnt_hr_errno(HRESULT hr);

/* A FUSE path split into its parent directory, opened beneath the volume
 * root without following a symlink, and its last name. */
typedef struct at_path {
    int dirfd;                /* the parent directory (O_PATH) */
    const char *name;         /* the last component; "." for the root */
    int own;                  /* dirfd is ours to close */
} at_path;

/* Resolve path into *a (0 or -errno); creating: the caller makes the name
 * (hidden names: EPERM, not ENOENT). Let it go with mnt_at_done. */
int mnt_resolve(const char *path, at_path *a, int creating);
void mnt_at_done(at_path *a);

/* A path the library (or path-only syscalls) can use for a (path: its FUSE path). */
int mnt_lib_path(char *buf, size_t n, const at_path *a, const char *path);

/* -------------------------------------------------------------- tree.c */

/* Fill in the operations on the tree (all but read_buf, init and destroy). */
void mnt_tree_operations(struct fuse_operations *ops);

/* ---------------------------------------------------------- stubread.c */

/* A regular file of exactly a stub's size (worth authenticating). */
int mnt_could_be_stub(const struct stat *st);
int mnt_open_noatime(int dirfd, const char *name);

/* Is the file (fd, or a's name when fd < 0) a stub of this volume? K_STUB
 * with *logical, K_PLAIN, or -errno. */
int mnt_classify(int fd, const at_path *a, const char *display, struct stat *st, uint64_t *logical);

/* A file longer than a stub open at fd (st its fstat; a's name reads it
 * when fd is write-only) that is a stub with bytes appended outside the
 * mount (ddp_volume_read_appended_stub): -EIO, logged, since its bytes are
 * not its content. 0 for any other file (remembered in the verdict cache). */
int mnt_refuse_appended(int fd, const at_path *a, const char *display, const struct stat *st);

handle *mnt_handle_new(int kind, int fd, int flags);
void mnt_handle_free(handle *h);

/* A read handle for the stub open at fd (a plain one if it is no valid stub). */
int mnt_handle_stub(int fd, int flags, const char *path, handle **out);

/* The read_buf operation: stubs through the chunk cache, plain files spliced. */
int mnt_read_buf(const char *path, struct fuse_bufvec **bufp, size_t size, off_t off, struct fuse_file_info *fi);

/* Whether a pipe can hold a whole read reply (else replies are built in memory). */
int mnt_pipe_fits_reply(void);

/* The read replies' per-thread state: before the first read, after the last. */
void mnt_reply_start(void);
void mnt_reply_stop(void);

/* --------------------------------------------------------- rehydrate.c */

/* Files open for writing: register a writer's handle (st: its file), let it go. */
void mnt_wn_register(handle *h, const struct stat *st, const char *path);
void mnt_wn_unregister(handle *h);

/* Through the mount: inode (dev, ino) lost its last name; a rename. */
void mnt_wn_mark_gone(dev_t dev, ino_t ino);
void mnt_wn_rename(const char *from, const char *to, int exchange);

/* Has the inode behind wn lost its every name? (caller holds wn->io) */
int mnt_wn_orphaned_locked(wnode *wn);

/* Put back a file a job replaced while open for writing (1 if it was);
 * every such file at path (how many); the one behind h, if so. */
int mnt_recover(wnode *wn, int have_stripe);
int mnt_recover_path(const char *path, int have_stripe);
void mnt_check_writer(handle *h);

/* Rehydrate a's file if it is a stub (for writing, linking, truncating). */
int mnt_rehydrate_if_stub(const at_path *a, const char *path);

/* A writer's shared flock on fd; 1 when a's name no longer names fd's file. */
int mnt_lock_writer(int fd, const at_path *a);

/* The watcher thread, which looks for orphaned writers once a second. */
void mnt_watch_start(void);
void mnt_watch_stop(void);

#endif /* DDP_MOUNTFS_H */
