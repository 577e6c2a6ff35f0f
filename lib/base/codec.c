/* SPDX-License-Identifier: MIT */
/*
 * codec.c: zstd compression of chunks, with one compression and one
 * decompression context per thread (kept in pthread keys so that they are
 * freed when the thread ends).
 */
#include <pthread.h>
#include <stdlib.h>
#include <zstd.h>

#include "base/codec.h"
#include "base/util.h"

static pthread_key_t cctx_key, dctx_key;
static pthread_once_t keys_once = PTHREAD_ONCE_INIT;

static void free_cctx(void *p) { ZSTD_freeCCtx(p); }
static void free_dctx(void *p) { ZSTD_freeDCtx(p); }
static void make_keys(void)
{
    if (pthread_key_create(&cctx_key, free_cctx) || pthread_key_create(&dctx_key, free_dctx)) abort();
}

static ZSTD_CCtx *thread_cctx(void)
{
    pthread_once(&keys_once, make_keys);
    ZSTD_CCtx *c = pthread_getspecific(cctx_key);
    if (!c) {
        c = ZSTD_createCCtx();
        if (!c) abort();
        pthread_setspecific(cctx_key, c);
    }
    return c;
}

static ZSTD_DCtx *thread_dctx(void)
{
    pthread_once(&keys_once, make_keys);
    ZSTD_DCtx *d = pthread_getspecific(dctx_key);
    if (!d) {
        d = ZSTD_createDCtx();
        if (!d) abort();
        pthread_setspecific(dctx_key, d);
    }
    return d;
}

size_t ddp_compress_bound(size_t n) { return ZSTD_compressBound(n); }

size_t ddp_compress(void *dst, size_t cap, const void *src, size_t n, int level)
{
    size_t r = ZSTD_compressCCtx(thread_cctx(), dst, cap, src, n, level);
    if (ZSTD_isError(r)) return 0;
    if (r >= n - n / 32) return 0;
    return r;
}

HRESULT ddp_decompress(int codec, const void *src, size_t n, void *dst, size_t logical)
{
    switch (codec) {
    case DDP_CODEC_NONE:
        if (n != logical)
            return ddp_fail(DDP_E_FILE_CORRUPT, "raw chunk of %zu bytes where %zu were expected", n, logical);
        memcpy(dst, src, n);
        return S_OK;
    case DDP_CODEC_ZSTD: {
        unsigned long long want = ZSTD_getFrameContentSize(src, n);
        if (want != logical)
            return ddp_fail(DDP_E_FILE_CORRUPT, "compressed chunk declares %llu bytes where %zu were expected",
                            want, logical);
        size_t r = ZSTD_decompressDCtx(thread_dctx(), dst, logical, src, n);
        if (ZSTD_isError(r) || r != logical)
            return ddp_fail(DDP_E_FILE_CORRUPT, "compressed chunk does not decode: %s",
                            ZSTD_isError(r) ? ZSTD_getErrorName(r) : "wrong size");
        return S_OK;
    }
    default:
        return ddp_fail(DDP_E_UNSUPPORTED_COMPRESSION, "unknown codec %d", codec);
    }
}
