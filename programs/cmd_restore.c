/*
 * cmd_restore.c: `ddp restore --from BACKUP [--to DIR] [--list-containers] PATH...`
 *
 * A selective restore from an optimized backup, done the way a backup
 * application does it on Windows:
 *
 *   1. the application's step: copy each PATH's stub (or plain file,
 *      directory, symlink) out of the backup to DIR/PATH with its mode, owner
 *      and times (lib/backup.c, ddp_backup_extract; a tar archive is read in
 *      one pass);
 *   2. ddp's step: IDedupBackupSupport::RestoreFiles on those local paths,
 *      with the backup store as the IDedupReadFileCallback
 *      (ddp_backupstore_open: directory, incremental set or tar archive).
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
    printf("usage: ddp restore --from BACKUP [--to DIR] [--list-containers] [--endpoint URL] PATH...\n\n"
           "  Restore files from an optimized backup (a ddp backup directory, incremental\n"
           "  backup, tar archive, or s3://BUCKET/PREFIX) through IDedupBackupSupport::RestoreFiles.\n"
           "  PATH                paths inside the backed-up volume, relative to its root (a/b.txt)\n"
           "  --to DIR            where to restore them (DIR/PATH; default: the current directory)\n"
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
    ddp_backup_item *items = ddp_xcalloc(n, sizeof *items);
    BSTR *local = ddp_xcalloc(n, sizeof *local);
    size_t *which = ddp_xcalloc(n, sizeof *which);
    HRESULT *res = NULL;
    IDedupReadFileCallback *store = NULL;
    HRESULT hr = ddp_backup_extract(from, n, rel, tmpl, items);
    if (FAILED(hr)) {
        cli_error(hr, "reading the backup %s", from);
        rc = DDP_EXIT_FAIL;
        goto out;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (FAILED(items[i].hr)) {
            print_failure(rel[i], items[i].hr);
            rc = DDP_EXIT_FAIL;
        } else if (items[i].kind != DDP_ITEM_STUB) {
            fprintf(stderr, "%s: %s: nothing to read from the backup's chunk store\n", rel[i],
                    kind_message(items[i].kind));
        } else {
            local[k] = ddp_path_join(tmpl, rel[i]);
            which[k++] = i;
        }
    }
    if (k == 0) goto out;
    hr = ddp_backupstore_open(from, &store);
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
            fprintf(stderr, "%s: 0x%08X %s\n", rel[which[j]], (unsigned)res[j], ddp_strerror(res[j]));
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
    for (size_t i = 0; i < n; i++) free(local[i]);
    free(local);
    free(which);
    free(res);
    free(items);
    rm_rf(tmpl);
    free(tmpl);
    return rc;
}

int cmd_restore(int argc, char **argv)
{
    const char *from = NULL, *to = ".";
    int list = 0;
    char **rel = ddp_xcalloc((size_t)argc, sizeof *rel);
    size_t n = 0;
    int rc = DDP_EXIT_OK;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { rc = usage_help(); goto done; }
        if (!strcmp(a, "--from") || !strcmp(a, "--to")) {
            if (i + 1 >= argc) { rc = cli_usage_error("restore", "%s needs a value", a); goto done; }
            if (a[2] == 'f') from = argv[++i];
            else to = argv[++i];
        } else if (!strncmp(a, "--from=", 7)) {
            from = a + 7;
        } else if (!strncmp(a, "--to=", 5)) {
            to = a + 5;
        } else if (!strcmp(a, "--endpoint")) {
            if (i + 1 >= argc) { rc = cli_usage_error("restore", "--endpoint needs a URL"); goto done; }
            ddp_s3_config_set_endpoint(argv[++i]);
        } else if (!strncmp(a, "--endpoint=", 11)) {
            ddp_s3_config_set_endpoint(a + 11);
        } else if (!strcmp(a, "--list-containers")) {
            list = 1;
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

    if (list) {
        rc = list_containers(from, n, rel);
        goto done;
    }

    double t0 = ddp_now();
    ddp_backup_item *items = ddp_xcalloc(n, sizeof *items);
    HRESULT *results = ddp_xcalloc(n, sizeof *results);
    BSTR *local = ddp_xcalloc(n, sizeof *local);
    size_t *which = ddp_xcalloc(n, sizeof *which);
    IDedupBackupSupport *bs = NULL;
    IDedupReadFileCallback *store = NULL;
    char first_detail[1024] = "";

    /* Step 1: the stubs (and plain files, directories, links) out of the backup. */
    HRESULT hr = ddp_backup_extract(from, n, rel, to, items);
    if (FAILED(hr)) {
        cli_error(hr, "reading the backup %s", from);
        rc = DDP_EXIT_FAIL;
        goto out;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        results[i] = items[i].hr;
        if (FAILED(items[i].hr)) continue;
        local[k] = ddp_path_join(to, rel[i]);
        which[k++] = i;
    }

    /* Step 2: RestoreFiles, in batches of at most DDP_MAX_RESTORE_FILES. */
    ddp_backupstore_stats bst;
    memset(&bst, 0, sizeof bst);
    if (k > 0) {
        hr = ddp_backupstore_open(from, &store);
        if (SUCCEEDED(hr)) hr = DedupCreateBackupSupport(&bs);
        if (FAILED(hr)) {
            cli_error(hr, "opening the backup %s", from);
            rc = DDP_EXIT_FAIL;
            goto out;
        }
        HRESULT *br = ddp_xcalloc(k, sizeof *br);
        for (size_t start = 0; start < k; start += DDP_MAX_RESTORE_FILES) {
            ULONG cnt = (ULONG)(k - start < DDP_MAX_RESTORE_FILES ? k - start : DDP_MAX_RESTORE_FILES);
            HRESULT call = IDedupBackupSupport_RestoreFiles(bs, cnt, local + start, store,
                                                            DEDUP_RECONSTRUCT_UNOPTIMIZED, br + start);
            if (FAILED(call) && !first_detail[0]) snprintf(first_detail, sizeof first_detail, "%s", ddp_error_detail());
        }
        for (size_t j = 0; j < k; j++) results[which[j]] = br[j];
        free(br);
        ddp_backupstore_get_stats(store, &bst);
    }

    /* One line per path, then the summary. */
    uint64_t restored = 0, failed = 0, copied = 0, bytes_restored = 0;
    for (size_t i = 0; i < n; i++) {
        HRESULT r = results[i];
        if (r == S_OK) {
            struct stat st;
            char *lp = ddp_path_join(to, rel[i]);
            if (lstat(lp, &st) == 0) bytes_restored += (uint64_t)st.st_size;
            free(lp);
            restored++;
            printf("%s: 0x%08X restored\n", rel[i], (unsigned)r);
        } else if (r == S_FALSE) {
            copied++;
            printf("%s: 0x%08X %s\n", rel[i], (unsigned)r, kind_message(items[i].kind));
        } else {
            failed++;
            if (FAILED(items[i].hr)) printf("%s: 0x%08X %s (not in the backup or not copied out of it)\n",
                                            rel[i], (unsigned)r, ddp_strerror(r));
            else print_failure(rel[i], r);
        }
    }
    if (failed) {
        const char *d = first_detail[0] ? first_detail : ddp_error_detail();
        if (d && *d) fprintf(stderr, "ddp restore: %s\n", d);
        rc = DDP_EXIT_FAIL;
    }
    double secs = ddp_now() - t0;
    double ratio = bytes_restored ? (double)bst.bytes_read / (double)bytes_restored : 0.0;
    printf("summary: %zu paths, %" PRIu64 " restored, %" PRIu64 " copied as they were, %" PRIu64 " failed; "
           "%" PRIu64 " bytes restored, %" PRIu64 " bytes read from the backup (%.3f per byte restored); "
           "%" PRIu64 " read calls, %" PRIu64 " previews, %" PRIu64 " order calls, %" PRIu64 " archive passes; %.3f s\n",
           n, restored, copied, failed, bytes_restored, bst.bytes_read, ratio, bst.read_calls, bst.preview_calls,
           bst.order_calls, bst.passes, secs);
    if (bst.requests)
        printf("s3: %" PRIu64 " bytes fetched from the store in %" PRIu64 " requests (%.3f per byte restored)\n",
               bst.fetched, bst.requests, bytes_restored ? (double)bst.fetched / (double)bytes_restored : 0.0);
out:
    if (bs) IDedupBackupSupport_Release(bs);
    if (store) IDedupReadFileCallback_Release(store);
    for (size_t i = 0; i < n; i++) free(local[i]);
    free(local);
    free(which);
    free(results);
    free(items);
done:
    for (size_t i = 0; i < n; i++) free(rel[i]);
    free(rel);
    return rc;
}
