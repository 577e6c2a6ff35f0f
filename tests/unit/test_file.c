/* SPDX-License-Identifier: MIT */
/*
 * test_file.c: the read path (lib/file.c, lib/chunkread.c): ddp_file_* on
 * plain and optimized files, and the fallback to a chunk's hotspot copy
 * (docs/MAINTENANCE.md, "The read fallback").
 *
 * With hotspot_threshold 2, the chunks of a base that four files share get a
 * copy in Hotspot/. A flipped byte in such a chunk's primary payload, a
 * flipped byte in its header, or a container cut short inside it must still
 * read back exactly (from the copy; ddp_file_copies_used counts it), through
 * ddp_file_pread and through the chunk-level reader the mount uses. With the
 * copy damaged too, or for a chunk with no copy, or with only a forged copy
 * (a record that claims the chunk's hash but holds other bytes, with valid
 * checksums), the read fails with DDP_E_FILE_CORRUPT and the bytes handed
 * out before the failure are the file's: never a wrong byte.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <ddp/ddp.h>
#include "store/catalog.h"
#include "store/chunker.h"
#include "store/chunkread.h"
#include "store/chunkstore.h"
#include "base/codec.h"
#include "store/container.h"
#include "store/storewalk.h"
#include "volume/maintenance.h"
#include "store/streammap.h"
#include "store/stub.h"
#include "testutil.h"
#include "base/util.h"
#include "volume/volume.h"

#define NF 5
#define BASE (512 * 1024)

typedef struct fixture {
    char *dir;
    char *path[NF];
    uint8_t *data[NF];
    size_t size[NF];
    char *plain;          /* a file out of policy (too small): read as itself */
} fixture;

/* f0..f3: a shared base + a unique tail; f4: unique. hotspot_threshold 2. */
static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    char *d = tu_mkdtemp();
    f->dir = realpath(d, NULL);
    free(d);
    const tu_versions spec = { "d", BASE, 200 * 1024, 333, 400 * 1024, 77, 500, 600 };
    tu_write_versions(f->dir, &spec, NF, f->path, f->data, f->size);
    f->plain = malloc(strlen(f->dir) + 32);
    sprintf(f->plain, "%s/small.txt", f->dir);
    tu_write_file(f->plain, "a small plain file\n", 19);
    tu_optimize_volume(f->dir, "2", NF);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    tu_rmrf(f->dir);
    for (int i = 0; i < NF; i++) {
        free(f->path[i]);
        free(f->data[i]);
    }
    free(f->plain);
    free(f->dir);
    free(f);
    return 0;
}

static ddp_volume *open_vol(const fixture *f)
{
    ddp_volume *v = NULL;
    assert_int_equal(ddp_volume_open(f->dir, DDP_OPEN_READ, &v), S_OK);
    return v;
}

/* The stream map of file i. */
static void map_of(ddp_volume *v, const fixture *f, int i, ddp_streammap *m)
{
    ddp_stub s;
    assert_int_equal(ddp_volume_read_stub(v, -1, f->path[i], &s), S_OK);
    ddp_chunkstore *cs = NULL;
    assert_int_equal(ddp_volume_store(v, &cs), S_OK);
    assert_int_equal(ddp_chunkstore_read_streammap(cs, s.stream_container, s.stream_offset, s.streammap_hash, m),
                     S_OK);
    ddp_streammap_index(m);
}

static char *container_path(ddp_volume *v, uint32_t kind, uint32_t id)
{
    char rel[40];
    ddp_container_relpath(kind, id, 1, rel);
    return ddp_path_join(v->store_dir, rel);
}

static void flip(const char *path, uint64_t off)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
    b ^= 0x5A;
    assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
    close(fd);
}

/* The hotspot copies of the store. */
static void load_copies(ddp_volume *v, ddp_hotset *hs)
{
    ddp_mstore ms;
    assert_int_equal(ddp_mstore_load(v->store_dir, v->id.store_id, &ms), S_OK);
    assert_int_equal(ddp_hotset_load(&ms, hs), S_OK);
    ddp_mstore_free(&ms);
}

/* Read all of file i in one call. S_OK only if every byte is the file's;
 * on failure, the bytes handed out (got) must still be the file's. *copies:
 * what the handle counted. */
static HRESULT read_all(ddp_volume *v, const fixture *f, int i, uint64_t *copies)
{
    ddp_file *h = NULL;
    HRESULT hr = ddp_file_open(v, f->path[i], &h);
    if (FAILED(hr)) return hr;
    assert_int_equal(ddp_file_size(h), f->size[i]);
    uint8_t *buf = malloc(f->size[i]);
    memset(buf, 0xEE, f->size[i]);
    size_t got = 0;
    hr = ddp_file_pread(h, buf, f->size[i], 0, &got);
    assert_true(got <= f->size[i]);
    if (got) assert_memory_equal(buf, f->data[i], got);   /* never a wrong byte */
    if (SUCCEEDED(hr)) assert_int_equal(got, f->size[i]);
    if (copies) *copies = ddp_file_copies_used(h);
    free(buf);
    ddp_file_close(h);
    return hr;
}

/* Read [off, off + n) of file i through a fresh handle. */
static HRESULT read_range(ddp_volume *v, const fixture *f, int i, uint64_t off, size_t n)
{
    ddp_file *h = NULL;
    HRESULT hr = ddp_file_open(v, f->path[i], &h);
    if (FAILED(hr)) return hr;
    uint8_t *buf = malloc(n ? n : 1);
    size_t got = 0;
    hr = ddp_file_pread(h, buf, n, off, &got);
    if (got) assert_memory_equal(buf, f->data[i] + off, got);
    if (SUCCEEDED(hr)) assert_int_equal(got, n);
    free(buf);
    ddp_file_close(h);
    return hr;
}

/* The first entry of m (at index >= from) that has a hotspot copy, or -1. */
static int hot_entry(const ddp_streammap *m, const ddp_hotset *hs, uint32_t from)
{
    for (uint32_t k = from; k < m->count; k++)
        if (ddp_hotset_find(hs, m->entries[k].hash)) return (int)k;
    return -1;
}

static void test_reads(void **state)
{
    fixture *f = *state;
    ddp_volume *v = open_vol(f);
    for (int i = 0; i < NF; i++) {
        uint64_t copies = 99;
        assert_int_equal(read_all(v, f, i, &copies), S_OK);
        assert_int_equal(copies, 0);
    }
    /* Ranges across chunk boundaries, at the end, past the end. */
    ddp_file *h = NULL;
    assert_int_equal(ddp_file_open(v, f->path[0], &h), S_OK);
    assert_true(ddp_file_is_optimized(h));
    uint8_t buf[70000];
    for (uint64_t off = 0; off < f->size[0]; off += 54321) {
        size_t got = 0;
        assert_int_equal(ddp_file_pread(h, buf, sizeof buf, off, &got), S_OK);
        size_t want = f->size[0] - off < sizeof buf ? (size_t)(f->size[0] - off) : sizeof buf;
        assert_int_equal(got, want);
        assert_memory_equal(buf, f->data[0] + off, got);
    }
    size_t got = 1;
    assert_int_equal(ddp_file_pread(h, buf, sizeof buf, f->size[0], &got), S_OK);
    assert_int_equal(got, 0);
    ddp_file_close(h);
    /* A plain file reads as itself. */
    assert_int_equal(ddp_file_open(v, f->plain, &h), S_OK);
    assert_false(ddp_file_is_optimized(h));
    assert_int_equal(ddp_file_pread(h, buf, sizeof buf, 0, &got), S_OK);
    assert_int_equal(got, 19);
    assert_memory_equal(buf, "a small plain file\n", 19);
    assert_int_equal(ddp_file_copies_used(h), 0);
    ddp_file_close(h);
    ddp_volume_close(v);
}

/* The volume opened to read, the hotspot copies in *hs and file i's stream
 * map in *m (the caller frees both). */
static ddp_volume *open_mapped(const fixture *f, int i, ddp_hotset *hs, ddp_streammap *m)
{
    ddp_volume *v = open_vol(f);
    load_copies(v, hs);
    ddp_streammap_init(m);
    map_of(v, f, i, m);
    return v;
}
/* A damaged primary (payload, header) of a chunk with a copy reads from it. */
static void test_fallback(void **state)
{
    fixture *f = *state;
    ddp_hotset hs;
    ddp_streammap m;
    ddp_volume *v = open_mapped(f, 0, &hs, &m);
    int a = hot_entry(&m, &hs, 0);
    assert_true(a >= 0);
    int b = hot_entry(&m, &hs, (uint32_t)a + 1);
    assert_true(b > a);
    ddp_chunk_loc la = m.entries[a].loc, lb = m.entries[b].loc;
    char *pa = container_path(v, DDP_KIND_DATA, la.container), *pb = container_path(v, DDP_KIND_DATA, lb.container);
    flip(pa, la.offset + DDP_RECORD_HEADER_SIZE + la.stored_len / 2);   /* payload */
    flip(pb, lb.offset + 20);                                          /* header (its hash) */
    ddp_volume_close(v);

    v = open_vol(f);
    for (int i = 0; i < 4; i++) {
        uint64_t copies = 0;
        assert_int_equal(read_all(v, f, i, &copies), S_OK);
        assert_int_equal(copies, 2);
    }
    assert_int_equal(read_all(v, f, 4, NULL), S_OK);   /* f4 uses neither */

    /* The chunk-level reader the mount uses says which record served. */
    ddp_chunkreader *rd = NULL;
    assert_int_equal(ddp_volume_chunkreader(v, &rd), S_OK);
    uint8_t *chunk = malloc(DDP_CHUNK_MAX);
    ddp_chunk_origin from;
    assert_int_equal(ddp_chunkreader_read(rd, &m.entries[a], chunk, &from), S_OK);
    assert_int_equal(from.copy, 1);
    assert_true(from.copy_container >= 1);
    assert_non_null(strstr(from.primary_error, "checksum"));
    assert_memory_equal(chunk, f->data[0] + m.starts[a], la.logical_len);
    assert_int_equal(ddp_chunkreader_read(rd, &m.entries[b], chunk, &from), S_OK);
    assert_int_equal(from.copy, 1);
    assert_memory_equal(chunk, f->data[0] + m.starts[b], lb.logical_len);
    /* An intact chunk: its primary. */
    uint32_t other = a == 0 ? (uint32_t)m.count - 1 : 0;
    assert_int_equal(ddp_chunkreader_read(rd, &m.entries[other], chunk, &from), S_OK);
    assert_int_equal(from.copy, 0);
    assert_memory_equal(chunk, f->data[0] + m.starts[other], m.entries[other].loc.logical_len);
    free(chunk);
    ddp_chunkreader_close(rd);

    /* Unoptimizing goes through the same reader: the file comes back whole. */
    ddp_volume_close(v);
    assert_int_equal(ddp_volume_open(f->dir, DDP_OPEN_JOB, &v), S_OK);
    assert_int_equal(ddp_unoptimize_file(v, f->path[1]), S_OK);
    size_t n = 0;
    uint8_t *back = tu_read_file(f->path[1], &n);
    assert_int_equal(n, f->size[1]);
    assert_memory_equal(back, f->data[1], n);
    free(back);

    ddp_volume_close(v);
    ddp_streammap_free(&m);
    ddp_hotset_free(&hs);
    free(pa);
    free(pb);
}

/* A container cut short inside the primary record (a short read). */
static void test_fallback_short(void **state)
{
    fixture *f = *state;
    ddp_hotset hs;
    ddp_streammap m;
    ddp_volume *v = open_mapped(f, 2, &hs, &m);
    /* The chunk with a copy that lies furthest into its container. */
    int best = -1;
    for (int k = hot_entry(&m, &hs, 0); k >= 0; k = hot_entry(&m, &hs, (uint32_t)k + 1))
        if (best < 0 || m.entries[k].loc.container != m.entries[best].loc.container ||
            m.entries[k].loc.offset > m.entries[best].loc.offset)
            best = k;
    assert_true(best >= 0);
    ddp_chunk_loc l = m.entries[best].loc;
    char *p = container_path(v, DDP_KIND_DATA, l.container);
    assert_int_equal(truncate(p, (off_t)(l.offset + DDP_RECORD_HEADER_SIZE + l.stored_len / 3)), 0);
    ddp_volume_close(v);

    v = open_vol(f);
    /* Every chunk that has a copy still reads; nothing reads wrong. */
    for (uint32_t k = 0; k < m.count; k++) {
        HRESULT hr = read_range(v, f, 2, m.starts[k], m.entries[k].loc.logical_len);
        if (ddp_hotset_find(&hs, m.entries[k].hash)) assert_int_equal(hr, S_OK);
    }
    assert_int_equal(read_range(v, f, 2, m.starts[best], m.entries[best].loc.logical_len), S_OK);
    ddp_volume_close(v);
    ddp_streammap_free(&m);
    ddp_hotset_free(&hs);
    free(p);
}

/* Both copies damaged: the damage error, never wrong bytes. */
static void test_both_damaged(void **state)
{
    fixture *f = *state;
    ddp_hotset hs;
    ddp_streammap m;
    ddp_volume *v = open_mapped(f, 3, &hs, &m);
    int a = hot_entry(&m, &hs, 0);
    assert_true(a >= 0);
    const ddp_hotrec *c = ddp_hotset_find(&hs, m.entries[a].hash);
    ddp_chunk_loc l = m.entries[a].loc;
    char *pd = container_path(v, DDP_KIND_DATA, l.container), *ph = container_path(v, DDP_KIND_HOTSPOT, c->id);
    flip(pd, l.offset + DDP_RECORD_HEADER_SIZE + l.stored_len - 1);
    flip(ph, c->off + DDP_RECORD_HEADER_SIZE + c->stored_len / 2);
    ddp_volume_close(v);

    v = open_vol(f);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(read_all(v, f, i, NULL), DDP_E_FILE_CORRUPT);
        assert_non_null(strstr(ddp_error_detail(), "hotspot copy failed too"));
    }
    assert_int_equal(read_all(v, f, 4, NULL), S_OK);
    /* The chunk just before the damaged one still reads. */
    if (a > 0) assert_int_equal(read_range(v, f, 3, m.starts[a - 1], m.entries[a - 1].loc.logical_len), S_OK);
    ddp_volume_close(v);
    ddp_streammap_free(&m);
    ddp_hotset_free(&hs);
    free(pd);
    free(ph);
}

/* A chunk with no copy fails; so does one whose only "copy" is forged. */
static void test_no_copy_and_forged(void **state)
{
    fixture *f = *state;
    ddp_hotset hs;
    ddp_streammap m;
    ddp_volume *v = open_mapped(f, 4, &hs, &m);
    for (uint32_t k = 0; k < m.count; k++) assert_null(ddp_hotset_find(&hs, m.entries[k].hash));
    ddp_chunk_loc l = m.entries[1].loc;
    char *pd = container_path(v, DDP_KIND_DATA, l.container);
    flip(pd, l.offset + DDP_RECORD_HEADER_SIZE + 10);
    ddp_volume_close(v);

    v = open_vol(f);
    assert_int_equal(read_all(v, f, 4, NULL), DDP_E_FILE_CORRUPT);
    assert_non_null(strstr(ddp_error_detail(), "no hotspot copy"));

    /* A forged copy: a hotspot container of this store with a record that
     * claims the chunk's hash and length, holds other bytes, and has valid
     * header and payload checksums. */
    ddp_container_header ch;
    memset(&ch, 0, sizeof ch);
    ch.kind = DDP_KIND_HOTSPOT;
    memcpy(ch.store_id, v->id.store_id, DDP_STORE_ID_SIZE);
    ch.id = 40;
    ch.generation = 1;
    char *hdir = ddp_path_join(v->store_dir, "Hotspot");
    mkdir(hdir, 0700);
    free(hdir);
    char *pf = container_path(v, DDP_KIND_HOTSPOT, 40);
    ddp_container_writer *w = NULL;
    assert_int_equal(ddp_container_create(pf, &ch, &w), S_OK);
    uint8_t *forged = malloc(l.logical_len);
    tu_fill_random(forged, l.logical_len, 4242);
    ddp_record_header rh;
    memset(&rh, 0, sizeof rh);
    rh.type = DDP_RECORD_CHUNK;
    rh.codec = DDP_CODEC_NONE;
    rh.stored_len = rh.logical_len = l.logical_len;
    memcpy(rh.hash, m.entries[1].hash, DDP_HASH_SIZE);
    uint64_t at = 0;
    assert_int_equal(ddp_container_append(w, &rh, forged, &at), S_OK);
    assert_int_equal(ddp_container_sync(w), S_OK);
    ddp_container_close(w);
    ddp_volume_close(v);

    v = open_vol(f);
    assert_int_equal(read_all(v, f, 4, NULL), DDP_E_FILE_CORRUPT);
    assert_non_null(strstr(ddp_error_detail(), "hotspot copy failed too"));
    ddp_chunkreader *rd = NULL;
    assert_int_equal(ddp_volume_chunkreader(v, &rd), S_OK);
    uint8_t *chunk = malloc(DDP_CHUNK_MAX);
    ddp_chunk_origin from;
    assert_int_equal(ddp_chunkreader_read(rd, &m.entries[1], chunk, &from), DDP_E_FILE_CORRUPT);
    assert_int_equal(from.copy, 0);
    free(chunk);
    ddp_chunkreader_close(rd);
    ddp_volume_close(v);
    free(forged);
    free(pf);
    free(pd);
    ddp_streammap_free(&m);
    ddp_hotset_free(&hs);
}

/* A stub whose stream map does not match it fails to open. */
static void test_map_checked(void **state)
{
    fixture *f = *state;
    ddp_volume *v = open_vol(f);
    ddp_stub s;
    assert_int_equal(ddp_volume_read_stub(v, -1, f->path[0], &s), S_OK);
    char *ps = container_path(v, DDP_KIND_STREAM, s.stream_container);
    flip(ps, s.stream_offset + DDP_RECORD_HEADER_SIZE + 60);
    ddp_volume_close(v);
    v = open_vol(f);
    ddp_file *h = NULL;
    assert_int_equal(ddp_file_open(v, f->path[0], &h), DDP_E_FILE_CORRUPT);
    assert_null(h);
    assert_non_null(strstr(ddp_error_detail(), f->path[0]));
    ddp_volume_close(v);
    free(ps);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fallback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fallback_short, setup, teardown),
        cmocka_unit_test_setup_teardown(test_both_damaged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_copy_and_forged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_checked, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
