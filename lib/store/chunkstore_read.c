/* SPDX-License-Identifier: MIT */
/*
 * chunkstore_read.c: the chunk store's reads (chunkstore.h): a cache of
 * container descriptors, each with its generation's redirection table, and
 * the reads of chunks and stream maps by (container, local id).
 *
 * Each container is opened lazily (O_RDONLY) into the cache (at most 128,
 * least recently used ones closed), the file named through the catalog's
 * generation, its redirection table loaded with it (store/redirect.h:
 * references hold local ids, which a compacted container translates; 16
 * bytes per record). A read-only store reloads the catalog when asked for a
 * container it does not list (a writer may have added it) or whose file is
 * gone (gc compacted it into the next generation and removed the old one),
 * once; and it looks at most once a second whether the catalog was replaced,
 * letting go of the descriptors of replaced generations so their space is
 * freed (the mount). Every read goes through ddp_container_read_record*,
 * which checks both checksums, the codec, the lengths and the SHA-256.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/util.h"
#include "store/chunkstore_internal.h"

/* ---------------------------------------------------------------- read */

static void fd_entry_free(fd_entry *fe)
{
    close(fe->fd);
    free(fe->path);
    ddp_redirect_free(&fe->redir);
    free(fe);
}

void ddp_cs_fds_close(ddp_chunkstore *cs)
{
    for (size_t i = 0; i < cs->nfds; i++) fd_entry_free(cs->fds[i]);
    free(cs->fds);
    cs->fds = NULL;
    cs->nfds = cs->fds_cap = 0;
}


/* A read-only store: when the catalog file was replaced since it was read
 * (looked at once a second at most), read it again and retire every cached
 * descriptor of a generation it no longer names: closed now if no read holds
 * it, else by the last fd_release. Readers then open the current generation. */
static void retire_replaced_generations(ddp_chunkstore *cs)
{
    if (cs->writable) return;
    int64_t now = ddp_cs_now_ms(), last = atomic_load(&cs->cat_checked_ms);
    if (now - last < 1000 || !atomic_compare_exchange_strong(&cs->cat_checked_ms, &last, now)) return;
    struct stat st;
    if (stat(cs->catalog_path, &st) != 0) return;
    pthread_mutex_lock(&cs->lock);
    int changed = st.st_ino != cs->cat_ino;
    if (changed) {
        ddp_catalog fresh;
        if (SUCCEEDED(ddp_cs_catalog_read(cs->catalog_path, cs->store_id, &fresh))) {
            ddp_catalog_free(&cs->cat);
            cs->cat = fresh;
            cs->cat_ino = st.st_ino;
        } else {
            changed = 0;
        }
        ddp_clear_error();
    }
    if (!changed) {
        pthread_mutex_unlock(&cs->lock);
        return;
    }
    /* The generations the catalog names now, taken under `lock`, applied under
     * `fdlock` (never both held). */
    size_t n = 0;
    uint32_t (*cur)[3] = ddp_xmalloc((cs->cat.count ? cs->cat.count : 1) * sizeof *cur);
    for (uint32_t i = 0; i < cs->cat.count; i++) {
        cur[n][0] = cs->cat.entries[i].kind;
        cur[n][1] = cs->cat.entries[i].id;
        cur[n][2] = cs->cat.entries[i].generation;
        n++;
    }
    pthread_mutex_unlock(&cs->lock);
    pthread_mutex_lock(&cs->fdlock);
    for (size_t i = 0; i < cs->nfds;) {
        fd_entry *fe = cs->fds[i];
        int replaced = 1;
        for (size_t j = 0; j < n; j++)
            if (cur[j][0] == fe->kind && cur[j][1] == fe->id) {
                replaced = cur[j][2] != fe->generation;
                break;
            }
        if (replaced) fe->stale = 1;
        if (fe->stale && fe->refs == 0) {
            cs->fds[i] = cs->fds[--cs->nfds];
            fd_entry_free(fe);
            continue;
        }
        i++;
    }
    pthread_mutex_unlock(&cs->fdlock);
    free(cur);
}

/* Where the record of local id `id` lies in the container open as fe. */
static HRESULT resolve(const fd_entry *fe, uint64_t id, uint64_t *at)
{
    if (fe->emptied)
        return ddp_fail(DDP_E_FILE_CORRUPT, "record %llu of %s: garbage collection removed it (the container is empty)",
                        (unsigned long long)id, fe->path);
    return ddp_redirect_resolve(&fe->redir, id, fe->path, at);
}

static void fd_release(ddp_chunkstore *cs, fd_entry *fe)
{
    pthread_mutex_lock(&cs->fdlock);
    if (--fe->refs == 0 && fe->stale) {
        for (size_t i = 0; i < cs->nfds; i++)
            if (cs->fds[i] == fe) {
                cs->fds[i] = cs->fds[--cs->nfds];
                break;
            }
        fd_entry_free(fe);
    }
    pthread_mutex_unlock(&cs->fdlock);
}

static fd_entry *fd_lookup_locked(ddp_chunkstore *cs, uint32_t kind, uint32_t id)
{
    for (size_t i = 0; i < cs->nfds; i++) {
        fd_entry *fe = cs->fds[i];
        if (fe->kind == kind && fe->id == id && !fe->stale) {
            fe->refs++;
            fe->last_use = ++cs->use_clock;
            return fe;
        }
    }
    return NULL;
}

/* A referenced descriptor for container (kind, id); fd_release() it. */
static HRESULT fd_get(ddp_chunkstore *cs, uint32_t kind, uint32_t id, fd_entry **out)
{
    retire_replaced_generations(cs);
    pthread_mutex_lock(&cs->fdlock);
    fd_entry *fe = fd_lookup_locked(cs, kind, id);
    pthread_mutex_unlock(&cs->fdlock);
    if (fe) {
        *out = fe;
        return S_OK;
    }

    /* Name the file through the catalog. A read-only store reloads it when
     * the container is not listed (a writer added it) or its file is gone
     * (garbage collection compacted it into the next generation), once. */
    char *path = NULL;
    int fd = -1;
    ddp_redirect redir;
    memset(&redir, 0, sizeof redir);
    HRESULT hr = S_OK;
    for (int attempt = 0; attempt < 2; attempt++) {
        pthread_mutex_lock(&cs->lock);
        ddp_catalog_entry *e = ddp_catalog_find(&cs->cat, kind, id);
        if ((!e || attempt > 0) && !cs->writable) {
            ddp_catalog fresh;
            if (SUCCEEDED(ddp_cs_catalog_read(cs->catalog_path, cs->store_id, &fresh))) {
                ddp_catalog_free(&cs->cat);
                cs->cat = fresh;
                e = ddp_catalog_find(&cs->cat, kind, id);
            }
            ddp_clear_error();
        }
        uint32_t generation = e ? e->generation : 0;
        pthread_mutex_unlock(&cs->lock);
        if (!generation)
            return ddp_fail(DDP_E_FILE_CORRUPT, "store %s: %s container %u is not in the catalog", cs->store_dir,
                            ddp_cs_kind_name(kind), id);
        path = ddp_cs_container_file(cs, kind, id, generation);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) break;
        hr = ddp_fail_errno(errno, "opening container %s", path);
        if (errno != ENOENT || cs->writable || attempt > 0) {
            free(path);
            return hr;
        }
        free(path);
        path = NULL;
    }
    /* Its header (the generation the catalog names) and redirection table. */
    uint8_t hb[DDP_CONTAINER_HEADER_SIZE];
    ddp_container_header ch;
    hr = ddp_pread_exact(fd, hb, sizeof hb, 0, path);
    if (SUCCEEDED(hr) && FAILED(hr = ddp_container_header_decode(hb, &ch)))
        hr = ddp_fail(hr == DDP_E_UNSUPPORTED_VERSION ? hr : DDP_E_FILE_CORRUPT, "container %s: %s", path,
                      ddp_error_detail());
    if (SUCCEEDED(hr) && (ch.kind != kind || ch.id != id))
        hr = ddp_fail(DDP_E_FILE_CORRUPT, "container %s: its header names another container (kind %u, id %u)", path,
                      ch.kind, ch.id);
    if (SUCCEEDED(hr)) hr = ddp_redirect_load(fd, path, &ch, &redir);
    int emptied = SUCCEEDED(hr) && ch.generation > 1 && ch.redirect_len == 0;
    if (FAILED(hr)) {
        close(fd);
        free(path);
        return hr;
    }

    pthread_mutex_lock(&cs->fdlock);
    fe = fd_lookup_locked(cs, kind, id);
    if (fe) {
        /* Another thread opened it meanwhile. */
        pthread_mutex_unlock(&cs->fdlock);
        close(fd);
        free(path);
        ddp_redirect_free(&redir);
        *out = fe;
        return S_OK;
    }
    if (cs->nfds >= FD_CACHE_MAX) {
        size_t victim = cs->nfds;
        for (size_t i = 0; i < cs->nfds; i++)
            if (cs->fds[i]->refs == 0 && (victim == cs->nfds || cs->fds[i]->last_use < cs->fds[victim]->last_use))
                victim = i;
        if (victim < cs->nfds) {
            fd_entry *old = cs->fds[victim];
            cs->fds[victim] = cs->fds[--cs->nfds];
            fd_entry_free(old);
        }
    }
    if (cs->nfds == cs->fds_cap) {
        cs->fds_cap = cs->fds_cap ? cs->fds_cap * 2 : 16;
        cs->fds = ddp_xrealloc(cs->fds, cs->fds_cap * sizeof *cs->fds);
    }
    fe = ddp_xcalloc(1, sizeof *fe);
    fe->kind = kind;
    fe->id = id;
    fe->fd = fd;
    fe->refs = 1;
    fe->last_use = ++cs->use_clock;
    fe->path = path;
    fe->redir = redir;
    fe->emptied = emptied;
    fe->generation = ch.generation;
    cs->fds[cs->nfds++] = fe;
    pthread_mutex_unlock(&cs->fdlock);
    *out = fe;
    return S_OK;
}

HRESULT ddp_chunkstore_read_chunk(ddp_chunkstore *cs, const ddp_chunk_loc *loc, const uint8_t hash[DDP_HASH_SIZE],
                                  void *out)
{
    if (!cs || !loc || !hash || !out) return E_POINTER;
    if (loc->container == 0 || loc->logical_len == 0 || loc->logical_len > CHUNK_MAX_LOGICAL)
        return ddp_fail(E_INVALIDARG, "chunk location (container %u, %u bytes) is not valid", loc->container,
                        loc->logical_len);
    HRESULT hr = ddp_cs_ensure_flushed(cs, &cs->ws[W_DATA], loc->container,
                                loc->offset + DDP_RECORD_HEADER_SIZE + loc->stored_len);
    if (FAILED(hr)) return hr;
    fd_entry *fe;
    if (FAILED(hr = fd_get(cs, DDP_KIND_DATA, loc->container, &fe))) return hr;
    ddp_record_header h;
    uint64_t at = 0; /* loc->offset is the record's local id */
    hr = resolve(fe, loc->offset, &at);
    if (SUCCEEDED(hr))
        hr = ddp_container_read_record_into(fe->fd, fe->path, at, DDP_RECORD_CHUNK, hash, &h, out, loc->logical_len);
    fd_release(cs, fe);
    return hr;
}

HRESULT ddp_chunkstore_read_streammap(ddp_chunkstore *cs, uint32_t container, uint64_t offset,
                                      const uint8_t *expect_hash, ddp_streammap *m)
{
    if (!cs || !m) return E_POINTER;
    ddp_streammap_init(m);
    if (container == 0) return ddp_fail(E_INVALIDARG, "stream container 0 does not exist");
    HRESULT hr = ddp_cs_ensure_flushed(cs, &cs->ws[W_STREAM], container, UINT64_MAX);
    if (FAILED(hr)) return hr;
    fd_entry *fe;
    if (FAILED(hr = fd_get(cs, DDP_KIND_STREAM, container, &fe))) return hr;
    ddp_record_header h;
    memset(&h, 0, sizeof h);
    uint8_t *buf = NULL;
    uint64_t at = 0; /* offset is the record's local id */
    hr = resolve(fe, offset, &at);
    if (SUCCEEDED(hr))
        hr = ddp_container_read_record(fe->fd, fe->path, at, DDP_RECORD_STREAMMAP, expect_hash, &h, &buf);
    if (SUCCEEDED(hr)) {
        hr = ddp_streammap_decode(buf, h.logical_len, m);
        if (FAILED(hr)) {
            char inner[1024];
            snprintf(inner, sizeof inner, "%s", ddp_error_detail());
            hr = ddp_fail(hr, "container %s offset %llu: %s", fe->path, (unsigned long long)offset, inner);
            ddp_streammap_free(m);
        }
    }
    fd_release(cs, fe);
    free(buf);
    return hr;
}
