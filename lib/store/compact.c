/* SPDX-License-Identifier: MIT */
/*
 * compact.c: a container's next generation, holding only its kept records
 * behind a redirection table (store/compact.h; bytes in docs/FORMAT.md).
 *
 * Two passes over the old generation: the record headers first (which
 * records are kept, so the table's length and every new offset are known
 * before a byte is written), then the kept records, read whole, checked
 * and appended through a 1 MiB buffer.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/hash.h"
#include "base/safepath.h"
#include "base/util.h"
#include "store/compact.h"
#include "store/redirect.h"

#define COPY_BUFFER ((size_t)1 << 20)

typedef struct kept_rec {
    uint64_t id, off, len; /* len: header + payload */
} kept_rec;

typedef struct out_buf {
    int fd;
    const char *what;
    uint64_t at;   /* file offset of buf[0] */
    uint8_t *buf;
    size_t n;
} out_buf;

static HRESULT out_flush(out_buf *o)
{
    if (o->n == 0) return S_OK;
    HRESULT hr = ddp_pwrite_all(o->fd, o->buf, o->n, o->at, o->what);
    o->at += o->n;
    o->n = 0;
    return hr;
}

static HRESULT out_put(out_buf *o, const void *p, size_t n)
{
    if (n == 0) return S_OK;
    if (!p) return E_POINTER;
    if (o->n + n > COPY_BUFFER) {
        HRESULT hr = out_flush(o);
        if (FAILED(hr)) return hr;
    }
    if (n > COPY_BUFFER) {
        HRESULT hr = ddp_pwrite_all(o->fd, p, n, o->at, o->what);
        o->at += n;
        return hr;
    }
    memcpy(o->buf + o->n, p, n);
    o->n += n;
    return S_OK;
}

/* Pass 1: walk the old generation's headers up to src_end. */
static HRESULT collect(int fd, const char *what, const ddp_container_header *ch, const ddp_redirect *tab,
                       uint64_t src_end, ddp_compact_keep_fn keep, void *ctx, kept_rec **out, uint32_t *nout,
                       ddp_compact_result *res)
{
    uint64_t off = ch->redirect_len ? DDP_REDIRECT_FIRST_RECORD(ch->redirect_len) : DDP_CONTAINER_HEADER_SIZE;
    kept_rec *k = NULL;
    uint32_t n = 0, cap = 0;
    HRESULT hr = S_OK;
    while (off < src_end) {
        uint8_t hb[DDP_RECORD_HEADER_SIZE];
        ddp_record_header h;
        if (src_end - off < DDP_RECORD_HEADER_SIZE) {
            hr = ddp_fail(DDP_E_FILE_CORRUPT, "container %s offset %llu: an incomplete record before its end (%llu)",
                          what, (unsigned long long)off, (unsigned long long)src_end);
            break;
        }
        if (FAILED(hr = ddp_pread_exact(fd, hb, sizeof hb, off, what))) break;
        if (FAILED(hr = ddp_record_header_decode_any(hb, &h))) {
            hr = ddp_fail(hr, "container %s offset %llu: %s", what, (unsigned long long)off, ddp_error_detail());
            break;
        }
        uint64_t len = DDP_RECORD_HEADER_SIZE + (uint64_t)h.stored_len;
        if (len > src_end - off) {
            hr = ddp_fail(DDP_E_FILE_CORRUPT, "container %s offset %llu: a record runs past its end (%llu)", what,
                          (unsigned long long)off, (unsigned long long)src_end);
            break;
        }
        if (h.type == DDP_RECORD_SEAL) break;
        if (h.type == DDP_RECORD_REDIRECT) {
            hr = ddp_fail(DDP_E_FILE_CORRUPT, "container %s offset %llu: a redirection table after the first record",
                          what, (unsigned long long)off);
            break;
        }
        uint64_t id;
        if (!ddp_redirect_id_at(tab, off, &id)) {
            hr = ddp_fail(DDP_E_FILE_CORRUPT, "container %s offset %llu: a record its redirection table does not name",
                          what, (unsigned long long)off);
            break;
        }
        if (h.type != DDP_RECORD_DEAD && keep(ctx, &h, id)) {
            if (n == cap) {
                cap = cap ? cap * 2 : 256;
                k = ddp_xrealloc(k, (size_t)cap * sizeof *k);
            }
            k[n++] = (kept_rec){ id, off, len };
            res->kept++;
            res->kept_bytes += len;
        } else {
            res->dropped++;
            res->dropped_bytes += len;
        }
        off += len;
    }
    if (FAILED(hr)) {
        free(k);
        return hr;
    }
    if ((uint64_t)n * DDP_REDIRECT_ENTRY_SIZE > DDP_REDIRECT_MAX_LEN) {
        free(k);
        return ddp_fail(DDP_E_INVALID_STATE, "container %s: %u records are too many for one redirection table", what, n);
    }
    *out = k;
    *nout = n;
    return S_OK;
}

/* Pass 2: the new file, written through fd. */
static HRESULT write_generation(int src_fd, const char *what, const ddp_container_header *ch, const kept_rec *k,
                                uint32_t n, int fd, const char *dst_what, ddp_compact_result *res)
{
    uint64_t table_len = (uint64_t)n * DDP_REDIRECT_ENTRY_SIZE;
    uint64_t *ids = ddp_xmalloc((size_t)n * sizeof *ids);
    uint64_t *offs = ddp_xmalloc((size_t)n * sizeof *offs);
    uint64_t at = DDP_REDIRECT_FIRST_RECORD(table_len);
    for (uint32_t i = 0; i < n; i++) {
        ids[i] = k[i].id;
        offs[i] = at;
        at += k[i].len;
    }
    uint8_t *table = ddp_xmalloc((size_t)table_len);
    ddp_redirect_encode(ids, offs, n, table);
    free(ids);
    free(offs);

    ddp_container_header nh = *ch;
    nh.generation = ch->generation + 1;
    nh.created = (uint64_t)time(NULL);
    nh.redirect_len = table_len;
    uint8_t hb[DDP_CONTAINER_HEADER_SIZE];
    ddp_container_header_encode(&nh, hb);

    ddp_record_header th = { .type = DDP_RECORD_REDIRECT, .codec = 0 };
    th.stored_len = th.logical_len = (uint32_t)table_len;
    ddp_sha256(table, (size_t)table_len, th.hash);
    uint8_t thb[DDP_RECORD_HEADER_SIZE];
    ddp_record_header_encode(&th, table, thb);

    out_buf o = { .fd = fd, .what = dst_what, .at = 0, .buf = ddp_xmalloc(COPY_BUFFER), .n = 0 };
    uint8_t *rec = NULL;
    size_t rec_cap = 0;
    HRESULT hr = out_put(&o, hb, sizeof hb);
    if (SUCCEEDED(hr)) hr = out_put(&o, thb, sizeof thb);
    if (SUCCEEDED(hr)) hr = out_put(&o, table, (size_t)table_len);
    for (uint32_t i = 0; i < n && SUCCEEDED(hr); i++) {
        if (k[i].len > rec_cap) {
            rec_cap = (size_t)k[i].len;
            rec = ddp_xrealloc(rec, rec_cap);
        }
        if (FAILED(hr = ddp_pread_exact(src_fd, rec, (size_t)k[i].len, k[i].off, what))) break;
        ddp_record_header h;
        const char *why = NULL;
        if (FAILED(ddp_record_header_decode(rec, &h)))
            why = ddp_error_detail();
        else if (DDP_RECORD_HEADER_SIZE + (uint64_t)h.stored_len != k[i].len)
            why = "the record changed while it was compacted";
        else if (ddp_checksum64(h.stored_len ? (const void *)(rec + DDP_RECORD_HEADER_SIZE) : "", h.stored_len) !=
                 h.payload_checksum)
            why = "payload checksum mismatch";
        if (why) {
            hr = ddp_fail(DDP_E_FILE_CORRUPT, "container %s offset %llu (record %llu, still referenced): %s", what,
                          (unsigned long long)k[i].off, (unsigned long long)k[i].id, why);
            break;
        }
        hr = out_put(&o, rec, (size_t)k[i].len);
    }
    if (SUCCEEDED(hr)) {
        ddp_record_header sh = { .type = DDP_RECORD_SEAL };
        uint8_t shb[DDP_RECORD_HEADER_SIZE];
        ddp_record_header_encode(&sh, NULL, shb);
        hr = out_put(&o, shb, sizeof shb);
    }
    if (SUCCEEDED(hr)) hr = out_flush(&o);
    if (SUCCEEDED(hr)) {
        res->generation = nh.generation;
        res->new_len = o.at;
    }
    free(rec);
    free(o.buf);
    free(table);
    return hr;
}

HRESULT ddp_container_compact(int src_fd, const char *src_what, uint64_t src_end, int dirfd,
                              ddp_compact_keep_fn keep, void *ctx, ddp_compact_result *res)
{
    if (!keep || !res) return E_POINTER;
    memset(res, 0, sizeof *res);
    res->old_len = src_end;
    if (!src_what) src_what = "container";
    uint8_t hb[DDP_CONTAINER_HEADER_SIZE];
    ddp_container_header ch;
    HRESULT hr = ddp_pread_exact(src_fd, hb, sizeof hb, 0, src_what);
    if (FAILED(hr)) return hr;
    if (FAILED(hr = ddp_container_header_decode(hb, &ch)))
        return ddp_fail(hr, "container %s: %s", src_what, ddp_error_detail());
    if (ch.generation == UINT32_MAX)
        return ddp_fail(DDP_E_INVALID_STATE, "container %s is at the last generation", src_what);
    ddp_redirect tab;
    if (FAILED(hr = ddp_redirect_load(src_fd, src_what, &ch, &tab))) return hr;

    kept_rec *k = NULL;
    uint32_t n = 0;
    hr = collect(src_fd, src_what, &ch, &tab, src_end, keep, ctx, &k, &n, res);
    ddp_redirect_free(&tab);
    if (FAILED(hr)) return hr;
    if (n == 0) {
        free(k);
        return S_FALSE;
    }

    char final[40];
    snprintf(final, sizeof final, "%08X.%08X.ccc", ch.id, ch.generation + 1);
    char dst_what[512];
    snprintf(dst_what, sizeof dst_what, "%s (generation %u)", src_what, ch.generation + 1);
    int fd = -1;
    char tmpname[DDP_TMPNAME_MAX];
    hr = ddp_tmpfile_at(dirfd, 0600, &fd, tmpname);
    if (SUCCEEDED(hr)) hr = write_generation(src_fd, src_what, &ch, k, n, fd, dst_what, res);
    free(k);
    if (SUCCEEDED(hr)) hr = ddp_fsync_fd(fd, dst_what);
    if (SUCCEEDED(hr) && !tmpname[0]) hr = ddp_tmpfile_name_at(dirfd, fd, tmpname);
    if (SUCCEEDED(hr) && ddp_rename_noreplace(dirfd, tmpname, dirfd, final) != 0) {
        hr = errno == EEXIST ? ddp_fail(HRESULT_FROM_WIN32(ERROR_FILE_EXISTS),
                                        "container %s: its next generation %s already exists", src_what, final)
                             : ddp_fail_errno(errno, "naming %s", final);
    }
    if (SUCCEEDED(hr) && fsync(dirfd) != 0) hr = ddp_fail_errno(errno, "fsync of the directory of %s", final);
    if (FAILED(hr) && fd >= 0 && tmpname[0]) (void)unlinkat(dirfd, tmpname, 0);
    if (fd >= 0) close(fd);
    return hr;
}
