/* SPDX-License-Identifier: MIT */
/*
 * tarreader.c: reading a tar backup forward, member by member, as a tape is
 * read (tarreader.h). The first member is the manifest, read and checked at
 * open; every later member's header is checked against it (name, type,
 * size): an archive that does not match its manifest is DDP_E_INVALID_DATA,
 * a truncated one DDP_E_FILE_CORRUPT. Going to a member behind the current
 * position starts a new pass from the start of the archive (counted).
 * Used by the tar store (backupstore_tar.c) and by extract.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <archive.h>
#include <archive_entry.h>

#include "backup/tarreader.h"
#include "base/util.h"

#define TAR_BLOCK ((size_t)1 << 20)


struct ddp_tar_reader {
    char *path;
    struct archive *a;
    ddp_manifest m;
    size_t cur;        /* member whose header was read last (0: the manifest) */
    uint64_t pos;      /* data bytes of cur consumed */
    int need_reopen;   /* the archive handle failed: the next access starts a new pass */
    int broken;
    uint64_t passes;
};

static HRESULT tr_error(ddp_tar_reader *r, const char *what)
{
    int err = archive_errno(r->a);
    const char *msg = archive_error_string(r->a);
    r->need_reopen = 1;
    r->broken = 1;
    if (err > 0 && err != EILSEQ && err != EINVAL)
        return ddp_fail(ddp_hresult_from_errno(err), "tar backup %s: %s: %s", r->path, what,
                        msg ? msg : strerror(err));
    return ddp_fail(DDP_E_FILE_CORRUPT, "tar backup %s: %s: %s", r->path, what,
                    msg ? msg : "damaged or truncated archive");
}

/* Start a pass: open the archive and read the manifest's header. */
static HRESULT tr_start_pass(ddp_tar_reader *r, struct archive_entry **ae)
{
    if (r->a) archive_read_free(r->a);
    r->a = archive_read_new();
    if (!r->a) abort();
    archive_read_support_filter_all(r->a);
    archive_read_support_format_tar(r->a);
    r->need_reopen = 0;
    r->broken = 0;
    r->cur = 0;
    r->pos = 0;
    if (archive_read_open_filename(r->a, r->path, TAR_BLOCK) != ARCHIVE_OK) return tr_error(r, "opening");
    r->passes++;
    int rc = archive_read_next_header(r->a, ae);
    if (rc == ARCHIVE_EOF) {
        r->broken = 1;
        return ddp_fail(DDP_E_INVALID_DATA, "tar backup %s: empty archive", r->path);
    }
    if (rc < ARCHIVE_WARN) return tr_error(r, "reading the first member");
    const char *name = archive_entry_pathname(*ae);
    if (!name || strcmp(name, DDP_MANIFEST_PATH) != 0 || archive_entry_filetype(*ae) != AE_IFREG) {
        r->broken = 1;
        return ddp_fail(DDP_E_INVALID_DATA, "tar backup %s: the first member is not %s (not a ddp backup)",
                        r->path, DDP_MANIFEST_PATH);
    }
    return S_OK;
}

static const char *type_name(char t)
{
    return t == 'D' ? "a directory" : t == 'L' ? "a symlink" : "a file";
}

/* Read the next member's header and check it against the manifest. */
static HRESULT tr_next(ddp_tar_reader *r)
{
    struct archive_entry *ae;
    size_t want = r->cur + 1;
    if (want >= r->m.nmembers)
        return ddp_fail(E_INVALIDARG, "tar backup %s: no member %zu", r->path, want);
    int rc = archive_read_next_header(r->a, &ae);
    if (rc == ARCHIVE_EOF) {
        r->need_reopen = r->broken = 1;
        return ddp_fail(DDP_E_FILE_CORRUPT, "tar backup %s: the archive ends before member %zu of %zu (truncated)",
                        r->path, want, r->m.nmembers - 1);
    }
    if (rc < ARCHIVE_WARN) return tr_error(r, "reading a member header");
    r->cur = want;
    r->pos = 0;
    const ddp_mf_member *mb = &r->m.members[want];
    const ddp_mf_entry *e = &r->m.entries[mb->entry];
    const char *name = archive_entry_pathname(ae);
    size_t nl = name ? strlen(name) : 0;
    if (nl > 0 && name[nl - 1] == '/') nl--;
    int ok = name && nl == strlen(mb->path + 1) && memcmp(name, mb->path + 1, nl) == 0;
    mode_t ft = archive_entry_filetype(ae);
    if (ok) {
        if (e->type == 'D') ok = ft == AE_IFDIR;
        else if (e->type == 'L') ok = ft == AE_IFLNK;
        else ok = ft == AE_IFREG && archive_entry_size_is_set(ae) && (uint64_t)archive_entry_size(ae) == mb->size;
    }
    if (!ok) {
        r->need_reopen = r->broken = 1;
        return ddp_fail(DDP_E_INVALID_DATA,
                        "tar backup %s: member %zu is '%s', the manifest says %s %s of %" PRIu64 " bytes",
                        r->path, want, name ? name : "?", type_name(e->type), mb->path, mb->size);
    }
    return S_OK;
}

HRESULT ddp_tar_reader_read(ddp_tar_reader *r, void *buf, size_t n, size_t *got)
{
    *got = 0;
    if (r->need_reopen) return ddp_fail(E_FAIL, "tar backup %s: not positioned", r->path);
    uint8_t *p = buf;
    while (*got < n) {
        la_ssize_t k = archive_read_data(r->a, p + *got, n - *got);
        if (k < 0) return tr_error(r, "reading member data");
        if (k == 0) break;
        *got += (size_t)k;
        r->pos += (uint64_t)k;
    }
    return S_OK;
}

HRESULT ddp_tar_reader_open(const char *archive, ddp_tar_reader **out)
{
    *out = NULL;
    ddp_tar_reader *r = ddp_xcalloc(1, sizeof *r);
    r->path = ddp_strdup(archive);
    struct archive_entry *ae = NULL;
    HRESULT hr = tr_start_pass(r, &ae);
    if (SUCCEEDED(hr) && !ae) hr = ddp_fail(DDP_E_UNEXPECTED, "tar backup %s: no first member", archive);
    if (SUCCEEDED(hr)) {
        la_int64_t size = archive_entry_size(ae);
        if (!archive_entry_size_is_set(ae) || size <= 0 || (uint64_t)size > DDP_MANIFEST_MAX_SIZE) {
            hr = ddp_fail(DDP_E_INVALID_DATA, "tar backup %s: manifest of %lld bytes", archive, (long long)size);
        } else {
            uint8_t *buf = ddp_xmalloc((size_t)size);
            size_t got;
            hr = ddp_tar_reader_read(r, buf, (size_t)size, &got);
            if (SUCCEEDED(hr) && got != (size_t)size)
                hr = ddp_fail(DDP_E_FILE_CORRUPT, "tar backup %s: manifest truncated", archive);
            if (SUCCEEDED(hr)) {
                char *what = ddp_xasprintf("%s:%s", archive, DDP_MANIFEST_PATH);
                hr = ddp_manifest_parse(buf, got, what, 0, &r->m);
                free(what);
            }
            if (SUCCEEDED(hr) && r->m.format != DDP_BACKUP_FMT_TAR)
                hr = ddp_fail(DDP_E_INVALID_DATA, "tar backup %s: its manifest describes a directory backup", archive);
            free(buf);
        }
    }
    if (FAILED(hr)) {
        ddp_tar_reader_close(r);
        return hr;
    }
    *out = r;
    return S_OK;
}

const ddp_manifest *ddp_tar_reader_manifest(const ddp_tar_reader *r) { return &r->m; }
int ddp_tar_reader_broken(const ddp_tar_reader *r) { return r->broken; }
uint64_t ddp_tar_reader_passes(const ddp_tar_reader *r) { return r->passes; }

/* Is the reader before the start of member m's data (reachable forward)? */
static int tr_can_reach(const ddp_tar_reader *r, size_t m, uint64_t off)
{
    if (r->need_reopen) return 0;
    if (m > r->cur) return 1;
    return m == r->cur && off >= r->pos;
}

HRESULT ddp_tar_reader_seek(ddp_tar_reader *r, size_t m, uint64_t off, ddp_tar_pass_fn fn, void *ctx)
{
    if (m >= r->m.nmembers) return ddp_fail(E_INVALIDARG, "tar backup %s: no member %zu", r->path, m);
    if (!tr_can_reach(r, m, off)) {
        struct archive_entry *ae;
        HRESULT hr = tr_start_pass(r, &ae);
        if (FAILED(hr)) return hr;
    }
    while (r->cur < m) {
        HRESULT hr = tr_next(r);
        if (FAILED(hr)) return hr;
        if (fn && r->cur < m && FAILED(hr = fn(ctx, r->cur))) return hr;
    }
    return S_OK;
}

HRESULT ddp_tar_reader_goto(ddp_tar_reader *r, size_t m)
{
    if (m == 0) return ddp_fail(E_INVALIDARG, "tar backup %s: no member %zu", r->path, m);
    return ddp_tar_reader_seek(r, m, 0, NULL, NULL);
}

size_t ddp_tar_reader_current(const ddp_tar_reader *r) { return r->cur; }
uint64_t ddp_tar_reader_pos(const ddp_tar_reader *r) { return r->pos; }

void ddp_tar_reader_close(ddp_tar_reader *r)
{
    if (!r) return;
    if (r->a) archive_read_free(r->a);
    ddp_manifest_free(&r->m);
    free(r->path);
    free(r);
}

