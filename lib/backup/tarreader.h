/* SPDX-License-Identifier: MIT */
/*
 * tarreader.h: reading a tar backup forward, member by member (tarreader.c).
 */
#ifndef DDP_TARREADER_H
#define DDP_TARREADER_H

#include <stddef.h>
#include <stdint.h>
#include "backup/manifest.h"

typedef struct ddp_tar_reader ddp_tar_reader;
/* Open the archive and read its first member, the manifest (checked). */
HRESULT ddp_tar_reader_open(const char *archive, ddp_tar_reader **out);
const ddp_manifest *ddp_tar_reader_manifest(const ddp_tar_reader *r);
/* Go to the start of member m's data: forward in this pass, or a new pass
 * when m is behind. Checks the member's name and size against the manifest. */
HRESULT ddp_tar_reader_goto(ddp_tar_reader *r, size_t m);
/* The same, for a read at offset off of member m: a new pass also when m is
 * the current member but off is behind. fn (optional) is called for each
 * member passed on the way, its data unread, and may read it. */
typedef HRESULT (*ddp_tar_pass_fn)(void *ctx, size_t member);
HRESULT ddp_tar_reader_seek(ddp_tar_reader *r, size_t m, uint64_t off, ddp_tar_pass_fn fn, void *ctx);
/* The member whose header was read last (0: the manifest), and how many of
 * its data bytes were read. */
size_t ddp_tar_reader_current(const ddp_tar_reader *r);
uint64_t ddp_tar_reader_pos(const ddp_tar_reader *r);
/* Read the current member's data sequentially: *got < n only at its end. */
HRESULT ddp_tar_reader_read(ddp_tar_reader *r, void *buf, size_t n, size_t *got);
/* Did the archive fail to read (truncated, damaged)? */
int ddp_tar_reader_broken(const ddp_tar_reader *r);
uint64_t ddp_tar_reader_passes(const ddp_tar_reader *r);
void ddp_tar_reader_close(ddp_tar_reader *r);

#endif /* DDP_TARREADER_H */
