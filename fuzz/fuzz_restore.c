/*
 * fuzz_restore.c: libFuzzer target for the restore engine: RestoreFiles
 * (and the plan listing behind `ddp restore --list-containers`) driven by
 * an IDedupReadFileCallback that serves a fuzzed backup store.
 *
 * The input is a whole hostile backup: the stubs to restore and every file
 * of the store, in a small tag-length-value form (fuzz/make-corpus.sh writes
 * seeds of it from a real volume):
 *
 *   u8 flags, then records until the end:
 *     u8 tag (low 2 bits): 0 stub   u32 len, bytes: a local file to restore
 *                          1 file   u16 namelen, name, u32 len, bytes: a
 *                                   file of the store ("/.ddp/...")
 *                          2 plan   u32 len, bytes: the answer to the next
 *                                   OrderContainersRestore, 20 bytes per
 *                                   extent (u32 index, i64 start, i64 length)
 *                          3 fault  u32 len, bytes: u32 call number, u32
 *                                   HRESULT that callback call returns
 *   flags: bit 0 fix-up: recompute the checksums of the identity, the
 *                catalog, every container header and record, and the MAC
 *                of every stub under the identity's key, so the fuzzer
 *                reaches the engine behind them
 *          bit 1 a read past the end of a file succeeds short (else
 *                HRESULT_FROM_WIN32(ERROR_HANDLE_EOF))
 *          bit 2 a lying store: full reads report one byte more than asked,
 *                short reads report all bytes asked (the rest is garbage)
 *          bit 3 also restore a symlink that points outside the targets
 *          bit 4 also restore a directory and a missing path
 *          bit 5 name the first stub twice (through "./")
 *          bit 6 the plan listing instead of RestoreFiles
 *
 * Checked, for every input (the rules of SPEC-backup-api.md):
 *   - the call's result and every file's result are codes the contract
 *     allows (no E_FAIL, no DDP_E_UNEXPECTED unless the store lied);
 *   - R10: nothing is created, left behind or changed outside the target
 *     paths: the target directory holds exactly the files it held before
 *     (no temporary files), the symlink and the file it points to are
 *     untouched; a failed file is left byte for byte as it was (R9); a
 *     restored one has the size its stub names;
 *   - R7: every read is at most 4 MiB, each container read was announced
 *     by the preview before it, in order, and no container byte is read
 *     twice; previews go forward without overlap;
 *   - R5: no container path twice in one OrderContainersRestore list;
 *   - callbacks come on the calling thread, with well-formed paths.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sys/stat.h>

#include <ddp/ddpbackup.h>

#include "catalog.h"
#include "fuzz_common.h"
#include "identity.h"
#include "restore.h"
#include "stub.h"

#define MAX_STUBS 8
#define MAX_FILES 64
#define MAX_PLANS 4
#define MAX_FAULTS 4
#define MAX_PLAN_ENTRIES 4096
#define READ_LIMIT ((uint64_t)4 << 20)

typedef struct store_file {
    char *name;
    uint8_t *data;
    size_t len;
} store_file;

typedef struct fault {
    uint32_t call;
    HRESULT hr;
} fault;

/* Byte ranges read from one container in this call. */
typedef struct read_log {
    char *path;
    uint64_t *a, *b;
    size_t n, cap;
} read_log;

typedef struct fz_store {
    IDedupReadFileCallback iface; /* first: the COM layout */
    uint8_t flags;
    store_file files[MAX_FILES];
    size_t nfiles;
    const uint8_t *plans[MAX_PLANS];
    size_t plan_len[MAX_PLANS];
    size_t nplans, next_plan;
    fault faults[MAX_FAULTS];
    size_t nfaults;
    HRESULT injected[MAX_FAULTS];
    size_t ninjected;
    uint32_t calls;
    pthread_t thread;
    /* the last preview */
    char *pv_path;
    DDP_FILE_EXTENT *pv;
    size_t pv_n, pv_next;
    read_log logs[32];
    size_t nlogs;
} fz_store;

static char workdir[256], targets[300], canary[300];
static const uint8_t canary_bytes[] = "canary: restore must never write here\n";

/* ---- checks on callback arguments ---- */

static void check_store_path(const char *p)
{
    FZ_CHECK(p != NULL);
    size_t n = strnlen(p, 4097);
    FZ_CHECK(n >= 2 && n <= 4096 && p[0] == '/');
    FZ_CHECK(strstr(p, "//") == NULL && strstr(p, "/../") == NULL && strstr(p, "/./") == NULL);
    FZ_CHECK(!(n >= 3 && strcmp(p + n - 3, "/..") == 0));
    FZ_CHECK(p[n - 1] != '/');
}

static int is_container_path(const char *p)
{
    return strncmp(p, "/.ddp/ChunkStore/", 17) == 0 &&
           (strstr(p, ".ddp/Data/") || strstr(p, ".ddp/Stream/") || strstr(p, ".ddp/Hotspot/"));
}

static void log_read(fz_store *s, const char *path, uint64_t a, uint64_t b)
{
    read_log *l = NULL;
    for (size_t i = 0; i < s->nlogs; i++)
        if (strcmp(s->logs[i].path, path) == 0) l = &s->logs[i];
    if (!l) {
        if (s->nlogs == sizeof s->logs / sizeof s->logs[0]) return;
        l = &s->logs[s->nlogs++];
        memset(l, 0, sizeof *l);
        l->path = ddp_strdup(path);
    }
    for (size_t i = 0; i < l->n; i++) FZ_CHECK(b <= l->a[i] || a >= l->b[i]); /* no byte read twice */
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->a = ddp_xrealloc(l->a, l->cap * sizeof *l->a);
        l->b = ddp_xrealloc(l->b, l->cap * sizeof *l->b);
    }
    l->a[l->n] = a;
    l->b[l->n] = b;
    l->n++;
}

static HRESULT next_fault(fz_store *s, int *hit)
{
    uint32_t call = s->calls++;
    *hit = 0;
    for (size_t i = 0; i < s->nfaults; i++) {
        if (s->faults[i].call == call) {
            *hit = 1;
            if (s->ninjected < MAX_FAULTS) s->injected[s->ninjected++] = s->faults[i].hr;
            return s->faults[i].hr;
        }
    }
    return S_OK;
}

/* ---- the callback ---- */

static HRESULT st_query(IDedupReadFileCallback *This, REFIID riid, void **ppv)
{
    if (!ppv) return E_POINTER;
    if (IsEqualIID(riid, &IID_IUnknown) || IsEqualIID(riid, &IID_IDedupReadFileCallback)) {
        *ppv = This;
        return S_OK;
    }
    *ppv = NULL;
    return E_NOINTERFACE;
}
static ULONG st_addref(IDedupReadFileCallback *This) { (void)This; return 2; }
static ULONG st_release(IDedupReadFileCallback *This) { (void)This; return 1; }

static HRESULT st_read(IDedupReadFileCallback *This, BSTR path, LONGLONG off, ULONG n, BYTE *buf, ULONG *got,
                       DWORD flags)
{
    fz_store *s = (fz_store *)This;
    FZ_CHECK(pthread_equal(pthread_self(), s->thread));
    check_store_path(path);
    FZ_CHECK(off >= 0 && buf != NULL && got != NULL && flags == 0);
    FZ_CHECK(n <= READ_LIMIT);
    if (is_container_path(path)) {
        /* R7: this read is the next one (or a later one) the preview announced. */
        FZ_CHECK(s->pv_path && strcmp(s->pv_path, path) == 0);
        size_t k = s->pv_next;
        while (k < s->pv_n && !(s->pv[k].Offset == off && s->pv[k].Length == (LONGLONG)n)) k++;
        FZ_CHECK(k < s->pv_n);
        s->pv_next = k + 1;
        log_read(s, path, (uint64_t)off, (uint64_t)off + n);
    }
    int hit;
    HRESULT inj = next_fault(s, &hit);
    if (hit && FAILED(inj)) return inj;

    const store_file *f = NULL;
    for (size_t i = 0; i < s->nfiles; i++)
        if (strcmp(s->files[i].name, path) == 0) f = &s->files[i];
    if (!f) return HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND);
    uint64_t avail = (uint64_t)off >= f->len ? 0 : f->len - (uint64_t)off;
    if (avail == 0 && n > 0 && !(s->flags & 2)) return HRESULT_FROM_WIN32(ERROR_HANDLE_EOF);
    size_t k = avail < n ? (size_t)avail : n;
    if (k) memcpy(buf, f->data + off, k);
    *got = (ULONG)k;
    if (s->flags & 4) {
        if (k < n) memset(buf + k, 0xEE, n - k);
        *got = k < n ? n : n + 1;
    }
    return hit ? inj : S_OK;
}

static HRESULT st_order(IDedupReadFileCallback *This, ULONG n, BSTR *paths, ULONG *entries,
                        DEDUP_CONTAINER_EXTENT **plan)
{
    fz_store *s = (fz_store *)This;
    FZ_CHECK(pthread_equal(pthread_self(), s->thread));
    FZ_CHECK(entries != NULL && plan != NULL);
    FZ_CHECK(n == 0 || paths != NULL);
    for (ULONG i = 0; i < n; i++) {
        check_store_path(paths[i]);
        FZ_CHECK(is_container_path(paths[i]));
        for (ULONG j = 0; j < i; j++) FZ_CHECK(strcmp(paths[i], paths[j]) != 0); /* R5 */
    }
    *entries = 0;
    *plan = NULL;
    int hit;
    HRESULT inj = next_fault(s, &hit);
    if (hit && FAILED(inj)) return inj;
    if (s->next_plan < s->nplans) {
        const uint8_t *p = s->plans[s->next_plan];
        size_t k = s->plan_len[s->next_plan] / 20;
        s->next_plan++;
        if (k > MAX_PLAN_ENTRIES) k = MAX_PLAN_ENTRIES;
        if (k > 0) {
            DEDUP_CONTAINER_EXTENT *x = malloc(k * sizeof *x);
            if (!x) abort();
            for (size_t i = 0; i < k; i++, p += 20) {
                x[i].ContainerIndex = ddp_get_le32(p);
                x[i].StartOffset = (LONGLONG)ddp_get_le64(p + 4);
                x[i].Length = (LONGLONG)ddp_get_le64(p + 12);
            }
            *plan = x;
            *entries = (ULONG)k;
        }
    }
    return hit ? inj : S_OK;
}

static HRESULT st_preview(IDedupReadFileCallback *This, BSTR path, ULONG n, DDP_FILE_EXTENT *reads)
{
    fz_store *s = (fz_store *)This;
    FZ_CHECK(pthread_equal(pthread_self(), s->thread));
    check_store_path(path);
    FZ_CHECK(is_container_path(path));
    FZ_CHECK(n > 0 && reads != NULL);
    for (ULONG i = 0; i < n; i++) {
        FZ_CHECK(reads[i].Offset >= 0 && reads[i].Length > 0 && (uint64_t)reads[i].Length <= READ_LIMIT);
        FZ_CHECK(reads[i].Offset <= INT64_MAX - reads[i].Length);
        if (i > 0) FZ_CHECK(reads[i].Offset >= reads[i - 1].Offset + reads[i - 1].Length); /* forward */
    }
    free(s->pv_path);
    free(s->pv);
    s->pv_path = ddp_strdup(path);
    s->pv = ddp_xmalloc((size_t)n * sizeof *reads);
    memcpy(s->pv, reads, (size_t)n * sizeof *reads);
    s->pv_n = n;
    s->pv_next = 0;
    int hit;
    return next_fault(s, &hit); /* advisory: any answer must do */
}

static const IDedupReadFileCallbackVtbl st_vtbl = { st_query, st_addref, st_release, st_read, st_order,
                                                    st_preview };

/* ---- set-up ---- */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    snprintf(workdir, sizeof workdir, "%s/ddp-fuzz-restore.%ld", base, (long)getpid());
    snprintf(targets, sizeof targets, "%s/t", workdir);
    snprintf(canary, sizeof canary, "%s/canary", workdir);
    if (mkdir(workdir, 0700) != 0 && errno != EEXIST) abort();
    if (mkdir(targets, 0700) != 0 && errno != EEXIST) abort();
    tu_write(canary, canary_bytes, sizeof canary_bytes - 1);
    return 0;
}
