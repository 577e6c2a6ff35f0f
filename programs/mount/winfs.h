/* SPDX-License-Identifier: MIT */
/*
 * winfs.h: the read-only FUSE view of a Windows Server dedup volume
 * (`ddp mount WINVOL MNT`, winfs.c): optimized files read as themselves.
 * Only built with libfuse3 (DDP_HAVE_FUSE).
 */
#ifndef DDP_WINFS_H
#define DDP_WINFS_H

/* Serve the Windows volume at root (an ntfs-3g mount or a copied tree) with
 * libfuse's arguments; returns fuse_main's result. */
int winfs_main(const char *root, int fuse_argc, char **fuse_argv);

#endif
