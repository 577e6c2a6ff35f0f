/* SPDX-License-Identifier: MIT */
/*
 * s3sign.h: AWS Signature Version 4 for S3 requests (s3sign.c), signed by
 * ddp itself with OpenSSL's SHA-256 and HMAC-SHA256: the canonical request,
 * the string to sign, the signing key and the Authorization header, plus the
 * URI encoding SigV4 wants. (curl 7.88's built-in SigV4 neither sends
 * x-amz-content-sha256 nor sorts and encodes query parameters, which Ceph's
 * RADOS Gateway refuses.)
 */
#ifndef DDP_S3SIGN_H
#define DDP_S3SIGN_H

#include <stddef.h>
#include <ddp/ddperror.h>

#define DDP_S3_SHA256_HEX 65   /* 64 hex digits + NUL */
#define DDP_S3_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

typedef struct ddp_s3_header {
    const char *name;    /* any case: signed in lowercase */
    const char *value;   /* trimmed, inner runs of spaces folded, when signed */
} ddp_s3_header;

typedef struct ddp_s3_sign_req {
    const char *method;           /* "GET", "PUT", ... */
    const char *canonical_uri;    /* the path as sent, already URI-encoded ("/bucket/a%20b") */
    const char *canonical_query;  /* ddp_s3_canonical_query() output, or "" */
    const ddp_s3_header *headers; /* every header to sign: host, x-amz-date, x-amz-content-sha256, ... */
    size_t nheaders;
    const char *payload_hash;     /* hex SHA-256 of the body, or "UNSIGNED-PAYLOAD" */
    const char *amz_date;         /* "20130524T000000Z" (its first 8 characters are the scope date) */
    const char *region;
    const char *service;          /* "s3" */
    const char *access_key;
    const char *secret_key;
} ddp_s3_sign_req;

/* The Authorization header value ("AWS4-HMAC-SHA256 Credential=...,
 * SignedHeaders=...,Signature=..."), malloc'd. canonical_request and
 * string_to_sign (may be NULL) get those texts, malloc'd, for tests and
 * for the detail of a SignatureDoesNotMatch. E_INVALIDARG on a missing
 * field or more than 64 headers. */
HRESULT ddp_s3_sign(const ddp_s3_sign_req *r, char **authorization, char **canonical_request,
                    char **string_to_sign);

/* Hex SHA-256 of n bytes. */
void ddp_s3_sha256_hex(const void *data, size_t n, char out[DDP_S3_SHA256_HEX]);
/* SigV4 URI encoding: unreserved characters (A-Z a-z 0-9 - . _ ~) as they
 * are, '/' as it is when keep_slash, every other byte %XX (uppercase). */
char *ddp_s3_uri_encode(const char *s, int keep_slash);
/* The canonical query string of n "name" / "value" pairs (value may be
 * NULL for a bare "?uploads"): each encoded, sorted by name then value,
 * "a=1&b=&c=2". Also what is sent, so what is signed is what is asked. */
char *ddp_s3_canonical_query(size_t n, const char *const *names, const char *const *values);
/* "20130524T000000Z" for Unix time t (UTC). */
void ddp_s3_amz_date(long long t, char out[17]);

#endif /* DDP_S3SIGN_H */
