/* SPDX-License-Identifier: MIT */
/*
 * fuzz_settings.c: libFuzzer target for the settings file parser
 * (lib/settings.c), settings.conf of a volume.
 *
 * Each input is decoded as it is (which almost always stops at the checksum
 * line) and again as the body of a file whose checksum line the harness
 * appends, so the key/value parser and every value rule are reached.
 * Checked:
 *
 *   - decode answers S_OK or DDP_E_INVALID_DATA, with a detail on failure;
 *   - accepted settings obey their documented limits, can be written back
 *     (ddp_settings_encode succeeds: a volume whose policy can be read can
 *     also be re-written by `ddp set`), and the written text decodes to
 *     settings that encode to the very same text;
 *   - every key reads back with ddp_settings_get, and the policy questions
 *     (excluded? no-compress?) answer for a path taken from the input.
 */
#include "fuzz_common.h"
#include "store/settings.h"

static void policy_questions(const ddp_settings *s, const uint8_t *data, size_t size)
{
    char path[256];
    size_t k = size < sizeof path - 1 ? size : sizeof path - 1;
    memcpy(path, data, k);
    path[k] = '\0';
    (void)ddp_settings_excluded(s, path);
    (void)ddp_settings_no_compress(s, path);
    for (const char *const *key = ddp_settings_keys(); *key; key++) {
        char *v = NULL;
        FZ_CHECK(ddp_settings_get(s, *key, &v) == S_OK && v != NULL);
        free(v);
    }
}

static void one(const char *buf, size_t size, const uint8_t *data, size_t dsize)
{
    ddp_clear_error();
    ddp_settings s;
    HRESULT hr = ddp_settings_decode(buf, size, &s);
    FZ_CHECK(hr == S_OK || hr == DDP_E_INVALID_DATA);
    FZ_CHECK_DETAIL(hr);
    if (FAILED(hr)) return;
    FZ_CHECK(s.usage_type >= DDP_USAGE_DEFAULT && s.usage_type <= DDP_USAGE_BACKUP);
    FZ_CHECK(s.min_file_size >= DDP_MIN_FILE_SIZE_FLOOR);
    FZ_CHECK(s.compression_level >= 1 && s.compression_level <= 19);
    FZ_CHECK(s.container_size_limit >= ((uint64_t)1 << 20));
    FZ_CHECK(s.hotspot_threshold >= 2);
    for (size_t i = 0; i < s.excluded_folders.count; i++) {
        const char *f = s.excluded_folders.items[i];
        FZ_CHECK(f[0] != '\0' && f[0] != '/');
        FZ_CHECK(strcmp(f, "..") != 0 && strncmp(f, "../", 3) != 0 && !strstr(f, "/../"));
    }
    policy_questions(&s, data, dsize);

    char *enc = NULL;
    size_t n = 0;
    hr = ddp_settings_encode(&s, &enc, &n);
    FZ_CHECK(hr == S_OK);
    ddp_settings again;
    FZ_CHECK(ddp_settings_decode(enc, n, &again) == S_OK);
    char *enc2 = NULL;
    size_t n2 = 0;
    FZ_CHECK(ddp_settings_encode(&again, &enc2, &n2) == S_OK);
    FZ_CHECK(n2 == n && memcmp(enc, enc2, n) == 0);
    free(enc);
    free(enc2);
    ddp_settings_free(&again);
    ddp_settings_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *raw = (char *)fz_dup(data, size);
    one(raw, size, data, size);
    free(raw);

    /* The input as the body, followed by a valid checksum line. */
    size_t body = size + (size > 0 && data[size - 1] != '\n');
    char *buf = malloc(body + 32);
    if (!buf) abort();
    if (size) memcpy(buf, data, size);
    if (body > size) buf[size] = '\n';
    int k = snprintf(buf + body, 32, "checksum = %016llX\n", (unsigned long long)ddp_checksum64(buf, body));
    one(buf, body + (size_t)k, data, size);
    free(buf);
    return 0;
}
