/* SPDX-License-Identifier: MIT */
/*
 * backupchain.c: the chain of directory backups behind an incremental one
 * (backupchain.h): from the newest backup's manifest, each "previous"
 * (relative to the directory that holds the backup, or absolute) is followed
 * down to the full backup, checking that every link names the backup it
 * should (backup id, level, store id), so that a chain cannot be silently
 * mixed up with another backup that has the same name. Used by the set
 * store (backupstore_set.c), backup.c (incremental backups) and extract.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup/manifest.h"
#include "backup/backupchain.h"
#include "base/util.h"


char *ddp_backup_resolve_previous(const char *dir, const char *previous)
{
    if (previous[0] == '/') return ddp_strdup(previous);
    char *c = ddp_strdup(dir);
    char *out = ddp_path_join(dirname(c), previous);
    free(c);
    return out;
}

void ddp_backup_chain_close(ddp_backup_chain *c)
{
    if (!c) return;
    for (uint32_t i = 0; c->dirs && i < c->nlevels; i++) {
        free(c->dirs[i]);
        if (c->dirfds[i] >= 0) close(c->dirfds[i]);
    }
    free(c->dirs);
    free(c->dirfds);
    ddp_manifest_free(&c->newest);
    memset(c, 0, sizeof *c);
}

static HRESULT chain_set(ddp_backup_chain *c, uint32_t level, const char *dir)
{
    char *abs = realpath(dir, NULL);
    if (!abs) return ddp_fail_errno(errno, "backup %s", dir);
    c->dirs[level] = abs;
    c->dirfds[level] = open(abs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (c->dirfds[level] < 0) return ddp_fail_errno(errno, "backup %s", abs);
    return S_OK;
}

HRESULT ddp_backup_chain_open(const char *dir, ddp_backup_chain *c)
{
    memset(c, 0, sizeof *c);
    HRESULT hr = ddp_manifest_load(dir, 0, &c->newest);
    if (FAILED(hr)) return hr;
    /* A tar backup extracted with tar -x is a full directory backup whose
     * manifest still says "tar" (level 0, member numbers unused here). */
    c->nlevels = c->newest.level + 1;
    c->dirs = ddp_xcalloc(c->nlevels, sizeof *c->dirs);
    c->dirfds = ddp_xmalloc(c->nlevels * sizeof *c->dirfds);
    for (uint32_t i = 0; i < c->nlevels; i++) c->dirfds[i] = -1;
    hr = chain_set(c, c->newest.level, dir);

    /* Walk down: each manifest names the one before it. */
    char *prev = c->newest.previous ? ddp_strdup(c->newest.previous) : NULL;
    uint8_t prev_id[DDP_BACKUP_ID_SIZE];
    memcpy(prev_id, c->newest.previous_id, sizeof prev_id);
    for (uint32_t level = c->newest.level; SUCCEEDED(hr) && level > 0; level--) {
        char *pdir = ddp_backup_resolve_previous(c->dirs[level], prev);
        ddp_manifest h;
        hr = ddp_manifest_load(pdir, 1, &h);
        if (hr == DDP_E_NOT_FOUND || hr == HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND) ||
            hr == HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND))
            hr = ddp_fail(DDP_E_NOT_FOUND, "backup %s: the backup it builds on, %s, is missing or not a ddp backup",
                          c->dirs[level], pdir);
        if (SUCCEEDED(hr)) {
            if (memcmp(h.id, prev_id, DDP_BACKUP_ID_SIZE) != 0)
                hr = ddp_fail(DDP_E_INVALID_DATA, "backup %s: %s is not the backup it was built on (another backup id)",
                              c->dirs[level], pdir);
            else if (h.level != level - 1)
                hr = ddp_fail(DDP_E_INVALID_DATA, "backup %s: level %u, expected %u", pdir, h.level, level - 1);
            else if (memcmp(h.store_id, c->newest.store_id, DDP_STORE_ID_SIZE) != 0)
                hr = ddp_fail(DDP_E_INVALID_DATA, "backup %s: not of the same volume as %s", pdir, c->dirs[level]);
            if (SUCCEEDED(hr)) hr = chain_set(c, level - 1, pdir);
            free(prev);
            prev = h.previous ? ddp_strdup(h.previous) : NULL;
            memcpy(prev_id, h.previous_id, sizeof prev_id);
            ddp_manifest_free(&h);
        }
        free(pdir);
    }
    free(prev);
    if (FAILED(hr)) ddp_backup_chain_close(c);
    return hr;
}

