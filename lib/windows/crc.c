/* SPDX-License-Identifier: MIT */
/*
 * windows/crc.c: CRC-32/IEEE and the CRC-64 of Windows' dedup containers,
 * table driven (slicing by 8 for CRC-32, which guards reparse points; one
 * table for CRC-64, which guards only 80- to 96-byte record headers).
 */
#include "windows/crc.h"

#define CRC32_POLY 0xEDB88320u
#define CRC64_POLY 0x9A6C9329AC4BC9B5ull

static uint32_t crc32_tab[8][256];
static uint64_t crc64_tab[256];

/* Built once, before main (the tables are plain data afterwards). */
__attribute__((constructor)) static void crc_tables_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ CRC32_POLY : c >> 1;
        crc32_tab[0][i] = c;
        uint64_t d = i;
        for (int k = 0; k < 8; k++) d = (d & 1) ? (d >> 1) ^ CRC64_POLY : d >> 1;
        crc64_tab[i] = d;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++) crc32_tab[t][i] = (crc32_tab[t - 1][i] >> 8) ^ crc32_tab[0][crc32_tab[t - 1][i] & 0xFF];
}

uint32_t ddp_win_crc32_update(uint32_t crc, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    uint32_t c = ~crc;
    while (n >= 8) {
        uint32_t lo = c ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
        c = crc32_tab[7][lo & 0xFF] ^ crc32_tab[6][(lo >> 8) & 0xFF] ^ crc32_tab[5][(lo >> 16) & 0xFF] ^
            crc32_tab[4][lo >> 24] ^ crc32_tab[3][hi & 0xFF] ^ crc32_tab[2][(hi >> 8) & 0xFF] ^
            crc32_tab[1][(hi >> 16) & 0xFF] ^ crc32_tab[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--) c = (c >> 8) ^ crc32_tab[0][(c ^ *p++) & 0xFF];
    return ~c;
}

uint32_t ddp_win_crc32(const void *buf, size_t n) { return ddp_win_crc32_update(0, buf, n); }

static uint64_t crc64_raw(uint64_t reg, const uint8_t *p, size_t n)
{
    while (n--) reg = (reg >> 8) ^ crc64_tab[(reg ^ *p++) & 0xFF];
    return reg;
}

uint64_t ddp_win_crc64(ddp_win_crc64_conv conv, const void *buf, size_t n)
{
    uint64_t init = conv == DDP_WIN_CRC64_INIT0 ? 0 : ~0ull;
    return ~crc64_raw(init, buf, n);
}

ddp_win_crc64_conv ddp_win_crc64_match(const void *buf, size_t n, uint64_t stored)
{
    if (ddp_win_crc64(DDP_WIN_CRC64_INIT0, buf, n) == stored) return DDP_WIN_CRC64_INIT0;
    if (ddp_win_crc64(DDP_WIN_CRC64_NVME, buf, n) == stored) return DDP_WIN_CRC64_NVME;
    return DDP_WIN_CRC64_UNKNOWN;
}

const char *ddp_win_crc64_name(ddp_win_crc64_conv conv)
{
    switch (conv) {
    case DDP_WIN_CRC64_INIT0: return "init0";
    case DDP_WIN_CRC64_NVME: return "nvme";
    default: return "unknown";
    }
}
