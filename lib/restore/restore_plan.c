/* SPDX-License-Identifier: MIT */
/*
 * restore_plan.c: the read engine of the restore (RestoreFiles rules R5-R8,
 * R10): how the bytes the files need are fetched from a backup store.
 *
 * A phase is one pass over one kind of container: first the stream-map
 * containers, then the data containers. Its input is a list of uses, each
 * naming a record (container key, offset, length) and a file that needs it.
 * Sorting the uses groups them into distinct records, and the records into
 * containers, each with its records in offset order. A record occupies
 * [offset, offset + length) of its container; the formats say exactly where
 * (from the stub, the stream map), so nothing is ever read to find out.
 * The containers of the call are kept across phases and rounds (rs_cstate:
 * path, bytes read), so that no byte is read twice in one call even when
 * the stream-map phase takes several rounds.
 *
 * Running a phase:
 *
 *   1. OrderContainersRestore with the phase's containers (each once). Every
 *      entry of the returned plan is checked before anything is read
 *      (R6: index in range, offset >= 0, length > 0; INT64_MAX = to the end);
 *      one bad entry ends the call with E_INVALIDARG for every pending file.
 *      No plan (NULL or 0 entries) means ddp's own order.
 *   2. For each extent, in plan order: the byte ranges inside it that live
 *      records need and that have not been read yet; ranges separated by at
 *      most RS_COALESCE_GAP (4 KiB) unread bytes are joined, then cut so that
 *      no read exceeds RS_MAX_READ (4 MiB). PreviewContainerRead lists those
 *      reads, then exactly those ReadBackupFile calls follow, forward and
 *      without overlap. A byte covered by several extents is read in the
 *      first only, because every byte read (or tried) goes into the
 *      container's read set and is never asked for again.
 *   3. Then, container by container in list order (ascending id), the needed
 *      bytes that no extent covered, each container with its own preview.
 *
 * Bytes are handed to the records they belong to as they arrive. A record
 * that lies whole inside one read is processed straight from the read
 * buffer; one that straddles reads or extents (an incremental backup splits
 * containers into pieces, a plan may list them in any order) is assembled in
 * its own buffer until its last byte arrives. Since no byte is read twice, a
 * byte count tells when it is complete. Only records that straddle a read
 * boundary are ever buffered, so memory stays bounded by the read size plus
 * one record per boundary.
 *
 * Failures are per file: a missing container (the store answers
 * HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND or ERROR_PATH_NOT_FOUND)) fails
 * every file that needs anything in it with DDP_E_PATH_NOT_FOUND and it is
 * not read again; a short read or ERROR_HANDLE_EOF (a truncated container)
 * fails the files whose records lie past the end with DDP_E_FILE_CORRUPT;
 * any other failure fails the files that needed that read with the store's
 * HRESULT. A record whose files have all failed is dropped and its bytes are
 * not read, so a failed file stops costing reads. A read announced by a
 * preview is skipped only when everything it was for has failed meanwhile.
 *
 * Preludes. A container whose records cannot be placed before some of its
 * bytes are read (ddp: a compacted container, whose records are named by
 * local ids its redirection table maps to offsets; rsformat.h) has a
 * prelude: ranges its format asks for one after another (ddp: the 64-byte
 * header, then the table). Until the prelude is complete, only its current
 * range is needed from that container, read exactly (never coalesced), with
 * its own preview, in the extent that holds it; each step may name the next
 * range, and the last one places the container's records (the ids and the
 * offsets are in the same order, so the records stay sorted), which are
 * then read in the same extent, again after their own preview. Bytes are
 * never read twice, so a range split over extents is assembled by count. A
 * failed prelude (a read, or what the format found in it) fails every
 * record of the container, in this phase and in later ones.
 *
 * PreviewContainerRead is advisory: its result is ignored (a store may well
 * answer E_NOTIMPL).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "restore/restore_internal.h"
#include "restore/rsformat.h"

/* ======================================================================
 * Interval sets
 * ====================================================================== */

/* Index of the first interval that ends after x. */
static size_t iv_after(const rs_ivset *s, uint64_t x)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->v[mid].b <= x) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

void rs_ivset_add(rs_ivset *s, uint64_t a, uint64_t b)
{
    if (a >= b) return;
    /* The intervals that overlap or touch [a, b) are [i, j). */
    size_t i = s->n ? iv_after(s, a) : 0;
    if (i > 0 && s->v[i - 1].b == a) i--;
    size_t j = i;
    while (j < s->n && s->v[j].a <= b) {
        if (s->v[j].a < a) a = s->v[j].a;
        if (s->v[j].b > b) b = s->v[j].b;
        j++;
    }
    if (j == i) {
        if (s->n == s->cap) {
            s->cap = s->cap ? s->cap * 2 : 8;
            s->v = ddp_xrealloc(s->v, s->cap * sizeof *s->v);
        }
        memmove(&s->v[i + 1], &s->v[i], (s->n - i) * sizeof *s->v);
        s->n++;
    } else if (j > i + 1) {
        memmove(&s->v[i + 1], &s->v[j], (s->n - j) * sizeof *s->v);
        s->n -= j - i - 1;
    }
    s->v[i].a = a;
    s->v[i].b = b;
}

void rs_ivset_free(rs_ivset *s)
{
    free(s->v);
    memset(s, 0, sizeof *s);
}

static int ivset_intersects(const rs_ivset *s, uint64_t a, uint64_t b)
{
    if (a >= b || s->n == 0) return 0;
    size_t i = iv_after(s, a);
    return i < s->n && s->v[i].a < b;
}

typedef struct ivlist { rs_interval *v; size_t n, cap; } ivlist;

static void ivlist_push(ivlist *l, uint64_t a, uint64_t b)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->v = ddp_xrealloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n].a = a;
    l->v[l->n].b = b;
    l->n++;
}

/* Push the parts of [a, b) that are not in s. */
static void push_unread(ivlist *l, const rs_ivset *s, uint64_t a, uint64_t b)
{
    size_t i = s->n ? iv_after(s, a) : 0;
    while (a < b) {
        if (i >= s->n || s->v[i].a >= b) {
            ivlist_push(l, a, b);
            return;
        }
        if (s->v[i].a > a) ivlist_push(l, a, s->v[i].a);
        a = s->v[i].b;
        i++;
    }
}

static int iv_cmp(const void *pa, const void *pb)
{
    const rs_interval *x = pa, *y = pb;
    if (x->a != y->a) return x->a < y->a ? -1 : 1;
    return 0;
}

/* ======================================================================
 * Building a phase
 * ====================================================================== */

/* ======================================================================
 * The containers of the call
 * ====================================================================== */

static int cstate_cmp(uint32_t kind, uint64_t key, const rs_cstate *y)
{
    if (kind != y->kind) return kind < y->kind ? -1 : 1;
    if (key != y->key) return key < y->key ? -1 : 1;
    return 0;
}

rs_cstate *rs_cont_get(rs_ctx *c, uint32_t kind, uint64_t key)
{
    size_t lo = 0, hi = c->nconts;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = cstate_cmp(kind, key, c->conts[mid]);
        if (r == 0) return c->conts[mid];
        if (r > 0) lo = mid + 1;
        else hi = mid;
    }
    if (c->nconts == c->conts_cap) {
        c->conts_cap = c->conts_cap ? c->conts_cap * 2 : 16;
        c->conts = ddp_xrealloc(c->conts, c->conts_cap * sizeof *c->conts);
    }
    rs_cstate *k = ddp_xcalloc(1, sizeof *k);
    k->kind = kind;
    k->key = key;
    uint32_t fmt = RS_KEY_FMT(key);
    const rs_format *f = rs_formats[fmt];
    k->path = f->container_path(c, fmt, kind, RS_KEY_LOCAL(key), &k->missing);
    if (!k->missing && f->prelude_first && f->prelude_first(c, fmt, k, &k->pre_off, &k->pre_len)) k->pre = RS_PRE_READING;
    memmove(&c->conts[lo + 1], &c->conts[lo], (c->nconts - lo) * sizeof *c->conts);
    c->conts[lo] = k;
    c->nconts++;
    return k;
}

void rs_conts_drop_kept(rs_ctx *c)
{
    for (size_t i = 0; i < c->nconts; i++) {
        rs_cstate *k = c->conts[i];
        for (size_t j = 0; j < k->nkept; j++) free(k->kept[j].bytes);
        free(k->kept);
        k->kept = NULL;
        k->nkept = k->kept_cap = 0;
    }
}

void rs_conts_free(rs_ctx *c)
{
    rs_conts_drop_kept(c);
    for (size_t i = 0; i < c->nconts; i++) {
        rs_cstate *k = c->conts[i];
        uint32_t fmt = RS_KEY_FMT(k->key);
        if (rs_formats[fmt]->cont_release) rs_formats[fmt]->cont_release(c, fmt, k);
        free(k->pre_buf);
        free(k->pre_why);
        free(k->path);
        rs_ivset_free(&k->read);
        free(c->conts[i]);
    }
    free(c->conts);
    c->conts = NULL;
    c->nconts = c->conts_cap = 0;
}

/* ======================================================================
 * Building a phase
 * ====================================================================== */

static int use_cmp(const void *pa, const void *pb)
{
    const rs_use *x = pa, *y = pb;
    if (x->cont != y->cont) return x->cont < y->cont ? -1 : 1;
    if (x->off != y->off) return x->off < y->off ? -1 : 1;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    if (x->file != y->file) return x->file < y->file ? -1 : 1;
    if (x->entry != y->entry) return x->entry < y->entry ? -1 : 1;
    return 0;
}

void rs_phase_build(rs_ctx *c, rs_phase *ph, uint32_t kind, rs_use *uses, size_t nuse)
{
    memset(ph, 0, sizeof *ph);
    ph->kind = kind;
    ph->name = kind == RS_KIND_STREAM ? "stream-map" : "data";
    ph->uses = uses;
    ph->nuse = nuse;
    /* Records of containers whose prelude is complete are placed now; those
     * of containers still reading theirs keep the format's ids until it is
     * (place_records), and those of a container whose prelude failed fail. */
    for (size_t u = 0; u < nuse; u++) {
        rs_cstate *st = rs_cont_get(c, kind, uses[u].cont);
        if (st->pre == RS_PRE_FAILED) {
            rs_file_fail(c, uses[u].file, ddp_fail(st->pre_hr, "%s", st->pre_why ? st->pre_why : "its container"));
        } else if (st->pre == RS_PRE_DONE && rs_file_pending(c, uses[u].file)) {
            uint32_t fmt = RS_KEY_FMT(st->key);
            uint64_t off;
            HRESULT hr = rs_formats[fmt]->place(c, fmt, st, uses[u].off, uses[u].len, &off);
            if (FAILED(hr)) rs_file_fail(c, uses[u].file, hr);
            else uses[u].off = off;
        }
    }
    if (nuse > 1) qsort(uses, nuse, sizeof *uses, use_cmp);

    size_t nrec = 0;
    uint32_t ncont = 0;
    for (size_t u = 0; u < nuse; u++) {
        if (u == 0 || uses[u].cont != uses[u - 1].cont) ncont++;
        if (u == 0 || uses[u].cont != uses[u - 1].cont || uses[u].off != uses[u - 1].off ||
            uses[u].len != uses[u - 1].len)
            nrec++;
    }
    ph->conts = ddp_xcalloc(ncont ? ncont : 1, sizeof *ph->conts);
    ph->recs = ddp_xcalloc(nrec ? nrec : 1, sizeof *ph->recs);
    ph->maxend = ddp_xcalloc(nrec ? nrec : 1, sizeof *ph->maxend);

    rs_container *k = NULL;
    rs_record *r = NULL;
    for (size_t u = 0; u < nuse; u++) {
        const rs_use *x = &uses[u];
        if (!k || x->cont != k->st->key) {
            k = &ph->conts[ph->ncont++];
            k->st = rs_cont_get(c, kind, x->cont);
            k->rec_first = ph->nrec;
            r = NULL;
        }
        if (!r || x->off != r->off || x->len != r->len) {
            r = &ph->recs[ph->nrec];
            r->off = x->off;
            r->len = x->len;
            /* The formats bound offsets; never let an end pass INT64_MAX. */
            r->end = x->off < RS_OFF_END - x->len ? x->off + x->len : RS_OFF_END;
            r->cont = ph->ncont - 1;
            r->use_first = u;
            uint64_t prev = ph->nrec > k->rec_first ? ph->maxend[ph->nrec - 1] : 0;
            ph->maxend[ph->nrec] = r->end > prev ? r->end : prev;
            ph->nrec++;
            k->rec_count++;
        }
        r->use_count++;
    }
}

void rs_phase_free(rs_phase *ph)
{
    for (size_t i = 0; i < ph->nrec; i++) free(ph->recs[i].buf);
    free(ph->conts);
    free(ph->recs);
    free(ph->maxend);
    free(ph->uses);
    memset(ph, 0, sizeof *ph);
}

/* ======================================================================
 * Records
 * ====================================================================== */

int rs_record_live(const rs_ctx *c, const rs_phase *ph, const rs_record *r)
{
    for (size_t u = r->use_first; u < r->use_first + r->use_count; u++)
        if (rs_file_pending(c, ph->uses[u].file)) return 1;
    return 0;
}

static void record_drop(rs_record *r)
{
    r->done = 1;
    free(r->buf);
    r->buf = NULL;
}

void rs_record_fail(rs_ctx *c, rs_phase *ph, rs_record *r, HRESULT hr)
{
    record_drop(r);
    for (size_t u = r->use_first; u < r->use_first + r->use_count; u++)
        rs_file_fail(c, ph->uses[u].file, hr);
}

/* ======================================================================
 * Preludes: containers whose records are placed once some of their bytes
 * are read (rsformat.h; ddp: a compacted container's header and
 * redirection table)
 * ====================================================================== */

/* Do the records of container k still hold the format's ids? */
static int unplaced(const rs_container *k)
{
    return k->st->pre == RS_PRE_READING;
}

/* Is any record of container k still live? (Records found dead are dropped.) */
static int container_live(rs_ctx *c, rs_phase *ph, rs_container *k)
{
    int live = 0;
    for (size_t j = k->rec_first; j < k->rec_first + k->rec_count; j++) {
        rs_record *r = &ph->recs[j];
        if (r->done) continue;
        if (rs_record_live(c, ph, r)) live = 1;
        else record_drop(r);
    }
    return live;
}

/* The prelude of container ci failed with hr (detail set): so does every
 * record of it, in this phase and in any later one. */
static void prelude_fail(rs_ctx *c, rs_phase *ph, uint32_t ci, HRESULT hr)
{
    rs_container *k = &ph->conts[ci];
    rs_cstate *st = k->st;
    char why[1024];
    snprintf(why, sizeof why, "%s", ddp_error_detail());
    st->pre = RS_PRE_FAILED;
    st->pre_hr = hr;
    free(st->pre_why);
    st->pre_why = ddp_strdup(why);
    free(st->pre_buf);
    st->pre_buf = NULL;
    st->pre_got = 0;
    for (size_t j = k->rec_first; j < k->rec_first + k->rec_count; j++) {
        rs_record *r = &ph->recs[j];
        if (r->done) continue;
        ddp_fail(hr, "%s", why);
        rs_record_fail(c, ph, r, hr);
    }
    ddp_fail(hr, "%s", why);
}

/* The prelude of container ci is complete: give its records their offsets.
 * The format's ids and the offsets they map to are in the same order, so
 * the records stay sorted; a record that cannot be placed fails, and takes
 * the offset of the last placed one (it is done: only the order matters). */
static void place_records(rs_ctx *c, rs_phase *ph, uint32_t ci)
{
    rs_container *k = &ph->conts[ci];
    uint32_t fmt = RS_KEY_FMT(k->st->key);
    uint64_t last = 0, maxend = 0;
    for (size_t j = k->rec_first; j < k->rec_first + k->rec_count; j++) {
        rs_record *r = &ph->recs[j];
        if (!r->done && !rs_record_live(c, ph, r)) record_drop(r);
        if (!r->done) {
            uint64_t off = 0;
            HRESULT hr = rs_formats[fmt]->place(c, fmt, k->st, r->off, r->len, &off);
            uint64_t end = off < RS_OFF_END - r->len ? off + r->len : RS_OFF_END;
            if (SUCCEEDED(hr) && (off < last || ivset_intersects(&k->st->read, off, end)))
                hr = ddp_fail(DDP_E_FILE_CORRUPT,
                              "the %s record of id %llu in %s (%u bytes) lies at offset %llu, over bytes already "
                              "read in this call",
                              ph->name, (unsigned long long)r->off, k->st->path, (unsigned)r->len,
                              (unsigned long long)off);
            if (FAILED(hr)) {
                rs_record_fail(c, ph, r, hr);
            } else {
                r->off = off;
                r->end = end;
                last = off;
            }
        }
        if (r->done) r->off = r->end = last;
        if (r->end > maxend) maxend = r->end;
        ph->maxend[j] = maxend;
    }
}

/* Bytes [off, off + len) read of container ci, whose records are not placed
 * yet: the part inside its prelude range goes to the prelude. */
static void prelude_deliver(rs_ctx *c, rs_phase *ph, uint32_t ci, uint64_t off, const uint8_t *data, uint64_t len)
{
    rs_container *k = &ph->conts[ci];
    rs_cstate *st = k->st;
    uint64_t pe = st->pre_off + st->pre_len;
    uint64_t x = off > st->pre_off ? off : st->pre_off;
    uint64_t y = off + len < pe ? off + len : pe;
    if (x >= y) return;
    if (!st->pre_buf) st->pre_buf = ddp_xmalloc(st->pre_len ? st->pre_len : 1);
    memcpy(st->pre_buf + (x - st->pre_off), data + (x - off), (size_t)(y - x));
    st->pre_got += (uint32_t)(y - x);
    if (st->pre_got < st->pre_len) return;
    uint8_t *buf = st->pre_buf;
    st->pre_buf = NULL;
    st->pre_got = 0;
    uint32_t fmt = RS_KEY_FMT(st->key);
    uint64_t noff = 0;
    uint32_t nlen = 0;
    HRESULT hr = rs_formats[fmt]->prelude_bytes(c, fmt, st, buf, &noff, &nlen);
    free(buf);
    if (SUCCEEDED(hr) && nlen > 0 &&
        (noff < pe || noff > RS_OFF_END - nlen || ivset_intersects(&st->read, noff, noff + nlen)))
        hr = ddp_fail(DDP_E_FILE_CORRUPT, "%s: the next part of its head (%u bytes at offset %llu) is not after the "
                                          "last one",
                      st->path, (unsigned)nlen, (unsigned long long)noff);
    if (FAILED(hr)) {
        prelude_fail(c, ph, ci, hr);
        return;
    }
    if (nlen > 0) {
        st->pre_off = noff;
        st->pre_len = nlen;
        return;
    }
    st->pre = RS_PRE_DONE;
    place_records(c, ph, ci);
}

/* Index of the first record of container ci that could reach past x. */
static size_t first_record_after(const rs_phase *ph, const rs_container *k, uint64_t x)
{
    size_t lo = k->rec_first, hi = k->rec_first + k->rec_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ph->maxend[mid] <= x) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* Fail (with hr, detail already set) every live record of container ci that
 * overlaps [a, b). */
static void fail_range(rs_ctx *c, rs_phase *ph, uint32_t ci, uint64_t a, uint64_t b, HRESULT hr)
{
    rs_container *k = &ph->conts[ci];
    if (unplaced(k)) { /* only its prelude is ever read: the records cannot be placed */
        prelude_fail(c, ph, ci, hr);
        return;
    }
    char why[1024];
    snprintf(why, sizeof why, "%s", ddp_error_detail());
    size_t end = k->rec_first + k->rec_count;
    for (size_t j = first_record_after(ph, k, a); j < end && ph->recs[j].off < b; j++) {
        rs_record *r = &ph->recs[j];
        if (r->done || r->end <= a) continue;
        ddp_fail(hr, "%s", why);
        if (!rs_record_live(c, ph, r)) {
            record_drop(r);
        } else if (hr == DDP_E_FILE_CORRUPT) { /* truncated: its format may know better */
            record_drop(r);
            rs_record_unreadable(c, ph, r, hr);
        } else {
            rs_record_fail(c, ph, r, hr);
        }
    }
}

/* Does a live, unfinished record of container ci overlap [a, b)? */
static int range_live(rs_ctx *c, rs_phase *ph, uint32_t ci, uint64_t a, uint64_t b)
{
    rs_container *k = &ph->conts[ci];
    if (unplaced(k)) return container_live(c, ph, k);
    size_t end = k->rec_first + k->rec_count;
    for (size_t j = first_record_after(ph, k, a); j < end && ph->recs[j].off < b; j++) {
        rs_record *r = &ph->recs[j];
        if (r->done || r->end <= a) continue;
        if (rs_record_live(c, ph, r)) return 1;
        record_drop(r);
    }
    return 0;
}

/* Does this phase keep copies of its records (stream_exact)? */
static int keeps(const rs_phase *ph, const rs_container *k)
{
    return ph->kind == RS_KIND_STREAM && rs_formats[RS_KEY_FMT(k->st->key)]->stream_exact;
}

static void keep(rs_cstate *k, uint64_t off, const uint8_t *bytes, uint32_t len)
{
    if (k->nkept == k->kept_cap) {
        k->kept_cap = k->kept_cap ? k->kept_cap * 2 : 8;
        k->kept = ddp_xrealloc(k->kept, k->kept_cap * sizeof *k->kept);
    }
    k->kept[k->nkept].off = off;
    k->kept[k->nkept].len = len;
    k->kept[k->nkept].bytes = ddp_xmalloc(len ? len : 1);
    memcpy(k->kept[k->nkept].bytes, bytes, len);
    k->nkept++;
}

/* Fill r's buffer with the bytes of [r->off, r->end) already read in this
 * call, from the kept copies. 0 when some of them are not kept. */
static int prefill(rs_record *r, const rs_cstate *k)
{
    size_t size = (size_t)(r->end - r->off);
    uint8_t *have = ddp_xcalloc(size, 1); /* which bytes are filled */
    uint8_t *buf = ddp_xmalloc(size);
    for (size_t j = 0; j < k->nkept; j++) {
        const struct rs_kept *kp = &k->kept[j];
        uint64_t x = kp->off > r->off ? kp->off : r->off;
        uint64_t y = kp->off + kp->len < r->end ? kp->off + kp->len : r->end;
        if (x >= y) continue;
        memcpy(buf + (x - r->off), kp->bytes + (x - kp->off), (size_t)(y - x));
        memset(have + (x - r->off), 1, (size_t)(y - x));
    }
    int ok = 1;
    uint64_t got = 0;
    for (size_t i = 0; i < k->read.n && ok; i++) {
        uint64_t x = k->read.v[i].a > r->off ? k->read.v[i].a : r->off;
        uint64_t y = k->read.v[i].b < r->end ? k->read.v[i].b : r->end;
        for (uint64_t b = x; b < y && ok; b++) ok = have[b - r->off];
        if (x < y) got += y - x;
    }
    free(have);
    if (!ok) {
        free(buf);
        return 0;
    }
    r->buf = buf;
    r->received = got;
    return 1;
}

/* Hand len bytes read at offset off of container ci to the records they belong to. */
static void deliver(rs_ctx *c, rs_phase *ph, uint32_t ci, uint64_t off, const uint8_t *data, uint64_t len)
{
    rs_container *k = &ph->conts[ci];
    if (unplaced(k)) {
        prelude_deliver(c, ph, ci, off, data, len);
        return;
    }
    uint64_t a = off, b = off + len;
    size_t end = k->rec_first + k->rec_count;
    for (size_t j = first_record_after(ph, k, a); j < end && ph->recs[j].off < b; j++) {
        rs_record *r = &ph->recs[j];
        if (r->done || r->end <= a) continue;
        if (!rs_record_live(c, ph, r)) {
            record_drop(r);
            continue;
        }
        uint64_t x = r->off > a ? r->off : a;
        uint64_t y = r->end < b ? r->end : b;
        uint64_t size = r->end - r->off;
        if (x == r->off && y == r->end && !r->buf) {
            /* The whole record is in this read (so none of it came before). */
            r->done = 1;
            if (keeps(ph, k)) keep(k->st, r->off, data + (r->off - a), r->len);
            ph->on_record(c, ph, r, data + (r->off - a));
            continue;
        }
        if (!r->buf) r->buf = ddp_xmalloc((size_t)size);
        memcpy(r->buf + (x - r->off), data + (x - a), (size_t)(y - x));
        r->received += y - x;
        if (r->received == size) {
            uint8_t *buf = r->buf;
            r->buf = NULL;
            r->done = 1;
            if (keeps(ph, k)) keep(k->st, r->off, buf, r->len);
            ph->on_record(c, ph, r, buf);
            free(buf);
        }
    }
}

/* ======================================================================
 * Reading
 * ====================================================================== */

size_t rs_needed_ranges(rs_ctx *c, rs_phase *ph, uint32_t ci, uint64_t s, uint64_t e, rs_interval **out)
{
    rs_container *k = &ph->conts[ci];
    ivlist l = { 0 };
    *out = NULL;
    if (k->st->missing || s >= e) return 0;
    if (unplaced(k)) { /* its prelude only, exactly */
        uint64_t a = k->st->pre_off > s ? k->st->pre_off : s;
        uint64_t b = k->st->pre_off + k->st->pre_len < e ? k->st->pre_off + k->st->pre_len : e;
        if (a >= b || !container_live(c, ph, k)) return 0;
        push_unread(&l, &k->st->read, a, b);
        *out = l.v;
        return l.n;
    }
    size_t end = k->rec_first + k->rec_count;
    for (size_t j = first_record_after(ph, k, s); j < end && ph->recs[j].off < e; j++) {
        rs_record *r = &ph->recs[j];
        if (r->done || r->end <= s) continue;
        if (!rs_record_live(c, ph, r)) {
            record_drop(r);
            continue;
        }
        push_unread(&l, &k->st->read, r->off > s ? r->off : s, r->end < e ? r->end : e);
    }
    if (l.n == 0) {
        free(l.v);
        return 0;
    }
    /* Records may overlap only in a damaged store; sort and merge anyway. */
    qsort(l.v, l.n, sizeof *l.v, iv_cmp);
    int exact = ph->kind == RS_KIND_STREAM && rs_formats[RS_KEY_FMT(k->st->key)]->stream_exact;
    size_t m = 0;
    for (size_t i = 1; i < l.n; i++) {
        rs_interval *p = &l.v[m], *q = &l.v[i];
        int join = q->a <= p->b;
        /* Join over a small gap if none of it has been read: it then lies
         * inside [s, e) too, since both neighbours do. */
        if (!join && !exact && q->a - p->b <= RS_COALESCE_GAP && !ivset_intersects(&k->st->read, p->b, q->a))
            join = 1;
        if (join) {
            if (q->b > p->b) p->b = q->b;
        } else {
            l.v[++m] = *q;
        }
    }
    *out = l.v;
    return m + 1;
}

/* One ReadBackupFile of [off, off + len) in container ci, and what follows from it. */
static void read_one(rs_ctx *c, rs_phase *ph, uint32_t ci, uint64_t off, uint64_t len)
{
    rs_container *k = &ph->conts[ci];
    if (k->st->missing || !range_live(c, ph, ci, off, off + len)) return;
    if (c->rbuf_cap < len) {
        free(c->rbuf);
        c->rbuf_cap = (size_t)len;
        c->rbuf = ddp_xmalloc(c->rbuf_cap);
    }
    ULONG got = 0;
    HRESULT hr = IDedupReadFileCallback_ReadBackupFile(c->store, k->st->path, (LONGLONG)off, (ULONG)len, c->rbuf,
                                                       &got, 0);
    rs_ivset_add(&k->st->read, off, off + len);
    if (FAILED(hr)) {
        if (hr == HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND) || hr == HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND)) {
            k->st->missing = 1;
            ddp_fail(DDP_E_PATH_NOT_FOUND, "%s container %s is not in the backup store", ph->name, k->st->path);
            fail_range(c, ph, ci, 0, RS_OFF_END, DDP_E_PATH_NOT_FOUND);
            return;
        }
        HRESULT why = hr == HRESULT_FROM_WIN32(ERROR_HANDLE_EOF) ? DDP_E_FILE_CORRUPT : hr;
        ddp_fail(why, "reading %llu bytes at offset %llu of %s from the backup store failed (0x%08X)",
                 (unsigned long long)len, (unsigned long long)off, k->st->path, (unsigned)hr);
        fail_range(c, ph, ci, off, off + len, why);
        return;
    }
    if (got > len) {
        ddp_fail(DDP_E_UNEXPECTED, "the backup store returned %u bytes for a read of %llu at offset %llu of %s",
                 (unsigned)got, (unsigned long long)len, (unsigned long long)off, k->st->path);
        fail_range(c, ph, ci, off, off + len, DDP_E_UNEXPECTED);
        return;
    }
    deliver(c, ph, ci, off, c->rbuf, got);
    if (got < len) {
        ddp_fail(DDP_E_FILE_CORRUPT, "%s is truncated in the backup store: %u of %llu bytes at offset %llu",
                 k->st->path, (unsigned)got, (unsigned long long)len, (unsigned long long)off);
        fail_range(c, ph, ci, off + got, off + len, DDP_E_FILE_CORRUPT);
    }
}

/* One preview and its reads: the ranges of container ci needed inside [s, e). Returns how many reads. */
static size_t read_ranges(rs_ctx *c, rs_phase *ph, uint32_t ci, uint64_t s, uint64_t e)
{
    rs_interval *v;
    size_t n = rs_needed_ranges(c, ph, ci, s, e, &v);
    if (n == 0) return 0;
    size_t nreads = 0;
    for (size_t i = 0; i < n; i++) nreads += (size_t)((v[i].b - v[i].a + RS_MAX_READ - 1) / RS_MAX_READ);
    DDP_FILE_EXTENT *reads = ddp_xmalloc(nreads * sizeof *reads);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        for (uint64_t a = v[i].a; a < v[i].b; a += RS_MAX_READ) {
            uint64_t len = v[i].b - a < RS_MAX_READ ? v[i].b - a : RS_MAX_READ;
            reads[m].Offset = (LONGLONG)a;
            reads[m].Length = (LONGLONG)len;
            m++;
        }
    }
    free(v);
    /* Advisory: the result does not matter. */
    (void)IDedupReadFileCallback_PreviewContainerRead(c->store, ph->conts[ci].st->path, (ULONG)m, reads);
    for (size_t i = 0; i < m; i++)
        read_one(c, ph, ci, (uint64_t)reads[i].Offset, (uint64_t)reads[i].Length);
    free(reads);
    return m;
}

/* Read what the live records of container ci need inside [s, e): one
 * preview, then the reads. A container with a prelude has its prelude read
 * first, each of its ranges with its own preview (the next range is known
 * only once the last one is read), then its records, now placed; with
 * prelude_only, not its records. */
static void read_extent(rs_ctx *c, rs_phase *ph, uint32_t ci, uint64_t s, uint64_t e, int prelude_only)
{
    for (;;) {
        int was_unplaced = unplaced(&ph->conts[ci]);
        if (prelude_only && !was_unplaced) return;
        size_t n = read_ranges(c, ph, ci, s, e);
        /* Only reading a prelude can bring new needs into this extent (its
         * next range, or the records once placed); nothing read, nothing new. */
        if (!was_unplaced || n == 0) return;
    }
}

void rs_phase_preludes(rs_ctx *c, rs_phase *ph)
{
    ph->on_record = NULL;
    for (uint32_t ci = 0; ci < ph->ncont; ci++)
        if (!ph->conts[ci].st->missing) read_extent(c, ph, ci, 0, RS_OFF_END, 1);
}

/* Fail every pending file with hr (detail already set). */
static void fail_all_pending(rs_ctx *c, HRESULT hr)
{
    char why[1024];
    snprintf(why, sizeof why, "%s", ddp_error_detail());
    for (uint32_t i = 0; i < c->n; i++) {
        ddp_fail(hr, "%s", why);
        rs_file_fail(c, i, hr);
    }
    ddp_fail(hr, "%s", why);
}

/* NULL when the plan entry is acceptable, else why not. */
static const char *plan_entry_problem(const DEDUP_CONTAINER_EXTENT *x, uint32_t ncont)
{
    if (x->ContainerIndex >= ncont) return "container index out of range";
    if (x->StartOffset < 0) return "negative start offset";
    if (x->Length <= 0) return "length not positive";
    return NULL;
}

HRESULT rs_phase_run(rs_ctx *c, rs_phase *ph, int ask_order,
                     void (*on_record)(rs_ctx *c, rs_phase *ph, rs_record *r, const uint8_t *bytes))
{
    ph->on_record = on_record;
    for (uint32_t ci = 0; ci < ph->ncont; ci++) {
        rs_container *k = &ph->conts[ci];
        if (k->st->missing) {
            ddp_fail(DDP_E_PATH_NOT_FOUND, "%s container %s is not in the backup store", ph->name, k->st->path);
            fail_range(c, ph, ci, 0, RS_OFF_END, DDP_E_PATH_NOT_FOUND);
            continue;
        }
        if (unplaced(k)) continue; /* its records are checked once placed */
        /* A record of a later round whose bytes were read before cannot be
         * read again (R7: no container byte twice in one call): it takes them
         * from the copies kept, or fails. */
        for (size_t j = k->rec_first; j < k->rec_first + k->rec_count; j++) {
            rs_record *r = &ph->recs[j];
            if (r->done || !ivset_intersects(&k->st->read, r->off, r->end)) continue;
            if (keeps(ph, k) && prefill(r, k->st)) {
                if (r->received == r->end - r->off) { /* all of it was read before */
                    uint8_t *buf = r->buf;
                    r->buf = NULL;
                    r->done = 1;
                    if (rs_record_live(c, ph, r)) ph->on_record(c, ph, r, buf);
                    free(buf);
                }
                continue;
            }
            ddp_fail(DDP_E_FILE_CORRUPT,
                     "the %s record at offset %llu of %s (%u bytes) overlaps bytes already read in this call",
                     ph->name, (unsigned long long)r->off, k->st->path, (unsigned)r->len);
            rs_record_fail(c, ph, r, DDP_E_FILE_CORRUPT);
        }
    }

    if (ask_order) {
        /* The application gets its own array of pointers: whatever it does to
         * it, ddp keeps using its own copies of the paths. */
        BSTR *paths = ddp_xcalloc((size_t)ph->ncont + 1, sizeof *paths);
        for (uint32_t i = 0; i < ph->ncont; i++) paths[i] = ph->conts[i].st->path;
        ULONG nplan = 0;
        DEDUP_CONTAINER_EXTENT *plan = NULL;
        HRESULT hr = IDedupReadFileCallback_OrderContainersRestore(c->store, ph->ncont, paths, &nplan, &plan);
        free(paths);
        if (FAILED(hr)) {
            free(plan);
            ddp_fail(hr, "OrderContainersRestore for the %u %s containers failed (0x%08X)", ph->ncont, ph->name,
                     (unsigned)hr);
            fail_all_pending(c, hr);
            return hr;
        }
        if (!plan) nplan = 0;
        for (ULONG k = 0; k < nplan; k++) {
            const char *why = plan_entry_problem(&plan[k], ph->ncont);
            if (!why) continue;
            ddp_fail(E_INVALIDARG,
                     "the read plan for the %s containers is invalid: entry %u (container index %u of %u, "
                     "offset %lld, length %lld): %s",
                     ph->name, (unsigned)k, (unsigned)plan[k].ContainerIndex, ph->ncont,
                     (long long)plan[k].StartOffset, (long long)plan[k].Length, why);
            free(plan);
            fail_all_pending(c, E_INVALIDARG);
            return E_INVALIDARG;
        }
        for (ULONG k = 0; k < nplan; k++) {
            uint64_t s = (uint64_t)plan[k].StartOffset;
            uint64_t len = (uint64_t)plan[k].Length;
            /* INT64_MAX means "to the end"; so does anything reaching past it. */
            uint64_t e = len >= RS_OFF_END - s ? RS_OFF_END : s + len;
            read_extent(c, ph, plan[k].ContainerIndex, s, e, 0);
        }
        free(plan);
    }

    /* What no extent covered (everything, without a plan): ddp's order. */
    for (uint32_t ci = 0; ci < ph->ncont; ci++) read_extent(c, ph, ci, 0, RS_OFF_END, 0);

    /* Every needed byte has been read or has failed its files; anything else
     * would be a bug here, and must not pass as success. */
    for (size_t j = 0; j < ph->nrec; j++) {
        rs_record *r = &ph->recs[j];
        if (r->done) continue;
        if (rs_record_live(c, ph, r)) {
            ddp_fail(DDP_E_UNEXPECTED, "%s record at offset %llu of %s was never completed", ph->name,
                     (unsigned long long)r->off, ph->conts[r->cont].st->path);
            rs_record_fail(c, ph, r, DDP_E_UNEXPECTED);
        } else {
            record_drop(r);
        }
    }
    return S_OK;
}
