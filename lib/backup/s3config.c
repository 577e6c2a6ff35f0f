/* SPDX-License-Identifier: MIT */
/*
 * s3config.c: the S3 settings (s3config.h), read as the AWS CLI reads them.
 *
 * Precedence: credentials from the environment (both AWS_ACCESS_KEY_ID and
 * AWS_SECRET_ACCESS_KEY), else from the profile (AWS_PROFILE, else
 * "default") in the shared credentials file, else from that profile in the
 * config file. Region: AWS_REGION, AWS_DEFAULT_REGION, the profile's
 * `region`, "us-east-1". Endpoint: `--endpoint`, AWS_ENDPOINT_URL_S3,
 * AWS_ENDPOINT_URL, the profile's `s3 = endpoint_url`, its `endpoint_url`,
 * else https://s3.REGION.amazonaws.com. Addressing: the profile's
 * `s3 = addressing_style` (path or virtual), else path-style for a custom
 * endpoint (Ceph RGW, MinIO) and for bucket names that are not DNS labels,
 * virtual-hosted for AWS. TLS is always verified; AWS_CA_BUNDLE or the
 * profile's `ca_bundle` names another CA file.
 *
 * The files are INI as the AWS CLI writes them: `[name]` sections in the
 * credentials file, `[profile name]` (or `[default]`) in the config file,
 * `key = value` lines, `#` and `;` comment lines, and nested settings: a
 * `s3 =` line followed by indented `key = value` lines.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup/s3config.h"
#include "base/util.h"

#define MAX_PROFILE_FILE (1u << 20)

static char *g_endpoint_override;

int ddp_s3_is_url(const char *s) { return s && strncmp(s, DDP_S3_SCHEME, sizeof DDP_S3_SCHEME - 1) == 0; }

void ddp_s3_config_set_endpoint(const char *url)
{
    free(g_endpoint_override);
    g_endpoint_override = url ? ddp_strdup(url) : NULL;
}

HRESULT ddp_s3_parse_url(const char *url, char **bucket, char **prefix)
{
    *bucket = *prefix = NULL;
    if (!ddp_s3_is_url(url)) return ddp_fail(E_INVALIDARG, "%s: not an s3://BUCKET/PREFIX name", url ? url : "(null)");
    const char *b = url + sizeof DDP_S3_SCHEME - 1;
    const char *slash = strchr(b, '/');
    size_t bl = slash ? (size_t)(slash - b) : strlen(b);
    if (bl < 3 || bl > 63) return ddp_fail(E_INVALIDARG, "%s: a bucket name has 3 to 63 characters", url);
    for (size_t i = 0; i < bl; i++) {
        unsigned char c = (unsigned char)b[i];
        if (!(isalnum(c) || c == '-' || c == '.' || c == '_'))
            return ddp_fail(E_INVALIDARG, "%s: '%c' cannot be in a bucket name", url, c);
    }
    const char *p = slash ? slash + 1 : "";
    while (*p == '/') p++;
    size_t pl = strlen(p);
    while (pl > 0 && p[pl - 1] == '/') pl--;
    if (pl > 512) return ddp_fail(E_INVALIDARG, "%s: the prefix is longer than 512 bytes", url);
    for (size_t i = 0; i < pl; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x20 || c == 0x7f) return ddp_fail(E_INVALIDARG, "%s: a control character in the prefix", url);
        if (c == '/' && p[i + 1] == '/') return ddp_fail(E_INVALIDARG, "%s: an empty component in the prefix", url);
    }
    /* "." and ".." components would be normalized away by some servers */
    for (const char *c = p; c < p + pl;) {
        const char *e = memchr(c, '/', (size_t)(p + pl - c));
        size_t cl = e ? (size_t)(e - c) : (size_t)(p + pl - c);
        if ((cl == 1 && c[0] == '.') || (cl == 2 && c[0] == '.' && c[1] == '.'))
            return ddp_fail(E_INVALIDARG, "%s: '.' and '..' cannot be prefix components", url);
        c += cl + 1;
    }
    *bucket = ddp_xasprintf("%.*s", (int)bl, b);
    *prefix = ddp_xasprintf("%.*s", (int)pl, p);
    return S_OK;
}

/* ---- INI files ---- */

typedef struct ini_value {
    char *key;    /* "region", or "s3.addressing_style" for a nested setting */
    char *value;
} ini_value;

typedef struct ini_section {
    ini_value *v;
    size_t n;
} ini_section;

static void ini_free(ini_section *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i].key);
        free(s->v[i].value);
    }
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

static const char *ini_get(const ini_section *s, const char *key)
{
    for (size_t i = s->n; i-- > 0;)
        if (strcmp(s->v[i].key, key) == 0) return s->v[i].value;
    return NULL;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) s[--n] = '\0';
    return s;
}

/* The settings of section `want` of the file at path (missing file: none). */
static HRESULT ini_read(const char *path, const char *want, ini_section *out)
{
    memset(out, 0, sizeof *out);
    uint8_t *buf;
    size_t n;
    HRESULT hr = ddp_read_file(path, MAX_PROFILE_FILE, &buf, &n);
    if (FAILED(hr)) {
        ddp_clear_error();
        return S_OK; /* no file (or unreadable): nothing from it */
    }
    char *text = ddp_xmalloc(n + 1);
    memcpy(text, buf, n);
    text[n] = '\0';
    free(buf);
    int in = 0;
    char nest[64] = "";
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        int indented = line[0] == ' ' || line[0] == '\t';
        char *t = trim(line);
        if (!*t || *t == '#' || *t == ';') continue;
        if (*t == '[') {
            char *e = strchr(t, ']');
            if (!e) continue;
            *e = '\0';
            char *name = trim(t + 1);
            in = strcmp(name, want) == 0;
            nest[0] = '\0';
            continue;
        }
        if (!in) continue;
        char *eq = strchr(t, '=');
        if (!eq) continue;
        *eq = '\0';
        char *k = trim(t), *v = trim(eq + 1);
        if (!indented) nest[0] = '\0';
        if (!indented && !*v) { /* "s3 =": nested settings follow, indented */
            snprintf(nest, sizeof nest, "%s", k);
            continue;
        }
        out->v = ddp_xrealloc(out->v, (out->n + 1) * sizeof *out->v);
        out->v[out->n].key = indented && nest[0] ? ddp_xasprintf("%s.%s", nest, k) : ddp_strdup(k);
        out->v[out->n].value = ddp_strdup(v);
        out->n++;
    }
    free(text);
    return S_OK;
}

static char *home_file(const char *env, const char *name)
{
    const char *e = getenv(env);
    if (e && *e) {
        if (e[0] == '~' && e[1] == '/' && getenv("HOME")) return ddp_xasprintf("%s%s", getenv("HOME"), e + 1);
        return ddp_strdup(e);
    }
    const char *home = getenv("HOME");
    return ddp_xasprintf("%s/.aws/%s", home && *home ? home : ".", name);
}

static const char *env_nonempty(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* Check "scheme://host[:port][/]" and split it. */
static HRESULT set_endpoint(ddp_s3_config *c, const char *url, const char *from)
{
    const char *h;
    if (strncmp(url, "https://", 8) == 0) { c->https = 1; h = url + 8; }
    else if (strncmp(url, "http://", 7) == 0) { c->https = 0; h = url + 7; }
    else return ddp_fail(E_INVALIDARG, "S3 endpoint %s (%s): give http://HOST[:PORT] or https://HOST[:PORT]", url, from);
    size_t hl = strcspn(h, "/");
    if (hl == 0 || (h[hl] == '/' && h[hl + 1] != '\0'))
        return ddp_fail(E_INVALIDARG, "S3 endpoint %s (%s): give only the scheme, host and port", url, from);
    for (size_t i = 0; i < hl; i++) {
        unsigned char ch = (unsigned char)h[i];
        if (!(isalnum(ch) || ch == '.' || ch == '-' || ch == ':' || ch == '[' || ch == ']'))
            return ddp_fail(E_INVALIDARG, "S3 endpoint %s (%s): bad host", url, from);
    }
    c->host = ddp_xasprintf("%.*s", (int)hl, h);
    c->endpoint = ddp_xasprintf("%s://%s", c->https ? "https" : "http", c->host);
    return S_OK;
}

static int dns_compatible(const char *bucket)
{
    size_t n = strlen(bucket);
    if (n < 3 || n > 63 || bucket[0] == '.' || bucket[n - 1] == '.') return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)bucket[i];
        if (!(islower(ch) || isdigit(ch) || ch == '-')) return 0; /* dots break TLS names */
    }
    return 1;
}

void ddp_s3_config_free(ddp_s3_config *c)
{
    if (!c) return;
    free(c->endpoint);
    free(c->host);
    free(c->region);
    free(c->access_key);
    if (c->secret_key) {
        memset(c->secret_key, 0, strlen(c->secret_key));
        free(c->secret_key);
    }
    free(c->session_token);
    free(c->ca_bundle);
    free(c->profile);
    free(c->cred_source);
    memset(c, 0, sizeof *c);
}

HRESULT ddp_s3_config_load(ddp_s3_config *c)
{
    memset(c, 0, sizeof *c);
    const char *prof = env_nonempty("AWS_PROFILE");
    c->profile = ddp_strdup(prof ? prof : "default");
    char *cred_path = home_file("AWS_SHARED_CREDENTIALS_FILE", "credentials");
    char *conf_path = home_file("AWS_CONFIG_FILE", "config");
    char *conf_section = strcmp(c->profile, "default") == 0 ? ddp_strdup("default")
                                                            : ddp_xasprintf("profile %s", c->profile);
    ini_section cred, conf;
    ini_read(cred_path, c->profile, &cred);
    ini_read(conf_path, conf_section, &conf);
    if (conf.n == 0 && strcmp(c->profile, "default") == 0) { /* "[profile default]" works too */
        ini_free(&conf);
        ini_read(conf_path, "profile default", &conf);
    }

    HRESULT hr = S_OK;
    /* credentials */
    const char *ak = env_nonempty("AWS_ACCESS_KEY_ID"), *sk = env_nonempty("AWS_SECRET_ACCESS_KEY");
    if (ak && sk) {
        c->access_key = ddp_strdup(ak);
        c->secret_key = ddp_strdup(sk);
        const char *tok = env_nonempty("AWS_SESSION_TOKEN");
        c->session_token = tok ? ddp_strdup(tok) : NULL;
        c->cred_source = ddp_strdup("the environment (AWS_ACCESS_KEY_ID)");
    } else {
        const ini_section *from[2] = { &cred, &conf };
        const char *path[2] = { cred_path, conf_path };
        for (int i = 0; i < 2 && !c->access_key; i++) {
            const char *a = ini_get(from[i], "aws_access_key_id"), *s = ini_get(from[i], "aws_secret_access_key");
            if (a && s && *a && *s) {
                c->access_key = ddp_strdup(a);
                c->secret_key = ddp_strdup(s);
                const char *tok = ini_get(from[i], "aws_session_token");
                c->session_token = tok && *tok ? ddp_strdup(tok) : NULL;
                c->cred_source = ddp_xasprintf("profile %s in %s", c->profile, path[i]);
            }
        }
    }
    if (!c->access_key)
        hr = ddp_fail(HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED),
                      "S3: no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or profile %s in %s or %s)",
                      c->profile, cred_path, conf_path);

    /* region */
    const char *region = env_nonempty("AWS_REGION");
    if (!region) region = env_nonempty("AWS_DEFAULT_REGION");
    if (!region) region = ini_get(&conf, "region");
    c->region = ddp_strdup(region && *region ? region : "us-east-1");

    /* endpoint */
    if (SUCCEEDED(hr)) {
        const char *ep = g_endpoint_override, *from = "--endpoint";
        if (!ep && (ep = env_nonempty("AWS_ENDPOINT_URL_S3"))) from = "AWS_ENDPOINT_URL_S3";
        if (!ep && (ep = env_nonempty("AWS_ENDPOINT_URL"))) from = "AWS_ENDPOINT_URL";
        if (!ep && (ep = ini_get(&conf, "s3.endpoint_url"))) from = "the profile's s3 endpoint_url";
        if (!ep && (ep = ini_get(&conf, "endpoint_url"))) from = "the profile's endpoint_url";
        if (ep && *ep) {
            hr = set_endpoint(c, ep, from);
            c->path_style = 1;
        } else {
            char *aws = ddp_xasprintf("https://s3.%s.amazonaws.com", c->region);
            hr = set_endpoint(c, aws, "the AWS default");
            free(aws);
            c->path_style = 0;
        }
        const char *style = ini_get(&conf, "s3.addressing_style");
        if (style && strcmp(style, "path") == 0) c->path_style = 1;
        else if (style && strcmp(style, "virtual") == 0) c->path_style = 0;
    }
    const char *ca = env_nonempty("AWS_CA_BUNDLE");
    if (!ca) ca = ini_get(&conf, "ca_bundle");
    c->ca_bundle = ca && *ca ? ddp_strdup(ca) : NULL;

    ini_free(&cred);
    ini_free(&conf);
    free(cred_path);
    free(conf_path);
    free(conf_section);
    if (FAILED(hr)) {
        char keep[1024];
        snprintf(keep, sizeof keep, "%s", ddp_error_detail());
        ddp_s3_config_free(c);
        ddp_fail(hr, "%s", keep);
    }
    return hr;
}

/* Path-style for this bucket? (Virtual-hosted needs a DNS-label name.) */
int ddp_s3_config_path_style(const ddp_s3_config *c, const char *bucket)
{
    return c->path_style || !dns_compatible(bucket);
}
