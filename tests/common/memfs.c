/* SPDX-License-Identifier: MIT */
/*
 * tests/common/memfs.c: in-memory files for the Windows store tests (memfs.h).
 */
#include "memfs.h"

#include <stdlib.h>
#include <string.h>

#include "base/util.h"

memfs_file *memfs_find(memfs *m, const char *path)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->f[i].path, path) == 0) return &m->f[i];
    return NULL;
}

memfs_file *memfs_find_suffix(memfs *m, const char *suffix)
{
    size_t k = strlen(suffix);
    for (size_t i = 0; i < m->n; i++) {
        size_t l = strlen(m->f[i].path);
        if (l >= k && strcmp(m->f[i].path + l - k, suffix) == 0) return &m->f[i];
    }
    return NULL;
}

int memfs_sink(void *ctx, const char *path, uint64_t off, const void *data, size_t n)
{
    memfs *m = ctx;
    memfs_file *f = memfs_find(m, path);
    if (!f) {
        m->f = ddp_xrealloc(m->f, (m->n + 1) * sizeof *m->f);
        f = &m->f[m->n++];
        f->path = ddp_strdup(path);
        f->data = NULL;
        f->len = 0;
    }
    if (off + n > f->len) {
        f->data = ddp_xrealloc(f->data, (size_t)(off + n) + 1);
        memset(f->data + f->len, 0, (size_t)(off + n) - f->len);
        f->len = (size_t)(off + n);
    }
    if (n) memcpy(f->data + off, data, n);
    return 0;
}

static HRESULT mread(void *ctx, const char *path, uint64_t off, void *buf, size_t n, size_t *got)
{
    memfs *m = ctx;
    m->reads++;
    *got = 0;
    memfs_file *f = memfs_find(m, path);
    if (!f) return HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND);
    if (off >= f->len) return S_OK;
    size_t k = f->len - (size_t)off < n ? f->len - (size_t)off : n;
    memcpy(buf, f->data + off, k);
    *got = k;
    return S_OK;
}

static HRESULT mlist(void *ctx, const char *dir, ddp_win_list_fn fn, void *cbctx)
{
    memfs *m = ctx;
    size_t k = strlen(dir);
    int any = 0;
    for (size_t i = 0; i < m->n; i++) {
        const char *p = m->f[i].path;
        if (strncmp(p, dir, k) != 0 || p[k] != '/' || strchr(p + k + 1, '/')) continue;
        any = 1;
        HRESULT hr = fn(cbctx, p + k + 1);
        if (FAILED(hr)) return hr;
    }
    return any ? S_OK : HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND);
}

ddp_win_io memfs_io(memfs *m, int with_list)
{
    ddp_win_io io = { mread, with_list ? mlist : NULL, m };
    return io;
}

void memfs_remove(memfs *m, const char *path)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->f[i].path, path) == 0) {
            free(m->f[i].path);
            free(m->f[i].data);
            m->f[i] = m->f[--m->n];
            return;
        }
}

void memfs_free(memfs *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->f[i].path);
        free(m->f[i].data);
    }
    free(m->f);
    m->f = NULL;
    m->n = 0;
}
