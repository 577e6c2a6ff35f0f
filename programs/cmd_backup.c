/* SPDX-License-Identifier: MIT */
/*
 * cmd_backup.c: `ddp backup VOLUME DEST [--tar] [--incremental PREV] [--endpoint URL]`.
 *
 * Writes an optimized backup of the volume (lib/backup/backup.c): a
 * directory, an incremental directory that builds on PREV, (--tar) an
 * archive ordered for a one-pass restore, or objects in S3 (DEST
 * s3://BUCKET/PREFIX, lib/backup/backup_s3.c), full or incremental. The
 * volume's job lock is held throughout, so the backup is consistent; the
 * summary says what was written and how fast.
 */
#include <stdio.h>
#include <string.h>

#include "backup/backup.h"
#include "backup/s3config.h"
#include "cli.h"

static void on_progress(void *ctx, uint64_t done, uint64_t total) { cli_progress_update(ctx, done, total); }

int cmd_backup(int argc, char **argv)
{
    const char *pos[2] = { NULL, NULL };
    int npos = 0;
    ddp_backup_options opt = { DDP_BACKUP_DIR, NULL, NULL, NULL };
    int quiet = 0, json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            quiet = 1;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--tar")) {
            opt.format = DDP_BACKUP_TAR;
        } else if (!strcmp(a, "--incremental")) {
            if (i + 1 >= argc) return cli_usage_error("backup", "--incremental needs the previous backup");
            opt.incremental_from = argv[++i];
        } else if (!strncmp(a, "--incremental=", 14)) {
            opt.incremental_from = a + 14;
        } else if (!strcmp(a, "--endpoint")) {
            if (i + 1 >= argc) return cli_usage_error("backup", "--endpoint needs a URL");
            ddp_s3_config_set_endpoint(argv[++i]);
        } else if (!strncmp(a, "--endpoint=", 11)) {
            ddp_s3_config_set_endpoint(a + 11);
        } else if (cli_is_option(a)) {
            return cli_usage_error("backup", "unknown option '%s'", a);
        } else {
            if (npos == 2) return cli_usage_error("backup", "too many arguments ('%s')", a);
            pos[npos++] = a;
        }
    }
    if (npos != 2) return cli_usage_error("backup", "give the volume and the destination");
    if (opt.format == DDP_BACKUP_TAR && opt.incremental_from)
        return cli_usage_error("backup", "--incremental makes a directory backup; it cannot be combined with --tar");
    if (opt.incremental_from && !*opt.incremental_from)
        return cli_usage_error("backup", "--incremental needs the previous backup");

    ddp_backup_stats st;
    cli_progress bar;
    cli_progress_start(&bar, cli_progress_wanted(quiet, json), "backup", 1, NULL, 0);
    opt.progress = on_progress;
    opt.progress_ctx = &bar;
    HRESULT hr = ddp_backup(pos[0], pos[1], &opt, &st);
    cli_progress_clear(&bar);
    if (FAILED(hr)) {
        if (hr == DDP_E_VOLUME_DEDUP_DISABLED)
            cli_error(hr, "%s is not a ddp volume (run 'ddp enable %s' first)", pos[0], pos[0]);
        else if (hr == DDP_E_JOB_ALREADY_RUNNING)
            cli_error(hr, "%s: another job is running on the volume; back it up when the job has ended", pos[0]);
        else if (opt.incremental_from && (hr == DDP_E_NOT_FOUND || hr == DDP_E_INVALID_DATA))
            cli_error(hr, "cannot build on %s", opt.incremental_from);
        else
            cli_error(hr, "backup of %s to %s", pos[0], pos[1]);
        return DDP_EXIT_FAIL;
    }

    char b1[32], b2[32];
    const char *kind = opt.format == DDP_BACKUP_TAR ? "tar archive" : opt.incremental_from ? "incremental" : "full";
    if (json) {
        printf("{\"job\":\"backup\",\"volume\":");
        cli_json_str(pos[0]);
        printf(",\"dest\":");
        cli_json_str(pos[1]);
        printf(",\"kind\":");
        cli_json_str(kind);
        printf(",\"result\":\"0x%08X\",\"level\":%u,\"files\":%llu,\"stubs\":%llu,\"metadata_files\":%llu,"
               "\"files_written\":%llu,\"files_unchanged\":%llu,\"dirs\":%llu,\"symlinks\":%llu,"
               "\"containers\":%llu,\"pieces_written\":%llu,\"container_bytes\":%llu,\"bytes_written\":%llu,"
               "\"changed_during\":%llu,\"skipped\":%llu,\"seconds\":%.3f}\n",
               (unsigned)hr, st.level, (unsigned long long)(st.files - st.metadata_files),
               (unsigned long long)st.stubs, (unsigned long long)st.metadata_files,
               (unsigned long long)st.files_copied, (unsigned long long)st.files_unchanged,
               (unsigned long long)st.dirs, (unsigned long long)st.symlinks, (unsigned long long)st.containers,
               (unsigned long long)st.pieces_copied, (unsigned long long)st.container_bytes,
               (unsigned long long)st.bytes_written, (unsigned long long)st.changed_during,
               (unsigned long long)st.skipped, st.seconds);
        return DDP_EXIT_OK;
    }
    printf("backup %s -> %s (%s, level %u)\n", pos[0], pos[1], kind, st.level);
    printf("  files:      %llu (%llu stubs, %llu not optimized) + %llu store metadata files; %llu written",
           (unsigned long long)(st.files - st.metadata_files), (unsigned long long)st.stubs,
           (unsigned long long)(st.files - st.metadata_files - st.stubs), (unsigned long long)st.metadata_files,
           (unsigned long long)st.files_copied);
    if (opt.incremental_from) printf(", %llu unchanged (kept in earlier backups)", (unsigned long long)st.files_unchanged);
    printf("; %llu store metadata files written", (unsigned long long)st.metadata_copied);
    printf("\n  tree:       %llu directories, %llu symlinks\n", (unsigned long long)st.dirs,
           (unsigned long long)st.symlinks);
    printf("  containers: %llu; %llu %s (%s)\n", (unsigned long long)st.containers,
           (unsigned long long)st.pieces_copied,
           opt.incremental_from ? "new containers or appended tails written" : "copied",
           cli_human_bytes(st.container_bytes, b1));
    double mbs = st.seconds > 0 ? (double)st.bytes_written / 1e6 / st.seconds : 0;
    printf("  written:    %s (%llu bytes) in %.2f s (%.1f MB/s)\n", cli_human_bytes(st.bytes_written, b2),
           (unsigned long long)st.bytes_written, st.seconds, mbs);
    if (st.changed_during)
        fprintf(stderr, "ddp backup: warning: %llu files changed while being copied; the backup has them as they were read\n",
                (unsigned long long)st.changed_during);
    if (st.skipped)
        fprintf(stderr, "ddp backup: note: %llu special files (fifos, sockets, devices, a top-level .ddp-backup) were not backed up\n",
                (unsigned long long)st.skipped);
    return DDP_EXIT_OK;
}
