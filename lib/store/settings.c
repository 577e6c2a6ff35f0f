/* SPDX-License-Identifier: MIT */
/*
 * settings.c: a volume's policy and its text file, settings.conf.
 *
 * The file (docs/FORMAT.md) is UTF-8 text: '#' comment lines, then one
 * "key = value" line per key in a fixed order, then, as the very last line,
 * "checksum = XXXXXXXXXXXXXXXX": the xxh64 (16 hex digits) of every byte
 * before that line. The checksum catches a torn or hand-edited file; the way
 * to change a setting is ddp_settings_set (the CLI's 'ddp set'), which
 * validates the value and rewrites the whole file.
 *
 * Every value goes through ddp_settings_set, whether it comes from the
 * command line or from the file, so both paths share one set of rules:
 *
 *   usage_type            Default | HyperV | Backup (any case on input);
 *                         setting it also sets that type's minimum file age
 *                         (Default 3 days, HyperV 3, Backup 0)
 *   min_file_age_days     whole number of days
 *   min_file_size         bytes, at least 32768 (K/M/G suffixes accepted)
 *   excluded_folders      comma-separated folders relative to the volume root;
 *                         stored without leading or trailing '/', with empty
 *                         and "." components dropped; ".." is refused
 *   excluded_types,       comma-separated file-name extensions; stored in
 *   no_compress_types     lowercase without the leading '.'
 *   compression_level     zstd level 1..19 (default 3)
 *   container_size_limit  bytes, at least 1 MiB (default 1 GiB; K/M/G accepted)
 *   hotspot_threshold     at least 2 (default 100)
 *   enabled               true | false
 *   gc_threshold          percent, 0..100 (default 5): a regular garbage
 *                         collection retires the dead records of a container
 *                         only when they are at least this share of it
 *                         (added after the others: files written before it
 *                         existed simply lack the line and get the default)
 *
 * A folder excludes itself and everything under it, compared component by
 * component ("a/bc" is not under "a/b"). A file's type is what follows the
 * last '.' of its last path component, compared without regard to ASCII case.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/hash.h"
#include "store/settings.h"
#include "base/util.h"

enum {
    K_USAGE_TYPE,
    K_MIN_FILE_AGE_DAYS,
    K_MIN_FILE_SIZE,
    K_EXCLUDED_FOLDERS,
    K_EXCLUDED_TYPES,
    K_NO_COMPRESS_TYPES,
    K_COMPRESSION_LEVEL,
    K_CONTAINER_SIZE_LIMIT,
    K_HOTSPOT_THRESHOLD,
    K_ENABLED,
    K_GC_THRESHOLD,
    K_COUNT
};

static const char *const setting_keys[K_COUNT + 1] = {
    "usage_type",        "min_file_age_days", "min_file_size",        "excluded_folders",  "excluded_types",
    "no_compress_types", "compression_level", "container_size_limit", "hotspot_threshold", "enabled",
    "gc_threshold",      NULL,
};

static const char *const usage_names[3] = { "Default", "HyperV", "Backup" };
static const uint32_t usage_min_age[3] = { 3, 3, 0 };

static const char *const default_no_compress[] = {
    "zip", "gz", "bz2", "xz", "zst", "7z", "rar", "jpg", "jpeg", "png", "gif", "mp3", "mp4", "mkv", "avi", "mov", "webm",
};

#define DEFAULT_COMPRESSION_LEVEL 3
#define DEFAULT_CONTAINER_SIZE_LIMIT (UINT64_C(1) << 30)
#define MIN_CONTAINER_SIZE_LIMIT (UINT64_C(1) << 20)
#define DEFAULT_HOTSPOT_THRESHOLD 100u
#define MIN_HOTSPOT_THRESHOLD 2u
#define DEFAULT_GC_THRESHOLD 5u

static const char file_comment[] =
    "# ddp volume settings. Change them with 'ddp set'; the checksum line guards this file.\n";

/* ---- small string helpers ------------------------------------------------ */

static int ascii_lower(int c) { return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c; }
static int is_space(int c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; }

static int ascii_ieq(const char *a, size_t an, const char *b, size_t bn)
{
    if (an != bn) return 0;
    for (size_t i = 0; i < an; i++)
        if (ascii_lower((unsigned char)a[i]) != ascii_lower((unsigned char)b[i])) return 0;
    return 1;
}

/* Trim [*p, *p + *n) of surrounding white space. */
static void trim(const char **p, size_t *n)
{
    while (*n > 0 && is_space((unsigned char)**p)) { (*p)++; (*n)--; }
    while (*n > 0 && is_space((unsigned char)(*p)[*n - 1])) (*n)--;
}

static char *xstrndup(const char *s, size_t n)
{
    char *d = ddp_xmalloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* A growing text buffer. */
typedef struct sbuf { char *p; size_t len, cap; } sbuf;

static void sb_putn(sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        b->p = ddp_xrealloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s) { sb_putn(b, s, strlen(s)); }

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0) abort();
    sb_putn(b, s, (size_t)n);
    free(s);
}

/* ---- string lists ------------------------------------------------------------ */

static void strlist_free(ddp_strlist *l)
{
    for (size_t i = 0; i < l->count; i++) free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

static int strlist_has(const ddp_strlist *l, const char *s)
{
    for (size_t i = 0; i < l->count; i++)
        if (strcmp(l->items[i], s) == 0) return 1;
    return 0;
}

/* Append s (taking ownership) unless already present. */
static void strlist_add(ddp_strlist *l, char *s)
{
    if (strlist_has(l, s)) { free(s); return; }
    l->items = ddp_xrealloc(l->items, (l->count + 1) * sizeof *l->items);
    l->items[l->count++] = s;
}

static void strlist_join(const ddp_strlist *l, sbuf *b)
{
    for (size_t i = 0; i < l->count; i++) {
        if (i) sb_putn(b, ",", 1);
        sb_puts(b, l->items[i]);
    }
}

/* ---- path components ----------------------------------------------------------- */

/* Next component of a '/'-separated path, skipping empty and "." ones.
 * Returns 0 at the end. */
static int next_component(const char **p, const char **start, size_t *len)
{
    for (;;) {
        while (**p == '/') (*p)++;
        if (**p == '\0') return 0;
        *start = *p;
        while (**p && **p != '/') (*p)++;
        *len = (size_t)(*p - *start);
        if (!(*len == 1 && (*start)[0] == '.')) return 1;
    }
}

/* ---- value parsers (each records "key: reason" on failure) ---------------------- */

/* A whole number, optionally with a K, M or G suffix (binary multiples). */
static HRESULT parse_number(const char *key, const char *v, int suffixes, uint64_t max, uint64_t *out)
{
    const char *p = v;
    if (*p < '0' || *p > '9') return ddp_fail(E_INVALIDARG, "%s: '%s' is not a whole number", key, v);
    uint64_t x = 0;
    int overflow = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (x > (UINT64_MAX - d) / 10) overflow = 1;
        else x = x * 10 + d;
    }
    if (*p && suffixes) {
        unsigned shift = 0;
        switch (*p) {
        case 'k': case 'K': shift = 10; break;
        case 'm': case 'M': shift = 20; break;
        case 'g': case 'G': shift = 30; break;
        default: break;
        }
        if (shift) {
            if (x > (UINT64_MAX >> shift)) overflow = 1;
            else x <<= shift;
            p++;
        }
    }
    if (*p)
        return ddp_fail(E_INVALIDARG, "%s: '%s' is not a whole number%s", key, v,
                        suffixes ? " of bytes (suffixes K, M, G allowed)" : "");
    if (overflow || x > max)
        return ddp_fail(E_INVALIDARG, "%s: '%s' is too large (the maximum is %llu)", key, v, (unsigned long long)max);
    *out = x;
    return S_OK;
}

static HRESULT parse_at_least(const char *key, const char *v, int suffixes, uint64_t min, uint64_t max,
                              uint64_t *out)
{
    uint64_t x;
    HRESULT hr = parse_number(key, v, suffixes, max, &x);
    if (FAILED(hr)) return hr;
    if (x < min)
        return ddp_fail(E_INVALIDARG, "%s: %llu is below the minimum %llu", key, (unsigned long long)x,
                        (unsigned long long)min);
    *out = x;
    return S_OK;
}

/* Calls fn(key, item, itemlen, list) for every non-empty, trimmed item of a
 * comma-separated value. */
typedef HRESULT (*item_fn)(const char *key, const char *item, size_t n, ddp_strlist *l);

static HRESULT parse_list(const char *key, const char *v, item_fn fn, ddp_strlist *out)
{
    ddp_strlist l = { NULL, 0 };
    const char *p = v;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        const char *item = p;
        trim(&item, &n);
        if (n > 0) {
            HRESULT hr = fn(key, item, n, &l);
            if (FAILED(hr)) { strlist_free(&l); return hr; }
        }
        if (!comma) break;
        p = comma + 1;
    }
    *out = l;
    return S_OK;
}

static int bad_item(const char *item);

/* An item that settings.conf cannot hold as it is (it would not read back
 * the same: a space at either end of it after normalizing) is refused here,
 * so that what is accepted can always be written back. */
static HRESULT storable(const char *key, char *item)
{
    if (!bad_item(item)) return S_OK;
    HRESULT hr = ddp_fail(E_INVALIDARG, "%s: '%s' cannot be stored (white space at either end of it)", key, item);
    free(item);
    return hr;
}

static HRESULT folder_item(const char *key, const char *item, size_t n, ddp_strlist *l)
{
    char *raw = xstrndup(item, n);
    sbuf b = { NULL, 0, 0 };
    const char *p = raw, *c;
    size_t cl;
    while (next_component(&p, &c, &cl)) {
        if (cl == 2 && c[0] == '.' && c[1] == '.') {
            HRESULT hr = ddp_fail(E_INVALIDARG, "%s: '%s' has a '..' component", key, raw);
            free(raw);
            free(b.p);
            return hr;
        }
        if (b.len) sb_putn(&b, "/", 1);
        sb_putn(&b, c, cl);
    }
    if (!b.len) {
        HRESULT hr = ddp_fail(E_INVALIDARG, "%s: '%s' names the volume root, not a folder in it", key, raw);
        free(raw);
        return hr;
    }
    free(raw);
    HRESULT hr = storable(key, b.p);
    if (FAILED(hr)) return hr;
    strlist_add(l, b.p);
    return S_OK;
}

static HRESULT type_item(const char *key, const char *item, size_t n, ddp_strlist *l)
{
    while (n > 0 && *item == '.') { item++; n--; }
    if (n == 0) return ddp_fail(E_INVALIDARG, "%s: '.' alone is not a file extension", key);
    char *t = xstrndup(item, n);
    for (size_t i = 0; i < n; i++) {
        if (t[i] == '.' || t[i] == '/') {
            HRESULT hr = ddp_fail(E_INVALIDARG, "%s: '%s' is not an extension (the type is what follows the last '.')",
                                  key, t);
            free(t);
            return hr;
        }
        t[i] = (char)ascii_lower((unsigned char)t[i]);
    }
    HRESULT hr = storable(key, t);
    if (FAILED(hr)) return hr;
    strlist_add(l, t);
    return S_OK;
}

/* ---- the API ---------------------------------------------------------------------- */

void ddp_settings_defaults(ddp_settings *s, int usage_type)
{
    if (usage_type < DDP_USAGE_DEFAULT || usage_type > DDP_USAGE_BACKUP) usage_type = DDP_USAGE_DEFAULT;
    memset(s, 0, sizeof *s);
    s->usage_type = usage_type;
    s->min_file_age_days = usage_min_age[usage_type];
    s->min_file_size = DDP_MIN_FILE_SIZE_FLOOR;
    for (size_t i = 0; i < sizeof default_no_compress / sizeof default_no_compress[0]; i++)
        strlist_add(&s->no_compress_types, ddp_strdup(default_no_compress[i]));
    s->compression_level = DEFAULT_COMPRESSION_LEVEL;
    s->container_size_limit = DEFAULT_CONTAINER_SIZE_LIMIT;
    s->hotspot_threshold = DEFAULT_HOTSPOT_THRESHOLD;
    s->enabled = 1;
    s->gc_threshold = DEFAULT_GC_THRESHOLD;
}

void ddp_settings_free(ddp_settings *s)
{
    strlist_free(&s->excluded_folders);
    strlist_free(&s->excluded_types);
    strlist_free(&s->no_compress_types);
}

const char *const *ddp_settings_keys(void) { return setting_keys; }

static int key_index(const char *key, size_t n)
{
    for (int i = 0; i < K_COUNT; i++)
        if (strlen(setting_keys[i]) == n && memcmp(setting_keys[i], key, n) == 0) return i;
    return -1;
}

HRESULT ddp_settings_set(ddp_settings *s, const char *key, const char *value)
{
    if (!s || !key || !value) return E_POINTER;
    int k = key_index(key, strlen(key));
    if (k < 0) return ddp_fail(E_INVALIDARG, "unknown setting '%s'", key);
    for (const char *c = value; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            return ddp_fail(E_INVALIDARG, "%s: the value contains a control character", key);
    size_t vn = strlen(value);
    const char *vp = value;
    trim(&vp, &vn);
    char *v = xstrndup(vp, vn);

    HRESULT hr = S_OK;
    uint64_t x = 0;
    ddp_strlist list = { NULL, 0 };
    switch (k) {
    case K_USAGE_TYPE: {
        int t = -1;
        for (int i = 0; i < 3; i++)
            if (ascii_ieq(v, vn, usage_names[i], strlen(usage_names[i]))) t = i;
        if (t < 0) {
            hr = ddp_fail(E_INVALIDARG, "%s: '%s' is not Default, HyperV or Backup", key, v);
            break;
        }
        s->usage_type = t;
        s->min_file_age_days = usage_min_age[t];
        break;
    }
    case K_MIN_FILE_AGE_DAYS:
        hr = parse_number(key, v, 0, UINT32_MAX, &x);
        if (SUCCEEDED(hr)) s->min_file_age_days = (uint32_t)x;
        break;
    case K_MIN_FILE_SIZE:
        hr = parse_at_least(key, v, 1, DDP_MIN_FILE_SIZE_FLOOR, UINT64_MAX, &x);
        if (SUCCEEDED(hr)) s->min_file_size = x;
        break;
    case K_EXCLUDED_FOLDERS:
    case K_EXCLUDED_TYPES:
    case K_NO_COMPRESS_TYPES: {
        hr = parse_list(key, v, k == K_EXCLUDED_FOLDERS ? folder_item : type_item, &list);
        if (FAILED(hr)) break;
        ddp_strlist *dst = k == K_EXCLUDED_FOLDERS ? &s->excluded_folders
                         : k == K_EXCLUDED_TYPES   ? &s->excluded_types
                                                   : &s->no_compress_types;
        strlist_free(dst);
        *dst = list;
        break;
    }
    case K_COMPRESSION_LEVEL:
        hr = parse_number(key, v, 0, UINT64_MAX, &x);
        if (SUCCEEDED(hr) && (x < 1 || x > 19))
            hr = ddp_fail(E_INVALIDARG, "%s: %llu is outside 1..19", key, (unsigned long long)x);
        if (SUCCEEDED(hr)) s->compression_level = (int)x;
        break;
    case K_CONTAINER_SIZE_LIMIT:
        hr = parse_at_least(key, v, 1, MIN_CONTAINER_SIZE_LIMIT, UINT64_MAX, &x);
        if (SUCCEEDED(hr)) s->container_size_limit = x;
        break;
    case K_HOTSPOT_THRESHOLD:
        hr = parse_at_least(key, v, 0, MIN_HOTSPOT_THRESHOLD, UINT32_MAX, &x);
        if (SUCCEEDED(hr)) s->hotspot_threshold = (uint32_t)x;
        break;
    case K_ENABLED:
        if (ascii_ieq(v, vn, "true", 4)) s->enabled = 1;
        else if (ascii_ieq(v, vn, "false", 5)) s->enabled = 0;
        else hr = ddp_fail(E_INVALIDARG, "%s: '%s' is not true or false", key, v);
        break;
    case K_GC_THRESHOLD:
        hr = parse_number(key, v, 0, 100, &x);
        if (SUCCEEDED(hr)) s->gc_threshold = (uint32_t)x;
        break;
    default:
        hr = E_INVALIDARG;
        break;
    }
    free(v);
    return hr;
}

/* The file form of one value, appended to b. */
static void put_value(const ddp_settings *s, int k, sbuf *b)
{
    switch (k) {
    case K_USAGE_TYPE:
        sb_puts(b, (s->usage_type >= 0 && s->usage_type <= 2) ? usage_names[s->usage_type] : usage_names[0]);
        break;
    case K_MIN_FILE_AGE_DAYS: sb_printf(b, "%u", s->min_file_age_days); break;
    case K_MIN_FILE_SIZE: sb_printf(b, "%llu", (unsigned long long)s->min_file_size); break;
    case K_EXCLUDED_FOLDERS: strlist_join(&s->excluded_folders, b); break;
    case K_EXCLUDED_TYPES: strlist_join(&s->excluded_types, b); break;
    case K_NO_COMPRESS_TYPES: strlist_join(&s->no_compress_types, b); break;
    case K_COMPRESSION_LEVEL: sb_printf(b, "%d", s->compression_level); break;
    case K_CONTAINER_SIZE_LIMIT: sb_printf(b, "%llu", (unsigned long long)s->container_size_limit); break;
    case K_HOTSPOT_THRESHOLD: sb_printf(b, "%u", s->hotspot_threshold); break;
    case K_ENABLED: sb_puts(b, s->enabled ? "true" : "false"); break;
    case K_GC_THRESHOLD: sb_printf(b, "%u", s->gc_threshold); break;
    default: break;
    }
}

HRESULT ddp_settings_get(const ddp_settings *s, const char *key, char **value)
{
    if (!s || !key || !value) return E_POINTER;
    int k = key_index(key, strlen(key));
    if (k < 0) return ddp_fail(E_INVALIDARG, "unknown setting '%s'", key);
    sbuf b = { NULL, 0, 0 };
    sb_putn(&b, "", 0);
    put_value(s, k, &b);
    *value = b.p;
    return S_OK;
}

/* A list item that could not be written and read back as itself. */
static int bad_item(const char *item)
{
    if (!*item) return 1;
    if (is_space((unsigned char)item[0]) || is_space((unsigned char)item[strlen(item) - 1])) return 1;
    for (const char *c = item; *c; c++)
        if (*c == ',' || (unsigned char)*c < 0x20 || *c == 0x7f) return 1;
    return 0;
}

HRESULT ddp_settings_encode(const ddp_settings *s, char **out, size_t *n)
{
    if (!s || !out || !n) return E_POINTER;
    const ddp_strlist *lists[3] = { &s->excluded_folders, &s->excluded_types, &s->no_compress_types };
    for (int i = 0; i < 3; i++)
        for (size_t j = 0; j < lists[i]->count; j++)
            if (bad_item(lists[i]->items[j]))
                return ddp_fail(E_INVALIDARG, "%s: item '%s' cannot be written to settings.conf",
                                setting_keys[K_EXCLUDED_FOLDERS + i], lists[i]->items[j]);
    sbuf b = { NULL, 0, 0 };
    sb_puts(&b, file_comment);
    for (int k = 0; k < K_COUNT; k++) {
        sb_printf(&b, "%s = ", setting_keys[k]);
        put_value(s, k, &b);
        sb_putn(&b, "\n", 1);
    }
    sb_printf(&b, "checksum = %016llX\n", (unsigned long long)ddp_checksum64(b.p, b.len));
    *out = b.p;
    *n = b.len;
    return S_OK;
}

static int parse_hex64(const char *p, size_t n, uint64_t *out)
{
    if (n != 16) return -1;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)p[i], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return -1;
        x = x << 4 | (uint64_t)d;
    }
    *out = x;
    return 0;
}

/* Split a line into trimmed key and value at the first '='; 0 if there is none. */
static int split_line(const char *p, size_t n, const char **key, size_t *kn, const char **val, size_t *vn)
{
    const char *eq = memchr(p, '=', n);
    if (!eq) return 0;
    *key = p;
    *kn = (size_t)(eq - p);
    trim(key, kn);
    *val = eq + 1;
    *vn = n - (size_t)(eq - p) - 1;
    trim(val, vn);
    return 1;
}

HRESULT ddp_settings_decode(const char *buf, size_t n, ddp_settings *s)
{
    if (!buf || !s) return E_POINTER;
    memset(s, 0, sizeof *s);
    if (memchr(buf, '\0', n)) {
        const char *z = memchr(buf, '\0', n);
        int line = 1;
        for (const char *c = buf; c < z; c++) line += (*c == '\n');
        return ddp_fail(DDP_E_INVALID_DATA, "settings line %d: contains a NUL byte", line);
    }

    /* The last line (a final '\n' is optional) must be the checksum line. */
    size_t end = n;
    if (end > 0 && buf[end - 1] == '\n') end--;
    size_t cstart = end;
    while (cstart > 0 && buf[cstart - 1] != '\n') cstart--;
    int nlines = 1;
    for (size_t i = 0; i < cstart; i++) nlines += (buf[i] == '\n');
    /* The checksum line is machine-written: exactly "checksum = " and 16 hex digits. */
    static const char cprefix[] = "checksum = ";
    const size_t cpn = sizeof cprefix - 1;
    uint64_t want;
    if (end - cstart < cpn || memcmp(buf + cstart, cprefix, cpn) != 0)
        return ddp_fail(DDP_E_INVALID_DATA, "settings line %d: the last line is not the checksum line", nlines);
    if (parse_hex64(buf + cstart + cpn, end - cstart - cpn, &want) != 0)
        return ddp_fail(DDP_E_INVALID_DATA, "settings line %d: the checksum is not 16 hex digits", nlines);
    if (ddp_checksum64(buf, cstart) != want)
        return ddp_fail(DDP_E_INVALID_DATA, "settings line %d: checksum mismatch (the file was damaged or edited)",
                        nlines);

    /* Collect the key = value lines. */
    const char *key, *val;
    size_t kn, vn;
    char *values[K_COUNT] = { NULL };
    int lines[K_COUNT] = { 0 };
    HRESULT hr = S_OK;
    size_t pos = 0;
    for (int line = 1; pos < cstart; line++) {
        const char *nl = memchr(buf + pos, '\n', cstart - pos);
        size_t len = (size_t)(nl - (buf + pos)); /* cstart follows a '\n', so nl is never NULL */
        const char *p = buf + pos;
        size_t pn = len;
        pos += len + 1;
        trim(&p, &pn);
        if (pn == 0 || p[0] == '#') continue;
        if (!split_line(p, pn, &key, &kn, &val, &vn)) {
            hr = ddp_fail(DDP_E_INVALID_DATA, "settings line %d: expected 'key = value'", line);
            goto fail;
        }
        int k = key_index(key, kn);
        if (k < 0) {
            if (kn == 8 && memcmp(key, "checksum", 8) == 0)
                hr = ddp_fail(DDP_E_INVALID_DATA, "settings line %d: the checksum line must be the last line", line);
            else
                hr = ddp_fail(DDP_E_INVALID_DATA, "settings line %d: unknown key '%.*s'", line, (int)kn, key);
            goto fail;
        }
        if (values[k]) {
            hr = ddp_fail(DDP_E_INVALID_DATA, "settings line %d: '%s' appears again (first on line %d)", line,
                          setting_keys[k], lines[k]);
            goto fail;
        }
        values[k] = xstrndup(val, vn);
        lines[k] = line;
    }

    /* Apply them in file order (usage_type first, so that an explicit
     * min_file_age_days overrides the usage type's default). Missing keys
     * keep their defaults. */
    ddp_settings_defaults(s, DDP_USAGE_DEFAULT);
    for (int k = 0; k < K_COUNT; k++) {
        if (!values[k]) continue;
        hr = ddp_settings_set(s, setting_keys[k], values[k]);
        if (FAILED(hr)) {
            char why[512];
            snprintf(why, sizeof why, "%s", ddp_error_detail());
            hr = ddp_fail(DDP_E_INVALID_DATA, "settings line %d: %s", lines[k], why);
            ddp_settings_free(s);
            memset(s, 0, sizeof *s);
            goto fail;
        }
    }
    for (int k = 0; k < K_COUNT; k++) free(values[k]);
    return S_OK;

fail:
    for (int k = 0; k < K_COUNT; k++) free(values[k]);
    return hr;
}

/* The extension of the last component of path: after its last '.'. */
static int ext_of(const char *path, const char **ext, size_t *n)
{
    const char *p = path, *c = NULL, *last = NULL;
    size_t cl = 0, lastn = 0;
    while (next_component(&p, &c, &cl)) { last = c; lastn = cl; }
    if (!last) return 0;
    const char *dot = NULL;
    for (size_t i = 0; i < lastn; i++)
        if (last[i] == '.') dot = last + i;
    if (!dot || dot + 1 == last + lastn) return 0;
    *ext = dot + 1;
    *n = (size_t)(last + lastn - (dot + 1));
    return 1;
}

static int type_in(const ddp_strlist *l, const char *name)
{
    const char *ext;
    size_t n;
    if (!ext_of(name, &ext, &n)) return 0;
    for (size_t i = 0; i < l->count; i++)
        if (ascii_ieq(ext, n, l->items[i], strlen(l->items[i]))) return 1;
    return 0;
}

/* Is path equal to folder or under it, component by component? */
static int under_folder(const char *folder, const char *path)
{
    const char *fp = folder, *pp = path, *fc, *pc;
    size_t fl, pl;
    int any = 0;
    while (next_component(&fp, &fc, &fl)) {
        any = 1;
        if (!next_component(&pp, &pc, &pl)) return 0;
        if (fl != pl || memcmp(fc, pc, fl) != 0) return 0;
    }
    return any;
}

int ddp_settings_excluded(const ddp_settings *s, const char *relpath)
{
    if (!s || !relpath) return 0;
    for (size_t i = 0; i < s->excluded_folders.count; i++)
        if (under_folder(s->excluded_folders.items[i], relpath)) return 1;
    return type_in(&s->excluded_types, relpath);
}

int ddp_settings_no_compress(const ddp_settings *s, const char *name)
{
    if (!s || !name) return 0;
    return type_in(&s->no_compress_types, name);
}
