/* SPDX-License-Identifier: MIT */
/*
 * s3chain.h: an optimized backup in S3 and the chain behind it (s3chain.c):
 * its manifest (the object PREFIX/.ddp-backup/manifest), and for an
 * incremental backup every earlier backup it builds on, found through each
 * manifest's "previous" and checked link by link (backup id, level, store id),
 * as backupchain.c does for directories.
 */
#ifndef DDP_S3CHAIN_H
#define DDP_S3CHAIN_H

#include <stdint.h>
#include "backup/manifest.h"
#include "backup/s3client.h"

typedef struct ddp_s3_chain {
    ddp_manifest newest;   /* fully parsed */
    uint32_t nlevels;      /* newest.level + 1 */
    char **bucket;         /* [level] */
    char **prefix;         /* [level]: "" or "a/b" */
} ddp_s3_chain;

/* Load the manifest of the backup at bucket/prefix. No manifest object:
 * DDP_E_NOT_FOUND ("not a complete ddp backup"); no bucket:
 * HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND). */
HRESULT ddp_s3_manifest_load(ddp_s3 *s, const char *bucket, const char *prefix, int header_only, ddp_manifest *m);
/* Open the backup at url (s3://bucket/prefix) and the chain behind it. */
HRESULT ddp_s3_chain_open(ddp_s3 *s, const char *url, ddp_s3_chain *c);
void ddp_s3_chain_close(ddp_s3_chain *c);
/* How a new backup at (bucket, prefix) names the previous one at (pb, pp):
 * its last prefix component when both share the bucket and the parent
 * prefix, else "s3://pb/pp". malloc'd. */
char *ddp_s3_previous_ref(const char *bucket, const char *prefix, const char *pb, const char *pp);
/* The inverse: the bucket and prefix that a manifest's previous names. */
HRESULT ddp_s3_resolve_previous(const char *bucket, const char *prefix, const char *previous, char **pb, char **pp);

#endif /* DDP_S3CHAIN_H */
