/* SPDX-License-Identifier: MIT */
/*
 * restore.c: IDedupBackupSupport::RestoreFiles (ddp_restore_files) and its
 * planning step on its own (ddp_restore_plan_list). The rules R1-R10 are
 * those of the backup-support contract (SPEC-backup-api.md); this file is
 * the "what": arguments, the files, the two phases, and the results. What a
 * stub, a stream map or a chunk is belongs to the on-disk formats behind
 * rsformat.h (ddp's own: rsformat_ddp.c); the reading is in restore_plan.c,
 * the writing in restore_write.c.
 *
 * A restore, step by step:
 *
 *  1. Arguments (R1): more than 10,000 files, no store, flags other than
 *     DEDUP_RECONSTRUCT_UNOPTIMIZED, or no path array for files to restore:
 *     E_INVALIDARG before any callback (FileResults is left alone then).
 *     No files: S_OK.
 *  2. Each path is examined without following symlinks (lstat, then the
 *     directory is opened and the name opened O_NOFOLLOW beneath it): none
 *     -> DDP_E_NOT_FOUND; not a regular file, or a regular file that no
 *     format recognises from its first bytes and size -> S_FALSE; recognised
 *     but not well-formed -> DDP_E_INVALID_DATA. At most RS_STUB_MAX bytes of
 *     a file are read. The stub's stat (owner, mode, times, identity of the
 *     inode) is kept for the end. The same directory entry named twice is
 *     restored once; the later names share the first one's result.
 *  3. Each format that has files reads its metadata through the callback
 *     (ddp: identity and catalog) and checks its stubs against it; a stub
 *     that passes is "valid". The format names the stream-map record each
 *     valid file needs. No byte read from a stub or the store ever becomes
 *     a local path (R10): container paths are the formats' business and are
 *     only ever handed to the callback.
 *  4. Phase 1, stream maps: OrderContainersRestore with the stream-map
 *     containers, then the reads (restore_plan.c); each record goes to its
 *     format, which maps the file (knows its chunks) or fails it. A format
 *     may ask for further records (a redirection table, then the record it
 *     points to): up to RS_MAX_ROUNDS rounds, the later ones read after the
 *     plan (R6: bytes no extent covers), previewed, never a byte twice.
 *     In both phases, a container with a prelude (ddp: a compacted
 *     container's header, then its redirection table) has it read first,
 *     inside the plan like any container read, and its records placed by
 *     it (restore_plan.c).
 *  5. Phase 2, chunks: a temporary file beside each mapped stub (so a
 *     target that cannot be written fails before its data is read), then
 *     OrderContainersRestore with the data containers, then the reads. Each
 *     chunk record goes to its format, which checks and decodes it once and
 *     writes it to every (file, offset) that uses it: a chunk shared by
 *     files, or repeated in one, is read once.
 *  6. A file whose last chunk is written is finished at once
 *     (restore_write.c): every chunk written, the format's last check (ddp:
 *     the whole-file hash), the size, synced, the stub's owner, mode, times
 *     and xattrs carried over, the stub checked unchanged, renamed over it.
 *
 * R5: whenever at least one stub is valid, OrderContainersRestore is called
 * twice, stream-map containers first, even when a list is empty because
 * every file failed before it (then with 0 containers) - unless the first
 * call ended the restore (R6). R6: an invalid plan entry ends the call;
 * every file still pending gets E_INVALIDARG, files already restored or
 * failed keep their result. R4: S_OK when no file failed (S_FALSE is not a
 * failure), DDP_E_JOB_COMPLETED_PARTIAL_SUCCESS when some were restored and
 * some failed, else the first failure in FileFullPaths order; the detail
 * message (ddp_error_detail) names that first failed file and its problem.
 *
 * Memory (R10): per file a few hundred bytes plus its format's state (ddp:
 * after phase 1, its stream map as an array of 56-byte entries plus 8 bytes
 * of offset per chunk: a 10 GiB file of 64 KiB chunks has 163,840 chunks,
 * its map is about 9 MB, plus 1.3 MB of offsets), one bit per chunk, and 32
 * bytes per chunk use while phase 2 runs; reads of at most 4 MiB, and a
 * record buffered only while it straddles reads; never a whole file or a
 * whole container. Callbacks are made on the calling thread, one at a time.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "restore/restore.h"
#include "restore/restore_internal.h"
#include "restore/rsformat.h"

/* Bytes read from each regular file to see whether a format claims it. */
#define RS_STUB_PEEK 128u

const rs_format *const rs_formats[] = { &rs_format_ddp, &rs_format_windows };
const uint32_t rs_nformats = sizeof rs_formats / sizeof rs_formats[0];

int rs_file_pending(const rs_ctx *c, uint32_t i)
{
    return c->files[i].state == RS_PENDING;
}

static const char *display(const rs_file *f)
{
    return f->path ? f->path : "(null path)";
}

static void file_release(rs_ctx *c, uint32_t i)
{
    rs_file *f = &c->files[i];
    if (f->fs) rs_formats[f->fmt]->file_release(c, i);
    free(f->filled);
    f->filled = NULL;
}

void rs_file_fail(rs_ctx *c, uint32_t i, HRESULT hr)
{
    rs_file *f = &c->files[i];
    if (f->state != RS_PENDING) return;
    char why[1024];
    snprintf(why, sizeof why, "%s", ddp_error_detail());
    f->state = RS_FAILED;
    f->result = hr;
    if (i < c->detail_file) {
        c->detail_file = i;
        snprintf(c->detail, sizeof c->detail, "%s: %s", display(f), why);
    }
    if (c->writing) rs_temp_discard(c, i);
    file_release(c, i);
    /* Leave the reason in place for the caller's next file. */
    ddp_fail(hr, "%s", why);
}

void rs_fail_format(rs_ctx *c, uint32_t fmt, HRESULT hr)
{
    char why[1024];
    snprintf(why, sizeof why, "%s", ddp_error_detail());
    for (uint32_t i = 0; i < c->n; i++) {
        if (c->files[i].fmt != fmt) continue;
        ddp_fail(hr, "%s", why);
        rs_file_fail(c, i, hr);
    }
    ddp_fail(hr, "%s", why);
}

void rs_file_need(rs_ctx *c, uint32_t i, uint64_t local_key, uint64_t off, uint32_t len, uint32_t tag)
{
    if (c->nneeds == c->needs_cap) {
        c->needs_cap = c->needs_cap ? c->needs_cap * 2 : 64;
        c->needs = ddp_xrealloc(c->needs, c->needs_cap * sizeof *c->needs);
    }
    rs_use *u = &c->needs[c->nneeds++];
    u->cont = RS_KEY(c->files[i].fmt, local_key);
    u->off = off;
    u->len = len;
    u->file = i;
    u->entry = tag;
}

void rs_file_mapped(rs_ctx *c, uint32_t i, uint32_t nchunks)
{
    rs_file *f = &c->files[i];
    f->mapped = 1;
    f->nchunks = nchunks;
    free(f->filled);
    f->filled = ddp_xcalloc((size_t)nchunks / 8 + 1, 1);
    f->remaining = nchunks;
}

static void skip_file(rs_file *f)
{
    f->state = RS_SKIPPED;
    f->result = S_FALSE;
}

/* ======================================================================
 * Step 2: the files
 * ====================================================================== */

/* Split f->path into directory and name. */
static void split_path(rs_file *f)
{
    const char *p = f->path;
    const char *slash = strrchr(p, '/');
    if (!slash) {
        f->dir = ddp_strdup(".");
        f->base = ddp_strdup(p);
    } else if (slash == p) {
        f->dir = ddp_strdup("/");
        f->base = ddp_strdup(p + 1);
    } else {
        f->dir = ddp_xasprintf("%.*s", (int)(slash - p), p);
        f->base = ddp_strdup(slash + 1);
    }
}

/* The stub in the open file fd: which format's, and what it says. */
static HRESULT examine_content(rs_ctx *c, uint32_t i, int fd)
{
    rs_file *f = &c->files[i];
    uint64_t size = (uint64_t)f->st.st_size;
    uint8_t head[RS_STUB_PEEK];
    size_t n = size < RS_STUB_PEEK ? (size_t)size : RS_STUB_PEEK;
    if (n == 0) {
        skip_file(f);
        return S_OK;
    }
    HRESULT hr = ddp_pread_exact(fd, head, n, 0, f->path);
    if (FAILED(hr)) return hr;
    uint32_t fmt = 0;
    while (fmt < rs_nformats && !rs_formats[fmt]->recognise(head, n, size)) fmt++;
    if (fmt == rs_nformats) {
        skip_file(f); /* an ordinary file that is not a stub */
        return S_OK;
    }
    f->fmt = fmt;
    size_t whole = size < RS_STUB_MAX ? (size_t)size : RS_STUB_MAX;
    uint8_t *buf = ddp_xmalloc(whole);
    hr = ddp_pread_exact(fd, buf, whole, 0, f->path);
    if (SUCCEEDED(hr)) hr = rs_formats[fmt]->parse(c, i, buf, whole, size);
    free(buf);
    return hr;
}

/* Examine path i; on success the file is pending with its stub parsed. */
static void examine(rs_ctx *c, uint32_t i)
{
    rs_file *f = &c->files[i];
    f->state = RS_PENDING;
    f->slot = -1;
    if (!f->path) {
        rs_file_fail(c, i, ddp_fail(E_INVALIDARG, "the path is NULL"));
        return;
    }
    struct stat lst;
    if (lstat(f->path, &lst) != 0) {
        int err = errno;
        if (err == ENOENT || err == ENOTDIR)
            rs_file_fail(c, i, ddp_fail(DDP_E_NOT_FOUND, "no such file"));
        else
            rs_file_fail(c, i, ddp_fail_errno(err, "examining the file"));
        return;
    }
    if (!S_ISREG(lst.st_mode)) { /* directory, symlink (not followed), device, ... */
        skip_file(f);
        return;
    }
    split_path(f);
    int dfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        rs_file_fail(c, i, ddp_fail_errno(errno, "opening its directory"));
        return;
    }
    struct stat dst;
    if (fstat(dfd, &dst) != 0) {
        rs_file_fail(c, i, ddp_fail_errno(errno, "examining its directory"));
        close(dfd);
        return;
    }
    f->dir_dev = dst.st_dev;
    f->dir_ino = dst.st_ino;
    int fd = openat(dfd, f->base, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    close(dfd);
    if (fd < 0) {
        int err = errno;
        if (err == ELOOP) skip_file(f); /* became a symlink meanwhile: still not followed */
        else if (err == ENOENT) rs_file_fail(c, i, ddp_fail(DDP_E_NOT_FOUND, "no such file"));
        else rs_file_fail(c, i, ddp_fail_errno(err, "opening the file"));
        return;
    }
    HRESULT hr = S_OK;
    if (fstat(fd, &f->st) != 0) hr = ddp_fail_errno(errno, "examining the file");
    else if (!S_ISREG(f->st.st_mode)) skip_file(f);
    else hr = examine_content(c, i, fd);
    close(fd);
    if (FAILED(hr)) rs_file_fail(c, i, hr);
}

/* Same directory entry (directory inode + name) as an earlier path? */
static int entry_cmp(const rs_file *x, const rs_file *y)
{
    if (x->dir_dev != y->dir_dev) return x->dir_dev < y->dir_dev ? -1 : 1;
    if (x->dir_ino != y->dir_ino) return x->dir_ino < y->dir_ino ? -1 : 1;
    return strcmp(x->base, y->base);
}

static int alias_cmp(const void *pa, const void *pb, void *files)
{
    uint32_t a = *(const uint32_t *)pa, b = *(const uint32_t *)pb;
    const rs_file *v = files;
    int r = entry_cmp(&v[a], &v[b]);
    if (r) return r;
    return a < b ? -1 : a > b;
}

static void find_aliases(rs_ctx *c)
{
    uint32_t *idx = ddp_xmalloc((size_t)c->n * sizeof *idx);
    uint32_t m = 0;
    for (uint32_t i = 0; i < c->n; i++)
        if (c->files[i].state == RS_PENDING) idx[m++] = i;
    qsort_r(idx, m, sizeof *idx, alias_cmp, c->files);
    for (uint32_t k = 1; k < m; k++) {
        rs_file *prev = &c->files[idx[k - 1]], *f = &c->files[idx[k]];
        if (entry_cmp(prev, f) != 0) continue;
        f->state = RS_ALIAS;
        f->alias_of = prev->state == RS_ALIAS ? prev->alias_of : idx[k - 1];
    }
    free(idx);
}

/* ======================================================================
 * Step 3: metadata, through the callback
 * ====================================================================== */

HRESULT rs_read_meta(rs_ctx *c, const char *path, uint64_t off, uint8_t *buf, size_t n)
{
    char *p = ddp_strdup(path); /* a BSTR is not const */
    HRESULT hr = S_OK;
    while (n > 0) {
        ULONG want = (ULONG)(n < RS_MAX_READ ? n : RS_MAX_READ);
        ULONG got = 0;
        hr = IDedupReadFileCallback_ReadBackupFile(c->store, p, (LONGLONG)off, want, buf, &got, 0);
        if (hr == HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND) || hr == HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND)) {
            hr = ddp_fail(DDP_E_NOT_FOUND, "the backup store does not hold %s", path);
            break;
        }
        if (hr == HRESULT_FROM_WIN32(ERROR_HANDLE_EOF)) {
            hr = ddp_fail(DDP_E_FILE_CORRUPT, "%s is truncated in the backup store", path);
            break;
        }
        if (FAILED(hr)) {
            hr = ddp_fail(hr, "reading %s from the backup store failed (0x%08X)", path, (unsigned)hr);
            break;
        }
        if (got != want) {
            hr = ddp_fail(DDP_E_FILE_CORRUPT, "%s: short read from the backup store (%u of %u bytes at offset %llu)",
                          path, (unsigned)got, (unsigned)want, (unsigned long long)off);
            break;
        }
        hr = S_OK;
        buf += want;
        off += want;
        n -= want;
    }
    free(p);
    return hr;
}

/* Steps 2-3. Returns the number of valid stubs. */
static uint32_t front_half(rs_ctx *c)
{
    uint32_t pending = 0;
    for (uint32_t i = 0; i < c->n; i++) {
        examine(c, i);
        pending += c->files[i].state == RS_PENDING;
    }
    if (pending == 0) return 0;
    find_aliases(c);
    uint32_t valid = 0;
    for (uint32_t fmt = 0; fmt < rs_nformats; fmt++) {
        int any = 0;
        for (uint32_t i = 0; i < c->n && !any; i++) any = c->files[i].state == RS_PENDING && c->files[i].fmt == fmt;
        if (any) valid += rs_formats[fmt]->prepare(c, fmt);
    }
    return valid;
}

/* ======================================================================
 * Step 4: stream maps
 * ====================================================================== */

static void on_stream_record(rs_ctx *c, rs_phase *ph, rs_record *r, const uint8_t *bytes)
{
    rs_formats[RS_KEY_FMT(ph->conts[r->cont].st->key)]->stream_record(c, ph, r, bytes);
}

void rs_record_unreadable(rs_ctx *c, rs_phase *ph, rs_record *r, HRESULT hr)
{
    const rs_format *fmt = rs_formats[RS_KEY_FMT(ph->conts[r->cont].st->key)];
    if (ph->kind == RS_KIND_STREAM && fmt->stream_unreadable) fmt->stream_unreadable(c, ph, r, hr);
    else rs_record_fail(c, ph, r, hr);
}

static void on_chunk_record(rs_ctx *c, rs_phase *ph, rs_record *r, const uint8_t *bytes)
{
    rs_formats[RS_KEY_FMT(ph->conts[r->cont].st->key)]->chunk_record(c, ph, r, bytes);
}

/* The needs of the pending files, taken. */
static size_t collect_needs(rs_ctx *c, rs_use **out)
{
    rs_use *uses = ddp_xmalloc((c->nneeds + 1) * sizeof *uses);
    size_t nuse = 0;
    for (size_t k = 0; k < c->nneeds; k++)
        if (rs_file_pending(c, c->needs[k].file)) uses[nuse++] = c->needs[k];
    c->nneeds = 0;
    *out = uses;
    return nuse;
}

/* Phase 1 over the valid stubs, in rounds. Returns S_OK or the HRESULT
 * that ended the call. */
static HRESULT stream_phase(rs_ctx *c, int ask_order)
{
    for (uint32_t round = 0;; round++) {
        rs_use *uses;
        size_t nuse = collect_needs(c, &uses);
        if (round > 0 && nuse == 0) {
            free(uses);
            break;
        }
        if (round == RS_MAX_ROUNDS) {
            for (size_t u = 0; u < nuse; u++)
                rs_file_fail(c, uses[u].file, ddp_fail(DDP_E_FILE_CORRUPT,
                                                       "its stream map was still not found after %u reads",
                                                       RS_MAX_ROUNDS));
            free(uses);
            break;
        }
        rs_phase ph;
        rs_phase_build(c, &ph, RS_KIND_STREAM, uses, nuse);
        HRESULT hr = rs_phase_run(c, &ph, ask_order && round == 0, on_stream_record);
        rs_phase_free(&ph);
        if (FAILED(hr)) {
            rs_conts_drop_kept(c);
            return hr;
        }
    }
    rs_conts_drop_kept(c);
    /* Every file that is still pending has its map; anything else would be a
     * bug here, and must not pass as success. */
    for (uint32_t i = 0; i < c->n; i++)
        if (c->files[i].state == RS_PENDING && !c->files[i].mapped)
            rs_file_fail(c, i, ddp_fail(DDP_E_UNEXPECTED, "its stream map was never read"));
    return S_OK;
}

/* ======================================================================
 * Step 5: chunks
 * ====================================================================== */

/* The chunk uses of every pending file. */
static size_t collect_chunk_uses(rs_ctx *c, rs_use **out)
{
    size_t nuse = 0;
    for (uint32_t i = 0; i < c->n; i++)
        if (c->files[i].state == RS_PENDING) nuse += c->files[i].nchunks;
    rs_use *uses = ddp_xmalloc((nuse ? nuse : 1) * sizeof *uses);
    size_t m = 0;
    for (uint32_t i = 0; i < c->n; i++) {
        rs_file *f = &c->files[i];
        if (f->state != RS_PENDING) continue;
        const rs_format *fmt = rs_formats[f->fmt];
        for (uint32_t k = 0; k < f->nchunks; k++) {
            rs_chunkref ref;
            fmt->chunk_ref(c, i, k, &ref);
            uses[m].cont = RS_KEY(f->fmt, ref.cont);
            uses[m].len = ref.rec_len;
            uses[m].off = ref.rec_off;
            uses[m].file = i;
            uses[m].entry = k;
            m++;
        }
    }
    *out = uses;
    return m;
}

static void data_phase(rs_ctx *c)
{
    for (uint32_t i = 0; i < c->n; i++) {
        if (c->files[i].state != RS_PENDING) continue;
        HRESULT hr = rs_temp_create(c, i);
        if (FAILED(hr)) {
            rs_file_fail(c, i, hr);
            continue;
        }
        if (c->files[i].nchunks == 0) rs_finish_file(c, i); /* an empty file */
    }
    rs_commit_ready(c);
    rs_use *uses;
    size_t nuse = collect_chunk_uses(c, &uses);
    rs_phase ph;
    rs_phase_build(c, &ph, RS_KIND_DATA, uses, nuse);
    rs_phase_run(c, &ph, 1, on_chunk_record);
    rs_phase_free(&ph);
    rs_commit_ready(c);
    /* Every chunk was written or failed its files; anything else is a bug
     * here, and must not pass as success (nor leave a temporary file). */
    for (uint32_t i = 0; i < c->n; i++)
        if (c->files[i].state == RS_PENDING)
            rs_file_fail(c, i, ddp_fail(DDP_E_UNEXPECTED, "not all of its chunks were restored"));
}

/* ======================================================================
 * Results
 * ====================================================================== */

static HRESULT results(rs_ctx *c, HRESULT *out)
{
    uint32_t restored = 0, failed = 0;
    HRESULT first = S_OK;
    for (uint32_t i = 0; i < c->n; i++) {
        rs_file *f = &c->files[i];
        if (f->state == RS_ALIAS) {
            f->state = c->files[f->alias_of].state;
            f->result = c->files[f->alias_of].result;
        }
        if (f->state == RS_PENDING) { /* cannot happen; never report it as success */
            f->state = RS_FAILED;
            f->result = DDP_E_UNEXPECTED;
        }
        HRESULT hr = f->state == RS_RESTORED ? S_OK : f->result;
        if (out) out[i] = hr;
        if (f->state == RS_RESTORED) restored++;
        if (f->state == RS_FAILED) {
            if (failed++ == 0) first = hr;
        }
    }
    if (failed == 0) {
        ddp_clear_error();
        return S_OK;
    }
    if (restored > 0) {
        return ddp_fail(DDP_E_JOB_COMPLETED_PARTIAL_SUCCESS, "%u of %u files could not be restored; the first: %s",
                        failed, c->n, c->detail);
    }
    return ddp_fail(first, "%s", c->detail);
}

static void ctx_init(rs_ctx *c, ULONG n, BSTR *paths, IDedupReadFileCallback *store, int writing)
{
    memset(c, 0, sizeof *c);
    c->store = store;
    c->n = n;
    c->writing = writing;
    c->detail_file = UINT32_MAX;
    c->files = ddp_xcalloc(n, sizeof *c->files);
    for (uint32_t i = 0; i < n; i++) {
        c->files[i].path = paths[i];
        c->files[i].slot = -1;
    }
}

static void ctx_free(rs_ctx *c)
{
    if (c->writing) rs_temps_close_all(c);
    for (uint32_t i = 0; i < c->n; i++) {
        rs_file *f = &c->files[i];
        file_release(c, i);
        free(f->fs);
        free(f->dir);
        free(f->base);
        free(f->tmpname);
    }
    for (uint32_t fmt = 0; fmt < rs_nformats; fmt++)
        if (c->fctx[fmt]) rs_formats[fmt]->ctx_free(c, fmt);
    rs_conts_free(c);
    free(c->files);
    free(c->ready);
    free(c->needs);
    free(c->rbuf);
    free(c->chunk);
    memset(c, 0, sizeof *c);
}

/* R1. */
static HRESULT check_args(ULONG n, BSTR *paths, IDedupReadFileCallback *store)
{
    if (!store) return ddp_fail(E_INVALIDARG, "RestoreFiles: the store callback is NULL");
    if (n > DDP_MAX_RESTORE_FILES)
        return ddp_fail(E_INVALIDARG, "RestoreFiles: %u files, more than the %u allowed in one call", (unsigned)n,
                        DDP_MAX_RESTORE_FILES);
    if (n > 0 && !paths) return ddp_fail(E_INVALIDARG, "RestoreFiles: the path array is NULL");
    return S_OK;
}

/* The whole restore of n checked stubs: plan, stream maps, data, results.
 * in_place: each stub is rewritten in its own inode (a private staging
 * directory's), else replaced through a temporary. */
static HRESULT restore_run(ULONG n, BSTR *paths, IDedupReadFileCallback *store, int in_place, HRESULT *results_out)
{
    ddp_clear_error();
    if (n == 0) return S_OK;
    rs_ctx c;
    ctx_init(&c, n, paths, store, 1);
    c.in_place = in_place;
    c.chunk = ddp_xmalloc(RS_CHUNK_MAX);
    HRESULT hr;
    if (front_half(&c) > 0) {
        hr = stream_phase(&c, 1);
        if (SUCCEEDED(hr)) data_phase(&c);
    }
    hr = results(&c, results_out);
    ctx_free(&c);
    return hr;
}

HRESULT ddp_restore_files(ULONG n, BSTR *paths, IDedupReadFileCallback *store, DWORD flags, HRESULT *results_out)
{
    HRESULT hr = check_args(n, paths, store);
    if (FAILED(hr)) return hr;
    if (flags != DEDUP_RECONSTRUCT_UNOPTIMIZED)
        return ddp_fail(E_INVALIDARG, "RestoreFiles: flags %u (only DEDUP_RECONSTRUCT_UNOPTIMIZED is supported)",
                        (unsigned)flags);
    return restore_run(n, paths, store, 0, results_out);
}

/* restore.h: the same call for stubs in the caller's private staging
 * directory, rewritten in place (restore_write.c). */
HRESULT ddp_restore_files_staged(ULONG n, BSTR *paths, IDedupReadFileCallback *store, HRESULT *results_out)
{
    HRESULT hr = check_args(n, paths, store);
    if (FAILED(hr)) return hr;
    return restore_run(n, paths, store, 1, results_out);
}

HRESULT ddp_restore_plan_list(ULONG n, BSTR *paths, IDedupReadFileCallback *store,
                              void (*emit)(void *ctx, int kind, const char *container_path, uint64_t offset,
                                           uint64_t length),
                              void *ctx, HRESULT *results_out)
{
    HRESULT hr = check_args(n, paths, store);
    if (FAILED(hr)) return hr;
    if (!emit) return ddp_fail(E_INVALIDARG, "restore plan: the emit function is NULL");
    ddp_clear_error();
    if (n == 0) return S_OK;

    rs_ctx c;
    ctx_init(&c, n, paths, store, 0);
    if (front_half(&c) > 0) {
        /* Stream maps are read as the restore reads them, in ddp's order
         * (no OrderContainersRestore), each container's reads previewed. */
        hr = stream_phase(&c, 0);
        for (size_t ci = 0; ci < c.nconts; ci++) {
            const rs_cstate *k = c.conts[ci];
            if (k->kind != RS_KIND_STREAM) continue;
            for (size_t j = 0; j < k->read.n; j++)
                emit(ctx, (int)RS_KIND_STREAM, k->path, k->read.v[j].a, k->read.v[j].b - k->read.v[j].a);
        }
        if (SUCCEEDED(hr)) {
            rs_use *uses;
            size_t nuse = collect_chunk_uses(&c, &uses);
            rs_phase ph;
            rs_phase_build(&c, &ph, RS_KIND_DATA, uses, nuse);
            /* A compacted container's records are placed once its header and
             * redirection table are read: those are read (and listed) first. */
            rs_phase_preludes(&c, &ph);
            for (uint32_t ci = 0; ci < ph.ncont; ci++) {
                const rs_cstate *k = ph.conts[ci].st;
                for (size_t j = 0; j < k->read.n; j++)
                    emit(ctx, (int)RS_KIND_DATA, k->path, k->read.v[j].a, k->read.v[j].b - k->read.v[j].a);
            }
            for (uint32_t ci = 0; ci < ph.ncont; ci++) {
                rs_interval *v;
                size_t m = rs_needed_ranges(&c, &ph, ci, 0, RS_OFF_END, &v);
                for (size_t j = 0; j < m; j++)
                    emit(ctx, (int)RS_KIND_DATA, ph.conts[ci].st->path, v[j].a, v[j].b - v[j].a);
                free(v);
            }
            rs_phase_free(&ph);
        }
        /* What is still pending could be restored: that is this call's S_OK. */
        for (uint32_t i = 0; i < c.n; i++)
            if (c.files[i].state == RS_PENDING) c.files[i].state = RS_RESTORED;
    }
    hr = results(&c, results_out);
    ctx_free(&c);
    return hr;
}
