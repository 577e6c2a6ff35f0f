/* SPDX-License-Identifier: MIT */
/*
 * cmd_restore.c: `ddp restore --from BACKUP [--to DIR] [--list-containers] [--endpoint URL] PATH...`
 *
 * A selective restore from an optimized backup, done the way a backup
 * application does it on Windows:
 *
 *   1. the application's step: copy each PATH (a stub, plain file, symlink,
 *      or a directory with everything below it) out of the backup beneath
 *      DIR with its mode, owner and times (lib/backup/extract.c,
 *      ddp_backup_extract; a tar archive is read in one pass, the files of
 *      an S3 backup, s3://BUCKET/PREFIX, fetched many at a time). Nothing is
 *      ever reached through a symbolic link or mount point in DIR, and
 *      stubs are staged in a private directory there;
 *   2. ddp's step: RestoreFiles on the staged stubs (its engine's variant
 *      for stubs in a private staging directory, ddp_restore_files_staged:
 *      each stub's inode takes its content, no temporary file), named
 *      through the held staging directory (/proc/self/fd/N/NAME, so no
 *      path a user can change is resolved again), with the backup store as
 *      the IDedupReadFileCallback (ddp_backupstore_open: directory,
 *      incremental set or tar archive);
 *   3. one syncfs, then each file is moved into place under --existing
 *      (default: an existing file is refused, never overwritten); a file
 *      that failed leaves nothing behind, neither stub nor partial file.
 *
 * One line per path: "<path>: 0xHRESULT <message>", then a summary with the
 * bytes read from the backup per byte restored, the callback's read calls and
 * the archive passes. The exit status is 0 only if no path failed.
 *
 * --list-containers plans the restore without writing anything in DIR (the
 * stubs go to a temporary directory, removed afterwards) and prints the
 * container byte ranges the restore would read: what to stage from tape.
 */
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup/backup.h"
#include "backup/backupstore.h"
#include "backup/s3config.h"
#include "cli.h"
#include "restore/restore.h"
#include "base/util.h"

static int usage_help(void)
{
    printf("usage: ddp restore --from BACKUP [--to DIR] [--existing refuse|keep|overwrite|rename]\n"
           "                   [--list-containers] [--endpoint URL] PATH...\n\n"
           "  Restore files from an optimized backup (a ddp backup directory, incremental\n"
           "  backup, tar archive, or s3://BUCKET/PREFIX) through IDedupBackupSupport::RestoreFiles.\n"
           "  PATH                paths inside the backed-up volume, relative to its root (a/b.txt);\n"
           "                      a directory brings everything below it\n"
           "  --to DIR            where to restore them (DIR/PATH; default: the current directory)\n"
           "  --existing refuse   a file that exists at a restored path fails that path (default)\n"
           "  --existing keep     leave existing files as they are, restore the others\n"
           "  --existing overwrite  replace existing files\n"
           "  --existing rename   keep an existing file as NAME.~N~, restore NAME\n"
           "  --list-containers   print the container ranges a restore would read, restore nothing\n"
           "  --endpoint URL      the S3 service of an s3:// backup (default: AWS_ENDPOINT_URL, the\n"
           "                      AWS profile, AWS)\n");
    return DDP_EXIT_OK;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void rm_rf(const char *path) { nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

typedef struct list_ctx {
    uint64_t ranges[3], bytes[3];
} list_ctx;

static void list_emit(void *vctx, int kind, const char *container_path, uint64_t offset, uint64_t length)
{
    list_ctx *c = vctx;
    int k = kind == 2 ? 2 : 1;
    c->ranges[k]++;
    c->bytes[k] += length;
    printf("%s %" PRIu64 " %" PRIu64 "\n", container_path, offset, length);
}

static const char *kind_message(int kind)
{
    switch (kind) {
    case DDP_ITEM_DIR: return "directory (not optimized; created)";
    case DDP_ITEM_SYMLINK: return "symbolic link (not optimized; created, not followed)";
    default: return "copied (not optimized)";
    }
}

static void print_failure(const char *path, HRESULT hr)
{
    printf("%s: 0x%08X %s\n", path, (unsigned)hr, ddp_strerror(hr));
}

/* RestoreFiles needs paths; the staged stubs are named through the held
 * staging directory's descriptor, which /proc gives. */
static int have_proc_fd(void)
{
    struct stat st;
    return stat("/proc/self/fd", &st) == 0 && S_ISDIR(st.st_mode);
}

/* --list-containers */
static int list_containers(const char *from, size_t n, char **rel)
{
    const char *base = getenv("TMPDIR");
    char *tmpl = ddp_xasprintf("%s/ddp-restore-list-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpl)) {
        cli_error(ddp_hresult_from_errno(errno), "creating a temporary directory %s", tmpl);
        free(tmpl);
        return DDP_EXIT_FAIL;
    }
    int rc = DDP_EXIT_OK;
    ddp_extract x;
    BSTR *local = NULL;
    size_t *which = NULL;
    HRESULT *res = NULL;
    IDedupReadFileCallback *store = NULL;
    HRESULT hr = ddp_backup_extract(from, n, rel, tmpl, DDP_EXISTING_REFUSE, &x);
    if (FAILED(hr)) {
        cli_error(hr, "reading the backup %s", from);
        rc = DDP_EXIT_FAIL;
        goto out;
    }
    local = ddp_xcalloc(x.n ? x.n : 1, sizeof *local);
    which = ddp_xcalloc(x.n ? x.n : 1, sizeof *which);
    size_t k = 0;
    for (size_t i = 0; i < x.n; i++) {
        if (FAILED(x.items[i].hr)) {
            printf("%s: 0x%08X %s\n", x.items[i].path, (unsigned)x.items[i].hr, x.items[i].detail);
            rc = DDP_EXIT_FAIL;
        } else if (!x.items[i].staged) {
            fprintf(stderr, "%s: %s: nothing to read from the backup's chunk store\n", x.items[i].path,
                    kind_message(x.items[i].kind));
        } else {
            local[k] = x.items[i].staged;
            which[k++] = i;
        }
    }
    if (k == 0) goto out;
    hr = ddp_backup_extract_store(&x, from, &store);
    if (FAILED(hr)) {
        cli_error(hr, "opening the backup %s", from);
        rc = DDP_EXIT_FAIL;
        goto out;
    }
    res = ddp_xcalloc(k, sizeof *res);
    list_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    hr = ddp_restore_plan_list((ULONG)k, local, store, list_emit, &ctx, res);
    for (size_t j = 0; j < k; j++)
        if (FAILED(res[j])) {
            fprintf(stderr, "%s: 0x%08X %s\n", x.items[which[j]].path, (unsigned)res[j], ddp_strerror(res[j]));
            rc = DDP_EXIT_FAIL;
        }
    if (FAILED(hr)) {
        cli_error(hr, "planning the restore");
        rc = DDP_EXIT_FAIL;
    }
    ddp_backupstore_stats bst;
    ddp_backupstore_get_stats(store, &bst);
    char h1[32], h2[32], h3[32], h4[32];
    printf("total: %" PRIu64 " ranges, %s (stream maps: %" PRIu64 " ranges, %s; data: %" PRIu64 " ranges, %s); "
           "planning read %s from the backup\n",
           ctx.ranges[1] + ctx.ranges[2], cli_human_bytes(ctx.bytes[1] + ctx.bytes[2], h1), ctx.ranges[2],
           cli_human_bytes(ctx.bytes[2], h2), ctx.ranges[1], cli_human_bytes(ctx.bytes[1], h3),
           cli_human_bytes(bst.bytes_read, h4));
out:
    if (store) IDedupReadFileCallback_Release(store);
    free(local);
    free(which);
    free(res);
    (void)ddp_backup_extract_close(&x);
    rm_rf(tmpl);
    free(tmpl);
    return rc;
}

static int parse_existing(const char *v, int *out)
{
    static const char *const names[] = { "refuse", "keep", "overwrite", "rename" };
    for (int k = 0; k < 4; k++)
        if (!strcmp(v, names[k])) {
            *out = k;
            return 0;
        }
    return -1;
}

/* The detail of RestoreFiles names the staged path; say the user's. */
static void print_detail(const char *detail, const ddp_extract *x)
{
    for (size_t i = 0; i < x->n; i++) {
        const char *st = x->items[i].staged;
        const char *at = st ? strstr(detail, st) : NULL;
        if (at) {
            fprintf(stderr, "ddp restore: %.*s%s%s\n", (int)(at - detail), detail, x->items[i].path, at + strlen(st));
            return;
        }
    }
    fprintf(stderr, "ddp restore: %s\n", detail);
}

int cmd_restore(int argc, char **argv)
{
    const char *from = NULL, *to = ".";
    int list = 0, quiet = 0, json = 0, existing = DDP_EXISTING_REFUSE;
    cli_progress bar;
    char **rel = ddp_xcalloc((size_t)argc, sizeof *rel);
    size_t n = 0;
    int rc = DDP_EXIT_OK;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { rc = usage_help(); goto done; }
        if (!strcmp(a, "--from") || !strcmp(a, "--to") || !strcmp(a, "--existing")) {
            if (i + 1 >= argc) { rc = cli_usage_error("restore", "%s needs a value", a); goto done; }
            const char *v = argv[++i];
            if (a[2] == 'f') from = v;
            else if (a[2] == 't') to = v;
            else if (parse_existing(v, &existing) != 0) {
                rc = cli_usage_error("restore", "--existing: '%s' is not refuse, keep, overwrite or rename", v);
                goto done;
            }
        } else if (!strncmp(a, "--from=", 7)) {
            from = a + 7;
        } else if (!strncmp(a, "--to=", 5)) {
            to = a + 5;
        } else if (!strcmp(a, "--endpoint")) {
            if (i + 1 >= argc) { rc = cli_usage_error("restore", "--endpoint needs a URL"); goto done; }
            ddp_s3_config_set_endpoint(argv[++i]);
        } else if (!strncmp(a, "--endpoint=", 11)) {
            ddp_s3_config_set_endpoint(a + 11);
        } else if (!strncmp(a, "--existing=", 11)) {
            if (parse_existing(a + 11, &existing) != 0) {
                rc = cli_usage_error("restore", "--existing: '%s' is not refuse, keep, overwrite or rename", a + 11);
                goto done;
            }
        } else if (!strcmp(a, "--list-containers")) {
            list = 1;
        } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            quiet = 1;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--")) {
            for (i++; i < argc; i++) {
                if (FAILED(ddp_backup_normalize_relpath(argv[i], &rel[n]))) {
                    rc = cli_usage_error("restore", "%s", ddp_error_detail());
                    goto done;
                }
                n++;
            }
        } else if (a[0] == '-' && a[1]) {
            rc = cli_usage_error("restore", "unknown option '%s'", a);
            goto done;
        } else {
            if (FAILED(ddp_backup_normalize_relpath(a, &rel[n]))) {
                rc = cli_usage_error("restore", "%s", ddp_error_detail());
                goto done;
            }
            n++;
        }
    }
    if (!from) { rc = cli_usage_error("restore", "--from BACKUP is required"); goto done; }
    if (n == 0) { rc = cli_usage_error("restore", "name the files to restore"); goto done; }
    if (!*to) { rc = cli_usage_error("restore", "--to needs a directory"); goto done; }
    if (!have_proc_fd()) {
        cli_error(E_FAIL, "/proc is not mounted: restore names its staged files through /proc/self/fd");
        rc = DDP_EXIT_FAIL;
        goto done;
    }

    if (win_is_volume(from)) { /* a Windows dedup volume (ntfs-3g mount or copied tree) */
        rc = cmd_win_restore(from, to, rel, n, list);
        goto done;
    }
    if (list) {
        rc = list_containers(from, n, rel);
        goto done;
    }

    double t0 = ddp_now();
    ddp_extract x;
    HRESULT *results = NULL;
    BSTR *local = NULL;
    size_t *which = NULL;
    IDedupReadFileCallback *store = NULL, *raw_store = NULL; /* raw: the backup store itself, for its stats */
    char first_detail[1024] = "";

    /* Step 1: everything out of the backup, stubs staged. */
    HRESULT hr = ddp_backup_extract(from, n, rel, to, existing, &x);
    if (FAILED(hr)) {
        cli_error(hr, "reading the backup %s", from);
        rc = DDP_EXIT_FAIL;
        goto out;
    }
    results = ddp_xcalloc(x.n ? x.n : 1, sizeof *results);
    local = ddp_xcalloc(x.n ? x.n : 1, sizeof *local);
    which = ddp_xcalloc(x.n ? x.n : 1, sizeof *which);
    size_t k = 0;
    for (size_t i = 0; i < x.n; i++) {
        results[i] = x.items[i].hr;
        if (x.items[i].staged) {
            local[k] = x.items[i].staged;
            which[k++] = i;
        }
    }

    /* Step 2: RestoreFiles on the staged stubs, in batches of at most
     * DDP_MAX_RESTORE_FILES; step 3: each into its place. */
    ddp_backupstore_stats bst;
    memset(&bst, 0, sizeof bst);
    if (k > 0) {
        hr = ddp_backup_extract_store(&x, from, &store);
        raw_store = store;
        if (SUCCEEDED(hr) && cli_progress_wanted(quiet, json)) {
            cli_progress_start(&bar, 1, "restore: read from the backup", 1, NULL, 0);
            store = cli_read_progress(store, &bar);
        } else {
            cli_progress_start(&bar, 0, "", 1, NULL, 0);
        }
        if (FAILED(hr)) {
            cli_error(hr, "opening the backup %s", from);
            rc = DDP_EXIT_FAIL;
            goto out;
        }
        HRESULT *br = ddp_xcalloc(k, sizeof *br);
        for (size_t start = 0; start < k; start += DDP_MAX_RESTORE_FILES) {
            ULONG cnt = (ULONG)(k - start < DDP_MAX_RESTORE_FILES ? k - start : DDP_MAX_RESTORE_FILES);
            /* RestoreFiles on stubs in our private staging directory:
             * rewritten in place, synced by ddp_backup_extract_finish. */
            HRESULT call = ddp_restore_files_staged(cnt, local + start, store, br + start);
            if (FAILED(call) && !first_detail[0]) snprintf(first_detail, sizeof first_detail, "%s", ddp_error_detail());
        }
        cli_progress_clear(&bar);
        for (size_t j = 0; j < k; j++) {
            size_t i = which[j];
            if (FAILED(br[j]) && !first_detail[0]) snprintf(first_detail, sizeof first_detail, "%s", ddp_error_detail());
            ddp_backup_extract_place(&x, i, br[j]);
        }
        free(br);
        ddp_backupstore_get_stats(raw_store, &bst);
    }
    /* Step 3: everything synced, then each into its place. */
    hr = ddp_backup_extract_finish(&x);
    if (FAILED(hr)) cli_error(hr, "finishing the restore in %s", to);
    for (size_t i = 0; i < x.n; i++) results[i] = x.items[i].hr;

    /* One line per path, then the summary. */
    uint64_t restored = 0, failed = 0, copied = 0, kept = 0, bytes_restored = 0;
    FILE *saved_stdout = NULL;
    if (json) { /* the per-path lines go nowhere: the JSON object below has them */
        fflush(stdout);
        saved_stdout = stdout;
        stdout = fopen("/dev/null", "w");
        if (!stdout) stdout = saved_stdout, saved_stdout = NULL;
    }
    for (size_t i = 0; i < x.n; i++) {
        HRESULT r = results[i];
        const ddp_backup_item *it = &x.items[i];
        if (it->kept) {
            kept++;
            printf("%s: 0x%08X exists; kept as it is (--existing keep)\n", it->path, (unsigned)S_FALSE);
        } else if (r == S_OK && it->kind == DDP_ITEM_STUB) {
            bytes_restored += it->size;
            restored++;
            printf("%s: 0x%08X restored%s%s%s\n", it->path, (unsigned)r, it->aside ? " (the existing file is now " : "",
                   it->aside ? it->aside : "", it->aside ? ")" : "");
        } else if (SUCCEEDED(r)) {
            copied++;
            printf("%s: 0x%08X %s%s%s%s\n", it->path, (unsigned)S_FALSE, kind_message(it->kind),
                   it->aside ? " (the existing file is now " : "", it->aside ? it->aside : "", it->aside ? ")" : "");
        } else {
            failed++;
            if (FAILED(it->hr) && it->detail[0]) {
                printf("%s: 0x%08X %s\n", it->path, (unsigned)r, it->detail);
                if (!first_detail[0]) snprintf(first_detail, sizeof first_detail, "%s", it->detail);
            } else {
                print_failure(it->path, r);
            }
        }
    }
    if (failed) {
        const char *d = first_detail[0] ? first_detail : ddp_error_detail();
        if (d && *d) print_detail(d, &x);
        rc = DDP_EXIT_FAIL;
    }
    if (saved_stdout) {
        fclose(stdout);
        stdout = saved_stdout;
    }
    double secs = ddp_now() - t0;
    if (json) {
        printf("{\"job\":\"restore\",\"from\":");
        cli_json_str(from);
        printf(",\"to\":");
        cli_json_str(to);
        printf(",\"result\":\"0x%08X\",\"paths\":[", (unsigned)(failed ? E_FAIL : S_OK));
        for (size_t i = 0; i < x.n; i++) {
            const ddp_backup_item *it = &x.items[i];
            printf("%s{\"path\":", i ? "," : "");
            cli_json_str(it->path);
            printf(",\"result\":\"0x%08X\",\"outcome\":\"%s\"}", (unsigned)results[i],
                   it->kept                                         ? "kept"
                   : results[i] == S_OK && it->kind == DDP_ITEM_STUB ? "restored"
                   : SUCCEEDED(results[i])                          ? "copied"
                                                                    : "failed");
        }
        printf("],\"restored\":%" PRIu64 ",\"copied\":%" PRIu64 ",\"kept\":%" PRIu64 ",\"failed\":%" PRIu64
               ",\"bytes_restored\":%" PRIu64 ",\"bytes_read\":%" PRIu64 ",\"read_calls\":%" PRIu64
               ",\"archive_passes\":%" PRIu64,
               restored, copied, kept, failed, bytes_restored, bst.bytes_read, bst.read_calls, bst.passes);
        if (bst.requests)
            printf(",\"s3_bytes_fetched\":%" PRIu64 ",\"s3_requests\":%" PRIu64, bst.fetched, bst.requests);
        printf(",\"seconds\":%.3f}\n", secs);
        goto out;
    }
    double ratio = bytes_restored ? (double)bst.bytes_read / (double)bytes_restored : 0.0;
    printf("summary: %zu paths, %" PRIu64 " restored, %" PRIu64 " copied as they were, %" PRIu64 " kept, %" PRIu64
           " failed; "
           "%" PRIu64 " bytes restored, %" PRIu64 " bytes read from the backup (%.3f per byte restored); "
           "%" PRIu64 " read calls, %" PRIu64 " previews, %" PRIu64 " order calls, %" PRIu64 " archive passes; %.3f s\n",
           x.n, restored, copied, kept, failed, bytes_restored, bst.bytes_read, ratio, bst.read_calls,
           bst.preview_calls, bst.order_calls, bst.passes, secs);
    if (bst.requests)
        printf("s3: %" PRIu64 " bytes fetched from the store in %" PRIu64 " requests (%.3f per byte restored)\n",
               bst.fetched, bst.requests, bytes_restored ? (double)bst.fetched / (double)bytes_restored : 0.0);
out:
    if (store) IDedupReadFileCallback_Release(store);
    free(local);
    free(which);
    free(results);
    hr = ddp_backup_extract_close(&x);
    if (FAILED(hr)) {
        cli_error(hr, "finishing the restore in %s", to);
        rc = DDP_EXIT_FAIL;
    }
done:
    for (size_t i = 0; i < n; i++) free(rel[i]);
    free(rel);
    return rc;
}
