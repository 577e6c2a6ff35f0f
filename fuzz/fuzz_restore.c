/* SPDX-License-Identifier: MIT */
/*
 * fuzz_restore.c: libFuzzer target for the restore engine: RestoreFiles
 * (and the plan listing behind `ddp restore --list-containers`) driven by
 * an IDedupReadFileCallback that serves a fuzzed backup store.
 *
 * The input is a whole hostile backup: the stubs to restore (ddp's, or
 * Windows reparse files, which begin with the tag 0x80000013) and every
 * file of the store (ddp's "/.ddp/..." or Windows' "/System Volume
 * Information/Dedup/ChunkStore/{GUID}.ddp/{Stream,Data}/..."), in a small tag-length-value form (fuzz/make-corpus.sh writes
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
 *                catalog, every ddp container header and record, the MAC
 *                of every stub under the identity's key, and the CRC-32
 *                trailer of every Windows reparse file, so the fuzzer
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
 *
 * DDP_FUZZ_VERBOSE=1 prints each call's results (to read a seed or a crash).
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sys/stat.h>

#include <ddp/ddpbackup.h>

#include "store/catalog.h"
#include "fuzz_common.h"
#include "store/identity.h"
#include "restore/restore.h"
#include "store/stub.h"
#include "windows/crc.h"
#include "windows/reparse.h"

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

static int is_ddp_container_path(const char *p)
{
    return strncmp(p, "/.ddp/ChunkStore/", 17) == 0 &&
           (strstr(p, ".ddp/Data/") || strstr(p, ".ddp/Stream/") || strstr(p, ".ddp/Hotspot/"));
}

#define WIN_STORE "/System Volume Information/Dedup/ChunkStore/"

/* ddp's containers, or Windows' (reached from Windows reparse points). */
static int is_container_path(const char *p)
{
    return is_ddp_container_path(p) ||
           (strncmp(p, WIN_STORE, strlen(WIN_STORE)) == 0 && (strstr(p, ".ddp/Data/") || strstr(p, ".ddp/Stream/")));
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

/* ---- local files ---- */

static void write_file(const char *path, const uint8_t *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (n && fwrite(data, 1, n, f) != n) abort();
    if (fclose(f) != 0) abort();
}

/* 1 when path is a regular file holding exactly data[0..n). */
static int file_is(const char *path, const uint8_t *data, size_t n)
{
    struct stat st;
    if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != n) return 0;
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) abort();
    int same = fread(buf, 1, n, f) == n && (n == 0 || memcmp(buf, data, n) == 0);
    fclose(f);
    free(buf);
    return same;
}

static void remove_workdir(void)
{
    DIR *d = opendir(targets);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2]))) continue;
            char *p = ddp_path_join(targets, e->d_name);
            if (unlink(p) != 0) rmdir(p);
            free(p);
        }
        closedir(d);
    }
    rmdir(targets);
    unlink(canary);
    rmdir(workdir);
}

/* ---- set-up ---- */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : tmp;
    snprintf(workdir, sizeof workdir, "%s/ddp-fuzz-restore.%ld", base, (long)getpid());
    snprintf(targets, sizeof targets, "%s/t", workdir);
    snprintf(canary, sizeof canary, "%s/canary", workdir);
    if (mkdir(workdir, 0700) != 0 && errno != EEXIST) abort();
    if (mkdir(targets, 0700) != 0 && errno != EEXIST) abort();
    write_file(canary, canary_bytes, sizeof canary_bytes - 1);
    atexit(remove_workdir);
    return 0;
}

/* ---- fix-up ---- */

static void fix_up(fz_store *s, uint8_t **stubs, const size_t *stub_len, size_t nstubs)
{
    ddp_identity id;
    int have_key = 0;
    for (size_t i = 0; i < s->nfiles; i++) {
        store_file *f = &s->files[i];
        if (strcmp(f->name, "/.ddp/Settings/identity") == 0 && f->len == DDP_IDENTITY_SIZE) {
            fz_fix_checksum(f->data, 64, 64);
            have_key = SUCCEEDED(ddp_identity_decode(f->data, f->len, &id));
        } else if (f->len >= 40 && strlen(f->name) > 8 && strcmp(f->name + strlen(f->name) - 8, "/catalog") == 0) {
            fz_fix_checksum(f->data, f->len - 8, f->len - 8);
        } else if (is_ddp_container_path(f->name)) {
            fz_fix_container(f->data, f->len);
        }
    }
    /* Windows reparse files: the CRC-32 trailer over the data. */
    for (size_t i = 0; i < nstubs; i++) {
        if (!ddp_win_reparse_has_tag(stubs[i], stub_len[i]) || stub_len[i] < 12) continue;
        size_t dlen = ddp_get_le16(stubs[i] + 4);
        if (dlen < 8 || 8 + dlen > stub_len[i]) continue;
        ddp_put_le32(stubs[i] + 8 + dlen - 4, ddp_win_crc32(stubs[i] + 8, dlen - 4));
    }
    if (!have_key) return;
    for (size_t i = 0; i < nstubs; i++)
        if (stub_len[i] == DDP_STUB_SIZE) ddp_hmac_sha256(id.key, DDP_KEY_SIZE, stubs[i], 200, stubs[i] + 200);
}

/* ---- results ---- */

static int allowed(const fz_store *s, HRESULT hr)
{
    if (hr == S_OK || hr == S_FALSE || hr == DDP_E_NOT_FOUND || hr == DDP_E_INVALID_DATA ||
        hr == DDP_E_PATH_NOT_FOUND || hr == DDP_E_FILE_CORRUPT || hr == E_INVALIDARG ||
        hr == DDP_E_UNSUPPORTED_VERSION)
        return 1;
    if (hr == DDP_E_UNEXPECTED && (s->flags & 4)) return 1; /* the store lied about a read */
    for (size_t i = 0; i < s->ninjected; i++)
        if (hr == s->injected[i]) return 1;
    return 0;
}

static void on_emit(void *ctx, int kind, const char *path, uint64_t offset, uint64_t length)
{
    (void)ctx;
    FZ_CHECK(kind == DDP_KIND_STREAM || kind == DDP_KIND_DATA);
    check_store_path(path);
    FZ_CHECK(is_container_path(path));
    FZ_CHECK(length > 0 && offset <= (uint64_t)INT64_MAX && length <= (uint64_t)INT64_MAX - offset);
}

enum { P_STUB, P_LINK, P_DIR, P_MISSING, P_ALIAS };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    static fz_store s;
    memset(&s, 0, sizeof s);
    s.iface.lpVtbl = &st_vtbl;
    s.thread = pthread_self();
    fz_in in = { data, size };
    s.flags = fz_u8(&in);

    uint8_t *stubs[MAX_STUBS];
    size_t stub_len[MAX_STUBS], nstubs = 0;
    while (in.n > 0) {
        uint8_t tag = fz_u8(&in) & 3;
        char *name = NULL;
        if (tag == 1) {
            size_t nl;
            const uint8_t *np = fz_take(&in, fz_u16(&in), &nl);
            name = ddp_xmalloc(nl + 1);
            memcpy(name, np, nl);
            name[nl] = '\0'; /* a NUL inside ends the name early: still a name */
        }
        size_t len;
        const uint8_t *p = fz_take(&in, fz_u32(&in), &len);
        if (tag == 0 && nstubs < MAX_STUBS) {
            stubs[nstubs] = fz_dup(p, len);
            stub_len[nstubs++] = len;
        } else if (tag == 1 && s.nfiles < MAX_FILES) {
            s.files[s.nfiles].name = name;
            s.files[s.nfiles].data = fz_dup(p, len);
            s.files[s.nfiles++].len = len;
            name = NULL;
        } else if (tag == 2 && s.nplans < MAX_PLANS) {
            s.plans[s.nplans] = p;
            s.plan_len[s.nplans++] = len;
        } else if (tag == 3 && s.nfaults < MAX_FAULTS && len >= 8) {
            s.faults[s.nfaults].call = ddp_get_le32(p);
            s.faults[s.nfaults++].hr = (HRESULT)ddp_get_le32(p + 4);
        }
        free(name);
    }
    if (s.flags & 1) fix_up(&s, stubs, stub_len, nstubs);

    /* The targets. */
    char *paths[MAX_STUBS + 4];
    int kind[MAX_STUBS + 4];
    size_t which[MAX_STUBS + 4];
    ULONG n = 0;
    for (size_t i = 0; i < nstubs; i++) {
        paths[n] = ddp_xasprintf("%s/f%zu", targets, i);
        write_file(paths[n], stubs[i], stub_len[i]);
        kind[n] = P_STUB;
        which[n++] = i;
    }
    if (s.flags & 8) {
        paths[n] = ddp_xasprintf("%s/link", targets);
        if (symlink(canary, paths[n]) != 0) abort();
        kind[n++] = P_LINK;
    }
    if (s.flags & 16) {
        paths[n] = ddp_xasprintf("%s/dir", targets);
        if (mkdir(paths[n], 0700) != 0) abort();
        kind[n++] = P_DIR;
        paths[n] = ddp_xasprintf("%s/missing", targets);
        kind[n++] = P_MISSING;
    }
    if ((s.flags & 32) && nstubs > 0) {
        paths[n] = ddp_xasprintf("%s/./f0", targets);
        kind[n] = P_ALIAS;
        which[n++] = 0;
    }

    HRESULT results[MAX_STUBS + 4];
    for (ULONG i = 0; i < n; i++) results[i] = (HRESULT)0x7EADBEEF;
    ddp_clear_error();
    HRESULT hr;
    int planning = (s.flags & 64) != 0;
    if (planning) {
        hr = ddp_restore_plan_list(n, paths, &s.iface, on_emit, NULL, results);
    } else {
        IDedupBackupSupport *bs = NULL;
        FZ_CHECK(DedupCreateBackupSupport(&bs) == S_OK);
        hr = IDedupBackupSupport_RestoreFiles(bs, n, paths, &s.iface, DEDUP_RECONSTRUCT_UNOPTIMIZED, results);
        IDedupBackupSupport_Release(bs);
    }

    if (getenv("DDP_FUZZ_VERBOSE")) {
        fprintf(stderr, "restore: 0x%08X (%s)\n", (unsigned)hr, ddp_error_detail());
        for (ULONG i = 0; i < n; i++) fprintf(stderr, "  %s: 0x%08X\n", paths[i], (unsigned)results[i]);
    }

    /* R2-R4: a result per file, and the call's result from them. */
    ULONG restored = 0, failed = 0;
    HRESULT first = S_OK;
    for (ULONG i = 0; i < n; i++) {
        FZ_CHECK(allowed(&s, results[i]));
        if (results[i] == S_OK) restored++;
        if (FAILED(results[i]) && failed++ == 0) first = results[i];
    }
    if (failed == 0) FZ_CHECK(hr == S_OK);
    else if (restored > 0) FZ_CHECK(hr == DDP_E_JOB_COMPLETED_PARTIAL_SUCCESS);
    else FZ_CHECK(hr == first);
    FZ_CHECK_DETAIL(hr);

    /* R9, R10: what is on disk now. */
    for (ULONG i = 0; i < n; i++) {
        struct stat st;
        switch (kind[i]) {
        case P_STUB:
        case P_ALIAS: {
            size_t k = which[i];
            if (kind[i] == P_ALIAS) FZ_CHECK(results[i] == results[0]);
            if (results[i] == S_OK && !planning) {
                uint64_t want_size;
                ddp_stub stub;
                static ddp_win_reparse rp;
                if (ddp_win_reparse_has_tag(stubs[k], stub_len[k])) {
                    FZ_CHECK(ddp_win_reparse_parse(stubs[k], stub_len[k], &rp) == S_OK);
                    want_size = rp.file_size;
                } else {
                    FZ_CHECK(ddp_stub_peek(stubs[k], stub_len[k], &stub) == S_OK);
                    want_size = stub.file_size;
                }
                FZ_CHECK(lstat(paths[i], &st) == 0 && S_ISREG(st.st_mode));
                FZ_CHECK((uint64_t)st.st_size == want_size);
            } else {
                FZ_CHECK(file_is(paths[i], stubs[k], stub_len[k]));
            }
            break;
        }
        case P_LINK: {
            FZ_CHECK(results[i] == S_FALSE);
            char t[512];
            ssize_t l = readlink(paths[i], t, sizeof t - 1);
            FZ_CHECK(l > 0);
            t[l] = '\0';
            FZ_CHECK(strcmp(t, canary) == 0);
            break;
        }
        case P_DIR:
            FZ_CHECK(results[i] == S_FALSE);
            FZ_CHECK(lstat(paths[i], &st) == 0 && S_ISDIR(st.st_mode));
            break;
        case P_MISSING:
            FZ_CHECK(results[i] == DDP_E_NOT_FOUND);
            FZ_CHECK(lstat(paths[i], &st) != 0);
            break;
        default:
            break;
        }
    }
    FZ_CHECK(file_is(canary, canary_bytes, sizeof canary_bytes - 1));

    /* Remove what we made; anything left over was made by the engine. */
    for (ULONG i = 0; i < n; i++) {
        if (kind[i] == P_DIR) FZ_CHECK(rmdir(paths[i]) == 0);
        else if (kind[i] != P_MISSING && kind[i] != P_ALIAS) FZ_CHECK(unlink(paths[i]) == 0);
        free(paths[i]);
    }
    DIR *d = opendir(targets);
    FZ_CHECK(d != NULL);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2]))) continue;
        fprintf(stderr, "left behind in the target directory: %s\n", e->d_name);
        FZ_CHECK(!"the restore left a file behind");
    }
    closedir(d);

    for (size_t i = 0; i < nstubs; i++) free(stubs[i]);
    for (size_t i = 0; i < s.nfiles; i++) {
        free(s.files[i].name);
        free(s.files[i].data);
    }
    for (size_t i = 0; i < s.nlogs; i++) {
        free(s.logs[i].path);
        free(s.logs[i].a);
        free(s.logs[i].b);
    }
    free(s.pv_path);
    free(s.pv);
    return 0;
}
