/* SPDX-License-Identifier: MIT */
/*
 * chunkcache.c: the cache of decoded, verified chunks behind `ddp mount`,
 * shared by every open optimized file, and its read-ahead threads.
 *
 * Entries are keyed by the chunk's SHA-256, so chunks that dedup (versions
 * of one file, copies) are decoded and held once. A chunk is loaded by the
 * library's reader of optimized files (lib/store/chunkread.c: both checksums, the
 * codec, the lengths and the SHA-256, with the hotspot copy as fallback);
 * concurrent readers of one chunk wait for a single load, and nothing that
 * failed stays cached (the next reader tries again, so a repaired store
 * reads without remounting). The bound is on the bytes of chunks held
 * (--cache-mb), least recently used out first.
 *
 * Memory. The chunks live in one arena of 4 KiB pages, backed by
 * transparent huge pages where the kernel gives them (MADV_HUGEPAGE):
 * `ddp mount` answers a read by handing the kernel the pages of the chunks
 * (vmsplice, see cc_iov), and the kernel's copy from them into the reader's
 * page cache costs far less from huge pages than from the 4 KiB pages of a
 * memfd (docs/MOUNT.md has the figures). A chunk owns whole pages, not
 * necessarily contiguous ones, so any freed pages serve any chunk: nothing
 * fragments, whatever readers hold. The arena is a sixteenth larger than
 * the bound, for the unused ends of the chunks' last pages. Freed pages are reused last in, first out and in
 * order, so a chunk usually gets a contiguous run (a new arena is handed
 * out in order too) and is decoded straight into it; otherwise it is
 * decoded into a buffer of the loading thread and copied into its pages.
 * The arena is touched as it fills and never handed back, so a mount that
 * has warmed up takes no page faults here. When every page is held by
 * readers, a chunk gets a buffer of its own, freed once it is let go.
 *
 * Read-ahead. cc_prefetch queues chunks that are neither cached nor loading
 * for a pool of threads that load them in parallel, so decompression and
 * hashing run on every core ahead of the reader; chunks of the window that
 * are cached count as used, so the window's loads do not evict them first.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "chunkcache.h"
#include "store/chunker.h"
#include "base/util.h"

#define PAGE 4096u
#define HUGE_BYTES ((size_t)2 << 20)
#define RA_QUEUE_CAP 4096

enum { C_LOADING, C_READY, C_FAILED };

typedef struct centry {
    cc_chunk pub;             /* first: a cc_chunk * handed out is a centry * */
    uint8_t hash[DDP_HASH_SIZE];
    int state;
    int refs;                 /* holders; a LOADING entry is held by its loader */
    int waiters;              /* readers waiting for it to load */
    int in_table;
    HRESULT hr;
    char *detail;
    char *note;               /* served by its hotspot copy: what to log (taken by the first reader) */
    struct centry *hnext;
    struct centry *prev, *next;   /* LRU (READY entries in the table) */
    uint8_t *own;             /* a buffer of its own (the arena was all held), or NULL */
    uint32_t npages;
    uint32_t page[];          /* its pages in the arena, in order */
} centry;

typedef struct ra_item {
    ddp_streammap_entry e;
} ra_item;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t ready[64]; /* a chunk finished loading (by the hash's first byte) */
    pthread_cond_t work;      /* the read-ahead queue has items, or stop */
    ddp_chunkreader *rd;
    centry **buckets;
    size_t mask;
    void *map;                /* the mapping (arena plus alignment slack) */
    size_t map_bytes;
    uint8_t *arena;           /* npages pages, 2 MiB aligned */
    uint32_t npages, fresh;   /* pages [fresh, npages) never used yet */
    uint32_t *freestack;      /* freed pages; the top is reused first */
    uint32_t nfree;
    uint64_t bytes, limit;    /* bytes of the chunks in the arena, and the bound */
    centry lru;               /* sentinel: lru.next is the most recent */
    ra_item *q;
    size_t qhead, qlen;
    int stop;
    pthread_t *threads;
    unsigned nthreads;
    pthread_key_t bounce_key; /* each loading thread's buffer for chunks whose pages are not contiguous */
    cc_stats st;              /* under mu */
} cc;

static centry *entry_of(cc_chunk *c) { return (centry *)c; }
static const centry *centry_of(const cc_chunk *c) { return (const centry *)c; }

static uint8_t *page_mem(uint32_t p) { return cc.arena + (size_t)p * PAGE; }

/* ------------------------------------------------------------- the table */

static centry **bucket(const uint8_t *hash)
{
    uint64_t h;
    memcpy(&h, hash, sizeof h);
    return &cc.buckets[h & cc.mask];
}

static centry *find_locked(const uint8_t *hash)
{
    for (centry *c = *bucket(hash); c; c = c->hnext)
        if (!memcmp(c->hash, hash, DDP_HASH_SIZE)) return c;
    return NULL;
}

static void lru_remove(centry *c)
{
    if (!c->prev) return;
    c->prev->next = c->next;
    c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

static void lru_front(centry *c)
{
    lru_remove(c);
    c->next = cc.lru.next;
    c->prev = &cc.lru;
    cc.lru.next->prev = c;
    cc.lru.next = c;
}

static void unlink_locked(centry *c)
{
    if (!c->in_table) return;
    for (centry **p = bucket(c->hash); *p; p = &(*p)->hnext)
        if (*p == c) {
            *p = c->hnext;
            break;
        }
    c->in_table = 0;
    lru_remove(c);
}

/* ------------------------------------------------------------- the pages */

static uint32_t pages_free(void) { return cc.nfree + (cc.npages - cc.fresh); }

/* (mu held) Free entry c: nobody holds it and it is out of the table. Its
 * pages go back last first, so that they are taken again in order. */
static void entry_free(centry *c)
{
    if (c->own) free(c->own);
    if (c->npages) cc.bytes -= c->pub.len;
    for (uint32_t k = c->npages; k > 0; k--) cc.freestack[cc.nfree++] = c->page[k - 1];
    free(c->detail);
    free(c->note);
    free(c);
}

static void unref_locked(centry *c)
{
    if (--c->refs > 0) return;
    /* A chunk outside the arena is not kept: that memory is not bounded. */
    if (c->own) unlink_locked(c);
    if (!c->in_table) entry_free(c);
}

/* (mu held) Pages for new entry c (held by its loader): least recently used
 * chunks nobody holds go until there are enough; if there are not, a buffer
 * of its own. */
static void place_locked(centry *c)
{
    uint32_t need = (c->pub.len + PAGE - 1) / PAGE;
    for (centry *v = cc.lru.prev; v != &cc.lru && (pages_free() < need || cc.bytes + c->pub.len > cc.limit);) {
        centry *prev = v->prev;
        if (v->refs == 0) {
            unlink_locked(v);
            entry_free(v);
        }
        v = prev;
    }
    if (pages_free() < need) {
        c->own = ddp_xmalloc(c->pub.len);
        cc.st.overflow++;
        return;
    }
    for (uint32_t k = 0; k < need; k++) c->page[k] = cc.nfree ? cc.freestack[--cc.nfree] : cc.fresh++;
    c->npages = need;
    cc.bytes += c->pub.len;
    if (cc.fresh > cc.st.pages) cc.st.pages = cc.fresh;
}

/* Where to decode c: its own buffer, its pages when they are one run, else
 * this thread's buffer (*bounced set; scatter() copies it into the pages). */
static uint8_t *load_target(centry *c, int *bounced)
{
    *bounced = 0;
    if (c->own) return c->own;
    uint32_t k = 1;
    while (k < c->npages && c->page[k] == c->page[0] + k) k++;
    if (k == c->npages) return page_mem(c->page[0]);
    uint8_t *b = pthread_getspecific(cc.bounce_key);
    if (!b) {
        b = ddp_xmalloc(DDP_CHUNK_MAX);
        if (pthread_setspecific(cc.bounce_key, b) != 0) abort();
    }
    *bounced = 1;
    return b;
}

static void scatter(centry *c, const uint8_t *from)
{
    for (uint32_t k = 0; k < c->npages; k++) {
        size_t at = (size_t)k * PAGE, n = c->pub.len - at < PAGE ? c->pub.len - at : PAGE;
        memcpy(page_mem(c->page[k]), from + at, n);
    }
}

void cc_copy(const cc_chunk *pc, size_t in, void *dst, size_t n)
{
    const centry *c = centry_of(pc);
    if (c->own) {
        memcpy(dst, c->own + in, n);
        return;
    }
    uint8_t *d = dst;
    while (n > 0) {
        size_t off = in % PAGE, take = PAGE - off < n ? PAGE - off : n;
        memcpy(d, page_mem(c->page[in / PAGE]) + off, take);
        d += take;
        in += take;
        n -= take;
    }
}

unsigned cc_iov(const cc_chunk *pc, size_t in, size_t n, struct iovec *iov, unsigned max)
{
    const centry *c = centry_of(pc);
    unsigned k = 0;
    if (c->own) {
        if (!max) return 0;
        iov[0].iov_base = c->own + in;
        iov[0].iov_len = n;
        return 1;
    }
    while (n > 0) {
        size_t off = in % PAGE, take = PAGE - off < n ? PAGE - off : n;
        uint8_t *at = page_mem(c->page[in / PAGE]) + off;
        if (k && (uint8_t *)iov[k - 1].iov_base + iov[k - 1].iov_len == at) {
            iov[k - 1].iov_len += take;
        } else {
            if (k == max) return 0;
            iov[k].iov_base = at;
            iov[k].iov_len = take;
            k++;
        }
        in += take;
        n -= take;
    }
    return k;
}

/* ---------------------------------------------------------------- the API */

HRESULT cc_get(const ddp_streammap_entry *e, cc_chunk **out, char *detail, size_t dn, char **note)
{
    if (note) *note = NULL;
    const ddp_chunk_loc *loc = &e->loc;
    detail[0] = '\0';
    pthread_mutex_lock(&cc.mu);
    centry *c = find_locked(e->hash);
    if (c) {
        c->refs++;
        cc.st.hits++;
        c->waiters++;
        while (c->state == C_LOADING) pthread_cond_wait(&cc.ready[c->hash[0] % 64], &cc.mu);
        c->waiters--;
        if (c->state == C_READY) {
            if (c->in_table) lru_front(c);
            if (note) {
                *note = c->note;
                c->note = NULL;
            }
            pthread_mutex_unlock(&cc.mu);
            *out = &c->pub;
            return S_OK;
        }
        HRESULT hr = c->hr;
        snprintf(detail, dn, "%s", c->detail ? c->detail : "");
        unref_locked(c);
        pthread_mutex_unlock(&cc.mu);
        return hr;
    }
    if (loc->logical_len == 0 || loc->logical_len > DDP_CHUNK_MAX) {
        pthread_mutex_unlock(&cc.mu);
        snprintf(detail, dn, "chunk length %u is out of range", loc->logical_len);
        return DDP_E_FILE_CORRUPT;
    }
    c = ddp_xcalloc(1, sizeof *c + (loc->logical_len + PAGE - 1) / PAGE * sizeof c->page[0]);
    memcpy(c->hash, e->hash, DDP_HASH_SIZE);
    c->pub.len = loc->logical_len;
    c->state = C_LOADING;
    c->refs = 1;              /* held by this load: its pages stay its own */
    c->in_table = 1;
    place_locked(c);
    cc.st.loads++;
    if (note) cc.st.reader_loads++;
    centry **b = bucket(e->hash);
    c->hnext = *b;
    *b = c;
    pthread_mutex_unlock(&cc.mu);

    ddp_chunk_origin from;
    int bounced;
    uint8_t *to = load_target(c, &bounced);
    HRESULT hr = cc.rd ? ddp_chunkreader_read(cc.rd, e, to, &from)
                       : ddp_fail(DDP_E_INVALID_STATE, "the chunk store could not be opened");
    /* A container file that vanished under the store (gc switched its
     * generation again after the store reloaded the catalog for it): once
     * more, through the catalog as it is now. */
    if (hr == HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND) && cc.rd) hr = ddp_chunkreader_read(cc.rd, e, to, &from);
    if (SUCCEEDED(hr) && bounced) scatter(c, to);
    const char *why = FAILED(hr) ? ddp_error_detail() : NULL;
    char *copied = SUCCEEDED(hr) && from.copy ? ddp_xasprintf("%s; served from its hotspot copy (hotspot container %u, "
                                                            "record at %llu); `ddp scrub --repair` mends the primary",
                                                            from.primary_error, from.copy_container,
                                                            (unsigned long long)from.copy_offset)
                                            : NULL;

    pthread_mutex_lock(&cc.mu);
    if (SUCCEEDED(hr)) {
        if (!bounced && !c->own) cc.st.in_place++;
        if (copied) cc.st.copies++;
        if (note) *note = copied;
        else c->note = copied;
        c->state = C_READY;
        lru_front(c);
    } else {
        cc.st.failures++;
        c->hr = hr;
        c->detail = ddp_strdup(why && *why ? why : ddp_strerror(hr));
        unlink_locked(c);     /* the next reader tries again */
        c->state = C_FAILED;
        snprintf(detail, dn, "%s", c->detail);
    }
    if (c->waiters) pthread_cond_broadcast(&cc.ready[c->hash[0] % 64]);
    if (FAILED(hr)) {
        unref_locked(c);
        pthread_mutex_unlock(&cc.mu);
        return hr;
    }
    pthread_mutex_unlock(&cc.mu);
    *out = &c->pub;
    return S_OK;
}

void cc_put(cc_chunk *c)
{
    cc_put_many(&c, 1);
}

void cc_put_many(cc_chunk *const *c, uint32_t n)
{
    if (!n) return;
    pthread_mutex_lock(&cc.mu);
    for (uint32_t k = 0; k < n; k++) unref_locked(entry_of(c[k]));
    pthread_mutex_unlock(&cc.mu);
}

void cc_prefetch(const ddp_streammap_entry *e, uint32_t n)
{
    uint32_t queued = 0;
    pthread_mutex_lock(&cc.mu);
    for (uint32_t k = 0; k < n && !cc.stop && cc.qlen < RA_QUEUE_CAP; k++) {
        centry *c = find_locked(e[k].hash);
        if (c) {
            if (c->state == C_READY && c->in_table) lru_front(c);
            continue;
        }
        cc.q[(cc.qhead + cc.qlen) % RA_QUEUE_CAP].e = e[k];
        cc.qlen++;
        queued++;
    }
    if (queued == 1) pthread_cond_signal(&cc.work);
    else if (queued > 1) pthread_cond_broadcast(&cc.work);
    pthread_mutex_unlock(&cc.mu);
}

static void *ra_thread(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&cc.mu);
        while (!cc.stop && cc.qlen == 0) pthread_cond_wait(&cc.work, &cc.mu);
        if (cc.stop) {
            pthread_mutex_unlock(&cc.mu);
            return NULL;
        }
        ra_item it = cc.q[cc.qhead];
        cc.qhead = (cc.qhead + 1) % RA_QUEUE_CAP;
        cc.qlen--;
        pthread_mutex_unlock(&cc.mu);
        cc_chunk *c = NULL;
        char detail[8];
        if (SUCCEEDED(cc_get(&it.e, &c, detail, sizeof detail, NULL))) cc_put(c);
    }
}

unsigned cc_start(ddp_chunkreader *rd, uint64_t limit_bytes, unsigned threads)
{
    memset(&cc, 0, sizeof cc);
    pthread_mutex_init(&cc.mu, NULL);
    for (int i = 0; i < 64; i++) pthread_cond_init(&cc.ready[i], NULL);
    pthread_cond_init(&cc.work, NULL);
    pthread_key_create(&cc.bounce_key, free);
    cc.rd = rd;
    if (limit_bytes < ((uint64_t)4 << 20)) limit_bytes = (uint64_t)4 << 20;
    if (limit_bytes > ((uint64_t)1 << 43)) limit_bytes = (uint64_t)1 << 43;
    /* One mapping, 2 MiB aligned so that it can be huge pages, touched
     * lazily, never inherited by a child. */
    /* The bound is on the chunks' bytes; the arena has a sixteenth more for
     * the ends of their last pages (2 KiB of 64 on average). */
    cc.limit = limit_bytes;
    uint64_t npages = limit_bytes / PAGE + limit_bytes / PAGE / 16;
    size_t bytes = ((size_t)npages * PAGE + HUGE_BYTES - 1) & ~(HUGE_BYTES - 1);
    cc.map_bytes = bytes + HUGE_BYTES;
    cc.map = mmap(NULL, cc.map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (cc.map == MAP_FAILED) {
        cc.map = NULL;        /* every chunk gets a buffer of its own, not kept */
    } else {
        cc.arena = (uint8_t *)(((uintptr_t)cc.map + HUGE_BYTES - 1) & ~(uintptr_t)(HUGE_BYTES - 1));
        cc.npages = (uint32_t)npages;
        madvise(cc.arena, bytes, MADV_HUGEPAGE);
        madvise(cc.map, cc.map_bytes, MADV_DONTFORK);
    }
    cc.freestack = ddp_xcalloc(cc.npages ? cc.npages : 1, sizeof *cc.freestack);
    cc.lru.next = cc.lru.prev = &cc.lru;
    /* Buckets: twice the chunks of the average size that fit. */
    size_t most = (size_t)(limit_bytes / DDP_CHUNK_AVG);
    size_t nb = 1024;
    while (nb < most * 2 && nb < ((size_t)1 << 24)) nb <<= 1;
    cc.buckets = ddp_xcalloc(nb, sizeof *cc.buckets);
    cc.mask = nb - 1;
    cc.q = ddp_xcalloc(RA_QUEUE_CAP, sizeof *cc.q);
    cc.threads = ddp_xcalloc(threads ? threads : 1, sizeof *cc.threads);
    for (unsigned i = 0; i < threads; i++) {
        if (pthread_create(&cc.threads[i], NULL, ra_thread, NULL) != 0) break;
        pthread_setname_np(cc.threads[i], "ddp-readahead");
        cc.nthreads++;
    }
    return cc.nthreads;
}

void cc_stop(cc_stats *st)
{
    pthread_mutex_lock(&cc.mu);
    cc.stop = 1;
    pthread_cond_broadcast(&cc.work);
    pthread_mutex_unlock(&cc.mu);
    for (unsigned i = 0; i < cc.nthreads; i++) pthread_join(cc.threads[i], NULL);
    if (st) *st = cc.st;
    for (size_t i = 0; i <= cc.mask; i++) {
        centry *c = cc.buckets[i];
        while (c) {
            centry *next = c->hnext;
            free(c->own);
            free(c->detail);
            free(c->note);
            free(c);
            c = next;
        }
    }
    /* This thread's buffer (the read-ahead threads' went with them). */
    free(pthread_getspecific(cc.bounce_key));
    pthread_setspecific(cc.bounce_key, NULL);
    pthread_key_delete(cc.bounce_key);
    free(cc.buckets);
    free(cc.q);
    free(cc.threads);
    free(cc.freestack);
    if (cc.map) munmap(cc.map, cc.map_bytes);
    pthread_cond_destroy(&cc.work);
    for (int i = 0; i < 64; i++) pthread_cond_destroy(&cc.ready[i]);
    pthread_mutex_destroy(&cc.mu);
}
