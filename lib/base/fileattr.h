/* SPDX-License-Identifier: MIT */
/*
 * fileattr.h: carrying a file's identity from one inode to its replacement:
 * owner, mode, access and modification times, and extended attributes
 * (POSIX ACLs included). Used when a file becomes a stub, and when a stub
 * becomes a file again.
 */
#ifndef DDP_FILEATTR_H
#define DDP_FILEATTR_H

#include <sys/stat.h>
#include <ddp/ddperror.h>

/* Give dst_fd the owner, mode, times of st and the xattrs of src_fd (src_fd
 * may be -1: no xattrs). `what` names the file for messages. Changing the
 * owner needs privilege: when it fails with EPERM and the owner differs from
 * what dst already has, this fails (the replacement would not be faithful). */
HRESULT ddp_fileattr_copy(int src_fd, int dst_fd, const struct stat *st, const char *what);

/* Is the file described by `now` the same, unchanged file as `then`?
 * (device, inode, size, mtime, ctime) */
int ddp_fileattr_unchanged(const struct stat *then, const struct stat *now);

/* Create a temporary file beside path: dir/.NAME.ddp-tmp.XXXXXX, mode 0600,
 * O_EXCL, and flock()ed for as long as the descriptor is open (so that a
 * cleaner can tell a live one from a crash's leftover). *tmp_path is
 * malloc'd. Returns the fd or a failure. */
HRESULT ddp_tempfile_beside(const char *path, char **tmp_path, int *fd);
/* Does this file name look like one of ours? */
int ddp_is_temp_name(const char *name);
/* Remove the temporary file at path (a name ddp_is_temp_name accepts) when
 * nobody holds it: its writer died (a crash) or closed it without renaming
 * it. Returns 1 when it was removed. A live writer keeps its file. */
int ddp_temp_remove_abandoned(const char *path);

#endif /* DDP_FILEATTR_H */
