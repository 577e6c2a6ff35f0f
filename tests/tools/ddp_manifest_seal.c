/* SPDX-License-Identifier: MIT */
/*
 * ddp_manifest_seal.c: a test tool (tests/e2e/test_security_restore.sh) that
 * gives an edited backup manifest a valid checksum line again, so that tests
 * can hand ddp a hostile manifest that is well formed (a link entry with a
 * file below it, a path listed twice) and see what restore does with it.
 *
 *   ddp_manifest_seal FILE     rewrites FILE in place: every byte before its
 *                              "checksum " line (or all of it, when there is
 *                              none), then "checksum <XXH3-64>\n".
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hash.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: ddp_manifest_seal FILE\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    size_t k;
    while (buf && (k = fread(buf + n, 1, cap - n, f)) > 0) {
        n += k;
        if (n == cap) {
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb) {
                free(buf);
                buf = NULL;
            }
            buf = nb;
        }
    }
    fclose(f);
    if (!buf) return 1;
    buf[n] = '\0';
    size_t body = n;
    for (size_t i = 0; i < n; i++)
        if ((i == 0 || buf[i - 1] == '\n') && strncmp(buf + i, "checksum ", 9) == 0) {
            body = i;
            break;
        }
    f = fopen(argv[1], "wb");
    if (!f) {
        perror(argv[1]);
        free(buf);
        return 1;
    }
    fwrite(buf, 1, body, f);
    fprintf(f, "checksum %016" PRIX64 "\n", ddp_checksum64(buf, body));
    free(buf);
    return fclose(f) == 0 ? 0 : 1;
}
