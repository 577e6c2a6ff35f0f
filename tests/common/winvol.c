/* SPDX-License-Identifier: MIT */
/*
 * tests/common/winvol.c: the test writer of Windows-format chunk stores
 * (winvol.h).
 */
#include "winvol.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hash.h"
#include "base/util.h"
#include "winbuild.h"
#include "windows/container.h"
#include "windows/reparse.h"
#include "windows/winstore.h"
#include "xpress_enc.h"

typedef struct tw_chunk {
    uint8_t key[32]; /* sha256 of the content: the dedup key */
    uint32_t cid, gen, offset, stored, seq;
    uint64_t logical;
    uint8_t hash[32]; /* the 32-byte "chunk hash" written (opaque) */
} tw_chunk;

typedef struct tw_stream {
    uint32_t cid;
    uint64_t next;
    uint32_t seq;
    uint32_t n;
    uint32_t seqs[1020], offs[1020];
} tw_stream;

struct tw_vol {
    tw_vol_cfg cfg;
    tw_sink_fn sink;
    void *ctx;
    char dir[DDP_WIN_STORE_DIR_MAX];
    tw_chunk *chunks;
    size_t nchunks, cap;
    /* data containers written: ids 1..ndata, the current one is ndata */
    uint32_t ndata;
    uint64_t data_next;
    uint32_t data_seq;
    uint64_t *data_len; /* per id, length written */
    tw_stream *streams;
    size_t nstreams;
    uint8_t *scratch;
    size_t scratch_cap;
};

void tw_vol_defaults(tw_vol_cfg *cfg, tw_opts *o)
{
    if (cfg) {
        memset(cfg, 0, sizeof *cfg);
        static const uint8_t g[16] = { 0xd7, 0x62, 0xf9, 0x77, 0x32, 0x15, 0xcd, 0x4d,
                                       0x8e, 0xc9, 0x22, 0x4c, 0x8b, 0x17, 0x74, 0x1f };
        memcpy(cfg->guid, g, 16);
        cfg->conv = DDP_WIN_CRC64_NVME;
        cfg->stream_cid = 0x10000;
        cfg->stream_gen = 1;
        cfg->data_gen = 1;
        cfg->data_max = 64u << 20;
        cfg->maps_per_stream = 1000;
    }
    if (o) {
        memset(o, 0, sizeof *o);
        o->format = 0x0103;
        o->compress = 1;
        o->parts = 1;
        o->chunk_min = 32768;
        o->chunk_max = 131072;
        o->filetime = 0x01d36f667251f859ull;
    }
}

tw_vol *tw_vol_new(const tw_vol_cfg *cfg, tw_sink_fn sink, void *ctx)
{
    tw_vol *v = ddp_xcalloc(1, sizeof *v);
    v->cfg = *cfg;
    if (v->cfg.maps_per_stream == 0 || v->cfg.maps_per_stream > 1020) v->cfg.maps_per_stream = 1020;
    v->sink = sink;
    v->ctx = ctx;
    ddp_win_store_dir(cfg->guid, v->dir);
    return v;
}

const char *tw_vol_store_dir(const tw_vol *v) { return v->dir; }

void tw_vol_free(tw_vol *v)
{
    if (!v) return;
    free(v->chunks);
    free(v->data_len);
    free(v->streams);
    free(v->scratch);
    free(v);
}

static int put(tw_vol *v, int stream, uint32_t cid, uint32_t gen, uint64_t off, const void *d, size_t n)
{
    char *p = ddp_win_container_path(v->dir, stream, cid, gen);
    int rc = v->sink(v->ctx, p, off, d, n);
    if (rc) fprintf(stderr, "winvol: cannot write %s\n", p);
    free(p);
    return rc;
}

/* Chunk length at absolute offset pos: fixed by pos alone. */
static size_t chunk_len(uint64_t pos, const tw_opts *o)
{
    uint64_t z = pos + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return o->chunk_min + (size_t)(z % (o->chunk_max - o->chunk_min + 1));
}

static tw_chunk *find_chunk(tw_vol *v, const uint8_t key[32], uint64_t logical, int compress)
{
    for (size_t i = v->nchunks; i-- > 0;) {
        tw_chunk *c = &v->chunks[i];
        if (c->logical == logical && memcmp(c->key, key, 32) == 0 && (compress || c->stored == logical)) return c;
    }
    return NULL;
}

static tw_chunk *store_chunk(tw_vol *v, const uint8_t *d, size_t n, int compress)
{
    uint8_t key[32];
    ddp_sha256(d, n, key);
    tw_chunk *c = find_chunk(v, key, n, compress);
    if (c) return c;
    if (v->ndata == 0 || v->data_next > v->cfg.data_max) {
        v->ndata++;
        v->data_len = ddp_xrealloc(v->data_len, v->ndata * sizeof *v->data_len);
        v->data_next = DDP_WIN_FIRST_RECORD;
        v->data_seq = 1;
    }
    size_t cap = DDP_WIN_DATA_HDR_SIZE + TX_XPRESS_BOUND(n);
    if (v->scratch_cap < cap) {
        free(v->scratch);
        v->scratch = ddp_xmalloc(cap);
        v->scratch_cap = cap;
    }
    size_t stored = n;
    uint32_t comp = 0;
    if (compress) {
        size_t en = tx_xpress_encode(d, n, v->scratch + DDP_WIN_DATA_HDR_SIZE, cap - DDP_WIN_DATA_HDR_SIZE, 0);
        if (en > 0 && en < n) {
            stored = en;
            comp = DDP_WIN_COMPRESSION_XPRESS;
        }
    }
    if (comp == 0) memcpy(v->scratch + DDP_WIN_DATA_HDR_SIZE, d, n);
    if (v->nchunks == v->cap) {
        v->cap = v->cap ? 2 * v->cap : 256;
        v->chunks = ddp_xrealloc(v->chunks, v->cap * sizeof *v->chunks);
    }
    c = &v->chunks[v->nchunks++];
    memcpy(c->key, key, 32);
    /* The chunk hash: an opaque 32-byte key (Windows' algorithm is unknown). */
    static const uint8_t salt[8] = { 'w', 'i', 'n', 'h', 'a', 's', 'h', ':' };
    uint8_t salted[40];
    memcpy(salted, salt, sizeof salt);
    memcpy(salted + 8, key, 32);
    ddp_sha256(salted, sizeof salted, c->hash);
    c->cid = v->ndata;
    c->gen = v->cfg.data_gen;
    c->offset = (uint32_t)v->data_next;
    c->stored = (uint32_t)stored;
    c->logical = n;
    c->seq = v->data_seq++;
    tw_data_hdr(v->scratch, c->seq, c->stored, comp, c->hash, v->cfg.conv);
    if (put(v, 0, c->cid, c->gen, v->data_next, v->scratch, DDP_WIN_DATA_HDR_SIZE + stored)) return NULL;
    v->data_next = (v->data_next + DDP_WIN_DATA_HDR_SIZE + stored + 7) & ~(uint64_t)7;
    v->data_len[v->ndata - 1] = v->data_next;
    return c;
}

static tw_stream *cur_stream(tw_vol *v)
{
    if (v->nstreams == 0 || v->streams[v->nstreams - 1].n >= v->cfg.maps_per_stream) {
        v->streams = ddp_xrealloc(v->streams, (v->nstreams + 1) * sizeof *v->streams);
        tw_stream *s = &v->streams[v->nstreams];
        memset(s, 0, sizeof *s);
        s->cid = v->cfg.stream_cid + (uint32_t)v->nstreams * 0x10000u;
        s->next = DDP_WIN_FIRST_RECORD;
        s->seq = 1;
        v->nstreams++;
    }
    return &v->streams[v->nstreams - 1];
}

int tw_vol_add(tw_vol *v, const uint8_t *data, uint64_t n, const tw_opts *o, uint8_t *reparse, size_t *rlen)
{
    /* The file's chunks. */
    size_t nc = 0, ccap = 64;
    size_t *list = ddp_xmalloc(ccap * sizeof *list); /* indexes: chunks may move */
    uint64_t *ends = ddp_xmalloc(ccap * sizeof *ends);
    for (uint64_t pos = 0; pos < n;) {
        size_t len = chunk_len(pos, o);
        if (len > n - pos) len = (size_t)(n - pos);
        tw_chunk *c = store_chunk(v, data + pos, len, o->compress);
        if (!c) return -1;
        if (nc == ccap) {
            ccap *= 2;
            list = ddp_xrealloc(list, ccap * sizeof *list);
            ends = ddp_xrealloc(ends, ccap * sizeof *ends);
        }
        list[nc] = (size_t)(c - v->chunks);
        pos += len;
        ends[nc++] = pos;
    }
    unsigned parts = o->parts ? o->parts : 1;
    if (parts > nc && nc > 0) parts = (unsigned)nc;
    if (nc == 0) parts = 1;
    if (o->format == 0x0201 && parts != 1) {
        fprintf(stderr, "winvol: format 0x0201 holds one part only\n");
        return -1;
    }
    tw_part tp[32];
    if (parts > 32) parts = 32;
    size_t first = 0;
    for (unsigned p = 0; p < parts; p++) {
        size_t last = nc * (p + 1) / parts; /* chunks [first, last) */
        size_t k = last - first;
        tw_stream *s = cur_stream(v);
        size_t rec = DDP_WIN_SMAP_ENTRIES_AT + 64 * k;
        uint8_t *r = ddp_xcalloc(1, rec);
        for (size_t i = 0; i < k; i++) {
            tw_chunk *c = &v->chunks[list[first + i]];
            ddp_win_smap_entry e = { .seq = c->seq, .cid = c->cid, .offset = c->offset, .gen = c->gen,
                                     .end = ends[first + i], .stored = c->stored };
            memcpy(e.hash, c->hash, 32);
            tw_smap_entry(r + DDP_WIN_SMAP_ENTRIES_AT + 64 * i, &e);
        }
        uint8_t h[32];
        ddp_sha256(r + DDP_WIN_SMAP_ENTRIES_AT, 64 * k, h);
        h[0] ^= (uint8_t)s->seq; /* distinct even for equal maps */
        uint32_t seq = s->seq++;
        tw_smap_hdr(r, seq, (uint32_t)k, h, v->cfg.conv);
        if (put(v, 1, s->cid, v->cfg.stream_gen, s->next, r, rec)) return -1;
        free(r);
        tw_part *t = &tp[p];
        memset(t, 0, sizeof *t);
        t->seq = seq;
        t->cid = s->cid;
        t->offset = (uint32_t)s->next;
        t->smap_size = (uint32_t)(8 + 64 * k);
        memcpy(t->hash, h, 32);
        t->begin = first ? ends[first - 1] : 0;
        t->end = k ? ends[last - 1] : t->begin;
        if (o->stale) /* the previous record of the container, or a misaligned place */
            t->offset = s->n > 0 ? s->offs[s->n - 1] : (uint32_t)s->next + 8;
        s->seqs[s->n] = seq;
        s->offs[s->n] = (uint32_t)s->next;
        s->n++;
        s->next = (s->next + rec + 7) & ~(uint64_t)7;
        first = last;
    }
    free(list);
    free(ends);
    *rlen = tw_reparse_build(o->format, v->cfg.guid, n, o->filetime, tp, parts, reparse);
    if (*rlen == 0) {
        fprintf(stderr, "winvol: cannot build a 0x%04x reparse point with %u parts\n", o->format, parts);
        return -1;
    }
    return 0;
}

int tw_vol_finish(tw_vol *v)
{
    uint8_t c[DDP_WIN_CTHR_SIZE];
    for (uint32_t d = 1; d <= v->ndata; d++) {
        tw_cthr(c, d, v->cfg.data_gen, v->data_len[d - 1], v->cfg.conv);
        if (put(v, 0, d, v->cfg.data_gen, 0, c, sizeof c)) return -1;
    }
    for (size_t i = 0; i < v->nstreams; i++) {
        tw_stream *s = &v->streams[i];
        tw_cthr(c, s->cid, v->cfg.stream_gen, s->next, v->cfg.conv);
        if (put(v, 1, s->cid, v->cfg.stream_gen, 0, c, sizeof c)) return -1;
        uint8_t *t = ddp_xcalloc(1, 0x20 + 8 * (size_t)s->n);
        tw_rrtl(t, s->seqs, s->offs, s->n, v->cfg.conv);
        int rc = put(v, 1, s->cid, v->cfg.stream_gen, DDP_WIN_RRTL_OFFSET, t, 0x20 + 8 * (size_t)s->n);
        free(t);
        if (rc) return -1;
        if (v->cfg.decoy_gen) {
            /* A higher generation whose records do not validate (a header and
             * zeros), and a renamed old copy the reader must skip. */
            uint8_t *z = ddp_xcalloc(1, (size_t)s->next);
            tw_cthr(z, s->cid, v->cfg.stream_gen + 1, s->next, v->cfg.conv);
            rc = put(v, 1, s->cid, v->cfg.stream_gen + 1, 0, z, (size_t)s->next);
            char *p = ddp_win_container_path(v->dir, 1, s->cid, v->cfg.stream_gen + 2);
            char *pd = ddp_xasprintf("%s.delete", p);
            if (!rc) rc = v->sink(v->ctx, pd, 0, z, (size_t)s->next);
            free(p);
            free(pd);
            free(z);
            if (rc) return -1;
        }
    }
    return 0;
}
