/* SPDX-License-Identifier: MIT */
/*
 * fuzz_manifest.c: libFuzzer target for the backup manifest parser
 * (ddp_manifest_parse, lib/manifest.c), the text every backup store reads
 * first: its paths become store paths and its sizes and pieces decide what
 * is read. Each input is parsed as it is and with a valid checksum line
 * appended, both in full and header-only. Checked:
 *
 *   - the result is S_OK, DDP_E_INVALID_DATA or DDP_E_UNSUPPORTED_VERSION,
 *     with a detail on failure;
 *   - an accepted manifest holds only store paths that begin with '/' and
 *     have no empty, "." or ".." component; each container's pieces are
 *     contiguous from 0 to its size; every path is found by
 *     ddp_manifest_find; levels are within the manifest's own;
 *   - encoding an accepted manifest and parsing the text gives back the
 *     same entries (and the same text again).
 */
#include "backup/manifest.h"
#include "fuzz_common.h"

static int good_store_path(const char *p)
{
    if (!p || p[0] != '/') return 0;
    const char *c = p + 1;
    for (;;) {
        const char *slash = strchr(c, '/');
        size_t n = slash ? (size_t)(slash - c) : strlen(c);
        if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.')) return 0;
        if (!slash) return 1;
        c = slash + 1;
    }
}

static void check_manifest(const ddp_manifest *m)
{
    for (size_t i = 0; i < m->count; i++) {
        const ddp_mf_entry *e = &m->entries[i];
        FZ_CHECK(good_store_path(e->path));
        FZ_CHECK(ddp_manifest_find(m, e->path) == e);
        if (e->type == 'F') FZ_CHECK(e->level <= m->level);
        if (e->type == 'C') {
            uint64_t at = 0;
            for (uint32_t k = 0; k < e->npieces; k++) {
                const ddp_mf_piece *pc = &e->pieces[k];
                FZ_CHECK(pc->offset == at);
                FZ_CHECK(pc->level <= m->level);
                FZ_CHECK(good_store_path(pc->file));
                at += pc->length;
            }
            FZ_CHECK(at == e->size);
        }
    }
}

static void one(const uint8_t *buf, size_t n)
{
    for (int header_only = 0; header_only < 2; header_only++) {
        ddp_manifest m;
        ddp_clear_error();
        HRESULT hr = ddp_manifest_parse(buf, n, "fuzz", header_only, &m);
        FZ_CHECK(hr == S_OK || hr == DDP_E_INVALID_DATA || hr == DDP_E_UNSUPPORTED_VERSION);
        FZ_CHECK_DETAIL(hr);
        if (FAILED(hr)) continue;
        if (!header_only) {
            check_manifest(&m);
            size_t len = 0;
            char *text = ddp_manifest_encode(&m, &len);
            ddp_manifest again;
            FZ_CHECK(ddp_manifest_parse((const uint8_t *)text, len, "fuzz", 0, &again) == S_OK);
            FZ_CHECK(again.count == m.count);
            for (size_t i = 0; i < m.count; i++) FZ_CHECK(strcmp(again.entries[i].path, m.entries[i].path) == 0);
            size_t len2 = 0;
            char *text2 = ddp_manifest_encode(&again, &len2);
            FZ_CHECK(len2 == len && memcmp(text, text2, len) == 0);
            free(text);
            free(text2);
            ddp_manifest_free(&again);
        }
        ddp_manifest_free(&m);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *raw = fz_dup(data, size);
    one(raw, size);
    free(raw);
    /* The input as the body, then a valid checksum line. */
    size_t body = size + (size > 0 && data[size - 1] != '\n');
    char *buf = ddp_xmalloc(body + 40);
    if (size) memcpy(buf, data, size);
    if (body > size) buf[size] = '\n';
    int k = snprintf(buf + body, 40, "checksum %016llX\n", (unsigned long long)ddp_checksum64(buf, body));
    one((const uint8_t *)buf, body + (size_t)k);
    free(buf);
    return 0;
}
