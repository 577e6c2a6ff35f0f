/* SPDX-License-Identifier: MIT */
/*
 * fuzz_xpress.c: libFuzzer target for the [MS-XCA] Plain LZ77 decoder
 * (lib/windows/xpress.c).
 *
 * Input: u32 expected length (taken modulo 256 KiB + 1), then the stream.
 * The output buffer is exactly that long, so ASan sees any write past it.
 * Checked: the decoder answers S_OK or DDP_E_FILE_CORRUPT with a detail.
 * Also: the stream bytes, taken as data and encoded by the test encoder
 * (tests/common/xpress_enc.c), decode back exactly.
 */
#include "fuzz_common.h"
#include "windows/xpress.h"
#include "xpress_enc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = { data, size };
    size_t out_n = fz_u32(&in) % (256 * 1024 + 1);
    uint8_t *src = fz_dup(in.p, in.n);
    uint8_t *out = malloc(out_n ? out_n : 1);
    if (!out) abort();
    ddp_clear_error();
    HRESULT hr = ddp_win_xpress_decode(src, in.n, out, out_n, "fuzz");
    FZ_CHECK(hr == S_OK || hr == DDP_E_FILE_CORRUPT);
    FZ_CHECK_DETAIL(hr);
    free(out);

    size_t cap = TX_XPRESS_BOUND(in.n);
    uint8_t *enc = malloc(cap), *back = malloc(in.n ? in.n : 1);
    if (!enc || !back) abort();
    size_t en = tx_xpress_encode(src, in.n, enc, cap, in.n % 3 == 0 ? 0 : 20 + in.n % 300);
    FZ_CHECK(en > 0);
    FZ_CHECK(ddp_win_xpress_decode(enc, en, back, in.n, "fuzz") == S_OK);
    FZ_CHECK(in.n == 0 || memcmp(back, src, in.n) == 0);
    free(enc);
    free(back);
    free(src);
    return 0;
}
