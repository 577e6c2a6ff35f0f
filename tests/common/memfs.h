/* SPDX-License-Identifier: MIT */
/*
 * tests/common/memfs.h: an in-memory set of files for the tests of the
 * Windows store reader: a winvol sink (memfs_sink) and a ddp_win_io over it
 * (memfs_io, with or without a list function), plus the edits the
 * corruption tests make.
 */
#ifndef DDP_TEST_MEMFS_H
#define DDP_TEST_MEMFS_H

#include <stddef.h>
#include <stdint.h>

#include "windows/winstore.h"

typedef struct memfs_file {
    char *path;
    uint8_t *data;
    size_t len;
} memfs_file;

typedef struct memfs {
    memfs_file *f;
    size_t n;
    uint64_t reads; /* read calls served */
} memfs;

int memfs_sink(void *ctx, const char *path, uint64_t off, const void *data, size_t n);
/* with_list: also offer io.list. */
ddp_win_io memfs_io(memfs *m, int with_list);
memfs_file *memfs_find(memfs *m, const char *path);
/* The first file whose path ends with suffix. */
memfs_file *memfs_find_suffix(memfs *m, const char *suffix);
void memfs_remove(memfs *m, const char *path);
void memfs_free(memfs *m);

#endif
