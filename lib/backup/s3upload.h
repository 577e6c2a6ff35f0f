/* SPDX-License-Identifier: MIT */
/*
 * s3upload.h: putting objects into S3 with bounded memory (s3upload.c):
 * several uploads in flight at once, an object larger than the part size in
 * a multipart upload whose parts go up several at a time, and an object that
 * is already there with the same size and the ETag of the same bytes left as
 * it is (what makes a rerun of an interrupted backup finish it).
 */
#ifndef DDP_S3UPLOAD_H
#define DDP_S3UPLOAD_H

#include <stddef.h>
#include <stdint.h>
#include <ddp/ddperror.h>
#include "backup/s3client.h"

/* Read up to n bytes of the source at off; *got < n only at its end. */
typedef HRESULT (*ddp_s3_source_fn)(void *ctx, void *buf, size_t n, uint64_t off, size_t *got);

typedef struct ddp_s3_uploader ddp_s3_uploader;

typedef struct ddp_s3_upload_stats {
    uint64_t objects, skipped, parts, bytes;
} ddp_s3_upload_stats;

/* An uploader to bucket with `slots` requests in flight at most; at most 8
 * of them hold more than 1 MiB (memory: 8 x part size + slots x 1 MiB). */
ddp_s3_uploader *ddp_s3_uploader_new(ddp_s3 *s3, const char *bucket, int slots);
/* Upload size bytes from fn as object key. The reads happen in this call;
 * the transfers may go on after it returns. When the bucket already has
 * key with existing_size bytes and ETag existing_etag (NULL: not there) and
 * the source's bytes give the same ETag, nothing is sent (*skipped = 1).
 * *taken gets the bytes read (less than size if the source ended early).
 * A failure of an earlier upload may be returned here. */
HRESULT ddp_s3_upload(ddp_s3_uploader *u, const char *key, uint64_t size, ddp_s3_source_fn fn, void *ctx,
                      const char *existing_etag, uint64_t existing_size, uint64_t *taken, int *skipped);
/* Wait for every upload; the first failure. */
HRESULT ddp_s3_uploader_finish(ddp_s3_uploader *u);
void ddp_s3_uploader_stats(const ddp_s3_uploader *u, ddp_s3_upload_stats *st);
void ddp_s3_uploader_free(ddp_s3_uploader *u);
/* The part size used for an object of size bytes (8 MiB, more for objects
 * over 80 GB so there are at most 10,000 parts); objects up to it are one PUT. */
uint64_t ddp_s3_part_size(uint64_t size);

#endif /* DDP_S3UPLOAD_H */
