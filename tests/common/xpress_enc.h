/* SPDX-License-Identifier: MIT */
/*
 * tests/common/xpress_enc.h: a simple greedy [MS-XCA] Plain LZ77 encoder
 * (section 2.3), written for the tests and the test-volume generator only:
 * it produces the streams that lib/windows/xpress.c must decode. Not part of
 * the library (Windows writes the real streams).
 */
#ifndef DDP_TEST_XPRESS_ENC_H
#define DDP_TEST_XPRESS_ENC_H

#include <stddef.h>
#include <stdint.h>

/* Bytes of output that always suffice for n bytes of input. */
#define TX_XPRESS_BOUND(n) ((n) + (n) / 8 + 16)

/* Encode in[0, n) into out (cap bytes, at least TX_XPRESS_BOUND(n)); returns the
 * encoded size, 0 when cap is too small. max_len bounds match lengths (0: no
 * bound), so tests can steer which length encodings appear. */
size_t tx_xpress_encode(const uint8_t *in, size_t n, uint8_t *out, size_t cap, size_t max_len);

#endif
