/* SPDX-License-Identifier: MIT */
/*
 * fuzz_tar.c: libFuzzer target for the tar backup store (lib/backupstore_tar.c,
 * with the manifest parser behind it): the archive is the fuzzer's input.
 *
 * A tar backup comes from tape or from anywhere a backup application keeps
 * it; ddp reads it forward, member by member, trusting nothing in it. The
 * input is written to a memfd and opened as an archive:
 *
 *   - ddp_tar_reader_open, then every member in order (ddp_tar_reader_goto,
 *     ddp_tar_reader_read to its end), then a member behind the current one
 *     (a second pass);
 *   - ddp_backupstore_open_tar and, through IDedupReadFileCallback, reads of
 *     every store file the manifest names (whole, in pieces), reads at
 *     hostile offsets (the end, past it, near 2^63) and of hostile paths
 *     ("..", "//", a relative path, a path with a trailing "/", one that is
 *     too long), OrderContainersRestore with the manifest's containers and
 *     PreviewContainerRead.
 *
 * Checked: every failure has a detail; no read returns more bytes than
 * asked; a bad path is refused (E_INVALIDARG) and the other hostile reads
 * fail or return nothing; a read plan only names listed containers, with
 * offsets >= 0 and lengths > 0; reads at the same place give the same bytes.
 */
#include <sys/stat.h>

#include <ddp/ddpbackup.h>

#include "backup/manifest.h"
#include "backup/tarreader.h"
#include "backup/backupstore_common.h"
#include "backup/backupstore.h"
#include "fuzz_common.h"

#define MAX_READ_TOTAL ((uint64_t)16 << 20) /* bytes read per input, at most */

static void walk_reader(const char *path)
{
    ddp_tar_reader *r = NULL;
    ddp_clear_error();
    HRESULT hr = ddp_tar_reader_open(path, &r);
    FZ_CHECK_DETAIL(hr);
    if (FAILED(hr)) {
        FZ_CHECK(r == NULL);
        return;
    }
    const ddp_manifest *m = ddp_tar_reader_manifest(r);
    uint8_t *buf = ddp_xmalloc(65536);
    uint64_t total = 0;
    for (size_t i = 1; i < m->nmembers && total < MAX_READ_TOTAL; i++) {
        ddp_clear_error();
        hr = ddp_tar_reader_goto(r, i);
        FZ_CHECK_DETAIL(hr);
        if (FAILED(hr)) break;
        uint64_t member_bytes = 0;
        for (;;) {
            size_t got = 0;
            hr = ddp_tar_reader_read(r, buf, 65536, &got);
            FZ_CHECK_DETAIL(hr);
            FZ_CHECK(got <= 65536);
            if (FAILED(hr) || got == 0) break;
            member_bytes += got;
            total += got;
            if (total >= MAX_READ_TOTAL) break;
        }
        if (SUCCEEDED(hr) && total < MAX_READ_TOTAL) FZ_CHECK(member_bytes <= m->members[i].size);
    }
    if (m->nmembers > 2 && total < MAX_READ_TOTAL) {
        ddp_clear_error();
        hr = ddp_tar_reader_goto(r, 1); /* behind: a new pass */
        FZ_CHECK_DETAIL(hr);
    }
    free(buf);
    ddp_tar_reader_close(r);
}

static void hostile_reads(IDedupReadFileCallback *s, const char *good)
{
    static char bad_paths[][64] = { "/../etc/passwd", "/.ddp/../../x", "//.ddp/Settings/identity",
                                    ".ddp/Settings/identity", "/.ddp/Settings/", "/./.ddp", "" };
    uint8_t buf[64];
    for (size_t i = 0; i < sizeof bad_paths / sizeof bad_paths[0]; i++) {
        ULONG got = 77;
        ddp_clear_error();
        HRESULT hr = IDedupReadFileCallback_ReadBackupFile(s, bad_paths[i], 0, sizeof buf, buf, &got, 0);
        FZ_CHECK(FAILED(hr));
        FZ_CHECK_DETAIL(hr);
    }
    char *longp = ddp_xmalloc(5000);
    memset(longp, 'a', 4999);
    longp[0] = '/';
    longp[4999] = '\0';
    ULONG got = 0;
    FZ_CHECK(FAILED(IDedupReadFileCallback_ReadBackupFile(s, longp, 0, sizeof buf, buf, &got, 0)));
    free(longp);
    if (!good) return;
    char *p = ddp_strdup(good);
    const LONGLONG offs[] = { -1, INT64_MIN, INT64_MAX, INT64_MAX - 63, (LONGLONG)1 << 62 };
    for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
        got = 0;
        ddp_clear_error();
        HRESULT hr = IDedupReadFileCallback_ReadBackupFile(s, p, offs[i], sizeof buf, buf, &got, 0);
        FZ_CHECK(FAILED(hr) || got == 0);
        FZ_CHECK_DETAIL(hr);
    }
    free(p);
}

static void walk_store(const char *path)
{
    IDedupReadFileCallback *s = NULL;
    ddp_clear_error();
    HRESULT hr = ddp_backupstore_open_tar(path, &s);
    FZ_CHECK_DETAIL(hr);
    if (FAILED(hr)) return;

    /* The manifest again, to know what to ask for. */
    ddp_tar_reader *r = NULL;
    if (FAILED(ddp_tar_reader_open(path, &r))) {
        hostile_reads(s, NULL);
        IDedupReadFileCallback_Release(s);
        return;
    }
    const ddp_manifest *m = ddp_tar_reader_manifest(r);
    BSTR conts[64];
    ULONG ncont = 0;
    const char *good = NULL;
    uint64_t total = 0;
    uint8_t *buf = ddp_xmalloc(1 << 20);
    uint8_t *again = ddp_xmalloc(4096);
    for (size_t i = 0; i < m->count && total < MAX_READ_TOTAL; i++) {
        const ddp_mf_entry *e = &m->entries[i];
        if (e->type != 'C' && !(e->type == 'F' && strncmp(e->path, "/.ddp/", 6) == 0)) continue;
        if (e->type == 'C' && ncont < 64) conts[ncont++] = e->path;
        if (!good) good = e->path;
        char *p = ddp_strdup(e->path);
        uint64_t size = e->size < MAX_READ_TOTAL ? e->size : MAX_READ_TOTAL;
        for (uint64_t off = 0; off < size + 1 && total < MAX_READ_TOTAL;) {
            ULONG want = (ULONG)(size - off + 1 < (1 << 20) ? size - off + 1 : (1 << 20));
            ULONG got = 0;
            ddp_clear_error();
            hr = IDedupReadFileCallback_ReadBackupFile(s, p, (LONGLONG)off, want, buf, &got, 0);
            FZ_CHECK_DETAIL(hr);
            if (FAILED(hr)) break;
            FZ_CHECK(got <= want);
            if (got == 0) break;
            /* The first bytes again: the same answer. */
            ULONG k = got < 4096 ? got : 4096, got2 = 0;
            if (SUCCEEDED(IDedupReadFileCallback_ReadBackupFile(s, p, (LONGLONG)off, k, again, &got2, 0)) &&
                got2 == k)
                FZ_CHECK(memcmp(again, buf, k) == 0);
            off += got;
            total += got + k;
        }
        free(p);
    }
    ULONG nplan = 0;
    DEDUP_CONTAINER_EXTENT *plan = NULL;
    ddp_clear_error();
    hr = IDedupReadFileCallback_OrderContainersRestore(s, ncont, conts, &nplan, &plan);
    FZ_CHECK_DETAIL(hr);
    if (SUCCEEDED(hr) && plan) {
        for (ULONG k = 0; k < nplan; k++) {
            FZ_CHECK(plan[k].ContainerIndex < ncont);
            FZ_CHECK(plan[k].StartOffset >= 0 && plan[k].Length > 0);
        }
    }
    free(plan);
    if (ncont > 0) {
        DDP_FILE_EXTENT ext[2] = { { 64, 0 }, { 4096, 128 } };
        (void)IDedupReadFileCallback_PreviewContainerRead(s, conts[0], 2, ext);
    }
    hostile_reads(s, good);
    free(buf);
    free(again);
    ddp_tar_reader_close(r);
    IDedupReadFileCallback_Release(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = fz_memfile(data, size, path);
    walk_reader(path);
    walk_store(path);
    close(fd);
    return 0;
}
