/*
 * status.c: what a volume holds and saves (Windows: Get-DedupStatus):
 * stubs and their logical bytes, other files, the chunk store's size and
 * counts, and the last job. Savings are honest: the store, the index and
 * the stubs themselves are all counted as space used.
 */
#include <fts.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "stub.h"
#include "util.h"
#include "volume.h"

static HRESULT status_one(ddp_volume *v, FTSENT *e, void *arg)
{
    ddp_status *st = arg;
    ddp_stub s;
    if (e->fts_statp->st_size == DDP_STUB_SIZE && ddp_volume_read_stub(v, -1, e->fts_path, &s) == S_OK) {
        st->files_optimized++;
        st->logical_bytes += s.file_size;
        st->stub_bytes += (uint64_t)e->fts_statp->st_size;
    } else {
        st->files_other++;
        st->other_bytes += (uint64_t)e->fts_statp->st_size;
    }
    return S_OK;
}

static void last_line(const char *path, char *out, size_t cap)
{
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        size_t n = strlen(line);
        if (n && line[n - 1] == '\n') line[--n] = '\0';
        if (n) snprintf(out, cap, "%s", line);
    }
    fclose(f);
}

DDP_API HRESULT ddp_volume_status(ddp_volume *v, ddp_status *st)
{
    ddp_clear_error();
    memset(st, 0, sizeof *st);
    HRESULT hr = ddp_volume_walk(v, status_one, st);
    if (FAILED(hr)) return hr;
    ddp_chunkstore *cs = NULL;
    hr = ddp_volume_store(v, &cs);
    if (FAILED(hr)) return hr;
    ddp_chunkstore_stats cst;
    hr = ddp_chunkstore_stats_get(cs, &cst);
    if (FAILED(hr)) return hr;
    st->store_bytes = cst.container_bytes;
    st->chunks = cst.chunks;
    st->data_containers = cst.data_containers;
    st->stream_containers = cst.stream_containers;
    st->index_bytes = cst.index_file_bytes;
    uint64_t used = st->stub_bytes + st->store_bytes + st->index_bytes;
    st->saved_bytes = st->logical_bytes > used ? st->logical_bytes - used : 0;
    uint64_t total = st->logical_bytes + st->other_bytes;
    st->savings_rate = total ? (double)st->saved_bytes / (double)total : 0.0;
    char *log = ddp_path_join(v->state_dir, "jobs.log");
    last_line(log, st->last_job, sizeof st->last_job);
    free(log);
    return S_OK;
}
