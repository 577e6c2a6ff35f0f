/* SPDX-License-Identifier: MIT */
/*
 * windows/crc.h: the two checksums of Windows Server Data Deduplication's
 * on-disk format (docs/WINDOWS.md, "Checksums").
 *
 * - CRC-32/IEEE (poly 0xEDB88320 reflected, init and xorout 0xFFFFFFFF; the
 *   value zlib's crc32() gives). Guards the reparse point's trailer and the
 *   FeRp/RbRp/DdRp property chunks of format 0x0103.
 * - CRC-64 with the reflected polynomial 0x9A6C9329AC4BC9B5, which guards the
 *   container records (Cthr, Ckhr, Rrtl). Which register convention Windows
 *   uses is not settled publicly, so both are offered:
 *     DDP_WIN_CRC64_INIT0: init 0,  xorout ~0; check("123456789") = 0x87FF3F9B2B57C87B
 *     DDP_WIN_CRC64_NVME:  init ~0, xorout ~0; check("123456789") = 0xAE8B14860A799888
 *   ddp_win_crc64_match() says which of them (if any) a stored value is.
 *
 * All functions are pure and thread-safe (the tables are built at compile time).
 */
#ifndef DDP_WIN_CRC_H
#define DDP_WIN_CRC_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32/IEEE of n bytes (zlib's crc32(0, buf, n)). */
uint32_t ddp_win_crc32(const void *buf, size_t n);
/* Continue a CRC-32/IEEE: crc is a value this function or ddp_win_crc32 returned
 * (0 to start). ddp_win_crc32_update(ddp_win_crc32(a), b) == crc32 of a||b. */
uint32_t ddp_win_crc32_update(uint32_t crc, const void *buf, size_t n);

typedef enum ddp_win_crc64_conv {
    DDP_WIN_CRC64_UNKNOWN = 0, /* no record has told yet / matched neither */
    DDP_WIN_CRC64_INIT0 = 1,   /* init 0, xorout ~0 */
    DDP_WIN_CRC64_NVME = 2,    /* init ~0, xorout ~0 (CRC-64/NVME) */
} ddp_win_crc64_conv;

/* CRC-64 (reflected poly 0x9A6C9329AC4BC9B5) of n bytes in convention conv
 * (INIT0 or NVME; UNKNOWN is treated as NVME). */
uint64_t ddp_win_crc64(ddp_win_crc64_conv conv, const void *buf, size_t n);
/* Which convention gives `stored` over buf[0, n): INIT0, NVME, or UNKNOWN when
 * neither does. (The two cannot both match the same bytes unless the input is
 * crafted for it; INIT0 is then reported.) */
ddp_win_crc64_conv ddp_win_crc64_match(const void *buf, size_t n, uint64_t stored);
/* "init0", "nvme" or "unknown". */
const char *ddp_win_crc64_name(ddp_win_crc64_conv conv);

#endif /* DDP_WIN_CRC_H */
