/* SPDX-License-Identifier: MIT */
/*
 * s3client.h: an S3 client on libcurl (s3client.c): requests signed with
 * SigV4 (s3sign.c) to the endpoint of s3config.c, many in flight at once on
 * one multi handle with connections reused, retried with backoff on 5xx,
 * 429 and dropped connections, and every failure turned into an HRESULT
 * with a detail naming the request, the object, the HTTP status and S3's
 * error code:
 *
 *   404 NoSuchKey, NoSuchUpload        HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND)
 *   404 NoSuchBucket                   HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND)
 *   403 (bad key, bad signature, ...)  HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED)
 *   400 and the rest of 4xx            E_INVALIDARG
 *   409                                HRESULT_FROM_WIN32(ERROR_ALREADY_EXISTS)
 *   429, 503 SlowDown                  HRESULT_FROM_WIN32(ERROR_BUSY)
 *   other 5xx                          HRESULT_FROM_WIN32(ERROR_UNEXP_NET_ERR)
 *   connection refused                 HRESULT_FROM_WIN32(ERROR_CONNECTION_REFUSED)
 *   connection dropped                 HRESULT_FROM_WIN32(ERROR_NETNAME_DELETED)
 *   timeout                            HRESULT_FROM_WIN32(ERROR_TIMEOUT)
 *   host not found                     HRESULT_FROM_WIN32(ERROR_BAD_NETPATH)
 *   TLS certificate not trusted        HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED)
 *
 * A ranged GET past the end of an object (416) succeeds with no bytes.
 * Single-threaded: one client per thread.
 */
#ifndef DDP_S3CLIENT_H
#define DDP_S3CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <ddp/ddperror.h>
#include "backup/s3config.h"

typedef struct ddp_s3 ddp_s3;
typedef struct ddp_s3_req ddp_s3_req;

typedef struct ddp_s3_stats {
    uint64_t requests;       /* HTTP requests sent (retries included) */
    uint64_t retries;
    uint64_t bytes_in;       /* body bytes received */
    uint64_t bytes_out;      /* body bytes sent */
} ddp_s3_stats;

/* A client with the settings of ddp_s3_config_load(). */
HRESULT ddp_s3_open(ddp_s3 **out);
void ddp_s3_close(ddp_s3 *s);
const ddp_s3_config *ddp_s3_cfg(const ddp_s3 *s);
void ddp_s3_get_stats(const ddp_s3 *s, ddp_s3_stats *st);

/* ---- one request ---- */

/* A request for method on bucket/key (key "" for the bucket itself) with
 * the canonical query (ddp_s3_canonical_query; "" or NULL for none). */
ddp_s3_req *ddp_s3_req_new(const char *method, const char *bucket, const char *key, const char *query);
void ddp_s3_req_free(ddp_s3_req *r);
/* The body to send (kept by the caller until the request is done; its
 * SHA-256 is computed now, for the signature: S3 checks it). */
void ddp_s3_req_body(ddp_s3_req *r, const void *body, size_t n);
/* GET only bytes [off, off + len). */
void ddp_s3_req_range(ddp_s3_req *r, uint64_t off, uint64_t len);
/* Receive the body into buf (at most cap bytes; more is an error), else
 * into a growing buffer of at most max bytes (ddp_s3_req_data). */
void ddp_s3_req_into(ddp_s3_req *r, void *buf, size_t cap);
void ddp_s3_req_max(ddp_s3_req *r, size_t max);
/* An extra header to send and sign ("x-amz-meta-x", "value"). */
void ddp_s3_req_header(ddp_s3_req *r, const char *name, const char *value);
/* What is to be done when it ends (called from ddp_s3_run / ddp_s3_wait). */
void ddp_s3_req_on_done(ddp_s3_req *r, void (*done)(ddp_s3_req *, void *), void *ctx);

/* Results, once done. */
HRESULT ddp_s3_req_hr(const ddp_s3_req *r);
long ddp_s3_req_status(const ddp_s3_req *r);
size_t ddp_s3_req_got(const ddp_s3_req *r);            /* body bytes received */
const uint8_t *ddp_s3_req_data(const ddp_s3_req *r);   /* the body, when not into a caller's buffer */
const char *ddp_s3_req_etag(const ddp_s3_req *r);      /* the ETag header, quotes removed, or "" */
uint64_t ddp_s3_req_length(const ddp_s3_req *r);       /* Content-Length of a HEAD */
int ddp_s3_req_is_done(const ddp_s3_req *r);

/* ---- running them ---- */

/* Send r (it runs with every other started request). */
void ddp_s3_start(ddp_s3 *s, ddp_s3_req *r);
/* Drive the transfers until r is done; returns its HRESULT (with detail). */
HRESULT ddp_s3_wait(ddp_s3 *s, ddp_s3_req *r);
/* Drive the transfers once, waiting at most timeout_ms for progress.
 * Returns the number of requests not done yet. */
int ddp_s3_run(ddp_s3 *s, int timeout_ms);
/* Stop r if it is running (its result: E_ABORT). */
void ddp_s3_cancel(ddp_s3 *s, ddp_s3_req *r);
/* Start r and wait for it. */
HRESULT ddp_s3_do(ddp_s3 *s, ddp_s3_req *r);

/* ---- helpers ---- */

/* The object key of prefix + "/" + rest (prefix may be ""). malloc'd. */
char *ddp_s3_key_join(const char *prefix, const char *rest);
/* A store path ("/a/b") as an object key below prefix: bytes < 0x20, 0x7F,
 * '%' and bytes that are not UTF-8 are written %XX (docs/BACKUP.md). */
char *ddp_s3_key_of_path(const char *prefix, const char *path);
/* Every object below prefix + "/" (one LIST v2 call per 1000): each's key
 * (below the prefix), size and ETag. fn returning a failure stops. */
typedef HRESULT (*ddp_s3_list_fn)(void *ctx, const char *key, uint64_t size, const char *etag);
HRESULT ddp_s3_list(ddp_s3 *s, const char *bucket, const char *prefix, ddp_s3_list_fn fn, void *ctx);
/* GET a whole object of at most max bytes (malloc'd into *out, *n). */
HRESULT ddp_s3_get_object(ddp_s3 *s, const char *bucket, const char *key, size_t max, uint8_t **out, size_t *n);
/* PUT a whole object from memory; etag (may be NULL, 80 bytes) gets its ETag. */
HRESULT ddp_s3_put_object(ddp_s3 *s, const char *bucket, const char *key, const void *data, size_t n, char *etag);
HRESULT ddp_s3_delete_object(ddp_s3 *s, const char *bucket, const char *key);

#endif /* DDP_S3CLIENT_H */
