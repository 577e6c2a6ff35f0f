/* SPDX-License-Identifier: MIT */
/*
 * test_container.c: unit tests for container files (container.h): the
 * pinned byte layout of the container and record headers, every limit of
 * docs/FORMAT.md, payload decoding, the buffered writer, the reader, and
 * every damage path: a flipped byte in the container header, a record header
 * or a payload is DDP_E_FILE_CORRUPT with a detail naming the file and the
 * offset; a torn tail (cut mid-record, zeros, garbage) is cut by
 * open_append and skipped by scan, after which appending works again; damage
 * followed by valid records is never cut.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "store/catalog.h"
#include "base/codec.h"
#include "store/container.h"
#include "base/hash.h"
#include "base/util.h"
#include "testutil.h"

/* ------------------------------------------------------------ helpers */

typedef struct rec {
    ddp_record_header h;
    uint8_t *logical;   /* the decoded bytes */
    uint8_t *stored;    /* the payload as stored */
    uint64_t off;
} rec;

/* A chunk record of len bytes: compressible (text-like) or random. */
static void make_chunk(rec *r, uint32_t len, uint64_t seed, int compress)
{
    memset(r, 0, sizeof *r);
    r->logical = malloc(len);
    if (compress) {
        for (uint32_t i = 0; i < len; i++) r->logical[i] = (uint8_t)("ddp chunk "[i % 10] + (seed % 3));
    } else {
        tu_fill_random(r->logical, len, seed);
    }
    r->h.type = DDP_RECORD_CHUNK;
    r->h.logical_len = len;
    ddp_sha256(r->logical, len, r->h.hash);
    size_t cap = ddp_compress_bound(len);
    r->stored = malloc(cap);
    size_t c = compress ? ddp_compress(r->stored, cap, r->logical, len, 3) : 0;
    if (c) {
        r->h.codec = DDP_CODEC_ZSTD;
        r->h.stored_len = (uint32_t)c;
    } else {
        r->h.codec = DDP_CODEC_NONE;
        r->h.stored_len = len;
        memcpy(r->stored, r->logical, len);
    }
}

static void make_streammap(rec *r, uint32_t len, uint64_t seed)
{
    memset(r, 0, sizeof *r);
    r->logical = malloc(len);
    tu_fill_random(r->logical, len, seed);
    r->stored = malloc(len);
    memcpy(r->stored, r->logical, len);
    r->h.type = DDP_RECORD_STREAMMAP;
    r->h.codec = DDP_CODEC_NONE;
    r->h.stored_len = r->h.logical_len = len;
    ddp_sha256(r->logical, len, r->h.hash);
}

static void rec_free(rec *r)
{
    free(r->logical);
    free(r->stored);
}

static void make_header(ddp_container_header *h, uint32_t kind, uint32_t id)
{
    memset(h, 0, sizeof *h);
    h->kind = kind;
    for (int i = 0; i < DDP_STORE_ID_SIZE; i++) h->store_id[i] = (uint8_t)(i * 17 + 1);
    h->id = id;
    h->generation = 1;
    h->created = 1700000000;
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (uint64_t)st.st_size;
}

static void flip_byte(const char *path, uint64_t off)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
    b ^= 0x40;
    assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
    close(fd);
}

static void append_bytes(const char *path, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, p, n), (ssize_t)n);
    close(fd);
}

typedef struct seen {
    int n;
    uint64_t offs[64];
    uint16_t types[64];
} seen;

static void on_found(void *ctx, const ddp_record_header *h, uint64_t off)
{
    seen *s = ctx;
    if (s->n < 64) {
        s->offs[s->n] = off;
        s->types[s->n] = h->type;
    }
    s->n++;
}

/* Check that the record at r->off reads back as r. */
static void check_read(const char *path, const rec *r)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    ddp_record_header h;
    uint8_t *out = NULL;
    HRESULT hr = ddp_container_read_record(fd, path, r->off, r->h.type, r->h.hash, &h, &out);
    if (FAILED(hr)) fprintf(stderr, "read failed: %s\n", ddp_error_detail());
    assert_int_equal(hr, S_OK);
    assert_int_equal(h.logical_len, r->h.logical_len);
    assert_int_equal(h.stored_len, r->h.stored_len);
    assert_int_equal(h.codec, r->h.codec);
    assert_memory_equal(out, r->logical, r->h.logical_len);
    free(out);
    uint8_t *dst = malloc(r->h.logical_len + 1);
    assert_int_equal(ddp_container_read_record_into(fd, path, r->off, r->h.type, NULL, &h, dst, r->h.logical_len),
                     S_OK);
    assert_memory_equal(dst, r->logical, r->h.logical_len);
    /* Asking for the wrong length is damage, not an overflow. */
    assert_int_equal(ddp_container_read_record_into(fd, path, r->off, r->h.type, NULL, &h, dst,
                                                    r->h.logical_len + 1),
                     DDP_E_FILE_CORRUPT);
    free(dst);
    close(fd);
}

typedef struct fixture {
    char *dir;
    char *path;
    rec recs[6];
    int nrecs;
} fixture;

/* A container with 5 records: raw chunk, zstd chunk, stream map, raw chunk,
 * zstd chunk; written, synced and closed. */
static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->dir = tu_mkdtemp();
    f->path = ddp_path_join(f->dir, "00000001.00000001.ccc");
    make_chunk(&f->recs[0], 70000, 1, 0);
    make_chunk(&f->recs[1], 131072, 2, 1);
    make_streammap(&f->recs[2], 56 + 56 * 10, 3);
    make_chunk(&f->recs[3], 1, 4, 0);
    make_chunk(&f->recs[4], 40000, 5, 1);
    f->nrecs = 5;
    ddp_container_header h;
    make_header(&h, DDP_KIND_DATA, 1);
    ddp_container_writer *w;
    assert_int_equal(ddp_container_create(f->path, &h, &w), S_OK);
    for (int i = 0; i < f->nrecs; i++)
        assert_int_equal(ddp_container_append(w, &f->recs[i].h, f->recs[i].stored, &f->recs[i].off), S_OK);
    assert_int_equal(ddp_container_sync(w), S_OK);
    ddp_container_close(w);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < f->nrecs; i++) rec_free(&f->recs[i]);
    tu_rmrf(f->dir);
    free(f->dir);
    free(f->path);
    free(f);
    return 0;
}

/* ------------------------------------------------------------ headers */

static void test_container_header_layout(void **state)
{
    (void)state;
    ddp_container_header h;
    make_header(&h, DDP_KIND_STREAM, 0x01020304);
    h.generation = 0x0A0B0C0D;
    uint8_t b[64];
    ddp_container_header_encode(&h, b);
    static const uint8_t want[56] = {
        'D', 'D', 'P', 'C', 'N', 'T', 'R', '1', 1, 0, 0, 0, 2, 0, 0, 0,
        1, 18, 35, 52, 69, 86, 103, 120, 137, 154, 171, 188, 205, 222, 239, 0,
        0x04, 0x03, 0x02, 0x01, 0x0D, 0x0C, 0x0B, 0x0A,
        0x00, 0xF1, 0x53, 0x65, 0, 0, 0, 0, /* 1700000000 */
        0, 0, 0, 0, 0, 0, 0, 0,
    };
    assert_memory_equal(b, want, 56);
    assert_true(ddp_get_le64(b + 56) == ddp_checksum64(b, 56));
    ddp_container_header d;
    assert_int_equal(ddp_container_header_decode(b, &d), S_OK);
    assert_int_equal(d.kind, DDP_KIND_STREAM);
    assert_int_equal(d.id, 0x01020304);
    assert_int_equal(d.generation, 0x0A0B0C0D);
    assert_true(d.created == 1700000000);
    assert_memory_equal(d.store_id, h.store_id, 16);

    for (int i = 0; i < 64; i++) {
        b[i] ^= 0x01;
        assert_int_equal(ddp_container_header_decode(b, &d), DDP_E_FILE_CORRUPT);
        b[i] ^= 0x01;
    }
    /* A valid checksum over an unsupported version, kind, id, generation or reserved. */
    struct { int off; uint32_t val; HRESULT want; } cases[] = {
        { 8, 3, DDP_E_UNSUPPORTED_VERSION }, { 8, 2, DDP_E_FILE_CORRUPT /* version 2 without a table */ },
        { 12, 0, DDP_E_FILE_CORRUPT },       { 12, 4, DDP_E_FILE_CORRUPT },
        { 32, 0, DDP_E_FILE_CORRUPT },       { 36, 0, DDP_E_FILE_CORRUPT }, { 48, 1, DDP_E_FILE_CORRUPT },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t c[64];
        memcpy(c, b, 64);
        ddp_put_le32(c + cases[i].off, cases[i].val);
        ddp_put_le64(c + 56, ddp_checksum64(c, 56));
        assert_int_equal(ddp_container_header_decode(c, &d), cases[i].want);
    }
}

static void encode_raw_header(uint8_t b[64], uint16_t type, uint8_t codec, uint32_t stored, uint32_t logical,
                              uint64_t payload_sum, uint8_t hashbyte)
{
    memset(b, 0, 64);
    ddp_put_le32(b, DDP_RECORD_MAGIC);
    ddp_put_le16(b + 4, type);
    b[6] = codec;
    ddp_put_le32(b + 8, stored);
    ddp_put_le32(b + 12, logical);
    memset(b + 16, hashbyte, 32);
    ddp_put_le64(b + 48, payload_sum);
    ddp_put_le64(b + 56, ddp_checksum64(b, 56));
}

static void test_record_header_layout(void **state)
{
    (void)state;
    uint8_t payload[100];
    tu_fill_random(payload, sizeof payload, 9);
    ddp_record_header h;
    memset(&h, 0, sizeof h);
    h.type = DDP_RECORD_CHUNK;
    h.codec = DDP_CODEC_NONE;
    h.stored_len = h.logical_len = 100;
    ddp_sha256(payload, 100, h.hash);
    uint8_t b[64];
    ddp_record_header_encode(&h, payload, b);
    assert_true(h.payload_checksum == ddp_checksum64(payload, 100));
    static const uint8_t want[16] = { 'D', 'R', 'E', 'C', 1, 0, 0, 0, 100, 0, 0, 0, 100, 0, 0, 0 };
    assert_memory_equal(b, want, 16);
    assert_memory_equal(b + 16, h.hash, 32);
    assert_true(ddp_get_le64(b + 48) == ddp_checksum64(payload, 100));
    assert_true(ddp_get_le64(b + 56) == ddp_checksum64(b, 56));
    ddp_record_header d;
    assert_int_equal(ddp_record_header_decode(b, &d), S_OK);
    assert_int_equal(d.type, 1);
    assert_int_equal(d.stored_len, 100);
    assert_memory_equal(d.hash, h.hash, 32);
    for (int i = 0; i < 64; i++) {
        for (int bit = 0; bit < 8; bit++) {
            b[i] ^= (uint8_t)(1 << bit);
            assert_int_equal(ddp_record_header_decode(b, &d), DDP_E_FILE_CORRUPT);
            b[i] ^= (uint8_t)(1 << bit);
        }
    }

    /* The limits, each with a valid header checksum. */
    uint64_t e0 = ddp_checksum64("", 0);
    struct { uint16_t type; uint8_t codec; uint32_t stored, logical; uint64_t sum; uint8_t hb; HRESULT want; } c[] = {
        { DDP_RECORD_CHUNK, 0, 131072, 131072, 0, 1, S_OK },
        { DDP_RECORD_CHUNK, 0, 131073, 131073, 0, 1, DDP_E_FILE_CORRUPT },    /* chunk too long */
        { DDP_RECORD_CHUNK, 0, 0, 0, e0, 1, DDP_E_FILE_CORRUPT },             /* empty chunk */
        { DDP_RECORD_CHUNK, 0, 99, 100, 0, 1, DDP_E_FILE_CORRUPT },           /* raw, lengths differ */
        { DDP_RECORD_CHUNK, 1, 50, 100, 0, 1, S_OK },
        { DDP_RECORD_CHUNK, 1, (uint32_t)ddp_compress_bound(100), 100, 0, 1, S_OK },
        { DDP_RECORD_CHUNK, 1, (uint32_t)ddp_compress_bound(100) + 1, 100, 0, 1, DDP_E_FILE_CORRUPT },
        { DDP_RECORD_CHUNK, 1, 0, 100, e0, 1, DDP_E_FILE_CORRUPT },           /* empty zstd payload */
        { DDP_RECORD_CHUNK, 2, 100, 100, 0, 1, DDP_E_FILE_CORRUPT },          /* unknown codec */
        { DDP_RECORD_STREAMMAP, 0, DDP_STREAMMAP_MAX_LOGICAL, DDP_STREAMMAP_MAX_LOGICAL, 0, 1, S_OK },
        { DDP_RECORD_STREAMMAP, 0, DDP_STREAMMAP_MAX_LOGICAL + 1, DDP_STREAMMAP_MAX_LOGICAL + 1, 0, 1,
          DDP_E_FILE_CORRUPT },
        { DDP_RECORD_SEAL, 0, 0, 0, e0, 0, S_OK },
        { DDP_RECORD_SEAL, 0, 1, 1, 0, 0, DDP_E_FILE_CORRUPT },               /* seal with a length */
        { DDP_RECORD_SEAL, 0, 0, 0, e0, 1, DDP_E_FILE_CORRUPT },              /* seal with a hash */
        { DDP_RECORD_SEAL, 0, 0, 0, 5, 0, DDP_E_FILE_CORRUPT },               /* seal, bad payload sum */
        { 0, 0, 1, 1, 0, 1, DDP_E_FILE_CORRUPT },                              /* type 0 */
        { 4, 0, 1, 1, 0, 1, DDP_E_FILE_CORRUPT },                              /* type 4 */
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        encode_raw_header(b, c[i].type, c[i].codec, c[i].stored, c[i].logical, c[i].sum, c[i].hb);
        assert_int_equal(ddp_record_header_decode(b, &d), c[i].want);
    }
    /* Reserved byte 7. */
    encode_raw_header(b, DDP_RECORD_CHUNK, 0, 10, 10, 0, 1);
    b[7] = 1;
    ddp_put_le64(b + 56, ddp_checksum64(b, 56));
    assert_int_equal(ddp_record_header_decode(b, &d), DDP_E_FILE_CORRUPT);
}

static void test_payload_decode(void **state)
{
    (void)state;
    for (int compress = 0; compress <= 1; compress++) {
        rec r;
        make_chunk(&r, 65536, 11, compress);
        assert_int_equal(r.h.codec, compress ? DDP_CODEC_ZSTD : DDP_CODEC_NONE);
        uint8_t hb[64];
        ddp_record_header_encode(&r.h, r.stored, hb);
        ddp_record_header d;
        assert_int_equal(ddp_record_header_decode(hb, &d), S_OK);
        uint8_t *out = malloc(65536);
        assert_int_equal(ddp_record_payload_decode(&d, r.stored, out), S_OK);
        assert_memory_equal(out, r.logical, 65536);
        /* A flipped payload byte: the checksum catches it. */
        r.stored[r.h.stored_len / 2] ^= 1;
        assert_int_equal(ddp_record_payload_decode(&d, r.stored, out), DDP_E_FILE_CORRUPT);
        assert_non_null(strstr(ddp_error_detail(), "checksum"));
        r.stored[r.h.stored_len / 2] ^= 1;
        /* A right checksum over the wrong content: the sha256 catches it. */
        d.hash[0] ^= 1;
        assert_int_equal(ddp_record_payload_decode(&d, r.stored, out), DDP_E_FILE_CORRUPT);
        assert_non_null(strstr(ddp_error_detail(), "sha256"));
        free(out);
        rec_free(&r);
    }
    /* zstd bytes that are not a frame of the declared size. */
    rec r;
    make_chunk(&r, 1000, 12, 1);
    ddp_record_header h = r.h;
    h.logical_len = 999;
    uint8_t hb[64];
    ddp_record_header_encode(&h, r.stored, hb);
    ddp_record_header d;
    assert_int_equal(ddp_record_header_decode(hb, &d), S_OK);
    uint8_t out[1000];
    assert_int_equal(ddp_record_payload_decode(&d, r.stored, out), DDP_E_FILE_CORRUPT);
    rec_free(&r);
}

/* ------------------------------------------------------------ files */

static void test_write_read_scan(void **state)
{
    fixture *f = *state;
    /* Offsets follow one another from the header. */
    uint64_t off = 64;
    for (int i = 0; i < f->nrecs; i++) {
        assert_true(f->recs[i].off == off);
        off += 64 + f->recs[i].h.stored_len;
    }
    assert_true(file_size(f->path) == off);
    for (int i = 0; i < f->nrecs; i++) check_read(f->path, &f->recs[i]);

    ddp_container_header hdr;
    seen s = { 0 };
    uint64_t end = 0;
    assert_int_equal(ddp_container_scan(f->path, &hdr, on_found, &s, &end), S_OK);
    assert_int_equal(s.n, f->nrecs);
    for (int i = 0; i < f->nrecs; i++) {
        assert_true(s.offs[i] == f->recs[i].off);
        assert_int_equal(s.types[i], f->recs[i].h.type);
    }
    assert_true(end == off);
    assert_int_equal(hdr.kind, DDP_KIND_DATA);
    assert_int_equal(hdr.id, 1);
    /* scan_from a record in the middle. */
    memset(&s, 0, sizeof s);
    assert_int_equal(ddp_container_scan_from(f->path, f->recs[3].off, NULL, on_found, &s, &end), S_OK);
    assert_int_equal(s.n, 2);

    /* Creating over an existing file fails. */
    ddp_container_header h;
    make_header(&h, DDP_KIND_DATA, 1);
    ddp_container_writer *w = NULL;
    assert_true(FAILED(ddp_container_create(f->path, &h, &w)));
    assert_null(w);
    assert_true(file_size(f->path) == off);

    /* Wrong type, wrong hash, an offset that is not a record. */
    int fd = open(f->path, O_RDONLY);
    ddp_record_header rh;
    uint8_t *out = NULL;
    assert_int_equal(ddp_container_read_record(fd, f->path, f->recs[0].off, DDP_RECORD_STREAMMAP, NULL, &rh, &out),
                     DDP_E_FILE_CORRUPT);
    assert_int_equal(ddp_container_read_record(fd, f->path, f->recs[0].off, DDP_RECORD_CHUNK, f->recs[1].h.hash, &rh,
                                               &out),
                     DDP_E_FILE_CORRUPT);
    assert_int_equal(ddp_container_read_record(fd, f->path, f->recs[0].off + 1, DDP_RECORD_CHUNK, NULL, &rh, &out),
                     DDP_E_FILE_CORRUPT);
    assert_int_equal(ddp_container_read_record(fd, f->path, 0, DDP_RECORD_CHUNK, NULL, &rh, &out),
                     DDP_E_FILE_CORRUPT);
    assert_int_equal(ddp_container_read_record(fd, f->path, off, DDP_RECORD_CHUNK, NULL, &rh, &out),
                     DDP_E_FILE_CORRUPT);
    assert_null(out);
    close(fd);
}

static void test_buffered_appends(void **state)
{
    fixture *f = *state;
    char *path = ddp_path_join(f->dir, "00000002.00000001.ccc");
    ddp_container_header h;
    make_header(&h, DDP_KIND_DATA, 2);
    ddp_container_writer *w;
    assert_int_equal(ddp_container_create(path, &h, &w), S_OK);
    assert_true(file_size(path) == 64);
    assert_false(ddp_container_is_dirty(w));
    rec small[8];
    for (int i = 0; i < 8; i++) {
        make_chunk(&small[i], 1000 + (uint32_t)i, 100 + (uint64_t)i, 0);
        assert_int_equal(ddp_container_append(w, &small[i].h, small[i].stored, &small[i].off), S_OK);
    }
    /* Appends are buffered: nothing reached the file yet. */
    assert_true(ddp_container_is_dirty(w));
    assert_true(file_size(path) == 64);
    assert_true(ddp_container_flushed_size(w) == 64);
    assert_true(ddp_container_size(w) > 64);
    assert_int_equal(ddp_container_flush(w), S_OK);
    assert_true(file_size(path) == ddp_container_size(w));
    assert_true(ddp_container_is_dirty(w)); /* flushed, not fsynced */
    /* A record larger than the buffer goes straight through. */
    rec big;
    make_streammap(&big, 3u << 20, 77);
    assert_int_equal(ddp_container_append(w, &big.h, big.stored, &big.off), S_OK);
    assert_true(file_size(path) == ddp_container_size(w));
    assert_int_equal(ddp_container_sync(w), S_OK);
    assert_false(ddp_container_is_dirty(w));
    assert_true(ddp_container_synced_size(w) == ddp_container_size(w));
    /* An invalid record is refused. */
    rec bad;
    make_chunk(&bad, 10, 5, 0);
    bad.h.logical_len = 11;
    uint64_t o;
    assert_int_equal(ddp_container_append(w, &bad.h, bad.stored, &o), E_INVALIDARG);
    ddp_container_close(w);
    for (int i = 0; i < 8; i++) {
        check_read(path, &small[i]);
        rec_free(&small[i]);
    }
    check_read(path, &big);
    rec_free(&big);
    rec_free(&bad);
    free(path);
}

static void test_close_flushes(void **state)
{
    fixture *f = *state;
    char *path = ddp_path_join(f->dir, "00000003.00000001.ccc");
    ddp_container_header h;
    make_header(&h, DDP_KIND_DATA, 3);
    ddp_container_writer *w;
    assert_int_equal(ddp_container_create(path, &h, &w), S_OK);
    rec r;
    make_chunk(&r, 5000, 3, 1);
    assert_int_equal(ddp_container_append(w, &r.h, r.stored, &r.off), S_OK);
    ddp_container_close(w);
    check_read(path, &r);
    rec_free(&r);
    free(path);
}

/* Detail messages name the container and the offset. */
static void expect_read_corrupt(const char *path, uint64_t off, uint16_t type)
{
    int fd = open(path, O_RDONLY);
    ddp_record_header h;
    uint8_t *out = NULL;
    assert_int_equal(ddp_container_read_record(fd, path, off, type, NULL, &h, &out), DDP_E_FILE_CORRUPT);
    assert_null(out);
    char want[512];
    snprintf(want, sizeof want, "container %s offset %llu: ", path, (unsigned long long)off);
    if (!strstr(ddp_error_detail(), want)) fail_msg("detail '%s' lacks '%s'", ddp_error_detail(), want);
    close(fd);
}

static void test_flip_container_header(void **state)
{
    fixture *f = *state;
    for (uint64_t at = 0; at < 64; at += 7) {
        flip_byte(f->path, at);
        uint64_t end;
        assert_int_equal(ddp_container_scan(f->path, NULL, NULL, NULL, &end), DDP_E_FILE_CORRUPT);
        ddp_container_writer *w = NULL;
        assert_int_equal(ddp_container_open_append(f->path, 0, NULL, NULL, &w), DDP_E_FILE_CORRUPT);
        assert_null(w);
        flip_byte(f->path, at);
    }
    assert_int_equal(ddp_container_scan(f->path, NULL, NULL, NULL, NULL), S_OK);
}

static void test_flip_record_header(void **state)
{
    fixture *f = *state;
    uint64_t size = file_size(f->path);
    for (int i = 0; i < f->nrecs; i++) {
        for (uint64_t at = 0; at < 64; at += 5) {
            flip_byte(f->path, f->recs[i].off + at);
            expect_read_corrupt(f->path, f->recs[i].off, f->recs[i].h.type);
            /* The other records still read. */
            check_read(f->path, &f->recs[(i + 1) % f->nrecs]);
            seen s = { 0 };
            uint64_t end = 0;
            HRESULT hr = ddp_container_scan(f->path, NULL, on_found, &s, &end);
            assert_int_equal(s.n, i);
            assert_true(end == f->recs[i].off);
            if (i < f->nrecs - 1) {
                /* Valid records follow: damage, not a torn tail, and never cut. */
                assert_int_equal(hr, DDP_E_FILE_CORRUPT);
                ddp_container_writer *w = NULL;
                assert_int_equal(ddp_container_open_append(f->path, 0, NULL, NULL, &w), DDP_E_FILE_CORRUPT);
                assert_true(file_size(f->path) == size);
            } else {
                /* The last record: indistinguishable from a torn tail. */
                assert_int_equal(hr, S_OK);
            }
            flip_byte(f->path, f->recs[i].off + at);
        }
    }
    assert_int_equal(ddp_container_scan(f->path, NULL, NULL, NULL, NULL), S_OK);
}

static void test_flip_payload(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < f->nrecs; i++) {
        uint32_t n = f->recs[i].h.stored_len;
        uint64_t ats[3] = { 0, n / 2, n - 1 };
        for (int k = 0; k < 3; k++) {
            uint64_t at = f->recs[i].off + 64 + ats[k];
            flip_byte(f->path, at);
            expect_read_corrupt(f->path, f->recs[i].off, f->recs[i].h.type);
            assert_non_null(strstr(ddp_error_detail(), "payload checksum mismatch"));
            uint64_t end;
            HRESULT hr = ddp_container_scan(f->path, NULL, NULL, NULL, &end);
            assert_int_equal(hr, i < f->nrecs - 1 ? DDP_E_FILE_CORRUPT : S_OK);
            flip_byte(f->path, at);
        }
    }
}

static void test_torn_tail_cut(void **state)
{
    fixture *f = *state;
    uint64_t size = file_size(f->path);
    rec *last = &f->recs[f->nrecs - 1];
    /* Cut at several points inside the last record. */
    uint64_t cuts[] = { last->off + 1, last->off + 63, last->off + 64, last->off + 64 + last->h.stored_len / 2,
                        size - 1 };
    for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
        char *copy = ddp_xasprintf("%s.%zu", f->path, c);
        size_t n;
        uint8_t *bytes = tu_read_file(f->path, &n);
        tu_write_file(copy, bytes, (size_t)cuts[c]);
        free(bytes);

        seen s = { 0 };
        uint64_t end = 0;
        assert_int_equal(ddp_container_scan(copy, NULL, on_found, &s, &end), S_OK);
        assert_int_equal(s.n, f->nrecs - 1);
        assert_true(end == last->off);

        ddp_container_writer *w = NULL;
        memset(&s, 0, sizeof s);
        assert_int_equal(ddp_container_open_append(copy, 0, on_found, &s, &w), S_OK);
        assert_int_equal(s.n, f->nrecs - 1);
        assert_true(ddp_container_size(w) == last->off);
        assert_true(file_size(copy) == last->off);
        assert_false(ddp_container_is_sealed(w));
        /* The next append goes where the torn record was. */
        rec r;
        make_chunk(&r, 3000, 1000 + c, c % 2);
        assert_int_equal(ddp_container_append(w, &r.h, r.stored, &r.off), S_OK);
        assert_true(r.off == last->off);
        assert_int_equal(ddp_container_sync(w), S_OK);
        ddp_container_close(w);
        for (int i = 0; i < f->nrecs - 1; i++) check_read(copy, &f->recs[i]);
        check_read(copy, &r);
        memset(&s, 0, sizeof s);
        assert_int_equal(ddp_container_scan(copy, NULL, on_found, &s, &end), S_OK);
        assert_int_equal(s.n, f->nrecs);
        assert_true(end == file_size(copy));
        rec_free(&r);
        free(copy);
    }
}

static void test_garbage_tail_cut(void **state)
{
    fixture *f = *state;
    uint64_t size = file_size(f->path);
    uint8_t junk[10000];
    /* Zeros (what a crash usually leaves), then random bytes. */
    for (int kind = 0; kind < 2; kind++) {
        if (kind == 0) memset(junk, 0, sizeof junk);
        else tu_fill_random(junk, sizeof junk, 42);
        append_bytes(f->path, junk, sizeof junk);
        uint64_t end;
        assert_int_equal(ddp_container_scan(f->path, NULL, NULL, NULL, &end), S_OK);
        assert_true(end == size);
        ddp_container_writer *w;
        assert_int_equal(ddp_container_open_append(f->path, 0, NULL, NULL, &w), S_OK);
        assert_true(file_size(f->path) == size);
        ddp_container_close(w);
    }
    /* A torn copy of a whole valid record after garbage: still a tail, the
     * torn record's payload is not all there. */
    size_t n;
    uint8_t *bytes = tu_read_file(f->path, &n);
    append_bytes(f->path, junk, 100);
    append_bytes(f->path, bytes + f->recs[0].off, 64 + 10);
    free(bytes);
    ddp_container_writer *w;
    assert_int_equal(ddp_container_open_append(f->path, 0, NULL, NULL, &w), S_OK);
    assert_true(ddp_container_size(w) == size);
    ddp_container_close(w);
}

static void test_open_append_known_valid(void **state)
{
    fixture *f = *state;
    seen s = { 0 };
    ddp_container_writer *w;
    assert_int_equal(ddp_container_open_append(f->path, f->recs[2].off, on_found, &s, &w), S_OK);
    assert_int_equal(s.n, f->nrecs - 2);
    assert_true(s.offs[0] == f->recs[2].off);
    ddp_container_close(w);
    /* Known-valid beyond the end of the file is damage. */
    uint64_t size = file_size(f->path);
    assert_int_equal(ddp_container_open_append(f->path, size + 1, NULL, NULL, &w), DDP_E_FILE_CORRUPT);
    assert_int_equal(ddp_container_open_append(f->path, size, NULL, NULL, &w), S_OK);
    assert_true(ddp_container_size(w) == size);
    ddp_container_close(w);
    /* Missing file. */
    char *nope = ddp_path_join(f->dir, "nope.ccc");
    assert_int_equal(ddp_container_open_append(nope, 0, NULL, NULL, &w), HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND));
    free(nope);
    /* A file shorter than a header. */
    char *tiny = ddp_path_join(f->dir, "tiny.ccc");
    tu_write_file(tiny, "DDPCNTR1", 8);
    assert_int_equal(ddp_container_open_append(tiny, 0, NULL, NULL, &w), DDP_E_FILE_CORRUPT);
    assert_int_equal(ddp_container_scan(tiny, NULL, NULL, NULL, NULL), DDP_E_FILE_CORRUPT);
    free(tiny);
}

static void test_seal(void **state)
{
    fixture *f = *state;
    ddp_container_writer *w;
    assert_int_equal(ddp_container_open_append(f->path, 0, NULL, NULL, &w), S_OK);
    uint64_t before = ddp_container_size(w);
    assert_int_equal(ddp_container_seal(w), S_OK);
    assert_true(ddp_container_size(w) == before + 64);
    assert_false(ddp_container_is_dirty(w));
    rec r;
    make_chunk(&r, 100, 1, 0);
    uint64_t off;
    assert_int_equal(ddp_container_append(w, &r.h, r.stored, &off), DDP_E_INVALID_STATE);
    ddp_container_close(w);
    assert_true(file_size(f->path) == before + 64);

    /* The seal record is pinned: zero lengths, zero hash. */
    size_t n;
    uint8_t *bytes = tu_read_file(f->path, &n);
    const uint8_t *sr = bytes + before;
    assert_int_equal(ddp_get_le32(sr), DDP_RECORD_MAGIC);
    assert_int_equal(ddp_get_le16(sr + 4), DDP_RECORD_SEAL);
    for (int i = 6; i < 48; i++) assert_int_equal(sr[i], 0);
    free(bytes);

    seen s = { 0 };
    uint64_t end;
    assert_int_equal(ddp_container_scan(f->path, NULL, on_found, &s, &end), S_OK);
    assert_int_equal(s.n, f->nrecs + 1);
    assert_int_equal(s.types[f->nrecs], DDP_RECORD_SEAL);
    assert_true(end == before + 64);

    assert_int_equal(ddp_container_open_append(f->path, 0, NULL, NULL, &w), S_OK);
    assert_true(ddp_container_is_sealed(w));
    assert_int_equal(ddp_container_append(w, &r.h, r.stored, &off), DDP_E_INVALID_STATE);
    ddp_container_header gh;
    ddp_container_get_header(w, &gh);
    assert_int_equal(gh.id, 1);
    assert_int_equal(gh.kind, DDP_KIND_DATA);
    ddp_container_close(w);
    /* Known valid through the seal (nothing left to walk): still seen as sealed. */
    assert_int_equal(ddp_container_open_append(f->path, before + 64, NULL, NULL, &w), S_OK);
    assert_true(ddp_container_is_sealed(w));
    ddp_container_close(w);
    /* Anything after a seal is damage. */
    append_bytes(f->path, "x", 1);
    assert_int_equal(ddp_container_scan(f->path, NULL, NULL, NULL, &end), DDP_E_FILE_CORRUPT);
    rec_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_container_header_layout),
        cmocka_unit_test(test_record_header_layout),
        cmocka_unit_test(test_payload_decode),
        cmocka_unit_test_setup_teardown(test_write_read_scan, setup, teardown),
        cmocka_unit_test_setup_teardown(test_buffered_appends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_flushes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flip_container_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flip_record_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flip_payload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_tail_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_append_known_valid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seal, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
