/* SPDX-License-Identifier: MIT */
/*
 * safepath.h: the one way ddp reaches a path in a tree that others write:
 * from a held directory fd, beneath it, never through a symbolic link or a
 * mount point, never by name twice (safepath.c, docs/SECURITY.md). Callers
 * keep the directory fd they got and do every later step through fds
 * (fstat, fchown, fchmod, futimens, renameat with the held directory fd).
 */
#ifndef DDP_SAFEPATH_H
#define DDP_SAFEPATH_H

#include <dirent.h>
#include <sys/stat.h>
#include <ddp/ddperror.h>

/* Open rel ("a/b/c", no leading '/') beneath the directory rootfd, one
 * component at a time with O_NOFOLLOW, so that nothing outside the root is
 * ever reached: a symbolic link anywhere on the way is refused
 * (HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED)). A missing last component gives
 * ERROR_FILE_NOT_FOUND, a missing or non-directory parent ERROR_PATH_NOT_FOUND.
 * The opened object must be a regular file unless allow_dir (then a
 * directory is accepted too). *fd is opened O_RDONLY; *st gets its fstat. */
HRESULT ddp_open_beneath(int rootfd, const char *rel, int allow_dir, int *fd, struct stat *st);

/* A store path: starts with '/', no empty ("//", trailing '/'), "." or ".."
 * component, at most 4096 bytes. E_INVALIDARG (with a detail) otherwise. */
HRESULT ddp_path_check_absolute(const char *path);

/* openat(dirfd, rel, flags | O_NOFOLLOW | O_CLOEXEC, mode) resolved beneath
 * dirfd: openat2 with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
 * RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV, or an O_NOFOLLOW walk component
 * by component (same device) where openat2 is missing. rel is relative
 * ("a/b"); an absolute rel, a "..", a symbolic link anywhere or a mount
 * point on the way fail with errno ELOOP or EXDEV. Returns the fd or -1
 * with errno, like openat. */
int ddp_openat_beneath(int dirfd, const char *rel, int flags, mode_t mode);
/* The component walk alone (what ddp_openat_beneath falls back to; for tests). */
int ddp_openat_walk(int dirfd, const char *rel, int flags, mode_t mode);

/* The directory that holds rel ("a/b/c": "a/b"; "c": a dup of rootfd),
 * opened beneath rootfd as above, and rel's last component (pointing into
 * rel). HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED) when the way leaves the root
 * or crosses a link or mount; the errno's HRESULT otherwise. */
HRESULT ddp_open_parent_beneath(int rootfd, const char *rel, int *dirfd, const char **base);

/* Open name (one component, or a relative path) beneath dirfd with oflags
 * (O_RDONLY, O_RDWR, ...; never O_CREAT), O_NONBLOCK until fstat proves it a
 * regular file (so a FIFO cannot hang the caller), and, when expect is
 * given, the very file that was checked before (same dev, inode and type).
 * O_NONBLOCK is cleared again unless oflags asks for it. *st (optional) gets
 * the fstat. HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED) for a link, a
 * non-regular file or a file that was replaced. */
HRESULT ddp_open_regular_at(int dirfd, const char *name, int oflags, const struct stat *expect, int *fd,
                            struct stat *st);

/* The same object: device, inode and file type. */
int ddp_same_file(const struct stat *a, const struct stat *b);

/* ---- added for restore targets (lib/backup/extract.c) ---- */

/* The directory rel ("a/b"; "" is rootfd itself, duplicated) beneath rootfd,
 * each missing component created with mkdirat(mode) on the way, opened
 * O_RDONLY|O_DIRECTORY as ddp_openat_beneath does: a symbolic link, a ".."
 * or a mount point anywhere on the way fails with errno ELOOP or EXDEV
 * (never followed, nothing created past it); an existing non-directory with
 * ENOTDIR. Returns the fd or -1 with errno. *created (optional) counts the
 * directories it made. */
int ddp_mkdirs_beneath(int rootfd, const char *rel, mode_t mode, int *created);

/* renameat2(RENAME_NOREPLACE): move olddirfd/oldname to newdirfd/newname
 * unless newname exists (errno EEXIST then). Where the file system has no
 * RENAME_NOREPLACE, a hard link and an unlink do the same for a regular
 * file or a symbolic link. 0 or -1 with errno. */
int ddp_rename_noreplace(int olddirfd, const char *oldname, int newdirfd, const char *newname);

/* ---- private temporaries (added for the jobs; docs/SECURITY.md) ---- */

/* Room for a temporary's name in its private directory ("tmp.PID.XXXXXXXXXXXXXXXX"). */
#define DDP_TMPNAME_MAX 48

/* A new, empty temporary file in dirfd, a directory that only ddp can reach
 * (VOLUME/.ddp/Temp): an unnamed O_TMPFILE where the file system has them
 * (a process that dies leaves nothing), else a file "tmp.PID.RANDOM"
 * created O_EXCL. Either way it is flock()ed (LOCK_EX) for as long as *fd is
 * open, so a cleaner tells a live temporary from a dead process's leftover
 * (ddp_tmpdir_sweep). name gets the name ("" while it has none). */
HRESULT ddp_tmpfile_at(int dirfd, mode_t mode, int *fd, char name[DDP_TMPNAME_MAX]);

/* Give the temporary fd (from ddp_tmpfile_at) a name in dirfd if it has none
 * yet (linkat; it is renamed into place from there). */
HRESULT ddp_tmpfile_name_at(int dirfd, int fd, char name[DDP_TMPNAME_MAX]);

/* Remove the leftovers in dirfd of processes that died: regular files named
 * "tmp.*" whose lock is free. Never follows a link, never removes anything
 * else. Returns how many were removed. */
int ddp_tmpdir_sweep(int dirfd);

/* A directory stream over the held directory dfd, read from its start: over
 * a duplicate of dfd (closedir closes the duplicate only), rewound since a
 * duplicate shares the offset of any read before. NULL (errno set) when it
 * cannot be opened. */
DIR *ddp_opendir_held(int dfd);

#endif /* DDP_SAFEPATH_H */
