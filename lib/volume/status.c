/* SPDX-License-Identifier: MIT */
/*
 * status.c: what a volume holds and saves (Windows: Get-DedupStatus):
 * stubs and their logical bytes, other files, the chunk store's size and
 * counts, and the last job. Savings are honest: the store, the index and
 * the stubs themselves are all counted as space used. The store counts what
 * its container files take on disk (allocated blocks, hotspot copies
 * included; the generation the catalog names): a container of an old
 * volume whose dead records the in-place gc of earlier versions punched out
 * keeps its size but not its blocks, until gc compacts it.
 *
 * Holes are not savings (du counts what is allocated): a file that is not
 * optimized counts its allocated bytes where they are fewer than its size
 * (a sparse file), and an optimized file does not count its all-zero chunks
 * (the holes of a sparse original; a file of written zeros is thus counted
 * as if it had been sparse, so savings are understated, never overstated).
 *
 * The last run of each job (optimize, gc, scrub, unoptimize) comes from the
 * jobs log, State/jobs.log, where each job writes one line when it ends:
 * "STAMP JOB 0xHRESULT key=value...".
 */
#include <dirent.h>
#include <fcntl.h>
#include <fts.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/hash.h"
#include "store/chunker.h"
#include "store/chunkread.h"
#include "store/streammap.h"
#include "store/stub.h"
#include "base/util.h"
#include "volume/volume.h"

/* The SHA-256 of runs of zeros, by length (chunks of zeros come in few lengths). */
#define ZERO_SLOTS 16
typedef struct status_ctx {
    ddp_status *st;
    ddp_chunkreader *reader;
    uint8_t *zeros;                 /* DDP_CHUNK_MAX zero bytes */
    uint32_t zlen[ZERO_SLOTS];
    uint8_t zhash[ZERO_SLOTS][DDP_HASH_SIZE];
    size_t nz;
    uint64_t opt_holes;             /* the optimized files' share of hole_bytes */
} status_ctx;

static int is_zero_chunk(status_ctx *c, const ddp_streammap_entry *e)
{
    uint32_t len = e->loc.logical_len;
    if (len == 0 || len > DDP_CHUNK_MAX) return 0;
    size_t i = 0;
    while (i < c->nz && c->zlen[i] != len) i++;
    if (i == c->nz) {
        if (c->nz == ZERO_SLOTS) i = (size_t)(len % ZERO_SLOTS); /* replace one */
        else c->nz++;
        if (!c->zeros) c->zeros = ddp_xcalloc(1, DDP_CHUNK_MAX);
        c->zlen[i] = len;
        ddp_sha256(c->zeros, len, c->zhash[i]);
    }
    return memcmp(c->zhash[i], e->hash, DDP_HASH_SIZE) == 0;
}

/* The bytes of the optimized file's all-zero chunks (0 if its stream map
 * cannot be read: status reports, it does not check; scrub does). */
static uint64_t zero_bytes(ddp_volume *v, status_ctx *c, const ddp_stub *s, const char *path)
{
    if (!c->reader && FAILED(ddp_volume_chunkreader(v, &c->reader))) {
        ddp_clear_error();
        return 0;
    }
    ddp_streammap m;
    ddp_streammap_init(&m);
    uint64_t n = 0;
    if (SUCCEEDED(ddp_chunkreader_map(c->reader, s, path, &m)))
        for (uint32_t i = 0; i < m.count; i++)
            if (is_zero_chunk(c, &m.entries[i])) n += m.entries[i].loc.logical_len;
    ddp_clear_error();
    ddp_streammap_free(&m);
    return n;
}

static HRESULT status_one(ddp_volume *v, FTSENT *e, void *arg)
{
    status_ctx *c = arg;
    ddp_status *st = c->st;
    ddp_stub s;
    const struct stat *sb = e->fts_statp;
    if (sb->st_size == DDP_STUB_SIZE && ddp_volume_read_stub(v, -1, e->fts_path, &s) == S_OK) {
        st->files_optimized++;
        st->logical_bytes += s.file_size;
        st->stub_bytes += (uint64_t)sb->st_size;
        uint64_t z = zero_bytes(v, c, &s, e->fts_path);
        c->opt_holes += z;
        st->hole_bytes += z;
    } else {
        st->files_other++;
        st->other_bytes += (uint64_t)sb->st_size;
        uint64_t alloc = (uint64_t)sb->st_blocks * 512;
        if (alloc < (uint64_t)sb->st_size) st->hole_bytes += (uint64_t)sb->st_size - alloc;
    }
    return S_OK;
}

/* Copy src into dst[cap], cut if it is longer. */
static void copy_cut(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap) n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* The last line of the jobs log, and the last line of each job. */
static void last_lines(const char *path, ddp_status *st)
{
    static const char *const jobs[] = { "optimize", "gc", "scrub", "unoptimize" };
    char *slots[] = { st->last_optimize, st->last_gc, st->last_scrub, st->last_unoptimize };
    st->last_job[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f) return;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        size_t n = strlen(line);
        if (n && line[n - 1] == '\n') line[--n] = '\0';
        if (!n) continue;
        copy_cut(st->last_job, sizeof st->last_job, line);
        const char *job = strchr(line, ' ');
        if (!job) continue;
        job++;
        for (size_t i = 0; i < sizeof jobs / sizeof jobs[0]; i++) {
            size_t k = strlen(jobs[i]);
            if (strncmp(job, jobs[i], k) == 0 && job[k] == ' ') copy_cut(slots[i], sizeof st->last_gc, line);
        }
    }
    fclose(f);
}

/* Bytes allocated to the container files of store_dir/sub. */
static uint64_t allocated(const char *store_dir, const char *sub)
{
    char *dir = ddp_path_join(store_dir, sub);
    uint64_t total = 0;
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            size_t n = strlen(de->d_name);
            if (n < 5 || strcmp(de->d_name + n - 4, ".ccc") != 0) continue;
            struct stat sb;
            if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode))
                total += (uint64_t)sb.st_blocks * 512;
        }
        closedir(d);
    }
    free(dir);
    return total;
}

/* A directory status cannot read: its files are not counted (the figures
 * are of what can be seen); not a reason to fail. */
static HRESULT status_unreadable(ddp_volume *v, FTSENT *e, void *ctx)
{
    (void)v;
    (void)e;
    (void)ctx;
    return S_OK;
}

DDP_API HRESULT ddp_volume_status(ddp_volume *v, ddp_status *st)
{
    ddp_clear_error();
    memset(st, 0, sizeof *st);
    status_ctx c;
    memset(&c, 0, sizeof c);
    c.st = st;
    HRESULT hr = ddp_volume_walk(v, status_one, status_unreadable, &c);
    if (c.reader) ddp_chunkreader_close(c.reader);
    free(c.zeros);
    if (FAILED(hr)) return hr;
    ddp_chunkstore *cs = NULL;
    hr = ddp_volume_store(v, &cs);
    if (FAILED(hr)) return hr;
    ddp_chunkstore_stats cst;
    hr = ddp_chunkstore_stats_get(cs, &cst);
    if (FAILED(hr)) return hr;
    st->store_bytes = allocated(v->store_dir, "Data") + allocated(v->store_dir, "Stream") +
                      allocated(v->store_dir, "Hotspot");
    if (!st->store_bytes) st->store_bytes = cst.container_bytes; /* a file system without st_blocks */
    st->chunks = cst.chunks;
    st->data_containers = cst.data_containers;
    st->stream_containers = cst.stream_containers;
    st->index_bytes = cst.index_file_bytes;
    uint64_t used = st->stub_bytes + st->store_bytes + st->index_bytes;
    /* Before optimization the optimized files took their logical bytes less their holes. */
    uint64_t before_optimized = st->logical_bytes - c.opt_holes;
    st->saved_bytes = before_optimized > used ? before_optimized - used : 0;
    uint64_t total = st->logical_bytes + st->other_bytes - st->hole_bytes;
    st->savings_rate = total ? (double)st->saved_bytes / (double)total : 0.0;
    char *log = ddp_path_join(v->state_dir, "jobs.log");
    last_lines(log, st);
    free(log);
    return S_OK;
}
