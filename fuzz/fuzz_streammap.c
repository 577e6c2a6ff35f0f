/* SPDX-License-Identifier: MIT */
/*
 * fuzz_streammap.c: libFuzzer target for the stream-map parser
 * (lib/streammap.c).
 *
 * A stream map comes from a Stream/ container on the volume or, in a
 * restore, from a backup store; the restore engine decodes it before it
 * knows whether the chunks it names exist. The input is the logical payload
 * of a stream-map record. Checked for every input:
 *
 *   - the result is S_OK or DDP_E_FILE_CORRUPT, with a detail on failure;
 *   - an accepted map is self-consistent: every chunk is 1..128 KiB, the
 *     lengths add up to the file size, and re-encoding it gives back exactly
 *     the input bytes (every byte is either checked or carried);
 *   - random access (ddp_streammap_index/find) lands on the chunk that holds
 *     each probed offset.
 */
#include "fuzz_common.h"
#include "store/streammap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = fz_dup(data, size);
    ddp_clear_error();
    ddp_streammap m;
    HRESULT hr = ddp_streammap_decode(buf, size, &m);
    FZ_CHECK(hr == S_OK || hr == DDP_E_FILE_CORRUPT);
    FZ_CHECK_DETAIL(hr);
    if (FAILED(hr)) {
        /* A failed decode leaves nothing to free (but freeing must be safe). */
        ddp_streammap_free(&m);
        free(buf);
        return 0;
    }
    uint64_t total = 0;
    for (uint32_t i = 0; i < m.count; i++) {
        FZ_CHECK(m.entries[i].loc.logical_len >= 1 && m.entries[i].loc.logical_len <= 131072);
        FZ_CHECK(m.entries[i].loc.stored_len >= 1);
        total += m.entries[i].loc.logical_len;
    }
    FZ_CHECK(total == m.file_size);

    uint8_t *enc = NULL;
    size_t n = 0;
    FZ_CHECK(ddp_streammap_encode(&m, &enc, &n) == S_OK);
    FZ_CHECK(n == size && memcmp(enc, buf, size) == 0);
    free(enc);

    ddp_streammap_index(&m);
    if (m.count > 0) {
        uint64_t probes[5] = { 0, m.file_size - 1, m.file_size / 2, m.file_size / 3, m.file_size / 7 };
        for (int k = 0; k < 5; k++) {
            uint32_t e = ddp_streammap_find(&m, probes[k]);
            FZ_CHECK(e < m.count);
            FZ_CHECK(m.starts[e] <= probes[k] && probes[k] - m.starts[e] < m.entries[e].loc.logical_len);
        }
    }
    ddp_streammap_free(&m);
    free(buf);
    return 0;
}
