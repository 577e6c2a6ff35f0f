/* SPDX-License-Identifier: MIT */
/*
 * s3rules.c: RestoreFiles through a recording wrapper around a backup store
 * (in the tests: the S3 store, ddp_backupstore_open("s3://...")), checking the
 * contract's rules R1-R10 (SPEC-backup-api.md) on the calls that really go
 * to the store; plus direct reads and a fault hook, for tests/e2e/test_s3.sh.
 *
 *   s3rules rules BACKUP DIR FILE...
 *       extract the stubs of FILE... (paths in the volume) into DIR, then:
 *       R1 bad calls refused before any callback; R2 FileResults NULL on a
 *       copy of the first file; one call on every FILE plus a missing path,
 *       a plain file and a directory (R3 results per kind, R4 the call's
 *       result), every callback recorded: R5 two order calls (stream maps,
 *       then data; no path twice), R7 each container read announced by the
 *       preview just before, in order, at most 4 MiB, no byte read twice,
 *       R10 callbacks on this thread, one at a time; R8 one small file reads
 *       less than its size plus 2 MiB; R6 a plan with a bad index refused
 *       (E_INVALIDARG for every file). Prints "RULE Rn ok" or "RULE Rn FAIL:
 *       why"; exit 0 only if every rule held.
 *   s3rules killat BACKUP DIR N PID FILE...
 *       extract, then RestoreFiles with SIGKILL sent to PID (the gateway)
 *       after the N-th ReadBackupFile; prints each file's HRESULT and checks
 *       R9: every failed file is still its stub, byte for byte.
 *   s3rules read BACKUP PATH OFFSET LENGTH
 *       one ReadBackupFile; prints "0xHRESULT got N" and the error detail.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ddp/ddpbackup.h>
#include "backup/backup.h"
#include "backup/backupstore.h"
#include "base/util.h"

#define MAX_READ (4u << 20)

typedef struct rd {
    char *path;
    int64_t off, len;
} rd;

typedef struct wrap {
    IDedupReadFileCallback iface;
    IDedupReadFileCallback *inner;
    pthread_t owner;
    int in_call;
    int calls, order_calls, bad_plan;
    char *fail[64];
    int nfail;
    /* the preview in force */
    char *pv_path;
    DDP_FILE_EXTENT *pv;
    ULONG pv_n, pv_next;
    rd *reads;
    size_t nreads, capreads;
    uint64_t bytes;
    long kill_after;
    pid_t kill_pid;
} wrap;

static void violation(wrap *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void violation(wrap *w, const char *fmt, ...)
{
    if (w->nfail >= 64) return;
    va_list ap;
    va_start(ap, fmt);
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    w->fail[w->nfail++] = ddp_strdup(buf);
}

static int is_container(const char *p)
{
    size_t n = strlen(p);
    return n > 4 && strcmp(p + n - 4, ".ccc") == 0 &&
           (strstr(p, "/Data/") || strstr(p, "/Stream/") || strstr(p, "/Hotspot/"));
}

static void enter(wrap *w)
{
    if (!pthread_equal(pthread_self(), w->owner)) violation(w, "R10: a callback on another thread");
    if (w->in_call) violation(w, "R10: a callback while another one runs");
    w->in_call = 1;
    w->calls++;
}

static HRESULT w_qi(IDedupReadFileCallback *This, REFIID riid, void **ppv)
{
    if (!ppv) return E_POINTER;
    if (IsEqualIID(riid, &IID_IUnknown) || IsEqualIID(riid, &IID_IDedupReadFileCallback)) {
        *ppv = This;
        return S_OK;
    }
    *ppv = NULL;
    return E_NOINTERFACE;
}
static ULONG w_addref(IDedupReadFileCallback *This) { (void)This; return 2; }
static ULONG w_release(IDedupReadFileCallback *This) { (void)This; return 1; }

static HRESULT w_read(IDedupReadFileCallback *This, BSTR path, LONGLONG off, ULONG n, BYTE *buf, ULONG *got,
                      DWORD flags)
{
    wrap *w = (wrap *)This;
    enter(w);
    if (is_container(path)) {
        if (n > MAX_READ) violation(w, "R7: a read of %u bytes (over 4 MiB)", n);
        if (!w->pv_path || strcmp(w->pv_path, path) != 0 || w->pv_next >= w->pv_n ||
            w->pv[w->pv_next].Offset != off || w->pv[w->pv_next].Length != (LONGLONG)n)
            violation(w, "R7: read %s @%lld+%u was not the next one announced", path, (long long)off, n);
        else
            w->pv_next++;
        if (w->nreads == w->capreads) {
            w->capreads = w->capreads ? w->capreads * 2 : 256;
            w->reads = ddp_xrealloc(w->reads, w->capreads * sizeof *w->reads);
        }
        w->reads[w->nreads++] = (rd){ ddp_strdup(path), off, n };
    }
    HRESULT hr = IDedupReadFileCallback_ReadBackupFile(w->inner, path, off, n, buf, got, flags);
    if (SUCCEEDED(hr)) w->bytes += *got;
    long done = (long)w->nreads;
    if (w->kill_pid > 0 && done == w->kill_after) {
        kill(w->kill_pid, SIGKILL);
        while (kill(w->kill_pid, 0) == 0) usleep(10000); /* gone (a zombie of its parent counts) */
        fprintf(stderr, "s3rules: killed pid %d after %ld container reads\n", (int)w->kill_pid, done);
        w->kill_pid = 0;
    }
    w->in_call = 0;
    return hr;
}

static HRESULT w_order(IDedupReadFileCallback *This, ULONG n, BSTR *paths, ULONG *entries,
                       DEDUP_CONTAINER_EXTENT **plan)
{
    wrap *w = (wrap *)This;
    enter(w);
    w->order_calls++;
    for (ULONG i = 0; i < n; i++) {
        for (ULONG j = 0; j < i; j++)
            if (strcmp(paths[i], paths[j]) == 0) violation(w, "R5: %s named twice in one order call", paths[i]);
        int stream = strstr(paths[i], "/Stream/") != NULL;
        if (w->order_calls == 1 && !stream) violation(w, "R5: the first order call names %s (not a stream map)", paths[i]);
        if (w->order_calls == 2 && stream) violation(w, "R5: the second order call names %s (a stream map)", paths[i]);
    }
    HRESULT hr = IDedupReadFileCallback_OrderContainersRestore(w->inner, n, paths, entries, plan);
    if (SUCCEEDED(hr) && w->bad_plan && n > 0) {
        free(*plan);
        DEDUP_CONTAINER_EXTENT *p = malloc(sizeof *p);
        p->ContainerIndex = n; /* out of range */
        p->StartOffset = 0;
        p->Length = 1;
        *plan = p;
        *entries = 1;
    }
    w->in_call = 0;
    return hr;
}

static HRESULT w_preview(IDedupReadFileCallback *This, BSTR path, ULONG n, DDP_FILE_EXTENT *ext)
{
    wrap *w = (wrap *)This;
    enter(w);
    if (w->pv_path && w->pv_next != w->pv_n)
        violation(w, "R7: %u of %u announced reads of %s were not made", w->pv_n - w->pv_next, w->pv_n, w->pv_path);
    free(w->pv_path);
    free(w->pv);
    w->pv_path = ddp_strdup(path);
    w->pv = ddp_xmalloc((n ? n : 1) * sizeof *ext);
    if (n) memcpy(w->pv, ext, n * sizeof *ext);
    w->pv_n = n;
    w->pv_next = 0;
    for (ULONG i = 1; i < n; i++)
        if (ext[i].Offset < ext[i - 1].Offset + ext[i - 1].Length) violation(w, "R7: announced reads of %s go backwards or overlap", path);
    HRESULT hr = IDedupReadFileCallback_PreviewContainerRead(w->inner, path, n, ext);
    w->in_call = 0;
    return hr;
}

static const IDedupReadFileCallbackVtbl wrap_vtbl = { w_qi, w_addref, w_release, w_read, w_order, w_preview };

static int cmp_rd(const void *a, const void *b)
{
    const rd *x = a, *y = b;
    int c = strcmp(x->path, y->path);
    if (c) return c;
    return x->off < y->off ? -1 : x->off > y->off;
}

static void wrap_init(wrap *w, IDedupReadFileCallback *inner)
{
    memset(w, 0, sizeof *w);
    w->iface.lpVtbl = &wrap_vtbl;
    w->inner = inner;
    w->owner = pthread_self();
}

/* R7: no container byte read twice in the call. */
static void wrap_finish(wrap *w)
{
    if (w->nreads) qsort(w->reads, w->nreads, sizeof *w->reads, cmp_rd);
    for (size_t i = 1; i < w->nreads; i++)
        if (strcmp(w->reads[i].path, w->reads[i - 1].path) == 0 &&
            w->reads[i].off < w->reads[i - 1].off + w->reads[i - 1].len)
            violation(w, "R7: bytes of %s read twice (@%lld)", w->reads[i].path, (long long)w->reads[i].off);
}

static void wrap_free(wrap *w)
{
    for (size_t i = 0; i < w->nreads; i++) free(w->reads[i].path);
    free(w->reads);
    free(w->pv_path);
    free(w->pv);
    for (int i = 0; i < w->nfail; i++) free(w->fail[i]);
}

static int failed_rules;

static void rule(const char *r, int okay, const char *why)
{
    if (okay) printf("RULE %s ok\n", r);
    else {
        printf("RULE %s FAIL: %s\n", r, why);
        failed_rules++;
    }
}

static int report(const char *r, wrap *w)
{
    char buf[4096] = "";
    for (int i = 0; i < w->nfail; i++)
        if (strncmp(w->fail[i], r, strlen(r)) == 0) {
            strncat(buf, w->fail[i], sizeof buf - strlen(buf) - 3);
            strcat(buf, "; ");
        }
    rule(r, buf[0] == '\0', buf);
    return buf[0] == '\0';
}

static uint8_t *slurp(const char *p, size_t *n)
{
    uint8_t *d = NULL;
    if (FAILED(ddp_read_file(p, (size_t)1 << 30, &d, n))) return NULL;
    return d;
}

/* Step 1 of a restore, with each staged stub then moved into place as it
 * is (DIR/FILE is the stub the rules' RestoreFiles calls work on). */
/* The backup's store and a backup-support object: 0, or 2 with a message. */
static int open_store(const char *backup, IDedupReadFileCallback **store, IDedupBackupSupport **bs)
{
    HRESULT hr = ddp_backupstore_open(backup, store);
    if (FAILED(hr)) {
        fprintf(stderr, "s3rules: opening %s: %s\n", backup, ddp_error_detail());
        return 2;
    }
    if (FAILED(DedupCreateBackupSupport(bs))) {
        IDedupReadFileCallback_Release(*store);
        return 2;
    }
    return 0;
}

static int extract(const char *backup, const char *dir, int n, char **rel, char ***local)
{
    ddp_extract x;
    HRESULT hr = ddp_backup_extract(backup, (size_t)n, rel, dir, DDP_EXISTING_OVERWRITE, &x);
    int bad = FAILED(hr);
    if (bad) fprintf(stderr, "s3rules: extracting from %s: 0x%08X %s\n", backup, (unsigned)hr, ddp_error_detail());
    for (size_t i = 0; i < x.n; i++)
        if (x.items[i].staged) ddp_backup_extract_place(&x, i, S_OK);
    if (FAILED(ddp_backup_extract_finish(&x))) bad = 1;
    for (size_t i = 0; i < x.n; i++) {
        if (FAILED(x.items[i].hr)) {
            fprintf(stderr, "s3rules: extracting %s: 0x%08X %s\n", x.items[i].path, (unsigned)x.items[i].hr,
                    x.items[i].detail);
            bad = 1;
        }
    }
    if (FAILED(ddp_backup_extract_close(&x))) bad = 1;
    *local = ddp_xcalloc((size_t)n, sizeof **local);
    for (int i = 0; i < n; i++) (*local)[i] = ddp_path_join(dir, rel[i]);
    return bad ? -1 : 0;
}

static int cmd_rules(const char *backup, const char *dir, int n, char **rel)
{
    char **local;
    if (extract(backup, dir, n, rel, &local) != 0) return 2;
    IDedupReadFileCallback *store;
    IDedupBackupSupport *bs;
    if (open_store(backup, &store, &bs) != 0) return 2;
    HRESULT hr;
    wrap w;

    /* R1 */
    wrap_init(&w, store);
    BSTR many[DDP_MAX_RESTORE_FILES + 1];
    for (unsigned i = 0; i <= DDP_MAX_RESTORE_FILES; i++) many[i] = local[0];
    HRESULT r1a = IDedupBackupSupport_RestoreFiles(bs, DDP_MAX_RESTORE_FILES + 1, many, &w.iface, DEDUP_RECONSTRUCT_UNOPTIMIZED, NULL);
    HRESULT r1b = IDedupBackupSupport_RestoreFiles(bs, 1, local, NULL, DEDUP_RECONSTRUCT_UNOPTIMIZED, NULL);
    HRESULT r1c = IDedupBackupSupport_RestoreFiles(bs, 1, local, &w.iface, DEDUP_RECONSTRUCT_OPTIMIZED, NULL);
    HRESULT r1d = IDedupBackupSupport_RestoreFiles(bs, 1, NULL, &w.iface, DEDUP_RECONSTRUCT_UNOPTIMIZED, NULL);
    HRESULT r1e = IDedupBackupSupport_RestoreFiles(bs, 0, NULL, &w.iface, DEDUP_RECONSTRUCT_UNOPTIMIZED, NULL);
    rule("R1", r1a == E_INVALIDARG && r1b == E_INVALIDARG && r1c == E_INVALIDARG && r1d == E_INVALIDARG && r1e == S_OK &&
                   w.calls == 0, "bad calls not refused, or a callback was called");
    wrap_free(&w);

    /* R2: FileResults NULL, on a copy of the first file */
    char *copy = ddp_xasprintf("%s.r2copy", local[0]);
    size_t sn;
    uint8_t *stub0 = slurp(local[0], &sn);
    if (stub0) ddp_write_file_atomic(copy, stub0, sn, 0644);
    wrap_init(&w, store);
    BSTR one[1] = { copy };
    HRESULT r2 = IDedupBackupSupport_RestoreFiles(bs, 1, one, &w.iface, DEDUP_RECONSTRUCT_UNOPTIMIZED, NULL);
    struct stat st;
    rule("R2", r2 == S_OK && stat(copy, &st) == 0 && (st.st_size != 232 || sn != 232), "FileResults NULL did not restore");
    wrap_free(&w);
    unlink(copy);
    free(copy);
    free(stub0);

    /* R8: one file alone reads little */
    char *r8copy = ddp_xasprintf("%s.r8copy", local[n - 1]);
    uint8_t *stubl = slurp(local[n - 1], &sn);
    if (stubl) ddp_write_file_atomic(r8copy, stubl, sn, 0644);
    free(stubl);
    wrap_init(&w, store);
    one[0] = r8copy;
    HRESULT r8r = S_OK;
    HRESULT r8 = IDedupBackupSupport_RestoreFiles(bs, 1, one, &w.iface, DEDUP_RECONSTRUCT_UNOPTIMIZED, &r8r);
    uint64_t fsize = stat(r8copy, &st) == 0 ? (uint64_t)st.st_size : 0;
    char why[256];
    snprintf(why, sizeof why, "restoring one file of %" PRIu64 " bytes read %" PRIu64 " bytes (0x%08X)", fsize, w.bytes,
             (unsigned)r8);
    rule("R8", r8 == S_OK && w.bytes <= fsize + (2u << 20), why);
    printf("R8: one file of %" PRIu64 " bytes: %" PRIu64 " bytes read from the store\n", fsize, w.bytes);
    wrap_free(&w);
    unlink(r8copy);
    free(r8copy);

    /* R6: a plan with an out-of-range index */
    wrap_init(&w, store);
    w.bad_plan = 1;
    HRESULT *res6 = ddp_xcalloc((size_t)n, sizeof *res6);
    HRESULT r6 = IDedupBackupSupport_RestoreFiles(bs, (ULONG)n, local, &w.iface, DEDUP_RECONSTRUCT_UNOPTIMIZED, res6);
    int all6 = r6 == E_INVALIDARG;
    for (int i = 0; i < n; i++) all6 = all6 && res6[i] == E_INVALIDARG;
    rule("R6", all6, "a bad plan was not refused with E_INVALIDARG for every file");
    free(res6);
    wrap_free(&w);

    /* the main call: every file plus a missing path, a plain file, a directory */
    char *missing = ddp_path_join(dir, "no-such-file");
    char *plain = ddp_path_join(dir, "plain-file.txt");
    ddp_write_file_atomic(plain, "plain\n", 6, 0644);
    char *dirp = ddp_xasprintf("%s/a-directory", dir);
    mkdir(dirp, 0755);
    BSTR *all = ddp_xcalloc((size_t)n + 3, sizeof *all);
    for (int i = 0; i < n; i++) all[i] = local[i];
    all[n] = missing;
    all[n + 1] = plain;
    all[n + 2] = dirp;
    HRESULT *res = ddp_xcalloc((size_t)n + 3, sizeof *res);
    wrap_init(&w, store);
    hr = IDedupBackupSupport_RestoreFiles(bs, (ULONG)n + 3, all, &w.iface, DEDUP_RECONSTRUCT_UNOPTIMIZED, res);
    wrap_finish(&w);
    if (w.pv_path && w.pv_next != w.pv_n) violation(&w, "R7: the last preview's reads were not all made");
    int r3 = res[n] == DDP_E_NOT_FOUND && res[n + 1] == S_FALSE && res[n + 2] == S_FALSE;
    for (int i = 0; i < n; i++) {
        if (res[i] != S_OK) fprintf(stderr, "s3rules: %s: 0x%08X\n", rel[i], (unsigned)res[i]);
        r3 = r3 && res[i] == S_OK;
    }
    rule("R3", r3, "a per-file result is not the documented one");
    rule("R4", hr == DDP_E_JOB_COMPLETED_PARTIAL_SUCCESS, "the call's result is not partial success");
    if (w.order_calls != 2) violation(&w, "R5: %d order calls, not 2", w.order_calls);
    report("R5", &w);
    report("R7", &w);
    report("R10", &w);
    printf("main call: %d callbacks, %zu container reads, %" PRIu64 " bytes\n", w.calls, w.nreads, w.bytes);
    wrap_free(&w);
    free(res);
    free(all);
    free(missing);
    free(plain);
    free(dirp);
    IDedupBackupSupport_Release(bs);
    IDedupReadFileCallback_Release(store);
    for (int i = 0; i < n; i++) free(local[i]);
    free(local);
    return failed_rules ? 1 : 0;
}

static int cmd_killat(const char *backup, const char *dir, long at, pid_t pid, int n, char **rel)
{
    char **local;
    if (extract(backup, dir, n, rel, &local) != 0) return 2;
    uint8_t **stubs = ddp_xcalloc((size_t)n, sizeof *stubs);
    size_t *sizes = ddp_xcalloc((size_t)n, sizeof *sizes);
    for (int i = 0; i < n; i++) stubs[i] = slurp(local[i], &sizes[i]);
    IDedupReadFileCallback *store;
    IDedupBackupSupport *bs;
    if (open_store(backup, &store, &bs) != 0) return 2;
    HRESULT hr;
    wrap w;
    wrap_init(&w, store);
    w.kill_after = at;
    w.kill_pid = pid;
    HRESULT *res = ddp_xcalloc((size_t)n, sizeof *res);
    hr = IDedupBackupSupport_RestoreFiles(bs, (ULONG)n, local, &w.iface, DEDUP_RECONSTRUCT_UNOPTIMIZED, res);
    printf("call: 0x%08X %s\n", (unsigned)hr, ddp_error_detail());
    int r9 = 1, nfailed = 0;
    for (int i = 0; i < n; i++) {
        printf("%s: 0x%08X %s\n", rel[i], (unsigned)res[i], ddp_strerror(res[i]));
        if (FAILED(res[i])) {
            nfailed++;
            size_t k;
            uint8_t *now = slurp(local[i], &k);
            if (!now || !stubs[i] || k != sizes[i] || memcmp(now, stubs[i], k) != 0) {
                printf("R9: %s failed but is not its stub any more\n", rel[i]);
                r9 = 0;
            }
            free(now);
        }
    }
    rule("R9", r9, "a failed file was changed");
    printf("failed: %d of %d\n", nfailed, n);
    free(res);
    wrap_free(&w);
    IDedupBackupSupport_Release(bs);
    IDedupReadFileCallback_Release(store);
    for (int i = 0; i < n; i++) {
        free(stubs[i]);
        free(local[i]);
    }
    free(stubs);
    free(sizes);
    free(local);
    return failed_rules ? 1 : 0;
}

static int cmd_read(const char *backup, const char *path, long long off, unsigned len)
{
    IDedupReadFileCallback *store;
    HRESULT hr = ddp_backupstore_open(backup, &store);
    if (FAILED(hr)) {
        printf("open: 0x%08X %s\n", (unsigned)hr, ddp_error_detail());
        return 1;
    }
    BYTE *buf = ddp_xmalloc(len ? len : 1);
    ULONG got = 0;
    hr = IDedupReadFileCallback_ReadBackupFile(store, (BSTR)path, off, len, buf, &got, 0);
    printf("0x%08X got %u %s\n", (unsigned)hr, got, FAILED(hr) ? ddp_error_detail() : "");
    free(buf);
    IDedupReadFileCallback_Release(store);
    return FAILED(hr) ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc >= 5 && !strcmp(argv[1], "rules")) return cmd_rules(argv[2], argv[3], argc - 4, argv + 4);
    if (argc >= 7 && !strcmp(argv[1], "killat"))
        return cmd_killat(argv[2], argv[3], strtol(argv[4], NULL, 10), (pid_t)strtol(argv[5], NULL, 10), argc - 6, argv + 6);
    if (argc == 6 && !strcmp(argv[1], "read")) return cmd_read(argv[2], argv[3], strtoll(argv[4], NULL, 10), (unsigned)strtoul(argv[5], NULL, 10));
    fprintf(stderr, "usage: s3rules rules BACKUP DIR FILE... | killat BACKUP DIR N PID FILE... | read BACKUP PATH OFF LEN\n");
    return 2;
}
