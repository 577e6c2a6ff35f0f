/* SPDX-License-Identifier: MIT */
/*
 * index.c: the persistent chunk index (index.h): SHA-256 -> chunk location,
 * a few bytes of RAM per chunk.
 *
 * Design
 * ------
 * The index is two parts:
 *
 * 1. The base: an immutable file, VOLUME/.ddp/State/index, holding every
 *    entry known at the last checkpoint, sorted by hash (byte layout in
 *    docs/FORMAT.md, "## index"):
 *
 *        [64-byte header][covered table: 16 bytes per data container]
 *        [entries: 56 bytes each, strictly increasing by sha256]
 *
 *    It is memory-mapped read-only; the kernel pages in what lookups touch.
 *    In RAM we keep only
 *      - samples: the first 8 bytes (big-endian, so that integer order is
 *        hash order) of every 256th entry's hash. A binary search over the
 *        samples picks the one or two 256-entry pages (14 KiB) that can hold
 *        a hash; a binary search inside them finishes the lookup. 8 bytes per
 *        256 entries: 0.03 bytes per chunk.
 *      - a Bloom filter with 10 bits per entry and 7 probes (about 0.8% false
 *        positives), so that a new chunk, the common case while optimizing
 *        fresh data, almost never touches the mapped file. 1.25 bytes per
 *        chunk. The probe positions come straight from bytes 8..23 of the
 *        SHA-256 (double hashing), which are already uniformly distributed.
 *    That is about 1.3 bytes of RAM per chunk for the base, under Windows'
 *    ~6 bytes per chunk.
 *
 * 2. The delta: an open-addressing hash table (linear probing, load <= 0.7)
 *    of the entries inserted since the last checkpoint, 56 bytes per slot.
 *    ddp_index_wants_checkpoint() asks for a merge once the delta holds 256Ki
 *    entries and 1/16 of the base, which bounds its RAM to a few bytes per
 *    chunk of the whole index, and bounds the rewriting cost (each entry is
 *    rewritten at most ~17 times over the life of a store as it grows).
 *
 * Checkpoint: the delta's slots are sorted (through an array of pointers, so
 * the table stays intact if writing fails), merged with the base into
 * PATH.tmp through a 1 MiB buffer while the new samples and Bloom filter are
 * built, the header (with the checksum of everything after it) is written
 * last, the file fsynced, renamed over PATH, and the directory fsynced. The
 * new file is mapped before the rename so that a failure leaves the old state
 * untouched.
 *
 * Covered lengths: for each data container, the length up to which every chunk
 * record is in the index. The chunk store scans containers from there when it
 * opens (records appended after the last checkpoint), and sets them at each
 * checkpoint after fsyncing the data, so that the index never names a record
 * a crash could lose.
 *
 * Trust: the index is a cache rebuilt from the containers. Loading verifies
 * the header checksum, the store id, the exact file size, the checksum of all
 * the bytes after the header, that entries are strictly increasing and that
 * every field is within the format's limits; any failure is
 * DDP_E_FILE_CORRUPT and the chunk store rebuilds. The verifying pass also
 * builds the samples and the Bloom filter, then the mapped pages are dropped
 * (MADV_DONTNEED) so they do not linger in the process's resident set.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "base/codec.h"
#include "store/index.h"
#include "base/util.h"

static const char index_magic[8] = { 'D', 'D', 'P', 'I', 'N', 'D', 'X', '1' };

#define INDEX_VERSION 1u
#define PAGE_ENTRIES 256u
#define BLOOM_BITS_PER_ENTRY 10u
#define BLOOM_PROBES 7
#define DELTA_INITIAL_CAP 256u
#define CHECKPOINT_MIN_DELTA ((uint64_t)256 * 1024)
#define WRITE_BUF ((size_t)1 << 20)
#define CHUNK_MAX_LOGICAL 131072u

typedef struct delta_slot {
    uint8_t hash[DDP_HASH_SIZE];
    uint64_t offset;
    uint32_t container;   /* 0: empty slot (container ids start at 1) */
    uint32_t stored, logical;
    uint8_t codec;
} delta_slot;

struct ddp_index {
    char *path, *tmp_path;
    uint8_t store_id[DDP_STORE_ID_SIZE];

    /* base */
    uint8_t *map;
    size_t map_len;
    const uint8_t *entries;
    uint64_t base_count;
    uint64_t *samples;
    uint64_t nsamples;
    uint64_t *bloom;
    uint64_t bloom_bits;

    /* delta */
    delta_slot *slots;
    size_t cap, delta_count;

    /* covered table, sorted by container */
    ddp_index_cover *covers;
    uint32_t ncovers, covers_cap;

    uint64_t stored_total, logical_total;
    uint32_t max_container;
    int dirty;
};

/* ---------------------------------------------------------------- helpers */

static uint64_t be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
    return v;
}

static uint64_t bloom_words(uint64_t bits) { return bits / 64; }

static uint64_t bloom_size_for(uint64_t n)
{
    uint64_t bits = n * BLOOM_BITS_PER_ENTRY;
    bits = (bits + 63) / 64 * 64;
    return bits < 512 ? 512 : bits;
}

static inline uint64_t reduce(uint64_t x, uint64_t range)
{
    return (uint64_t)(((unsigned __int128)x * range) >> 64);
}

static void bloom_add(uint64_t *bloom, uint64_t bits, const uint8_t *hash)
{
    uint64_t h1 = ddp_get_le64(hash + 8), h2 = ddp_get_le64(hash + 16) | 1;
    for (int i = 0; i < BLOOM_PROBES; i++) {
        uint64_t b = reduce(h1 + (uint64_t)i * h2, bits);
        bloom[b / 64] |= UINT64_C(1) << (b % 64);
    }
}

static int bloom_test(const uint64_t *bloom, uint64_t bits, const uint8_t *hash)
{
    uint64_t h1 = ddp_get_le64(hash + 8), h2 = ddp_get_le64(hash + 16) | 1;
    for (int i = 0; i < BLOOM_PROBES; i++) {
        uint64_t b = reduce(h1 + (uint64_t)i * h2, bits);
        if (!(bloom[b / 64] & (UINT64_C(1) << (b % 64)))) return 0;
    }
    return 1;
}

static void entry_encode(uint8_t *p, const uint8_t *hash, uint32_t container, uint8_t codec, uint64_t offset,
                         uint32_t stored, uint32_t logical)
{
    memcpy(p, hash, DDP_HASH_SIZE);
    ddp_put_le32(p + 32, container);
    p[36] = codec;
    p[37] = p[38] = p[39] = 0;
    ddp_put_le64(p + 40, offset);
    ddp_put_le32(p + 48, stored);
    ddp_put_le32(p + 52, logical);
}

static void entry_loc(const uint8_t *p, ddp_chunk_loc *loc)
{
    loc->container = ddp_get_le32(p + 32);
    loc->codec = p[36];
    loc->offset = ddp_get_le64(p + 40);
    loc->stored_len = ddp_get_le32(p + 48);
    loc->logical_len = ddp_get_le32(p + 52);
}

static const char *loc_check(uint32_t container, uint8_t codec, uint64_t offset, uint32_t stored, uint32_t logical)
{
    if (container == 0) return "container id 0";
    if (codec > DDP_CODEC_ZSTD) return "unknown codec";
    if (offset < 64) return "record offset inside the container header";
    if (logical == 0 || logical > CHUNK_MAX_LOGICAL) return "logical length out of range";
    if (stored == 0 || stored > ddp_compress_bound(logical)) return "stored length out of range";
    if (codec == DDP_CODEC_NONE && stored != logical) return "raw entry whose lengths differ";
    return NULL;
}

static ddp_index *index_alloc(const char *path, const uint8_t store_id[DDP_STORE_ID_SIZE])
{
    ddp_index *ix = ddp_xcalloc(1, sizeof *ix);
    ix->path = ddp_strdup(path);
    ix->tmp_path = ddp_xasprintf("%s.tmp", path);
    memcpy(ix->store_id, store_id, DDP_STORE_ID_SIZE);
    ix->cap = DELTA_INITIAL_CAP;
    ix->slots = ddp_xcalloc(ix->cap, sizeof *ix->slots);
    return ix;
}

ddp_index *ddp_index_new(const char *path, const uint8_t store_id[DDP_STORE_ID_SIZE])
{
    ddp_index *ix = index_alloc(path, store_id);
    ix->dirty = 1;
    return ix;
}

static void base_release(ddp_index *ix)
{
    if (ix->map) munmap(ix->map, ix->map_len);
    ix->map = NULL;
    ix->map_len = 0;
    ix->entries = NULL;
    ix->base_count = 0;
    free(ix->samples);
    ix->samples = NULL;
    ix->nsamples = 0;
    free(ix->bloom);
    ix->bloom = NULL;
    ix->bloom_bits = 0;
}

void ddp_index_free(ddp_index *ix)
{
    if (!ix) return;
    base_release(ix);
    free(ix->slots);
    free(ix->covers);
    free(ix->path);
    free(ix->tmp_path);
    free(ix);
}

/* ------------------------------------------------------------------ load */

static HRESULT corrupt(const char *path, const char *why)
{
    return ddp_fail(DDP_E_FILE_CORRUPT, "index %s: %s", path, why);
}

HRESULT ddp_index_load(const char *path, const uint8_t store_id[DDP_STORE_ID_SIZE], ddp_index **out)
{
    if (!path || !store_id || !out) return E_POINTER;
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ddp_fail_errno(errno, "opening index %s", path);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        HRESULT hr = ddp_fail_errno(errno, "reading index %s", path);
        close(fd);
        return hr;
    }
    uint64_t size = (uint64_t)st.st_size;
    if (size < DDP_INDEX_HEADER_SIZE) {
        close(fd);
        return corrupt(path, "shorter than its header");
    }
    uint8_t hb[DDP_INDEX_HEADER_SIZE];
    HRESULT hr = ddp_pread_exact(fd, hb, sizeof hb, 0, path);
    if (FAILED(hr)) {
        close(fd);
        return hr;
    }
    const char *why = NULL;
    if (memcmp(hb, index_magic, 8) != 0) why = "bad magic";
    else if (ddp_get_le64(hb + 56) != ddp_checksum64(hb, 56)) why = "header checksum mismatch";
    else if (ddp_get_le32(hb + 8) != INDEX_VERSION) {
        close(fd);
        return ddp_fail(DDP_E_UNSUPPORTED_VERSION, "index %s: version %u (this build reads version %u)", path,
                        ddp_get_le32(hb + 8), INDEX_VERSION);
    } else if (ddp_get_le32(hb + 48) != DDP_INDEX_ENTRY_SIZE) why = "unexpected entry size";
    else if (ddp_get_le32(hb + 52) != 0) why = "nonzero reserved field";
    else if (memcmp(hb + 24, store_id, DDP_STORE_ID_SIZE) != 0) why = "belongs to another store";
    uint32_t ncovers = ddp_get_le32(hb + 12);
    uint64_t count = ddp_get_le64(hb + 16);
    if (!why) {
        uint64_t body = size - DDP_INDEX_HEADER_SIZE;
        uint64_t covers_bytes = (uint64_t)ncovers * DDP_INDEX_COVER_SIZE;
        if (covers_bytes > body || count > (body - covers_bytes) / DDP_INDEX_ENTRY_SIZE ||
            covers_bytes + count * DDP_INDEX_ENTRY_SIZE != body)
            why = "file size does not match the counts in the header";
    }
    if (why) {
        close(fd);
        return corrupt(path, why);
    }
    if (size != (size_t)size) {
        close(fd);
        return corrupt(path, "too large to map");
    }
    uint8_t *map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
    int map_errno = errno;
    close(fd);
    if (map == MAP_FAILED) return ddp_fail_errno(map_errno, "mapping index %s", path);
    (void)madvise(map, (size_t)size, MADV_SEQUENTIAL);

    ddp_index *ix = index_alloc(path, store_id);
    ix->map = map;
    ix->map_len = (size_t)size;
    if (XXH3_64bits(map + DDP_INDEX_HEADER_SIZE, (size_t)size - DDP_INDEX_HEADER_SIZE) != ddp_get_le64(hb + 40)) {
        why = "checksum of the entries does not match";
        goto bad;
    }

    /* Covered table. */
    const uint8_t *cp = map + DDP_INDEX_HEADER_SIZE;
    ix->covers = ddp_xcalloc(ncovers ? ncovers : 1, sizeof *ix->covers);
    ix->covers_cap = ncovers ? ncovers : 1;
    for (uint32_t i = 0; i < ncovers; i++, cp += DDP_INDEX_COVER_SIZE) {
        ddp_index_cover *c = &ix->covers[i];
        c->container = ddp_get_le32(cp);
        c->generation = ddp_get_le32(cp + 4);
        c->length = ddp_get_le64(cp + 8);
        if (c->container == 0 || c->generation == 0 || c->length < 64) {
            why = "bad covered-length entry";
            goto bad;
        }
        if (i > 0 && c->container <= ix->covers[i - 1].container) {
            why = "covered-length table out of order";
            goto bad;
        }
    }
    ix->ncovers = ncovers;

    /* Entries: check order and fields; build samples, Bloom filter, totals. */
    ix->entries = cp;
    ix->base_count = count;
    ix->nsamples = (count + PAGE_ENTRIES - 1) / PAGE_ENTRIES;
    ix->samples = ddp_xmalloc((ix->nsamples ? ix->nsamples : 1) * sizeof *ix->samples);
    if (count) {
        ix->bloom_bits = bloom_size_for(count);
        ix->bloom = ddp_xcalloc(bloom_words(ix->bloom_bits), sizeof *ix->bloom);
    }
    for (uint64_t i = 0; i < count; i++) {
        const uint8_t *e = cp + i * DDP_INDEX_ENTRY_SIZE;
        if (i > 0 && memcmp(e - DDP_INDEX_ENTRY_SIZE, e, DDP_HASH_SIZE) >= 0) {
            why = "entries out of order";
            goto bad;
        }
        ddp_chunk_loc loc;
        entry_loc(e, &loc);
        if (e[37] || e[38] || e[39]) why = "nonzero padding in an entry";
        else why = loc_check(loc.container, loc.codec, loc.offset, loc.stored_len, loc.logical_len);
        if (why) goto bad;
        if (i % PAGE_ENTRIES == 0) ix->samples[i / PAGE_ENTRIES] = be64(e);
        bloom_add(ix->bloom, ix->bloom_bits, e);
        ix->stored_total += loc.stored_len;
        ix->logical_total += loc.logical_len;
        if (loc.container > ix->max_container) ix->max_container = loc.container;
    }
    /* Drop the pages the verifying pass brought in; lookups fault in what they need. */
    (void)madvise(map, (size_t)size, MADV_DONTNEED);
    (void)madvise(map, (size_t)size, MADV_RANDOM);
    ix->dirty = 0;
    *out = ix;
    return S_OK;
bad:
    hr = corrupt(path, why);
    ddp_index_free(ix);
    return hr;
}

/* ---------------------------------------------------------------- lookup */

static delta_slot *delta_find(const ddp_index *ix, const uint8_t *hash, int *found)
{
    size_t mask = ix->cap - 1;
    size_t i = (size_t)ddp_get_le64(hash) & mask;
    for (;;) {
        delta_slot *s = &ix->slots[i];
        if (s->container == 0) {
            *found = 0;
            return s;
        }
        if (memcmp(s->hash, hash, DDP_HASH_SIZE) == 0) {
            *found = 1;
            return s;
        }
        i = (i + 1) & mask;
    }
}

static const uint8_t *base_find(const ddp_index *ix, const uint8_t *hash)
{
    if (ix->base_count == 0) return NULL;
    if (!bloom_test(ix->bloom, ix->bloom_bits, hash)) return NULL;
    uint64_t key = be64(hash);
    /* lo: first sample >= key; hi: first sample > key. */
    uint64_t lo = 0, hi = ix->nsamples;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (ix->samples[mid] < key) lo = mid + 1;
        else hi = mid;
    }
    uint64_t first_ge = lo;
    hi = ix->nsamples;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (ix->samples[mid] <= key) lo = mid + 1;
        else hi = mid;
    }
    uint64_t begin = (first_ge ? first_ge - 1 : 0) * PAGE_ENTRIES;
    uint64_t end = lo * PAGE_ENTRIES;
    if (end > ix->base_count) end = ix->base_count;
    while (begin < end) {
        uint64_t mid = begin + (end - begin) / 2;
        const uint8_t *e = ix->entries + mid * DDP_INDEX_ENTRY_SIZE;
        int c = memcmp(e, hash, DDP_HASH_SIZE);
        if (c == 0) return e;
        if (c < 0) begin = mid + 1;
        else end = mid;
    }
    return NULL;
}

int ddp_index_lookup(const ddp_index *ix, const uint8_t hash[DDP_HASH_SIZE], ddp_chunk_loc *loc)
{
    if (ix->delta_count) {
        int found;
        delta_slot *s = delta_find(ix, hash, &found);
        if (found) {
            if (loc) {
                loc->container = s->container;
                loc->codec = s->codec;
                loc->offset = s->offset;
                loc->stored_len = s->stored;
                loc->logical_len = s->logical;
            }
            return 1;
        }
    }
    const uint8_t *e = base_find(ix, hash);
    if (!e) return 0;
    if (loc) entry_loc(e, loc);
    return 1;
}

static void delta_grow(ddp_index *ix)
{
    delta_slot *old = ix->slots;
    size_t oldcap = ix->cap;
    ix->cap *= 2;
    ix->slots = ddp_xcalloc(ix->cap, sizeof *ix->slots);
    for (size_t i = 0; i < oldcap; i++) {
        if (old[i].container == 0) continue;
        int found;
        delta_slot *s = delta_find(ix, old[i].hash, &found);
        *s = old[i];
    }
    free(old);
}

int ddp_index_insert(ddp_index *ix, const uint8_t hash[DDP_HASH_SIZE], const ddp_chunk_loc *loc)
{
    if (loc->container == 0) return -1;
    if (base_find(ix, hash)) return 0;
    if ((ix->delta_count + 1) * 10 > ix->cap * 7) delta_grow(ix);
    int found;
    delta_slot *s = delta_find(ix, hash, &found);
    if (found) return 0;
    memcpy(s->hash, hash, DDP_HASH_SIZE);
    s->container = loc->container;
    s->codec = loc->codec;
    s->offset = loc->offset;
    s->stored = loc->stored_len;
    s->logical = loc->logical_len;
    ix->delta_count++;
    ix->stored_total += loc->stored_len;
    ix->logical_total += loc->logical_len;
    if (loc->container > ix->max_container) ix->max_container = loc->container;
    ix->dirty = 1;
    return 1;
}

uint64_t ddp_index_count(const ddp_index *ix) { return ix->base_count + ix->delta_count; }
uint64_t ddp_index_delta_count(const ddp_index *ix) { return ix->delta_count; }
uint32_t ddp_index_max_container(const ddp_index *ix) { return ix->max_container; }
int ddp_index_is_dirty(const ddp_index *ix) { return ix->dirty; }

void ddp_index_totals(const ddp_index *ix, uint64_t *count, uint64_t *stored_bytes, uint64_t *logical_bytes)
{
    if (count) *count = ddp_index_count(ix);
    if (stored_bytes) *stored_bytes = ix->stored_total;
    if (logical_bytes) *logical_bytes = ix->logical_total;
}

int ddp_index_wants_checkpoint(const ddp_index *ix)
{
    return ix->delta_count >= CHECKPOINT_MIN_DELTA && ix->delta_count >= ix->base_count / 16;
}

/* -------------------------------------------------------- covered table */

static uint32_t cover_lower_bound(const ddp_index *ix, uint32_t container)
{
    uint32_t lo = 0, hi = ix->ncovers;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (ix->covers[mid].container < container) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

void ddp_index_set_covered(ddp_index *ix, uint32_t container, uint32_t generation, uint64_t length)
{
    uint32_t i = cover_lower_bound(ix, container);
    if (i < ix->ncovers && ix->covers[i].container == container) {
        ddp_index_cover *c = &ix->covers[i];
        if (c->generation != generation || c->length != length) ix->dirty = 1;
        c->generation = generation;
        c->length = length;
        return;
    }
    if (ix->ncovers == ix->covers_cap) {
        ix->covers_cap = ix->covers_cap ? ix->covers_cap * 2 : 16;
        ix->covers = ddp_xrealloc(ix->covers, (size_t)ix->covers_cap * sizeof *ix->covers);
    }
    memmove(&ix->covers[i + 1], &ix->covers[i], (size_t)(ix->ncovers - i) * sizeof *ix->covers);
    ix->covers[i] = (ddp_index_cover){ container, generation, length };
    ix->ncovers++;
    ix->dirty = 1;
}

int ddp_index_get_covered(const ddp_index *ix, uint32_t container, ddp_index_cover *cover)
{
    uint32_t i = cover_lower_bound(ix, container);
    if (i < ix->ncovers && ix->covers[i].container == container) {
        if (cover) *cover = ix->covers[i];
        return 1;
    }
    return 0;
}

uint32_t ddp_index_covered_count(const ddp_index *ix) { return ix->ncovers; }
const ddp_index_cover *ddp_index_covered_at(const ddp_index *ix, uint32_t i)
{
    return i < ix->ncovers ? &ix->covers[i] : NULL;
}

/* ------------------------------------------------------------ checkpoint */

static int slot_ptr_cmp(const void *a, const void *b)
{
    const delta_slot *x = *(const delta_slot *const *)a, *y = *(const delta_slot *const *)b;
    return memcmp(x->hash, y->hash, DDP_HASH_SIZE);
}

typedef struct out_buf {
    int fd;
    const char *path;
    uint8_t *buf;
    size_t len;
    uint64_t off;
    XXH3_state_t *xx;
} out_buf;

static HRESULT out_flush(out_buf *o)
{
    if (!o->len) return S_OK;
    XXH3_64bits_update(o->xx, o->buf, o->len);
    HRESULT hr = ddp_pwrite_all(o->fd, o->buf, o->len, o->off, o->path);
    o->off += o->len;
    o->len = 0;
    return hr;
}

static HRESULT out_put(out_buf *o, const uint8_t *p, size_t n)
{
    if (o->len + n > WRITE_BUF) {
        HRESULT hr = out_flush(o);
        if (FAILED(hr)) return hr;
    }
    memcpy(o->buf + o->len, p, n);
    o->len += n;
    return S_OK;
}

HRESULT ddp_index_checkpoint(ddp_index *ix)
{
    if (!ix) return E_POINTER;
    if (!ix->dirty) return S_OK;

    /* The delta, sorted. */
    delta_slot **sorted = ddp_xmalloc((ix->delta_count ? ix->delta_count : 1) * sizeof *sorted);
    size_t nd = 0;
    for (size_t i = 0; i < ix->cap; i++)
        if (ix->slots[i].container) sorted[nd++] = &ix->slots[i];
    qsort(sorted, nd, sizeof *sorted, slot_ptr_cmp);

    uint64_t total = ix->base_count + nd;
    uint64_t nsamples = (total + PAGE_ENTRIES - 1) / PAGE_ENTRIES;
    uint64_t *samples = ddp_xmalloc((nsamples ? nsamples : 1) * sizeof *samples);
    uint64_t bloom_bits = total ? bloom_size_for(total) : 0;
    uint64_t *bloom = total ? ddp_xcalloc(bloom_words(bloom_bits), sizeof *bloom) : NULL;
    uint8_t *map = NULL;
    size_t map_len = 0;
    int renamed = 0;

    out_buf o = { .fd = -1, .path = ix->tmp_path, .buf = ddp_xmalloc(WRITE_BUF), .off = DDP_INDEX_HEADER_SIZE };
    o.xx = XXH3_createState();
    if (!o.xx) abort();
    XXH3_64bits_reset(o.xx);
    HRESULT hr = S_OK;
    o.fd = open(ix->tmp_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (o.fd < 0) {
        hr = ddp_fail_errno(errno, "creating index %s", ix->tmp_path);
        goto done;
    }

    for (uint32_t i = 0; i < ix->ncovers && SUCCEEDED(hr); i++) {
        uint8_t c[DDP_INDEX_COVER_SIZE];
        ddp_put_le32(c, ix->covers[i].container);
        ddp_put_le32(c + 4, ix->covers[i].generation);
        ddp_put_le64(c + 8, ix->covers[i].length);
        hr = out_put(&o, c, sizeof c);
    }

    uint64_t bi = 0, n = 0;
    size_t di = 0;
    while (SUCCEEDED(hr) && (bi < ix->base_count || di < nd)) {
        uint8_t e[DDP_INDEX_ENTRY_SIZE];
        const uint8_t *be = bi < ix->base_count ? ix->entries + bi * DDP_INDEX_ENTRY_SIZE : NULL;
        const delta_slot *ds = di < nd ? sorted[di] : NULL;
        if (be && (!ds || memcmp(be, ds->hash, DDP_HASH_SIZE) < 0)) {
            memcpy(e, be, sizeof e);
            bi++;
        } else {
            entry_encode(e, ds->hash, ds->container, ds->codec, ds->offset, ds->stored, ds->logical);
            di++;
        }
        if (n % PAGE_ENTRIES == 0) samples[n / PAGE_ENTRIES] = be64(e);
        bloom_add(bloom, bloom_bits, e);
        n++;
        hr = out_put(&o, e, sizeof e);
    }
    if (SUCCEEDED(hr)) hr = out_flush(&o);
    if (FAILED(hr)) goto done;

    uint8_t hb[DDP_INDEX_HEADER_SIZE];
    memset(hb, 0, sizeof hb);
    memcpy(hb, index_magic, 8);
    ddp_put_le32(hb + 8, INDEX_VERSION);
    ddp_put_le32(hb + 12, ix->ncovers);
    ddp_put_le64(hb + 16, total);
    memcpy(hb + 24, ix->store_id, DDP_STORE_ID_SIZE);
    ddp_put_le64(hb + 40, XXH3_64bits_digest(o.xx));
    ddp_put_le32(hb + 48, DDP_INDEX_ENTRY_SIZE);
    ddp_put_le32(hb + 52, 0);
    ddp_put_le64(hb + 56, ddp_checksum64(hb, 56));
    if (FAILED(hr = ddp_pwrite_all(o.fd, hb, sizeof hb, 0, ix->tmp_path))) goto done;
    if (FAILED(hr = ddp_fsync_fd(o.fd, ix->tmp_path))) goto done;
    map_len = (size_t)o.off;
    map = mmap(NULL, map_len, PROT_READ, MAP_PRIVATE, o.fd, 0);
    if (map == MAP_FAILED) {
        map = NULL;
        hr = ddp_fail_errno(errno, "mapping index %s", ix->tmp_path);
        goto done;
    }
    (void)madvise(map, map_len, MADV_DONTNEED);
    (void)madvise(map, map_len, MADV_RANDOM);
    if (rename(ix->tmp_path, ix->path) != 0) {
        hr = ddp_fail_errno(errno, "renaming %s", ix->tmp_path);
        goto done;
    }
    renamed = 1;
    hr = ddp_fsync_parent(ix->path);
    /* The new file is in place even if the directory sync failed: switch to it. */

    if (ix->map) munmap(ix->map, ix->map_len);
    free(ix->samples);
    free(ix->bloom);
    ix->map = map;
    ix->map_len = map_len;
    map = NULL;
    ix->entries = ix->map + DDP_INDEX_HEADER_SIZE + (size_t)ix->ncovers * DDP_INDEX_COVER_SIZE;
    ix->base_count = total;
    ix->samples = samples;
    ix->nsamples = nsamples;
    ix->bloom = bloom;
    ix->bloom_bits = bloom_bits;
    samples = NULL;
    bloom = NULL;
    free(ix->slots);
    ix->cap = DELTA_INITIAL_CAP;
    ix->slots = ddp_xcalloc(ix->cap, sizeof *ix->slots);
    ix->delta_count = 0;
    ix->dirty = FAILED(hr);

done:
    if (o.fd >= 0) close(o.fd);
    if (map) munmap(map, map_len);
    if (!renamed) unlink(ix->tmp_path);
    XXH3_freeState(o.xx);
    free(o.buf);
    free(samples);
    free(bloom);
    free(sorted);
    return hr;
}

/* ------------------------------------------------------------ accounting */

size_t ddp_index_ram_bytes(const ddp_index *ix)
{
    size_t n = sizeof *ix;
    n += strlen(ix->path) + 1 + strlen(ix->tmp_path) + 1;
    n += (size_t)(ix->nsamples ? ix->nsamples : 1) * sizeof *ix->samples;
    n += (size_t)bloom_words(ix->bloom_bits) * sizeof *ix->bloom;
    n += ix->cap * sizeof *ix->slots;
    n += (size_t)ix->covers_cap * sizeof *ix->covers;
    return n;
}

uint64_t ddp_index_file_bytes(const ddp_index *ix) { return ix->map ? ix->map_len : 0; }
