/* SPDX-License-Identifier: MIT */
/*
 * codec.h: chunk compression. zstd for chunks that shrink; chunks that do
 * not shrink (or of no-compression file types) are stored raw. Each thread
 * keeps its own zstd contexts.
 */
#ifndef DDP_CODEC_H
#define DDP_CODEC_H

#include <stddef.h>
#include <stdint.h>
#include <ddp/ddperror.h>

enum ddp_codec { DDP_CODEC_NONE = 0, DDP_CODEC_ZSTD = 1 };

size_t ddp_compress_bound(size_t n);
/* Compress src into dst (capacity cap >= ddp_compress_bound(n)) at zstd
 * `level`. Returns the compressed size, or 0 when the result would not save
 * at least 1/32 of n (store raw). */
size_t ddp_compress(void *dst, size_t cap, const void *src, size_t n, int level);
/* Decode a stored payload of codec into exactly `logical` bytes. Unknown codec:
 * DDP_E_UNSUPPORTED_COMPRESSION; bad data or a size other than logical:
 * DDP_E_FILE_CORRUPT. */
HRESULT ddp_decompress(int codec, const void *src, size_t n, void *dst, size_t logical);

#endif /* DDP_CODEC_H */
