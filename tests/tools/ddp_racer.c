/* SPDX-License-Identifier: MIT */
/*
 * ddp_racer.c: the hostile user of tests/e2e/test_security_jobs.sh. Drops to
 * the given uid and gid, then swaps names as fast as it can while root's jobs
 * run: each pair A B is exchanged atomically (renameat2 RENAME_EXCHANGE), so
 * a file turns into a symbolic link, a FIFO or another file, or a directory
 * into a link to a directory elsewhere, and back, over and over. Stops after
 * --seconds or when the --stop file appears; prints how many swaps it made.
 *
 *   ddp_racer --uid U --gid G --seconds S [--stop FILE] A1 B1 [A2 B2 ...]
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    long uid = -1, gid = -1;
    double seconds = 10;
    const char *stop = NULL;
    int i = 1;
    for (; i + 1 < argc && !strncmp(argv[i], "--", 2); i += 2) {
        if (!strcmp(argv[i], "--uid")) uid = strtol(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--gid")) gid = strtol(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--seconds")) seconds = strtod(argv[i + 1], NULL);
        else if (!strcmp(argv[i], "--stop")) stop = argv[i + 1];
        else break;
    }
    int npairs = (argc - i) / 2;
    if (npairs < 1 || (argc - i) % 2 != 0) {
        fprintf(stderr, "usage: ddp_racer --uid U --gid G --seconds S [--stop FILE] A1 B1 [A2 B2 ...]\n");
        return 2;
    }
    if (gid >= 0 && (setgroups(0, NULL) != 0 || setgid((gid_t)gid) != 0)) {
        perror("setgid");
        return 2;
    }
    if (uid >= 0 && setuid((uid_t)uid) != 0) {
        perror("setuid");
        return 2;
    }
    if (uid > 0 && (setuid(0) == 0 || geteuid() == 0)) {
        fprintf(stderr, "ddp_racer: still privileged\n");
        return 2;
    }
    double end = now() + seconds;
    unsigned long long swaps = 0, failed = 0;
    for (unsigned long long round = 0;; round++) {
        if ((round & 63) == 0) {
            if (now() >= end) break;
            if (stop && access(stop, F_OK) == 0) break;
        }
        for (int p = 0; p < npairs; p++) {
            const char *a = argv[i + 2 * p], *b = argv[i + 2 * p + 1];
            if (renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) == 0) swaps++;
            else failed++;
        }
    }
    printf("swaps=%llu failed=%llu\n", swaps, failed);
    return 0;
}
