/* SPDX-License-Identifier: MIT */
/*
 * test_settings.c: unit tests for the volume settings (settings.h). Checks
 * the defaults of each usage type, the key list and file order, the text
 * form with its checksum line, the round trip of every key, every validation
 * error of ddp_settings_set (with the detail naming key and reason, and the
 * settings left unchanged), decode's refusals (tampered checksum, unknown
 * key, malformed or duplicate line, bad value, misplaced checksum line),
 * the usage_type -> minimum file age rule, and the component-wise folder
 * and case-insensitive type matching of ddp_settings_excluded/no_compress.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/hash.h"
#include "store/settings.h"
#include "testutil.h"
#include "base/util.h"

/* body + its checksum line. malloc'd. */
static char *with_checksum(const char *body)
{
    return ddp_xasprintf("%schecksum = %016llX\n", body, (unsigned long long)ddp_checksum64(body, strlen(body)));
}

static char *get(const ddp_settings *s, const char *key)
{
    char *v = NULL;
    assert_int_equal(ddp_settings_get(s, key, &v), S_OK);
    assert_non_null(v);
    return v;
}

static void assert_get(const ddp_settings *s, const char *key, const char *want)
{
    char *v = get(s, key);
    assert_string_equal(v, want);
    free(v);
}

static void assert_detail_has(const char *part)
{
    if (!strstr(ddp_error_detail(), part)) fail_msg("detail '%s' lacks '%s'", ddp_error_detail(), part);
}

static void test_defaults(void **state)
{
    (void)state;
    ddp_settings s;
    ddp_settings_defaults(&s, DDP_USAGE_DEFAULT);
    assert_int_equal(s.usage_type, DDP_USAGE_DEFAULT);
    assert_int_equal(s.min_file_age_days, 3);
    assert_int_equal(s.min_file_size, 32768);
    assert_int_equal(s.compression_level, 3);
    assert_int_equal(s.container_size_limit, 1073741824ull);
    assert_int_equal(s.hotspot_threshold, 100);
    assert_int_equal(s.enabled, 1);
    assert_int_equal(s.excluded_folders.count, 0);
    assert_int_equal(s.excluded_types.count, 0);
    assert_int_equal(s.no_compress_types.count, 17);
    assert_get(&s, "no_compress_types", "zip,gz,bz2,xz,zst,7z,rar,jpg,jpeg,png,gif,mp3,mp4,mkv,avi,mov,webm");
    ddp_settings_free(&s);

    ddp_settings_defaults(&s, DDP_USAGE_HYPERV);
    assert_int_equal(s.usage_type, DDP_USAGE_HYPERV);
    assert_int_equal(s.min_file_age_days, 3);
    ddp_settings_free(&s);

    ddp_settings_defaults(&s, DDP_USAGE_BACKUP);
    assert_int_equal(s.usage_type, DDP_USAGE_BACKUP);
    assert_int_equal(s.min_file_age_days, 0);
    ddp_settings_free(&s);

    ddp_settings_defaults(&s, 42);
    assert_int_equal(s.usage_type, DDP_USAGE_DEFAULT);
    ddp_settings_free(&s);
}

static void test_keys(void **state)
{
    (void)state;
    static const char *const want[] = { "usage_type",        "min_file_age_days", "min_file_size",
                                        "excluded_folders",  "excluded_types",    "no_compress_types",
                                        "compression_level", "container_size_limit", "hotspot_threshold",
                                        "enabled", "gc_threshold" };
    const char *const *k = ddp_settings_keys();
    size_t i = 0;
    for (; k[i]; i++) {
        assert_true(i < 11);
        assert_string_equal(k[i], want[i]);
    }
    assert_int_equal(i, 11);
}

static void test_encode_form(void **state)
{
    (void)state;
    ddp_settings s;
    ddp_settings_defaults(&s, DDP_USAGE_HYPERV);
    char *text = NULL;
    size_t n = 0;
    assert_int_equal(ddp_settings_encode(&s, &text, &n), S_OK);
    assert_int_equal(strlen(text), n);
    assert_int_equal(text[n - 1], '\n');

    /* keys appear in the fixed order, one "key = value" line each */
    static const char *const lines[] = {
        "\nusage_type = HyperV\n",
        "\nmin_file_age_days = 3\n",
        "\nmin_file_size = 32768\n",
        "\nexcluded_folders = \n",
        "\nexcluded_types = \n",
        "\nno_compress_types = zip,gz,bz2,xz,zst,7z,rar,jpg,jpeg,png,gif,mp3,mp4,mkv,avi,mov,webm\n",
        "\ncompression_level = 3\n",
        "\ncontainer_size_limit = 1073741824\n",
        "\nhotspot_threshold = 100\n",
        "\nenabled = true\n",
    };
    const char *prev = text;
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        const char *at = strstr(text, lines[i]);
        if (!at) fail_msg("missing line %s", lines[i]);
        assert_true(at > prev || i == 0);
        prev = at;
    }

    /* the last line is the checksum of every byte before it */
    const char *last = text + n - 1;
    while (last > text && last[-1] != '\n') last--;
    assert_int_equal(strlen(last), strlen("checksum = 0123456789ABCDEF\n"));
    char want[64];
    snprintf(want, sizeof want, "checksum = %016llX\n",
             (unsigned long long)ddp_checksum64(text, (size_t)(last - text)));
    assert_string_equal(last, want);
    assert_true(last > prev);

    free(text);
    ddp_settings_free(&s);
}

static void test_round_trip(void **state)
{
    (void)state;
    ddp_settings s, back;
    ddp_settings_defaults(&s, DDP_USAGE_DEFAULT);
    assert_int_equal(ddp_settings_set(&s, "usage_type", "backup"), S_OK);
    assert_int_equal(ddp_settings_set(&s, "min_file_age_days", "12"), S_OK);
    assert_int_equal(ddp_settings_set(&s, "min_file_size", "65536"), S_OK);
    assert_int_equal(ddp_settings_set(&s, "excluded_folders", "/srv/tmp/, home/bob/cache ,a b/c"), S_OK);
    assert_int_equal(ddp_settings_set(&s, "excluded_types", ".ISO,Tmp"), S_OK);
    assert_int_equal(ddp_settings_set(&s, "no_compress_types", "zip, .ZST"), S_OK);
    assert_int_equal(ddp_settings_set(&s, "compression_level", "19"), S_OK);
    assert_int_equal(ddp_settings_set(&s, "container_size_limit", "256M"), S_OK);
    assert_int_equal(ddp_settings_set(&s, "hotspot_threshold", "7"), S_OK);
    assert_int_equal(ddp_settings_set(&s, "enabled", "false"), S_OK);

    char *text = NULL;
    size_t n = 0;
    assert_int_equal(ddp_settings_encode(&s, &text, &n), S_OK);
    assert_int_equal(ddp_settings_decode(text, n, &back), S_OK);

    assert_int_equal(back.usage_type, DDP_USAGE_BACKUP);
    assert_int_equal(back.min_file_age_days, 12);
    assert_int_equal(back.min_file_size, 65536);
    assert_int_equal(back.compression_level, 19);
    assert_int_equal(back.container_size_limit, 256ull << 20);
    assert_int_equal(back.hotspot_threshold, 7);
    assert_int_equal(back.enabled, 0);
    assert_int_equal(back.excluded_folders.count, 3);
    assert_string_equal(back.excluded_folders.items[0], "srv/tmp");
    assert_string_equal(back.excluded_folders.items[1], "home/bob/cache");
    assert_string_equal(back.excluded_folders.items[2], "a b/c");
    assert_int_equal(back.excluded_types.count, 2);
    assert_string_equal(back.excluded_types.items[0], "iso");
    assert_string_equal(back.excluded_types.items[1], "tmp");
    assert_int_equal(back.no_compress_types.count, 2);
    assert_string_equal(back.no_compress_types.items[1], "zst");

    for (const char *const *k = ddp_settings_keys(); *k; k++) {
        char *a = get(&s, *k), *b = get(&back, *k);
        assert_string_equal(a, b);
        free(a);
        free(b);
    }
    assert_get(&back, "usage_type", "Backup");
    assert_get(&back, "enabled", "false");
    assert_get(&back, "container_size_limit", "268435456");
    assert_get(&back, "excluded_folders", "srv/tmp,home/bob/cache,a b/c");

    /* encoding is deterministic */
    char *text2 = NULL;
    size_t n2 = 0;
    assert_int_equal(ddp_settings_encode(&back, &text2, &n2), S_OK);
    assert_int_equal(n, n2);
    assert_memory_equal(text, text2, n);

    free(text);
    free(text2);
    ddp_settings_free(&s);
    ddp_settings_free(&back);
}

/* set must fail with E_INVALIDARG, a detail containing `why`, and no change. */
static void set_fails(const char *key, const char *value, const char *why)
{
    ddp_settings s;
    ddp_settings_defaults(&s, DDP_USAGE_DEFAULT);
    char *before = NULL, *after = NULL;
    size_t n1, n2;
    assert_int_equal(ddp_settings_encode(&s, &before, &n1), S_OK);
    ddp_clear_error();
    HRESULT hr = ddp_settings_set(&s, key, value);
    if (hr != E_INVALIDARG) fail_msg("set %s='%s' gave 0x%08x", key, value, (unsigned)hr);
    assert_detail_has(why);
    assert_int_equal(ddp_settings_encode(&s, &after, &n2), S_OK);
    assert_int_equal(n1, n2);
    assert_memory_equal(before, after, n1);
    free(before);
    free(after);
    ddp_settings_free(&s);
}

static void test_set_validation(void **state)
{
    (void)state;
    set_fails("min_file_size", "1000", "min_file_size: 1000 is below the minimum 32768");
    set_fails("min_file_size", "32767", "min_file_size: 32767 is below the minimum 32768");
    set_fails("min_file_size", "abc", "min_file_size: 'abc' is not a whole number");
    set_fails("min_file_size", "", "min_file_size");
    set_fails("min_file_size", "-5", "not a whole number");
    set_fails("min_file_size", "12x", "not a whole number");
    set_fails("min_file_size", "99999999999999999999", "too large");
    set_fails("min_file_size", "17179869184G", "too large");
    set_fails("min_file_age_days", "4294967296", "min_file_age_days: '4294967296' is too large");
    set_fails("min_file_age_days", "3K", "not a whole number");
    set_fails("min_file_age_days", "1.5", "not a whole number");
    set_fails("compression_level", "0", "compression_level: 0 is outside 1..19");
    set_fails("compression_level", "20", "compression_level: 20 is outside 1..19");
    set_fails("container_size_limit", "1048575", "container_size_limit: 1048575 is below the minimum 1048576");
    set_fails("container_size_limit", "512K", "container_size_limit: 524288 is below the minimum 1048576");
    set_fails("container_size_limit", "1T", "container_size_limit");
    set_fails("hotspot_threshold", "1", "hotspot_threshold: 1 is below the minimum 2");
    set_fails("hotspot_threshold", "0", "hotspot_threshold");
    set_fails("enabled", "maybe", "enabled: 'maybe' is not true or false");
    set_fails("enabled", "1", "enabled");
    set_fails("usage_type", "Database", "usage_type: 'Database' is not Default, HyperV or Backup");
    set_fails("excluded_folders", "a/../b", "excluded_folders: 'a/../b' has a '..' component");
    set_fails("excluded_folders", "ok, ..", "'..' component");
    set_fails("excluded_folders", "/", "volume root");
    set_fails("excluded_folders", "./", "volume root");
    set_fails("excluded_types", ".", "excluded_types");
    set_fails("excluded_types", "tar.gz", "excluded_types: 'tar.gz'");
    set_fails("no_compress_types", "a/b", "no_compress_types");
    set_fails("excluded_types", "iso\ntmp", "control character");
    set_fails("nonsense", "1", "unknown setting 'nonsense'");
    set_fails("checksum", "0", "unknown setting");
}

static void test_set_accepts(void **state)
{
    (void)state;
    ddp_settings s;
    ddp_settings_defaults(&s, DDP_USAGE_DEFAULT);
    assert_int_equal(ddp_settings_set(&s, "compression_level", "1"), S_OK);
    assert_int_equal(s.compression_level, 1);
    assert_int_equal(ddp_settings_set(&s, "compression_level", " 19 "), S_OK);
    assert_int_equal(s.compression_level, 19);
    assert_int_equal(ddp_settings_set(&s, "container_size_limit", "1048576"), S_OK);
    assert_int_equal(s.container_size_limit, 1048576);
    assert_int_equal(ddp_settings_set(&s, "container_size_limit", "1M"), S_OK);
    assert_int_equal(s.container_size_limit, 1048576);
    assert_int_equal(ddp_settings_set(&s, "container_size_limit", "2048k"), S_OK);
    assert_int_equal(s.container_size_limit, 2097152);
    assert_int_equal(ddp_settings_set(&s, "container_size_limit", "2G"), S_OK);
    assert_int_equal(s.container_size_limit, 2147483648ull);
    assert_int_equal(ddp_settings_set(&s, "min_file_size", "32768"), S_OK);
    assert_int_equal(s.min_file_size, 32768);
    assert_int_equal(ddp_settings_set(&s, "min_file_size", "64K"), S_OK);
    assert_int_equal(s.min_file_size, 65536);
    assert_int_equal(ddp_settings_set(&s, "hotspot_threshold", "2"), S_OK);
    assert_int_equal(s.hotspot_threshold, 2);
    assert_int_equal(ddp_settings_set(&s, "enabled", "FALSE"), S_OK);
    assert_int_equal(s.enabled, 0);
    assert_int_equal(ddp_settings_set(&s, "enabled", "True"), S_OK);
    assert_int_equal(s.enabled, 1);
    assert_int_equal(ddp_settings_set(&s, "min_file_age_days", "0"), S_OK);
    assert_int_equal(s.min_file_age_days, 0);

    /* lists: normalized, deduplicated, empty items dropped, empty value clears */
    assert_int_equal(ddp_settings_set(&s, "excluded_folders", "/a/b/, a//b, ./c/./d/,, e"), S_OK);
    assert_get(&s, "excluded_folders", "a/b,c/d,e");
    assert_int_equal(ddp_settings_set(&s, "excluded_types", ".ISO, iso, ..Tmp ,BAK"), S_OK);
    assert_get(&s, "excluded_types", "iso,tmp,bak");
    assert_int_equal(ddp_settings_set(&s, "excluded_types", ""), S_OK);
    assert_int_equal(s.excluded_types.count, 0);
    assert_int_equal(ddp_settings_set(&s, "no_compress_types", " , "), S_OK);
    assert_int_equal(s.no_compress_types.count, 0);

    char *v = NULL;
    assert_int_equal(ddp_settings_get(&s, "nonsense", &v), E_INVALIDARG);
    assert_null(v);
    ddp_settings_free(&s);
}

static void test_usage_type_sets_min_age(void **state)
{
    (void)state;
    ddp_settings s;
    ddp_settings_defaults(&s, DDP_USAGE_DEFAULT);
    assert_int_equal(ddp_settings_set(&s, "min_file_age_days", "30"), S_OK);
    assert_int_equal(ddp_settings_set(&s, "usage_type", "BACKUP"), S_OK);
    assert_int_equal(s.usage_type, DDP_USAGE_BACKUP);
    assert_int_equal(s.min_file_age_days, 0);
    assert_get(&s, "usage_type", "Backup");
    assert_int_equal(ddp_settings_set(&s, "usage_type", "hyperv"), S_OK);
    assert_int_equal(s.usage_type, DDP_USAGE_HYPERV);
    assert_int_equal(s.min_file_age_days, 3);
    assert_get(&s, "usage_type", "HyperV");
    assert_int_equal(ddp_settings_set(&s, "usage_type", "Backup"), S_OK);
    assert_int_equal(ddp_settings_set(&s, "usage_type", "default"), S_OK);
    assert_int_equal(s.min_file_age_days, 3);
    assert_get(&s, "usage_type", "Default");
    ddp_settings_free(&s);

    /* In a file, an explicit age wins over the usage type's, in any order. */
    const char *bodies[] = {
        "usage_type = Backup\nmin_file_age_days = 7\n",
        "min_file_age_days = 7\nusage_type = Backup\n",
    };
    for (int i = 0; i < 2; i++) {
        char *text = with_checksum(bodies[i]);
        assert_int_equal(ddp_settings_decode(text, strlen(text), &s), S_OK);
        assert_int_equal(s.usage_type, DDP_USAGE_BACKUP);
        assert_int_equal(s.min_file_age_days, 7);
        ddp_settings_free(&s);
        free(text);
    }
    /* Without one, the usage type's default applies; other keys keep defaults. */
    char *text = with_checksum("usage_type = Backup\n");
    assert_int_equal(ddp_settings_decode(text, strlen(text), &s), S_OK);
    assert_int_equal(s.min_file_age_days, 0);
    assert_int_equal(s.compression_level, 3);
    assert_int_equal(s.no_compress_types.count, 17);
    ddp_settings_free(&s);
    free(text);
}

/* decode must fail with DDP_E_INVALID_DATA and a detail containing `why`. */
static void decode_fails(const char *text, size_t n, const char *why)
{
    ddp_settings s;
    memset(&s, 0x5A, sizeof s);
    ddp_clear_error();
    HRESULT hr = ddp_settings_decode(text, n, &s);
    if (hr != DDP_E_INVALID_DATA) fail_msg("decode of '%.*s' gave 0x%08x", (int)n, text, (unsigned)hr);
    assert_detail_has(why);
    ddp_settings_free(&s); /* safe after a failure */
}

static void decode_body_fails(const char *body, const char *why)
{
    char *text = with_checksum(body);
    decode_fails(text, strlen(text), why);
    free(text);
}

static void test_decode_checksum(void **state)
{
    (void)state;
    ddp_settings s;
    ddp_settings_defaults(&s, DDP_USAGE_DEFAULT);
    char *text = NULL;
    size_t n = 0;
    assert_int_equal(ddp_settings_encode(&s, &text, &n), S_OK);
    ddp_settings_free(&s);

    /* change a value without updating the checksum */
    char *p = strstr(text, "compression_level = 3");
    assert_non_null(p);
    p[strlen("compression_level = ")] = '9';
    decode_fails(text, n, "checksum mismatch");
    decode_fails(text, n, "line 13");
    p[strlen("compression_level = ")] = '3';
    assert_int_equal(ddp_settings_decode(text, n, &s), S_OK);
    ddp_settings_free(&s);

    /* flip every byte before the checksum value: always refused */
    char *last = text + n - 1;
    while (last[-1] != '\n') last--;
    for (size_t i = 0; i < n; i++) {
        char c = text[i];
        text[i] = (char)(c ^ 0x01);
        ddp_settings t;
        HRESULT hr = ddp_settings_decode(text, n, &t);
        if (SUCCEEDED(hr)) {
            /* only a change of case in the hex digits could survive */
            fail_msg("flip at %zu accepted", i);
        }
        assert_int_equal(hr, DDP_E_INVALID_DATA);
        text[i] = c;
    }

    /* the checksum line: bad digits, wrong length, missing */
    size_t lastoff = (size_t)(last - text);
    char *copy = ddp_strdup(text);
    copy[n - 2] = 'G';
    decode_fails(copy, n, "16 hex digits");
    free(copy);
    copy = ddp_strdup(text);
    memmove(copy + n - 2, copy + n - 1, 2); /* drop one digit */
    decode_fails(copy, n - 1, "16 hex digits");
    free(copy);
    decode_fails(text, lastoff, "checksum line");
    decode_fails("", 0, "checksum line");

    /* lower-case hex digits and a missing final newline are fine */
    copy = ddp_strdup(text);
    for (char *c = copy + lastoff; *c; c++)
        if (*c >= 'A' && *c <= 'F') *c = (char)(*c - 'A' + 'a');
    assert_int_equal(ddp_settings_decode(copy, n - 1, &s), S_OK);
    ddp_settings_free(&s);
    free(copy);

    /* anything after the checksum line */
    copy = ddp_xasprintf("%senabled = true\n", text);
    decode_fails(copy, strlen(copy), "checksum line");
    free(copy);
    free(text);
}

static void test_decode_lines(void **state)
{
    (void)state;
    decode_body_fails("usage_type = Default\nfrobnicate = 3\n", "line 2: unknown key 'frobnicate'");
    decode_body_fails("usage_type = Default\n\njust some words\n", "line 3: expected 'key = value'");
    decode_body_fails("enabled = true\nenabled = false\n", "line 2: 'enabled' appears again (first on line 1)");
    decode_body_fails("# comment\nmin_file_size = 1000\n",
                      "line 2: min_file_size: 1000 is below the minimum 32768");
    decode_body_fails("compression_level = 3\nchecksum = 0000000000000000\n", "line 2: the checksum line must be the last");
    decode_body_fails("usage_type = Sometimes\n", "line 1: usage_type");
    decode_body_fails("= 3\n", "line 1: unknown key ''");

    /* a NUL byte anywhere */
    char *text = with_checksum("usage_type = Default\nenabled = true\n");
    size_t n = strlen(text);
    text[25] = '\0';
    decode_fails(text, n, "line 2: contains a NUL byte");
    free(text);

    /* comments, blank lines, spacing and CRLF are accepted */
    ddp_settings s;
    text = with_checksum("# policy\n\n   # indented comment\r\n  usage_type=hyperv  \r\nhotspot_threshold =   9\n\n");
    assert_int_equal(ddp_settings_decode(text, strlen(text), &s), S_OK);
    assert_int_equal(s.usage_type, DDP_USAGE_HYPERV);
    assert_int_equal(s.hotspot_threshold, 9);
    ddp_settings_free(&s);
    free(text);

    /* only the checksum line: every key at its default */
    text = with_checksum("");
    assert_int_equal(ddp_settings_decode(text, strlen(text), &s), S_OK);
    assert_int_equal(s.usage_type, DDP_USAGE_DEFAULT);
    assert_int_equal(s.min_file_age_days, 3);
    ddp_settings_free(&s);
    free(text);
}

static void test_encode_refuses_unwritable_items(void **state)
{
    (void)state;
    ddp_settings s;
    ddp_settings_defaults(&s, DDP_USAGE_DEFAULT);
    s.excluded_folders.items = malloc(sizeof(char *));
    assert_non_null(s.excluded_folders.items);
    s.excluded_folders.items[0] = ddp_strdup("a,b");
    s.excluded_folders.count = 1;
    char *text = NULL;
    size_t n = 0;
    assert_int_equal(ddp_settings_encode(&s, &text, &n), E_INVALIDARG);
    assert_detail_has("excluded_folders");
    ddp_settings_free(&s);
}

static void test_excluded(void **state)
{
    (void)state;
    ddp_settings s;
    ddp_settings_defaults(&s, DDP_USAGE_DEFAULT);
    assert_int_equal(ddp_settings_set(&s, "excluded_folders", "a/b, logs"), S_OK);
    assert_int_equal(ddp_settings_set(&s, "excluded_types", "iso,.TMP"), S_OK);

    assert_true(ddp_settings_excluded(&s, "a/b"));
    assert_true(ddp_settings_excluded(&s, "a/b/"));
    assert_true(ddp_settings_excluded(&s, "a/b/c.txt"));
    assert_true(ddp_settings_excluded(&s, "a/b/c/d/e"));
    assert_true(ddp_settings_excluded(&s, "/a/b/c"));
    assert_true(ddp_settings_excluded(&s, "a//b/c"));
    assert_true(ddp_settings_excluded(&s, "./a/b/c"));
    assert_true(ddp_settings_excluded(&s, "logs/x"));
    assert_false(ddp_settings_excluded(&s, "a/bc"));
    assert_false(ddp_settings_excluded(&s, "a/bc/d"));
    assert_false(ddp_settings_excluded(&s, "a"));
    assert_false(ddp_settings_excluded(&s, "a/c"));
    assert_false(ddp_settings_excluded(&s, "x/a/b"));
    assert_false(ddp_settings_excluded(&s, "logs2/x"));
    assert_false(ddp_settings_excluded(&s, "log"));
    assert_false(ddp_settings_excluded(&s, "A/B/c")); /* folders are case-sensitive */
    assert_false(ddp_settings_excluded(&s, ""));

    /* types: after the last '.' of the last component, any case */
    assert_true(ddp_settings_excluded(&s, "x/y.iso"));
    assert_true(ddp_settings_excluded(&s, "x/y.ISO"));
    assert_true(ddp_settings_excluded(&s, "disk.img.Iso"));
    assert_true(ddp_settings_excluded(&s, "scratch.tmp"));
    assert_false(ddp_settings_excluded(&s, "x/iso"));
    assert_false(ddp_settings_excluded(&s, "x.iso/y"));
    assert_false(ddp_settings_excluded(&s, "x.iso/y.txt"));
    assert_false(ddp_settings_excluded(&s, "y.iso.bak"));
    assert_false(ddp_settings_excluded(&s, "y.isox"));
    assert_false(ddp_settings_excluded(&s, "file."));

    /* no_compress: same extension rule against no_compress_types */
    assert_true(ddp_settings_no_compress(&s, "photo.JPG"));
    assert_true(ddp_settings_no_compress(&s, "dir/archive.tar.gz"));
    assert_true(ddp_settings_no_compress(&s, "/abs/movie.webm"));
    assert_false(ddp_settings_no_compress(&s, "a.txt"));
    assert_false(ddp_settings_no_compress(&s, "zip"));
    assert_false(ddp_settings_no_compress(&s, "a.zip/b"));
    assert_false(ddp_settings_no_compress(&s, "photo.jpg.txt"));
    /* excluded types do not imply no-compress, nor the reverse */
    assert_false(ddp_settings_no_compress(&s, "y.iso"));
    assert_false(ddp_settings_excluded(&s, "photo.jpg"));

    /* a folder list entry of several components, and after a clear */
    assert_int_equal(ddp_settings_set(&s, "excluded_folders", ""), S_OK);
    assert_false(ddp_settings_excluded(&s, "a/b/c"));
    ddp_settings_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_encode_form),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_set_validation),
        cmocka_unit_test(test_set_accepts),
        cmocka_unit_test(test_usage_type_sets_min_age),
        cmocka_unit_test(test_decode_checksum),
        cmocka_unit_test(test_decode_lines),
        cmocka_unit_test(test_encode_refuses_unwritable_items),
        cmocka_unit_test(test_excluded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
