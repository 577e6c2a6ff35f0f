/* SPDX-License-Identifier: MIT */
/*
 * bench_chunker.c: throughput of the content-defined chunker (chunker.h).
 * Chunks 256 MiB of pseudo-random data held in memory, five times, and
 * prints the median single-core speed and the average chunk size. With
 * --threads N it then runs N threads at once, each chunking the whole
 * buffer, and prints the aggregate speed (median of the repetitions).
 *
 *     bench_chunker [--threads N] [--mib M] [--reps R]
 *
 * GB/s here means 10^9 bytes of input per second.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/chunker.h"

struct job {
    const uint8_t *buf;
    size_t n;
    size_t chunks;    /* out */
    uint64_t digest;  /* out: keeps the work observable */
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fill(uint8_t *p, size_t n, uint64_t seed)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i += 8) {
        uint64_t z = (s += UINT64_C(0x9e3779b97f4a7c15));
        z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
        z ^= z >> 31;
        for (size_t k = 0; k < 8 && i + k < n; k++)
            p[i + k] = (uint8_t)(z >> (8 * k));
    }
}

static void *run(void *arg)
{
    struct job *j = arg;
    size_t off = 0, chunks = 0;
    uint64_t digest = 0;
    while (off < j->n) {
        size_t len = ddp_chunker_cut(j->buf + off, j->n - off);
        digest = digest * 31 + len;
        off += len;
        chunks++;
    }
    j->chunks = chunks;
    j->digest = digest;
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static long arg_num(const char *opt, const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (s == NULL || errno != 0 || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "bench_chunker: %s wants a number in [%ld, %ld]\n", opt, lo, hi);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    long threads = 0, mib = 256, reps = 5;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0) {
            threads = arg_num("--threads", i + 1 < argc ? argv[++i] : NULL, 1, 1024);
        } else if (strcmp(argv[i], "--mib") == 0) {
            mib = arg_num("--mib", i + 1 < argc ? argv[++i] : NULL, 1, 1L << 20);
        } else if (strcmp(argv[i], "--reps") == 0) {
            reps = arg_num("--reps", i + 1 < argc ? argv[++i] : NULL, 1, 1000);
        } else {
            fprintf(stderr, "usage: bench_chunker [--threads N] [--mib M] [--reps R]\n");
            return 2;
        }
    }

    const size_t n = (size_t)mib << 20;
    uint8_t *buf = malloc(n);
    double *gbs = malloc((size_t)reps * sizeof(double));
    if (buf == NULL || gbs == NULL) {
        fprintf(stderr, "bench_chunker: out of memory\n");
        return 1;
    }
    fill(buf, n, 42);

    /* Single core. */
    struct job one = { .buf = buf, .n = n };
    uint64_t digest = 0;
    for (long r = 0; r < reps; r++) {
        double t0 = now();
        run(&one);
        double t = now() - t0;
        gbs[r] = (double)n / t / 1e9;
        if (r > 0 && one.digest != digest) {
            fprintf(stderr, "bench_chunker: results differ between runs\n");
            return 1;
        }
        digest = one.digest;
    }
    printf("chunker: %.2f GB/s per core (median of %ld), avg chunk %zu B (%zu chunks of %zu MiB)\n",
           median(gbs, (int)reps), reps, n / one.chunks, one.chunks, (size_t)mib);

    /* N threads at once, each over the whole (shared, read-only) buffer. */
    if (threads > 0) {
        struct job *jobs = calloc((size_t)threads, sizeof(*jobs));
        pthread_t *tids = calloc((size_t)threads, sizeof(*tids));
        if (jobs == NULL || tids == NULL) {
            fprintf(stderr, "bench_chunker: out of memory\n");
            return 1;
        }
        for (long r = 0; r < reps; r++) {
            double t0 = now();
            for (long k = 0; k < threads; k++) {
                jobs[k] = (struct job){ .buf = buf, .n = n };
                int err = pthread_create(&tids[k], NULL, run, &jobs[k]);
                if (err != 0) {
                    fprintf(stderr, "bench_chunker: pthread_create: %s\n", strerror(err));
                    return 1;
                }
            }
            for (long k = 0; k < threads; k++)
                pthread_join(tids[k], NULL);
            double t = now() - t0;
            for (long k = 0; k < threads; k++) {
                if (jobs[k].digest != digest) {
                    fprintf(stderr, "bench_chunker: thread %ld got different cuts\n", k);
                    return 1;
                }
            }
            gbs[r] = (double)n * (double)threads / t / 1e9;
        }
        printf("chunker: %.2f GB/s aggregate with %ld threads (median of %ld)\n", median(gbs, (int)reps),
               threads, reps);
        free(tids);
        free(jobs);
    }

    free(gbs);
    free(buf);
    return 0;
}
