/*
 * restore.c: IDedupBackupSupport::RestoreFiles (ddp_restore_files) and its
 * planning step on its own (ddp_restore_plan_list). The rules R1-R10 are
 * those of the backup-support contract (SPEC-backup-api.md); this file is
 * the "what": arguments, stubs, store metadata, what each record must be,
 * and the results. The reading is in restore_plan.c, the writing in
 * restore_write.c.
 *
 * A restore, step by step:
 *
 *  1. Arguments (R1): more than 10,000 files, no store, flags other than
 *     DEDUP_RECONSTRUCT_UNOPTIMIZED, or no path array for files to restore:
 *     E_INVALIDARG before any callback (FileResults is left alone then).
 *     No files: S_OK.
 *  2. Each path is examined without following symlinks (lstat, then the
 *     directory is opened and the name opened O_NOFOLLOW beneath it): none
 *     -> DDP_E_NOT_FOUND; not a regular file, or a regular file that does not
 *     begin with the stub text and magic -> S_FALSE; begins like a stub but
 *     is not a well-formed one -> DDP_E_INVALID_DATA. The stub's stat (owner,
 *     mode, times, identity of the inode) is kept for the end. The same
 *     directory entry named twice is restored once; the later names share
 *     the first one's result.
 *  3. The store's identity, /.ddp/Settings/identity, read through the
 *     callback. A backup holds one volume, so one identity: stubs of another
 *     store id -> DDP_E_NOT_FOUND (the backup does not hold their store), as
 *     when the identity is absent; a stub whose MAC fails under the key ->
 *     DDP_E_INVALID_DATA. A stub that passes is "valid".
 *  4. The catalog, /.ddp/ChunkStore/{GUID}.ddp/catalog: its fixed 32-byte
 *     head first (count bounded by DDP_CATALOG_MAX_ENTRIES: 24 MiB at most),
 *     then the rest. It gives each container's generation, so container
 *     paths are made of numbers only (ddp_container_relpath); no byte read
 *     from a stub or the store ever becomes part of a path, and no path read
 *     from either ever opens a local file (R10).
 *  5. Phase 1, stream maps: OrderContainersRestore with the stream-map
 *     containers, then the reads (restore_plan.c). Each stream-map record
 *     must have a good header and payload checksum, be a stream map of the
 *     stored length the stub gives, hash (sha256) to the stub's stream-map
 *     hash, decode, and agree with the stub on file size and whole-file hash.
 *     Every data container it names must be in the catalog.
 *  6. Phase 2, chunks: a temporary file beside each surviving stub (so a
 *     target that cannot be written fails before its data is read), then
 *     OrderContainersRestore with the data containers, then the reads. Each
 *     chunk record is checked (header, payload checksum, sha256) and written
 *     to every (file, offset) that uses it: a chunk shared by files, or
 *     repeated in one, is read once.
 *  7. A file whose last chunk is written is finished at once
 *     (restore_write.c): every slot filled, the whole-file hash recomputed
 *     from the chunk hashes, synced, the stub's owner, mode, times and
 *     xattrs carried over, the stub checked unchanged, renamed over it.
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
 * Memory (R10): per file a few hundred bytes and, after phase 1, its stream
 * map as an array of 56-byte entries plus 8 bytes of offset per chunk (a
 * 10 GiB file of 64 KiB chunks has 163,840 chunks: its map is about 9 MB,
 * plus 1.3 MB of offsets), one bit per chunk, and 24 bytes per chunk use
 * while phase 2 runs; reads of at most 4 MiB, and a record buffered only
 * while it straddles reads; never a whole file or a whole container.
 * Callbacks are made on the calling thread, one at a time.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/codec.h"
#include "store/container.h"
#include "restore/restore.h"
#include "restore/restore_internal.h"
#include "base/util.h"

#define STUB_HEAD 88 /* text + magic */
#define CATALOG_HEAD 32

static const char identity_path[] = "/.ddp/Settings/identity";

int rs_file_pending(const rs_ctx *c, uint32_t i)
{
    return c->files[i].state == RS_PENDING;
}

static const char *display(const rs_file *f)
{
    return f->path ? f->path : "(null path)";
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
    ddp_streammap_free(&f->map);
    free(f->filled);
    f->filled = NULL;
    /* Leave the reason in place for the caller's next file. */
    ddp_fail(hr, "%s", why);
}

static void skip_file(rs_file *f)
{
    f->state = RS_SKIPPED;
    f->result = S_FALSE;
}

/* ======================================================================
 * Step 2: the stubs
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

/* Examine path i; on success the file is pending with its stub peeked (raw
 * bytes in *raw, for the MAC check once the key is known). */
static void examine(rs_ctx *c, uint32_t i, uint8_t raw[DDP_STUB_SIZE])
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
    if (fstat(fd, &f->st) != 0) {
        hr = ddp_fail_errno(errno, "examining the file");
    } else if (!S_ISREG(f->st.st_mode) || f->st.st_size < STUB_HEAD) {
        skip_file(f);
    } else {
        memset(raw, 0, DDP_STUB_SIZE);
        hr = ddp_pread_exact(fd, raw, STUB_HEAD, 0, f->path);
        if (SUCCEEDED(hr)) {
            if (!ddp_stub_looks_like(raw, DDP_STUB_SIZE)) {
                skip_file(f); /* an ordinary file that is not a stub */
            } else if (f->st.st_size != DDP_STUB_SIZE) {
                hr = ddp_fail(DDP_E_INVALID_DATA, "begins like a ddp stub but is %lld bytes, not %d",
                              (long long)f->st.st_size, DDP_STUB_SIZE);
            } else {
                hr = ddp_pread_exact(fd, raw, DDP_STUB_SIZE, 0, f->path);
                if (SUCCEEDED(hr) && FAILED(ddp_stub_peek(raw, DDP_STUB_SIZE, &f->stub)))
                    hr = ddp_fail(DDP_E_INVALID_DATA, "malformed stub: %s", ddp_error_detail());
            }
        }
    }
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
 * Steps 3-4: identity and catalog, through the callback
 * ====================================================================== */

/* Read n bytes of a metadata file (not a container: no preview), in pieces
 * of at most RS_MAX_READ. Absent: DDP_E_NOT_FOUND. */
static HRESULT read_meta(rs_ctx *c, const char *path, uint64_t off, uint8_t *buf, size_t n)
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

static HRESULT read_identity(rs_ctx *c)
{
    uint8_t buf[DDP_IDENTITY_SIZE];
    HRESULT hr = read_meta(c, identity_path, 0, buf, sizeof buf);
    if (FAILED(hr)) return hr;
    hr = ddp_identity_decode(buf, sizeof buf, &c->id);
    if (FAILED(hr)) return ddp_fail(hr, "%s in the backup store: %s", identity_path, ddp_error_detail());
    return S_OK;
}

static HRESULT read_catalog(rs_ctx *c)
{
    char *path = ddp_xasprintf("%scatalog", c->store_prefix);
    uint8_t head[CATALOG_HEAD];
    uint8_t *buf = NULL;
    HRESULT hr = read_meta(c, path, 0, head, sizeof head);
    if (SUCCEEDED(hr)) {
        uint32_t count = ddp_get_le32(head + 12);
        if (memcmp(head, "DDPCATL1", 8) != 0) {
            hr = ddp_fail(DDP_E_INVALID_DATA, "%s in the backup store is not a catalog", path);
        } else if (count > DDP_CATALOG_MAX_ENTRIES) {
            hr = ddp_fail(DDP_E_INVALID_DATA, "%s in the backup store claims %u containers (at most %u)", path,
                          count, DDP_CATALOG_MAX_ENTRIES);
        } else {
            size_t total = CATALOG_HEAD + (size_t)count * 24 + 8;
            buf = ddp_xmalloc(total);
            memcpy(buf, head, CATALOG_HEAD);
            hr = read_meta(c, path, CATALOG_HEAD, buf + CATALOG_HEAD, total - CATALOG_HEAD);
            if (SUCCEEDED(hr)) {
                hr = ddp_catalog_decode(buf, total, &c->cat);
                if (FAILED(hr)) {
                    hr = ddp_fail(hr, "%s in the backup store: %s", path, ddp_error_detail());
                } else if (memcmp(c->cat.store_id, c->id.store_id, DDP_STORE_ID_SIZE) != 0) {
                    ddp_catalog_free(&c->cat);
                    hr = ddp_fail(DDP_E_INVALID_DATA, "%s in the backup store belongs to another store", path);
                }
            }
        }
    }
    free(buf);
    free(path);
    return hr;
}

/* Fail every pending file with hr (detail already set). */
static void fail_pending(rs_ctx *c, HRESULT hr)
{
    char why[1024];
    snprintf(why, sizeof why, "%s", ddp_error_detail());
    for (uint32_t i = 0; i < c->n; i++) {
        ddp_fail(hr, "%s", why);
        rs_file_fail(c, i, hr);
    }
}

/* Steps 2-4. Returns the number of valid (authenticated) stubs. */
static uint32_t front_half(rs_ctx *c)
{
    uint8_t *raw = ddp_xmalloc((size_t)c->n * DDP_STUB_SIZE);
    uint32_t pending = 0;
    for (uint32_t i = 0; i < c->n; i++) {
        examine(c, i, raw + (size_t)i * DDP_STUB_SIZE);
        pending += c->files[i].state == RS_PENDING;
    }
    uint32_t valid = 0;
    if (pending > 0) {
        find_aliases(c);
        HRESULT hr = read_identity(c);
        if (FAILED(hr)) {
            fail_pending(c, hr);
        } else {
            for (uint32_t i = 0; i < c->n; i++) {
                rs_file *f = &c->files[i];
                if (f->state != RS_PENDING) continue;
                if (memcmp(f->stub.store_id, c->id.store_id, DDP_STORE_ID_SIZE) != 0) {
                    char theirs[39], ours[39];
                    ddp_guid_format(f->stub.store_id, theirs);
                    ddp_guid_format(c->id.store_id, ours);
                    rs_file_fail(c, i, ddp_fail(DDP_E_NOT_FOUND,
                                                "stub of chunk store %s, but the backup holds store %s", theirs, ours));
                } else if (FAILED(ddp_stub_decode(raw + (size_t)i * DDP_STUB_SIZE, DDP_STUB_SIZE, c->id.key,
                                                  &f->stub))) {
                    rs_file_fail(c, i, ddp_fail(DDP_E_INVALID_DATA, "stub fails authentication: %s",
                                                ddp_error_detail()));
                } else {
                    valid++;
                }
            }
        }
    }
    free(raw);
    if (valid > 0) {
        char guid[39];
        ddp_guid_format(c->id.store_id, guid);
        c->store_prefix = ddp_xasprintf("/.ddp/ChunkStore/%s.ddp/", guid);
        HRESULT hr = read_catalog(c);
        if (FAILED(hr)) fail_pending(c, hr);
    }
    return valid;
}

/* ======================================================================
 * Step 5: stream maps
 * ====================================================================== */

/* Take the decoded stream map (n bytes at buf) for file i. */
static void accept_map(rs_ctx *c, uint32_t i, const uint8_t *buf, size_t n, const char *where)
{
    rs_file *f = &c->files[i];
    HRESULT hr = ddp_streammap_decode(buf, n, &f->map);
    if (FAILED(hr)) {
        ddp_streammap_free(&f->map);
        rs_file_fail(c, i, ddp_fail(DDP_E_FILE_CORRUPT, "stream map at %s: %s", where, ddp_error_detail()));
        return;
    }
    if (f->map.file_size != f->stub.file_size || memcmp(f->map.file_hash, f->stub.file_hash, DDP_HASH_SIZE) != 0) {
        rs_file_fail(c, i, ddp_fail(DDP_E_FILE_CORRUPT, "stream map at %s does not describe the file the stub names",
                                    where));
        return;
    }
    for (uint32_t k = 0; k < f->map.count; k++) {
        const ddp_chunk_loc *l = &f->map.entries[k].loc;
        if (!ddp_catalog_find(&c->cat, DDP_KIND_DATA, l->container)) {
            rs_file_fail(c, i, ddp_fail(DDP_E_PATH_NOT_FOUND, "data container %u (chunk %u) is not in the backup's catalog",
                                        l->container, k));
            return;
        }
        if (l->offset > RS_OFF_END - DDP_RECORD_HEADER_SIZE - l->stored_len) {
            rs_file_fail(c, i, ddp_fail(DDP_E_FILE_CORRUPT, "stream map at %s: chunk %u lies past any possible offset",
                                        where, k));
            return;
        }
    }
    ddp_streammap_index(&f->map);
    f->filled = ddp_xcalloc((size_t)f->map.count / 8 + 1, 1);
    f->remaining = f->map.count;
}

static void on_streammap(rs_ctx *c, rs_phase *ph, rs_record *r, const uint8_t *bytes)
{
    char where[160];
    snprintf(where, sizeof where, "offset %llu of %s", (unsigned long long)r->off, ph->conts[r->cont].path);
    ddp_record_header h;
    if (FAILED(ddp_record_header_decode(bytes, &h))) {
        rs_record_fail(c, ph, r, ddp_fail(DDP_E_FILE_CORRUPT, "%s: %s", where, ddp_error_detail()));
        return;
    }
    if (h.type != DDP_RECORD_STREAMMAP || h.stored_len != r->stored_len) {
        rs_record_fail(c, ph, r, ddp_fail(DDP_E_FILE_CORRUPT,
                                          "%s: not the stream-map record the stub names (type %u, %u stored bytes)",
                                          where, h.type, h.stored_len));
        return;
    }
    int wanted = 0;
    for (size_t u = r->use_first; u < r->use_first + r->use_count; u++) {
        uint32_t i = ph->uses[u].file;
        if (!rs_file_pending(c, i)) continue;
        if (memcmp(h.hash, c->files[i].stub.streammap_hash, DDP_HASH_SIZE) != 0)
            rs_file_fail(c, i, ddp_fail(DDP_E_FILE_CORRUPT, "%s: the stream map's hash differs from the stub's", where));
        else
            wanted = 1;
    }
    if (!wanted) return;
    uint8_t *map = ddp_xmalloc(h.logical_len ? h.logical_len : 1);
    if (FAILED(ddp_record_payload_decode(&h, bytes + DDP_RECORD_HEADER_SIZE, map))) {
        rs_record_fail(c, ph, r, ddp_fail(DDP_E_FILE_CORRUPT, "%s: %s", where, ddp_error_detail()));
    } else {
        for (size_t u = r->use_first; u < r->use_first + r->use_count; u++)
            if (rs_file_pending(c, ph->uses[u].file)) accept_map(c, ph->uses[u].file, map, h.logical_len, where);
    }
    free(map);
}

/* Phase 1 over the valid stubs. Returns S_OK or the HRESULT that ended the call. */
static HRESULT stream_phase(rs_ctx *c, rs_phase *ph, int ask_order)
{
    rs_use *uses = ddp_xmalloc(((size_t)c->n + 1) * sizeof *uses);
    size_t nuse = 0;
    uint64_t max_stored = ddp_compress_bound(DDP_STREAMMAP_MAX_LOGICAL);
    for (uint32_t i = 0; i < c->n; i++) {
        rs_file *f = &c->files[i];
        if (f->state != RS_PENDING) continue;
        if (!ddp_catalog_find(&c->cat, DDP_KIND_STREAM, f->stub.stream_container)) {
            rs_file_fail(c, i, ddp_fail(DDP_E_PATH_NOT_FOUND, "stream-map container %u is not in the backup's catalog",
                                        f->stub.stream_container));
            continue;
        }
        if (f->stub.streammap_stored_len > max_stored ||
            f->stub.stream_offset > RS_OFF_END - DDP_RECORD_HEADER_SIZE - f->stub.streammap_stored_len) {
            rs_file_fail(c, i, ddp_fail(DDP_E_INVALID_DATA, "the stub names an impossible stream-map record"));
            continue;
        }
        uses[nuse].cont_id = f->stub.stream_container;
        uses[nuse].stored_len = f->stub.streammap_stored_len;
        uses[nuse].off = f->stub.stream_offset;
        uses[nuse].file = i;
        uses[nuse].entry = 0;
        nuse++;
    }
    rs_phase_build(c, ph, DDP_KIND_STREAM, uses, nuse);
    ph->on_record = on_streammap;
    return rs_phase_run(c, ph, ask_order);
}

/* ======================================================================
 * Step 6: chunks
 * ====================================================================== */

static void on_chunk(rs_ctx *c, rs_phase *ph, rs_record *r, const uint8_t *bytes)
{
    char where[160];
    snprintf(where, sizeof where, "chunk at offset %llu of %s", (unsigned long long)r->off, ph->conts[r->cont].path);
    ddp_record_header h;
    if (FAILED(ddp_record_header_decode(bytes, &h))) {
        rs_record_fail(c, ph, r, ddp_fail(DDP_E_FILE_CORRUPT, "%s: %s", where, ddp_error_detail()));
        return;
    }
    if (h.type != DDP_RECORD_CHUNK || h.stored_len != r->stored_len || h.logical_len > RS_CHUNK_MAX) {
        rs_record_fail(c, ph, r, ddp_fail(DDP_E_FILE_CORRUPT,
                                          "%s: not the chunk record the stream map names (type %u, %u stored bytes)",
                                          where, h.type, h.stored_len));
        return;
    }
    /* The stream map's hash and length must be the record's; the codec is
     * the record's business (the sha256 of the decoded bytes decides). */
    int wanted = 0;
    for (size_t u = r->use_first; u < r->use_first + r->use_count; u++) {
        uint32_t i = ph->uses[u].file;
        if (!rs_file_pending(c, i)) continue;
        const ddp_streammap_entry *e = &c->files[i].map.entries[ph->uses[u].entry];
        if (memcmp(e->hash, h.hash, DDP_HASH_SIZE) != 0 || e->loc.logical_len != h.logical_len)
            rs_file_fail(c, i, ddp_fail(DDP_E_FILE_CORRUPT, "%s: the record is not the chunk the stream map names",
                                        where));
        else
            wanted = 1;
    }
    if (!wanted) return;
    if (FAILED(ddp_record_payload_decode(&h, bytes + DDP_RECORD_HEADER_SIZE, c->chunk))) {
        rs_record_fail(c, ph, r, ddp_fail(DDP_E_FILE_CORRUPT, "%s: %s", where, ddp_error_detail()));
        return;
    }
    for (size_t u = r->use_first; u < r->use_first + r->use_count; u++)
        if (rs_file_pending(c, ph->uses[u].file))
            rs_write_chunk(c, ph->uses[u].file, ph->uses[u].entry, c->chunk, h.logical_len);
}

/* The chunk uses of every pending file. */
static size_t collect_chunk_uses(rs_ctx *c, rs_use **out)
{
    size_t nuse = 0;
    for (uint32_t i = 0; i < c->n; i++)
        if (c->files[i].state == RS_PENDING) nuse += c->files[i].map.count;
    rs_use *uses = ddp_xmalloc((nuse ? nuse : 1) * sizeof *uses);
    size_t m = 0;
    for (uint32_t i = 0; i < c->n; i++) {
        rs_file *f = &c->files[i];
        if (f->state != RS_PENDING) continue;
        for (uint32_t k = 0; k < f->map.count; k++) {
            const ddp_chunk_loc *l = &f->map.entries[k].loc;
            uses[m].cont_id = l->container;
            uses[m].stored_len = l->stored_len;
            uses[m].off = l->offset;
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
        if (c->files[i].map.count == 0) rs_finish_file(c, i); /* an empty file */
    }
    rs_commit_ready(c);
    rs_use *uses;
    size_t nuse = collect_chunk_uses(c, &uses);
    rs_phase ph;
    rs_phase_build(c, &ph, DDP_KIND_DATA, uses, nuse);
    ph.on_record = on_chunk;
    rs_phase_run(c, &ph, 1);
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
        free(f->dir);
        free(f->base);
        free(f->tmpname);
        free(f->filled);
        ddp_streammap_free(&f->map);
    }
    free(c->files);
    free(c->ready);
    free(c->store_prefix);
    ddp_catalog_free(&c->cat);
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

HRESULT ddp_restore_files(ULONG n, BSTR *paths, IDedupReadFileCallback *store, DWORD flags, HRESULT *results_out)
{
    HRESULT hr = check_args(n, paths, store);
    if (FAILED(hr)) return hr;
    if (flags != DEDUP_RECONSTRUCT_UNOPTIMIZED)
        return ddp_fail(E_INVALIDARG, "RestoreFiles: flags %u (only DEDUP_RECONSTRUCT_UNOPTIMIZED is supported)",
                        (unsigned)flags);
    ddp_clear_error();
    if (n == 0) return S_OK;

    rs_ctx c;
    ctx_init(&c, n, paths, store, 1);
    c.chunk = ddp_xmalloc(RS_CHUNK_MAX);
    if (front_half(&c) > 0) {
        rs_phase p1;
        hr = stream_phase(&c, &p1, 1);
        rs_phase_free(&p1);
        if (SUCCEEDED(hr)) data_phase(&c);
    }
    hr = results(&c, results_out);
    ctx_free(&c);
    return hr;
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
        rs_phase p1;
        hr = stream_phase(&c, &p1, 0);
        for (uint32_t ci = 0; ci < p1.ncont; ci++) {
            const rs_container *k = &p1.conts[ci];
            for (size_t j = 0; j < k->read.n; j++)
                emit(ctx, DDP_KIND_STREAM, k->path, k->read.v[j].a, k->read.v[j].b - k->read.v[j].a);
        }
        rs_phase_free(&p1);
        if (SUCCEEDED(hr)) {
            rs_use *uses;
            size_t nuse = collect_chunk_uses(&c, &uses);
            rs_phase ph;
            rs_phase_build(&c, &ph, DDP_KIND_DATA, uses, nuse);
            for (uint32_t ci = 0; ci < ph.ncont; ci++) {
                rs_interval *v;
                size_t m = rs_needed_ranges(&c, &ph, ci, 0, RS_OFF_END, &v);
                for (size_t j = 0; j < m; j++) emit(ctx, DDP_KIND_DATA, ph.conts[ci].path, v[j].a, v[j].b - v[j].a);
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
