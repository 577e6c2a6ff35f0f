/* SPDX-License-Identifier: MIT */
/*
 * fuzz_container.c: libFuzzer target for the container parsers
 * (lib/container.c) and, through stream-map records, the stream-map parser.
 *
 * Input: one mode byte, then the bytes of a container file.
 *   mode bit 0: fix-up: before decoding, recompute the container header's
 *               checksum, and for each record its payload checksum, the
 *               sha256 of its decoded payload and its header checksum, so
 *               the fuzzer reaches zstd and the stream-map parser;
 *   mode bit 1: also run the local-file reader on the bytes (as a memfd):
 *               ddp_container_scan, ddp_container_read_record at every
 *               record it found and at hostile offsets (past the end, near
 *               2^63 and 2^64), and ddp_container_open_append, which cuts a
 *               torn tail.
 *
 * In memory, records are walked the way the restore engine meets them:
 * ddp_record_header_decode, then ddp_record_payload_decode into a buffer of
 * the logical length, then ddp_streammap_decode for stream-map records and
 * ddp_redirect_decode (and its lookups) for a compacted container's
 * redirection table.
 * Checked: every call answers one of its documented codes with a detail on
 * failure; a decoded header obeys the format's limits; the scanner and the
 * appender agree on where the valid records end.
 */
#include <fcntl.h>
#include <sys/stat.h>

#include "fuzz_common.h"
#include "store/redirect.h"
#include "store/streammap.h"

#define FZ_MAX_RECORDS 4096

/* Walk the records in memory, as the restore engine decodes them. */
static void walk_memory(uint8_t *buf, size_t size, int fix)
{
    size_t off = DDP_CONTAINER_HEADER_SIZE;
    for (int k = 0; k < FZ_MAX_RECORDS && size - off >= DDP_RECORD_HEADER_SIZE; k++) {
        uint8_t *rec = buf + off;
        if (fix) (void)fz_fix_record(rec, size - off);
        ddp_clear_error();
        ddp_record_header h;
        HRESULT hr = ddp_record_header_decode(rec, &h);
        FZ_CHECK(hr == S_OK || hr == DDP_E_FILE_CORRUPT);
        FZ_CHECK_DETAIL(hr);
        if (FAILED(hr)) return;
        FZ_CHECK((h.type >= DDP_RECORD_CHUNK && h.type <= DDP_RECORD_SEAL) || h.type == DDP_RECORD_REDIRECT);
        FZ_CHECK(h.type != DDP_RECORD_REDIRECT || (h.codec == 0 && h.logical_len > 0 &&
                                                   h.logical_len % DDP_REDIRECT_ENTRY_SIZE == 0 &&
                                                   h.logical_len <= DDP_REDIRECT_MAX_LEN));
        FZ_CHECK(h.codec == 0 || h.codec == 1);
        FZ_CHECK(h.type != DDP_RECORD_CHUNK || (h.logical_len >= 1 && h.logical_len <= 131072));
        FZ_CHECK(h.type != DDP_RECORD_STREAMMAP || h.logical_len <= DDP_STREAMMAP_MAX_LOGICAL);
        FZ_CHECK(h.codec != 0 || h.stored_len == h.logical_len);
        FZ_CHECK(h.stored_len <= ddp_compress_bound(h.logical_len));
        if ((uint64_t)h.stored_len > size - off - DDP_RECORD_HEADER_SIZE) return; /* runs past the end */
        if (h.logical_len <= FZ_FIX_MAX_LOGICAL) {
            uint8_t *dst = malloc(h.logical_len ? h.logical_len : 1);
            if (!dst) abort();
            ddp_clear_error();
            hr = ddp_record_payload_decode(&h, rec + DDP_RECORD_HEADER_SIZE, dst);
            FZ_CHECK(hr == S_OK || hr == DDP_E_FILE_CORRUPT);
            FZ_CHECK_DETAIL(hr);
            if (SUCCEEDED(hr) && h.type == DDP_RECORD_STREAMMAP) {
                ddp_streammap m;
                ddp_clear_error();
                hr = ddp_streammap_decode(dst, h.logical_len, &m);
                FZ_CHECK(hr == S_OK || hr == DDP_E_FILE_CORRUPT);
                FZ_CHECK_DETAIL(hr);
                ddp_streammap_free(&m);
            }
            if (SUCCEEDED(hr) && h.type == DDP_RECORD_REDIRECT) {
                /* The redirection table's own checks (store/redirect.c). */
                ddp_redirect r;
                ddp_clear_error();
                hr = ddp_redirect_decode(dst, h.logical_len, size, "fuzz", &r);
                FZ_CHECK(hr == S_OK || hr == DDP_E_FILE_CORRUPT);
                FZ_CHECK_DETAIL(hr);
                for (uint32_t i = 0; SUCCEEDED(hr) && i < r.count; i++) {
                    uint64_t at, id;
                    FZ_CHECK(ddp_redirect_resolve(&r, r.ids[i], "fuzz", &at) == S_OK && at == r.offsets[i]);
                    FZ_CHECK(ddp_redirect_id_at(&r, at, &id) && id == r.ids[i]);
                    FZ_CHECK(at + DDP_RECORD_HEADER_SIZE <= size);
                }
                ddp_redirect_free(&r);
            }
            free(dst);
        }
        off += DDP_RECORD_HEADER_SIZE + (size_t)h.stored_len;
        if (h.type == DDP_RECORD_SEAL) return;
    }
}

typedef struct found_list {
    uint64_t off[FZ_MAX_RECORDS];
    uint16_t type[FZ_MAX_RECORDS];
    size_t n;
} found_list;

static void on_found(void *ctx, const ddp_record_header *h, uint64_t off)
{
    found_list *l = ctx;
    if (l->n < FZ_MAX_RECORDS) {
        l->off[l->n] = off;
        l->type[l->n] = h->type;
        l->n++;
    }
}

static int file_code_ok(HRESULT hr)
{
    return hr == S_OK || hr == DDP_E_FILE_CORRUPT || hr == DDP_E_UNSUPPORTED_VERSION;
}

/* The local-file reader, on the bytes in a memfd. */
static void walk_file(const uint8_t *buf, size_t size)
{
    static found_list found, found2;
    char path[64];
    int fd = fz_memfile(buf, size, path);

    ddp_clear_error();
    found.n = 0;
    ddp_container_header hdr;
    uint64_t valid_end = 0;
    HRESULT hr = ddp_container_scan(path, &hdr, on_found, &found, &valid_end);
    FZ_CHECK(file_code_ok(hr));
    FZ_CHECK_DETAIL(hr);
    FZ_CHECK(valid_end <= size);
    for (size_t i = 0; i < found.n; i++) {
        FZ_CHECK(found.off[i] >= DDP_CONTAINER_HEADER_SIZE && found.off[i] < size);
        if (i > 0) FZ_CHECK(found.off[i] > found.off[i - 1]);
        if (found.type[i] == DDP_RECORD_SEAL || i >= 64) continue;
        ddp_record_header h;
        uint8_t *out = NULL;
        ddp_clear_error();
        hr = ddp_container_read_record(fd, "fuzz", found.off[i], found.type[i], NULL, &h, &out);
        FZ_CHECK(hr == S_OK || hr == DDP_E_FILE_CORRUPT);
        FZ_CHECK_DETAIL(hr);
        FZ_CHECK(FAILED(hr) || h.type == found.type[i]);
        free(out);
    }
    /* Offsets no valid record has: before the first record, at or past the end,
     * near 2^63 and 2^64. Each must fail cleanly. */
    const uint64_t hostile[] = { 0, 1, 63, size, size + 1, (uint64_t)INT64_MAX, (uint64_t)INT64_MAX - 63,
                                 (uint64_t)INT64_MAX + 1, UINT64_MAX - 63, UINT64_MAX };
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
        ddp_record_header h;
        uint8_t *out = NULL;
        ddp_clear_error();
        hr = ddp_container_read_record(fd, "fuzz", hostile[i], DDP_RECORD_CHUNK, NULL, &h, &out);
        FZ_CHECK(FAILED(hr));
        FZ_CHECK_DETAIL(hr);
        FZ_CHECK(out == NULL);
        uint8_t small[16];
        hr = ddp_container_read_record_into(fd, "fuzz", hostile[i], DDP_RECORD_CHUNK, NULL, &h, small, sizeof small);
        FZ_CHECK(FAILED(hr));
    }

    /* Re-open for appending: a torn tail is cut where the scanner stopped. */
    HRESULT scan_hr = ddp_container_scan(path, &hdr, NULL, NULL, &valid_end);
    ddp_container_writer *w = NULL;
    found2.n = 0;
    ddp_clear_error();
    hr = ddp_container_open_append(path, 0, on_found, &found2, &w);
    FZ_CHECK(file_code_ok(hr));
    FZ_CHECK_DETAIL(hr);
    if (SUCCEEDED(hr)) {
        FZ_CHECK(ddp_container_size(w) <= size);
        if (SUCCEEDED(scan_hr)) FZ_CHECK(ddp_container_size(w) == valid_end);
        struct stat st;
        FZ_CHECK(fstat(fd, &st) == 0 && (uint64_t)st.st_size == ddp_container_size(w));
        ddp_container_close(w);
    }
    close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t mode = data[0];
    uint8_t *buf = fz_dup(data + 1, size - 1);
    size_t n = size - 1;
    if (n >= DDP_CONTAINER_HEADER_SIZE) {
        if (mode & 1) fz_fix_checksum(buf, 56, 56);
        ddp_clear_error();
        ddp_container_header h;
        HRESULT hr = ddp_container_header_decode(buf, &h);
        FZ_CHECK(file_code_ok(hr));
        FZ_CHECK_DETAIL(hr);
        if (SUCCEEDED(hr)) {
            FZ_CHECK(h.kind >= 1 && h.kind <= 3 && h.id != 0 && h.generation != 0);
            uint8_t again[DDP_CONTAINER_HEADER_SIZE];
            ddp_container_header_encode(&h, again);
            FZ_CHECK(memcmp(again, buf, DDP_CONTAINER_HEADER_SIZE) == 0);
        }
        walk_memory(buf, n, mode & 1);
    }
    if (mode & 2) walk_file(buf, n);
    free(buf);
    return 0;
}
