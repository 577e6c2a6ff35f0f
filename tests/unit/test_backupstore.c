/* SPDX-License-Identifier: MIT */
/*
 * test_backupstore.c: unit tests for the backup stores (backupstore.h) and
 * the backup manifest (backupstore_internal.h), on synthetic backups built
 * here, so that each store is tested on its own.
 *
 * - every store: path validation against traversal ("/../x", "/a/../../b",
 *   relative, empty, "//"), a symlink planted in the backup that points
 *   outside (refused), missing file and missing directory codes, reads at
 *   and past the end, COM reference counting and QueryInterface;
 * - the tar store: sequential reads served in one pass, a second pass counted
 *   when a read goes backward, the plan in archive order, read-ahead of
 *   announced ranges, metadata kept on the way, a truncated archive and an
 *   archive that does not match its manifest;
 * - the set store: offsets mapped across pieces held by different backups,
 *   the newest copy of a file winning, the plan with several extents per
 *   container (oldest backup first), chain checks;
 * - the manifest parser: every single-byte corruption is refused, and
 *   mutated manifests with a recomputed checksum never crash it.
 */
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

#include <archive.h>
#include <archive_entry.h>

#include "backup/manifest.h"
#include "backup/backupstore_common.h"
#include "base/safepath.h"
#include "backup/backup.h"
#include "backup/backupstore.h"
#include "base/hash.h"
#include "store/stub.h"
#include "testutil.h"
#include "base/util.h"

#define HR_FILE_NOT_FOUND ((HRESULT)0x80070002)
#define HR_PATH_NOT_FOUND ((HRESULT)0x80070003)
#define HR_ACCESS_DENIED ((HRESULT)0x80070005)

static const char *const SETTINGS = "/.ddp/Settings/identity";
static const char *const CATALOG = "/.ddp/ChunkStore/{00000000-0000-0000-0000-000000000001}.ddp/catalog";
static const char *const CONT_S =
    "/.ddp/ChunkStore/{00000000-0000-0000-0000-000000000001}.ddp/Stream/00000001.00000001.ccc";
static const char *const CONT_A =
    "/.ddp/ChunkStore/{00000000-0000-0000-0000-000000000001}.ddp/Data/00000001.00000001.ccc";
static const char *const CONT_B =
    "/.ddp/ChunkStore/{00000000-0000-0000-0000-000000000001}.ddp/Data/00000002.00000001.ccc";

/* Content of byte i of a synthetic file identified by seed. */
static uint8_t *pattern(size_t n, uint64_t seed)
{
    uint8_t *p = malloc(n ? n : 1);
    assert_non_null(p);
    tu_fill_random(p, n, seed);
    return p;
}

static char *join(const char *a, const char *b)
{
    return ddp_path_join(a, b);
}

static void write_at(const char *root, const char *store_path, const void *data, size_t n)
{
    char *p = join(root, store_path);
    tu_write_file(p, data, n);
    free(p);
}

/* ---- building manifests ---- */

static void mf_init(ddp_manifest *m, int format, uint32_t level, uint8_t idbyte)
{
    memset(m, 0, sizeof *m);
    m->version = DDP_MANIFEST_VERSION;
    memset(m->id, idbyte, sizeof m->id);
    m->level = level;
    m->format = format;
    m->source = ddp_strdup("/srv/vol");
    m->time = 1700000000;
    memset(m->store_id, 0x11, sizeof m->store_id);
}

static ddp_mf_entry *mf_add(ddp_manifest *m, char type, const char *path)
{
    if (m->count == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 16;
        m->entries = realloc(m->entries, m->cap * sizeof *m->entries);
        assert_non_null(m->entries);
    }
    ddp_mf_entry *e = &m->entries[m->count++];
    memset(e, 0, sizeof *e);
    e->type = type;
    e->path = ddp_strdup(path);
    e->member = -1;
    e->mode = type == 'D' ? 0755 : 0644;
    e->mtime_sec = 1700000000;
    if (type == 'L') e->target = ddp_strdup("/etc/passwd");
    return e;
}

static void mf_file(ddp_manifest *m, const char *path, uint64_t size, uint32_t level, int64_t member)
{
    ddp_mf_entry *e = mf_add(m, 'F', path);
    e->size = size;
    e->level = level;
    e->member = member;
}

static ddp_mf_entry *mf_container(ddp_manifest *m, const char *path, uint64_t size)
{
    ddp_mf_entry *e = mf_add(m, 'C', path);
    e->size = size;
    return e;
}

static void mf_piece(ddp_mf_entry *e, uint32_t level, uint64_t off, uint64_t len, int64_t member, const char *file)
{
    e->pieces = realloc(e->pieces, (e->npieces + 1) * sizeof *e->pieces);
    assert_non_null(e->pieces);
    ddp_mf_piece *p = &e->pieces[e->npieces++];
    p->level = level;
    p->offset = off;
    p->length = len;
    p->member = member;
    p->file = ddp_strdup(file);
}

static void mf_write_dir(ddp_manifest *m, const char *dir)
{
    size_t n;
    char *text = ddp_manifest_encode(m, &n);
    char *p = join(dir, DDP_MANIFEST_PATH);
    tu_write_file(p, text, n);
    free(p);
    free(text);
}

/* ---- the fixture: a directory backup with a few files, a tar of the same ---- */

#define SZ_ID 72
#define SZ_CAT 88
#define SZ_S 5000
#define SZ_A 300000
#define SZ_B 200000
#define SZ_F 1000

typedef struct fixture {
    char *tmp;
    char *dir;          /* directory backup (with manifest, level 0) */
    char *tar;          /* tar backup */
    uint8_t *id, *cat, *s, *a, *b, *f;
} fixture;

static void write_tar(fixture *fx)
{
    /* Members: 0 manifest, 1 identity, 2 catalog, 3 stream, 4 data A, 5 data B, 6 /f.txt */
    ddp_manifest m;
    mf_init(&m, DDP_BACKUP_FMT_TAR, 0, 0x22);
    mf_file(&m, SETTINGS, SZ_ID, 0, 1);
    mf_file(&m, CATALOG, SZ_CAT, 0, 2);
    mf_piece(mf_container(&m, CONT_S, SZ_S), 0, 0, SZ_S, 3, CONT_S);
    mf_piece(mf_container(&m, CONT_A, SZ_A), 0, 0, SZ_A, 4, CONT_A);
    mf_piece(mf_container(&m, CONT_B, SZ_B), 0, 0, SZ_B, 5, CONT_B);
    mf_file(&m, "/f.txt", SZ_F, 0, 6);
    mf_add(&m, 'D', "/.ddp")->member = 7;
    mf_add(&m, 'L', "/evil")->member = 8;
    mf_add(&m, 'D', "/.ddp/Settings")->member = 9;
    size_t mlen;
    char *text = ddp_manifest_encode(&m, &mlen);

    struct archive *a = archive_write_new();
    assert_non_null(a);
    assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
    assert_int_equal(archive_write_open_filename(a, fx->tar), ARCHIVE_OK);
    struct { const char *name; const void *data; size_t n; int type; } mem[] = {
        { DDP_MANIFEST_PATH, text, mlen, AE_IFREG },
        { SETTINGS + 1, fx->id, SZ_ID, AE_IFREG },
        { CATALOG + 1, fx->cat, SZ_CAT, AE_IFREG },
        { CONT_S + 1, fx->s, SZ_S, AE_IFREG },
        { CONT_A + 1, fx->a, SZ_A, AE_IFREG },
        { CONT_B + 1, fx->b, SZ_B, AE_IFREG },
        { "f.txt", fx->f, SZ_F, AE_IFREG },
        { ".ddp", NULL, 0, AE_IFDIR },
        { "evil", NULL, 0, AE_IFLNK },
        { ".ddp/Settings", NULL, 0, AE_IFDIR },
    };
    for (size_t i = 0; i < sizeof mem / sizeof mem[0]; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, mem[i].name);
        archive_entry_set_filetype(e, (unsigned)mem[i].type);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_size(e, (la_int64_t)mem[i].n);
        if (mem[i].type == AE_IFLNK) archive_entry_set_symlink(e, "/etc/passwd");
        assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
        if (mem[i].n) assert_int_equal(archive_write_data(a, mem[i].data, mem[i].n), (la_ssize_t)mem[i].n);
        archive_entry_free(e);
    }
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
    free(text);
    ddp_manifest_free(&m);
}

static int fx_setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    fx->tmp = tu_mkdtemp();
    fx->dir = join(fx->tmp, "B0");
    fx->tar = join(fx->tmp, "T.tar");
    fx->id = pattern(SZ_ID, 1);
    fx->cat = pattern(SZ_CAT, 2);
    fx->s = pattern(SZ_S, 3);
    fx->a = pattern(SZ_A, 4);
    fx->b = pattern(SZ_B, 5);
    fx->f = pattern(SZ_F, 6);
    write_at(fx->dir, SETTINGS, fx->id, SZ_ID);
    write_at(fx->dir, CATALOG, fx->cat, SZ_CAT);
    write_at(fx->dir, CONT_S, fx->s, SZ_S);
    write_at(fx->dir, CONT_A, fx->a, SZ_A);
    write_at(fx->dir, CONT_B, fx->b, SZ_B);
    write_at(fx->dir, "/f.txt", fx->f, SZ_F);
    char *evil = join(fx->dir, "evil");
    assert_int_equal(symlink("/etc/passwd", evil), 0);
    free(evil);
    char *evildir = join(fx->dir, "evildir");
    assert_int_equal(symlink("/etc", evildir), 0);
    free(evildir);
    char *inner = join(fx->dir, ".ddp/inner");
    assert_int_equal(symlink("Settings/identity", inner), 0);
    free(inner);
    ddp_manifest m;
    mf_init(&m, DDP_BACKUP_FMT_DIR, 0, 0x33);
    mf_add(&m, 'D', "/.ddp");
    mf_file(&m, SETTINGS, SZ_ID, 0, -1);
    mf_file(&m, "/f.txt", SZ_F, 0, -1);
    mf_piece(mf_container(&m, CONT_A, SZ_A), 0, 0, SZ_A, -1, CONT_A);
    mf_write_dir(&m, fx->dir);
    ddp_manifest_free(&m);
    write_tar(fx);
    *state = fx;
    return 0;
}

static int fx_teardown(void **state)
{
    fixture *fx = *state;
    tu_rmrf(fx->tmp);
    free(fx->tmp);
    free(fx->dir);
    free(fx->tar);
    free(fx->id);
    free(fx->cat);
    free(fx->s);
    free(fx->a);
    free(fx->b);
    free(fx->f);
    free(fx);
    return 0;
}

static HRESULT rd(IDedupReadFileCallback *s, const char *path, int64_t off, ULONG n, uint8_t *buf, ULONG *got)
{
    char *p = ddp_strdup(path);
    HRESULT hr = IDedupReadFileCallback_ReadBackupFile(s, p, off, n, buf, got, 0);
    free(p);
    return hr;
}

static void expect_bytes(IDedupReadFileCallback *s, const char *path, int64_t off, ULONG n, const uint8_t *want)
{
    uint8_t *buf = malloc(n ? n : 1);
    assert_non_null(buf);
    ULONG got = 12345;
    assert_int_equal(rd(s, path, off, n, buf, &got), S_OK);
    assert_int_equal(got, n);
    assert_memory_equal(buf, want + off, n);
    free(buf);
}

static uint64_t passes(IDedupReadFileCallback *s)
{
    ddp_backupstore_stats st;
    ddp_backupstore_get_stats(s, &st);
    return st.passes;
}

/* ---- every store: paths, codes, ends ---- */

static void check_common(IDedupReadFileCallback *s, const fixture *fx)
{
    static const char *const attacks[] = {
        "/../x", "/a/../../b", "a", "", "/a//b", "/.ddp/../../etc/passwd", "/", "/a/", "/./f.txt",
        "//f.txt", "/f.txt/", "/.ddp/Settings/..", "..", "/..",
    };
    uint8_t buf[64];
    for (size_t i = 0; i < sizeof attacks / sizeof attacks[0]; i++) {
        ULONG got = 99;
        assert_int_equal(rd(s, attacks[i], 0, 10, buf, &got), E_INVALIDARG);
        assert_int_equal(got, 0);
    }
    ULONG got = 99;
    assert_int_equal(IDedupReadFileCallback_ReadBackupFile(s, NULL, 0, 10, buf, &got, 0), E_INVALIDARG);
    assert_int_equal(rd(s, "/f.txt", -1, 10, buf, &got), E_INVALIDARG);
    assert_int_equal(rd(s, "/f.txt", 0, 10, NULL, &got), E_POINTER);
    assert_int_equal(IDedupReadFileCallback_ReadBackupFile(s, (BSTR) "/f.txt", 0, 10, buf, NULL, 0), E_POINTER);

    /* a symlink inside the backup pointing outside: refused, never followed */
    assert_int_equal(rd(s, "/evil", 0, 10, buf, &got), HR_ACCESS_DENIED);
    assert_int_equal(got, 0);

    /* missing file, missing directory */
    assert_int_equal(rd(s, "/nothere.txt", 0, 10, buf, &got), HR_FILE_NOT_FOUND);
    assert_int_equal(rd(s, "/.ddp/Settings/nothere", 0, 10, buf, &got), HR_FILE_NOT_FOUND);
    assert_int_equal(rd(s, "/nodir/x", 0, 10, buf, &got), HR_PATH_NOT_FOUND);
    assert_int_equal(rd(s, "/.ddp/nodir/deeper/x", 0, 10, buf, &got), HR_PATH_NOT_FOUND);

    /* reads at and after the end: S_OK with what there is */
    expect_bytes(s, "/f.txt", 0, SZ_F, fx->f);
    got = 99;
    assert_int_equal(rd(s, "/f.txt", SZ_F - 10, 64, buf, &got), S_OK);
    assert_int_equal(got, 10);
    assert_memory_equal(buf, fx->f + SZ_F - 10, 10);
    assert_int_equal(rd(s, "/f.txt", SZ_F, 10, buf, &got), S_OK);
    assert_int_equal(got, 0);
    assert_int_equal(rd(s, "/f.txt", SZ_F + 100000, 10, buf, &got), S_OK);
    assert_int_equal(got, 0);
    assert_int_equal(rd(s, "/f.txt", 5, 0, buf, &got), S_OK);
    assert_int_equal(got, 0);

    /* COM */
    void *q = NULL;
    assert_int_equal(IDedupReadFileCallback_QueryInterface(s, &IID_IUnknown, &q), S_OK);
    assert_ptr_equal(q, s);
    assert_int_equal(IDedupReadFileCallback_QueryInterface(s, &IID_IDedupReadFileCallback, &q), S_OK);
    assert_int_equal(IDedupReadFileCallback_QueryInterface(s, &IID_IDedupBackupSupport, &q), E_NOINTERFACE);
    assert_null(q);
    assert_int_equal(IDedupReadFileCallback_QueryInterface(s, &IID_IUnknown, NULL), E_POINTER);
    assert_int_equal(IDedupReadFileCallback_AddRef(s), 4);
    assert_int_equal(IDedupReadFileCallback_Release(s), 3);
    assert_int_equal(IDedupReadFileCallback_Release(s), 2);
    assert_int_equal(IDedupReadFileCallback_Release(s), 1);

    ddp_backupstore_stats st;
    ddp_backupstore_get_stats(s, &st);
    assert_true(st.read_calls >= 25);
    assert_true(st.bytes_read >= SZ_F + 10);
}

static void test_dir_store(void **state)
{
    fixture *fx = *state;
    IDedupReadFileCallback *s;
    assert_int_equal(ddp_backupstore_open_dir(fx->dir, &s), S_OK);
    check_common(s, fx);
    uint8_t buf[64];
    ULONG got;
    /* symlinks anywhere on the way, even pointing inside */
    assert_int_equal(rd(s, "/evildir/passwd", 0, 10, buf, &got), HR_ACCESS_DENIED);
    assert_int_equal(rd(s, "/.ddp/inner", 0, 10, buf, &got), HR_ACCESS_DENIED);
    /* a directory is not a file */
    assert_true(FAILED(rd(s, "/.ddp", 0, 10, buf, &got)));
    /* containers read at any offset; plan: none, ddp chooses */
    expect_bytes(s, CONT_A, 123456, 4096, fx->a);
    ULONG n = 7;
    DEDUP_CONTAINER_EXTENT *plan = (DEDUP_CONTAINER_EXTENT *)1;
    BSTR paths[2] = { (BSTR)CONT_A, (BSTR)CONT_B };
    assert_int_equal(IDedupReadFileCallback_OrderContainersRestore(s, 2, paths, &n, &plan), S_OK);
    assert_int_equal(n, 0);
    assert_null(plan);
    DDP_FILE_EXTENT ext[2] = { { 4096, 0 }, { 100, 200000 } };
    assert_int_equal(IDedupReadFileCallback_PreviewContainerRead(s, (BSTR)CONT_A, 2, ext), S_OK);
    assert_int_equal(IDedupReadFileCallback_PreviewContainerRead(s, (BSTR) "/../x", 2, ext), E_INVALIDARG);
    ddp_backupstore_stats st;
    ddp_backupstore_get_stats(s, &st);
    assert_int_equal(st.order_calls, 1);
    assert_int_equal(st.preview_calls, 2);
    assert_int_equal(st.passes, 0);
    assert_int_equal(IDedupReadFileCallback_Release(s), 0);
}

static void test_open_autodetect(void **state)
{
    fixture *fx = *state;
    IDedupReadFileCallback *s;
    assert_int_equal(ddp_backupstore_open(fx->dir, &s), S_OK);
    assert_ptr_equal(s->lpVtbl, &ddp_bs_dir_vtbl);
    IDedupReadFileCallback_Release(s);
    assert_int_equal(ddp_backupstore_open(fx->tar, &s), S_OK);
    assert_ptr_equal(s->lpVtbl, &ddp_bs_tar_vtbl);
    IDedupReadFileCallback_Release(s);
    char *missing = join(fx->tmp, "missing");
    assert_int_equal(ddp_backupstore_open(missing, &s), HR_FILE_NOT_FOUND);
    assert_null(s);
    free(missing);
    /* a set with one member is a full backup */
    assert_int_equal(ddp_backupstore_open_set(fx->dir, &s), S_OK);
    expect_bytes(s, CONT_A, 1000, 5000, fx->a);
    IDedupReadFileCallback_Release(s);
    /* stats of something that is not ours: zeros */
    ddp_backupstore_stats st;
    ddp_backupstore_get_stats(NULL, &st);
    assert_int_equal(st.read_calls, 0);
}

/* ---- tar ---- */

static void test_tar_common_and_sequential(void **state)
{
    fixture *fx = *state;
    IDedupReadFileCallback *s;
    assert_int_equal(ddp_backupstore_open_tar(fx->tar, &s), S_OK);
    assert_int_equal(passes(s), 1);
    check_common(s, fx); /* reads /f.txt, the last file member, repeatedly: */
    uint64_t p0 = passes(s);
    IDedupReadFileCallback_Release(s);

    /* A fresh store, reads in archive order: one pass. */
    assert_int_equal(ddp_backupstore_open_tar(fx->tar, &s), S_OK);
    (void)p0;
    expect_bytes(s, SETTINGS, 0, SZ_ID, fx->id);
    expect_bytes(s, CATALOG, 0, SZ_CAT, fx->cat);
    expect_bytes(s, CONT_S, 100, 1000, fx->s);
    for (int64_t off = 0; off + 65536 <= SZ_A; off += 65536 + 1000) expect_bytes(s, CONT_A, off, 65536, fx->a);
    expect_bytes(s, CONT_B, 5000, 100000, fx->b);
    expect_bytes(s, CONT_B, 150000, 50000, fx->b);
    assert_int_equal(passes(s), 1);
    /* metadata is kept: reading it again costs no pass */
    expect_bytes(s, SETTINGS, 10, 20, fx->id);
    expect_bytes(s, CATALOG, 0, SZ_CAT, fx->cat);
    assert_int_equal(passes(s), 1);
    /* going backward in a container: a second pass */
    expect_bytes(s, CONT_A, 0, 100, fx->a);
    assert_int_equal(passes(s), 2);
    /* backward inside the current member too */
    expect_bytes(s, CONT_A, 50, 10, fx->a);
    assert_int_equal(passes(s), 3);
    IDedupReadFileCallback_Release(s);
}

static void test_tar_plan_and_readahead(void **state)
{
    fixture *fx = *state;
    IDedupReadFileCallback *s;
    assert_int_equal(ddp_backupstore_open_tar(fx->tar, &s), S_OK);
    /* The plan follows the archive: A (index 2) before B (index 0); unknown paths are left out. */
    BSTR paths[4] = { (BSTR)CONT_B, (BSTR) "/.ddp/nothere.ccc", (BSTR)CONT_A, (BSTR) "/../x" };
    ULONG n = 0;
    DEDUP_CONTAINER_EXTENT *plan = NULL;
    assert_int_equal(IDedupReadFileCallback_OrderContainersRestore(s, 4, paths, &n, &plan), S_OK);
    assert_int_equal(n, 2);
    assert_int_equal(plan[0].ContainerIndex, 2);
    assert_int_equal(plan[1].ContainerIndex, 0);
    for (ULONG i = 0; i < n; i++) {
        assert_int_equal(plan[i].StartOffset, 0);
        assert_true(plan[i].Length == INT64_MAX);
    }
    free(plan);

    /* Announced ranges read out of order: kept on the way, still one pass. */
    DDP_FILE_EXTENT ext[3] = { { 1000, 200000 }, { 5000, 10000 }, { 100, 250000 } };
    assert_int_equal(IDedupReadFileCallback_PreviewContainerRead(s, (BSTR)CONT_A, 3, ext), S_OK);
    expect_bytes(s, CONT_A, 200000, 1000, fx->a);
    expect_bytes(s, CONT_A, 10000, 5000, fx->a);   /* behind: from the read-ahead */
    expect_bytes(s, CONT_A, 250000, 100, fx->a);
    assert_int_equal(passes(s), 1);
    ddp_backupstore_stats st;
    ddp_backupstore_get_stats(s, &st);
    assert_int_equal(st.order_calls, 1);
    assert_int_equal(st.preview_calls, 1);
    assert_int_equal(st.bytes_read, 6100);
    /* a range that was not announced, behind: a new pass */
    expect_bytes(s, CONT_A, 20000, 10, fx->a);
    assert_int_equal(passes(s), 2);
    IDedupReadFileCallback_Release(s);
}

static void test_tar_damaged(void **state)
{
    fixture *fx = *state;
    size_t n;
    uint8_t *whole = tu_read_file(fx->tar, &n);
    assert_non_null(whole);
    IDedupReadFileCallback *s;
    uint8_t buf[4096];
    ULONG got;

    /* truncated in the middle of container B */
    char *cut = join(fx->tmp, "cut.tar");
    size_t keep = n / 2 + 150000;
    assert_true(keep < n);
    tu_write_file(cut, whole, keep);
    assert_int_equal(ddp_backupstore_open_tar(cut, &s), S_OK);
    expect_bytes(s, CONT_A, 0, 4096, fx->a);
    HRESULT hr = rd(s, "/f.txt", 0, 100, buf, &got);
    assert_int_equal(hr, DDP_E_FILE_CORRUPT);
    IDedupReadFileCallback_Release(s);

    /* not a ddp backup: the first member is something else */
    char *other = join(fx->tmp, "other.tar");
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    assert_int_equal(archive_write_open_filename(a, other), ARCHIVE_OK);
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, "hello.txt");
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_size(e, 5);
    archive_write_header(a, e);
    archive_write_data(a, "hello", 5);
    archive_entry_free(e);
    archive_write_close(a);
    archive_write_free(a);
    s = (IDedupReadFileCallback *)1;
    assert_int_equal(ddp_backupstore_open_tar(other, &s), DDP_E_INVALID_DATA);
    assert_null(s);

    /* a member renamed: the archive does not match its manifest */
    char *renamed = join(fx->tmp, "renamed.tar");
    uint8_t *copy = malloc(n);
    memcpy(copy, whole, n);
    const char *needle = "00000002.00000001.ccc";
    uint8_t *after = memmem(copy, n, "\nchecksum ", 10); /* the end of the manifest member */
    assert_non_null(after);
    after += 27;
    uint8_t *hit = memmem(after, n - (size_t)(after - copy), needle, strlen(needle));
    while (hit) { /* every header copy (pax and ustar) */
        hit[0] = '9';
        hit = memmem(hit, n - (size_t)(hit - copy), needle, strlen(needle));
    }
    tu_write_file(renamed, copy, n);
    assert_int_equal(ddp_backupstore_open_tar(renamed, &s), S_OK);
    assert_int_equal(rd(s, CONT_B, 0, 100, buf, &got), DDP_E_INVALID_DATA);
    IDedupReadFileCallback_Release(s);

    /* a flipped byte in the manifest: refused at open */
    memcpy(copy, whole, n);
    uint8_t *mf = memmem(copy, n, "ddp-backup-manifest 1", 21);
    assert_non_null(mf);
    mf[40] ^= 1;
    tu_write_file(renamed, copy, n);
    assert_int_equal(ddp_backupstore_open_tar(renamed, &s), DDP_E_INVALID_DATA);
    assert_true(strstr(ddp_error_detail(), "checksum") != NULL);

    free(copy);
    free(renamed);
    free(other);
    free(cut);
    free(whole);
}

/* ---- incremental set ---- */

typedef struct setfx {
    char *tmp, *b0, *b1, *b2;
    uint8_t *c;        /* container C: 300000 bytes over three backups */
    uint8_t *f0, *f1;  /* /f.txt in B0, then changed in B1 */
    uint8_t *g;        /* /g.txt unchanged since B0 */
} setfx;

#define C_SIZE 300000
#define C_P0 200000
#define C_P1 60000

static int set_setup(void **state)
{
    setfx *x = calloc(1, sizeof *x);
    x->tmp = tu_mkdtemp();
    x->b0 = join(x->tmp, "B0");
    x->b1 = join(x->tmp, "B1");
    x->b2 = join(x->tmp, "B2");
    x->c = pattern(C_SIZE, 10);
    x->f0 = pattern(SZ_F, 11);
    x->f1 = pattern(SZ_F + 500, 12);
    x->g = pattern(SZ_F, 13);
    char *p1 = ddp_xasprintf("%s.@%x", CONT_A, C_P0);
    char *p2 = ddp_xasprintf("%s.@%x", CONT_A, C_P0 + C_P1);

    /* B0: full */
    write_at(x->b0, CONT_A, x->c, C_P0);
    write_at(x->b0, "/f.txt", x->f0, SZ_F);
    write_at(x->b0, "/g.txt", x->g, SZ_F);
    write_at(x->b0, CONT_B, x->c, 1000);
    ddp_manifest m;
    mf_init(&m, DDP_BACKUP_FMT_DIR, 0, 0xB0);
    mf_file(&m, "/f.txt", SZ_F, 0, -1);
    mf_file(&m, "/g.txt", SZ_F, 0, -1);
    mf_piece(mf_container(&m, CONT_A, C_P0), 0, 0, C_P0, -1, CONT_A);
    mf_piece(mf_container(&m, CONT_B, 1000), 0, 0, 1000, -1, CONT_B);
    mf_write_dir(&m, x->b0);
    ddp_manifest_free(&m);

    /* B1: f changed, C grew, B gone, S new */
    write_at(x->b1, p1, x->c + C_P0, C_P1);
    write_at(x->b1, "/f.txt", x->f1, SZ_F + 500);
    write_at(x->b1, CONT_S, x->c, 777);
    mf_init(&m, DDP_BACKUP_FMT_DIR, 1, 0xB1);
    m.previous = ddp_strdup("B0");
    memset(m.previous_id, 0xB0, sizeof m.previous_id);
    mf_file(&m, "/f.txt", SZ_F + 500, 1, -1);
    mf_file(&m, "/g.txt", SZ_F, 0, -1);
    ddp_mf_entry *c = mf_container(&m, CONT_A, C_P0 + C_P1);
    mf_piece(c, 0, 0, C_P0, -1, CONT_A);
    mf_piece(c, 1, C_P0, C_P1, -1, p1);
    mf_piece(mf_container(&m, CONT_S, 777), 1, 0, 777, -1, CONT_S);
    mf_write_dir(&m, x->b1);
    ddp_manifest_free(&m);

    /* B2 (previous given as an absolute path): C grew again */
    write_at(x->b2, p2, x->c + C_P0 + C_P1, C_SIZE - C_P0 - C_P1);
    mf_init(&m, DDP_BACKUP_FMT_DIR, 2, 0xB2);
    m.previous = ddp_strdup(x->b1);
    memset(m.previous_id, 0xB1, sizeof m.previous_id);
    mf_file(&m, "/f.txt", SZ_F + 500, 1, -1);
    mf_file(&m, "/g.txt", SZ_F, 0, -1);
    mf_add(&m, 'L', "/evil");
    mf_add(&m, 'D', "/.ddp");
    mf_add(&m, 'D', "/.ddp/ChunkStore");
    mf_add(&m, 'D', "/.ddp/ChunkStore/{00000000-0000-0000-0000-000000000001}.ddp");
    mf_add(&m, 'D', "/.ddp/ChunkStore/{00000000-0000-0000-0000-000000000001}.ddp/Data");
    c = mf_container(&m, CONT_A, C_SIZE);
    mf_piece(c, 0, 0, C_P0, -1, CONT_A);
    mf_piece(c, 1, C_P0, C_P1, -1, p1);
    mf_piece(c, 2, C_P0 + C_P1, C_SIZE - C_P0 - C_P1, -1, p2);
    mf_piece(mf_container(&m, CONT_S, 777), 1, 0, 777, -1, CONT_S);
    mf_write_dir(&m, x->b2);
    ddp_manifest_free(&m);
    free(p1);
    free(p2);
    *state = x;
    return 0;
}

static int set_teardown(void **state)
{
    setfx *x = *state;
    tu_rmrf(x->tmp);
    free(x->tmp);
    free(x->b0);
    free(x->b1);
    free(x->b2);
    free(x->c);
    free(x->f0);
    free(x->f1);
    free(x->g);
    free(x);
    return 0;
}

static void test_set_mapping(void **state)
{
    setfx *x = *state;
    IDedupReadFileCallback *s;
    assert_int_equal(ddp_backupstore_open(x->b2, &s), S_OK);
    assert_ptr_equal(s->lpVtbl, &ddp_bs_set_vtbl);
    /* within one piece, across two, across all three */
    expect_bytes(s, CONT_A, 1000, 5000, x->c);
    expect_bytes(s, CONT_A, C_P0 - 100, 300, x->c);
    expect_bytes(s, CONT_A, C_P0 + C_P1 - 10, 20, x->c);
    expect_bytes(s, CONT_A, C_P0 - 5, C_P1 + 10, x->c);
    expect_bytes(s, CONT_A, 0, C_SIZE, x->c);
    /* past the end: short */
    uint8_t buf[64];
    ULONG got;
    assert_int_equal(rd(s, CONT_A, C_SIZE - 4, 64, buf, &got), S_OK);
    assert_int_equal(got, 4);
    assert_int_equal(rd(s, CONT_A, C_SIZE, 64, buf, &got), S_OK);
    assert_int_equal(got, 0);
    /* the newest copy wins; an unchanged file comes from the full backup */
    expect_bytes(s, "/f.txt", 0, SZ_F + 500, x->f1);
    expect_bytes(s, "/g.txt", 0, SZ_F, x->g);
    expect_bytes(s, CONT_S, 0, 777, x->c);
    /* deleted since B0: not found, even though B0 still has it */
    assert_int_equal(rd(s, CONT_B, 0, 10, buf, &got), HR_FILE_NOT_FOUND);
    assert_int_equal(rd(s, "/nodir/x", 0, 10, buf, &got), HR_PATH_NOT_FOUND);
    assert_int_equal(rd(s, "/evil", 0, 10, buf, &got), HR_ACCESS_DENIED);
    assert_int_equal(rd(s, "/a/../../b", 0, 10, buf, &got), E_INVALIDARG);
    DDP_FILE_EXTENT ext[1] = { { 100000, C_P0 - 50000 } };
    assert_int_equal(IDedupReadFileCallback_PreviewContainerRead(s, (BSTR)CONT_A, 1, ext), S_OK);

    /* plan: one extent per piece, oldest backup first */
    BSTR paths[3] = { (BSTR)CONT_S, (BSTR)CONT_A, (BSTR)CONT_B };
    ULONG n = 0;
    DEDUP_CONTAINER_EXTENT *plan = NULL;
    assert_int_equal(IDedupReadFileCallback_OrderContainersRestore(s, 3, paths, &n, &plan), S_OK);
    assert_int_equal(n, 4);
    assert_int_equal(plan[0].ContainerIndex, 1);   /* A piece 0, level 0 */
    assert_int_equal(plan[0].StartOffset, 0);
    assert_int_equal(plan[0].Length, C_P0);
    assert_int_equal(plan[1].ContainerIndex, 0);   /* S, level 1 (index 0 before 1) */
    assert_int_equal(plan[1].StartOffset, 0);
    assert_true(plan[1].Length == INT64_MAX);
    assert_int_equal(plan[2].ContainerIndex, 1);   /* A piece 1, level 1 */
    assert_int_equal(plan[2].StartOffset, C_P0);
    assert_int_equal(plan[2].Length, C_P1);
    assert_int_equal(plan[3].ContainerIndex, 1);   /* A piece 2, level 2, to the end */
    assert_int_equal(plan[3].StartOffset, C_P0 + C_P1);
    assert_true(plan[3].Length == INT64_MAX);
    free(plan);
    IDedupReadFileCallback_Release(s);

    /* a middle backup of the chain is a set too, with its own view */
    assert_int_equal(ddp_backupstore_open(x->b1, &s), S_OK);
    expect_bytes(s, CONT_A, 0, C_P0 + C_P1, x->c);
    assert_int_equal(rd(s, CONT_A, C_P0 + C_P1, 64, buf, &got), S_OK);
    assert_int_equal(got, 0);
    IDedupReadFileCallback_Release(s);
}

static void test_set_chain_checks(void **state)
{
    setfx *x = *state;
    IDedupReadFileCallback *s;
    /* B1 names B0 by id: a different B0 is refused */
    char *m0 = join(x->b0, DDP_MANIFEST_PATH);
    size_t n;
    uint8_t *saved = tu_read_file(m0, &n);
    ddp_manifest m;
    mf_init(&m, DDP_BACKUP_FMT_DIR, 0, 0x99);
    mf_write_dir(&m, x->b0);
    ddp_manifest_free(&m);
    assert_int_equal(ddp_backupstore_open(x->b2, &s), DDP_E_INVALID_DATA);
    assert_true(strstr(ddp_error_detail(), "backup id") != NULL);
    /* B0 gone */
    unlink(m0);
    assert_int_equal(ddp_backupstore_open(x->b2, &s), DDP_E_NOT_FOUND);
    tu_write_file(m0, saved, n);
    assert_int_equal(ddp_backupstore_open(x->b2, &s), S_OK);
    IDedupReadFileCallback_Release(s);
    /* a piece file removed from B1: not found, and a truncated one reads short */
    char *p1 = ddp_xasprintf("%s%s.@%x", x->b1, CONT_A, C_P0);
    size_t pn;
    uint8_t *pd = tu_read_file(p1, &pn);
    tu_write_file(p1, pd, pn - 10);
    assert_int_equal(ddp_backupstore_open(x->b2, &s), S_OK);
    uint8_t buf[100];
    ULONG got;
    assert_int_equal(rd(s, CONT_A, C_P0 + C_P1 - 50, 100, buf, &got), S_OK);
    assert_int_equal(got, 40);
    unlink(p1);
    IDedupReadFileCallback_Release(s);
    assert_int_equal(ddp_backupstore_open(x->b2, &s), S_OK);
    assert_int_equal(rd(s, CONT_A, C_P0 + 5, 10, buf, &got), HR_FILE_NOT_FOUND);
    expect_bytes(s, CONT_A, 5, 10, x->c);
    IDedupReadFileCallback_Release(s);
    tu_write_file(p1, pd, pn);
    free(pd);
    free(p1);
    free(saved);
    free(m0);
}

/* ---- manifest parser ---- */

static char *sample_manifest(size_t *n)
{
    ddp_manifest m;
    mf_init(&m, DDP_BACKUP_FMT_DIR, 1, 0x44);
    m.previous = ddp_strdup("prev dir%");
    memset(m.previous_id, 0x55, sizeof m.previous_id);
    mf_add(&m, 'D', "/a b");
    mf_file(&m, "/a b/file\nwith newline", 10, 1, -1);
    ddp_mf_entry *e = mf_add(&m, 'F', "/stub");
    e->is_stub = 1;
    e->size = DDP_STUB_SIZE;
    mf_add(&m, 'L', "/link");
    ddp_mf_entry *c = mf_container(&m, CONT_A, 300);
    mf_piece(c, 0, 0, 100, -1, CONT_A);
    mf_piece(c, 1, 100, 200, -1, "/x.@64");
    char *text = ddp_manifest_encode(&m, n);
    ddp_manifest_free(&m);
    return text;
}

static void test_manifest_roundtrip(void **state)
{
    (void)state;
    size_t n;
    char *text = sample_manifest(&n);
    ddp_manifest m;
    assert_int_equal(ddp_manifest_parse((uint8_t *)text, n, "sample", 0, &m), S_OK);
    assert_int_equal(m.level, 1);
    assert_string_equal(m.previous, "prev dir%");
    assert_int_equal(m.count, 5);
    const ddp_mf_entry *e = ddp_manifest_find(&m, "/a b/file\nwith newline");
    assert_non_null(e);
    assert_int_equal(e->size, 10);
    assert_true(ddp_manifest_has_parent(&m, "/a b/other"));
    assert_false(ddp_manifest_has_parent(&m, "/zzz/other"));
    e = ddp_manifest_find(&m, CONT_A);
    assert_non_null(e);
    assert_int_equal(e->npieces, 2);
    assert_string_equal(e->pieces[1].file, "/x.@64");
    size_t n2;
    char *again = ddp_manifest_encode(&m, &n2);
    assert_int_equal(n, n2);
    assert_memory_equal(text, again, n);
    free(again);
    ddp_manifest_free(&m);
    /* header only */
    assert_int_equal(ddp_manifest_parse((uint8_t *)text, n, "sample", 1, &m), S_OK);
    assert_int_equal(m.count, 0);
    ddp_manifest_free(&m);
    free(text);
}

/* Re-seal text with a valid checksum line after editing it. */
static size_t reseal(char *text, size_t n)
{
    char *ck = NULL;
    for (char *p = text; (p = strstr(p, "\nchecksum ")) != NULL; p++) ck = p + 1;
    if (!ck || (size_t)(ck - text) > n) return n;
    size_t body = (size_t)(ck - text);
    snprintf(ck, 27, "checksum %016llX\n", (unsigned long long)ddp_checksum64(text, body));
    return body + 26;
}

static void test_manifest_corruption(void **state)
{
    (void)state;
    size_t n;
    char *text = sample_manifest(&n);
    char *buf = malloc(n + 64);
    ddp_manifest m;
    /* every single-byte change: refused (checksum), never a crash */
    for (size_t i = 0; i < n; i++) {
        memcpy(buf, text, n);
        buf[i] ^= 0x20;
        HRESULT hr = ddp_manifest_parse((uint8_t *)buf, n, "mutated", 0, &m);
        if (SUCCEEDED(hr)) {
            /* only possible when the flip hits the hex case of the checksum digits */
            ddp_manifest_free(&m);
            assert_true(i >= n - 17);
        } else {
            assert_true(hr == DDP_E_INVALID_DATA || hr == DDP_E_UNSUPPORTED_VERSION);
        }
    }
    /* truncations */
    for (size_t k = 0; k < n; k += 7)
        assert_true(FAILED(ddp_manifest_parse((uint8_t *)text, k, "cut", 0, &m)));
    /* edits with a valid checksum: the field checks catch them, and nothing crashes */
    static const char *const bytes = "0-9% /.aZ\n";
    uint64_t accepted = 0;
    for (size_t i = 0; i < n - 27; i++) {
        for (const char *b = bytes; *b; b++) {
            memcpy(buf, text, n);
            buf[n] = '\0';
            buf[i] = *b;
            size_t len = reseal(buf, n);
            HRESULT hr = ddp_manifest_parse((uint8_t *)buf, len, "edited", 0, &m);
            if (SUCCEEDED(hr)) {
                accepted++;
                for (size_t j = 0; j < m.count; j++) assert_int_equal(ddp_path_check_absolute(m.entries[j].path), S_OK);
                ddp_manifest_free(&m);
            }
        }
    }
    assert_true(accepted > 0); /* some edits are legal (a digit in a size) */
    /* specific bad values with a valid checksum */
    static const char *const bad[] = {
        "F f 0 - 10 644 0 0 1.000000000 1.000000000 /../etc/passwd\n",
        "F f 0 - 10 644 0 0 1.000000000 1.000000000 relative\n",
        "F f 0 - 99999999999999999999 644 0 0 1.000000000 1.000000000 /x\n",
        "F f 7 - 10 644 0 0 1.000000000 1.000000000 /x\n",
        "F s 0 - 10 644 0 0 1.000000000 1.000000000 /x\n",
        "F f 0 3 10 644 0 0 1.000000000 1.000000000 /x\n",
        "F f 0 - 10 9999 0 0 1.000000000 1.000000000 /x\n",
        "F f 0 - 10 644 0 0 1.0 1.000000000 /x\n",
        "F f 0 - 10 644 0 0 1.000000000 1.000000000 /x%00y\n",
        "C 300 0000000000000000 1 /c\nP 0 - 0 200 /c\n",
        "C 300 0000000000000000 2 /c\nP 0 - 0 200 /c\nP 0 - 200 100 /c2\n",
        "C 300 0000000000000000 2 /c\nP 0 - 0 200 /c\nP 1 - 100 200 /c2\n",
        "C 300 0000000000000000 9 /c\nP 0 - 0 300 /c\n",
        "C 300 0000000000000000 1 /c\n",
        "D - 755 0 0 1.000000000 /a b\n",
        "D - 755 0 0 1.000000000 /.ddp-backup/manifest\n",
        "Q what\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *doc = ddp_xasprintf("ddp-backup-manifest 1\nid %s\nlevel 1\nformat dir\nsource /v\ntime 1\n"
                                  "store {11111111-1111-1111-1111-111111111111}\nprevious p\nprevious-id %s\n"
                                  "entries 1\n%send\nchecksum 0000000000000000\n",
                                  "00112233445566778899aabbccddeeff", "00112233445566778899aabbccddeeff", bad[i]);
        size_t len = reseal(doc, strlen(doc));
        HRESULT hr = ddp_manifest_parse((uint8_t *)doc, len, "bad", 0, &m);
        if (SUCCEEDED(hr)) {
            print_error("accepted bad manifest line %zu: %s", i, bad[i]);
            ddp_manifest_free(&m);
        }
        assert_int_equal(hr, DDP_E_INVALID_DATA);
        free(doc);
    }
    free(buf);
    free(text);
}

/* Manifest version 2: pack records (K) and the pack fields of F entries. */
static char *packs_doc(int version, const char *format, unsigned level, const char *packs, const char *entries,
                       size_t *len)
{
    size_t nk = 0, ne = 0;
    for (const char *p = packs; *p; p++) nk += *p == '\n';
    for (const char *p = entries; *p; p++) ne += *p == '\n';
    char *head = version >= 2 ? ddp_xasprintf("packs %zu\n", nk) : ddp_strdup("");
    char *doc = ddp_xasprintf("ddp-backup-manifest %d\nid %s\nlevel %u\nformat %s\nsource /v\ntime 1\n"
                              "store {11111111-1111-1111-1111-111111111111}\nprevious %s\nprevious-id %s\n"
                              "%sentries %zu\n%s%send\nchecksum 0000000000000000\n",
                              version, "00112233445566778899aabbccddeeff", level, format, level ? "p" : "-",
                              level ? "00112233445566778899aabbccddeeff" : "-", head, ne, packs, entries);
    free(head);
    *len = reseal(doc, strlen(doc));
    return doc;
}

#define T1 " 644 0 0 1.000000000 1.000000000 "

static void test_manifest_packs(void **state)
{
    (void)state;
    ddp_manifest m;
    size_t len;
    char *doc = packs_doc(2, "dir", 1, "K 0 1 1000\nK 1 1 500\nK 1 2 0\n",
                          "F f 0 - 10" T1 "1 0 /a\n"
                          "F s 1 - 232" T1 "1 268 /b\n"
                          "F f 1 - 5" T1 "- - /c\n"
                          "F f 1 - 0" T1 "2 0 /d\n"
                          "F f 0 - 990" T1 "1 10 /e\n",
                          &len);
    assert_int_equal(ddp_manifest_parse((uint8_t *)doc, len, "packs", 0, &m), S_OK);
    assert_int_equal(m.version, 2);
    assert_int_equal(m.npacks, 3);
    const ddp_mf_entry *e = ddp_manifest_find(&m, "/b");
    assert_non_null(e);
    assert_int_equal(e->pack, 1);
    assert_int_equal(e->pack_off, 268);
    assert_int_equal(e->level, 1);
    e = ddp_manifest_find(&m, "/c");
    assert_int_equal(e->pack, 0);
    const ddp_mf_pack *k = ddp_manifest_pack(&m, 0, 1);
    assert_non_null(k);
    assert_int_equal(k->size, 1000);
    assert_null(ddp_manifest_pack(&m, 0, 2));
    assert_null(ddp_manifest_pack(&m, 2, 1));
    char *pp = ddp_manifest_pack_path(7);
    assert_string_equal(pp, "/.ddp-backup/pack/00000007");
    free(pp);
    size_t n2;
    char *again = ddp_manifest_encode(&m, &n2);
    assert_int_equal(n2, len);
    assert_memory_equal(again, doc, len);
    free(again);
    ddp_manifest_free(&m);
    free(doc);

    static const struct { const char *packs, *entries; } bad[] = {
        { "K 0 1 100\n", "F f 0 - 10" T1 "1 95 /a\n" },                           /* past the pack's end */
        { "K 0 1 100\n", "F f 0 - 101" T1 "1 0 /a\n" },                           /* larger than the pack */
        { "K 0 1 100\n", "F f 0 - 10" T1 "1 0 /a\nF f 0 - 10" T1 "1 5 /b\n" },    /* overlap */
        { "K 0 1 100\n", "F f 0 - 10" T1 "1 0 /a\nF f 0 - 10" T1 "1 0 /b\n" },    /* the same bytes twice */
        { "K 0 1 9223372036854775807\n", "F f 0 - 10" T1 "1 9223372036854775800 /a\n" }, /* wraps */
        { "K 0 1 100\n", "F f 0 - 10" T1 "1 18446744073709551615 /a\n" },         /* huge offset */
        { "K 0 1 99999999999999999999\n", "F f 0 - 10" T1 "1 0 /a\n" },           /* huge pack size */
        { "K 0 1 100\n", "F f 0 - 10" T1 "2 0 /a\n" },                            /* pack not listed */
        { "K 0 1 100\n", "F f 1 - 10" T1 "1 0 /a\n" },                            /* pack of another level */
        { "K 0 2 100\nK 0 1 100\n", "F f 0 - 10" T1 "1 0 /a\n" },                 /* out of order */
        { "K 0 1 100\nK 0 1 100\n", "F f 0 - 10" T1 "1 0 /a\n" },                 /* listed twice */
        { "K 5 1 100\n", "F f 0 - 10" T1 "- - /a\n" },                            /* level past the backup's */
        { "K 0 0 100\n", "F f 0 - 10" T1 "- - /a\n" },                            /* pack 0 */
        { "K 0 100000000 100\n", "F f 0 - 10" T1 "- - /a\n" },                    /* number too large */
        { "K 0 1\n", "F f 0 - 10" T1 "- - /a\n" },                                /* short K line */
        { "K 0 1 100\n", "F f 0 - 10" T1 "0 0 /a\n" },                            /* pack 0 in an entry */
        { "K 0 1 100\n", "F f 0 - 10" T1 "- 5 /a\n" },                            /* half a pack field */
        { "K 0 1 100\n", "F f 0 - 10" T1 "1 - /a\n" },
        { "K 0 1 100\n", "F f 0 - 10 644 0 0 1.000000000 1.000000000 /a\n" },     /* version 1 F line */
        { "", "K 0 1 100\nF f 0 - 10" T1 "- - /a\n" },                            /* K among the entries */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        doc = packs_doc(2, "dir", 1, bad[i].packs, bad[i].entries, &len);
        HRESULT hr = ddp_manifest_parse((uint8_t *)doc, len, "bad packs", 0, &m);
        if (SUCCEEDED(hr)) {
            print_error("accepted bad pack manifest %zu\n", i);
            ddp_manifest_free(&m);
        }
        assert_int_equal(hr, DDP_E_INVALID_DATA);
        free(doc);
    }
    /* the pack count must match the K lines */
    doc = packs_doc(2, "dir", 0, "K 0 1 100\n", "F f 0 - 10" T1 "1 0 /a\n", &len);
    char *at = strstr(doc, "packs 1");
    at[6] = '2';
    len = reseal(doc, len);
    assert_int_equal(ddp_manifest_parse((uint8_t *)doc, len, "count", 0, &m), DDP_E_INVALID_DATA);
    free(doc);
    /* no packs in a tar backup; no pack fields in version 1 */
    doc = packs_doc(2, "tar", 0, "K 0 1 100\n", "F f 0 1 10" T1 "1 0 /a\n", &len);
    assert_int_equal(ddp_manifest_parse((uint8_t *)doc, len, "tar", 0, &m), DDP_E_INVALID_DATA);
    free(doc);
    doc = packs_doc(1, "dir", 0, "", "F f 0 - 10" T1 "1 0 /a\n", &len);
    assert_int_equal(ddp_manifest_parse((uint8_t *)doc, len, "v1", 0, &m), DDP_E_INVALID_DATA);
    free(doc);
    /* version 1 still reads; version 3 does not */
    doc = packs_doc(1, "dir", 0, "", "F f 0 - 10 644 0 0 1.000000000 1.000000000 /a\n", &len);
    assert_int_equal(ddp_manifest_parse((uint8_t *)doc, len, "v1", 0, &m), S_OK);
    assert_int_equal(ddp_manifest_find(&m, "/a")->pack, 0);
    ddp_manifest_free(&m);
    free(doc);
    doc = packs_doc(3, "dir", 0, "", "", &len);
    assert_int_equal(ddp_manifest_parse((uint8_t *)doc, len, "v3", 0, &m), DDP_E_UNSUPPORTED_VERSION);
    free(doc);
}

static void test_normalize_relpath(void **state)
{
    (void)state;
    char *out;
    assert_int_equal(ddp_backup_normalize_relpath("a/b.txt", &out), S_OK);
    assert_string_equal(out, "a/b.txt");
    free(out);
    assert_int_equal(ddp_backup_normalize_relpath("./a//b/./c/", &out), S_OK);
    assert_string_equal(out, "a/b/c");
    free(out);
    static const char *const bad[] = { "", "/etc/passwd", "..", "a/../b", "a/..", ".", "./", ".ddp-backup/manifest" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(ddp_backup_normalize_relpath(bad[i], &out), E_INVALIDARG);
        assert_null(out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dir_store, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_open_autodetect, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_tar_common_and_sequential, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_tar_plan_and_readahead, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_tar_damaged, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_set_mapping, set_setup, set_teardown),
        cmocka_unit_test_setup_teardown(test_set_chain_checks, set_setup, set_teardown),
        cmocka_unit_test(test_manifest_roundtrip),
        cmocka_unit_test(test_manifest_corruption),
        cmocka_unit_test(test_manifest_packs),
        cmocka_unit_test(test_normalize_relpath),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
