/* SPDX-License-Identifier: MIT */
/*
 * bench_xpress.c: decoder speed of lib/windows/xpress.c ([MS-XCA] Plain
 * LZ77), in GB/s of output per core, on 64 KiB chunks of several kinds of
 * data encoded by the test encoder (tests/common/xpress_enc.c). Run by
 * bench/bench_windows.sh; not a test (no assertion on time).
 *
 *   bench_xpress [MiB per kind, default 256] [FILE...]
 *
 * FILEs (e.g. a tar of the source tree, a binary) are measured too: cut in
 * 64 KiB chunks, each encoded and decoded, as Windows stores them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/util.h"
#include "windows/xpress.h"
#include "xpress_enc.h"

#define CHUNK 65536

/* CPU time of this thread: "per core", and less disturbed by other load than wall time. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng = 88172645463325252ull;
static uint32_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

static void fill(int kind, uint8_t *b, size_t n)
{
    static const char *w[] = { "the ",    "chunk ", "store ", "of ",      "windows ", "server ", "data ",
                               "dedup ",  "is ",    "read ",  "by ",      "ddp ",     "on ",     "linux\n",
                               "record ", "map " };
    switch (kind) {
    case 0: /* text from a small vocabulary */
        for (size_t i = 0; i < n;) {
            const char *t = w[next() % 16];
            for (size_t k = 0; t[k] && i < n; k++) b[i++] = (uint8_t)t[k];
        }
        break;
    case 1: /* binary-ish: random bytes with repeated 8-64 byte pieces */
        for (size_t i = 0; i < n;) {
            size_t l = 8 + next() % 57;
            if (i > 4096 && next() % 2) {
                size_t d = 1 + next() % 4096;
                for (size_t k = 0; k < l && i < n; k++, i++) b[i] = b[i - d];
            } else {
                for (size_t k = 0; k < l && i < n; k++) b[i++] = (uint8_t)next();
            }
        }
        break;
    default: /* long runs (sparse-file-like) */
        for (size_t i = 0; i < n; i++) b[i] = (uint8_t)((i / 5000) & 1 ? 0 : i / 5000);
        break;
    }
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? (size_t)atol(argv[1]) : 256;
    static const char *names[] = { "text", "binary", "runs" };
    uint8_t *raw = malloc(CHUNK), *enc = malloc(TX_XPRESS_BOUND(CHUNK)), *out = malloc(CHUNK);
    for (int kind = 0; kind < 3; kind++) {
        fill(kind, raw, CHUNK);
        size_t en = tx_xpress_encode(raw, CHUNK, enc, TX_XPRESS_BOUND(CHUNK), 0);
        size_t reps = mib * 1024 * 1024 / CHUNK;
        double t0 = cpu_now();
        for (size_t r = 0; r < reps; r++)
            if (FAILED(ddp_win_xpress_decode(enc, en, out, CHUNK, "bench"))) {
                fprintf(stderr, "decode failed: %s\n", ddp_error_detail());
                return 1;
            }
        double dt = cpu_now() - t0;
        if (memcmp(out, raw, CHUNK) != 0) return 1;
        printf("xpress decode %-7s ratio %.2f  %.2f GB/s per core\n", names[kind], (double)CHUNK / (double)en,
               (double)reps * CHUNK / dt / 1e9);
    }
    for (int a = 2; a < argc; a++) {
        uint8_t *data = NULL;
        size_t n = 0;
        if (FAILED(ddp_read_file(argv[a], (size_t)1 << 31, &data, &n)) || n < CHUNK) {
            fprintf(stderr, "cannot read %s (or shorter than 64 KiB)\n", argv[a]);
            return 1;
        }
        size_t nch = n / CHUNK, total_enc = 0;
        uint8_t *encs = malloc(nch * TX_XPRESS_BOUND(CHUNK));
        size_t *lens = malloc(nch * sizeof *lens);
        for (size_t c = 0; c < nch; c++) {
            lens[c] = tx_xpress_encode(data + c * CHUNK, CHUNK, encs + c * TX_XPRESS_BOUND(CHUNK), TX_XPRESS_BOUND(CHUNK), 0);
            total_enc += lens[c];
        }
        size_t reps = mib * 1024 * 1024 / CHUNK, done = 0;
        double t0 = cpu_now();
        while (done < reps)
            for (size_t c = 0; c < nch && done < reps; c++, done++)
                if (FAILED(ddp_win_xpress_decode(encs + c * TX_XPRESS_BOUND(CHUNK), lens[c], out, CHUNK, "bench"))) return 1;
        double dt = cpu_now() - t0;
        printf("xpress decode %s ratio %.2f  %.2f GB/s per core\n", argv[a], (double)(nch * CHUNK) / (double)total_enc,
               (double)done * CHUNK / dt / 1e9);
        free(encs);
        free(lens);
        free(data);
    }
    free(raw);
    free(enc);
    free(out);
    return 0;
}
