/* SPDX-License-Identifier: MIT */
/*
 * redirect.c: the redirection table of a compacted container: encoding,
 * the checks a table from disk or from a backup store must pass, and the
 * translation of local ids to offsets (store/redirect.h; bytes in
 * docs/FORMAT.md).
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "store/container.h"
#include "store/redirect.h"

void ddp_redirect_encode(const uint64_t *ids, const uint64_t *offsets, uint32_t n, uint8_t *out)
{
    for (uint32_t i = 0; i < n; i++) {
        ddp_put_le64(out + (size_t)i * DDP_REDIRECT_ENTRY_SIZE, ids[i]);
        ddp_put_le64(out + (size_t)i * DDP_REDIRECT_ENTRY_SIZE + 8, offsets[i]);
    }
}

HRESULT ddp_redirect_decode(const uint8_t *buf, size_t len, uint64_t container_len, const char *what,
                            ddp_redirect *r)
{
    if (!buf || !r) return E_POINTER;
    memset(r, 0, sizeof *r);
    if (!what) what = "container";
    if (len == 0 || len % DDP_REDIRECT_ENTRY_SIZE != 0 || len > DDP_REDIRECT_MAX_LEN)
        return ddp_fail(DDP_E_FILE_CORRUPT, "%s: redirection table of %zu bytes (a nonzero multiple of %u, at most %llu)",
                        what, len, DDP_REDIRECT_ENTRY_SIZE, (unsigned long long)DDP_REDIRECT_MAX_LEN);
    uint32_t n = (uint32_t)(len / DDP_REDIRECT_ENTRY_SIZE);
    uint64_t *ids = malloc((size_t)n * sizeof *ids);
    uint64_t *offs = malloc((size_t)n * sizeof *offs);
    if (!ids || !offs) {
        free(ids);
        free(offs);
        return E_OUTOFMEMORY;
    }
    HRESULT hr = S_OK;
    uint64_t first = DDP_REDIRECT_FIRST_RECORD(len);
    for (uint32_t i = 0; i < n; i++) {
        ids[i] = ddp_get_le64(buf + (size_t)i * DDP_REDIRECT_ENTRY_SIZE);
        offs[i] = ddp_get_le64(buf + (size_t)i * DDP_REDIRECT_ENTRY_SIZE + 8);
        const char *why = NULL;
        if (ids[i] < DDP_CONTAINER_HEADER_SIZE)
            why = "a local id inside the container header";
        else if (i > 0 && ids[i] <= ids[i - 1])
            why = "local ids not strictly increasing";
        else if (i == 0 && offs[i] != first)
            why = "the first record not right after the table";
        else if (i > 0 && offs[i] < offs[i - 1] + DDP_RECORD_HEADER_SIZE)
            why = "offsets not increasing by at least a record header";
        else if (offs[i] > UINT64_MAX - DDP_RECORD_HEADER_SIZE ||
                 (container_len != UINT64_MAX && offs[i] + DDP_RECORD_HEADER_SIZE > container_len))
            why = "an offset past the end of the container";
        if (why) {
            hr = ddp_fail(DDP_E_FILE_CORRUPT, "%s: redirection table entry %u (id %llu, offset %llu): %s", what, i,
                          (unsigned long long)ids[i], (unsigned long long)offs[i], why);
            break;
        }
    }
    if (FAILED(hr)) {
        free(ids);
        free(offs);
        return hr;
    }
    r->count = n;
    r->ids = ids;
    r->offsets = offs;
    return S_OK;
}

/* Index of the first element >= key in a strictly increasing array. */
static uint32_t lower_bound(const uint64_t *a, uint32_t n, uint64_t key)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (a[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

HRESULT ddp_redirect_resolve(const ddp_redirect *r, uint64_t id, const char *what, uint64_t *off)
{
    if (!r || !off) return E_POINTER;
    if (r->count == 0) {
        *off = id;
        return S_OK;
    }
    uint32_t i = lower_bound(r->ids, r->count, id);
    if (i == r->count || r->ids[i] != id)
        return ddp_fail(DDP_E_FILE_CORRUPT,
                        "record %llu of %s is not in its redirection table: garbage collection removed it",
                        (unsigned long long)id, what ? what : "the container");
    *off = r->offsets[i];
    return S_OK;
}

int ddp_redirect_id_at(const ddp_redirect *r, uint64_t off, uint64_t *id)
{
    if (!r || !id) return 0;
    if (r->count == 0) {
        *id = off;
        return 1;
    }
    uint32_t i = lower_bound(r->offsets, r->count, off);
    if (i == r->count || r->offsets[i] != off) return 0;
    *id = r->ids[i];
    return 1;
}

HRESULT ddp_redirect_load(int fd, const char *what, const ddp_container_header *h, ddp_redirect *r)
{
    if (!h || !r) return E_POINTER;
    memset(r, 0, sizeof *r);
    if (h->redirect_len == 0) return S_OK;
    struct stat st;
    if (fstat(fd, &st) != 0) return ddp_fail_errno(errno, "%s", what);
    if (h->redirect_len > DDP_REDIRECT_MAX_LEN) /* the header decoder bounds it too */
        return ddp_fail(DDP_E_FILE_CORRUPT, "%s: redirection table too long", what);
    size_t len = (size_t)h->redirect_len;
    uint8_t *buf = malloc(len);
    if (!buf) return E_OUTOFMEMORY;
    ddp_record_header rh;
    HRESULT hr = ddp_container_read_record_into(fd, what, DDP_REDIRECT_TABLE_OFFSET, DDP_RECORD_REDIRECT, NULL, &rh,
                                                buf, len);
    if (SUCCEEDED(hr)) hr = ddp_redirect_decode(buf, len, (uint64_t)st.st_size, what, r);
    free(buf);
    return hr;
}

void ddp_redirect_free(ddp_redirect *r)
{
    if (!r) return;
    free(r->ids);
    free(r->offsets);
    memset(r, 0, sizeof *r);
}
