/* SPDX-License-Identifier: MIT */
/*
 * mkwinstore.c: writes a Windows Server dedup volume tree for tests and
 * benchmarks, from docs/WINDOWS.md only (tests/common/winvol.c does the
 * writing):
 *
 *   VOL/System Volume Information/Dedup/ChunkStore/{GUID}.ddp/{Data,Stream}/NNNNNNNN.GGGGGGGG.ccc
 *   VOL/REL   per input file, a "reparse file": a regular file whose whole
 *             content is the file's REPARSE_DATA_BUFFER (tag 0x80000013)
 *
 * usage: mkwinstore VOL [OPTION | SRC[:REL]]...
 *   Options apply to the files named after them:
 *     --format 0201|0102|0103   reparse format (default 0103)
 *     --compress | --raw        Xpress-compress chunks that shrink (default) | store raw
 *     --parts K                 stream maps per file (0102/0103)
 *     --stale | --no-stale      reparse offset stale (resolved through Rrtl)
 *     --chunk MIN-MAX           chunk sizes (default 32768-131072)
 *   Store options (before the first file):
 *     --guid {GUID}  --crc64 init0|nvme  --stream-gen N  --data-gen N  --decoy-gen
 *     --data-max BYTES  --maps-per-stream N
 *   --hex FILE       also write "REL<TAB>SIZE<TAB>HEX-OF-BUFFER" lines (for setfattr)
 *   --no-reparse-files   do not write the reparse files into VOL
 * REL defaults to SRC's base name. An empty SRC ("" or :REL) is a 0-byte file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "winbuild.h"
#include "windows/reparse.h"
#include "winvol.h"

static const char *vol;

static int mkparents(const char *path)
{
    char *d = ddp_strdup(path);
    char *s = strrchr(d, '/');
    int rc = 0;
    if (s && s != d) {
        *s = 0;
        rc = FAILED(ddp_mkdir_p(d, 0755)) ? -1 : 0;
    }
    free(d);
    return rc;
}

static int sink(void *ctx, const char *path, uint64_t off, const void *data, size_t n)
{
    (void)ctx;
    char *p = ddp_xasprintf("%s%s", vol, path);
    int rc = mkparents(p);
    int fd = rc ? -1 : open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || FAILED(ddp_pwrite_all(fd, data, n, off, p))) {
        fprintf(stderr, "mkwinstore: %s: %s\n", p, strerror(errno));
        rc = -1;
    }
    if (fd >= 0) close(fd);
    free(p);
    return rc;
}

static int usage(void)
{
    fprintf(stderr, "usage: mkwinstore VOL [--format 0201|0102|0103] [--compress|--raw] [--parts K] [--stale] "
                    "[--chunk MIN-MAX] [--guid G] [--crc64 init0|nvme] [--stream-gen N] [--data-gen N] [--decoy-gen] "
                    "[--data-max B] [--maps-per-stream N] [--hex FILE] [--no-reparse-files] SRC[:REL]...\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 2) return usage();
    vol = argv[1];
    tw_vol_cfg cfg;
    tw_opts o;
    tw_vol_defaults(&cfg, &o);
    tw_vol *v = NULL;
    FILE *hex = NULL;
    int reparse_files = 1, nfiles = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
#define NEEDV()                                  \
    do {                                         \
        if (!val) return usage();                \
        i++;                                     \
    } while (0)
        if (!strcmp(a, "--format")) {
            NEEDV();
            o.format = (uint16_t)strtoul(val, NULL, 16);
        } else if (!strcmp(a, "--compress")) o.compress = 1;
        else if (!strcmp(a, "--raw")) o.compress = 0;
        else if (!strcmp(a, "--stale")) o.stale = 1;
        else if (!strcmp(a, "--no-stale")) o.stale = 0;
        else if (!strcmp(a, "--parts")) {
            NEEDV();
            o.parts = (unsigned)atoi(val);
        } else if (!strcmp(a, "--chunk")) {
            NEEDV();
            if (sscanf(val, "%zu-%zu", &o.chunk_min, &o.chunk_max) != 2 || o.chunk_min == 0 || o.chunk_min > o.chunk_max)
                return usage();
        } else if (!strcmp(a, "--guid")) {
            NEEDV();
            if (ddp_win_guid_parse(val, cfg.guid)) return usage();
        } else if (!strcmp(a, "--crc64")) {
            NEEDV();
            cfg.conv = !strcmp(val, "init0") ? DDP_WIN_CRC64_INIT0 : DDP_WIN_CRC64_NVME;
        } else if (!strcmp(a, "--stream-gen")) {
            NEEDV();
            cfg.stream_gen = (uint32_t)strtoul(val, NULL, 0);
        } else if (!strcmp(a, "--data-gen")) {
            NEEDV();
            cfg.data_gen = (uint32_t)strtoul(val, NULL, 0);
        } else if (!strcmp(a, "--decoy-gen")) cfg.decoy_gen = 1;
        else if (!strcmp(a, "--data-max")) {
            NEEDV();
            cfg.data_max = strtoull(val, NULL, 0);
        } else if (!strcmp(a, "--maps-per-stream")) {
            NEEDV();
            cfg.maps_per_stream = (uint32_t)strtoul(val, NULL, 0);
        } else if (!strcmp(a, "--hex")) {
            NEEDV();
            hex = fopen(val, "w");
            if (!hex) {
                perror(val);
                return 1;
            }
        } else if (!strcmp(a, "--no-reparse-files")) reparse_files = 0;
        else if (a[0] == '-' && a[1] == '-') return usage();
        else {
            if (!v) v = tw_vol_new(&cfg, sink, NULL);
            char *src = ddp_strdup(a), *rel = strrchr(src, ':');
            if (rel) *rel++ = 0;
            else rel = strrchr(src, '/') ? strrchr(src, '/') + 1 : src;
            const uint8_t *data = (const uint8_t *)"";
            size_t n = 0;
            int fd = -1;
            if (src[0]) {
                fd = open(src, O_RDONLY | O_CLOEXEC);
                struct stat stt;
                if (fd < 0 || fstat(fd, &stt) != 0) {
                    fprintf(stderr, "mkwinstore: %s: %s\n", src, strerror(errno));
                    return 1;
                }
                n = (size_t)stt.st_size;
                /* FILETIME = 100 ns since 1601 */
                o.filetime = ((uint64_t)stt.st_mtim.tv_sec + 11644473600ull) * 10000000ull + (uint64_t)stt.st_mtim.tv_nsec / 100;
                if (n) {
                    void *m = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0);
                    if (m == MAP_FAILED) {
                        perror(src);
                        return 1;
                    }
                    data = m;
                }
            }
            uint8_t rb[TW_REPARSE_MAX];
            size_t rl = 0;
            if (tw_vol_add(v, data, n, &o, rb, &rl)) return 1;
            if (n) munmap((void *)data, n);
            if (fd >= 0) close(fd);
            if (reparse_files) {
                char *p = ddp_xasprintf("/%s", rel);
                if (sink(NULL, p, 0, rb, rl)) return 1;
                /* exactly the buffer: truncate anything an earlier run left */
                char *full = ddp_xasprintf("%s/%s", vol, rel);
                if (truncate(full, (off_t)rl) != 0) return 1;
                free(full);
                free(p);
            }
            if (hex) {
                fprintf(hex, "%s\t%zu\t", rel, n);
                for (size_t k = 0; k < rl; k++) fprintf(hex, "%02x", rb[k]);
                fprintf(hex, "\n");
            }
            nfiles++;
            free(src);
        }
    }
    if (!v) v = tw_vol_new(&cfg, sink, NULL);
    int rc = tw_vol_finish(v);
    printf("mkwinstore: %d files, store %s\n", nfiles, tw_vol_store_dir(v));
    tw_vol_free(v);
    if (hex) fclose(hex);
    return rc ? 1 : 0;
}
