/* SPDX-License-Identifier: MIT */
/*
 * s3tool.c: a small S3 command line on ddp's own client (lib/backup/s3client.c),
 * for the tests and the benchmark: make a bucket, list, put, get, delete, and
 * cut an object short (the "truncated object" fault). Settings and
 * credentials as ddp reads them (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...).
 *
 *   s3tool mb BUCKET               s3tool ls BUCKET [PREFIX]   (key size etag per line)
 *   s3tool put BUCKET KEY FILE     s3tool get BUCKET KEY       (to stdout)
 *   s3tool rm BUCKET KEY           s3tool truncate BUCKET KEY N (keep the first N bytes)
 *   s3tool du BUCKET [PREFIX]      (objects and bytes below the prefix)
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup/s3client.h"
#include "base/util.h"

static HRESULT print_obj(void *ctx, const char *key, uint64_t size, const char *etag)
{
    (void)ctx;
    printf("%s %" PRIu64 " %s\n", key, size, etag);
    return S_OK;
}

static HRESULT sum_obj(void *ctx, const char *key, uint64_t size, const char *etag)
{
    (void)key;
    (void)etag;
    uint64_t *t = ctx;
    t[0]++;
    t[1] += size;
    return S_OK;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: s3tool mb|ls|du|put|get|rm|truncate BUCKET ...\n");
        return 2;
    }
    ddp_s3 *s;
    HRESULT hr = ddp_s3_open(&s);
    if (FAILED(hr)) {
        fprintf(stderr, "s3tool: 0x%08X %s\n", (unsigned)hr, ddp_error_detail());
        return 1;
    }
    const char *cmd = argv[1], *bucket = argv[2];
    if (!strcmp(cmd, "mb")) {
        ddp_s3_req *r = ddp_s3_req_new("PUT", bucket, "", NULL);
        hr = ddp_s3_do(s, r);
        ddp_s3_req_free(r);
    } else if (!strcmp(cmd, "ls")) {
        hr = ddp_s3_list(s, bucket, argc > 3 ? argv[3] : "", print_obj, NULL);
    } else if (!strcmp(cmd, "du")) {
        uint64_t t[2] = { 0, 0 };
        hr = ddp_s3_list(s, bucket, argc > 3 ? argv[3] : "", sum_obj, t);
        if (SUCCEEDED(hr)) printf("%" PRIu64 " objects %" PRIu64 " bytes\n", t[0], t[1]);
    } else if (!strcmp(cmd, "put") && argc == 5) {
        uint8_t *d;
        size_t n;
        hr = ddp_read_file(argv[4], (size_t)1 << 30, &d, &n);
        if (SUCCEEDED(hr)) hr = ddp_s3_put_object(s, bucket, argv[3], d, n, NULL);
        if (SUCCEEDED(hr)) free(d);
    } else if (!strcmp(cmd, "get") && argc == 4) {
        uint8_t *d;
        size_t n;
        hr = ddp_s3_get_object(s, bucket, argv[3], (size_t)1 << 30, &d, &n);
        if (SUCCEEDED(hr)) {
            fwrite(d, 1, n, stdout);
            free(d);
        }
    } else if (!strcmp(cmd, "rm") && argc == 4) {
        hr = ddp_s3_delete_object(s, bucket, argv[3]);
    } else if (!strcmp(cmd, "truncate") && argc == 5) {
        uint8_t *d;
        size_t n;
        hr = ddp_s3_get_object(s, bucket, argv[3], (size_t)1 << 30, &d, &n);
        if (SUCCEEDED(hr)) {
            size_t keep = (size_t)strtoull(argv[4], NULL, 10);
            hr = ddp_s3_put_object(s, bucket, argv[3], d, keep < n ? keep : n, NULL);
            free(d);
        }
    } else {
        fprintf(stderr, "s3tool: bad command\n");
        ddp_s3_close(s);
        return 2;
    }
    ddp_s3_close(s);
    if (FAILED(hr)) {
        fprintf(stderr, "s3tool: 0x%08X %s\n", (unsigned)hr, ddp_error_detail());
        return 1;
    }
    return 0;
}
