/* SPDX-License-Identifier: MIT */
/*
 * fuzz_catalog.c: libFuzzer target for the catalog parser (lib/catalog.c).
 *
 * The catalog names every container of a chunk store; a restore reads it
 * through the backup callback, so its bytes may come from an attacker. Each
 * input is decoded twice: as it is, and with its trailing checksum
 * recomputed (to reach the checks behind the checksum). Checked:
 *
 *   - the result is S_OK, DDP_E_INVALID_DATA or DDP_E_UNSUPPORTED_VERSION,
 *     with a detail on failure;
 *   - an accepted catalog has only known kinds, nonzero ids and
 *     generations, no unknown flags and no duplicates, and every entry is
 *     found again by ddp_catalog_find;
 *   - encoding it and decoding the result gives the same entries;
 *   - the container path made from each entry is a plain relative name
 *     ("Data/CCCCCCCC.GGGGGGGG.ccc"), whatever numbers the catalog holds.
 */
#include "store/catalog.h"
#include "fuzz_common.h"

static void check_path(const ddp_catalog_entry *e)
{
    char rel[40];
    memset(rel, 'x', sizeof rel);
    ddp_container_relpath(e->kind, e->id, e->generation, rel);
    FZ_CHECK(memchr(rel, '\0', sizeof rel) != NULL);
    FZ_CHECK(strstr(rel, "..") == NULL && rel[0] != '/');
    const char *slash = strchr(rel, '/');
    FZ_CHECK(slash && strchr(slash + 1, '/') == NULL);
    FZ_CHECK(strlen(slash + 1) == 21);
}

static void one(const uint8_t *buf, size_t size)
{
    ddp_clear_error();
    ddp_catalog c;
    HRESULT hr = ddp_catalog_decode(buf, size, &c);
    FZ_CHECK(hr == S_OK || hr == DDP_E_INVALID_DATA || hr == DDP_E_UNSUPPORTED_VERSION);
    FZ_CHECK_DETAIL(hr);
    if (FAILED(hr)) return;
    FZ_CHECK(c.count <= DDP_CATALOG_MAX_ENTRIES);
    for (uint32_t i = 0; i < c.count; i++) {
        const ddp_catalog_entry *e = &c.entries[i];
        FZ_CHECK(e->kind >= DDP_KIND_DATA && e->kind <= DDP_KIND_HOTSPOT);
        FZ_CHECK(e->id != 0 && e->generation != 0 && (e->flags & ~1u) == 0);
        FZ_CHECK(ddp_catalog_find(&c, e->kind, e->id) == e);
        if (i > 0) FZ_CHECK(c.entries[i - 1].kind != e->kind || c.entries[i - 1].id != e->id);
        check_path(e);
    }
    uint8_t *enc = NULL;
    size_t n = 0;
    FZ_CHECK(ddp_catalog_encode(&c, &enc, &n) == S_OK);
    ddp_catalog again;
    FZ_CHECK(ddp_catalog_decode(enc, n, &again) == S_OK);
    FZ_CHECK(again.count == c.count);
    FZ_CHECK(memcmp(again.store_id, c.store_id, sizeof c.store_id) == 0);
    for (uint32_t i = 0; i < c.count; i++)
        FZ_CHECK(memcmp(&again.entries[i], &c.entries[i], sizeof c.entries[i]) == 0);
    /* Replacing an entry keeps the count; a new one is found afterwards. */
    if (c.count > 0) {
        ddp_catalog_entry e = c.entries[c.count / 2];
        e.length ^= 1;
        ddp_catalog_put(&again, &e);
        FZ_CHECK(again.count == c.count);
        FZ_CHECK(ddp_catalog_find(&again, e.kind, e.id)->length == e.length);
    }
    ddp_catalog_entry fresh = { DDP_KIND_HOTSPOT, UINT32_MAX, 1, 0, 0 };
    if (!ddp_catalog_find(&again, fresh.kind, fresh.id)) {
        ddp_catalog_put(&again, &fresh);
        FZ_CHECK(ddp_catalog_find(&again, fresh.kind, fresh.id) != NULL);
    }
    free(enc);
    ddp_catalog_free(&again);
    ddp_catalog_free(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = fz_dup(data, size);
    one(buf, size);
    if (size >= 8) {
        fz_fix_checksum(buf, size - 8, size - 8);
        one(buf, size);
    }
    free(buf);
    return 0;
}
