/* SPDX-License-Identifier: MIT */
/*
 * chunkref.c: the reference chunking of a file for the e2e tests: the whole
 * file in memory, cut by ddp_chunker_cut in one pass from its first byte to
 * its last (no blocks, no threads), and the whole-file hash of those chunks
 * (base/hash.h: ddp_filehash, the stub's bytes 136..167). Prints
 * "CHUNKS HEX" where HEX is the hash in hex; the optimizer's stubs must carry
 * the same hash whatever its block size and however many workers stored it.
 *
 * usage: chunkref FILE
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "base/hash.h"
#include "store/chunker.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: chunkref FILE\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st) != 0 || st.st_size < 0 || (uint64_t)st.st_size > ((uint64_t)1 << 32)) {
        perror(argv[1]);
        return 1;
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf || fread(buf, 1, n, f) != n) {
        fprintf(stderr, "%s: cannot read\n", argv[1]);
        return 1;
    }
    fclose(f);
    ddp_filehash fh;
    ddp_filehash_init(&fh);
    size_t pos = 0, chunks = 0;
    while (pos < n) {
        size_t len = ddp_chunker_cut(buf + pos, n - pos);
        uint8_t h[DDP_HASH_SIZE];
        ddp_sha256(buf + pos, len, h);
        ddp_filehash_add(&fh, h, len);
        pos += len;
        chunks++;
    }
    uint8_t out[DDP_HASH_SIZE];
    ddp_filehash_final(&fh, out);
    printf("%zu ", chunks);
    for (size_t i = 0; i < DDP_HASH_SIZE; i++) printf("%02x", out[i]);
    printf("\n");
    free(buf);
    return 0;
}
