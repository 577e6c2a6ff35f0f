/* SPDX-License-Identifier: MIT */
/*
 * fusefs.h: the entry point of the FUSE file system behind `ddp mount`
 * (programs/mount/, mountfs.h says what is where; cmd_mount.c calls it):
 * a passthrough view of a volume in which every optimized file reads as the
 * file it was and opening one for writing rehydrates it first. Built only
 * when libfuse3 was found (DDP_HAVE_FUSE); docs/MOUNT.md describes it.
 */
#ifndef DDP_FUSEFS_H
#define DDP_FUSEFS_H

#include <stdint.h>
#include <ddp/ddp.h>

/* The largest read request: with a few pages for the header and the pieces,
 * a reply fits in a pipe of the default maximum size (fs.pipe-max-size,
 * 1 MiB), so it can be spliced (see mnt_read_buf, stubread.c). */
#define DDPFS_MAX_READ (768u << 10)

typedef struct ddpfs_options {
    const char *log_path;      /* append log lines here; NULL: stderr in the foreground, syslog when daemonized */
    int foreground;            /* -f or -d was given */
    uint64_t cache_bytes;      /* decompressed-chunk cache shared by every open file */
    uint64_t readahead_bytes;  /* how far ahead of a sequential reader chunks are decoded; the kernel's
                                  read-ahead of the mount is set to half of it (when allowed) */
    const char *mountpoint;    /* absolute path of the mount point */
    unsigned workers;          /* read-ahead threads; 0 = one per core (2..8) */
} ddpfs_options;

/* Serve volume v (opened with DDP_OPEN_READ; the caller closes it after this
 * returns) through libfuse with fuse_argv (program name, mount point and
 * libfuse's own options: -f, -d, -s, -o ...). Blocks until unmounted.
 * Returns the process exit code. */
int ddpfs_main(ddp_volume *v, const ddpfs_options *opt, int fuse_argc, char **fuse_argv);

#endif /* DDP_FUSEFS_H */
