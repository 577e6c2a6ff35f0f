/* SPDX-License-Identifier: MIT */
/*
 * tests/common/xpress_enc.c: greedy [MS-XCA] Plain LZ77 encoder for tests
 * (xpress_enc.h). One hash slot per 3-byte prefix, distances up to 8192,
 * lengths extended with the shared nibble, a byte, a u16 and a u32 exactly
 * as section 2.3 describes; the last flag word is padded with 1 bits.
 */
#include "xpress_enc.h"

#include <stdlib.h>
#include <string.h>

#define HBITS 15

static void put16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }

size_t tx_xpress_encode(const uint8_t *in, size_t n, uint8_t *out, size_t cap, size_t max_len)
{
    if (cap < TX_XPRESS_BOUND(n)) return 0;
    int64_t *tab = malloc(sizeof(int64_t) << HBITS);
    if (!tab) return 0;
    for (size_t i = 0; i < ((size_t)1 << HBITS); i++) tab[i] = -1;
    uint8_t *op = out, *flag_at = op, *nibble = NULL;
    op += 4;
    uint32_t flags = 0;
    unsigned nflags = 0;
    size_t i = 0;
    while (i < n) {
        size_t len = 0, dist = 0;
        if (i + 3 <= n) {
            uint32_t k = (uint32_t)in[i] | (uint32_t)in[i + 1] << 8 | (uint32_t)in[i + 2] << 16;
            uint32_t h = (k * 2654435761u) >> (32 - HBITS);
            int64_t c = tab[h];
            tab[h] = (int64_t)i;
            if (c >= 0 && i - (size_t)c <= 8192 && memcmp(in + c, in + i, 3) == 0) {
                size_t lim = n - i;
                if (max_len && lim > max_len) lim = max_len;
                len = 3;
                while (len < lim && in[(size_t)c + len] == in[i + len]) len++;
                dist = i - (size_t)c;
            }
        }
        if (len >= 3) {
            uint32_t L = (uint32_t)(len - 3), D = (uint32_t)(dist - 1);
            if (L < 7) {
                put16(op, D << 3 | L);
                op += 2;
            } else {
                put16(op, D << 3 | 7);
                op += 2;
                uint32_t r = L - 7;
                uint8_t nib = (uint8_t)(r < 15 ? r : 15);
                if (!nibble) {
                    nibble = op;
                    *op++ = nib;
                } else {
                    *nibble |= (uint8_t)(nib << 4);
                    nibble = NULL;
                }
                if (r >= 15) {
                    uint32_t r2 = r - 15;
                    if (r2 < 255) {
                        *op++ = (uint8_t)r2;
                    } else {
                        *op++ = 255;
                        if (L <= 0xFFFF) {
                            put16(op, L);
                            op += 2;
                        } else {
                            put16(op, 0);
                            put32(op + 2, L);
                            op += 6;
                        }
                    }
                }
            }
            flags = flags << 1 | 1;
            i += len;
        } else {
            *op++ = in[i++];
            flags <<= 1;
        }
        if (++nflags == 32) {
            put32(flag_at, flags);
            flag_at = op;
            op += 4;
            flags = 0;
            nflags = 0;
        }
    }
    /* Pad the last flag word with 1 bits: the decoder meets a "match" at the
     * end of the input, which ends the stream. */
    uint32_t pad = 32 - nflags;
    flags = pad == 32 ? 0xFFFFFFFFu : (flags << pad) | ((1u << pad) - 1);
    put32(flag_at, flags);
    free(tab);
    return (size_t)(op - out);
}
