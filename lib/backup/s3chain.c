/* SPDX-License-Identifier: MIT */
/*
 * s3chain.c: the manifest of a backup in S3 and the chain of backups behind
 * an incremental one (s3chain.h). A backup's "previous" is the name of the
 * earlier backup: its last prefix component when both live side by side
 * (s3://b/nightly/2 builds on "1", which is s3://b/nightly/1), else its
 * whole s3:// name. Each link is checked: the manifest found must have the
 * backup id, the level and the store id the later one expects.
 */
#include <stdlib.h>
#include <string.h>

#include "backup/s3chain.h"
#include "base/util.h"

HRESULT ddp_s3_manifest_load(ddp_s3 *s, const char *bucket, const char *prefix, int header_only, ddp_manifest *m)
{
    memset(m, 0, sizeof *m);
    char *key = ddp_s3_key_join(prefix, DDP_MANIFEST_PATH);
    uint8_t *buf = NULL;
    size_t n = 0;
    HRESULT hr = ddp_s3_get_object(s, bucket, key, DDP_MANIFEST_MAX_SIZE, &buf, &n);
    if (hr == HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND))
        hr = ddp_fail(DDP_E_NOT_FOUND, "s3://%s/%s is not a complete ddp backup (no object %s)", bucket, prefix, key);
    if (SUCCEEDED(hr)) {
        char *what = ddp_xasprintf("s3://%s/%s", bucket, key);
        hr = ddp_manifest_parse(buf, n, what, header_only, m);
        free(what);
    }
    free(buf);
    free(key);
    return hr;
}

char *ddp_s3_previous_ref(const char *bucket, const char *prefix, const char *pb, const char *pp)
{
    const char *s1 = strrchr(prefix, '/'), *s2 = strrchr(pp, '/');
    size_t l1 = s1 ? (size_t)(s1 - prefix) : 0, l2 = s2 ? (size_t)(s2 - pp) : 0;
    const char *base = s2 ? s2 + 1 : pp;
    if (strcmp(bucket, pb) == 0 && *prefix && *pp && l1 == l2 && strncmp(prefix, pp, l1) == 0 && *base)
        return ddp_strdup(base);
    return ddp_xasprintf("s3://%s/%s", pb, pp);
}

HRESULT ddp_s3_resolve_previous(const char *bucket, const char *prefix, const char *previous, char **pb, char **pp)
{
    *pb = *pp = NULL;
    if (!previous) return ddp_fail(DDP_E_INVALID_DATA, "s3://%s/%s: an incremental backup that names no previous one", bucket, prefix);
    if (ddp_s3_is_url(previous)) return ddp_s3_parse_url(previous, pb, pp);
    if (!*previous || strchr(previous, '/') || strcmp(previous, ".") == 0 || strcmp(previous, "..") == 0)
        return ddp_fail(DDP_E_INVALID_DATA, "s3://%s/%s: its previous backup '%s' is neither a name beside it nor an s3:// name",
                        bucket, prefix, previous);
    const char *s = strrchr(prefix, '/');
    *pb = ddp_strdup(bucket);
    *pp = s ? ddp_xasprintf("%.*s/%s", (int)(s - prefix), prefix, previous) : ddp_strdup(previous);
    return S_OK;
}

void ddp_s3_chain_close(ddp_s3_chain *c)
{
    if (!c) return;
    for (uint32_t i = 0; c->bucket && i < c->nlevels; i++) {
        free(c->bucket[i]);
        free(c->prefix[i]);
    }
    free(c->bucket);
    free(c->prefix);
    ddp_manifest_free(&c->newest);
    memset(c, 0, sizeof *c);
}

HRESULT ddp_s3_chain_open(ddp_s3 *s, const char *url, ddp_s3_chain *c)
{
    memset(c, 0, sizeof *c);
    char *bucket, *prefix;
    HRESULT hr = ddp_s3_parse_url(url, &bucket, &prefix);
    if (FAILED(hr)) return hr;
    hr = ddp_s3_manifest_load(s, bucket, prefix, 0, &c->newest);
    if (FAILED(hr)) {
        free(bucket);
        free(prefix);
        return hr;
    }
    c->nlevels = c->newest.level + 1;
    c->bucket = ddp_xcalloc(c->nlevels, sizeof *c->bucket);
    c->prefix = ddp_xcalloc(c->nlevels, sizeof *c->prefix);
    c->bucket[c->newest.level] = bucket;
    c->prefix[c->newest.level] = prefix;
    char *prev = c->newest.previous ? ddp_strdup(c->newest.previous) : NULL;
    uint8_t prev_id[DDP_BACKUP_ID_SIZE];
    memcpy(prev_id, c->newest.previous_id, sizeof prev_id);
    for (uint32_t level = c->newest.level; SUCCEEDED(hr) && level > 0; level--) {
        char *pb, *pp;
        hr = ddp_s3_resolve_previous(c->bucket[level], c->prefix[level], prev, &pb, &pp);
        if (FAILED(hr)) break;
        ddp_manifest h;
        hr = ddp_s3_manifest_load(s, pb, pp, 1, &h);
        if (hr == DDP_E_NOT_FOUND)
            hr = ddp_fail(DDP_E_NOT_FOUND, "backup s3://%s/%s: the backup it builds on, s3://%s/%s, is missing or incomplete",
                          c->bucket[level], c->prefix[level], pb, pp);
        if (SUCCEEDED(hr)) {
            if (memcmp(h.id, prev_id, DDP_BACKUP_ID_SIZE) != 0)
                hr = ddp_fail(DDP_E_INVALID_DATA, "backup s3://%s/%s: s3://%s/%s is not the backup it was built on (another backup id)",
                              c->bucket[level], c->prefix[level], pb, pp);
            else if (h.level != level - 1)
                hr = ddp_fail(DDP_E_INVALID_DATA, "backup s3://%s/%s: level %u, expected %u", pb, pp, h.level, level - 1);
            else if (memcmp(h.store_id, c->newest.store_id, DDP_STORE_ID_SIZE) != 0)
                hr = ddp_fail(DDP_E_INVALID_DATA, "backup s3://%s/%s: not of the same volume as s3://%s/%s", pb, pp,
                              c->bucket[level], c->prefix[level]);
            free(prev);
            prev = h.previous ? ddp_strdup(h.previous) : NULL;
            memcpy(prev_id, h.previous_id, sizeof prev_id);
            ddp_manifest_free(&h);
        }
        c->bucket[level - 1] = pb;
        c->prefix[level - 1] = pp;
    }
    free(prev);
    if (FAILED(hr)) ddp_s3_chain_close(c);
    return hr;
}
