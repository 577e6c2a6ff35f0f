/* SPDX-License-Identifier: MIT */
/*
 * backupstore_tar.c: the tar backup store, read in one forward pass like a
 * tape.
 *
 * A tar backup (`ddp backup --tar`) begins with its manifest, then the
 * Settings files, the catalog, the stream-map containers, the data
 * containers, and last the rest of the tree. Opening the store reads only
 * that first member: the manifest says, for every later member, its position
 * in the archive and its size, so the store knows where everything is
 * without reading further.
 *
 * ReadBackupFile serves reads in archive order: it moves forward (libarchive
 * skips whole members cheaply) to the member and then to the offset, and
 * reads. A read behind the current position needs a new pass over the
 * archive (reopened from the start; counted in `passes`), which never happens
 * when the restore engine follows the read plan: OrderContainersRestore
 * answers with the containers sorted by their place in the archive.
 *
 * Two caches make the common out-of-order cases cheap without a new pass:
 *   - metadata members (small files under /.ddp/: identity, settings, the
 *     catalog) are kept whole when the pass goes by them (up to 64 MiB);
 *   - PreviewContainerRead tells which ranges of a container will be read
 *     next; when a read makes the pass go over announced ranges that are
 *     still to come, their bytes are kept (read-ahead, up to 64 MiB), so the
 *     engine may read them in any order. Beyond the bound, reads stream.
 *
 * Every member header is checked against the manifest (name, type, size);
 * an archive that does not match its manifest is DDP_E_INVALID_DATA, a
 * truncated one DDP_E_FILE_CORRUPT.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backup/backupstore_common.h"
#include "backup/tarreader.h"
#include "base/util.h"

#define SCRATCH_SIZE ((size_t)1 << 20)
#define META_MEMBER_MAX ((uint64_t)16 << 20)
#define META_TOTAL_MAX ((uint64_t)64 << 20)
#define READAHEAD_MAX ((uint64_t)64 << 20)


typedef struct ra_range {
    uint64_t off, len;   /* member offsets announced by PreviewContainerRead */
    uint8_t *data;       /* kept bytes, or NULL */
    int filling;
} ra_range;

typedef struct tar_store {
    ddp_bs_base base;
    ddp_tar_reader *r;
    uint8_t **meta;        /* [member]: whole metadata member, or NULL */
    uint64_t meta_bytes;
    size_t pv_member;      /* member of the last preview (0: none) */
    ra_range *pv;
    size_t npv;
    uint64_t ra_bytes;
    uint8_t *scratch;
} tar_store;

static int is_meta_member(const tar_store *s, size_t m)
{
    const ddp_manifest *mf = ddp_tar_reader_manifest(s->r);
    const ddp_mf_entry *e = &mf->entries[mf->members[m].entry];
    return e->type == 'F' && strncmp(e->path, "/.ddp/", 6) == 0 && e->size <= META_MEMBER_MAX;
}

/* At the start of member m's data: keep it whole if it is metadata and fits. */
static HRESULT keep_meta(tar_store *s, size_t m)
{
    if (s->meta[m] || !is_meta_member(s, m)) return S_OK;
    uint64_t size = ddp_tar_reader_manifest(s->r)->members[m].size;
    if (s->meta_bytes + size > META_TOTAL_MAX) return S_OK;
    uint8_t *buf = ddp_xmalloc(size ? (size_t)size : 1);
    size_t got;
    HRESULT hr = ddp_tar_reader_read(s->r, buf, (size_t)size, &got);
    if (FAILED(hr)) { free(buf); return hr; }
    if (got != size) {
        free(buf);
        return ddp_fail(DDP_E_FILE_CORRUPT, "tar backup: member %s shorter than its header", ddp_tar_reader_manifest(s->r)->members[m].path);
    }
    s->meta[m] = buf;
    s->meta_bytes += size;
    return S_OK;
}

/* Forward to member m (a new pass if it is behind), keeping metadata members
 * met on the way. */
static HRESULT keep_passed(void *ctx, size_t member) { return keep_meta(ctx, member); }

static HRESULT advance_to(tar_store *s, size_t m, uint64_t off)
{
    return ddp_tar_reader_seek(s->r, m, off, keep_passed, s);
}

static void drop_pv(tar_store *s)
{
    for (size_t i = 0; i < s->npv; i++) free(s->pv[i].data);
    free(s->pv);
    s->pv = NULL;
    s->npv = 0;
    s->ra_bytes = 0;
    s->pv_member = 0;
}

/* Move the current member's position forward to off, keeping the bytes of
 * announced ranges that the pass goes over. */
static HRESULT skip_to(tar_store *s, size_t m, uint64_t off)
{
    ddp_tar_reader *r = s->r;
    if (ddp_tar_reader_pos(r) >= off) return S_OK;
    int keep = m == s->pv_member;
    if (keep)
        for (size_t i = 0; i < s->npv; i++) {
            ra_range *q = &s->pv[i];
            if (!q->data && q->off >= ddp_tar_reader_pos(r) && q->len <= off - q->off && q->off < off &&
                s->ra_bytes + q->len <= READAHEAD_MAX) {
                q->data = ddp_xmalloc(q->len ? (size_t)q->len : 1);
                q->filling = 1;
                s->ra_bytes += q->len;
            }
        }
    while (ddp_tar_reader_pos(r) < off) {
        uint64_t start = ddp_tar_reader_pos(r);
        size_t want = off - start > SCRATCH_SIZE ? SCRATCH_SIZE : (size_t)(off - start);
        size_t got;
        HRESULT hr = ddp_tar_reader_read(r, s->scratch, want, &got);
        if (FAILED(hr)) return hr;
        if (got == 0) break;
        for (size_t i = 0; keep && i < s->npv; i++) {
            ra_range *q = &s->pv[i];
            if (!q->filling || !q->data) continue;
            uint64_t a = q->off > start ? q->off : start;
            uint64_t b = q->off + q->len < start + got ? q->off + q->len : start + got;
            if (a < b) memcpy(q->data + (a - q->off), s->scratch + (a - start), (size_t)(b - a));
        }
    }
    for (size_t i = 0; keep && i < s->npv; i++) {
        ra_range *q = &s->pv[i];
        if (!q->filling) continue;
        q->filling = 0;
        if (q->off + q->len > ddp_tar_reader_pos(r)) { /* the member ended early: not whole */
            free(q->data);
            q->data = NULL;
            s->ra_bytes -= q->len;
        }
    }
    return S_OK;
}

/* Serve [off, off+n) of member m from the read-ahead, if kept. */
static int from_readahead(tar_store *s, size_t m, uint64_t off, size_t n, BYTE *buf)
{
    if (m != s->pv_member) return 0;
    for (size_t i = 0; i < s->npv; i++) {
        ra_range *q = &s->pv[i];
        if (!q->data || off < q->off || n > q->len || off - q->off > q->len - n) continue;
        memcpy(buf, q->data + (off - q->off), n);
        if (off == q->off && n == q->len) { /* read once, as announced: let it go */
            free(q->data);
            q->data = NULL;
            s->ra_bytes -= q->len;
        }
        return 1;
    }
    return 0;
}

static HRESULT not_found(const ddp_manifest *m, const char *path)
{
    if (ddp_manifest_has_parent(m, path))
        return ddp_fail(HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND), "backup store: %s is not in the backup", path);
    return ddp_fail(HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND), "backup store: the directory of %s is not in the backup",
                    path);
}

/* The member and member offset holding store path byte off, and how many
 * bytes from there belong to it; *member 0 when off is past the end. */
static HRESULT locate(const ddp_manifest *mf, const char *path, uint64_t off, size_t *member, uint64_t *moff,
                      uint64_t *avail)
{
    *member = 0;
    *avail = 0;
    const ddp_mf_entry *e = ddp_manifest_find(mf, path);
    if (!e) return not_found(mf, path);
    if (e->type == 'D') return ddp_fail(ddp_hresult_from_errno(EISDIR), "backup store: %s is a directory", path);
    if (e->type == 'L')
        return ddp_fail(HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED), "backup store: %s is a symbolic link: refused", path);
    if (off >= e->size) return S_OK;
    if (e->type == 'F') {
        *member = (size_t)e->member;
        *moff = off;
        *avail = e->size - off;
        return S_OK;
    }
    for (uint32_t j = 0; j < e->npieces; j++) {
        const ddp_mf_piece *p = &e->pieces[j];
        if (off >= p->offset && off - p->offset < p->length) {
            *member = (size_t)p->member;
            *moff = off - p->offset;
            *avail = p->length - *moff;
            return S_OK;
        }
    }
    return S_OK;
}

static void sync_stats(tar_store *s) { s->base.stats.passes = ddp_tar_reader_passes(s->r); }

static HRESULT tar_read_one(tar_store *s, const char *path, uint64_t off, ULONG n, BYTE *buf, ULONG *got)
{
    const ddp_manifest *mf = ddp_tar_reader_manifest(s->r);
    size_t m;
    uint64_t moff = 0, avail;
    HRESULT hr = locate(mf, path, off, &m, &moff, &avail);
    if (FAILED(hr) || m == 0) return hr;
    size_t want = avail < n ? (size_t)avail : n;

    if (s->meta[m]) {
        memcpy(buf, s->meta[m] + moff, want);
        *got = (ULONG)want;
        return S_OK;
    }
    if (from_readahead(s, m, moff, want, buf)) {
        *got = (ULONG)want;
        return S_OK;
    }
    if (is_meta_member(s, m) && s->meta_bytes + mf->members[m].size <= META_TOTAL_MAX) {
        hr = advance_to(s, m, 0);
        if (SUCCEEDED(hr)) hr = keep_meta(s, m);
        if (FAILED(hr)) return hr;
        memcpy(buf, s->meta[m] + moff, want);
        *got = (ULONG)want;
        return S_OK;
    }
    hr = advance_to(s, m, moff);
    if (SUCCEEDED(hr)) hr = skip_to(s, m, moff);
    if (FAILED(hr)) return hr;
    size_t r = 0;
    if (ddp_tar_reader_pos(s->r) == moff) {
        hr = ddp_tar_reader_read(s->r, buf, want, &r);
        if (FAILED(hr)) return hr;
    }
    *got = (ULONG)r;
    return S_OK;
}

static HRESULT tar_read(IDedupReadFileCallback *This, BSTR path, LONGLONG off, ULONG n, BYTE *buf, ULONG *got,
                        DWORD flags)
{
    (void)flags;
    tar_store *s = (tar_store *)This;
    s->base.stats.read_calls++;
    HRESULT hr = ddp_bs_check_read_args(path, off, n, buf, got);
    if (FAILED(hr)) return hr;
    if (n > 0) hr = tar_read_one(s, path, (uint64_t)off, n, buf, got);
    s->base.stats.bytes_read += *got;
    sync_stats(s);
    return hr;
}

static HRESULT tar_order(IDedupReadFileCallback *This, ULONG n, BSTR *paths, ULONG *entries,
                         DEDUP_CONTAINER_EXTENT **plan)
{
    tar_store *s = (tar_store *)This;
    /* Archive order: a tape is read front to back once. */
    return ddp_bs_order_from_manifest(&s->base, ddp_tar_reader_manifest(s->r), 1, n, paths, entries, plan);
}

static HRESULT tar_preview(IDedupReadFileCallback *This, BSTR path, ULONG n, DDP_FILE_EXTENT *ext)
{
    tar_store *s = (tar_store *)This;
    HRESULT hr = ddp_bs_check_preview(&s->base, path, n, ext);
    if (FAILED(hr)) return hr;
    size_t m = 0;
    uint64_t moff = 0, avail = 0;
    if (n > 0 && FAILED(locate(ddp_tar_reader_manifest(s->r), path, (uint64_t)ext[0].Offset, &m, &moff, &avail))) {
        ddp_clear_error();
        m = 0;
    }
    /* Keep what was read ahead for ranges announced again; drop the rest. */
    ra_range *nv = ddp_xcalloc(n ? n : 1, sizeof *nv);
    uint64_t kept = 0;
    /* container offset of the member's first byte (a tar piece starts at 0) */
    uint64_t base = m != 0 ? (uint64_t)ext[0].Offset - moff : 0;
    for (ULONG i = 0; i < n && m != 0; i++) {
        uint64_t o = (uint64_t)ext[i].Offset;
        nv[i].off = o >= base ? o - base : 0;
        nv[i].len = (uint64_t)ext[i].Length;
        if (m == s->pv_member)
            for (size_t j = 0; j < s->npv; j++)
                if (s->pv[j].data && s->pv[j].off == nv[i].off && s->pv[j].len == nv[i].len) {
                    nv[i].data = s->pv[j].data;
                    s->pv[j].data = NULL;
                    kept += nv[i].len;
                    break;
                }
    }
    drop_pv(s);
    if (m == 0) {
        free(nv);
        return S_OK; /* advisory: the reads will say what is wrong */
    }
    s->pv = nv;
    s->npv = n;
    s->pv_member = m;
    s->ra_bytes = kept;
    return S_OK;
}

static ULONG tar_release(IDedupReadFileCallback *This)
{
    ULONG left = ddp_bs_release_ref(This);
    if (left) return left;
    tar_store *s = (tar_store *)This;
    drop_pv(s);
    if (s->meta) {
        for (size_t i = 0; i < ddp_tar_reader_manifest(s->r)->nmembers; i++) free(s->meta[i]);
        free(s->meta);
    }
    ddp_tar_reader_close(s->r);
    free(s->scratch);
    free(s);
    return 0;
}

/* IDdpListBackupFolder: the files and containers the manifest lists in the folder. */
static HRESULT tar_list(ddp_bs_base *b, const char *folder, ULONG *n, BSTR **names)
{
    return ddp_bs_list_from_manifest(ddp_tar_reader_manifest(((tar_store *)b)->r), folder, n, names);
}

const IDedupReadFileCallbackVtbl ddp_bs_tar_vtbl = {
    ddp_bs_query_interface, ddp_bs_addref, tar_release, tar_read, tar_order, tar_preview,
};

HRESULT ddp_backupstore_open_tar(const char *archive, IDedupReadFileCallback **out)
{
    if (!out) return E_POINTER;
    *out = NULL;
    if (!archive) return E_POINTER;
    ddp_tar_reader *r;
    HRESULT hr = ddp_tar_reader_open(archive, &r);
    if (FAILED(hr)) return hr;
    tar_store *s = ddp_xcalloc(1, sizeof *s);
    s->base.lpVtbl = &ddp_bs_tar_vtbl;
    ddp_bs_init_lister(&s->base, tar_list);
    atomic_init(&s->base.refs, 1u);
    s->r = r;
    s->meta = ddp_xcalloc(ddp_tar_reader_manifest(r)->nmembers, sizeof *s->meta);
    s->scratch = ddp_xmalloc(SCRATCH_SIZE);
    sync_stats(s);
    *out = (IDedupReadFileCallback *)s;
    return S_OK;
}
