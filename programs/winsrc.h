/* SPDX-License-Identifier: MIT */
/*
 * winsrc.h: Windows dedup volumes as the ddp program meets them on Linux
 * (winsrc.c): an ntfs-3g mount (a dedup file is a symlink carrying the
 * xattr system.ntfs_reparse_data) or a copied tree (a "reparse file": a
 * regular file whose whole content is the REPARSE_DATA_BUFFER), with the
 * chunk store under "System Volume Information/Dedup/ChunkStore/{GUID}.ddp/".
 */
#ifndef DDP_WINSRC_H
#define DDP_WINSRC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "windows/reparse.h"
#include "windows/winstore.h"

/* Is path a Windows dedup file? 0: no (a plain file, a ddp stub, a directory,
 * another reparse tag, a symlink without the xattr). 1: yes; *hr is S_OK and
 * *rp parsed, or the parse failure (DDP_E_INVALID_DATA, with a detail).
 * *st gets its lstat. */
int win_reparse_of(const char *path, ddp_win_reparse *rp, HRESULT *hr, struct stat *st);

/* Does dir hold "System Volume Information/Dedup/ChunkStore"? */
int win_is_volume(const char *dir);
/* The nearest ancestor of path (itself included when a directory) that is a
 * Windows volume; malloc'd, NULL when none. */
char *win_find_volume(const char *path);

/* A volume root held open; its ddp_win_io reads beneath the root only
 * (openat component by component with O_NOFOLLOW, O_NONBLOCK, fstat proves a
 * regular file), keeps a few container fds open, and matches container names
 * case-insensitively when the exact name is missing. */
typedef struct win_src win_src;
HRESULT win_src_open(const char *root, win_src **out);
void win_src_close(win_src *s);
ddp_win_io win_src_io(win_src *s);
uint64_t win_src_reads(const win_src *s);

#endif
