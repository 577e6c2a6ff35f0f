/*
 * extract_internal.h: the pieces of the first step of a restore
 * (extract.c) that the S3 variant (extract_s3.c) shares: writing one file,
 * directory or symlink out of a backup with its metadata.
 */
#ifndef DDP_EXTRACT_INTERNAL_H
#define DDP_EXTRACT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "backup/backup.h"
#include "backup/manifest.h"

/* Read up to n bytes of the file being extracted at off; *got 0 at its end. */
typedef HRESULT (*ddp_extract_read_fn)(void *ctx, void *buf, size_t n, uint64_t off, size_t *got, const char *what);

/* Write e->size bytes from fn to full (atomically), with e's metadata; buf
 * is a 1 MiB work buffer. */
HRESULT ddp_extract_file_from(const char *full, const ddp_mf_entry *e, ddp_extract_read_fn fn, void *ctx, uint8_t *buf);
HRESULT ddp_extract_dir(const char *full, const ddp_mf_entry *e);
HRESULT ddp_extract_link(const char *full, const ddp_mf_entry *e);
int ddp_extract_item_kind(const ddp_mf_entry *e);
/* ddp_backup_extract for an s3://BUCKET/PREFIX backup (extract_s3.c). */
HRESULT ddp_extract_s3(const char *url, size_t n, char *const *relpaths, const char *dest_dir, ddp_backup_item *items);

#endif /* DDP_EXTRACT_INTERNAL_H */
