/* SPDX-License-Identifier: MIT */
/*
 * cmd_maint.c: the maintenance commands: `ddp gc VOLUME [--full]` (garbage
 * collection) and `ddp scrub VOLUME [--repair] [--json]` (integrity
 * scrubbing). Both take the volume's job lock. The systemd units in
 * systemd/ run them on a schedule (docs/MAINTENANCE.md).
 *
 * Exit codes: 0 done (scrub: nothing left damaged); 1 the job failed, some
 * container could not be looked at (gc), or damage remains (scrub);
 * 2 bad command line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

typedef struct maint_ctx {
    cli_progress bar;
    const char *job;
    const char *phase;
} maint_ctx;

static void on_problem(void *ctx, const char *path, HRESULT hr, const char *reason)
{
    maint_ctx *m = ctx;
    cli_progress_clear(&m->bar);
    fprintf(stderr, "ddp: %s: %s (0x%08X)\n", path, reason && *reason ? reason : ddp_strerror(hr), (unsigned)hr);
}

/* A new phase starts a new line of progress: "gc (stubs): 123 stubs, ...". */
static void on_step(void *ctx, const char *phase, uint64_t done, uint64_t total)
{
    maint_ctx *m = ctx;
    if (!m->bar.on) return;
    if (!m->phase || strcmp(m->phase, phase) != 0) {
        static char label[64];
        snprintf(label, sizeof label, "%s (%s)", m->job, phase);
        cli_progress_clear(&m->bar);
        cli_progress_start(&m->bar, 1, label, 0, phase, total);
        m->phase = phase;
    }
    cli_progress_update(&m->bar, done, total);
}

static int parse_job_opts(const char *cmd, int argc, char **argv, const char **vol, int *flag, const char *flagname,
                          int *quiet, int *json)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, flagname)) *flag = 1;
        else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) *quiet = 1;
        else if (json && !strcmp(a, "--json")) *json = 1;
        else if (cli_is_option(a)) return cli_usage_error(cmd, "unknown option %s", a);
        else if (!*vol) *vol = a;
        else return cli_usage_error(cmd, "one VOLUME only");
    }
    if (!*vol) return cli_usage_error(cmd, "missing VOLUME");
    return 0;
}

static double mb_per_s(uint64_t bytes, double s) { return s > 0 ? (double)bytes / 1e6 / s : 0.0; }

int cmd_gc(int argc, char **argv)
{
    const char *vol = NULL;
    int full = 0, quiet = 0, json = 0;
    if (parse_job_opts("gc", argc, argv, &vol, &full, "--full", &quiet, &json)) return DDP_EXIT_USAGE;
    ddp_volume *v = NULL;
    HRESULT hr = ddp_volume_open(vol, DDP_OPEN_JOB, &v);
    if (FAILED(hr)) {
        cli_error(hr, "gc %s", vol);
        return DDP_EXIT_FAIL;
    }
    maint_ctx m = { .job = "gc" };
    m.bar.on = cli_progress_wanted(quiet, json);
    ddp_job_callbacks cb = { .file_problem = on_problem, .step = on_step, .ctx = &m };
    ddp_gc_stats st;
    hr = ddp_gc(v, full, &cb, &st);
    cli_progress_clear(&m.bar);
    if (FAILED(hr) && hr != DDP_E_JOB_COMPLETED_PARTIAL_SUCCESS) cli_error(hr, "gc %s", vol);
    char a[32], b[32], c[32];
    if (json) {
        printf("{\"job\":\"gc\",\"volume\":");
        cli_json_str(ddp_volume_root(v));
        printf(",\"result\":\"0x%08X\",\"full\":%s,\"stubs\":%llu,\"containers_scanned\":%llu,\"store_bytes\":%llu,"
               "\"containers_collected\":%llu,\"containers_dropped\":%llu,\"dead_records\":%llu,\"dead_bytes\":%llu,\"reclaimed_bytes\":%llu,"
               "\"live_records\":%llu,\"punch_unsupported\":%s,\"seconds\":%.3f}\n",
               (unsigned)hr, full ? "true" : "false", (unsigned long long)st.stubs,
               (unsigned long long)st.containers_scanned, (unsigned long long)st.store_bytes,
               (unsigned long long)st.containers_collected, (unsigned long long)st.containers_dropped,
               (unsigned long long)st.dead_records, (unsigned long long)st.dead_bytes,
               (unsigned long long)st.reclaimed_bytes, (unsigned long long)st.live_records, st.punch_unsupported ? "true" : "false", st.seconds);
        ddp_volume_close(v);
        return hr == S_OK ? 0 : DDP_EXIT_FAIL;
    }
    printf("Garbage collection%s of %s: %llu stubs, %llu containers (%s) scanned in %.2f s, %.1f MB of store/s\n",
           full ? " (full)" : "", ddp_volume_root(v), (unsigned long long)st.stubs,
           (unsigned long long)st.containers_scanned, cli_human_bytes(st.store_bytes, a), st.seconds,
           mb_per_s(st.store_bytes, st.seconds));
    printf("Collected %llu dead records (%s): %llu containers compacted, %llu dropped; reclaimed %s (%llu bytes) on "
           "disk; %llu live records\n",
           (unsigned long long)st.dead_records, cli_human_bytes(st.dead_bytes, b),
           (unsigned long long)st.containers_collected, (unsigned long long)st.containers_dropped,
           cli_human_bytes(st.reclaimed_bytes, c),
           (unsigned long long)st.reclaimed_bytes, (unsigned long long)st.live_records);
    if (st.punch_unsupported)
        printf("The file system cannot punch holes in files: the dead records are retired but no space was "
               "reclaimed\n");
    ddp_volume_close(v);
    return hr == S_OK ? 0 : DDP_EXIT_FAIL;
}

static const char *kind_name(int kind)
{
    switch (kind) {
    case DDP_SCRUB_CONTAINER: return "container";
    case DDP_SCRUB_RECORD: return "chunk";
    case DDP_SCRUB_STREAMMAP: return "stream map";
    case DDP_SCRUB_STUB: return "stub";
    case DDP_SCRUB_HOTSPOT: return "hotspot copy";
    default: return "?";
    }
}

static void print_json(const ddp_volume *v, int repair, HRESULT hr, const ddp_scrub_report *r)
{
    printf("{\"job\":\"scrub\",\"volume\":");
    cli_json_str(ddp_volume_root(v));
    printf(",\"result\":\"0x%08X\",\"repair\":%s,\"containers\":%llu,\"records\":%llu,\"stream_maps\":%llu,"
           "\"stubs\":%llu,\"bytes_checked\":%llu,\"seconds\":%.3f,\"damaged\":%llu,\"repaired\":%llu,"
           "\"unrepaired\":%llu,\"files_affected\":%llu,\"items\":[",
           (unsigned)hr, repair ? "true" : "false", (unsigned long long)r->containers,
           (unsigned long long)r->records, (unsigned long long)r->stream_maps, (unsigned long long)r->stubs,
           (unsigned long long)r->bytes_checked, r->seconds, (unsigned long long)r->damaged,
           (unsigned long long)r->repaired, (unsigned long long)r->unrepaired,
           (unsigned long long)r->files_affected);
    for (size_t i = 0; i < r->count; i++) {
        const ddp_scrub_item *it = &r->items[i];
        printf("%s{\"kind\":", i ? "," : "");
        cli_json_str(kind_name(it->kind));
        printf(",\"file\":");
        cli_json_str(it->file);
        printf(",\"offset\":%llu,\"what\":", (unsigned long long)it->offset);
        cli_json_str(it->what);
        printf(",\"repaired\":%s,\"repair\":", it->repaired ? "true" : "false");
        cli_json_str(it->repair ? it->repair : "");
        printf(",\"files\":[");
        for (size_t k = 0; k < it->nfiles; k++) {
            if (k) putchar(',');
            cli_json_str(it->files[k]);
        }
        printf("]}");
    }
    printf("]}\n");
}

static void print_text(const ddp_volume *v, int repair, const ddp_scrub_report *r)
{
    for (size_t i = 0; i < r->count; i++) {
        const ddp_scrub_item *it = &r->items[i];
        if (it->kind == DDP_SCRUB_STUB)
            printf("damaged %s %s: %s\n", kind_name(it->kind), it->file, it->what);
        else
            printf("damaged %s in %s at offset %llu: %s\n", kind_name(it->kind), it->file,
                   (unsigned long long)it->offset, it->what);
        if (it->nfiles) {
            printf("  affects %zu file%s:", it->nfiles, it->nfiles == 1 ? "" : "s");
            for (size_t k = 0; k < it->nfiles; k++) printf(" %s", it->files[k]);
            putchar('\n');
        } else if (it->kind != DDP_SCRUB_STUB) {
            printf("  affects no file\n");
        }
        if (repair) printf("  repair: %s\n", it->repair && *it->repair ? it->repair : "none");
    }
    char a[32];
    printf("Scrubbed %s: %llu containers (%s), %llu records (%llu stream maps), %llu stubs in %.2f s, "
           "%.1f MB of store/s\n",
           ddp_volume_root(v), (unsigned long long)r->containers, cli_human_bytes(r->bytes_checked, a),
           (unsigned long long)r->records, (unsigned long long)r->stream_maps, (unsigned long long)r->stubs,
           r->seconds, mb_per_s(r->bytes_checked, r->seconds));
    if (!r->damaged)
        printf("No damage found\n");
    else if (repair)
        printf("%llu damaged, %llu mended, %llu could not be mended (%llu files affected)\n",
               (unsigned long long)r->damaged, (unsigned long long)r->repaired, (unsigned long long)r->unrepaired,
               (unsigned long long)r->files_affected);
    else
        printf("%llu damaged (%llu files affected); 'ddp scrub %s --repair' mends what it can\n",
               (unsigned long long)r->damaged, (unsigned long long)r->files_affected, ddp_volume_root(v));
}

int cmd_scrub(int argc, char **argv)
{
    const char *vol = NULL;
    int repair = 0, json = 0, quiet = 0;
    if (parse_job_opts("scrub", argc, argv, &vol, &repair, "--repair", &quiet, &json)) return DDP_EXIT_USAGE;
    if (win_is_volume_only(vol)) {
        if (repair) return cli_usage_error("scrub", "a Windows volume is only read: no --repair");
        return cmd_win_scrub(vol, json);
    }
    ddp_volume *v = NULL;
    HRESULT hr = ddp_volume_open(vol, DDP_OPEN_JOB, &v);
    if (FAILED(hr)) {
        cli_error(hr, "scrub %s", vol);
        return DDP_EXIT_FAIL;
    }
    maint_ctx m = { .job = "scrub" };
    m.bar.on = cli_progress_wanted(quiet, json);
    ddp_job_callbacks cb = { .step = on_step, .ctx = &m };
    ddp_scrub_report r;
    hr = ddp_scrub(v, repair, &cb, &r);
    cli_progress_clear(&m.bar);
    if (FAILED(hr) && hr != DDP_E_FILE_CORRUPT) cli_error(hr, "scrub %s", vol);
    if (json) print_json(v, repair, hr, &r);
    else print_text(v, repair, &r);
    ddp_scrub_report_free(&r);
    ddp_volume_close(v);
    return hr == S_OK ? 0 : DDP_EXIT_FAIL;
}
