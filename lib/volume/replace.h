/* SPDX-License-Identifier: MIT */
/*
 * replace.h: replacing a file of a volume with a new one (a stub for the
 * file, the file for its stub, a mended stub) so that nobody who can write
 * in the tree can turn it into a write elsewhere, a read of something else,
 * or the loss of a write (replace.c, docs/SECURITY.md).
 *
 *   ddp_replace_begin   open the file from a held directory fd (beneath the
 *                       volume root, no link, no mount point, regular,
 *                       the file that was checked)
 *   ddp_replace_temp    the replacement: a private temporary in .ddp/Temp
 *   ddp_replace_commit  take a write lease (refused while anyone has the file
 *                       open), check it unchanged, exchange the two names,
 *                       check that what left is the file that was checked
 *                       and that the lease held, else put it back
 *   ddp_replace_end     close everything; an uninstalled temporary goes
 */
#ifndef DDP_REPLACE_H
#define DDP_REPLACE_H

#include <sys/stat.h>

#include "base/safepath.h"
#include "volume/volume.h"

typedef struct ddp_replace {
    int dirfd;                 /* the directory that holds the file (held) */
    char *name;                /* its name there */
    const char *what;          /* the path, for messages */
    int fd;                    /* the file, O_RDONLY, proved regular */
    struct stat st;            /* its fstat when opened */
    int tmpfd;                 /* the replacement */
    int tdir;                  /* .ddp/Temp (the volume's; not closed here) */
    char tmpname[DDP_TMPNAME_MAX];
    int leased;                /* a write lease is held on fd */
    int no_lease;              /* set by a caller that coordinates its own users (ddp mount) */
    int installed;
} ddp_replace;

/* Open path (a file of v: absolute inside its root, or relative to the
 * current directory) for replacement. expect (optional): it must be that
 * file (device, inode, type). S_FALSE (nothing opened) when it is not a
 * regular file; HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED) when the way to it
 * goes through a link or mount point or it was replaced. */
HRESULT ddp_replace_begin(ddp_volume *v, const char *path, const struct stat *expect, ddp_replace *r);
/* The same from a directory fd already held (dup'ed; name one component). */
HRESULT ddp_replace_begin_at(ddp_volume *v, int dirfd, const char *name, const char *what,
                             const struct stat *expect, ddp_replace *r);
/* Create r->tmpfd (mode 0600, owned by the caller until fileattr copies). */
HRESULT ddp_replace_temp(ddp_volume *v, ddp_replace *r);
/* Put r->tmpfd (written and synced) in place of the file, which must still
 * be unchanged since `unchanged` (size, times; ddp_fileattr_unchanged).
 * DDP_E_FILE_IN_USE, with the file left as it was, when another process has
 * it open (or opens it meanwhile: the lease breaks), when it changed, or when
 * another file took its name. sync_dir: fsync the directory after. */
HRESULT ddp_replace_commit(ddp_volume *v, ddp_replace *r, const struct stat *unchanged, int sync_dir);
void ddp_replace_end(ddp_replace *r);

#endif /* DDP_REPLACE_H */
