/* SPDX-License-Identifier: MIT */
/*
 * fuzz_identity.c: libFuzzer target for the identity file parser and the
 * GUID text form (lib/identity.c).
 *
 * The identity (store id + stub key) is read from the volume and, in a
 * restore, from the backup store. Each input is decoded as it is and with
 * its checksum recomputed; it is also parsed as the text of a GUID (the
 * form that appears in chunk-store paths). Checked:
 *
 *   - decode answers S_OK, DDP_E_INVALID_DATA or DDP_E_UNSUPPORTED_VERSION,
 *     with a detail on failure, and accepts only 72-byte files;
 *   - an accepted identity encodes back to exactly the input;
 *   - a GUID that parses formats to the canonical 38-character text, which
 *     parses back to the same 16 bytes.
 */
#include "fuzz_common.h"
#include "store/identity.h"

static void one(const uint8_t *buf, size_t size)
{
    ddp_clear_error();
    ddp_identity id;
    HRESULT hr = ddp_identity_decode(buf, size, &id);
    FZ_CHECK(hr == S_OK || hr == DDP_E_INVALID_DATA || hr == DDP_E_UNSUPPORTED_VERSION);
    FZ_CHECK_DETAIL(hr);
    if (FAILED(hr)) return;
    FZ_CHECK(size == DDP_IDENTITY_SIZE);
    uint8_t enc[DDP_IDENTITY_SIZE];
    ddp_identity_encode(&id, enc);
    FZ_CHECK(memcmp(enc, buf, DDP_IDENTITY_SIZE) == 0);
}

static void guid(const uint8_t *data, size_t size)
{
    if (size > 64) size = 64;
    char text[65];
    memcpy(text, data, size);
    text[size] = '\0';
    uint8_t id[DDP_STORE_ID_SIZE];
    memset(id, 0xA5, sizeof id);
    if (ddp_guid_parse(text, id) != 0) return;
    char out[39];
    ddp_guid_format(id, out);
    FZ_CHECK(strlen(out) == 38 && out[0] == '{' && out[37] == '}');
    for (const char *c = out; *c; c++) FZ_CHECK(strchr("{}-0123456789ABCDEF", *c) != NULL);
    uint8_t back[DDP_STORE_ID_SIZE];
    FZ_CHECK(ddp_guid_parse(out, back) == 0);
    FZ_CHECK(memcmp(back, id, sizeof id) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = fz_dup(data, size);
    one(buf, size);
    if (size == DDP_IDENTITY_SIZE) {
        fz_fix_checksum(buf, 64, 64);
        one(buf, size);
    }
    guid(data, size);
    free(buf);
    return 0;
}
