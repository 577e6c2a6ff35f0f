/* SPDX-License-Identifier: MIT */
/*
 * fuzz_winrecord.c: libFuzzer target for the record parsers of Windows'
 * dedup containers (lib/windows/container.c): Cthr, Ckhr data and stream-map
 * headers, Smap entries, the Rrtl table, container names.
 *
 * The input is read as each kind of record at once (a container's bytes).
 * Checked: every parser answers S_OK or DDP_E_FILE_CORRUPT with a detail; an
 * accepted stream-map header has payload 8 + 64 * nentries within the bound;
 * for an accepted Rrtl whose items are in the input and sorted, the binary
 * search finds exactly what a linear search finds; a name accepted as a
 * container name prints back to the same name ignoring case.
 */
#include <strings.h>

#include "fuzz_common.h"
#include "windows/container.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = fz_dup(data, size);
    ddp_clear_error();
    ddp_win_cthr ct;
    HRESULT hr = ddp_win_cthr_parse(buf, size, "fuzz", &ct);
    FZ_CHECK(hr == S_OK || hr == DDP_E_FILE_CORRUPT);
    FZ_CHECK_DETAIL(hr);
    ddp_win_data_hdr dh;
    hr = ddp_win_data_hdr_parse(buf, size, "fuzz", &dh);
    FZ_CHECK(hr == S_OK || hr == DDP_E_FILE_CORRUPT);
    FZ_CHECK_DETAIL(hr);
    ddp_win_smap_hdr sh;
    hr = ddp_win_smap_hdr_parse(buf, size, "fuzz", &sh);
    FZ_CHECK(hr == S_OK || hr == DDP_E_FILE_CORRUPT);
    FZ_CHECK_DETAIL(hr);
    if (SUCCEEDED(hr)) {
        FZ_CHECK(sh.payload_size == 8 + 64 * sh.nentries);
        FZ_CHECK(sh.payload_size <= DDP_WIN_SMAP_MAX_SIZE);
        for (uint32_t i = 0; i < sh.nentries && DDP_WIN_SMAP_ENTRIES_AT + 64 * (size_t)(i + 1) <= size; i++) {
            ddp_win_smap_entry e;
            ddp_win_smap_entry_parse(buf + DDP_WIN_SMAP_ENTRIES_AT + 64 * (size_t)i, &e);
        }
    }
    ddp_win_rrtl rt;
    hr = ddp_win_rrtl_parse(buf, size, "fuzz", &rt);
    FZ_CHECK(hr == S_OK || hr == DDP_E_FILE_CORRUPT);
    FZ_CHECK_DETAIL(hr);
    if (SUCCEEDED(hr) && 0x20 + 8 * (size_t)rt.count <= size) {
        const uint8_t *items = buf + 0x20;
        if (SUCCEEDED(ddp_win_rrtl_check_sorted(items, rt.count, "fuzz"))) {
            for (uint32_t i = 0; i < rt.count && i < 64; i++) {
                uint32_t seq = ddp_get_le32(items + 8 * (size_t)i), off = 0;
                FZ_CHECK(ddp_win_rrtl_lookup(items, rt.count, seq, &off) == 1);
                FZ_CHECK(off == ddp_get_le32(items + 8 * (size_t)i + 4));
                uint32_t probe = seq + 1, o2;
                int lin = 0;
                for (uint32_t k = 0; k < rt.count; k++) lin |= ddp_get_le32(items + 8 * (size_t)k) == probe;
                FZ_CHECK(ddp_win_rrtl_lookup(items, rt.count, probe, &o2) == lin);
            }
        }
    }
    char name[64];
    size_t k = size < sizeof name - 1 ? size : sizeof name - 1;
    memcpy(name, buf, k);
    name[k] = 0;
    uint32_t cid, gen;
    if (ddp_win_ccc_name_parse(name, &cid, &gen)) {
        char back[22];
        ddp_win_ccc_name(cid, gen, back);
        FZ_CHECK(strcasecmp(back, name) == 0);
    }
    free(buf);
    return 0;
}
