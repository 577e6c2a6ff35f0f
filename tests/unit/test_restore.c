/* SPDX-License-Identifier: MIT */
/*
 * test_restore.c: unit tests of the backup-support API: IDedupBackupSupport
 * (the COM object) and RestoreFiles with every rule of the contract, R1-R10
 * (SPEC-backup-api.md), and ddp_restore_plan_list.
 *
 * The fixtures do not depend on the optimization job. A small builder here
 * makes a fake optimized backup with the library's own encoders: an identity
 * (.ddp/Settings/identity), data and stream-map containers built record by
 * record (chunks raw or zstd), stream maps, a catalog, and stubs placed in a
 * separate "restore target" directory, as a backup application would have
 * restored them before calling RestoreFiles. Chunks are deduplicated by hash
 * across the fixture, so files can share chunks.
 *
 * The backup store is the recording IDedupReadFileCallback of rsrecord.h,
 * which serves reads from the backup directory and records every call; the
 * read plans of many shapes it answers with are here. rs_check_sequence()
 * then checks R5-R7 on the recorded calls: two OrderContainersRestore calls,
 * stream-map containers first, no path twice in a list; every container
 * read announced by the preview just before it, in the announced order,
 * inside the current plan extent; reads going forward, none over 4 MiB, and
 * no container byte read twice in the call.
 *
 * A write failure (disk full) is simulated by this test program's own
 * pwrite(), which takes precedence over the C library's and can be told to
 * fail with ENOSPC; "access denied" by a child process that drops root
 * privileges (or directly, when not running as root).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <ddp/ddp.h>
#include <ddp/ddpbackup.h>

#include "store/catalog.h"
#include "base/codec.h"
#include "store/container.h"
#include "base/fileattr.h"
#include "base/hash.h"
#include "store/identity.h"
#include "restore/restore.h"
#include "store/streammap.h"
#include "store/stub.h"
#include "rsrecord.h"
#include "testutil.h"
#include "base/util.h"

#define KiB ((size_t)1024)
#define MiB ((size_t)1024 * 1024)

/* ======================================================================
 * Fault injection: this program's pwrite() wins over the C library's.
 * ====================================================================== */

static int g_pwrite_enospc;

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    if (g_pwrite_enospc) {
        errno = ENOSPC;
        return -1;
    }
    return (ssize_t)syscall(SYS_pwrite64, fd, buf, n, off);
}

/* ======================================================================
 * The fixture builder: a fake optimized backup and restored stubs
 * ====================================================================== */

typedef struct fx_cont {
    uint32_t kind, id;
    uint8_t *buf;
    size_t len, cap;
} fx_cont;

typedef struct fx_file {
    char *path;            /* target/NAME */
    uint8_t *data;
    size_t len;
    ddp_streammap map;     /* where its chunks are */
    uint32_t smap_cont;    /* stream container id */
    uint64_t smap_off;
    uint32_t smap_stored;
    uint8_t stub[DDP_STUB_SIZE];
    mode_t mode;
    struct timespec mtime;
} fx_file;

typedef struct fx_slot {
    int used;
    uint8_t hash[DDP_HASH_SIZE];
    ddp_chunk_loc loc;
} fx_slot;

#define FX_MAX_CONT 64

typedef struct fx {
    char *root, *backup, *target, *store_dir;
    ddp_identity id;
    fx_cont conts[FX_MAX_CONT];
    int ncont;
    int cur_data, cur_stream;  /* index in conts, -1: none yet */
    size_t data_limit;         /* start a new data container past this size (0: never) */
    int level;                 /* zstd level for chunks, 0: store raw */
    fx_slot *tab;
    size_t tabcap, tabn;
    fx_file *files;
    int nfiles, capfiles;
    uint64_t catalog_bytes;
    int bad_filehash;          /* next file: map and stub agree on a wrong whole-file hash */
} fx;

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    assert_non_null(d);
    return d;
}

static fx *fx_new(void)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->root = tu_mkdtemp();
    f->backup = tu_xprintf("%s/backup", f->root);
    f->target = tu_xprintf("%s/target", f->root);
    tu_mkdirs(f->backup);
    tu_mkdirs(f->target);
    assert_int_equal(ddp_identity_generate(&f->id), S_OK);
    char guid[39];
    ddp_guid_format(f->id.store_id, guid);
    f->store_dir = tu_xprintf("%s/.ddp/ChunkStore/%s.ddp", f->backup, guid);
    f->cur_data = f->cur_stream = -1;
    f->tabcap = 1024;
    f->tab = calloc(f->tabcap, sizeof *f->tab);
    assert_non_null(f->tab);
    return f;
}

static void fx_free(fx *f)
{
    tu_rmrf(f->root);
    for (int i = 0; i < f->ncont; i++) free(f->conts[i].buf);
    for (int i = 0; i < f->nfiles; i++) {
        free(f->files[i].path);
        free(f->files[i].data);
        ddp_streammap_free(&f->files[i].map);
    }
    free(f->files);
    free(f->tab);
    free(f->root);
    free(f->backup);
    free(f->target);
    free(f->store_dir);
    free(f);
}

static void cont_append(fx_cont *c, const void *p, size_t n)
{
    if (c->len + n > c->cap) {
        while (c->len + n > c->cap) c->cap = c->cap ? c->cap * 2 : 65536;
        c->buf = realloc(c->buf, c->cap);
        assert_non_null(c->buf);
    }
    memcpy(c->buf + c->len, p, n);
    c->len += n;
}

/* A new container of kind; it becomes the current one of its kind. */
static int fx_container(fx *f, uint32_t kind)
{
    assert_true(f->ncont < FX_MAX_CONT);
    uint32_t id = 1;
    for (int i = 0; i < f->ncont; i++)
        if (f->conts[i].kind == kind) id++;
    int ci = f->ncont++;
    fx_cont *c = &f->conts[ci];
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->id = id;
    ddp_container_header h = { .kind = kind, .id = id, .generation = 1, .created = 1700000000 };
    memcpy(h.store_id, f->id.store_id, DDP_STORE_ID_SIZE);
    uint8_t hb[DDP_CONTAINER_HEADER_SIZE];
    ddp_container_header_encode(&h, hb);
    cont_append(c, hb, sizeof hb);
    if (kind == DDP_KIND_DATA) f->cur_data = ci;
    else f->cur_stream = ci;
    return ci;
}

static uint64_t fx_record(fx *f, int ci, uint16_t type, uint8_t codec, uint32_t logical,
                          const uint8_t hash[DDP_HASH_SIZE], const void *payload, uint32_t stored)
{
    ddp_record_header h = { .type = type, .codec = codec, .stored_len = stored, .logical_len = logical };
    memcpy(h.hash, hash, DDP_HASH_SIZE);
    uint8_t hb[DDP_RECORD_HEADER_SIZE];
    ddp_record_header_encode(&h, payload, hb);
    uint64_t off = f->conts[ci].len;
    cont_append(&f->conts[ci], hb, sizeof hb);
    cont_append(&f->conts[ci], payload, stored);
    return off;
}

static size_t fx_slot_of(const fx *f, const uint8_t hash[DDP_HASH_SIZE])
{
    uint64_t h;
    memcpy(&h, hash, sizeof h);
    size_t i = (size_t)h & (f->tabcap - 1);
    while (f->tab[i].used && memcmp(f->tab[i].hash, hash, DDP_HASH_SIZE) != 0) i = (i + 1) & (f->tabcap - 1);
    return i;
}

/* Store a chunk once (deduplicated by hash); its location. */
static ddp_chunk_loc fx_chunk(fx *f, const uint8_t *data, uint32_t len, uint8_t hash[DDP_HASH_SIZE])
{
    ddp_sha256(data, len, hash);
    size_t s = fx_slot_of(f, hash);
    if (f->tab[s].used) return f->tab[s].loc;
    if (f->cur_data < 0 || (f->data_limit && f->conts[f->cur_data].len >= f->data_limit))
        fx_container(f, DDP_KIND_DATA);
    ddp_chunk_loc loc = { .container = f->conts[f->cur_data].id, .logical_len = len };
    uint8_t *z = NULL;
    size_t zn = 0;
    if (f->level > 0) {
        size_t cap = ddp_compress_bound(len);
        z = malloc(cap);
        assert_non_null(z);
        zn = ddp_compress(z, cap, data, len, f->level);
    }
    if (zn > 0) {
        loc.codec = DDP_CODEC_ZSTD;
        loc.stored_len = (uint32_t)zn;
        loc.offset = fx_record(f, f->cur_data, DDP_RECORD_CHUNK, DDP_CODEC_ZSTD, len, hash, z, (uint32_t)zn);
    } else {
        loc.codec = DDP_CODEC_NONE;
        loc.stored_len = len;
        loc.offset = fx_record(f, f->cur_data, DDP_RECORD_CHUNK, DDP_CODEC_NONE, len, hash, data, len);
    }
    free(z);
    f->tab[s].used = 1;
    memcpy(f->tab[s].hash, hash, DDP_HASH_SIZE);
    f->tab[s].loc = loc;
    if (++f->tabn * 2 > f->tabcap) {
        fx_slot *old = f->tab;
        size_t oldcap = f->tabcap;
        f->tabcap *= 2;
        f->tab = calloc(f->tabcap, sizeof *f->tab);
        assert_non_null(f->tab);
        for (size_t i = 0; i < oldcap; i++)
            if (old[i].used) f->tab[fx_slot_of(f, old[i].hash)] = old[i];
        free(old);
    }
    return loc;
}

static void fx_write_stub(fx *f, int i)
{
    fx_file *ff = &f->files[i];
    unlink(ff->path);
    tu_write_file(ff->path, ff->stub, DDP_STUB_SIZE);
    assert_int_equal(chmod(ff->path, ff->mode), 0);
    struct timespec t[2] = { ff->mtime, ff->mtime };
    assert_int_equal(utimensat(AT_FDCWD, ff->path, t, 0), 0);
}

/* Add a file of len bytes cut into pieces of the given lengths (cuts NULL:
 * pieces of `piece` bytes); its stream map goes to the current stream
 * container, its stub to target/name. */
static int fx_add_cuts(fx *f, const char *name, const uint8_t *data, size_t len, const size_t *cuts, size_t ncuts,
                       size_t piece)
{
    if (f->nfiles == f->capfiles) {
        f->capfiles = f->capfiles ? f->capfiles * 2 : 16;
        f->files = realloc(f->files, (size_t)f->capfiles * sizeof *f->files);
        assert_non_null(f->files);
    }
    int i = f->nfiles++;
    fx_file *ff = &f->files[i];
    memset(ff, 0, sizeof *ff);
    ff->path = tu_xprintf("%s/%s", f->target, name);
    ff->data = malloc(len ? len : 1);
    assert_non_null(ff->data);
    if (len) memcpy(ff->data, data, len);
    ff->len = len;
    ff->mode = 0640;
    ff->mtime.tv_sec = 1500000000 + i;
    ff->mtime.tv_nsec = 123456789;

    ddp_streammap_init(&ff->map);
    ff->map.file_size = len;
    ddp_filehash fh;
    ddp_filehash_init(&fh);
    size_t off = 0, k = 0;
    while (off < len) {
        size_t n = cuts ? cuts[k++] : (len - off < piece ? len - off : piece);
        assert_true(n > 0 && n <= 131072 && off + n <= len);
        ddp_streammap_entry e;
        e.loc = fx_chunk(f, data + off, (uint32_t)n, e.hash);
        ddp_streammap_add(&ff->map, &e);
        ddp_filehash_add(&fh, e.hash, n);
        off += n;
    }
    if (cuts) assert_int_equal(k, ncuts);
    ddp_filehash_final(&fh, ff->map.file_hash);
    if (f->bad_filehash) ff->map.file_hash[7] ^= 1;

    uint8_t *enc;
    size_t enclen;
    assert_int_equal(ddp_streammap_encode(&ff->map, &enc, &enclen), S_OK);
    uint8_t mh[DDP_HASH_SIZE];
    ddp_sha256(enc, enclen, mh);
    if (f->cur_stream < 0) fx_container(f, DDP_KIND_STREAM);
    ff->smap_cont = f->conts[f->cur_stream].id;
    ff->smap_off = fx_record(f, f->cur_stream, DDP_RECORD_STREAMMAP, DDP_CODEC_NONE, (uint32_t)enclen, mh, enc,
                             (uint32_t)enclen);
    ff->smap_stored = (uint32_t)enclen;
    free(enc);

    ddp_stub s = { .stream_container = ff->smap_cont, .streammap_stored_len = ff->smap_stored,
                   .stream_offset = ff->smap_off, .file_size = len };
    memcpy(s.store_id, f->id.store_id, DDP_STORE_ID_SIZE);
    memcpy(s.file_hash, ff->map.file_hash, DDP_HASH_SIZE);
    memcpy(s.streammap_hash, mh, DDP_HASH_SIZE);
    ddp_stub_encode(&s, f->id.key, ff->stub);
    fx_write_stub(f, i);
    return i;
}

static int fx_add(fx *f, const char *name, const uint8_t *data, size_t len, size_t piece)
{
    return fx_add_cuts(f, name, data, len, NULL, 0, piece);
}

/* Add a file of pseudo-random content. */
static int fx_add_random(fx *f, const char *name, size_t len, uint64_t seed, size_t piece)
{
    uint8_t *d = malloc(len ? len : 1);
    assert_non_null(d);
    tu_fill_random(d, len, seed);
    int i = fx_add(f, name, d, len, piece);
    free(d);
    return i;
}

/* Compressible text. */
static int fx_add_text(fx *f, const char *name, size_t len, size_t piece)
{
    uint8_t *d = malloc(len ? len : 1);
    assert_non_null(d);
    static const char words[] = "the quick brown fox jumps over the lazy dog; ";
    for (size_t i = 0; i < len; i++) d[i] = (uint8_t)words[(i * 7 + i / 91) % (sizeof words - 1)];
    int i = fx_add(f, name, d, len, piece);
    free(d);
    return i;
}

static char *fx_cont_path(const fx *f, uint32_t kind, uint32_t id)
{
    char rel[40];
    ddp_container_relpath(kind, id, 1, rel);
    return tu_xprintf("%s/%s", f->store_dir, rel);
}

/* The container path as the backup store names it ("/.ddp/..."). */
static char *fx_cont_bpath(const fx *f, uint32_t kind, uint32_t id)
{
    char *full = fx_cont_path(f, kind, id);
    char *b = xstrdup(full + strlen(f->backup));
    free(full);
    return b;
}

/* Write the backup: identity, containers, catalog. */
static void fx_flush(fx *f)
{
    char *p = tu_xprintf("%s/.ddp/Settings", f->backup);
    tu_mkdirs(p);
    free(p);
    uint8_t idb[DDP_IDENTITY_SIZE];
    ddp_identity_encode(&f->id, idb);
    p = tu_xprintf("%s/.ddp/Settings/identity", f->backup);
    tu_write_file(p, idb, sizeof idb);
    free(p);
    ddp_catalog cat;
    memset(&cat, 0, sizeof cat);
    memcpy(cat.store_id, f->id.store_id, DDP_STORE_ID_SIZE);
    for (int i = 0; i < f->ncont; i++) {
        p = fx_cont_path(f, f->conts[i].kind, f->conts[i].id);
        tu_write_file(p, f->conts[i].buf, f->conts[i].len);
        free(p);
        ddp_catalog_entry e = { .kind = f->conts[i].kind, .id = f->conts[i].id, .generation = 1, .flags = 1,
                                .length = f->conts[i].len };
        ddp_catalog_put(&cat, &e);
    }
    uint8_t *cb;
    size_t cn;
    assert_int_equal(ddp_catalog_encode(&cat, &cb, &cn), S_OK);
    p = tu_xprintf("%s/catalog", f->store_dir);
    tu_write_file(p, cb, cn);
    free(p);
    f->catalog_bytes = cn;
    free(cb);
    ddp_catalog_free(&cat);
}

/* Put every stub back (after a restore replaced them). */
static void fx_restub(fx *f)
{
    for (int i = 0; i < f->nfiles; i++) fx_write_stub(f, i);
}

static char **fx_paths(fx *f)
{
    char **v = calloc((size_t)f->nfiles + 1, sizeof *v);
    assert_non_null(v);
    for (int i = 0; i < f->nfiles; i++) v[i] = f->files[i].path;
    return v;
}

/* A stub for file i signed with another key and/or naming another store. */
static void make_stub_variant(fx *f, int i, const char *path, int other_store, int other_key)
{
    ddp_identity other;
    assert_int_equal(ddp_identity_generate(&other), S_OK);
    ddp_stub s;
    assert_int_equal(ddp_stub_decode(f->files[i].stub, DDP_STUB_SIZE, f->id.key, &s), S_OK);
    if (other_store) memcpy(s.store_id, other.store_id, DDP_STORE_ID_SIZE);
    uint8_t out[DDP_STUB_SIZE];
    ddp_stub_encode(&s, other_key ? other.key : f->id.key, out);
    tu_write_file(path, out, sizeof out);
}

/* ---- checks on the target ---- */

static void assert_restored(const fx *f, int i)
{
    const fx_file *ff = &f->files[i];
    size_t n = 0;
    uint8_t *d = tu_read_file(ff->path, &n);
    assert_non_null(d);
    assert_int_equal(n, ff->len);
    assert_memory_equal(d, ff->data, ff->len ? ff->len : 0);
    free(d);
    struct stat st;
    assert_int_equal(lstat(ff->path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, ff->mode);
    assert_int_equal(st.st_mtim.tv_sec, ff->mtime.tv_sec);
    assert_int_equal(st.st_mtim.tv_nsec, ff->mtime.tv_nsec);
}

/* R9: a failed file is its stub, byte for byte, with its mode and mtime. */
static void assert_stub_intact(const fx *f, int i)
{
    const fx_file *ff = &f->files[i];
    size_t n = 0;
    uint8_t *d = tu_read_file(ff->path, &n);
    assert_non_null(d);
    assert_int_equal(n, DDP_STUB_SIZE);
    assert_memory_equal(d, ff->stub, DDP_STUB_SIZE);
    free(d);
    struct stat st;
    assert_int_equal(lstat(ff->path, &st), 0);
    assert_int_equal(st.st_mode & 07777, ff->mode);
    assert_int_equal(st.st_mtim.tv_sec, ff->mtime.tv_sec);
    assert_int_equal(st.st_mtim.tv_nsec, ff->mtime.tv_nsec);
}

/* ---- read plans ---- */

static DEDUP_CONTAINER_EXTENT *plan_alloc(size_t n)
{
    DEDUP_CONTAINER_EXTENT *p = malloc((n ? n : 1) * sizeof *p);
    assert_non_null(p);
    return p;
}

/* Every container [0, INT64_MAX), in list order. */
static void plan_whole(rstore *s, int call, ULONG n, BSTR *paths, ULONG *np, DEDUP_CONTAINER_EXTENT **plan)
{
    (void)s; (void)call; (void)paths;
    DEDUP_CONTAINER_EXTENT *p = plan_alloc(n);
    for (ULONG i = 0; i < n; i++) p[i] = (DEDUP_CONTAINER_EXTENT){ i, 0, INT64_MAX };
    *np = n;
    *plan = n ? p : (free(p), NULL);
}

/* Containers in reverse, each in s->plan_arg pieces (last to end), pieces in reverse. */
static void plan_pieces_reversed(rstore *s, int call, ULONG n, BSTR *paths, ULONG *np, DEDUP_CONTAINER_EXTENT **plan)
{
    (void)call;
    ULONG k = (ULONG)s->plan_arg;
    DEDUP_CONTAINER_EXTENT *p = plan_alloc((size_t)n * k);
    ULONG m = 0;
    for (ULONG i = n; i-- > 0;) {
        int64_t size = rs_file_size(s, paths[i]);
        for (ULONG j = k; j-- > 0;) {
            int64_t a = size * j / k, b = size * (j + 1) / k;
            p[m++] = (DEDUP_CONTAINER_EXTENT){ i, a, j + 1 == k ? INT64_MAX : b - a };
        }
    }
    *np = m;
    *plan = p;
}

/* Overlapping extents: [0, 2/3) and [1/3, end) of every container. */
static void plan_overlapping(rstore *s, int call, ULONG n, BSTR *paths, ULONG *np, DEDUP_CONTAINER_EXTENT **plan)
{
    (void)call;
    DEDUP_CONTAINER_EXTENT *p = plan_alloc((size_t)n * 2);
    for (ULONG i = 0; i < n; i++) {
        int64_t size = rs_file_size(s, paths[i]);
        p[2 * i] = (DEDUP_CONTAINER_EXTENT){ i, 0, size * 2 / 3 + 1 };
        p[2 * i + 1] = (DEDUP_CONTAINER_EXTENT){ i, size / 3, INT64_MAX };
    }
    *np = 2 * n;
    *plan = p;
}

/* First a 2000-byte hole in the middle of every container, then every
 * container whole: the bytes on both sides of the hole are needed and
 * within 4 KiB of each other, but joining them would read the hole twice. */
static void plan_hole_first(rstore *s, int call, ULONG n, BSTR *paths, ULONG *np, DEDUP_CONTAINER_EXTENT **plan)
{
    (void)call;
    DEDUP_CONTAINER_EXTENT *p = plan_alloc((size_t)n * 2);
    for (ULONG i = 0; i < n; i++) {
        int64_t size = rs_file_size(s, paths[i]);
        p[i] = (DEDUP_CONTAINER_EXTENT){ i, size / 2, 2000 };
        p[n + i] = (DEDUP_CONTAINER_EXTENT){ i, 0, INT64_MAX };
    }
    *np = 2 * n;
    *plan = p;
}

/* Only the first half of the first container: the rest is read after the plan. */
static void plan_partial(rstore *s, int call, ULONG n, BSTR *paths, ULONG *np, DEDUP_CONTAINER_EXTENT **plan)
{
    (void)call;
    if (n == 0) return;
    DEDUP_CONTAINER_EXTENT *p = plan_alloc(1);
    p[0] = (DEDUP_CONTAINER_EXTENT){ 0, 0, rs_file_size(s, paths[0]) / 2 + 1 };
    *np = 1;
    *plan = p;
}

/* A valid plan with one bad entry in the call numbered s->plan_arg / 10;
 * kind of badness s->plan_arg % 10: 1 index, 2 negative offset, 3 zero
 * length, 4 negative length. */
static void plan_bad(rstore *s, int call, ULONG n, BSTR *paths, ULONG *np, DEDUP_CONTAINER_EXTENT **plan)
{
    (void)paths;
    if (call != s->plan_arg / 10) return;
    DEDUP_CONTAINER_EXTENT *p = plan_alloc((size_t)n + 1);
    for (ULONG i = 0; i < n; i++) p[i] = (DEDUP_CONTAINER_EXTENT){ i, 0, INT64_MAX };
    DEDUP_CONTAINER_EXTENT bad = { 0, 0, INT64_MAX };
    switch (s->plan_arg % 10) {
    case 1: bad.ContainerIndex = n; break;
    case 2: bad.StartOffset = -1; break;
    case 3: bad.Length = 0; break;
    default: bad.Length = -5; break;
    }
    p[n] = bad;
    *np = n + 1;
    *plan = p;
}

/* ---- calling RestoreFiles through the COM object ---- */

static HRESULT restore(char **paths, ULONG n, rstore *s, HRESULT *results)
{
    IDedupBackupSupport *bs = NULL;
    assert_int_equal(DedupCreateBackupSupport(&bs), S_OK);
    HRESULT hr = IDedupBackupSupport_RestoreFiles(bs, n, paths, s ? &s->iface : NULL, DEDUP_RECONSTRUCT_UNOPTIMIZED,
                                                  results);
    assert_int_equal(IDedupBackupSupport_Release(bs), 0);
    return hr;
}

/* A fixture with a few files over several containers: empty, tiny, text
 * (zstd), random (raw) in several data containers and two stream containers. */
static fx *fx_standard(void)
{
    fx *f = fx_new();
    f->data_limit = 300 * KiB;
    f->level = 3;
    fx_add_random(f, "empty", 0, 1, 64 * KiB);
    fx_add_random(f, "tiny", 1, 2, 64 * KiB);
    fx_add_text(f, "text.txt", 700 * KiB, 64 * KiB);
    fx_container(f, DDP_KIND_STREAM);
    fx_add_random(f, "random.bin", 1 * MiB + 12345, 3, 64 * KiB);
    fx_add_random(f, "odd.bin", 200 * KiB + 7, 4, 100 * KiB);
    fx_flush(f);
    return f;
}

/* ======================================================================
 * The COM object
 * ====================================================================== */

static void test_com_object(void **state)
{
    (void)state;
    assert_int_equal(DedupCreateBackupSupport(NULL), E_POINTER);
    static const IID unknown = { 0x00000000, 0x0000, 0x0000, { 0xC0, 0, 0, 0, 0, 0, 0, 0x46 } };
    assert_true(IsEqualIID(&IID_IUnknown, &unknown));
    assert_int_equal(IID_IDedupBackupSupport.Data1, 0xC719D963u);
    assert_int_equal(IID_IDedupReadFileCallback.Data1, 0x7BACC67Au);
    assert_int_equal(CLSID_DedupBackupSupport.Data1, 0x73D6B2ADu);
    assert_int_equal(CLSID_DedupBackupSupport.Data4[7], 0xDD);

    IDedupBackupSupport *bs = NULL;
    assert_int_equal(DedupCreateBackupSupport(&bs), S_OK);
    assert_non_null(bs);
    void *p = NULL;
    assert_int_equal(IDedupBackupSupport_QueryInterface(bs, &IID_IUnknown, &p), S_OK);
    assert_ptr_equal(p, bs);
    p = NULL;
    assert_int_equal(IDedupBackupSupport_QueryInterface(bs, &IID_IDedupBackupSupport, &p), S_OK);
    assert_ptr_equal(p, bs);
    p = (void *)bs;
    assert_int_equal(IDedupBackupSupport_QueryInterface(bs, &IID_IDedupReadFileCallback, &p), E_NOINTERFACE);
    assert_null(p);
    assert_int_equal(IDedupBackupSupport_QueryInterface(bs, &CLSID_DedupBackupSupport, &p), E_NOINTERFACE);
    assert_int_equal(IDedupBackupSupport_QueryInterface(bs, &IID_IUnknown, NULL), E_POINTER);
    assert_int_equal(IDedupBackupSupport_AddRef(bs), 4);
    assert_int_equal(IDedupBackupSupport_Release(bs), 3);
    assert_int_equal(IDedupBackupSupport_Release(bs), 2);
    assert_int_equal(IDedupBackupSupport_Release(bs), 1);
    assert_int_equal(IDedupBackupSupport_Release(bs), 0);
}

/* ======================================================================
 * R1, R2
 * ====================================================================== */

static void test_r1_invalid_arguments(void **state)
{
    (void)state;
    fx *f = fx_new();
    fx_add_random(f, "a", 1000, 1, 64 * KiB);
    fx_flush(f);
    rstore s;
    rs_init(&s, f->backup, 0);
    IDedupBackupSupport *bs = NULL;
    assert_int_equal(DedupCreateBackupSupport(&bs), S_OK);

    char **many = calloc(10001, sizeof *many);
    assert_non_null(many);
    for (int i = 0; i < 10001; i++) many[i] = f->files[0].path;
    HRESULT res[2] = { 77, 77 };
    assert_int_equal(IDedupBackupSupport_RestoreFiles(bs, 10001, many, &s.iface, DEDUP_RECONSTRUCT_UNOPTIMIZED, NULL),
                     E_INVALIDARG);
    assert_int_equal(IDedupBackupSupport_RestoreFiles(bs, 1, many, NULL, DEDUP_RECONSTRUCT_UNOPTIMIZED, res),
                     E_INVALIDARG);
    assert_int_equal(IDedupBackupSupport_RestoreFiles(bs, 1, many, &s.iface, DEDUP_RECONSTRUCT_OPTIMIZED, res),
                     E_INVALIDARG);
    assert_int_equal(IDedupBackupSupport_RestoreFiles(bs, 1, many, &s.iface, 0, res), E_INVALIDARG);
    assert_int_equal(IDedupBackupSupport_RestoreFiles(bs, 1, many, &s.iface, 3, res), E_INVALIDARG);
    assert_int_equal(IDedupBackupSupport_RestoreFiles(bs, 1, NULL, &s.iface, DEDUP_RECONSTRUCT_UNOPTIMIZED, res),
                     E_INVALIDARG);
    assert_int_equal(IDedupBackupSupport_RestoreFiles(bs, 0, many, NULL, DEDUP_RECONSTRUCT_UNOPTIMIZED, res),
                     E_INVALIDARG);
    /* No files: S_OK, nothing asked of the store. */
    assert_int_equal(IDedupBackupSupport_RestoreFiles(bs, 0, NULL, &s.iface, DEDUP_RECONSTRUCT_UNOPTIMIZED, res), S_OK);
    assert_int_equal(IDedupBackupSupport_RestoreFiles(bs, 0, many, &s.iface, DEDUP_RECONSTRUCT_UNOPTIMIZED, NULL),
                     S_OK);
    assert_int_equal(s.nev, 0);
    assert_int_equal(res[0], 77); /* refused calls leave FileResults alone */
    assert_stub_intact(f, 0);
    /* ddp_restore_plan_list refuses the same. */
    assert_int_equal(ddp_restore_plan_list(10001, many, &s.iface, NULL, NULL, NULL), E_INVALIDARG);
    assert_int_equal(s.nev, 0);
    free(many);
    IDedupBackupSupport_Release(bs);
    rs_free(&s);
    fx_free(f);
}

/* Restore everything of the standard fixture, with and without FileResults. */
static void test_restore_all_and_r2(void **state)
{
    (void)state;
    fx *f = fx_standard();
    char **paths = fx_paths(f);
    rstore s;
    rs_init(&s, f->backup, 0);
    HRESULT res[8];
    for (int i = 0; i < 8; i++) res[i] = 77;
    assert_int_equal(restore(paths, (ULONG)f->nfiles, &s, res), S_OK);
    assert_string_equal(ddp_error_detail(), "");
    for (int i = 0; i < f->nfiles; i++) {
        assert_int_equal(res[i], S_OK);
        assert_restored(f, i);
    }
    assert_int_equal(res[f->nfiles], 77);
    tu_assert_no_temps(f->target);
    rs_check_sequence(&s, 2);
    /* Stored bytes of data: coalesced into few reads, none over 4 MiB. */
    assert_true(rs_count(&s, RS_READ, "/Data/") <= 6);
    assert_int_equal(rs_count(&s, RS_READ, "/Settings/identity"), 1);
    assert_int_equal(rs_count(&s, RS_READ, "/catalog"), 2); /* head, then the rest */

    /* R2: FileResults NULL. */
    fx_restub(f);
    rs_clear(&s);
    assert_int_equal(restore(paths, (ULONG)f->nfiles, &s, NULL), S_OK);
    for (int i = 0; i < f->nfiles; i++) assert_restored(f, i);
    rs_check_sequence(&s, 2);

    /* Restoring a restored file: it is not a stub any more. */
    rs_clear(&s);
    assert_int_equal(restore(paths, (ULONG)f->nfiles, &s, res), S_OK);
    for (int i = 0; i < f->nfiles; i++) {
        /* The empty file and the 1-byte file are too short to begin like a stub. */
        assert_int_equal(res[i], S_FALSE);
    }
    assert_int_equal(s.nev, 0);
    free(paths);
    rs_free(&s);
    fx_free(f);
}

/* ======================================================================
 * R3: the kinds of path
 * ====================================================================== */

static void test_r3_kinds_of_path(void **state)
{
    (void)state;
    fx *f = fx_new();
    fx_add_random(f, "good", 150 * KiB, 9, 64 * KiB);
    fx_flush(f);
    char *p_missing = tu_xprintf("%s/missing", f->target);
    char *p_missing_dir = tu_xprintf("%s/nodir/missing", f->target);
    char *p_regular = tu_xprintf("%s/regular", f->target);
    char *p_short = tu_xprintf("%s/short", f->target);
    char *p_dir = tu_xprintf("%s/dir", f->target);
    char *p_link = tu_xprintf("%s/link", f->target);
    char *p_trunc = tu_xprintf("%s/truncated-stub", f->target);
    char *p_long = tu_xprintf("%s/long-stub", f->target);
    char *p_badver = tu_xprintf("%s/badversion-stub", f->target);
    char *p_forged = tu_xprintf("%s/forged-stub", f->target);
    char *p_foreign = tu_xprintf("%s/foreign-stub", f->target);
    char *p_lookalike = tu_xprintf("%s/lookalike", f->target);

    uint8_t junk[5000];
    tu_fill_random(junk, sizeof junk, 5);
    tu_write_file(p_regular, junk, sizeof junk);
    tu_write_file(p_short, "hello", 5);
    tu_write_file(p_lookalike, junk, DDP_STUB_SIZE); /* 232 bytes that are no stub */
    assert_int_equal(mkdir(p_dir, 0755), 0);
    assert_int_equal(symlink(f->files[0].path, p_link), 0);
    tu_write_file(p_trunc, f->files[0].stub, 200);
    uint8_t longer[DDP_STUB_SIZE + 10];
    memcpy(longer, f->files[0].stub, DDP_STUB_SIZE);
    memset(longer + DDP_STUB_SIZE, 0, 10);
    tu_write_file(p_long, longer, sizeof longer);
    uint8_t badver[DDP_STUB_SIZE];
    memcpy(badver, f->files[0].stub, DDP_STUB_SIZE);
    badver[88] = 9;
    tu_write_file(p_badver, badver, sizeof badver);
    make_stub_variant(f, 0, p_forged, 0, 1);
    make_stub_variant(f, 0, p_foreign, 1, 1);

    char *paths[] = { p_missing, p_missing_dir, p_regular, p_short, p_dir, p_link, p_trunc, p_long,
                      p_badver, p_forged, p_foreign, p_lookalike, f->files[0].path };
    const HRESULT want[] = { DDP_E_NOT_FOUND, DDP_E_NOT_FOUND, S_FALSE, S_FALSE, S_FALSE, S_FALSE,
                             DDP_E_INVALID_DATA, DDP_E_INVALID_DATA, DDP_E_INVALID_DATA, DDP_E_INVALID_DATA,
                             DDP_E_NOT_FOUND, S_FALSE, S_OK };
    const ULONG n = sizeof paths / sizeof paths[0];
    HRESULT res[sizeof paths / sizeof paths[0]];
    rstore s;
    rs_init(&s, f->backup, 0);
    assert_int_equal(restore(paths, n, &s, res), DDP_E_JOB_COMPLETED_PARTIAL_SUCCESS);
    for (ULONG i = 0; i < n; i++) {
        if (res[i] != want[i]) fprintf(stderr, "path %s: 0x%08X, expected 0x%08X\n", paths[i], res[i], want[i]);
        assert_int_equal(res[i], want[i]);
    }
    /* The detail names the first failed file. */
    assert_non_null(strstr(ddp_error_detail(), p_missing));
    rs_check_sequence(&s, 2);
    assert_restored(f, 0);
    /* The symlink was not followed: it is still a link, to the (now restored) file. */
    struct stat st;
    assert_int_equal(lstat(p_link, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    /* Ordinary files untouched. */
    size_t n2;
    uint8_t *d = tu_read_file(p_regular, &n2);
    assert_int_equal(n2, sizeof junk);
    assert_memory_equal(d, junk, sizeof junk);
    free(d);
    d = tu_read_file(p_forged, &n2);
    assert_int_equal(n2, DDP_STUB_SIZE);
    free(d);
    tu_assert_no_temps(f->target);

    /* Only a symlink to a stub: S_FALSE, no store access, stub untouched. */
    fx_restub(f);
    rs_clear(&s);
    char *only_link[] = { p_link };
    assert_int_equal(restore(only_link, 1, &s, res), S_OK);
    assert_int_equal(res[0], S_FALSE);
    assert_int_equal(s.nev, 0);
    assert_stub_intact(f, 0);

    /* Only bad stubs: the first failure, in order; no OrderContainersRestore. */
    rs_clear(&s);
    char *bad[] = { p_regular, p_forged, p_missing, p_foreign };
    assert_int_equal(restore(bad, 4, &s, res), DDP_E_INVALID_DATA);
    assert_int_equal(res[0], S_FALSE);
    assert_int_equal(res[1], DDP_E_INVALID_DATA);
    assert_int_equal(res[2], DDP_E_NOT_FOUND);
    assert_int_equal(res[3], DDP_E_NOT_FOUND);
    assert_int_equal(s.orders, 0);
    assert_non_null(strstr(ddp_error_detail(), p_forged));

    char *all[] = { p_missing, p_missing_dir, p_regular, p_short, p_dir, p_link, p_trunc, p_long,
                    p_badver, p_forged, p_foreign, p_lookalike };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
    rs_free(&s);
    fx_free(f);
}

/* Two files: A in data container 1, B in data container 2; C shares B's
 * first chunk and has its own in container 2 as well. */
static fx *fx_two_containers(void)
{
    fx *f = fx_new();
    fx_add_random(f, "A", 200 * KiB, 21, 64 * KiB);
    fx_container(f, DDP_KIND_DATA);
    uint8_t *b = malloc(300 * KiB);
    assert_non_null(b);
    tu_fill_random(b, 300 * KiB, 22);
    fx_add(f, "B", b, 300 * KiB, 64 * KiB);
    tu_fill_random(b + 64 * KiB, 100 * KiB, 23);
    fx_add(f, "C", b, 164 * KiB, 64 * KiB);
    free(b);
    fx_flush(f);
    return f;
}

static void test_r3_identity_and_catalog(void **state)
{
    (void)state;
    fx *f = fx_two_containers();
    char **paths = fx_paths(f);
    rstore s;
    rs_init(&s, f->backup, 0);
    HRESULT res[3];

    /* The backup has no identity: it does not hold the store. */
    char *idp = tu_xprintf("%s/.ddp/Settings/identity", f->backup);
    char *idp2 = tu_xprintf("%s.away", idp);
    assert_int_equal(rename(idp, idp2), 0);
    assert_int_equal(restore(paths, 3, &s, res), DDP_E_NOT_FOUND);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(res[i], DDP_E_NOT_FOUND);
        assert_stub_intact(f, i);
    }
    assert_int_equal(s.orders, 0);
    assert_int_equal(rename(idp2, idp), 0);

    /* A damaged identity. */
    rs_clear(&s);
    uint8_t idb[DDP_IDENTITY_SIZE];
    ddp_identity_encode(&f->id, idb);
    idb[40] ^= 1;
    tu_write_file(idp, idb, sizeof idb);
    assert_int_equal(restore(paths, 3, &s, res), DDP_E_INVALID_DATA);
    assert_int_equal(res[2], DDP_E_INVALID_DATA);
    fx_flush(f);

    /* The store fails the identity read: its HRESULT. */
    rs_clear(&s);
    s.fail_sub = "/identity";
    s.fail_hr = E_FAIL;
    assert_int_equal(restore(paths, 3, &s, res), E_FAIL);
    assert_int_equal(res[0], E_FAIL);
    s.fail_sub = NULL;

    /* No catalog: the store is not in the backup. The stubs are valid, so
     * OrderContainersRestore is still called twice (with no containers). */
    rs_clear(&s);
    char *catp = tu_xprintf("%s/catalog", f->store_dir);
    assert_int_equal(unlink(catp), 0);
    assert_int_equal(restore(paths, 3, &s, res), DDP_E_NOT_FOUND);
    assert_int_equal(res[1], DDP_E_NOT_FOUND);
    rs_check_sequence(&s, 2);
    for (size_t i = 0; i < s.nev; i++)
        if (s.evs[i].type == RS_ORDER) assert_int_equal(s.evs[i].n, 0);
    assert_int_equal(s.cont_reads, 0);
    /* A catalog read that fails with E_FAIL. */
    fx_flush(f);
    rs_clear(&s);
    s.fail_sub = "/catalog";
    s.fail_hr = E_FAIL;
    assert_int_equal(restore(paths, 3, &s, res), E_FAIL);
    s.fail_sub = NULL;
    for (int i = 0; i < 3; i++) assert_stub_intact(f, i);
    tu_assert_no_temps(f->target);

    free(catp);
    free(idp);
    free(idp2);
    free(paths);
    rs_free(&s);
    fx_free(f);
}

static void test_r3_missing_containers(void **state)
{
    (void)state;
    fx *f = fx_two_containers();
    char **paths = fx_paths(f);
    rstore s;
    rs_init(&s, f->backup, 0);
    HRESULT res[3];
    char *c2 = fx_cont_path(f, DDP_KIND_DATA, 2);
    char *c2away = tu_xprintf("%s.away", c2);
    assert_int_equal(rename(c2, c2away), 0);
    assert_int_equal(restore(paths, 3, &s, res), DDP_E_JOB_COMPLETED_PARTIAL_SUCCESS);
    assert_int_equal(res[0], S_OK);
    assert_int_equal(res[1], DDP_E_PATH_NOT_FOUND);
    assert_int_equal(res[2], DDP_E_PATH_NOT_FOUND);
    assert_restored(f, 0);
    assert_stub_intact(f, 1);
    assert_stub_intact(f, 2);
    tu_assert_no_temps(f->target);
    rs_check_sequence(&s, 2);
    /* The missing container was asked for once, then given up. */
    assert_int_equal(rs_count(&s, RS_READ, "/Data/00000002"), 1);
    assert_non_null(strstr(ddp_error_detail(), f->files[1].path));
    assert_int_equal(rename(c2away, c2), 0);

    /* The stream-map container missing: every file fails, PATH_NOT_FOUND. */
    fx_restub(f);
    rs_clear(&s);
    char *s1 = fx_cont_path(f, DDP_KIND_STREAM, 1);
    assert_int_equal(unlink(s1), 0);
    assert_int_equal(restore(paths, 3, &s, res), DDP_E_PATH_NOT_FOUND);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(res[i], DDP_E_PATH_NOT_FOUND);
        assert_stub_intact(f, i);
    }
    rs_check_sequence(&s, 2); /* the second call names no container */
    assert_int_equal(rs_count(&s, RS_READ, "/Data/"), 0);
    /* The store answers ERROR_PATH_NOT_FOUND: the same. */
    fx_flush(f);
    rs_clear(&s);
    s.fail_sub = "/Data/00000001";
    s.fail_hr = HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND);
    assert_int_equal(restore(paths, 3, &s, res), DDP_E_JOB_COMPLETED_PARTIAL_SUCCESS);
    assert_int_equal(res[0], DDP_E_PATH_NOT_FOUND);
    assert_int_equal(res[1], S_OK);
    assert_int_equal(res[2], S_OK);
    assert_restored(f, 1);
    assert_restored(f, 2);
    free(s1);
    free(c2);
    free(c2away);
    free(paths);
    rs_free(&s);
    fx_free(f);
}

/* Modify byte `at` of data container `id` in the backup. */
static void poke(fx *f, uint32_t kind, uint32_t id, uint64_t at)
{
    char *p = fx_cont_path(f, kind, id);
    int fd = open(p, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, (off_t)at), 1);
    b ^= 0x5A;
    assert_int_equal(pwrite(fd, &b, 1, (off_t)at), 1);
    close(fd);
    free(p);
}

static void test_r3_corruption(void **state)
{
    (void)state;
    fx *f = fx_two_containers();
    char **paths = fx_paths(f);
    rstore s;
    rs_init(&s, f->backup, 0);
    HRESULT res[3];

    /* A byte of B's last chunk (C does not use it). */
    const ddp_chunk_loc *l = &f->files[1].map.entries[4].loc;
    poke(f, DDP_KIND_DATA, 2, l->offset + DDP_RECORD_HEADER_SIZE + 100);
    assert_int_equal(restore(paths, 3, &s, res), DDP_E_JOB_COMPLETED_PARTIAL_SUCCESS);
    assert_int_equal(res[0], S_OK);
    assert_int_equal(res[1], DDP_E_FILE_CORRUPT);
    assert_int_equal(res[2], S_OK);
    assert_stub_intact(f, 1);
    assert_restored(f, 2);
    rs_check_sequence(&s, 2);
    fx_flush(f);

    /* A byte of the chunk B and C share: both fail. */
    fx_restub(f);
    rs_clear(&s);
    l = &f->files[1].map.entries[0].loc;
    poke(f, DDP_KIND_DATA, 2, l->offset + DDP_RECORD_HEADER_SIZE + 5);
    assert_int_equal(restore(paths, 3, &s, res), DDP_E_JOB_COMPLETED_PARTIAL_SUCCESS);
    assert_int_equal(res[1], DDP_E_FILE_CORRUPT);
    assert_int_equal(res[2], DDP_E_FILE_CORRUPT);
    fx_flush(f);

    /* A byte of a record header. */
    fx_restub(f);
    rs_clear(&s);
    poke(f, DDP_KIND_DATA, 1, f->files[0].map.entries[1].loc.offset + 20);
    assert_int_equal(restore(paths, 3, &s, res), DDP_E_JOB_COMPLETED_PARTIAL_SUCCESS);
    assert_int_equal(res[0], DDP_E_FILE_CORRUPT);
    fx_flush(f);

    /* A byte of a stream map: FILE_CORRUPT for that file. */
    fx_restub(f);
    rs_clear(&s);
    poke(f, DDP_KIND_STREAM, 1, f->files[2].smap_off + DDP_RECORD_HEADER_SIZE + 60);
    assert_int_equal(restore(paths, 3, &s, res), DDP_E_JOB_COMPLETED_PARTIAL_SUCCESS);
    assert_int_equal(res[0], S_OK);
    assert_int_equal(res[1], S_OK);
    assert_int_equal(res[2], DDP_E_FILE_CORRUPT);
    assert_stub_intact(f, 2);
    fx_flush(f);

    /* A truncated container: B's last chunk is cut off. */
    fx_restub(f);
    rs_clear(&s);
    char *c2 = fx_cont_path(f, DDP_KIND_DATA, 2);
    l = &f->files[1].map.entries[4].loc;
    assert_int_equal(truncate(c2, (off_t)(l->offset + 100)), 0);
    assert_int_equal(restore(paths, 3, &s, res), DDP_E_JOB_COMPLETED_PARTIAL_SUCCESS);
    assert_int_equal(res[0], S_OK);
    assert_int_equal(res[1], DDP_E_FILE_CORRUPT);
    assert_stub_intact(f, 1);
    rs_check_sequence(&s, 2);
    fx_flush(f);

    /* A short read from the store. */
    fx_restub(f);
    rs_clear(&s);
    s.short_sub = "/Data/00000001";
    assert_int_equal(restore(paths, 3, &s, res), DDP_E_JOB_COMPLETED_PARTIAL_SUCCESS);
    assert_int_equal(res[0], DDP_E_FILE_CORRUPT);
    assert_int_equal(res[1], S_OK);
    assert_int_equal(res[2], S_OK);
    assert_stub_intact(f, 0);
    s.short_sub = NULL;

    /* Any other failure of the store: its HRESULT, for the files that needed the read. */
    fx_restub(f);
    rs_clear(&s);
    s.fail_sub = "/Data/00000002";
    s.fail_hr = E_FAIL;
    assert_int_equal(restore(paths, 3, &s, res), DDP_E_JOB_COMPLETED_PARTIAL_SUCCESS);
    assert_int_equal(res[0], S_OK);
    assert_int_equal(res[1], E_FAIL);
    assert_int_equal(res[2], E_FAIL);
    assert_stub_intact(f, 1);
    assert_stub_intact(f, 2);
    tu_assert_no_temps(f->target);
    rs_check_sequence(&s, 2);
    /* Everyone fails: the first failure. */
    fx_restub(f);
    rs_clear(&s);
    s.fail_sub = "/Stream/";
    s.fail_hr = HRESULT_FROM_WIN32(ERROR_IO_DEVICE);
    assert_int_equal(restore(paths, 3, &s, res), HRESULT_FROM_WIN32(ERROR_IO_DEVICE));
    s.fail_sub = NULL;
    free(c2);
    free(paths);
    rs_free(&s);
    fx_free(f);
}

/* Metadata that authenticates but does not add up. */
static void test_r3_inconsistent_metadata(void **state)
{
    (void)state;
    fx *f = fx_two_containers();
    /* E: its stream map and stub agree on a whole-file hash that its chunks
     * do not give: caught when the file is complete, before it replaces the stub. */
    f->bad_filehash = 1;
    int e = fx_add_random(f, "E", 100 * KiB, 61, 64 * KiB);
    f->bad_filehash = 0;
    fx_flush(f);
    /* A stub of A (signed with the right key) that points at B's stream map. */
    char *swapped = tu_xprintf("%s/swapped", f->target);
    ddp_stub st;
    assert_int_equal(ddp_stub_decode(f->files[0].stub, DDP_STUB_SIZE, f->id.key, &st), S_OK);
    st.stream_offset = f->files[1].smap_off;
    st.streammap_stored_len = f->files[1].smap_stored;
    uint8_t out[DDP_STUB_SIZE];
    ddp_stub_encode(&st, f->id.key, out);
    tu_write_file(swapped, out, sizeof out);
    /* A stub that names a stream-map container the catalog does not have. */
    char *nowhere = tu_xprintf("%s/nowhere", f->target);
    st.stream_container = 99;
    ddp_stub_encode(&st, f->id.key, out);
    tu_write_file(nowhere, out, sizeof out);

    char *paths[] = { f->files[e].path, swapped, nowhere, f->files[2].path };
    rstore s;
    rs_init(&s, f->backup, 0);
    HRESULT res[4];
    assert_int_equal(restore(paths, 4, &s, res), DDP_E_JOB_COMPLETED_PARTIAL_SUCCESS);
    assert_int_equal(res[0], DDP_E_FILE_CORRUPT);
    assert_int_equal(res[1], DDP_E_FILE_CORRUPT);
    assert_int_equal(res[2], DDP_E_PATH_NOT_FOUND);
    assert_int_equal(res[3], S_OK);
    assert_stub_intact(f, e);
    assert_non_null(strstr(ddp_error_detail(), "whole-file hash"));
    size_t n;
    uint8_t *d = tu_read_file(swapped, &n);
    assert_int_equal(n, DDP_STUB_SIZE);
    free(d);
    tu_assert_no_temps(f->target);
    rs_check_sequence(&s, 2);
    free(swapped);
    free(nowhere);
    rs_free(&s);
    fx_free(f);
}

/* Run a restore of the two-container fixture as user nobody, in a child. */
static void test_r3_access_denied(void **state)
{
    (void)state;
    fx *f = fx_two_containers();
    char **paths = fx_paths(f);
    for (int i = 0; i < 3; i++) {
        f->files[i].mode = 0644;
        fx_write_stub(f, i);
    }
    assert_int_equal(chmod(f->root, 0755), 0);
    int as_root = geteuid() == 0;
    if (!as_root) assert_int_equal(chmod(f->target, 0555), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (as_root && (setgid(65534) != 0 || setuid(65534) != 0)) _exit(3);
        rstore s;
        rs_init(&s, f->backup, 0); /* the child _exits: nothing to free */
        HRESULT res[3] = { 0, 0, 0 };
        HRESULT hr = ddp_restore_files(3, paths, &s.iface, DEDUP_RECONSTRUCT_UNOPTIMIZED, res);
        int ok = hr == HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED);
        for (int i = 0; i < 3; i++) ok &= res[i] == HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED);
        /* Nothing asked of the data containers: the targets failed first. */
        ok &= rs_count(&s, RS_READ, "/Data/") == 0;
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    if (!as_root) assert_int_equal(chmod(f->target, 0755), 0);
    for (int i = 0; i < 3; i++) assert_stub_intact(f, i);
    tu_assert_no_temps(f->target);
    free(paths);
    fx_free(f);
}

/* Disk full while writing: HRESULT_FROM_WIN32(ERROR_DISK_FULL). */
static void test_r3_disk_full(void **state)
{
    (void)state;
    /* Does this program's pwrite() take the library's calls? */
    char *probe_dir = tu_mkdtemp();
    char *probe = tu_xprintf("%s/probe", probe_dir);
    int fd = open(probe, O_RDWR | O_CREAT, 0600);
    assert_true(fd >= 0);
    g_pwrite_enospc = 1;
    HRESULT probe_hr = ddp_pwrite_all(fd, "x", 1, 0, probe);
    g_pwrite_enospc = 0;
    close(fd);
    tu_rmrf(probe_dir);
    free(probe);
    free(probe_dir);
    if (probe_hr != HRESULT_FROM_WIN32(ERROR_DISK_FULL)) skip();

    fx *f = fx_two_containers();
    char **paths = fx_paths(f);
    rstore s;
    rs_init(&s, f->backup, 0);
    HRESULT res[3];
    g_pwrite_enospc = 1;
    HRESULT hr = restore(paths, 3, &s, res);
    g_pwrite_enospc = 0;
    assert_int_equal(hr, HRESULT_FROM_WIN32(ERROR_DISK_FULL));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(res[i], HRESULT_FROM_WIN32(ERROR_DISK_FULL));
        assert_stub_intact(f, i);
    }
    tu_assert_no_temps(f->target);
    assert_non_null(strstr(ddp_error_detail(), f->files[0].path));
    free(paths);
    rs_free(&s);
    fx_free(f);
}

/* ======================================================================
 * R4, R5, R6
 * ====================================================================== */

static void test_r4_overall_result(void **state)
{
    (void)state;
    fx *f = fx_two_containers();
    rstore s;
    rs_init(&s, f->backup, 0);
    HRESULT res[4];
    char *reg1 = tu_xprintf("%s/plain1", f->target), *reg2 = tu_xprintf("%s/plain2", f->target);
    char *missing = tu_xprintf("%s/missing", f->target);
    uint8_t junk[300];
    tu_fill_random(junk, sizeof junk, 1);
    tu_write_file(reg1, junk, sizeof junk);
    tu_write_file(reg2, junk, 100);

    /* Nothing to restore, nothing failed: S_OK, and no callback at all. */
    char *plain[] = { reg1, reg2 };
    assert_int_equal(restore(plain, 2, &s, res), S_OK);
    assert_int_equal(res[0], S_FALSE);
    assert_int_equal(res[1], S_FALSE);
    assert_int_equal(s.nev, 0);

    /* S_FALSE is not a failure. */
    rs_clear(&s);
    char *mix[] = { reg1, f->files[0].path };
    assert_int_equal(restore(mix, 2, &s, res), S_OK);
    assert_int_equal(res[0], S_FALSE);
    assert_int_equal(res[1], S_OK);
    assert_restored(f, 0);

    /* The first failure in FileFullPaths order, not in time: B's corruption
     * is found after the missing file, but B comes first. */
    fx_restub(f);
    rs_clear(&s);
    const ddp_chunk_loc *l = &f->files[1].map.entries[3].loc;
    poke(f, DDP_KIND_DATA, 2, l->offset + DDP_RECORD_HEADER_SIZE + 1);
    char *fails[] = { reg1, f->files[1].path, missing };
    assert_int_equal(restore(fails, 3, &s, res), DDP_E_FILE_CORRUPT);
    assert_int_equal(res[0], S_FALSE);
    assert_int_equal(res[1], DDP_E_FILE_CORRUPT);
    assert_int_equal(res[2], DDP_E_NOT_FOUND);
    assert_non_null(strstr(ddp_error_detail(), f->files[1].path));

    /* One restored, one failed: partial success. */
    rs_clear(&s);
    char *partial[] = { f->files[1].path, f->files[2].path };
    assert_int_equal(restore(partial, 2, &s, res), DDP_E_JOB_COMPLETED_PARTIAL_SUCCESS);
    assert_int_equal(res[0], DDP_E_FILE_CORRUPT);
    assert_int_equal(res[1], S_OK);
    fx_flush(f);

    /* The same file named twice (two spellings): restored once, both S_OK. */
    fx_restub(f);
    rs_clear(&s);
    char *again = tu_xprintf("%s/./%s", f->target, "B");
    char *twice[] = { f->files[1].path, again, f->files[1].path };
    assert_int_equal(restore(twice, 3, &s, res), S_OK);
    for (int i = 0; i < 3; i++) assert_int_equal(res[i], S_OK);
    assert_restored(f, 1);
    tu_assert_no_temps(f->target);
    free(again);
    free(reg1);
    free(reg2);
    free(missing);
    rs_free(&s);
    fx_free(f);
}

static void test_r5_two_orders(void **state)
{
    (void)state;
    fx *f = fx_new();
    f->data_limit = 150 * KiB;
    for (int i = 0; i < 6; i++) {
        char name[16];
        snprintf(name, sizeof name, "f%d", i);
        if (i == 3) fx_container(f, DDP_KIND_STREAM);
        fx_add_random(f, name, 100 * KiB + (size_t)i * 1000, (uint64_t)(i % 3) + 40, 32 * KiB); /* shared content */
    }
    fx_flush(f);
    char **paths = fx_paths(f);
    rstore s;
    rs_init(&s, f->backup, 0);
    HRESULT res[6];
    assert_int_equal(restore(paths, 6, &s, res), S_OK);
    rs_check_sequence(&s, 2);
    int k = 0;
    for (size_t i = 0; i < s.nev; i++) {
        if (s.evs[i].type != RS_ORDER) continue;
        if (k++ == 0) assert_int_equal(s.evs[i].n, 2);
        else assert_true(s.evs[i].n >= 2);
    }
    for (int i = 0; i < 6; i++) assert_restored(f, i);

    /* Every stream map bad: the data containers are still asked for, as an empty list. */
    fx_restub(f);
    rs_clear(&s);
    s.fail_sub = "/Stream/";
    s.fail_hr = E_FAIL;
    assert_int_equal(restore(paths, 6, &s, res), E_FAIL);
    rs_check_sequence(&s, 2);
    assert_int_equal(s.evs[s.nev - 1].type, RS_ORDER);
    assert_int_equal(s.evs[s.nev - 1].n, 0);
    s.fail_sub = NULL;

    /* OrderContainersRestore fails: that HRESULT for every file, the call ends. */
    for (int call = 1; call <= 2; call++) {
        fx_restub(f);
        rs_clear(&s);
        s.order_fail_call = call;
        s.order_hr = (HRESULT)0x80004004; /* E_ABORT */
        assert_int_equal(restore(paths, 6, &s, res), (HRESULT)0x80004004);
        for (int i = 0; i < 6; i++) {
            assert_int_equal(res[i], (HRESULT)0x80004004);
            assert_stub_intact(f, i);
        }
        assert_int_equal(s.orders, call);
        assert_int_equal(rs_count(&s, RS_READ, "/Data/"), 0);
        assert_int_equal(rs_count(&s, RS_READ, "/Stream/"), call == 1 ? 0 : 2);
        tu_assert_no_temps(f->target);
    }
    s.order_fail_call = 0;
    free(paths);
    rs_free(&s);
    fx_free(f);
}

static void test_r6_invalid_plans(void **state)
{
    (void)state;
    fx *f = fx_two_containers();
    char **paths = fx_paths(f);
    rstore s;
    rs_init(&s, f->backup, 0);
    s.plan = plan_bad;
    HRESULT res[3];
    for (int call = 1; call <= 2; call++) {
        for (int kind = 1; kind <= 4; kind++) {
            rs_clear(&s);
            s.plan_arg = call * 10 + kind;
            assert_int_equal(restore(paths, 3, &s, res), E_INVALIDARG);
            for (int i = 0; i < 3; i++) {
                assert_int_equal(res[i], E_INVALIDARG);
                assert_stub_intact(f, i);
            }
            /* The call ended there: no second order, no read after the bad plan. */
            assert_int_equal(s.orders, call);
            assert_int_equal(s.evs[s.nev - 1].type, RS_ORDER);
            assert_non_null(strstr(ddp_error_detail(), "plan"));
            tu_assert_no_temps(f->target);
        }
    }
    /* A file restored before the bad plan keeps its S_OK (an empty file needs
     * no data), the others get E_INVALIDARG. */
    int e = fx_add_random(f, "empty", 0, 1, 64 * KiB);
    fx_flush(f);
    char *with_empty[] = { f->files[0].path, f->files[e].path };
    rs_clear(&s);
    s.plan_arg = 21;
    assert_int_equal(restore(with_empty, 2, &s, res), DDP_E_JOB_COMPLETED_PARTIAL_SUCCESS);
    assert_int_equal(res[0], E_INVALIDARG);
    assert_int_equal(res[1], S_OK);
    assert_restored(f, e);
    assert_stub_intact(f, 0);
    free(paths);
    rs_free(&s);
    fx_free(f);
}

/* ======================================================================
 * R6/R7: plans of every shape
 * ====================================================================== */

static void run_plan(rs_plan_fn fn, int arg, const char *what)
{
    fx *f = fx_standard();
    char **paths = fx_paths(f);
    rstore s;
    rs_init(&s, f->backup, 0);
    s.plan = fn;
    s.plan_arg = arg;
    HRESULT res[8];
    HRESULT hr = restore(paths, (ULONG)f->nfiles, &s, res);
    if (hr != S_OK) fprintf(stderr, "plan %s: 0x%08X %s\n", what, hr, ddp_error_detail());
    assert_int_equal(hr, S_OK);
    for (int i = 0; i < f->nfiles; i++) assert_restored(f, i);
    rs_check_sequence(&s, 2);
    tu_assert_no_temps(f->target);
    free(paths);
    rs_free(&s);
    fx_free(f);
}

static void test_plans(void **state)
{
    (void)state;
    run_plan(plan_whole, 0, "whole containers, INT64_MAX");
    run_plan(plan_pieces_reversed, 1, "containers reversed");
    run_plan(plan_pieces_reversed, 3, "three pieces each, reversed");
    run_plan(plan_pieces_reversed, 7, "seven pieces each, reversed");
    run_plan(rs_plan_scrambled, 0, "64 KiB pieces, scrambled");
    run_plan(plan_overlapping, 0, "overlapping extents");
    run_plan(plan_partial, 0, "partial plan");
    run_plan(plan_hole_first, 0, "a hole first, then everything");
}

/* Plan details: several extents per container each previewed; bytes no
 * extent covers are read afterwards, with a preview of their own. */
static void test_plan_details(void **state)
{
    (void)state;
    fx *f = fx_standard();
    char **paths = fx_paths(f);
    rstore s;
    rs_init(&s, f->backup, 0);
    s.plan = plan_pieces_reversed;
    s.plan_arg = 4;
    HRESULT res[8];
    assert_int_equal(restore(paths, (ULONG)f->nfiles, &s, res), S_OK);
    rs_check_sequence(&s, 2);
    /* Data containers, reversed: the first data read is in the last container. */
    const char *first_data = NULL;
    for (size_t i = 0; i < s.nev && !first_data; i++)
        if (s.evs[i].type == RS_READ && strstr(s.evs[i].path, "/Data/")) first_data = s.evs[i].path;
    assert_non_null(first_data);
    char last[64];
    int ndata = 0;
    for (int i = 0; i < f->ncont; i++) ndata += f->conts[i].kind == DDP_KIND_DATA;
    snprintf(last, sizeof last, "/Data/%08X.", (unsigned)ndata);
    assert_non_null(strstr(first_data, last));
    /* Several previews for one container (one per piece with something needed). */
    char *c1 = fx_cont_bpath(f, DDP_KIND_DATA, 1);
    assert_true(rs_count(&s, RS_PREVIEW, c1) >= 2);
    free(c1);

    /* A partial plan: the first stream container's first half only. What the
     * plan leaves out is read after it, container by container. */
    fx_restub(f);
    rs_clear(&s);
    s.plan = plan_partial;
    assert_int_equal(restore(paths, (ULONG)f->nfiles, &s, res), S_OK);
    rs_check_sequence(&s, 2);
    for (int i = 0; i < f->nfiles; i++) assert_restored(f, i);
    free(paths);
    rs_free(&s);
    fx_free(f);
}

/* Records straddling extents: pieces cut at odd offsets, so almost every
 * extent boundary falls inside a record (an incremental backup's pieces). */
static void plan_odd_pieces(rstore *s, int call, ULONG n, BSTR *paths, ULONG *np, DEDUP_CONTAINER_EXTENT **plan)
{
    (void)call;
    size_t total = 0;
    for (ULONG i = 0; i < n; i++) total += (size_t)(rs_file_size(s, paths[i]) / 10007) + 1;
    DEDUP_CONTAINER_EXTENT *p = plan_alloc(total);
    size_t m = 0;
    for (ULONG i = n; i-- > 0;) {
        int64_t size = rs_file_size(s, paths[i]);
        /* Backwards through the container: every record arrives tail first. */
        for (int64_t a = (size / 10007) * 10007; a >= 0; a -= 10007)
            p[m++] = (DEDUP_CONTAINER_EXTENT){ i, a, a + 10007 >= size ? INT64_MAX : 10007 };
    }
    *np = (ULONG)m;
    *plan = p;
}

static void test_records_straddling_extents(void **state)
{
    (void)state;
    run_plan(plan_odd_pieces, 0, "odd pieces, backwards");
}

/* R7: no read over 4 MiB; a big run of needed bytes is cut into 4 MiB reads. */
static void test_r7_read_size(void **state)
{
    (void)state;
    fx *f = fx_new();
    fx_add_random(f, "big", 6 * MiB + 100, 77, 128 * KiB);
    fx_flush(f);
    char **paths = fx_paths(f);
    rstore s;
    rs_init(&s, f->backup, 0);
    HRESULT res[1];
    assert_int_equal(restore(paths, 1, &s, res), S_OK);
    assert_restored(f, 0);
    rs_check_sequence(&s, 2);
    assert_int_equal(rs_count(&s, RS_READ, "/Data/"), 2);
    for (size_t i = 0; i < s.nev; i++)
        if (s.evs[i].type == RS_READ && strstr(s.evs[i].path, "/Data/")) {
            assert_int_equal(s.evs[i].size, RS_READ_MAX);
            break;
        }
    free(paths);
    rs_free(&s);
    fx_free(f);
}

/* A chunk used by many files and several times in one file is read once
 * and written everywhere. */
static void test_shared_chunks(void **state)
{
    (void)state;
    fx *f = fx_new();
    uint8_t *x = malloc(64 * KiB), *buf = malloc(256 * KiB);
    assert_non_null(x);
    assert_non_null(buf);
    tu_fill_random(x, 64 * KiB, 100);
    /* rep = X X Y X */
    memcpy(buf, x, 64 * KiB);
    memcpy(buf + 64 * KiB, x, 64 * KiB);
    tu_fill_random(buf + 128 * KiB, 64 * KiB, 101);
    memcpy(buf + 192 * KiB, x, 64 * KiB);
    fx_add(f, "rep", buf, 256 * KiB, 64 * KiB);
    for (int i = 0; i < 9; i++) {
        char name[16];
        snprintf(name, sizeof name, "s%d", i);
        memcpy(buf, x, 64 * KiB);
        tu_fill_random(buf + 64 * KiB, 1000 + (size_t)i, 200 + (uint64_t)i);
        fx_add(f, name, buf, 64 * KiB + 1000 + (size_t)i, 64 * KiB);
    }
    fx_flush(f);
    char **paths = fx_paths(f);
    rstore s;
    rs_init(&s, f->backup, 0);
    HRESULT res[10];
    assert_int_equal(restore(paths, 10, &s, res), S_OK);
    for (int i = 0; i < 10; i++) assert_restored(f, i);
    rs_check_sequence(&s, 2); /* includes: no container byte twice */
    /* X's record: in exactly one read. */
    uint64_t xoff = f->files[0].map.entries[0].loc.offset;
    int covering = 0;
    for (size_t i = 0; i < s.nev; i++) {
        const rs_event *e = &s.evs[i];
        if (e->type == RS_READ && strstr(e->path, "/Data/") && (uint64_t)e->off <= xoff &&
            xoff < (uint64_t)e->off + e->size)
            covering++;
    }
    assert_int_equal(covering, 1);
    /* Data bytes read: each distinct chunk once. */
    uint64_t stored = 0;
    for (int i = 0; i < f->ncont; i++)
        if (f->conts[i].kind == DDP_KIND_DATA) stored += f->conts[i].len - DDP_CONTAINER_HEADER_SIZE;
    uint64_t data_read = 0;
    for (size_t i = 0; i < s.nev; i++)
        if (s.evs[i].type == RS_READ && strstr(s.evs[i].path, "/Data/")) data_read += s.evs[i].got;
    assert_int_equal(data_read, stored);
    free(x);
    free(buf);
    free(paths);
    rs_free(&s);
    fx_free(f);
}

/* ======================================================================
 * R8: one small file from a large store
 * ====================================================================== */

static void test_r8_small_from_large(void **state)
{
    (void)state;
    fx *f = fx_new();
    f->data_limit = 4 * MiB;
    for (int i = 0; i < 30; i++) {
        char name[16];
        snprintf(name, sizeof name, "big%d", i);
        if (i == 15) fx_add_random(f, "small", 10 * KiB, 999, 64 * KiB);
        fx_add_random(f, name, 512 * KiB, 500 + (uint64_t)i, 64 * KiB);
    }
    fx_flush(f);
    int small = 15;
    assert_non_null(strstr(f->files[small].path, "small"));
    rstore s;
    rs_init(&s, f->backup, 0);
    char *one[] = { f->files[small].path };
    HRESULT res[1];
    assert_int_equal(restore(one, 1, &s, res), S_OK);
    assert_restored(f, small);
    rs_check_sequence(&s, 2);
    uint64_t need = DDP_RECORD_HEADER_SIZE + f->files[small].smap_stored;
    for (uint32_t k = 0; k < f->files[small].map.count; k++)
        need += DDP_RECORD_HEADER_SIZE + f->files[small].map.entries[k].loc.stored_len;
    uint64_t meta = DDP_IDENTITY_SIZE + f->catalog_bytes;
    uint64_t store_size = 0;
    for (int i = 0; i < f->ncont; i++) store_size += f->conts[i].len;
    assert_true(store_size > 15 * MiB);
    assert_int_equal(s.meta_bytes, meta);
    assert_true((double)(s.cont_bytes + s.meta_bytes) < 1.1 * (double)need + (double)meta);
    rs_free(&s);
    fx_free(f);
}

/* ======================================================================
 * R9: what a restored file and a failed file look like
 * ====================================================================== */

static void touch_stub_hook(rstore *s, const char *path, int64_t off)
{
    (void)off;
    if (s->hook_done || !strstr(path, "/Data/")) return;
    s->hook_done = 1;
    const char *stub = s->hook;
    struct timespec t[2] = { { 1234567, 0 }, { 1234567, 0 } };
    assert_int_equal(utimensat(AT_FDCWD, stub, t, 0), 0);
}

static void test_r9_attributes_and_atomicity(void **state)
{
    (void)state;
    fx *f = fx_two_containers();
    f->files[0].mode = 0604;
    f->files[1].mode = 0750;
    f->files[2].mode = 0400;
    f->files[1].mtime.tv_nsec = 0;
    int root = geteuid() == 0;
    for (int i = 0; i < 3; i++) fx_write_stub(f, i);
    if (root) assert_int_equal(chown(f->files[1].path, 1234, 5678), 0);
    int have_xattr = setxattr(f->files[0].path, "user.ddp-test", "v1", 2, 0) == 0;
    char **paths = fx_paths(f);
    rstore s;
    rs_init(&s, f->backup, 0);
    HRESULT res[3];
    assert_int_equal(restore(paths, 3, &s, res), S_OK);
    for (int i = 0; i < 3; i++) assert_restored(f, i);
    struct stat st;
    if (root) {
        assert_int_equal(stat(f->files[1].path, &st), 0);
        assert_int_equal(st.st_uid, 1234);
        assert_int_equal(st.st_gid, 5678);
    }
    if (have_xattr) {
        char v[8];
        assert_int_equal(getxattr(f->files[0].path, "user.ddp-test", v, sizeof v), 2);
        assert_memory_equal(v, "v1", 2);
    }
    tu_assert_no_temps(f->target);

    /* A stub changed while its data was being read: left alone (as changed). */
    fx_restub(f);
    rs_clear(&s);
    s.on_read = touch_stub_hook;
    s.hook = f->files[1].path;
    assert_int_equal(restore(paths, 3, &s, res), DDP_E_JOB_COMPLETED_PARTIAL_SUCCESS);
    assert_int_equal(res[0], S_OK);
    assert_int_equal(res[1], DDP_E_FILE_IN_USE);
    assert_int_equal(res[2], S_OK);
    size_t n;
    uint8_t *d = tu_read_file(f->files[1].path, &n);
    assert_int_equal(n, DDP_STUB_SIZE);
    assert_memory_equal(d, f->files[1].stub, DDP_STUB_SIZE);
    free(d);
    assert_int_equal(stat(f->files[1].path, &st), 0);
    assert_int_equal(st.st_mtim.tv_sec, 1234567);
    tu_assert_no_temps(f->target);
    s.on_read = NULL;

    /* A failed file is exactly its stub again, ready for a retry that works. */
    fx_restub(f);
    rs_clear(&s);
    s.fail_sub = "/Data/00000002";
    s.fail_hr = E_FAIL;
    assert_int_equal(restore(paths, 3, &s, res), DDP_E_JOB_COMPLETED_PARTIAL_SUCCESS);
    assert_stub_intact(f, 1);
    assert_stub_intact(f, 2);
    s.fail_sub = NULL;
    rs_clear(&s);
    assert_int_equal(restore(paths + 1, 2, &s, res), S_OK);
    assert_restored(f, 1);
    assert_restored(f, 2);
    free(paths);
    rs_free(&s);
    fx_free(f);
}

/* ======================================================================
 * The 10,000-file limit
 * ====================================================================== */

static void test_ten_thousand_files(void **state)
{
    (void)state;
    enum { N = 10000 };
    fx *f = fx_new();
    /* Chunk A (shared by all) in data container 1, each file's own tail in
     * container 2: every file is open when A arrives, more than the
     * descriptors ddp keeps open, and finished when its tail arrives. */
    uint8_t a[1024];
    tu_fill_random(a, sizeof a, 1);
    uint8_t buf[1024 + 64];
    memcpy(buf, a, sizeof a);
    uint8_t hash[DDP_HASH_SIZE];
    fx_chunk(f, a, sizeof a, hash);
    fx_container(f, DDP_KIND_DATA);
    size_t cuts[2] = { 1024, 0 };
    for (int i = 0; i < N; i++) {
        char name[16];
        snprintf(name, sizeof name, "f%05d", i);
        size_t tail = 1 + (size_t)(i % 64);
        tu_fill_random(buf + 1024, tail, 10 + (uint64_t)i);
        cuts[1] = tail;
        fx_add_cuts(f, name, buf, 1024 + tail, cuts, 2, 0);
    }
    fx_flush(f);
    char **paths = fx_paths(f);
    rstore s;
    rs_init(&s, f->backup, 0);
    HRESULT *res = calloc(N + 1, sizeof *res);
    assert_non_null(res);

    /* 10,001: refused before any callback. */
    char **more = calloc(N + 1, sizeof *more);
    assert_non_null(more);
    memcpy(more, paths, N * sizeof *paths);
    more[N] = paths[0];
    assert_int_equal(restore(more, N + 1, &s, res), E_INVALIDARG);
    assert_int_equal(s.nev, 0);

    /* 10,000: all restored. */
    assert_int_equal(restore(paths, N, &s, res), S_OK);
    for (int i = 0; i < N; i++) assert_int_equal(res[i], S_OK);
    for (int i = 0; i < N; i += 97) assert_restored(f, i);
    assert_restored(f, N - 1);
    rs_check_sequence(&s, 2);
    tu_assert_no_temps(f->target);
    free(more);
    free(res);
    free(paths);
    rs_free(&s);
    fx_free(f);
}

/* ======================================================================
 * ddp_restore_plan_list
 * ====================================================================== */

typedef struct emitted { int kind; char path[128]; uint64_t off, len; } emitted;
typedef struct emits { emitted v[64]; int n; } emits;

static void collect(void *ctx, int kind, const char *path, uint64_t off, uint64_t len)
{
    emits *e = ctx;
    assert_true(e->n < 64);
    e->v[e->n].kind = kind;
    snprintf(e->v[e->n].path, sizeof e->v[e->n].path, "%s", path);
    e->v[e->n].off = off;
    e->v[e->n].len = len;
    e->n++;
}

static void test_plan_list(void **state)
{
    (void)state;
    fx *f = fx_two_containers();
    /* D: chunks far apart in container 3, so its ranges are not joined. */
    fx_container(f, DDP_KIND_DATA);
    uint8_t *b = malloc(3 * 64 * KiB);
    assert_non_null(b);
    tu_fill_random(b, 3 * 64 * KiB, 31);
    fx_add(f, "filler", b, 3 * 64 * KiB, 64 * KiB); /* chunks 0, 1, 2 of container 3 */
    memcpy(b + 64 * KiB, b + 128 * KiB, 64 * KiB);  /* D = chunk 0 + chunk 2 */
    int d = fx_add(f, "D", b, 2 * 64 * KiB, 64 * KiB);
    free(b);
    fx_flush(f);
    char *missing = tu_xprintf("%s/missing", f->target);
    char *paths[] = { f->files[0].path, f->files[1].path, f->files[2].path, f->files[d].path, missing };
    rstore s;
    rs_init(&s, f->backup, 0);
    emits e;
    memset(&e, 0, sizeof e);
    HRESULT res[5];
    assert_int_equal(ddp_restore_plan_list(5, paths, &s.iface, collect, &e, res), DDP_E_JOB_COMPLETED_PARTIAL_SUCCESS);
    for (int i = 0; i < 4; i++) assert_int_equal(res[i], S_OK);
    assert_int_equal(res[4], DDP_E_NOT_FOUND);
    assert_int_equal(s.orders, 0);
    rs_check_sequence(&s, 0);
    for (int i = 0; i < f->nfiles; i++) assert_stub_intact(f, i);

    /* Stream maps of A, B, C and D, one range: filler's map lies between C's
     * and D's, but it is a gap of a few hundred bytes (<= 4 KiB), read over. */
    char *sp = fx_cont_bpath(f, DDP_KIND_STREAM, 1);
    const fx_file *A = &f->files[0], *D = &f->files[d];
    int k = 0;
    assert_int_equal(e.v[k].kind, 2);
    assert_string_equal(e.v[k].path, sp);
    assert_int_equal(e.v[k].off, A->smap_off);
    assert_int_equal(e.v[k].len, D->smap_off + DDP_RECORD_HEADER_SIZE + D->smap_stored - A->smap_off);
    k++;
    /* Data container 1: A's chunks, contiguous. */
    char *d1 = fx_cont_bpath(f, DDP_KIND_DATA, 1), *d2 = fx_cont_bpath(f, DDP_KIND_DATA, 2),
         *d3 = fx_cont_bpath(f, DDP_KIND_DATA, 3);
    assert_int_equal(e.v[k].kind, 1);
    assert_string_equal(e.v[k].path, d1);
    assert_int_equal(e.v[k].off, DDP_CONTAINER_HEADER_SIZE);
    assert_int_equal(e.v[k].len, f->conts[0].len - DDP_CONTAINER_HEADER_SIZE);
    k++;
    /* Container 2: B and C, contiguous. */
    assert_string_equal(e.v[k].path, d2);
    assert_int_equal(e.v[k].off, DDP_CONTAINER_HEADER_SIZE);
    k++;
    /* Container 3: D's two chunks, with filler's middle chunk (64 KiB) between: two ranges. */
    const ddp_chunk_loc *l0 = &D->map.entries[0].loc, *l1 = &D->map.entries[1].loc;
    assert_string_equal(e.v[k].path, d3);
    assert_int_equal(e.v[k].off, l0->offset);
    assert_int_equal(e.v[k].len, DDP_RECORD_HEADER_SIZE + l0->stored_len);
    k++;
    assert_string_equal(e.v[k].path, d3);
    assert_int_equal(e.v[k].off, l1->offset);
    assert_int_equal(e.v[k].len, DDP_RECORD_HEADER_SIZE + l1->stored_len);
    k++;
    assert_int_equal(e.n, k);
    free(sp);
    free(d1);
    free(d2);
    free(d3);
    free(missing);
    rs_free(&s);
    fx_free(f);
}

/* ======================================================================
 * With the real optimization job, when it is there
 * ====================================================================== */

static void test_with_optimize_job(void **state)
{
    (void)state;
    char *root = tu_mkdtemp();
    char *vol = tu_xprintf("%s/vol", root), *target = tu_xprintf("%s/target", root);
    tu_mkdirs(vol);
    tu_mkdirs(target);
    if (FAILED(ddp_volume_enable(vol, "Backup"))) {
        tu_rmrf(root);
        free(root); free(vol); free(target);
        skip();
    }
    enum { NF = 4 };
    uint8_t *data[NF];
    size_t len[NF] = { 300 * KiB, 1 * MiB + 3, 300 * KiB, 100 * KiB };
    char *src[NF], *dst[NF];
    for (int i = 0; i < NF; i++) {
        data[i] = malloc(len[i]);
        assert_non_null(data[i]);
        tu_fill_random(data[i], len[i], 900 + (uint64_t)(i == 2 ? 0 : i)); /* file 2 duplicates file 0 */
        src[i] = tu_xprintf("%s/file%d", vol, i);
        dst[i] = tu_xprintf("%s/file%d", target, i);
        tu_write_file(src[i], data[i], len[i]);
        struct timespec t[2] = { { 1400000000, 0 }, { 1400000000 + i, 5000 } };
        assert_int_equal(utimensat(AT_FDCWD, src[i], t, 0), 0);
    }
    /* The job runs in a child process: this test is about the restore, and
     * a job that is still being written must not take the restore tests down. */
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        ddp_volume *v = NULL;
        int ok = 0;
        if (SUCCEEDED(ddp_volume_open(vol, DDP_OPEN_JOB, &v))) {
            ddp_job_stats st;
            memset(&st, 0, sizeof st);
            ok = SUCCEEDED(ddp_optimize(v, 1, NULL, &st)) && st.files_optimized == NF;
            ddp_volume_close(v);
        }
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    int ran = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!ran) fprintf(stderr, "test_with_optimize_job: the optimization job did not run (status 0x%x); skipped\n", status);
    /* The backup application restores the stubs (with their metadata) elsewhere. */
    for (int i = 0; ran && i < NF; i++) {
        size_t n = 0;
        uint8_t *stub = tu_read_file(src[i], &n);
        ran = stub && n == DDP_STUB_SIZE && ddp_stub_looks_like(stub, n);
        if (ran) {
            tu_write_file(dst[i], stub, n);
            struct stat sst;
            assert_int_equal(stat(src[i], &sst), 0);
            assert_int_equal(chmod(dst[i], sst.st_mode & 07777), 0);
            struct timespec t[2] = { sst.st_atim, sst.st_mtim };
            assert_int_equal(utimensat(AT_FDCWD, dst[i], t, 0), 0);
        }
        free(stub);
    }
    if (ran) {
        rstore s;
        rs_init(&s, vol, 0); /* the volume itself plays the backup */
        HRESULT res[NF];
        HRESULT hr = restore(dst, NF, &s, res);
        if (hr != S_OK) fprintf(stderr, "restore after ddp_optimize: 0x%08X %s\n", hr, ddp_error_detail());
        assert_int_equal(hr, S_OK);
        for (int i = 0; i < NF; i++) {
            size_t n = 0;
            uint8_t *back = tu_read_file(dst[i], &n);
            assert_int_equal(n, len[i]);
            assert_memory_equal(back, data[i], len[i]);
            free(back);
            struct stat st;
            assert_int_equal(stat(dst[i], &st), 0);
            assert_int_equal(st.st_mtim.tv_sec, 1400000000 + i);
        }
        rs_check_sequence(&s, 2);
        rs_free(&s);
    }
    for (int i = 0; i < NF; i++) {
        free(data[i]);
        free(src[i]);
        free(dst[i]);
    }
    tu_rmrf(root);
    free(root);
    free(vol);
    free(target);
    if (!ran) skip();
}

/* ======================================================================
 * ddp_restore_files_staged: stubs in the caller's private staging
 * directory, rewritten in place (ddp restore)
 * ====================================================================== */

static void test_staged_in_place(void **state)
{
    (void)state;
    fx *f = fx_standard();
    f->files[0].mode = 0400; /* read-only: still rewritten */
    for (int i = 0; i < f->nfiles; i++) fx_write_stub(f, i);
    char **paths = fx_paths(f);
    ino_t ino[8];
    struct stat st;
    for (int i = 0; i < f->nfiles; i++) {
        assert_int_equal(lstat(f->files[i].path, &st), 0);
        ino[i] = st.st_ino;
    }
    rstore s;
    rs_init(&s, f->backup, 0);
    HRESULT res[8];
    assert_int_equal(ddp_restore_files_staged((ULONG)f->nfiles, paths, &s.iface, res), S_OK);
    for (int i = 0; i < f->nfiles; i++) {
        assert_int_equal(res[i], S_OK);
        assert_restored(f, i);
        assert_int_equal(lstat(f->files[i].path, &st), 0);
        assert_int_equal(st.st_ino, ino[i]); /* the stub's own inode: no temporary renamed over it */
    }
    tu_assert_no_temps(f->target);
    rs_check_sequence(&s, 2);
    rs_free(&s);
    free(paths);
    fx_free(f);

    /* A failed file is reported; it is left (partly written) for the caller
     * to remove, the others are restored. */
    f = fx_two_containers();
    paths = fx_paths(f);
    rs_init(&s, f->backup, 0);
    s.fail_sub = "/Data/00000002";
    s.fail_hr = E_FAIL;
    HRESULT r3[3];
    assert_int_equal(ddp_restore_files_staged(3, paths, &s.iface, r3), DDP_E_JOB_COMPLETED_PARTIAL_SUCCESS);
    assert_int_equal(r3[0], S_OK);
    assert_restored(f, 0);
    assert_true(FAILED(r3[1]));
    assert_true(FAILED(r3[2]));
    assert_int_equal(lstat(f->files[1].path, &st), 0);
    tu_assert_no_temps(f->target);
    rs_free(&s);
    free(paths);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_com_object),
        cmocka_unit_test(test_r1_invalid_arguments),
        cmocka_unit_test(test_restore_all_and_r2),
        cmocka_unit_test(test_r3_kinds_of_path),
        cmocka_unit_test(test_r3_identity_and_catalog),
        cmocka_unit_test(test_r3_missing_containers),
        cmocka_unit_test(test_r3_corruption),
        cmocka_unit_test(test_r3_inconsistent_metadata),
        cmocka_unit_test(test_r3_access_denied),
        cmocka_unit_test(test_r3_disk_full),
        cmocka_unit_test(test_r4_overall_result),
        cmocka_unit_test(test_r5_two_orders),
        cmocka_unit_test(test_r6_invalid_plans),
        cmocka_unit_test(test_plans),
        cmocka_unit_test(test_plan_details),
        cmocka_unit_test(test_records_straddling_extents),
        cmocka_unit_test(test_r7_read_size),
        cmocka_unit_test(test_shared_chunks),
        cmocka_unit_test(test_r8_small_from_large),
        cmocka_unit_test(test_r9_attributes_and_atomicity),
        cmocka_unit_test(test_ten_thousand_files),
        cmocka_unit_test(test_plan_list),
        cmocka_unit_test(test_with_optimize_job),
        cmocka_unit_test(test_staged_in_place),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
