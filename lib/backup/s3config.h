/* SPDX-License-Identifier: MIT */
/*
 * s3config.h: where and as whom ddp talks S3 (s3config.c): the s3://BUCKET/PREFIX
 * form of a backup's name; the endpoint, region and addressing style; the
 * credentials; the TLS settings. Read the way the AWS CLI reads them: the
 * environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
 * AWS_REGION / AWS_DEFAULT_REGION, AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL,
 * AWS_PROFILE, AWS_CA_BUNDLE), then the profile in ~/.aws/credentials
 * (AWS_SHARED_CREDENTIALS_FILE) and ~/.aws/config (AWS_CONFIG_FILE).
 */
#ifndef DDP_S3CONFIG_H
#define DDP_S3CONFIG_H

#include <ddp/ddperror.h>

#define DDP_S3_SCHEME "s3://"

typedef struct ddp_s3_config {
    char *endpoint;       /* "https://host[:port]", no trailing slash */
    char *host;           /* "host[:port]" of the endpoint */
    int https;
    char *region;
    int path_style;       /* 1: https://host/BUCKET/KEY; 0: https://BUCKET.host/KEY */
    char *access_key, *secret_key, *session_token;  /* session_token may be NULL */
    char *ca_bundle;      /* CA file for TLS, or NULL (the system's) */
    char *profile;        /* the profile read */
    char *cred_source;    /* where the credentials came from, for messages */
} ddp_s3_config;

/* Is s an s3:// name? */
int ddp_s3_is_url(const char *s);
/* "s3://bucket/a/b/" -> bucket "bucket", prefix "a/b" (no leading or
 * trailing '/', may be ""). E_INVALIDARG with a detail for a bad name. */
HRESULT ddp_s3_parse_url(const char *url, char **bucket, char **prefix);
/* The endpoint to use whatever the environment says (`--endpoint URL`);
 * NULL to forget it. Process-wide. */
void ddp_s3_config_set_endpoint(const char *url);
/* Read the settings; no credentials anywhere is
 * HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED) with a detail saying where ddp looked. */
HRESULT ddp_s3_config_load(ddp_s3_config *c);
void ddp_s3_config_free(ddp_s3_config *c);
/* Path-style addressing for this bucket? (virtual-hosted needs a DNS-label name) */
int ddp_s3_config_path_style(const ddp_s3_config *c, const char *bucket);

#endif /* DDP_S3CONFIG_H */
