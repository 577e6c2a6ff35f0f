/* SPDX-License-Identifier: MIT */
/*
 * fuzz_winreparse.c: libFuzzer target for the parser of Windows' dedup
 * reparse point (lib/windows/reparse.c).
 *
 * The first byte chooses a mode; the rest is the buffer. Mode bit 0: make
 * the framing valid first (tag, both length words = size - 8 rounded to 4,
 * trailer CRC-32 recomputed), so that the format parsers behind the CRC are
 * reached. Checked for every input: the answer is S_OK or
 * DDP_E_INVALID_DATA with a detail; an accepted point has 1..64 entries
 * whose parts are contiguous from 0 to the file size, stream-map sizes of
 * 8 + 64 k, and a known format; GUID formatting round-trips.
 */
#include "fuzz_common.h"
#include "windows/crc.h"
#include "windows/reparse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t mode = data[0];
    size_t n = size - 1;
    if (mode & 1) n &= ~(size_t)3;
    uint8_t *buf = fz_dup(data + 1, n);
    if ((mode & 1) && n >= 16 && n <= DDP_WIN_REPARSE_MAX) {
        uint16_t N = (uint16_t)(n - 8);
        ddp_put_le32(buf, DDP_WIN_REPARSE_TAG);
        ddp_put_le16(buf + 4, N);
        ddp_put_le16(buf + 10, N);
        ddp_put_le32(buf + n - 4, ddp_win_crc32(buf + 8, N - 4));
    }
    ddp_clear_error();
    ddp_win_reparse rp;
    HRESULT hr = ddp_win_reparse_parse(buf, n, &rp);
    FZ_CHECK(hr == S_OK || hr == DDP_E_INVALID_DATA);
    FZ_CHECK_DETAIL(hr);
    if (SUCCEEDED(hr)) {
        FZ_CHECK(ddp_win_reparse_has_tag(buf, n));
        FZ_CHECK(rp.format == DDP_WIN_FMT_0201 || rp.format == DDP_WIN_FMT_0102 || rp.format == DDP_WIN_FMT_0103);
        FZ_CHECK(rp.nentries >= 1 && rp.nentries <= DDP_WIN_REPARSE_MAX_ENTRIES);
        uint64_t at = 0;
        for (uint32_t i = 0; i < rp.nentries; i++) {
            FZ_CHECK(rp.entries[i].part_begin == at);
            FZ_CHECK(rp.entries[i].part_end >= at);
            FZ_CHECK(rp.entries[i].smap_size >= 8 && (rp.entries[i].smap_size - 8) % 64 == 0);
            FZ_CHECK(rp.entries[i].hash_len == 16 || rp.entries[i].hash_len == 32);
            at = rp.entries[i].part_end;
        }
        FZ_CHECK(at == rp.file_size);
        FZ_CHECK(rp.chunk_crcs_bad <= rp.chunk_crcs_checked);
        char g[39];
        uint8_t back[16];
        ddp_win_guid_format(rp.store_guid, g);
        FZ_CHECK(ddp_win_guid_parse(g, back) == 0 && memcmp(back, rp.store_guid, 16) == 0);
    }
    free(buf);
    return 0;
}
