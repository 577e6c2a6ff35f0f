/* SPDX-License-Identifier: MIT */
/*
 * fuzz_common.h: what the libFuzzer targets in fuzz/ share.
 *
 * Every target feeds bytes an attacker could place on disk or in a backup
 * store to one of ddp's parsers and then checks invariants that must hold
 * for any input: the parser returns one of its documented HRESULTs, a
 * failure always comes with a detail message, and whatever it accepts
 * round-trips through the matching encoder. A broken invariant aborts, which
 * libFuzzer reports as a crash with the input that caused it.
 *
 * Most on-disk structures carry an XXH3 checksum or a MAC, so random bytes
 * rarely get past the first check. The "fix-up" helpers here recompute those
 * checksums, so a target can also run each input with its checksums made
 * valid and so reach the code behind them.
 */
#ifndef DDP_FUZZ_COMMON_H
#define DDP_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <ddp/ddperror.h>

#include "base/codec.h"
#include "store/container.h"
#include "base/hash.h"
#include "base/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Abort (a libFuzzer "crash") when an invariant does not hold. */
#define FZ_CHECK(cond)                                                                          \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            fprintf(stderr, "fuzz invariant failed at %s:%d: %s (last detail: %s)\n", __FILE__, \
                    __LINE__, #cond, ddp_error_detail());                                       \
            abort();                                                                            \
        }                                                                                       \
    } while (0)

/* A failure must say what went wrong. */
#define FZ_CHECK_DETAIL(hr)                                 \
    do {                                                    \
        if (FAILED(hr)) FZ_CHECK(ddp_error_detail()[0] != '\0'); \
    } while (0)

/* A cursor over the fuzzer's bytes: reads past the end give zeros. */
typedef struct fz_in {
    const uint8_t *p;
    size_t n;
} fz_in;

static inline uint8_t fz_u8(fz_in *in)
{
    if (in->n == 0) return 0;
    uint8_t v = in->p[0];
    in->p++;
    in->n--;
    return v;
}

static inline uint16_t fz_u16(fz_in *in)
{
    uint16_t lo = fz_u8(in);
    return (uint16_t)(lo | (uint16_t)(fz_u8(in) << 8));
}

static inline uint32_t fz_u32(fz_in *in)
{
    uint32_t lo = fz_u16(in);
    return lo | ((uint32_t)fz_u16(in) << 16);
}

static inline uint64_t fz_u64(fz_in *in)
{
    uint64_t lo = fz_u32(in);
    return lo | ((uint64_t)fz_u32(in) << 32);
}

/* Up to want bytes (fewer at the end); *got says how many. */
static inline const uint8_t *fz_take(fz_in *in, size_t want, size_t *got)
{
    size_t k = want < in->n ? want : in->n;
    const uint8_t *p = in->p;
    in->p += k;
    in->n -= k;
    *got = k;
    return p;
}

/* A private copy of n bytes (malloc(0) is avoided so that a copy of nothing
 * is still a valid, distinct pointer). */
static inline uint8_t *fz_dup(const uint8_t *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    if (!d) abort();
    if (n) memcpy(d, p, n);
    return d;
}

/* A file descriptor holding bytes, with a path that open() accepts
 * ("/proc/self/fd/N"), for the parsers that read local files. */
static inline int fz_memfile(const uint8_t *data, size_t n, char path[64])
{
    int fd = memfd_create("ddp-fuzz", MFD_CLOEXEC);
    if (fd < 0) abort();
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(fd, data + off, n - off);
        if (w <= 0) abort();
        off += (size_t)w;
    }
    snprintf(path, 64, "/proc/self/fd/%d", fd);
    return fd;
}

/* Recompute the XXH3 checksum of a structure whose last (or given) 8 bytes
 * hold the checksum of the bytes before them. */
static inline void fz_fix_checksum(uint8_t *buf, size_t covered, size_t at)
{
    ddp_put_le64(buf + at, ddp_checksum64(buf, covered));
}

/* Payloads larger than this are not decoded by the fix-up (speed). */
#define FZ_FIX_MAX_LOGICAL ((uint32_t)1 << 20)

/* Make one record at rec (avail bytes from rec to the end of the buffer)
 * pass its checks: the payload checksum when the payload is all there, the
 * sha256 of the decoded payload when it decodes, then the header checksum.
 * Returns the record's total length (header + stored bytes). */
static inline uint64_t fz_fix_record(uint8_t *rec, size_t avail)
{
    uint32_t stored = ddp_get_le32(rec + 8), logical = ddp_get_le32(rec + 12);
    if ((uint64_t)DDP_RECORD_HEADER_SIZE + stored <= avail) {
        const uint8_t *payload = rec + DDP_RECORD_HEADER_SIZE;
        ddp_put_le64(rec + 48, ddp_checksum64(stored ? (const void *)payload : "", stored));
        if (logical <= FZ_FIX_MAX_LOGICAL && (rec[6] == DDP_CODEC_NONE || rec[6] == DDP_CODEC_ZSTD)) {
            uint8_t *dst = malloc(logical ? logical : 1);
            if (!dst) abort();
            if (SUCCEEDED(ddp_decompress(rec[6], payload, stored, dst, logical)))
                ddp_sha256(logical ? (const void *)dst : "", logical, rec + 16);
            free(dst);
        }
    }
    fz_fix_checksum(rec, 56, 56);
    return (uint64_t)DDP_RECORD_HEADER_SIZE + stored;
}

/* Fix the header checksum of a container image and every record that
 * follows it, as far as the records chain. */
static inline void fz_fix_container(uint8_t *buf, size_t n)
{
    if (n < DDP_CONTAINER_HEADER_SIZE) return;
    fz_fix_checksum(buf, 56, 56);
    size_t off = DDP_CONTAINER_HEADER_SIZE;
    for (int k = 0; k < 100000 && n - off >= DDP_RECORD_HEADER_SIZE; k++) {
        uint64_t len = fz_fix_record(buf + off, n - off);
        if (len > n - off) break;
        off += (size_t)len;
    }
}

#endif /* DDP_FUZZ_COMMON_H */
