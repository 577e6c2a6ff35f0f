/* SPDX-License-Identifier: MIT */
/*
 * file.c: reading a file of a volume, optimized or not (ddp_file_*).
 *
 * An optimized file is read through its stub: the stub is authenticated
 * with the volume's key, its stream map is read from the chunk store and
 * checked against the stub (map hash, size, whole-file hash), then any range
 * is served by locating the chunks that cover it (binary search over the
 * chunks' start offsets), reading each chunk record (checksums, decoding,
 * SHA-256 check) and copying the wanted part. The map and the chunks are
 * read by chunkread.c, which the mount uses too: a chunk whose primary record
 * is damaged is read from its hotspot copy, verified the same way, and
 * counted (ddp_file_copies_used). The last chunk read is cached, so
 * sequential small reads decode each chunk once. A chunk that fails its
 * checks, with no intact copy, fails the read with DDP_E_FILE_CORRUPT (or
 * the error reading it met): never wrong bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/chunker.h"
#include "store/chunkread.h"
#include "store/stub.h"
#include "base/util.h"
#include "volume/volume.h"

struct ddp_file {
    ddp_volume *v;
    int fd;                 /* plain files: the file; optimized: -1 */
    int optimized;
    uint64_t size;
    ddp_streammap map;
    ddp_chunkreader *rd;    /* optimized: the map's and the chunks' reader */
    char *path;
    pthread_mutex_t mu;     /* the cache and copies */
    uint32_t cached;        /* entry index in cache, UINT32_MAX if none */
    uint8_t *cache;
    uint64_t copies;        /* chunks read from a hotspot copy */
};

static ddp_file *file_new(ddp_volume *v, int fd, uint64_t size, const char *path)
{
    ddp_file *f = ddp_xcalloc(1, sizeof *f);
    f->v = v;
    f->fd = fd;
    f->size = size;
    f->cached = UINT32_MAX;
    f->path = ddp_strdup(path);
    pthread_mutex_init(&f->mu, NULL);
    ddp_streammap_init(&f->map);
    return f;
}

/* Make f (fd closed) the reader of the stub s. */
static HRESULT file_use_stub(ddp_file *f, const ddp_stub *s)
{
    HRESULT hr = ddp_volume_chunkreader(f->v, &f->rd);
    if (FAILED(hr)) return ddp_fail(hr, "%s: the chunk store: %s", f->path, ddp_error_detail());
    hr = ddp_chunkreader_map(f->rd, s, f->path, &f->map);
    if (FAILED(hr)) return hr;
    f->optimized = 1;
    f->size = s->file_size;
    f->cache = ddp_xmalloc(DDP_CHUNK_MAX);
    if (f->fd >= 0) close(f->fd);
    f->fd = -1;
    return S_OK;
}

DDP_API HRESULT ddp_file_open(ddp_volume *v, const char *path, ddp_file **out)
{
    ddp_clear_error();
    if (!v || !path || !out) return E_POINTER;
    *out = NULL;
    /* O_NONBLOCK: a FIFO must not hang the reader; fstat says what it is. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return ddp_fail_errno(errno, "opening %s", path);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        HRESULT hr = ddp_fail_errno(errno, "%s", path);
        close(fd);
        return hr;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        if (S_ISDIR(st.st_mode)) return ddp_fail(ddp_hresult_from_errno(EISDIR), "%s is a directory", path);
        return ddp_fail(HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED), "%s is not a regular file", path);
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    ddp_file *f = file_new(v, fd, (uint64_t)st.st_size, path);
    ddp_stub s;
    HRESULT hr = ddp_volume_read_stub(v, fd, path, &s);
    if (hr == S_OK) hr = file_use_stub(f, &s);
    else if (hr == S_FALSE) hr = S_OK;
    if (FAILED(hr)) {
        ddp_file_close(f);
        return hr;
    }
    *out = f;
    return S_OK;
}

HRESULT ddp_file_open_stub(ddp_volume *v, const ddp_stub *s, const char *path, ddp_file **out)
{
    *out = NULL;
    ddp_file *f = file_new(v, -1, 0, path);
    HRESULT hr = file_use_stub(f, s);
    if (FAILED(hr)) {
        ddp_file_close(f);
        return hr;
    }
    *out = f;
    return S_OK;
}

DDP_API uint64_t ddp_file_size(const ddp_file *f) { return f->size; }
DDP_API int ddp_file_is_optimized(const ddp_file *f) { return f->optimized; }

DDP_API uint64_t ddp_file_copies_used(ddp_file *f)
{
    pthread_mutex_lock(&f->mu);
    uint64_t n = f->copies;
    pthread_mutex_unlock(&f->mu);
    return n;
}

DDP_API HRESULT ddp_file_pread(ddp_file *f, void *buf, size_t n, uint64_t off, size_t *got)
{
    *got = 0;
    if (off >= f->size || n == 0) return S_OK;
    if (n > f->size - off) n = (size_t)(f->size - off);
    if (!f->optimized) {
        HRESULT hr = ddp_pread_exact(f->fd, buf, n, off, f->path);
        if (SUCCEEDED(hr)) *got = n;
        return hr;
    }
    uint8_t *dst = buf;
    uint32_t i = ddp_streammap_find(&f->map, off);
    HRESULT hr = S_OK;
    pthread_mutex_lock(&f->mu);
    while (n > 0 && i < f->map.count) {
        const ddp_streammap_entry *e = &f->map.entries[i];
        uint64_t start = f->map.starts[i];
        if (f->cached != i) {
            f->cached = UINT32_MAX;
            ddp_chunk_origin from;
            hr = ddp_chunkreader_read(f->rd, e, f->cache, &from);
            if (FAILED(hr)) {
                hr = ddp_fail(hr, "%s: chunk %u at file offset %llu: %s", f->path, i, (unsigned long long)start,
                              ddp_error_detail());
                break;
            }
            f->cached = i;
            f->copies += (uint64_t)from.copy;
        }
        size_t in = (size_t)(off - start);
        size_t take = e->loc.logical_len - in;
        if (take > n) take = n;
        memcpy(dst, f->cache + in, take);
        dst += take;
        off += take;
        n -= take;
        *got += take;
        i++;
    }
    pthread_mutex_unlock(&f->mu);
    return hr;
}

DDP_API void ddp_file_close(ddp_file *f)
{
    if (!f) return;
    if (f->fd >= 0) close(f->fd);
    ddp_streammap_free(&f->map);
    ddp_chunkreader_close(f->rd);
    pthread_mutex_destroy(&f->mu);
    free(f->cache);
    free(f->path);
    free(f);
}
