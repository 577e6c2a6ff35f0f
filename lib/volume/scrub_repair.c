/* SPDX-License-Identifier: MIT */
/*
 * scrub_repair.c: pass 3 of the scrub job, `ddp scrub --repair`
 * (docs/MAINTENANCE.md): a damaged record is mended in place from an intact
 * copy with the same hash, type, codec and lengths (its hotspot copy, or
 * any other copy found by one more pass over every record header), written,
 * fsynced and read back through every check; a damaged record nothing
 * references is retired as DEAD; a container header is rewritten from the
 * catalog; a stub with one damaged byte is mended when exactly one value
 * makes its MAC verify; a stub with bytes appended is rebuilt as a regular
 * file. Everything else is reported as not mended.
 */
#include <errno.h>
#include <fcntl.h>
#include <fts.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/catalog.h"
#include "base/codec.h"
#include "base/fileattr.h"
#include "base/hash.h"
#include "store/storewalk.h"
#include "volume/maintenance.h"
#include "store/streammap.h"
#include "store/stub.h"
#include "base/util.h"
#include "volume/replace.h"
#include "volume/scrub_internal.h"
#include "volume/volume.h"

/* ======================================================================
 * Pass 3: repair
 * ====================================================================== */

/* The record the damage should hold, if known. */
static const ddp_record_header *wanted(const dmg *d)
{
    if (d->have_hdr) return &d->h;
    if (d->have_expect) return &d->expect;
    return NULL;
}

static int same_record(const ddp_record_header *a, const ddp_record_header *b)
{
    return a->type == b->type && a->codec == b->codec && a->stored_len == b->stored_len &&
           a->logical_len == b->logical_len && memcmp(a->hash, b->hash, DDP_HASH_SIZE) == 0;
}

/* Write rec (a whole checked record) over d's bytes and read it back. */
static HRESULT write_record(scrub_ctx *s, dmg *d, const uint8_t *rec, size_t n, const ddp_record_header *want)
{
    scrub_drop_fd(s);
    int fd = open(d->c->path, O_RDWR | O_CLOEXEC);
    if (fd < 0) return ddp_fail_errno(errno, "opening container %s", d->c->path);
    HRESULT hr = ddp_pwrite_all(fd, rec, n, d->off, d->c->path);
    if (SUCCEEDED(hr)) hr = ddp_fsync_fd(fd, d->c->path);
    if (SUCCEEDED(hr)) {
        ddp_record_header h;
        uint8_t *back = NULL;
        hr = ddp_read_raw_record(fd, d->c->path, d->off, &h, &back);
        if (SUCCEEDED(hr) && !same_record(&h, want))
            hr = ddp_fail(DDP_E_FILE_CORRUPT, "%s offset %llu: the mended record does not read back", d->c->path,
                          (unsigned long long)d->off);
        free(back);
    }
    close(fd);
    return hr;
}

/* Mend d from the record at (src, off), which must be an intact copy. */
static HRESULT mend_from(scrub_ctx *s, dmg *d, ddp_mcont *src, uint64_t off, int *done)
{
    *done = 0;
    const ddp_record_header *want = wanted(d);
    int fd = open(src->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return S_OK;
    ddp_record_header h;
    uint8_t *rec = NULL;
    HRESULT hr = ddp_read_raw_record(fd, src->path, off, &h, &rec);
    close(fd);
    if (FAILED(hr)) {
        ddp_clear_error();
        return S_OK;
    }
    size_t n = DDP_RECORD_HEADER_SIZE + (size_t)h.stored_len;
    if (same_record(&h, want) && d->off + n <= d->end) {
        hr = write_record(s, d, rec, n, want);
        if (SUCCEEDED(hr)) {
            *done = 1;
            d->repaired = 1;
            free(d->repair);
            d->repair = ddp_xasprintf("mended from %s offset %llu", src->path, (unsigned long long)off);
        }
    } else if (memcmp(h.hash, want->hash, DDP_HASH_SIZE) == 0) {
        d->other_encoding = 1;
    }
    free(rec);
    return hr;
}

typedef struct copy_hunt {
    scrub_ctx *s;
    ddp_mcont *c;
} copy_hunt;

static int hunt_found(void *ctx, const ddp_record_header *h, uint64_t off)
{
    copy_hunt *hu = ctx;
    scrub_ctx *s = hu->s;
    if (h->type != DDP_RECORD_CHUNK && h->type != DDP_RECORD_STREAMMAP) return 0;
    for (size_t i = 0; i < s->nd; i++) {
        dmg *d = &s->d[i];
        if (!d->wanted || d->src_c) continue;
        if (d->c == hu->c && off >= d->off && off < d->end) continue; /* itself */
        const ddp_record_header *w = wanted(d);
        if (memcmp(w->hash, h->hash, DDP_HASH_SIZE) != 0 || w->type != h->type) continue;
        if (!same_record(w, h)) {
            d->other_encoding = 1;
            continue;
        }
        if (scrub_find_damage(s, hu->c, off)) continue; /* a damaged copy */
        d->src_c = hu->c;
        d->src_off = off;
    }
    return 0;
}

/* One pass over every record header, for copies of the wanted records. */
static HRESULT hunt_copies(scrub_ctx *s)
{
    for (size_t i = 0; i < s->ms.n; i++) {
        ddp_mcont *c = &s->ms.c[i];
        int fd = open(c->path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        struct stat sb;
        HRESULT hr = S_OK;
        if (fstat(fd, &sb) == 0) {
            copy_hunt hu = { s, c };
            uint64_t stop;
            const char *why;
            hr = ddp_walk_headers(fd, c->path, (uint64_t)sb.st_size, hunt_found, &hu, &stop, &why);
        }
        close(fd);
        if (FAILED(hr)) return hr;
    }
    return S_OK;
}

/* Retire d as a DEAD record (nothing references it). */
static HRESULT retire(scrub_ctx *s, dmg *d, int *done)
{
    *done = 0;
    ddp_record_header h;
    uint64_t len = d->end - d->off;
    if (len < DDP_RECORD_HEADER_SIZE) return S_OK;
    if (d->have_hdr) {
        h = d->h;
    } else {
        if (len - DDP_RECORD_HEADER_SIZE > DDP_STREAMMAP_MAX_LOGICAL) return S_OK;
        memset(&h, 0, sizeof h);
        h.codec = DDP_CODEC_NONE;
        h.stored_len = h.logical_len = (uint32_t)(len - DDP_RECORD_HEADER_SIZE);
    }
    if (DDP_RECORD_HEADER_SIZE + (uint64_t)h.stored_len != len) return S_OK;
    uint8_t hb[DDP_RECORD_HEADER_SIZE];
    ddp_record_header_encode_dead(&h, hb);
    scrub_drop_fd(s);
    int fd = open(d->c->path, O_RDWR | O_CLOEXEC);
    if (fd < 0) return ddp_fail_errno(errno, "opening container %s", d->c->path);
    HRESULT hr = ddp_pwrite_all(fd, hb, sizeof hb, d->off, d->c->path);
    if (SUCCEEDED(hr)) hr = ddp_fsync_fd(fd, d->c->path);
    if (SUCCEEDED(hr)) {
        /* Give the space back, as gc would (whole blocks inside the payload). */
        uint64_t a = (d->off + DDP_RECORD_HEADER_SIZE + PUNCH_BLOCK - 1) / PUNCH_BLOCK * PUNCH_BLOCK;
        uint64_t b = d->end / PUNCH_BLOCK * PUNCH_BLOCK;
        if (b > a && fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)a, (off_t)(b - a)) == 0)
            (void)ddp_fsync_fd(fd, d->c->path);
        *done = 1;
        d->repaired = 1;
        free(d->repair);
        d->repair = ddp_strdup("no file uses it: retired as a dead record");
    }
    close(fd);
    return hr;
}

static HRESULT mend_container_header(scrub_ctx *s, dmg *d)
{
    ddp_mcont *c = d->c;
    scrub_drop_fd(s);
    int fd = open(c->path, O_RDWR | O_CLOEXEC);
    if (fd < 0) return ddp_fail_errno(errno, "opening container %s", c->path);
    uint8_t old[DDP_CONTAINER_HEADER_SIZE];
    HRESULT hr = ddp_pread_exact(fd, old, sizeof old, 0, c->path);
    if (SUCCEEDED(hr)) {
        ddp_container_header h;
        memset(&h, 0, sizeof h);
        h.kind = c->kind;
        memcpy(h.store_id, s->ms.store_id, DDP_STORE_ID_SIZE);
        h.id = c->id;
        h.generation = c->generation;
        h.created = ddp_get_le64(old + 40); /* informational only */
        /* A compacted container: its redirection table, the record at 64,
         * gives the header's table length. */
        uint8_t rb[DDP_RECORD_HEADER_SIZE];
        ddp_record_header rh;
        if (SUCCEEDED(ddp_pread_exact(fd, rb, sizeof rb, DDP_REDIRECT_TABLE_OFFSET, c->path)) &&
            SUCCEEDED(ddp_record_header_decode(rb, &rh)) && rh.type == DDP_RECORD_REDIRECT)
            h.redirect_len = rh.stored_len;
        ddp_clear_error();
        uint8_t hb[DDP_CONTAINER_HEADER_SIZE];
        ddp_container_header_encode(&h, hb);
        hr = ddp_pwrite_all(fd, hb, sizeof hb, 0, c->path);
        if (SUCCEEDED(hr)) hr = ddp_fsync_fd(fd, c->path);
        if (SUCCEEDED(hr)) {
            d->repaired = 1;
            d->repair = ddp_strdup("header rewritten from the catalog");
        }
    }
    close(fd);
    return hr;
}

/* One damaged byte of a stub: the position and value that make the MAC
 * verify, if there is exactly such a fix. 1 mended in buf. */
int ddp_volume_mend_stub_bytes(const ddp_volume *v, uint8_t *buf)
{
    const size_t macd = DDP_STUB_SIZE - DDP_HASH_SIZE;
    ddp_stub st;
    uint8_t mac[DDP_HASH_SIZE];
    /* The MAC itself, damaged in one byte. */
    ddp_hmac_sha256(v->id.key, DDP_KEY_SIZE, buf, macd, mac);
    int diff = 0;
    for (size_t i = 0; i < DDP_HASH_SIZE; i++) diff += mac[i] != buf[macd + i];
    if (diff == 1) {
        uint8_t t[DDP_STUB_SIZE];
        memcpy(t, buf, macd);
        memcpy(t + macd, mac, DDP_HASH_SIZE);
        if (SUCCEEDED(ddp_stub_decode(t, sizeof t, v->id.key, &st))) {
            memcpy(buf, t, sizeof t);
            return 1;
        }
    }
    /* One byte of the authenticated part. */
    for (size_t i = 0; i < macd; i++) {
        uint8_t orig = buf[i];
        for (unsigned b = 0; b < 256; b++) {
            if (b == orig) continue;
            buf[i] = (uint8_t)b;
            ddp_hmac_sha256(v->id.key, DDP_KEY_SIZE, buf, macd, mac);
            if (ddp_ct_equal(mac, buf + macd, DDP_HASH_SIZE) &&
                SUCCEEDED(ddp_stub_decode(buf, DDP_STUB_SIZE, v->id.key, &st)))
                return 1;
        }
        buf[i] = orig;
    }
    ddp_clear_error();
    return 0;
}

static HRESULT mend_stub(scrub_ctx *s, dmg *d)
{
    const char *path = d->file;
    /* Beneath the root from a held directory fd, never through a link, a
     * regular file (volume/replace.h); read, mended and replaced by fds. */
    ddp_replace r;
    HRESULT hr = ddp_replace_begin(s->v, path, NULL, &r);
    if (hr != S_OK) {
        d->repair = hr == S_FALSE ? ddp_strdup("could not mend: it is no longer a regular file")
                                  : ddp_xasprintf("could not mend: %s", ddp_error_detail());
        ddp_clear_error();
        return S_OK;
    }
    uint8_t buf[DDP_STUB_SIZE];
    if (r.st.st_size != DDP_STUB_SIZE || FAILED(ddp_pread_exact(r.fd, buf, sizeof buf, 0, path)) ||
        !ddp_volume_mend_stub_bytes(s->v, buf)) {
        ddp_clear_error();
        ddp_replace_end(&r);
        d->repair = ddp_strdup("could not mend: more than one byte of the stub is damaged (restore the file from "
                               "a backup)");
        return S_OK;
    }
    hr = ddp_replace_temp(s->v, &r);
    if (SUCCEEDED(hr)) hr = ddp_write_all(r.tmpfd, buf, sizeof buf, path);
    if (SUCCEEDED(hr)) hr = ddp_fileattr_copy(r.fd, r.tmpfd, &r.st, path);
    if (SUCCEEDED(hr)) hr = ddp_fsync_fd(r.tmpfd, path);
    if (SUCCEEDED(hr)) hr = ddp_replace_commit(s->v, &r, &r.st, 1);
    ddp_replace_end(&r);
    if (FAILED(hr)) {
        d->repair = ddp_xasprintf("could not mend: %s", ddp_error_detail());
        ddp_clear_error();
        return S_OK;
    }
    /* Authenticated now: check what it references, as pass 2 would have. */
    ddp_stub sv;
    char *problem = NULL;
    if (SUCCEEDED(ddp_stub_decode(buf, sizeof buf, s->v->id.key, &sv))) hr = scrub_check_stub_refs(s, &sv, path, 1, &problem);
    if (problem) {
        d->repair = ddp_xasprintf("the damaged byte was mended, but: %s", problem);
        free(problem);
    } else {
        d->repaired = 1;
        d->repair = ddp_strdup("one damaged byte mended (the MAC verifies)");
    }
    return hr;
}

/* A stub with bytes appended: rebuilt as the regular file it stands for,
 * its content followed by the appended bytes (the one reading that keeps
 * every byte anyone wrote). */
static HRESULT restore_appended(scrub_ctx *s, dmg *d)
{
    uint64_t content = 0, appended = 0;
    HRESULT hr = ddp_volume_restore_appended(s->v, d->file, &d->seen, &content, &appended);
    if (hr == S_OK) {
        d->repaired = 1;
        d->repair = ddp_xasprintf("restored as a regular file: its content (%llu bytes) followed by the %llu bytes "
                                  "appended to the stub (%llu bytes; owner, mode and times kept)",
                                  (unsigned long long)content, (unsigned long long)appended,
                                  (unsigned long long)content + (unsigned long long)appended);
    } else if (hr == S_FALSE || hr == HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND) ||
               hr == HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED)) {
        d->repair = ddp_strdup("could not restore: it changed since it was checked (run scrub again)");
    } else {
        d->repair = ddp_xasprintf("could not restore: %s", ddp_error_detail());
    }
    ddp_clear_error();
    return S_OK;
}

HRESULT scrub_repair_all(scrub_ctx *s)
{
    HRESULT hr = S_OK;
    size_t n = s->nd; /* items added while repairing are not repaired */
    int need_hunt = 0;
    /* Stubs and container headers first: a mended stub adds its file to the
     * damage it references (so that damage is not retired as unreferenced);
     * a stub left unauthenticated might reference anything. */
    for (size_t i = 0; SUCCEEDED(hr) && i < n; i++) {
        dmg *d = &s->d[i];
        if (d->sub == SUB_STUB_MAC) {
            hr = mend_stub(s, d);
            if (!d->repaired) s->refs_complete = 0;
        } else if (d->sub == SUB_BADHDR) {
            if (d->c->in_catalog) hr = mend_container_header(s, d);
            if (SUCCEEDED(hr) && !d->repaired) d->repair = ddp_strdup("could not mend the container header");
        }
    }
    /* Records: hotspot copies first. */
    for (size_t i = 0; SUCCEEDED(hr) && i < n; i++) {
        dmg *d = &s->d[i];
        if (d->sub != SUB_REGION && d->sub != SUB_PAYLOAD) continue;
        const ddp_record_header *w = wanted(d);
        if (!w) continue;
        int done = 0;
        if (w->type == DDP_RECORD_CHUNK && d->c->kind != DDP_KIND_HOTSPOT) {
            const ddp_hotrec *r = ddp_hotset_find(&s->hot, w->hash);
            for (; !done && r && r < s->hot.r + s->hot.n && memcmp(r->hash, w->hash, DDP_HASH_SIZE) == 0; r++) {
                ddp_mcont *hc = ddp_mstore_find(&s->ms, DDP_KIND_HOTSPOT, r->id);
                if (hc && FAILED(hr = mend_from(s, d, hc, r->off, &done))) break;
            }
        }
        if (!done) {
            d->wanted = 1;
            need_hunt = 1;
        }
    }
    /* Then any other intact copy. */
    if (SUCCEEDED(hr) && need_hunt) hr = hunt_copies(s);
    for (size_t i = 0; SUCCEEDED(hr) && i < n; i++) {
        dmg *d = &s->d[i];
        int done = 0;
        switch (d->sub) {
        case SUB_REGION:
        case SUB_PAYLOAD:
            if (d->repaired) break;
            if (d->src_c) hr = mend_from(s, d, d->src_c, d->src_off, &done);
            if (SUCCEEDED(hr) && !done && d->nfiles == 0 && s->refs_complete) hr = retire(s, d, &done);
            if (SUCCEEDED(hr) && !done) {
                free(d->repair);
                if (!wanted(d))
                    d->repair = ddp_strdup("could not mend: neither the damaged header nor any stream map tells what "
                                           "the record held");
                else if (d->other_encoding)
                    d->repair = ddp_strdup("could not mend: the only intact copies of this data are encoded "
                                           "differently (another codec or length)");
                else
                    d->repair = ddp_strdup("could not mend: no intact copy of this record exists");
            }
            break;
        case SUB_BADHDR:
        case SUB_STUB_MAC:
            break; /* done above */
        case SUB_STUB_APPENDED:
            break; /* below */
        case SUB_MISSING:
            d->repair = ddp_strdup("could not mend: restore the container file from a backup");
            break;
        case SUB_AFTERSEAL:
            d->repair = ddp_strdup("could not mend: nothing is ever written after a seal; look at those bytes");
            break;
        case SUB_STUB_REF:
            d->repair = ddp_strdup("could not mend: the stub names data the store does not have (restore the file "
                                   "from a backup)");
            break;
        default:
            d->repair = ddp_strdup("could not mend");
            break;
        }
    }
    /* Last, stubs with bytes appended: their content is read through every
     * check, so from records mended above. */
    for (size_t i = 0; SUCCEEDED(hr) && i < n; i++)
        if (s->d[i].sub == SUB_STUB_APPENDED) hr = restore_appended(s, &s->d[i]);
    return hr;
}

