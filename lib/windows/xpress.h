/* SPDX-License-Identifier: MIT */
/*
 * windows/xpress.h: decoder of [MS-XCA] Plain LZ77 ("Xpress" without
 * Huffman), the compression of Windows' dedup data chunks.
 *
 * The stream: 32-bit little-endian flag words consumed from the most
 * significant bit; a 0 bit is a literal byte, a 1 bit a 16-bit match symbol
 * (distance (sym >> 3) + 1, length (sym & 7) + 3, longer lengths extended by
 * a shared nibble, then a byte, then a u16, then a u32, [MS-XCA] 2.4). The
 * stream ends where a match is due and the input is exhausted, or where a
 * new flag word is due and the input is exhausted.
 *
 * The decoder is bounded: it never writes outside out[0, out_n), never reads
 * outside in[0, in_n), and succeeds only when the stream decodes to exactly
 * out_n bytes and ends there. It is reentrant (no state outside the call).
 */
#ifndef DDP_WIN_XPRESS_H
#define DDP_WIN_XPRESS_H

#include <stddef.h>
#include <stdint.h>
#include <ddp/ddperror.h>

/* Decode in[0, in_n) into out[0, out_n). S_OK: out holds exactly out_n decoded
 * bytes. DDP_E_FILE_CORRUPT (detail starting with `what`, e.g. the record's
 * name) when the input is truncated, a match reaches before the output start,
 * the stream would produce more than out_n bytes or ends before out_n. On
 * failure out's content is unspecified (never to be returned as data). */
HRESULT ddp_win_xpress_decode(const uint8_t *in, size_t in_n, uint8_t *out, size_t out_n, const char *what);

#endif /* DDP_WIN_XPRESS_H */
