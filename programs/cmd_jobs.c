/* SPDX-License-Identifier: MIT */
/*
 * cmd_jobs.c: the commands that run jobs and read files: `ddp optimize`,
 * `ddp unoptimize`, `ddp cat`, `ddp index rebuild`.
 */
#include <errno.h>
#include <fts.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

typedef struct progress_ctx {
    cli_progress bar;
    uint64_t problems;
} progress_ctx;

static void on_problem(void *arg, const char *path, HRESULT hr, const char *reason)
{
    progress_ctx *p = arg;
    p->problems++;
    cli_progress_clear(&p->bar);
    fprintf(stderr, "ddp: %s: %s (0x%08X)\n", path, reason && *reason ? reason : ddp_strerror(hr), (unsigned)hr);
}

static void on_progress(void *arg, const ddp_job_stats *s)
{
    progress_ctx *p = arg;
    cli_progress_update(&p->bar, s->bytes_scanned, 0);
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

/* A setting as a number (0 if it cannot be read). */
static uint64_t setting_u64(ddp_volume *v, const char *key)
{
    char *val = NULL;
    uint64_t n = 0;
    if (SUCCEEDED(ddp_volume_get(v, key, &val)) && val) n = strtoull(val, NULL, 10);
    free(val);
    return n;
}

/* The bytes an optimization is likely to read: regular files outside .ddp
 * that are big and old enough and are not stubs (the total of the progress
 * line; the excluded folders and types are not subtracted). */
static uint64_t optimize_total(ddp_volume *v)
{
    uint64_t min_size = setting_u64(v, "min_file_size"), min_age = setting_u64(v, "min_file_age_days");
    time_t now = time(NULL);
    char *paths[] = { (char *)ddp_volume_root(v), NULL };
    FTS *fts = fts_open(paths, FTS_PHYSICAL | FTS_NOCHDIR | FTS_XDEV, NULL);
    if (!fts) return 0;
    uint64_t total = 0;
    FTSENT *e;
    while ((e = fts_read(fts)) != NULL) {
        if (e->fts_info == FTS_D && e->fts_level == 1 && !strcmp(e->fts_name, ".ddp")) {
            fts_set(fts, e, FTS_SKIP);
            continue;
        }
        if (e->fts_info != FTS_F) continue;
        const struct stat *st = e->fts_statp;
        if ((uint64_t)st->st_size < min_size || st->st_nlink > 1) continue;
        if (min_age && now - st->st_mtime < (time_t)(min_age * 86400)) continue;
        total += (uint64_t)st->st_size;
    }
    fts_close(fts);
    return total;
}

static void json_job_stats(const char *job, const char *target, HRESULT hr, const ddp_job_stats *st)
{
    printf("{\"job\":");
    cli_json_str(job);
    printf(",\"target\":");
    cli_json_str(target);
    printf(",\"result\":\"0x%08X\",\"files_scanned\":%llu,\"files\":%llu,\"files_already\":%llu,"
           "\"files_not_in_policy\":%llu,\"files_changed\":%llu,\"files_failed\":%llu,\"bytes\":%llu,"
           "\"chunks\":%llu,\"chunks_new\":%llu,\"bytes_added_to_store\":%llu,\"seconds\":%.3f}\n",
           (unsigned)hr, (unsigned long long)st->files_scanned, (unsigned long long)st->files_optimized,
           (unsigned long long)st->files_already, (unsigned long long)st->files_skipped_policy,
           (unsigned long long)st->files_changed, (unsigned long long)st->files_failed,
           (unsigned long long)st->bytes_scanned, (unsigned long long)st->chunks_total,
           (unsigned long long)st->chunks_new, (unsigned long long)st->bytes_new_stored, st->seconds);
}

int cmd_optimize(int argc, char **argv)
{
    const char *vol = NULL;
    unsigned long long threads = 0;
    int quiet = 0, json = 0;
    progress_ctx pc;
    memset(&pc, 0, sizeof pc);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--threads") || !strncmp(a, "--threads=", 10)) {
            const char *val = a[9] == '=' ? a + 10 : (i + 1 < argc ? argv[++i] : NULL);
            if (cli_parse_uint("optimize", "--threads", val, 1, 256, &threads)) return DDP_EXIT_USAGE;
        } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            quiet = 1;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (cli_is_option(a)) {
            return cli_usage_error("optimize", "unknown option %s", a);
        } else if (!vol) {
            vol = a;
        } else {
            return cli_usage_error("optimize", "one VOLUME only");
        }
    }
    if (!vol) return cli_usage_error("optimize", "missing VOLUME");
    ddp_volume *v = open_job("optimize", vol);
    if (!v) return DDP_EXIT_FAIL;
    int show = cli_progress_wanted(quiet, json);
    cli_progress_start(&pc.bar, show, "optimize", 1, NULL, show ? optimize_total(v) : 0);
    ddp_job_callbacks cb = { .file_problem = on_problem, .progress = on_progress, .ctx = &pc };
    ddp_job_stats st;
    HRESULT hr = ddp_optimize(v, (unsigned)threads, &cb, &st);
    cli_progress_clear(&pc.bar);
    if (FAILED(hr) && hr != DDP_E_JOB_COMPLETED_PARTIAL_SUCCESS) cli_error(hr, "optimize %s", vol);
    char a[32], b[32];
    if (json) {
        json_job_stats("optimize", ddp_volume_root(v), hr, &st);
    } else if (!quiet || FAILED(hr)) {
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

static int unoptimize_volume(const char *path, int quiet, int json)
{
    ddp_volume *v = open_job("unoptimize", path);
    if (!v) return DDP_EXIT_FAIL;
    progress_ctx pc;
    memset(&pc, 0, sizeof pc);
    int show = cli_progress_wanted(quiet, json);
    uint64_t total = 0;
    ddp_status vs;
    if (show && SUCCEEDED(ddp_volume_status(v, &vs))) total = vs.logical_bytes;
    cli_progress_start(&pc.bar, show, "unoptimize", 1, NULL, total);
    ddp_job_callbacks cb = { .file_problem = on_problem, .progress = on_progress, .ctx = &pc };
    ddp_job_stats js;
    HRESULT hr = ddp_unoptimize_job(v, &cb, &js);
    cli_progress_clear(&pc.bar);
    if (FAILED(hr) && hr != DDP_E_JOB_COMPLETED_PARTIAL_SUCCESS) cli_error(hr, "unoptimize %s", path);
    if (json) {
        json_job_stats("unoptimize", path, hr, &js);
    } else {
        char a[32];
        printf("Unoptimized %llu files (%s) in %.2f s, %llu failed\n", (unsigned long long)js.files_optimized,
               cli_human_bytes(js.bytes_scanned, a), js.seconds, (unsigned long long)js.files_failed);
        if (SUCCEEDED(hr)) printf("%s is no longer a ddp volume (its .ddp is removed)\n", path);
    }
    ddp_volume_close(v);
    return FAILED(hr) ? DDP_EXIT_FAIL : 0;
}

int cmd_unoptimize(int argc, char **argv)
{
    int quiet = 0, json = 0, npaths = 0, opts_done = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (opts_done || !cli_is_option(a)) npaths++;
        else if (!strcmp(a, "--")) opts_done = 1;
        else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) quiet = 1;
        else if (!strcmp(a, "--json")) json = 1;
        else return cli_usage_error("unoptimize", "unknown option %s", a);
    }
    if (!npaths) return cli_usage_error("unoptimize", "missing VOLUME or FILE");
    int rc = 0;
    opts_done = 0;
    for (int i = 1; i < argc; i++) {
        const char *path = argv[i];
        if (!opts_done && !strcmp(path, "--")) { opts_done = 1; continue; }
        if (!opts_done && cli_is_option(path)) continue;
        struct stat st;
        if (stat(path, &st) != 0) {
            cli_error_errno(errno, "unoptimize %s", path);
            rc = DDP_EXIT_FAIL;
            continue;
        }
        ddp_volume *v = NULL;
        HRESULT hr;
        char *probe = malloc(strlen(path) + 32);
        sprintf(probe, "%s/.ddp/Settings/identity", path);
        int is_volume = S_ISDIR(st.st_mode) && (access(probe, F_OK) == 0 || errno == EACCES);
        free(probe);
        if (is_volume) {
            rc |= unoptimize_volume(path, quiet, json);
        } else if (S_ISDIR(st.st_mode) && (hr = ddp_unoptimize_finish(path)) != S_FALSE) {
            /* A .ddp without an identity: an unoptimization stopped near its end. */
            if (FAILED(hr)) {
                cli_error(hr, "unoptimize %s", path);
                rc = DDP_EXIT_FAIL;
            } else {
                printf("%s: removed the .ddp an interrupted unoptimization left (no identity, no chunk store)\n",
                       path);
            }
        } else {
            hr = ddp_volume_open_containing(path, DDP_OPEN_JOB, &v);
            if (SUCCEEDED(hr)) hr = ddp_unoptimize_file(v, path);
            if (FAILED(hr)) {
                cli_error(hr, "unoptimize %s", path);
                rc = DDP_EXIT_FAIL;
            } else if (hr == S_FALSE) {
                printf("%s: not optimized; left as it is\n", path);
            }
        }
        ddp_volume_close(v);
    }
    return rc;
}

/* Write a file that is not in a volume (or whose volume this user may not
 * open: denied is that error) as it is; a stub there cannot be read. */
static int cat_plain(const char *path, HRESULT denied)
{
    FILE *in = fopen(path, "rb");
    if (!in) {
        cli_error_errno(errno, "cat %s", path);
        return DDP_EXIT_FAIL;
    }
    char buf[65536];
    size_t n = fread(buf, 1, sizeof buf, in);
    if (n >= 88 && memcmp(buf, "ddp stub:", 9) == 0 && memcmp(buf + 80, "DDPSTUB1", 8) == 0) {
        fclose(in);
        if (denied) cli_error(denied, "cat %s: an optimized file", path);
        else
            fprintf(stderr, "ddp: cat %s: a ddp stub outside its volume; its data is in that volume's chunk store "
                            "(0x%08X)\n", path, (unsigned)DDP_E_VOLUME_DEDUP_DISABLED);
        return DDP_EXIT_FAIL;
    }
    int rc = 0;
    do {
        if (fwrite(buf, 1, n, stdout) != n) { rc = DDP_EXIT_FAIL; break; }
    } while ((n = fread(buf, 1, sizeof buf, in)) > 0);
    if (ferror(in)) {
        cli_error_errno(errno, "cat %s", path);
        rc = DDP_EXIT_FAIL;
    }
    fclose(in);
    return rc;
}

int cmd_cat(int argc, char **argv)
{
    int dashdash = 0, nfiles = 0; /* files: every argument but the first "--" */
    for (int i = 1; i < argc; i++) {
        if (!dashdash && !strcmp(argv[i], "--")) dashdash = i;
        else if (!dashdash && cli_is_option(argv[i])) return cli_usage_error("cat", "unknown option %s", argv[i]);
        else nfiles++;
    }
    if (!nfiles) return cli_usage_error("cat", "missing FILE");
    int rc = 0;
    size_t cap = 1 << 20;
    char *buf = malloc(cap);
    for (int i = 1; i < argc; i++) {
        if (i == dashdash) continue;
        if (win_cat_file(argv[i], &rc)) continue; /* a Windows dedup file */
        ddp_volume *v = NULL;
        ddp_file *f = NULL;
        HRESULT hr = ddp_volume_open_containing(argv[i], DDP_OPEN_READ, &v);
        if (hr == DDP_E_VOLUME_DEDUP_DISABLED || hr == HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED)) {
            /* Not in a volume, or in one this user may not open: a plain
             * file is simply itself (a stub cannot be read, and says why). */
            rc |= cat_plain(argv[i], hr == DDP_E_VOLUME_DEDUP_DISABLED ? S_OK : hr);
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
