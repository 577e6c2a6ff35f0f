#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_pkgconfig.sh: libddp installs with its headers and pkg-config file, and
# a program outside the tree builds against it (shared and static) and runs:
# it enables a volume, optimizes it, reads a file back, and creates the
# Windows-compatible IDedupBackupSupport object.
source "$(dirname "$0")/lib.sh"
: "${DDP_BUILD_DIR:?}"
P=$T/prefix
check "cmake --install" cmake --install "$DDP_BUILD_DIR" --prefix "$P"
check "headers installed" test -f "$P/include/ddp/ddp.h" -a -f "$P/include/ddp/ddpbackup.h" -a -f "$P/include/ddp/ddperror.h"
pc=$(find "$P" -name libddp.pc | head -1)
check "libddp.pc installed" test -n "$pc"
export PKG_CONFIG_PATH=$(dirname "$pc")
cat > "$T/app.c" <<'C'
#include <ddp/ddp.h>
#include <ddp/ddpbackup.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv)
{
    if (argc != 2) return 2;
    char path[4096];
    snprintf(path, sizeof path, "%s/data.bin", argv[1]);
    FILE *f = fopen(path, "wb");
    for (int i = 0; i < 300000; i++) fputc((i * 7) % 251, f);
    fclose(f);
    if (FAILED(ddp_volume_enable(argv[1], "Backup"))) return 3;
    ddp_volume *v = NULL;
    if (FAILED(ddp_volume_open(argv[1], DDP_OPEN_JOB, &v))) return 4;
    ddp_job_stats st;
    if (ddp_optimize(v, 0, NULL, &st) != S_OK || st.files_optimized != 1) return 5;
    ddp_file *h = NULL;
    unsigned char buf[100];
    size_t got = 0;
    if (FAILED(ddp_file_open(v, path, &h)) || !ddp_file_is_optimized(h)) return 6;
    if (FAILED(ddp_file_pread(h, buf, sizeof buf, 1000, &got)) || got != 100) return 7;
    for (int i = 0; i < 100; i++) if (buf[i] != ((1000 + i) * 7) % 251) return 8;
    ddp_file_close(h);
    ddp_volume_close(v);
    IDedupBackupSupport *bs = NULL;
    if (DedupCreateBackupSupport(&bs) != S_OK) return 9;
    if (IDedupBackupSupport_RestoreFiles(bs, 10001, NULL, NULL, DEDUP_RECONSTRUCT_UNOPTIMIZED, NULL) != E_INVALIDARG) return 10;
    IDedupBackupSupport_Release(bs);
    printf("ok %s\n", ddp_strerror(DDP_E_FILE_CORRUPT));
    return 0;
}
C
check "an outside program compiles against the shared library" \
  cc -std=c17 -Wall -Wextra -Werror "$T/app.c" $(pkg-config --cflags --libs libddp) -o "$T/app"
mkdir -p "$T/vol1" "$T/vol2"
out=$(LD_LIBRARY_PATH=$(pkg-config --variable=libdir libddp) "$T/app" "$T/vol1" 2>&1); rc=$?
check "and runs (optimize, read, RestoreFiles argument check) [rc=$rc $out]" test $rc -eq 0
check "a stub is left behind" is_stub "$T/vol1/data.bin"
# libddp.a itself, with its dependencies as the system's shared libraries.
check "static libddp.a links" cc -std=c17 "$T/app.c" $(pkg-config --cflags libddp) "$(pkg-config --variable=libdir libddp)/libddp.a" \
  $(pkg-config --libs libcrypto libzstd libxxhash libarchive) -lpthread -o "$T/app-static"
check "static program runs" "$T/app-static" "$T/vol2"
finish
