/* SPDX-License-Identifier: MIT */
/*
 * identity.c: a volume's identity file and the text form of GUIDs.
 *
 * The identity (docs/FORMAT.md, 72 bytes) names the volume's chunk store
 * (a random 16-byte GUID) and holds the 32-byte key that authenticates every
 * stub on the volume:
 *
 *     0  magic "DDPIDNT1"   8  version = 1   12  flags = 0
 *     16 store id [16]      32 stub key [32] 64  xxh64 of bytes 0..63
 *
 * Decoding checks the size, the magic and the checksum (DDP_E_INVALID_DATA)
 * before it looks at the version (DDP_E_UNSUPPORTED_VERSION), so a version
 * number is only believed once the bytes are known to be intact.
 *
 * A GUID's text form is "{XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}": the 16
 * bytes in order as uppercase hex, no byte swapping. Parsing accepts either
 * case and optional braces (both or neither).
 */
#include <stdio.h>

#include "base/hash.h"
#include "store/identity.h"
#include "base/util.h"

static const uint8_t identity_magic[8] = { 'D', 'D', 'P', 'I', 'D', 'N', 'T', '1' };
#define IDENTITY_VERSION 1u

HRESULT ddp_identity_generate(ddp_identity *id)
{
    if (!id) return E_POINTER;
    if (ddp_random_bytes(id->store_id, sizeof id->store_id) != 0 ||
        ddp_random_bytes(id->key, sizeof id->key) != 0) {
        memset(id, 0, sizeof *id);
        return ddp_fail(E_FAIL, "identity: the system random number generator failed");
    }
    return S_OK;
}

void ddp_identity_encode(const ddp_identity *id, uint8_t out[DDP_IDENTITY_SIZE])
{
    memcpy(out, identity_magic, 8);
    ddp_put_le32(out + 8, IDENTITY_VERSION);
    ddp_put_le32(out + 12, 0);
    memcpy(out + 16, id->store_id, DDP_STORE_ID_SIZE);
    memcpy(out + 32, id->key, DDP_KEY_SIZE);
    ddp_put_le64(out + 64, ddp_checksum64(out, 64));
}

HRESULT ddp_identity_decode(const uint8_t *buf, size_t n, ddp_identity *id)
{
    if (!buf || !id) return E_POINTER;
    if (n != DDP_IDENTITY_SIZE)
        return ddp_fail(DDP_E_INVALID_DATA, "identity: wrong size %zu (expected %d)", n, DDP_IDENTITY_SIZE);
    if (memcmp(buf, identity_magic, 8) != 0)
        return ddp_fail(DDP_E_INVALID_DATA, "identity: bad magic (not a ddp identity file)");
    if (ddp_get_le64(buf + 64) != ddp_checksum64(buf, 64))
        return ddp_fail(DDP_E_INVALID_DATA, "identity: checksum mismatch (damaged file)");
    uint32_t version = ddp_get_le32(buf + 8);
    if (version != IDENTITY_VERSION)
        return ddp_fail(DDP_E_UNSUPPORTED_VERSION, "identity: unsupported version %u (this ddp reads version %u)",
                        version, IDENTITY_VERSION);
    uint32_t flags = ddp_get_le32(buf + 12);
    if (flags != 0)
        return ddp_fail(DDP_E_INVALID_DATA, "identity: unknown flags 0x%08x", flags);
    memcpy(id->store_id, buf + 16, DDP_STORE_ID_SIZE);
    memcpy(id->key, buf + 32, DDP_KEY_SIZE);
    return S_OK;
}

/* Number of bytes in each dash-separated group of the text form. */
static const int guid_groups[5] = { 4, 2, 2, 2, 6 };

void ddp_guid_format(const uint8_t id[DDP_STORE_ID_SIZE], char out[39])
{
    static const char hex[] = "0123456789ABCDEF";
    char *p = out;
    int b = 0;
    *p++ = '{';
    for (int g = 0; g < 5; g++) {
        if (g > 0) *p++ = '-';
        for (int i = 0; i < guid_groups[g]; i++, b++) {
            *p++ = hex[id[b] >> 4];
            *p++ = hex[id[b] & 15];
        }
    }
    *p++ = '}';
    *p = '\0';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

int ddp_guid_parse(const char *s, uint8_t id[DDP_STORE_ID_SIZE])
{
    if (!s || !id) return -1;
    uint8_t tmp[DDP_STORE_ID_SIZE];
    const char *p = s;
    int braced = (*p == '{');
    if (braced) p++;
    int b = 0;
    for (int g = 0; g < 5; g++) {
        if (g > 0 && *p++ != '-') return -1;
        for (int i = 0; i < guid_groups[g]; i++, b++) {
            int hi = hex_value(p[0]);
            if (hi < 0) return -1;
            int lo = hex_value(p[1]);
            if (lo < 0) return -1;
            tmp[b] = (uint8_t)(hi << 4 | lo);
            p += 2;
        }
    }
    if (braced && *p++ != '}') return -1;
    if (*p != '\0') return -1;
    memcpy(id, tmp, sizeof tmp);
    return 0;
}
