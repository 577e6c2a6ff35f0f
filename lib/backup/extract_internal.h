/* SPDX-License-Identifier: MIT */
/*
 * extract_internal.h: what the first step of a restore (extract.c) shares
 * with its S3 source (extract_s3.c). extract.c keeps all the writing (beneath
 * the held target, in the staging directory, sparse, never following a
 * link); an S3 source only supplies the manifest and the bytes of files,
 * fetched many at a time.
 */
#ifndef DDP_EXTRACT_INTERNAL_H
#define DDP_EXTRACT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "backup/backup.h"
#include "backup/manifest.h"

/* Read up to n bytes of the file being extracted at off; *got 0 at its end. */
typedef HRESULT (*ddp_extract_read_fn)(void *ctx, void *buf, size_t n, uint64_t off, size_t *got);

/* Called once per file, in the order given, with its bytes (rd, rctx; valid
 * during the call only) or with the failure that fetching it met (rd NULL). */
typedef void (*ddp_extract_put_fn)(void *ctx, size_t k, HRESULT fetched, ddp_extract_read_fn rd, void *rctx);

/* A backup in S3 opened for extraction: the chain's newest manifest. */
typedef struct ddp_extract_s3 ddp_extract_s3;
HRESULT ddp_extract_s3_open(const char *url, ddp_extract_s3 **out);
const ddp_manifest *ddp_extract_s3_manifest(const ddp_extract_s3 *s);
/* The bytes of the files entries[0..n) (type 'F' of the manifest above),
 * handed to put in that order, with the GETs of the files after it in flight.
 * An object missing is DDP_E_NOT_FOUND, one of another length than its
 * entry DDP_E_FILE_CORRUPT. */
void ddp_extract_s3_fetch(ddp_extract_s3 *s, size_t n, const ddp_mf_entry *const *entries, ddp_extract_put_fn put,
                          void *ctx);
void ddp_extract_s3_close(ddp_extract_s3 *s);
/* The backup store (backupstore.h) on s's client and chain, which it takes
 * over (the manifest is not fetched again); s is freed. */
HRESULT ddp_extract_s3_to_store(ddp_extract_s3 *s, IDedupReadFileCallback **out);

#endif /* DDP_EXTRACT_INTERNAL_H */
