/*
 * safepath.h: opening a path beneath a held directory fd without ever
 * leaving it (safepath.c).
 */
#ifndef DDP_SAFEPATH_H
#define DDP_SAFEPATH_H

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

#endif /* DDP_SAFEPATH_H */
