/*
 * cmd_jobs.c: the commands that run jobs and read files: `ddp optimize`,
 * `ddp unoptimize`, `ddp cat`, `ddp index rebuild`.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

typedef struct progress_ctx {
    int tty;
    int quiet;
    double last;
    uint64_t problems;
} progress_ctx;

static void on_problem(void *arg, const char *path, HRESULT hr, const char *reason)
{
    progress_ctx *p = arg;
    p->problems++;
    if (p->tty && !p->quiet) fputs("\r\033[K", stderr);
    fprintf(stderr, "ddp: %s: %s (0x%08X)\n", path, reason && *reason ? reason : ddp_strerror(hr), (unsigned)hr);
}

static void on_progress(void *arg, const ddp_job_stats *s)
{
    progress_ctx *p = arg;
    if (!p->tty || p->quiet) return;
    static unsigned tick;
    if (++tick % 16) return;
    char a[32];
    fprintf(stderr, "\r\033[K%llu files, %s", (unsigned long long)s->files_optimized, cli_human_bytes(s->bytes_scanned, a));
}

static ddp_volume *open_job(const char *cmd, const char *vol)
{
    ddp_volume *v = NULL;
    HRESULT hr = ddp_volume_open(vol, DDP_OPEN_JOB, &v);
    if (FAILED(hr)) {
        cli_error(hr, "%s %s", cmd, vol);
        return NULL;
    }
    return v;
}

int cmd_optimize(int argc, char **argv)
{
    const char *vol = NULL;
    unsigned threads = 0;
    progress_ctx pc = { cli_is_tty(2), 0, 0, 0 };
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--quiet") || !strcmp(argv[i], "-q")) pc.quiet = 1;
        else if (argv[i][0] == '-') return cli_usage_error("optimize", "unknown option %s", argv[i]);
        else if (!vol) vol = argv[i];
        else return cli_usage_error("optimize", "one VOLUME only");
    }
    if (!vol) return cli_usage_error("optimize", "missing VOLUME");
    ddp_volume *v = open_job("optimize", vol);
    if (!v) return DDP_EXIT_FAIL;
    ddp_job_callbacks cb = { .file_problem = on_problem, .progress = on_progress, .ctx = &pc };
    ddp_job_stats st;
    HRESULT hr = ddp_optimize(v, threads, &cb, &st);
    if (pc.tty && !pc.quiet) fputs("\r\033[K", stderr);
    if (FAILED(hr) && hr != DDP_E_JOB_COMPLETED_PARTIAL_SUCCESS) cli_error(hr, "optimize %s", vol);
    char a[32], b[32];
    if (!pc.quiet || FAILED(hr)) {
        printf("Optimized %llu files (%s) in %.2f s, %.1f MB/s; %llu already optimized, %llu not in policy, "
               "%llu changed during the job, %llu failed\n",
               (unsigned long long)st.files_optimized, cli_human_bytes(st.bytes_scanned, a), st.seconds,
               st.seconds > 0 ? (double)st.bytes_scanned / 1e6 / st.seconds : 0.0,
               (unsigned long long)st.files_already, (unsigned long long)st.files_skipped_policy,
               (unsigned long long)st.files_changed, (unsigned long long)st.files_failed);
        printf("Chunks: %llu, new %llu; bytes added to the store: %s\n", (unsigned long long)st.chunks_total,
               (unsigned long long)st.chunks_new, cli_human_bytes(st.bytes_new_stored, b));
    }
    ddp_volume_close(v);
    return hr == S_OK ? 0 : DDP_EXIT_FAIL;
}

int cmd_unoptimize(int argc, char **argv)
{
    if (argc < 2) return cli_usage_error("unoptimize", "missing VOLUME or FILE");
    int rc = 0;
    progress_ctx pc = { 0, 1, 0, 0 };
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "ddp: unoptimize %s: %s\n", argv[i], strerror(errno));
            rc = DDP_EXIT_FAIL;
            continue;
        }
        ddp_volume *v = NULL;
        HRESULT hr;
        char *probe = malloc(strlen(argv[i]) + 32);
        sprintf(probe, "%s/.ddp/Settings/identity", argv[i]);
        int is_volume = S_ISDIR(st.st_mode) && access(probe, F_OK) == 0;
        free(probe);
        if (is_volume) {
            if (!(v = open_job("unoptimize", argv[i]))) { rc = DDP_EXIT_FAIL; continue; }
            ddp_job_callbacks cb = { .file_problem = on_problem, .ctx = &pc };
            ddp_job_stats js;
            hr = ddp_unoptimize_job(v, &cb, &js);
            char a[32];
            printf("Unoptimized %llu files (%s) in %.2f s, %llu failed\n", (unsigned long long)js.files_optimized,
                   cli_human_bytes(js.bytes_scanned, a), js.seconds, (unsigned long long)js.files_failed);
            if (FAILED(hr)) {
                if (hr != DDP_E_JOB_COMPLETED_PARTIAL_SUCCESS) cli_error(hr, "unoptimize %s", argv[i]);
                rc = DDP_EXIT_FAIL;
            }
        } else if (S_ISDIR(st.st_mode) && (hr = ddp_unoptimize_finish(argv[i])) != S_FALSE) {
            /* A .ddp without an identity: an unoptimization stopped near its end. */
            if (FAILED(hr)) {
                cli_error(hr, "unoptimize %s", argv[i]);
                rc = DDP_EXIT_FAIL;
            } else {
                printf("%s: removed the .ddp an interrupted unoptimization left (no identity, no chunk store)\n",
                       argv[i]);
            }
        } else {
            hr = ddp_volume_open_containing(argv[i], DDP_OPEN_JOB, &v);
            if (SUCCEEDED(hr)) hr = ddp_unoptimize_file(v, argv[i]);
            if (FAILED(hr)) {
                cli_error(hr, "unoptimize %s", argv[i]);
                rc = DDP_EXIT_FAIL;
            } else if (hr == S_FALSE) {
                printf("%s: not optimized; left as it is\n", argv[i]);
            }
        }
        ddp_volume_close(v);
    }
    return rc;
}

static int cat_plain(const char *path)
{
    FILE *in = fopen(path, "rb");
    if (!in) {
        fprintf(stderr, "ddp: cat %s: %s\n", path, strerror(errno));
        return DDP_EXIT_FAIL;
    }
    char buf[65536];
    size_t n = fread(buf, 1, sizeof buf, in);
    if (n >= 88 && memcmp(buf, "ddp stub:", 9) == 0 && memcmp(buf + 80, "DDPSTUB1", 8) == 0) {
        fclose(in);
        fprintf(stderr, "ddp: cat %s: a ddp stub outside its volume; its data is in that volume's chunk store "
                        "(0x%08X)\n", path, (unsigned)DDP_E_VOLUME_DEDUP_DISABLED);
        return DDP_EXIT_FAIL;
    }
    int rc = 0;
    do {
        if (fwrite(buf, 1, n, stdout) != n) { rc = DDP_EXIT_FAIL; break; }
    } while ((n = fread(buf, 1, sizeof buf, in)) > 0);
    if (ferror(in)) {
        fprintf(stderr, "ddp: cat %s: %s\n", path, strerror(errno));
        rc = DDP_EXIT_FAIL;
    }
    fclose(in);
    return rc;
}

int cmd_cat(int argc, char **argv)
{
    if (argc < 2) return cli_usage_error("cat", "missing FILE");
    int rc = 0;
    size_t cap = 1 << 20;
    char *buf = malloc(cap);
    for (int i = 1; i < argc; i++) {
        if (win_cat_file(argv[i], &rc)) continue; /* a Windows dedup file */
        ddp_volume *v = NULL;
        ddp_file *f = NULL;
        HRESULT hr = ddp_volume_open_containing(argv[i], DDP_OPEN_READ, &v);
        if (hr == DDP_E_VOLUME_DEDUP_DISABLED) {
            /* Not in a volume: a plain file is simply itself (a stub without
             * its volume cannot be read, and says so). */
            rc |= cat_plain(argv[i]);
            continue;
        }
        if (SUCCEEDED(hr)) hr = ddp_file_open(v, argv[i], &f);
        uint64_t off = 0;
        while (SUCCEEDED(hr) && off < ddp_file_size(f)) {
            size_t got = 0;
            hr = ddp_file_pread(f, buf, cap, off, &got);
            if (FAILED(hr) || got == 0) break;
            if (fwrite(buf, 1, got, stdout) != got) {
                fprintf(stderr, "ddp: cat: writing to stdout: %s\n", strerror(errno));
                rc = DDP_EXIT_FAIL;
                break;
            }
            off += got;
        }
        if (FAILED(hr)) {
            fflush(stdout);
            cli_error(hr, "cat %s", argv[i]);
            rc = DDP_EXIT_FAIL;
        }
        if (f && ddp_file_copies_used(f) > 0)
            fprintf(stderr,
                    "ddp: cat %s: %llu chunk(s) were read from their hotspot copies because their records are "
                    "damaged; run 'ddp scrub --repair' on the volume\n",
                    argv[i], (unsigned long long)ddp_file_copies_used(f));
        ddp_file_close(f);
        ddp_volume_close(v);
    }
    free(buf);
    if (fflush(stdout) != 0) rc = DDP_EXIT_FAIL;
    return rc;
}

int cmd_index(int argc, char **argv)
{
    if (argc != 3 || strcmp(argv[1], "rebuild")) return cli_usage_error("index", "expected: index rebuild VOLUME");
    ddp_volume *v = open_job("index rebuild", argv[2]);
    if (!v) return DDP_EXIT_FAIL;
    HRESULT hr = ddp_volume_rebuild_index(v);
    if (FAILED(hr)) cli_error(hr, "index rebuild %s", argv[2]);
    else printf("%s: index rebuilt\n", argv[2]);
    ddp_volume_close(v);
    return FAILED(hr) ? DDP_EXIT_FAIL : 0;
}
