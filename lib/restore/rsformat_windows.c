/* SPDX-License-Identifier: MIT */
/*
 * rsformat_windows.c: Windows Server Data Deduplication's on-disk format
 * behind the restore engine's format interface (rsformat.h), over the
 * parsers of lib/windows (reparse.h, container.h, xpress.h). Layouts:
 * docs/WINDOWS.md; how a restore of them goes: docs/BACKUP.md.
 *
 *  - A stub: a "reparse file", a regular file whose whole content is the
 *    REPARSE_DATA_BUFFER (tag 0x80000013). A regular file of at most 16 KiB
 *    that begins with that tag claims to be one; it must then parse (the
 *    three formats 0x0201, 0x0102, 0x0103, the CRC-32 trailer, parts that
 *    cover [0, file size)), else DDP_E_INVALID_DATA.
 *  - Paths in the backup are Windows' own, from the volume root:
 *    "/System Volume Information/Dedup/ChunkStore/{GUID}.ddp/Stream/
 *    00010000.00000001.ccc" (GUID of the reparse point). Windows reads no
 *    other metadata file.
 *  - A reparse point names its stream-map container by id only; its file
 *    name also holds a generation. The generations the backup holds are
 *    listed with IDdpListBackupFolder (ddp's own interface, by QueryInterface
 *    on the callback) when the store has it; else probed by reading the first
 *    64 bytes (the Cthr) of each candidate name, with a PreviewContainerRead
 *    just before: generations 1..8 and 0x10000..0x10003 (WIN_PROBE_GENS, the
 *    forms seen on real volumes), all before the first OrderContainersRestore.
 *    None: DDP_E_PATH_NOT_FOUND. The stream map is looked for in the highest
 *    generation first, then the next ones (at most WIN_MAX_GENS = 4): the
 *    first where it is found (at its offset or through the Rrtl) is used.
 *  - Each part (reparse entry) has its stream-map record: the Ckhr at the
 *    entry's offset, 0x68 + smap_size bytes. It is the part's when the
 *    header parses, seq, payload size and hash prefix are the entry's. If
 *    not (or it lies past the container's end), the offset is stale: the
 *    Rrtl redirection table at 0x3000 of the container (its 32-byte header,
 *    then count items of 8 bytes) gives the seq's current offset, and the
 *    record there must be the part's. Else the next generation; when none is
 *    left, DDP_E_FILE_CORRUPT naming the record. A redirected record whose
 *    bytes were already read in the call (it overlaps the stale one) cannot
 *    be read again (R7): DDP_E_FILE_CORRUPT.
 *  - The stream map: entries with strictly increasing cumulative ends from
 *    the part's start to its end, a positive stored size, compressed chunks
 *    (stored != logical) of at most 128 KiB logical, raw chunks of at most
 *    4 MiB. Each names its data container exactly (id and generation).
 *  - A chunk record: the 88-byte data Ckhr at the entry's offset: seq,
 *    payload size and the 32-byte hash must be the entry's; raw chunks are
 *    the payload itself, compressed ones must decode (MS-XCA Plain LZ77,
 *    compression format 2) to exactly the logical length.
 *  - CRC-64s of Ckhr headers: Windows' register convention is not settled
 *    (windows/crc.h). Per store and per header kind, the first header whose
 *    CRC-64 matches a convention fixes it; a later header that does not
 *    match it is DDP_E_FILE_CORRUPT. A store whose headers match neither is
 *    not checked.
 *  - What cannot be verified: Windows' chunk and stream-map hashes are not
 *    SHA-256 (their algorithm is unknown), so a raw chunk's bytes are only
 *    as good as the container; a restored file is checked for every chunk
 *    written and its size, not against a whole-file hash.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "restore/rsformat.h"
#include "windows/container.h"
#include "windows/reparse.h"
#include "windows/xpress.h"

#define WIN_STORE_FMT "/System Volume Information/Dedup/ChunkStore/%s.ddp/"
#define WIN_RAW_MAX ((uint32_t)4 << 20)
#define WIN_PROBE_READ 64u
static const uint32_t WIN_PROBE_GENS[] = { 1, 2, 3, 4, 5, 6, 7, 8, 0x10000, 0x10001, 0x10002, 0x10003 };
#define WIN_NPROBE (sizeof WIN_PROBE_GENS / sizeof WIN_PROBE_GENS[0])
#define WIN_RRTL_HDR_SIZE 32u
/* Names taken from one folder listing (more are ignored). */
#define WIN_LIST_MAX 1000000u

/* Stages of a stream-phase need (low 2 bits of the tag; the part above). */
enum { ST_RECORD = 0, ST_RRTL_HDR = 1, ST_RRTL_ITEMS = 2, ST_REDIRECTED = 3 };
#define TAG(part, stage) (((uint32_t)(part) << 2) | (uint32_t)(stage))

typedef struct win_name { uint32_t cid, gen; char *name; } win_name;

typedef struct win_store {
    uint8_t guid[16];
    char *prefix;          /* WIN_STORE_FMT */
    int listed;            /* the folders were listed */
    win_name *stream, *data;
    size_t nstream, ndata;
    ddp_win_crc64_conv data_conv, smap_conv; /* the CRC-64 convention the store showed */
} win_store;

typedef struct win_cont {
    uint32_t store, kind, cid, gen;
    const char *name;      /* as listed (not owned), or NULL: the canonical name */
} win_cont;

/* The generations of one stream container the backup holds, highest first. */
#define WIN_MAX_GENS 4
typedef struct resolved {
    uint32_t store, cid, ngens, gens[WIN_MAX_GENS];
    HRESULT hr;
} resolved;

typedef struct win_fctx {
    resolved *res;
    size_t nres;
    win_store *stores;
    uint32_t nstores;
    win_cont *conts;
    uint32_t ncont, cap;
    uint32_t *slots;       /* open addressing over conts: index + 1, 0 = empty */
    uint32_t nslots;
} win_fctx;

typedef struct win_chunk {
    uint32_t cont, offset, stored, logical, seq;
    uint64_t file_off;
    uint8_t hash[32];
} win_chunk;

typedef struct win_part {
    ddp_win_reparse_entry e;
    uint32_t res, gi;      /* its generations (x->res) and the one tried now */
    uint32_t cont;         /* stream container of that generation (win_cont index) */
    win_chunk *chunks;
    uint32_t nchunks;
    int mapped;
    uint32_t rrtl_count;
} win_part;

typedef struct win_fstate {
    uint32_t store;
    uint32_t nparts, nmapped;
    win_part *parts;
    win_chunk *chunks;     /* all parts' chunks, once every part is mapped */
    uint32_t nchunks;
} win_fstate;

static win_fstate *fs_of(rs_ctx *c, uint32_t i)
{
    return c->files[i].fs;
}

/* ---- stubs ---- */

static int win_recognise(const uint8_t *head, size_t n, uint64_t size)
{
    return size <= DDP_WIN_REPARSE_MAX && ddp_win_reparse_has_tag(head, n);
}

static HRESULT win_parse(rs_ctx *c, uint32_t i, const uint8_t *stub, size_t n, uint64_t size)
{
    if (size != n) return ddp_fail(DDP_E_INVALID_DATA, "a Windows reparse file of %llu bytes (at most %u)",
                                   (unsigned long long)size, DDP_WIN_REPARSE_MAX);
    ddp_win_reparse *rp = ddp_xmalloc(sizeof *rp);
    HRESULT hr = ddp_win_reparse_parse(stub, n, rp);
    if (FAILED(hr)) {
        free(rp);
        return ddp_fail(DDP_E_INVALID_DATA, "Windows reparse point: %s", ddp_error_detail());
    }
    for (uint32_t p = 0; p < rp->nentries; p++) {
        uint32_t size_p = rp->entries[p].smap_size;
        if (size_p > DDP_WIN_SMAP_MAX_SIZE) {
            free(rp);
            return ddp_fail(DDP_E_INVALID_DATA, "Windows reparse point: part %u names a stream map of %u bytes (at most %u)",
                            p, size_p, DDP_WIN_SMAP_MAX_SIZE);
        }
    }
    win_fstate *s = ddp_xcalloc(1, sizeof *s);
    s->nparts = rp->nentries;
    s->parts = ddp_xcalloc(s->nparts, sizeof *s->parts);
    for (uint32_t p = 0; p < s->nparts; p++) s->parts[p].e = rp->entries[p];
    c->files[i].fs = s;
    c->files[i].size = rp->file_size;
    /* Its chunk store, by GUID, in the call's table of stores. */
    win_fctx *x = c->fctx[c->files[i].fmt];
    if (!x) x = c->fctx[c->files[i].fmt] = ddp_xcalloc(1, sizeof *x);
    uint32_t k = 0;
    while (k < x->nstores && memcmp(x->stores[k].guid, rp->store_guid, 16) != 0) k++;
    if (k == x->nstores) {
        x->stores = ddp_xrealloc(x->stores, ((size_t)x->nstores + 1) * sizeof *x->stores);
        memset(&x->stores[k], 0, sizeof x->stores[k]);
        memcpy(x->stores[k].guid, rp->store_guid, 16);
        char g[39];
        ddp_win_guid_format(rp->store_guid, g);
        x->stores[k].prefix = ddp_xasprintf(WIN_STORE_FMT, g);
        x->nstores++;
    }
    s->store = k;
    free(rp);
    return S_OK;
}

/* ---- containers ---- */

static uint32_t cont_hash(uint32_t store, uint32_t kind, uint32_t cid, uint32_t gen)
{
    uint64_t h = ((uint64_t)store * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)kind << 61) ^
                 ((uint64_t)cid * 0xC2B2AE3D27D4EB4Full) ^ ((uint64_t)gen * 0x165667B19E3779F9ull);
    h ^= h >> 29;
    return (uint32_t)h;
}

static const char *listed_name(const win_name *v, size_t n, uint32_t cid, uint32_t gen)
{
    for (size_t k = 0; k < n; k++)
        if (v[k].cid == cid && v[k].gen == gen) return v[k].name;
    return NULL;
}

/* The index of container (store, kind, cid, gen), made on first use. */
static uint32_t cont_intern(win_fctx *x, uint32_t store, uint32_t kind, uint32_t cid, uint32_t gen)
{
    if (x->ncont * 2 >= x->nslots) {
        uint32_t n = x->nslots ? x->nslots * 2 : 64;
        free(x->slots);
        x->slots = ddp_xcalloc(n, sizeof *x->slots);
        x->nslots = n;
        for (uint32_t k = 0; k < x->ncont; k++) {
            const win_cont *w = &x->conts[k];
            uint32_t h = cont_hash(w->store, w->kind, w->cid, w->gen) & (n - 1);
            while (x->slots[h]) h = (h + 1) & (n - 1);
            x->slots[h] = k + 1;
        }
    }
    uint32_t h = cont_hash(store, kind, cid, gen) & (x->nslots - 1);
    while (x->slots[h]) {
        const win_cont *w = &x->conts[x->slots[h] - 1];
        if (w->store == store && w->kind == kind && w->cid == cid && w->gen == gen) return x->slots[h] - 1;
        h = (h + 1) & (x->nslots - 1);
    }
    if (x->ncont == x->cap) {
        x->cap = x->cap ? x->cap * 2 : 16;
        x->conts = ddp_xrealloc(x->conts, (size_t)x->cap * sizeof *x->conts);
    }
    win_cont *w = &x->conts[x->ncont];
    w->store = store;
    w->kind = kind;
    w->cid = cid;
    w->gen = gen;
    const win_store *st = &x->stores[store];
    w->name = kind == RS_KIND_DATA ? listed_name(st->data, st->ndata, cid, gen)
                                   : listed_name(st->stream, st->nstream, cid, gen);
    x->slots[h] = ++x->ncont;
    return x->ncont - 1;
}

static char *win_container_path(rs_ctx *c, uint32_t fmt, uint32_t kind, uint64_t key, int *missing)
{
    const win_fctx *x = c->fctx[fmt];
    *missing = key >= x->ncont;
    if (*missing) return ddp_strdup("(no such container)");
    const win_cont *w = &x->conts[key];
    char canon[22];
    ddp_win_ccc_name(w->cid, w->gen, canon);
    return ddp_xasprintf("%s%s/%s", x->stores[w->store].prefix, kind == RS_KIND_DATA ? "Data" : "Stream",
                         w->name ? w->name : canon);
}

/* ---- finding the stream containers' generations ---- */

static void names_free(win_name *v, size_t n)
{
    for (size_t k = 0; k < n; k++) free(v[k].name);
    free(v);
}

/* List folder (in store st) through the store's IDdpListBackupFolder. */
static HRESULT list_folder(IDdpListBackupFolder *l, const char *prefix, const char *folder, win_name **out,
                           size_t *nout)
{
    char *path = ddp_xasprintf("%s%s", prefix, folder);
    ULONG n = 0;
    BSTR *names = NULL;
    HRESULT hr = IDdpListBackupFolder_ListBackupFolder(l, path, &n, &names);
    free(path);
    *out = NULL;
    *nout = 0;
    if (hr == HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND) || hr == HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND)) hr = S_OK;
    if (SUCCEEDED(hr) && names) {
        win_name *v = ddp_xcalloc((size_t)n + 1, sizeof *v);
        size_t m = 0;
        for (ULONG k = 0; k < n; k++) {
            uint32_t cid, gen;
            /* Only exact container names ever become part of a path. */
            if (m < WIN_LIST_MAX && names[k] && ddp_win_ccc_name_parse(names[k], &cid, &gen)) {
                v[m].cid = cid;
                v[m].gen = gen;
                v[m].name = ddp_strdup(names[k]);
                m++;
            }
        }
        *out = v;
        *nout = m;
    }
    if (names)
        for (ULONG k = 0; k < n; k++) free(names[k]);
    free(names);
    return hr;
}

/* The stream containers' generations by listing, when the store can list. */
static void list_stores(rs_ctx *c, win_fctx *x)
{
    IDdpListBackupFolder *l = NULL;
    if (FAILED(IDedupReadFileCallback_QueryInterface(c->store, &IID_IDdpListBackupFolder, (void **)&l)) || !l) return;
    for (uint32_t k = 0; k < x->nstores; k++) {
        win_store *st = &x->stores[k];
        if (FAILED(list_folder(l, st->prefix, "Stream", &st->stream, &st->nstream)) ||
            FAILED(list_folder(l, st->prefix, "Data", &st->data, &st->ndata))) {
            names_free(st->stream, st->nstream);
            names_free(st->data, st->ndata);
            st->stream = st->data = NULL;
            st->nstream = st->ndata = 0;
            continue; /* this store will be probed */
        }
        st->listed = 1;
    }
    IDdpListBackupFolder_Release(l);
}

/* Probe generation gen of stream container cid: 1 present, 0 absent, else
 * the failure (a HRESULT < 0). */
static HRESULT probe(rs_ctx *c, const win_store *st, uint32_t cid, uint32_t gen)
{
    char name[22];
    ddp_win_ccc_name(cid, gen, name);
    char *path = ddp_xasprintf("%sStream/%s", st->prefix, name);
    DDP_FILE_EXTENT ext = { WIN_PROBE_READ, 0 };
    (void)IDedupReadFileCallback_PreviewContainerRead(c->store, path, 1, &ext);
    uint8_t buf[WIN_PROBE_READ];
    ULONG got = 0;
    HRESULT hr = IDedupReadFileCallback_ReadBackupFile(c->store, path, 0, WIN_PROBE_READ, buf, &got, 0);
    free(path);
    if (hr == HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND) || hr == HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND)) return 0;
    if (hr == HRESULT_FROM_WIN32(ERROR_HANDLE_EOF)) return 1; /* there, if shorter than a header */
    if (FAILED(hr)) return ddp_fail(hr, "probing %sStream/%s in the backup store failed (0x%08X)", st->prefix,
                                    name, (unsigned)hr);
    return 1;
}

static void gens_add(resolved *r, uint32_t gen)
{
    /* Keep the WIN_MAX_GENS highest, in descending order. */
    uint32_t k = r->ngens;
    if (k == WIN_MAX_GENS) {
        if (gen <= r->gens[k - 1]) return;
        k--;
    }
    while (k > 0 && r->gens[k - 1] < gen) {
        r->gens[k] = r->gens[k - 1];
        k--;
    }
    r->gens[k] = gen;
    if (r->ngens < WIN_MAX_GENS) r->ngens++;
}

/* The generations of stream container cid of store (listed or probed), once. */
static uint32_t resolve_stream(rs_ctx *c, win_fctx *x, uint32_t fmt, uint32_t store, uint32_t cid)
{
    for (size_t k = 0; k < x->nres; k++)
        if (x->res[k].store == store && x->res[k].cid == cid) return (uint32_t)k;
    x->res = ddp_xrealloc(x->res, (x->nres + 1) * sizeof *x->res);
    resolved *r = &x->res[x->nres];
    memset(r, 0, sizeof *r);
    r->store = store;
    r->cid = cid;
    const win_store *st = &x->stores[store];
    HRESULT hr = S_OK;
    if (st->listed) {
        for (size_t k = 0; k < st->nstream; k++)
            if (st->stream[k].cid == cid) gens_add(r, st->stream[k].gen);
    } else {
        for (size_t k = 0; k < WIN_NPROBE && SUCCEEDED(hr); k++) {
            HRESULT p = probe(c, st, cid, WIN_PROBE_GENS[k]);
            if (FAILED(p)) hr = p;
            else if (p == 1) gens_add(r, WIN_PROBE_GENS[k]);
        }
    }
    r->hr = hr;
    if (SUCCEEDED(hr) && r->ngens == 0) r->hr = DDP_E_PATH_NOT_FOUND;
    if (!st->listed)
        for (uint32_t g = 0; g < r->ngens; g++) {
            /* Its Cthr was read by the probe: never again (R7). */
            uint32_t k = cont_intern(x, store, RS_KIND_STREAM, cid, r->gens[g]);
            rs_ivset_add(&rs_cont_get(c, RS_KIND_STREAM, RS_KEY(fmt, k))->read, 0, WIN_PROBE_READ);
        }
    return (uint32_t)x->nres++;
}

/* Part p of file i: look for its stream map in generation gi of its container. */
static void try_gen(rs_ctx *c, uint32_t i, uint32_t p, uint32_t gi)
{
    win_fctx *x = c->fctx[c->files[i].fmt];
    win_fstate *s = fs_of(c, i);
    win_part *wp = &s->parts[p];
    const resolved *r = &x->res[wp->res];
    wp->gi = gi;
    wp->cont = cont_intern(x, s->store, RS_KIND_STREAM, r->cid, r->gens[gi]);
    rs_file_need(c, i, wp->cont, wp->e.offset, DDP_WIN_SMAP_HDR_SIZE + wp->e.smap_size, TAG(p, ST_RECORD));
}

/* Part p's stream map is not in the generation tried (why): the next one,
 * or DDP_E_FILE_CORRUPT when none is left. */
static void next_gen(rs_ctx *c, uint32_t i, uint32_t p, const char *why)
{
    win_fctx *x = c->fctx[c->files[i].fmt];
    win_part *wp = &fs_of(c, i)->parts[p];
    const resolved *r = &x->res[wp->res];
    if (wp->gi + 1 < r->ngens) {
        try_gen(c, i, p, wp->gi + 1);
        return;
    }
    char cn[22];
    ddp_win_ccc_name(r->cid, r->gens[wp->gi], cn);
    rs_file_fail(c, i, ddp_fail(DDP_E_FILE_CORRUPT, "stream map %u (part %u) is in no generation of stream container "
                                "%08X (%u tried); in Stream/%s: %s", wp->e.seq, p, r->cid, r->ngens, cn, why));
}

static uint32_t win_prepare(rs_ctx *c, uint32_t fmt)
{
    win_fctx *x = c->fctx[fmt];
    list_stores(c, x);
    uint32_t valid = 0;
    for (uint32_t i = 0; i < c->n; i++) {
        rs_file *f = &c->files[i];
        if (f->state != RS_PENDING || f->fmt != fmt) continue;
        win_fstate *s = fs_of(c, i);
        valid++;
        for (uint32_t p = 0; p < s->nparts && rs_file_pending(c, i); p++) {
            win_part *wp = &s->parts[p];
            wp->res = resolve_stream(c, x, fmt, s->store, wp->e.stream_cid);
            const resolved *r = &x->res[wp->res];
            if (FAILED(r->hr)) {
                char g[39];
                ddp_win_guid_format(x->stores[s->store].guid, g);
                rs_file_fail(c, i, ddp_fail(r->hr, "stream container %08X of chunk store %s (part %u) %s", r->cid, g, p,
                                            r->hr != DDP_E_PATH_NOT_FOUND ? "cannot be read from the backup"
                                            : x->stores[s->store].listed
                                                ? "is not in the backup (listed)"
                                                : "is not in the backup (generations 1-8 and 0x10000-0x10003 "
                                                  "probed; the store cannot list folders)"));
                break;
            }
            try_gen(c, i, p, 0);
        }
    }
    return valid;
}

/* ---- stream maps ---- */

/* Does the store's CRC-64 convention (per header kind) reject this header? */
static int crc_rejects(ddp_win_crc64_conv *seen, ddp_win_crc64_conv got)
{
    if (*seen == DDP_WIN_CRC64_UNKNOWN) {
        *seen = got;
        return 0;
    }
    return got != *seen;
}

/* Parse the stream map of part p of file i (record bytes, checked to be the part's). */
static void take_map(rs_ctx *c, uint32_t i, uint32_t p, const ddp_win_smap_hdr *h, const uint8_t *bytes,
                     const char *where)
{
    win_fctx *x = c->fctx[c->files[i].fmt];
    win_fstate *s = fs_of(c, i);
    win_part *wp = &s->parts[p];
    wp->chunks = ddp_xmalloc(((size_t)h->nentries + 1) * sizeof *wp->chunks);
    uint64_t prev = wp->e.part_begin;
    for (uint32_t k = 0; k < h->nentries; k++) {
        ddp_win_smap_entry e;
        ddp_win_smap_entry_parse(bytes + DDP_WIN_SMAP_ENTRIES_AT + (size_t)k * DDP_WIN_SMAP_ENTRY_SIZE, &e);
        const char *bad = NULL;
        if (e.end <= prev) bad = "its end does not grow";
        else if (e.end > wp->e.part_end) bad = "it ends past the part";
        else if (e.stored == 0) bad = "its stored size is 0";
        else if (e.stored != e.end - prev && e.end - prev > DDP_WIN_CHUNK_MAX_LOGICAL) bad = "a compressed chunk over 128 KiB";
        else if (e.stored == e.end - prev && e.stored > WIN_RAW_MAX) bad = "a raw chunk over 4 MiB";
        else if (e.stored > WIN_RAW_MAX) bad = "a stored size over 4 MiB";
        if (bad) {
            rs_file_fail(c, i, ddp_fail(DDP_E_FILE_CORRUPT, "stream map at %s: entry %u (end %llu, stored %u): %s",
                                        where, k, (unsigned long long)e.end, e.stored, bad));
            return;
        }
        win_chunk *ch = &wp->chunks[k];
        ch->cont = cont_intern(x, s->store, RS_KIND_DATA, e.cid, e.gen);
        ch->offset = e.offset;
        ch->stored = e.stored;
        ch->logical = (uint32_t)(e.end - prev);
        ch->seq = e.seq;
        ch->file_off = prev;
        memcpy(ch->hash, e.hash, 32);
        prev = e.end;
    }
    if (prev != wp->e.part_end) {
        rs_file_fail(c, i, ddp_fail(DDP_E_FILE_CORRUPT, "stream map at %s covers the file up to %llu, not %llu", where,
                                    (unsigned long long)prev, (unsigned long long)wp->e.part_end));
        return;
    }
    wp->nchunks = h->nentries;
    wp->mapped = 1;
    if (++s->nmapped < s->nparts) return;
    size_t total = 0;
    for (uint32_t q = 0; q < s->nparts; q++) total += s->parts[q].nchunks;
    if (total > UINT32_MAX - 1) {
        rs_file_fail(c, i, ddp_fail(DDP_E_FILE_CORRUPT, "its stream maps have %zu chunks", total));
        return;
    }
    s->chunks = ddp_xmalloc((total + 1) * sizeof *s->chunks);
    size_t m = 0;
    for (uint32_t q = 0; q < s->nparts; q++) {
        if (s->parts[q].nchunks) memcpy(s->chunks + m, s->parts[q].chunks, s->parts[q].nchunks * sizeof *s->chunks);
        m += s->parts[q].nchunks;
        free(s->parts[q].chunks);
        s->parts[q].chunks = NULL;
    }
    s->nchunks = (uint32_t)total;
    rs_file_mapped(c, i, s->nchunks);
}

/* Part p's record at r was not its stream map: try the redirection table. */
static void go_stale(rs_ctx *c, uint32_t i, uint32_t p, const char *why)
{
    win_part *wp = &fs_of(c, i)->parts[p];
    if (wp->e.offset == DDP_WIN_RRTL_OFFSET) { /* cannot be: the table is there */
        next_gen(c, i, p, why);
        return;
    }
    rs_file_need(c, i, wp->cont, DDP_WIN_RRTL_OFFSET, WIN_RRTL_HDR_SIZE, TAG(p, ST_RRTL_HDR));
}

static void on_rrtl_hdr(rs_ctx *c, rs_phase *ph, rs_record *r, const uint8_t *bytes, uint32_t i, uint32_t p)
{
    char what[300];
    snprintf(what, sizeof what, "redirection table at offset %llu of %s", (unsigned long long)r->off,
             ph->conts[r->cont].st->path);
    win_part *wp = &fs_of(c, i)->parts[p];
    ddp_win_rrtl t;
    char why[700];
    if (FAILED(ddp_win_rrtl_parse(bytes, r->len, what, &t))) {
        snprintf(why, sizeof why, "not at offset %u, and %s", wp->e.offset, ddp_error_detail());
        next_gen(c, i, p, why);
        return;
    }
    if (t.count == 0) {
        snprintf(why, sizeof why, "not at offset %u, and the %s is empty", wp->e.offset, what);
        next_gen(c, i, p, why);
        return;
    }
    wp->rrtl_count = t.count;
    rs_file_need(c, i, wp->cont, DDP_WIN_RRTL_ITEMS_AT, t.count * 8u, TAG(p, ST_RRTL_ITEMS));
}

static void on_rrtl_items(rs_ctx *c, rs_phase *ph, rs_record *r, const uint8_t *bytes, uint32_t i, uint32_t p)
{
    char what[300];
    snprintf(what, sizeof what, "redirection table of %s", ph->conts[r->cont].st->path);
    win_part *wp = &fs_of(c, i)->parts[p];
    uint32_t off;
    char why[700];
    if (FAILED(ddp_win_rrtl_check_sorted(bytes, wp->rrtl_count, what))) {
        next_gen(c, i, p, ddp_error_detail());
    } else if (!ddp_win_rrtl_lookup(bytes, wp->rrtl_count, wp->e.seq, &off)) {
        snprintf(why, sizeof why, "not at offset %u, and the %s does not list it", wp->e.offset, what);
        next_gen(c, i, p, why);
    } else if (off == wp->e.offset) {
        snprintf(why, sizeof why, "the %s points at offset %u, where it is not", what, off);
        next_gen(c, i, p, why);
    } else {
        rs_file_need(c, i, wp->cont, off, DDP_WIN_SMAP_HDR_SIZE + wp->e.smap_size, TAG(p, ST_REDIRECTED));
    }
}

static void win_stream_record(rs_ctx *c, rs_phase *ph, rs_record *r, const uint8_t *bytes)
{
    win_fctx *x = c->fctx[RS_KEY_FMT(ph->conts[r->cont].st->key)];
    char where[300];
    snprintf(where, sizeof where, "offset %llu of %s", (unsigned long long)r->off, ph->conts[r->cont].st->path);
    ddp_win_smap_hdr h;
    int parsed = -1; /* the header is parsed once, when a use needs it */
    char why[512] = "";
    for (size_t u = r->use_first; u < r->use_first + r->use_count; u++) {
        uint32_t i = ph->uses[u].file, tag = ph->uses[u].entry;
        if (!rs_file_pending(c, i)) continue;
        uint32_t p = tag >> 2, stage = tag & 3;
        win_fstate *s = fs_of(c, i);
        if (p >= s->nparts) continue; /* cannot be */
        if (stage == ST_RRTL_HDR) {
            on_rrtl_hdr(c, ph, r, bytes, i, p);
            continue;
        }
        if (stage == ST_RRTL_ITEMS) {
            on_rrtl_items(c, ph, r, bytes, i, p);
            continue;
        }
        if (parsed < 0) {
            parsed = SUCCEEDED(ddp_win_smap_hdr_parse(bytes, r->len, where, &h));
            if (!parsed) snprintf(why, sizeof why, "%s", ddp_error_detail());
        }
        const ddp_win_reparse_entry *e = &s->parts[p].e;
        const char *bad = NULL;
        if (!parsed) bad = why;
        else if (h.seq != e->seq) bad = "another stream map's record (seq differs)";
        else if (h.payload_size != e->smap_size) bad = "its payload size differs from the reparse point's";
        else if (memcmp(h.hash, e->hash, e->hash_len) != 0) bad = "its hash differs from the reparse point's";
        if (bad) {
            char w2[900];
            snprintf(w2, sizeof w2, "the record at %s%s: %s", where,
                     stage == ST_RECORD ? "" : " (where the redirection table points)", bad);
            if (stage == ST_RECORD) go_stale(c, i, p, w2);
            else next_gen(c, i, p, w2);
            continue;
        }
        if (crc_rejects(&x->stores[s->store].smap_conv, h.crc)) {
            rs_file_fail(c, i, ddp_fail(DDP_E_FILE_CORRUPT, "stream map at %s: its header's CRC-64 fails (%s; the "
                                        "store uses %s)", where, ddp_win_crc64_name(h.crc),
                                        ddp_win_crc64_name(x->stores[s->store].smap_conv)));
            continue;
        }
        take_map(c, i, p, &h, bytes, where);
    }
}

static void win_stream_unreadable(rs_ctx *c, rs_phase *ph, rs_record *r, HRESULT hr)
{
    char why[600];
    snprintf(why, sizeof why, "%s", ddp_error_detail());
    for (size_t u = r->use_first; u < r->use_first + r->use_count; u++) {
        uint32_t i = ph->uses[u].file, tag = ph->uses[u].entry;
        if (!rs_file_pending(c, i)) continue;
        if ((tag >> 2) >= fs_of(c, i)->nparts) {
            ddp_fail(hr, "%s", why);
            rs_file_fail(c, i, hr);
        } else if ((tag & 3) == ST_RECORD) {
            go_stale(c, i, tag >> 2, why);
        } else {
            next_gen(c, i, tag >> 2, why);
        }
    }
}

/* ---- chunks ---- */

static void win_chunk_ref(rs_ctx *c, uint32_t i, uint32_t k, rs_chunkref *out)
{
    const win_chunk *ch = &fs_of(c, i)->chunks[k];
    out->cont = ch->cont;
    out->rec_off = ch->offset;
    out->rec_len = DDP_WIN_DATA_HDR_SIZE + ch->stored;
    out->file_off = ch->file_off;
}

static void win_chunk_record(rs_ctx *c, rs_phase *ph, rs_record *r, const uint8_t *bytes)
{
    win_fctx *x = c->fctx[RS_KEY_FMT(ph->conts[r->cont].st->key)];
    char where[300];
    snprintf(where, sizeof where, "chunk at offset %llu of %s", (unsigned long long)r->off,
             ph->conts[r->cont].st->path);
    ddp_win_data_hdr h;
    if (FAILED(ddp_win_data_hdr_parse(bytes, r->len, where, &h))) {
        rs_record_fail(c, ph, r, ddp_fail(DDP_E_FILE_CORRUPT, "%s", ddp_error_detail()));
        return;
    }
    uint32_t stored = r->len - DDP_WIN_DATA_HDR_SIZE;
    const uint8_t *data = NULL;
    uint32_t logical = 0;
    for (size_t u = r->use_first; u < r->use_first + r->use_count; u++) {
        uint32_t i = ph->uses[u].file;
        if (!rs_file_pending(c, i)) continue;
        win_fstate *s = fs_of(c, i);
        const win_chunk *ch = &s->chunks[ph->uses[u].entry];
        win_store *st = &x->stores[s->store];
        const char *bad = NULL;
        if (h.seq != ch->seq) bad = "another chunk's record (seq differs)";
        else if (h.payload_size != stored) bad = "its payload size differs from the stream map's";
        else if (memcmp(h.hash, ch->hash, 32) != 0) bad = "its hash differs from the stream map's";
        else if (crc_rejects(&st->data_conv, h.crc)) bad = "its header's CRC-64 fails";
        else if (data && ch->logical != logical) bad = "the stream maps disagree on its logical length";
        if (bad) {
            rs_file_fail(c, i, ddp_fail(DDP_E_FILE_CORRUPT, "%s (seq %u): %s", where, ch->seq, bad));
            continue;
        }
        if (!data) {
            logical = ch->logical;
            if (stored == logical) {
                data = bytes + DDP_WIN_DATA_HDR_SIZE;
            } else if (h.compression != DDP_WIN_COMPRESSION_XPRESS) {
                rs_record_fail(c, ph, r, ddp_fail(DDP_E_FILE_CORRUPT, "%s: compression format %u (only 2, Xpress plain "
                                                  "LZ77, is known)", where, h.compression));
                return;
            } else if (logical > RS_CHUNK_MAX ||
                       FAILED(ddp_win_xpress_decode(bytes + DDP_WIN_DATA_HDR_SIZE, stored, c->chunk, logical, where))) {
                rs_record_fail(c, ph, r, ddp_fail(DDP_E_FILE_CORRUPT, "%s", ddp_error_detail()));
                return;
            } else {
                data = c->chunk;
            }
        }
        rs_write_chunk(c, i, ph->uses[u].entry, ch->file_off, data, logical);
    }
}

/* ---- the end ---- */

static void win_file_release(rs_ctx *c, uint32_t i)
{
    win_fstate *s = fs_of(c, i);
    if (!s) return;
    for (uint32_t p = 0; p < s->nparts; p++) {
        free(s->parts[p].chunks);
        s->parts[p].chunks = NULL;
    }
    free(s->parts);
    s->parts = NULL;
    s->nparts = 0;
    free(s->chunks);
    s->chunks = NULL;
}

static void win_ctx_free(rs_ctx *c, uint32_t fmt)
{
    win_fctx *x = c->fctx[fmt];
    if (!x) return;
    for (uint32_t k = 0; k < x->nstores; k++) {
        free(x->stores[k].prefix);
        names_free(x->stores[k].stream, x->stores[k].nstream);
        names_free(x->stores[k].data, x->stores[k].ndata);
    }
    free(x->stores);
    free(x->res);
    free(x->conts);
    free(x->slots);
    free(x);
    c->fctx[fmt] = NULL;
}

const rs_format rs_format_windows = {
    .name = "windows",
    .stream_exact = 1,
    .recognise = win_recognise,
    .parse = win_parse,
    .prepare = win_prepare,
    .container_path = win_container_path,
    .stream_record = win_stream_record,
    .stream_unreadable = win_stream_unreadable,
    .chunk_ref = win_chunk_ref,
    .chunk_record = win_chunk_record,
    .content_problem = NULL,
    .file_release = win_file_release,
    .ctx_free = win_ctx_free,
};
