/* SPDX-License-Identifier: MIT */
/*
 * sparse.h: writing a file so that its holes stay holes (sparse.c). A
 * restore rebuilds a file from its bytes; every aligned block of zeros (or
 * the part of one that a write covers) is left unwritten, so a file that was sparse before it was backed
 * up or optimized takes no more space after it is restored. The writer must
 * start from an empty file (a fresh temporary) and set its size at the end
 * (ftruncate), since a hole at the end is not written at all.
 */
#ifndef DDP_SPARSE_H
#define DDP_SPARSE_H

#include <stddef.h>
#include <stdint.h>
#include <ddp/ddperror.h>

/* The hole granularity: the data is looked at in pieces of this size,
 * aligned to it in the file; all-zero pieces are skipped. */
#define DDP_SPARSE_BLOCK 4096u

/* Write buf[0..n) at file offset off, leaving out every all-zero piece
 * (DDP_SPARSE_BLOCK-aligned, or the part of one within buf). The file must
 * read zeros there already: a fresh file, never written at those offsets,
 * each offset written at most once. what names the file in a failure. */
HRESULT ddp_pwrite_sparse(int fd, const void *buf, size_t n, uint64_t off, const char *what);

/* Give fd its final size: ftruncate to size when it is shorter (a trailing
 * hole that was never written). */
HRESULT ddp_sparse_finish(int fd, uint64_t size, const char *what);

#endif /* DDP_SPARSE_H */
