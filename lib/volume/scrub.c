/* SPDX-License-Identifier: MIT */
/*
 * scrub.c: integrity scrubbing (Windows: Start-DedupJob -Type Scrubbing).
 * Design in docs/MAINTENANCE.md. Three passes:
 *
 * 1. Containers. Every container of the store (the catalog's data and
 *    stream-map containers, and the hotspot containers in Hotspot/) is read
 *    whole: its header (checksum, and that it names this store, kind, id and
 *    generation), then every record: header checksum and limits, payload
 *    checksum, decoding, SHA-256, and for stream maps their structure. DEAD
 *    records are checked by header only (their payload is punched out). A
 *    compacted (version-2) container's redirection table must decode, name
 *    every record of the file and nothing else; references (local ids) are
 *    resolved through it in pass 2. A
 *    damaged header does not end the walk: the next valid record is
 *    searched for (magic, header checksum, and either its payload checksum
 *    or a valid header right after it), and the bytes in between are one
 *    damaged region. Invalid bytes at the end of a
 *    container beyond what the catalog knows to be valid are a torn tail
 *    left by a crash (cut by the next job), not damage. Memory: the offset of
 *    every record (8 bytes each), to check references in pass 2.
 *
 * 2. Stubs. Every file that claims to be a stub (232 bytes with the stub's
 *    text or magic) is authenticated; its stream map is read and checked
 *    against it (record hash, size, whole-file hash), and every chunk it
 *    names must be a record found in pass 1. A reference to a damaged record
 *    adds the stub's path to that damage's list of affected files (only
 *    those paths are kept, so memory stays bounded by the damage) and tells
 *    what the damaged record should hold (hash, codec, lengths), which is
 *    what a repair needs when the damaged part is the header.
 *
 * 3. Repair (--repair; scrub_repair.c). A damaged record is mended in place from an intact
 *    record with the same hash, type, codec and lengths: its hotspot copy
 *    (found in pass 1) or any other copy (one more pass over every record
 *    header, only when needed); the bytes are written over the damaged ones,
 *    fsynced and read back through every check. A damaged record that no
 *    file references (an unreferenced record, a hotspot copy with no copy of
 *    its own) is retired as a DEAD record (gc's next compaction drops it). A
 *    container header is rewritten from the catalog. A stub with one damaged
 *    byte is mended when exactly one byte value at one position makes its
 *    MAC verify (the MAC then vouches for the result; a stub cannot be
 *    forged this way without the key). A stub with bytes appended to it
 *    (found in pass 2 among the files longer than a stub: its first 232
 *    bytes a valid stub of this volume) is rebuilt as a regular file, its
 *    content followed by the appended bytes. Everything else is reported as
 *    not mended, with the files it affects.
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

#include "volume/scrub_internal.h"

static int item_kind_for(const ddp_mcont *c)
{
    return c->kind == DDP_KIND_STREAM ? DDP_SCRUB_STREAMMAP
         : c->kind == DDP_KIND_HOTSPOT ? DDP_SCRUB_HOTSPOT
                                       : DDP_SCRUB_RECORD;
}

static dmg *add_item(scrub_ctx *s, int kind, int sub, ddp_mcont *c, const char *file, uint64_t off, uint64_t end,
                     const char *fmt, ...) __attribute__((format(printf, 8, 9)));
static dmg *add_item(scrub_ctx *s, int kind, int sub, ddp_mcont *c, const char *file, uint64_t off, uint64_t end,
                     const char *fmt, ...)
{
    if (s->nd == s->dcap) {
        s->dcap = s->dcap ? s->dcap * 2 : 16;
        s->d = ddp_xrealloc(s->d, s->dcap * sizeof *s->d);
    }
    dmg *d = &s->d[s->nd++];
    memset(d, 0, sizeof *d);
    d->kind = kind;
    d->sub = sub;
    d->c = c;
    d->off = off;
    d->end = end;
    d->file = ddp_strdup(file);
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&d->what, fmt, ap) < 0) abort();
    va_end(ap);
    if (c && (sub == SUB_REGION || sub == SUB_PAYLOAD)) c->ndamage++;
    if (s->cb && s->cb->file_problem) s->cb->file_problem(s->cb->ctx, d->file, DDP_E_FILE_CORRUPT, d->what);
    return d;
}

static void add_file(dmg *d, const char *path)
{
    for (size_t i = 0; i < d->nfiles; i++)
        if (strcmp(d->files[i], path) == 0) return;
    if (d->nfiles == d->fcap) {
        d->fcap = d->fcap ? d->fcap * 2 : 4;
        d->files = ddp_xrealloc(d->files, d->fcap * sizeof *d->files);
    }
    d->files[d->nfiles++] = ddp_strdup(path);
}

/* The damaged region of c that holds off, or NULL. */
dmg *scrub_find_damage(scrub_ctx *s, const ddp_mcont *c, uint64_t off)
{
    if (!c->ndamage) return NULL;
    for (size_t i = 0; i < s->nd; i++) {
        dmg *d = &s->d[i];
        if (d->c == c && (d->sub == SUB_REGION || d->sub == SUB_PAYLOAD) && off >= d->off && off < d->end) return d;
    }
    return NULL;
}

static uint8_t *grow(uint8_t **buf, size_t *cap, size_t n)
{
    if (n > *cap) {
        free(*buf);
        *cap = n < 65536 ? 65536 : n;
        *buf = ddp_xmalloc(*cap);
    }
    return *buf;
}

/* A read descriptor for c (the last one is kept open). */
static int cont_fd(scrub_ctx *s, ddp_mcont *c)
{
    if (s->fd_c == c) return s->fd;
    if (s->fd >= 0) close(s->fd);
    s->fd_c = NULL;
    s->fd = open(c->path, O_RDONLY | O_CLOEXEC);
    if (s->fd >= 0) s->fd_c = c;
    return s->fd;
}

void scrub_drop_fd(scrub_ctx *s)
{
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
    s->fd_c = NULL;
}

/* ======================================================================
 * Pass 1: containers
 * ====================================================================== */

/* The next whole valid record in [from, size) of fd, or 0. */
static uint64_t resync(scrub_ctx *s, int fd, const char *what, uint64_t from, uint64_t size, HRESULT *err)
{
    uint8_t *win = ddp_xmalloc(WINDOW);
    uint64_t found = 0, pos = from;
    while (!found && pos + DDP_RECORD_HEADER_SIZE <= size) {
        size_t n = size - pos < WINDOW ? (size_t)(size - pos) : WINDOW;
        if (FAILED(*err = ddp_pread_exact(fd, win, n, pos, what))) break;
        for (size_t i = 0; !found && i + 4 <= n;) {
            uint8_t *m = memmem(win + i, n - i, "DREC", 4);
            if (!m) break;
            i = (size_t)(m - win);
            uint64_t at = pos + i++;
            if (at + DDP_RECORD_HEADER_SIZE > size) continue;
            uint8_t hb[DDP_RECORD_HEADER_SIZE];
            if (FAILED(*err = ddp_pread_exact(fd, hb, sizeof hb, at, what))) goto out;
            ddp_record_header h;
            if (FAILED(ddp_record_header_decode_any(hb, &h))) continue;
            if (at + DDP_RECORD_HEADER_SIZE + h.stored_len > size) continue;
            if (h.type != DDP_RECORD_DEAD) {
                uint8_t *p = grow(&s->sbuf, &s->scap, h.stored_len ? h.stored_len : 1);
                if (FAILED(*err = ddp_pread_exact(fd, p, h.stored_len, at + DDP_RECORD_HEADER_SIZE, what))) goto out;
                if (ddp_checksum64(h.stored_len ? (const void *)p : "", h.stored_len) != h.payload_checksum) {
                    /* A damaged payload right after the damaged header still
                     * counts if a valid header (or the end) follows it: the
                     * chain of records goes on from there. */
                    uint64_t next = at + DDP_RECORD_HEADER_SIZE + h.stored_len;
                    uint8_t nb[DDP_RECORD_HEADER_SIZE];
                    ddp_record_header nh;
                    int chained = next == size;
                    if (!chained && next + DDP_RECORD_HEADER_SIZE <= size) {
                        if (FAILED(*err = ddp_pread_exact(fd, nb, sizeof nb, next, what))) goto out;
                        chained = SUCCEEDED(ddp_record_header_decode_any(nb, &nh));
                    }
                    if (!chained) continue;
                }
            }
            found = at;
        }
        if (pos + n >= size) break;
        pos += n - 3;
    }
out:
    ddp_clear_error();
    free(win);
    return found;
}

/* Check the stored payload of h (in s->sbuf) completely. NULL or why not. */
static const char *check_payload(scrub_ctx *s, const ddp_record_header *h, char *why, size_t cap)
{
    uint8_t *dst = grow(&s->lbuf, &s->lcap, h->logical_len ? h->logical_len : 1);
    if (FAILED(ddp_record_payload_decode(h, s->sbuf, dst))) {
        snprintf(why, cap, "%s", ddp_error_detail());
        ddp_clear_error();
        return why;
    }
    if (h->type == DDP_RECORD_STREAMMAP) {
        ddp_streammap m;
        ddp_streammap_init(&m);
        HRESULT hr = ddp_streammap_decode(dst, h->logical_len, &m);
        ddp_streammap_free(&m);
        if (FAILED(hr)) {
            snprintf(why, cap, "the stream map does not decode: %s", ddp_error_detail());
            ddp_clear_error();
            return why;
        }
    }
    return NULL;
}

static void add_hot(scrub_ctx *s, const ddp_mcont *c, const ddp_record_header *h, uint64_t off)
{
    ddp_hotset *hs = &s->hot;
    if (hs->n == hs->cap) {
        hs->cap = hs->cap ? hs->cap * 2 : 64;
        hs->r = ddp_xrealloc(hs->r, hs->cap * sizeof *hs->r);
    }
    ddp_hotrec *r = &hs->r[hs->n++];
    memcpy(r->hash, h->hash, DDP_HASH_SIZE);
    r->id = c->id;
    r->off = off;
    r->stored_len = h->stored_len;
    r->codec = h->codec;
}

/* Damage that runs to the end of the file: a torn tail if it lies beyond
 * what the catalog knows to be valid, else damage. */
static void tail(scrub_ctx *s, ddp_mcont *c, uint64_t off, uint64_t size, const char *why)
{
    if (c->kind == DDP_KIND_HOTSPOT || (!c->sealed && off >= c->catalog_len)) return; /* cut by the next job */
    add_item(s, item_kind_for(c), SUB_REGION, c, c->path, off, size,
             "%s at offset %llu, and nothing valid follows to the end of the file (%llu bytes)", why,
             (unsigned long long)off, (unsigned long long)(size - off));
}

static HRESULT scrub_container(scrub_ctx *s, ddp_mcont *c)
{
    int fd = open(c->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT)
            add_item(s, DDP_SCRUB_CONTAINER, SUB_MISSING, c, c->path, 0, 0, "the container file is missing");
        else
            add_item(s, DDP_SCRUB_CONTAINER, SUB_MISSING, c, c->path, 0, 0, "cannot open it: %s", strerror(e));
        return S_OK;
    }
    HRESULT hr = S_OK;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        hr = ddp_fail_errno(errno, "%s", c->path);
        close(fd);
        return hr;
    }
    uint64_t size = (uint64_t)sb.st_size;
    s->rep->containers++;
    s->rep->bytes_checked += size;
    if (size < DDP_CONTAINER_HEADER_SIZE) {
        add_item(s, DDP_SCRUB_CONTAINER, SUB_MISSING, c, c->path, 0, 0, "%llu bytes, shorter than a container header",
                 (unsigned long long)size);
        close(fd);
        return S_OK;
    }
    uint8_t hb[DDP_RECORD_HEADER_SIZE];
    if (FAILED(hr = ddp_pread_exact(fd, hb, DDP_CONTAINER_HEADER_SIZE, 0, c->path))) goto out;
    ddp_container_header ch;
    if (FAILED(ddp_container_header_decode(hb, &ch))) {
        add_item(s, DDP_SCRUB_CONTAINER, SUB_BADHDR, c, c->path, 0, DDP_CONTAINER_HEADER_SIZE, "header: %s",
                 ddp_error_detail());
        ddp_clear_error();
    } else if (memcmp(ch.store_id, s->ms.store_id, DDP_STORE_ID_SIZE) != 0 || ch.kind != c->kind || ch.id != c->id ||
               ch.generation != c->generation) {
        add_item(s, DDP_SCRUB_CONTAINER, SUB_BADHDR, c, c->path, 0, DDP_CONTAINER_HEADER_SIZE,
                 "its header names another container (kind %u, id %u, generation %u%s)", ch.kind, ch.id,
                 ch.generation, memcmp(ch.store_id, s->ms.store_id, DDP_STORE_ID_SIZE) ? ", another store" : "");
    } else if (ch.redirect_len && !c->redir_loaded) {
        /* A compacted container: its redirection table must decode; every
         * record of the file must be in it and it must name nothing else
         * (counted below). */
        ddp_redirect_free(&c->redir);
        HRESULT ht = ddp_redirect_load(fd, c->path, &ch, &c->redir);
        if (FAILED(ht)) {
            if (ht != DDP_E_FILE_CORRUPT) {
                hr = ht;
                goto out;
            }
            add_item(s, DDP_SCRUB_CONTAINER, SUB_BADHDR, c, c->path, DDP_REDIRECT_TABLE_OFFSET,
                     DDP_REDIRECT_FIRST_RECORD(ch.redirect_len), "redirection table: %s", ddp_error_detail());
            ddp_clear_error();
        }
    }
    c->redir_loaded = 1;
    uint64_t in_table = 0; /* records found at an offset the table names */

    uint16_t want = c->kind == DDP_KIND_STREAM ? DDP_RECORD_STREAMMAP : DDP_RECORD_CHUNK;
    uint64_t off = DDP_CONTAINER_HEADER_SIZE;
    while (off < size) {
        if (size - off < DDP_RECORD_HEADER_SIZE) {
            tail(s, c, off, size, "incomplete record header");
            break;
        }
        if (FAILED(hr = ddp_pread_exact(fd, hb, sizeof hb, off, c->path))) goto out;
        ddp_record_header h;
        char why[512];
        const char *bad = NULL;
        if (FAILED(ddp_record_header_decode_any(hb, &h))) {
            snprintf(why, sizeof why, "%s", ddp_error_detail());
            ddp_clear_error();
            bad = why;
        } else if (off + DDP_RECORD_HEADER_SIZE + h.stored_len > size) {
            bad = "record runs past the end of the file";
        }
        if (bad) {
            uint64_t next = resync(s, fd, c->path, off + 1, size, &hr);
            if (FAILED(hr)) goto out;
            if (!next) {
                tail(s, c, off, size, bad);
                break;
            }
            add_item(s, item_kind_for(c), SUB_REGION, c, c->path, off, next,
                     "%s (%llu bytes up to the next valid record)", bad, (unsigned long long)(next - off));
            off = next;
            continue;
        }
        uint64_t end = off + DDP_RECORD_HEADER_SIZE + h.stored_len;
        if (h.type == DDP_RECORD_SEAL) {
            if (end != size)
                add_item(s, DDP_SCRUB_CONTAINER, SUB_AFTERSEAL, c, c->path, end, size,
                         "%llu bytes after the seal record", (unsigned long long)(size - end));
            break;
        }
        if (h.type == DDP_RECORD_REDIRECT && off == DDP_REDIRECT_TABLE_OFFSET && c->redir.count) {
            off = end; /* the table itself, checked when it was loaded */
            continue;
        }
        uint64_t lid;
        if (c->redir.count && h.type != DDP_RECORD_REDIRECT) {
            if (ddp_mcont_id_at(c, off, &lid)) {
                in_table++;
            } else {
                dmg *d = add_item(s, item_kind_for(c), SUB_PAYLOAD, c, c->path, off, end,
                                  "a record its container's redirection table does not name");
                d->have_hdr = 1;
                d->h = h;
                off = end;
                continue;
            }
        }
        if (h.type == DDP_RECORD_DEAD) {
            off = end;
            continue;
        }
        s->rep->records++;
        ddp_offvec_push(&c->offs, off);
        if (h.type != want) {
            dmg *d = add_item(s, item_kind_for(c), SUB_PAYLOAD, c, c->path, off, end,
                              "a record of type %u in a container of kind %u", h.type, c->kind);
            d->have_hdr = 1;
            d->h = h;
            off = end;
            continue;
        }
        if (h.type == DDP_RECORD_STREAMMAP) s->rep->stream_maps++;
        uint8_t *p = grow(&s->sbuf, &s->scap, h.stored_len ? h.stored_len : 1);
        if (FAILED(hr = ddp_pread_exact(fd, p, h.stored_len, off + DDP_RECORD_HEADER_SIZE, c->path))) goto out;
        const char *pbad = check_payload(s, &h, why, sizeof why);
        if (pbad) {
            dmg *d = add_item(s, item_kind_for(c), SUB_PAYLOAD, c, c->path, off, end, "%s", pbad);
            d->have_hdr = 1;
            d->h = h;
        } else if (c->kind == DDP_KIND_HOTSPOT) {
            add_hot(s, c, &h, off);
        }
        off = end;
    }
    if (SUCCEEDED(hr) && c->redir.count && in_table != c->redir.count)
        add_item(s, DDP_SCRUB_CONTAINER, SUB_BADHDR, c, c->path, DDP_REDIRECT_TABLE_OFFSET,
                 DDP_REDIRECT_FIRST_RECORD(c->redirect_len),
                 "its redirection table names %u records, %llu of them found in the file", c->redir.count,
                 (unsigned long long)in_table);
out:
    close(fd);
    ddp_offvec_finish(&c->offs);
    return hr;
}

/* ======================================================================
 * Pass 2: stubs
 * ====================================================================== */

static void set_expect(dmg *d, uint16_t type, uint8_t codec, uint32_t stored, uint32_t logical,
                       const uint8_t hash[DDP_HASH_SIZE])
{
    if (d->have_expect) return;
    d->have_expect = 1;
    memset(&d->expect, 0, sizeof d->expect);
    d->expect.type = type;
    d->expect.codec = codec;
    d->expect.stored_len = stored;
    d->expect.logical_len = logical;
    memcpy(d->expect.hash, hash, DDP_HASH_SIZE);
}

/* Check what the stub st of path references. Problems that are not damage
 * already reported go to *problem (malloc'd). trusted: st authenticated; an
 * untrusted stub (one that fails its MAC) only adds its path to the damage
 * it names, for the report: it never tells a repair what to write. */
HRESULT scrub_check_stub_refs(scrub_ctx *s, const ddp_stub *st, const char *path, int trusted, char **problem)
{
    *problem = NULL;
    ddp_mcont *sc = ddp_mstore_find(&s->ms, DDP_KIND_STREAM, st->stream_container);
    if (!sc) {
        *problem = ddp_xasprintf("it names stream-map container %u, which the catalog does not list",
                                 st->stream_container);
        return S_OK;
    }
    /* The stub names the stream map by local id: where it lies now. */
    uint64_t at = 0;
    if (FAILED(ddp_mcont_resolve(sc, st->stream_offset, &at))) {
        *problem = ddp_xasprintf("its stream map: %s", ddp_error_detail());
        ddp_clear_error();
        return S_OK;
    }
    dmg *d = scrub_find_damage(s, sc, at);
    if (d) {
        add_file(d, path);
        if (trusted)
            set_expect(d, DDP_RECORD_STREAMMAP, DDP_CODEC_NONE, st->streammap_stored_len, st->streammap_stored_len,
                       st->streammap_hash);
        s->refs_complete = 0;
        return S_OK;
    }
    if (!ddp_offvec_has(&sc->offs, at)) {
        *problem = ddp_xasprintf("its stream map should be at %s offset %llu, which is not a record", sc->path,
                                 (unsigned long long)at);
        return S_OK;
    }
    int fd = cont_fd(s, sc);
    if (fd < 0) return ddp_fail_errno(errno, "opening container %s", sc->path);
    ddp_record_header h;
    uint8_t *rec = NULL;
    if (FAILED(ddp_read_raw_record(fd, sc->path, at, &h, &rec))) {
        *problem = ddp_xasprintf("its stream map cannot be read: %s", ddp_error_detail());
        ddp_clear_error();
        s->refs_complete = 0;
        return S_OK;
    }
    ddp_streammap m;
    ddp_streammap_init(&m);
    if (h.type != DDP_RECORD_STREAMMAP) {
        *problem = ddp_xasprintf("the record at %s offset %llu is not a stream map", sc->path,
                                 (unsigned long long)at);
    } else if (trusted && (memcmp(h.hash, st->streammap_hash, DDP_HASH_SIZE) != 0 ||
                           h.stored_len != st->streammap_stored_len)) {
        *problem = ddp_xasprintf("the record at %s offset %llu is not the stream map it names (hash or length differ)",
                                 sc->path, (unsigned long long)at);
    } else if (FAILED(ddp_streammap_decode(rec + DDP_RECORD_HEADER_SIZE, h.logical_len, &m))) {
        *problem = ddp_xasprintf("its stream map does not decode: %s", ddp_error_detail());
        ddp_clear_error();
    } else if (trusted && (m.file_size != st->file_size || memcmp(m.file_hash, st->file_hash, DDP_HASH_SIZE) != 0)) {
        *problem = ddp_xasprintf("its stream map (%s offset %llu) does not match it (size or whole-file hash)",
                                 sc->path, (unsigned long long)at);
    }
    free(rec);
    if (*problem) {
        ddp_streammap_free(&m);
        s->refs_complete = 0;
        return S_OK;
    }
    for (uint32_t i = 0; i < m.count && !*problem; i++) {
        const ddp_streammap_entry *e = &m.entries[i];
        ddp_mcont *dc = ddp_mstore_find(&s->ms, DDP_KIND_DATA, e->loc.container);
        if (!dc) {
            *problem = ddp_xasprintf("chunk %u is in data container %u, which the catalog does not list", i,
                                     e->loc.container);
            break;
        }
        uint64_t cat = 0;
        if (FAILED(ddp_mcont_resolve(dc, e->loc.offset, &cat))) {
            *problem = ddp_xasprintf("chunk %u: %s", i, ddp_error_detail());
            ddp_clear_error();
            break;
        }
        dmg *dd = scrub_find_damage(s, dc, cat);
        if (dd) {
            add_file(dd, path);
            if (trusted) set_expect(dd, DDP_RECORD_CHUNK, e->loc.codec, e->loc.stored_len, e->loc.logical_len, e->hash);
        } else if (!ddp_offvec_has(&dc->offs, cat)) {
            *problem = ddp_xasprintf("chunk %u should be at %s offset %llu (record %llu), which is not a record", i,
                                     dc->path, (unsigned long long)cat, (unsigned long long)e->loc.offset);
        }
    }
    ddp_streammap_free(&m);
    return S_OK;
}

/* Does the file claim to be a stub? 232 bytes with the text or the magic,
 * or a shorter file that begins like one (a truncated stub). */
static int claims_stub(const uint8_t *buf, size_t n)
{
    if (n == DDP_STUB_SIZE)
        return memcmp(buf + DDP_STUB_TEXT_SIZE, "DDPSTUB1", 8) == 0 || memcmp(buf, "ddp stub:", 9) == 0;
    return n >= DDP_STUB_PREFIX_SIZE && n < DDP_STUB_SIZE && ddp_stub_has_prefix(buf, n);
}

/* A file longer than a stub (open at fd, fst its fstat): a stub with bytes
 * appended to it (docs/FORMAT.md) is reported; any other is not a stub. */
static HRESULT scrub_appended(scrub_ctx *s, int fd, const struct stat *fst, const char *path)
{
    ddp_stub st;
    uint64_t appended = 0;
    HRESULT hr = ddp_volume_read_appended_stub(s->v, fd, fst, path, &st, &appended);
    ddp_clear_error(); /* a file that cannot be read is not one ddp wrote */
    if (hr != S_OK) return S_OK;
    s->rep->stubs++;
    dmg *d = add_item(s, DDP_SCRUB_STUB, SUB_STUB_APPENDED, NULL, path, 0, 0,
                      "%llu bytes were appended to this stub (written to it directly, not through ddp mount): "
                      "its bytes are neither the file's content nor a stub; `ddp scrub --repair` restores the "
                      "content (%llu bytes) followed by them",
                      (unsigned long long)appended, (unsigned long long)st.file_size);
    add_file(d, path);
    d->seen = *fst;
    /* What it references is checked like any stub's (and gc keeps it). */
    char *problem = NULL;
    hr = scrub_check_stub_refs(s, &st, path, 1, &problem);
    if (problem) {
        dmg *r = add_item(s, DDP_SCRUB_STUB, SUB_STUB_REF, NULL, path, 0, 0, "%s", problem);
        add_file(r, path);
        free(problem);
    }
    return hr;
}

static HRESULT scrub_file(scrub_ctx *s, const char *path, const struct stat *seen)
{
    /* Beneath the root, never through a link, O_NONBLOCK, the file the walk saw. */
    int fd = -1;
    struct stat fst;
    HRESULT ho = ddp_volume_open_regular(s->v, path, O_RDONLY, seen, &fd, &fst);
    if (FAILED(ho)) {
        /* gone, or replaced by something else since the walk: not a stub to check */
        if (ho != HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND) && ho != HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED) &&
            ho != HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND))
            add_item(s, DDP_SCRUB_STUB, SUB_UNREADABLE, NULL, path, 0, 0, "cannot open it: %s", ddp_error_detail());
        ddp_clear_error();
        return S_OK;
    }
    if (fst.st_size > DDP_STUB_SIZE) {
        HRESULT hr = scrub_appended(s, fd, &fst, path);
        close(fd);
        return hr;
    }
    uint8_t buf[DDP_STUB_SIZE + 1];
    ssize_t got = pread(fd, buf, sizeof buf, 0);
    close(fd);
    if (got < 0 || !claims_stub(buf, (size_t)got)) return S_OK;
    ddp_stub st;
    if (FAILED(ddp_stub_decode(buf, (size_t)got, s->v->id.key, &st))) {
        dmg *d = add_item(s, DDP_SCRUB_STUB, SUB_STUB_MAC, NULL, path, 0, 0, "the stub does not authenticate: %s",
                          ddp_error_detail());
        ddp_clear_error();
        add_file(d, path);
        /* Which damage would it be affected by, if it were mended? */
        char *ignored = NULL;
        HRESULT hr = S_OK;
        if (SUCCEEDED(ddp_stub_peek(buf, (size_t)got, &st)) &&
            memcmp(st.store_id, s->v->id.store_id, DDP_STORE_ID_SIZE) == 0)
            hr = scrub_check_stub_refs(s, &st, path, 0, &ignored);
        ddp_clear_error();
        free(ignored);
        return hr;
    }
    if (memcmp(st.store_id, s->v->id.store_id, DDP_STORE_ID_SIZE) != 0) {
        dmg *d = add_item(s, DDP_SCRUB_STUB, SUB_STUB_REF, NULL, path, 0, 0, "a stub of another chunk store");
        add_file(d, path);
        return S_OK;
    }
    s->rep->stubs++;
    char *problem = NULL;
    HRESULT hr = scrub_check_stub_refs(s, &st, path, 1, &problem);
    if (problem) {
        dmg *d = add_item(s, DDP_SCRUB_STUB, SUB_STUB_REF, NULL, path, 0, 0, "%s", problem);
        add_file(d, path);
        free(problem);
    }
    return hr;
}

static HRESULT scrub_one(ddp_volume *v, FTSENT *e, void *ctx)
{
    (void)v;
    /* Stubs, and files longer than a stub (one may be a stub with bytes
     * appended: its first bytes are read). */
    if (!ddp_volume_may_be_stub(e->fts_statp) && e->fts_statp->st_size <= DDP_STUB_SIZE) return S_OK;
    scrub_ctx *s = ctx;
    HRESULT hr = scrub_file(s, e->fts_path, e->fts_statp);
    if (s->cb && s->cb->step) s->cb->step(s->cb->ctx, "stubs", s->rep->stubs, 0);
    return hr;
}

static HRESULT scrub_unreadable(ddp_volume *v, FTSENT *e, void *ctx)
{
    (void)v;
    scrub_ctx *s = ctx;
    add_item(s, DDP_SCRUB_STUB, SUB_UNREADABLE, NULL, e->fts_path, 0, 0,
             "cannot read it (%s): the stubs in it were not checked", strerror(e->fts_errno));
    s->refs_complete = 0;
    return S_OK;
}

static HRESULT scrub_stubs(scrub_ctx *s) { return ddp_volume_walk(s->v, scrub_one, scrub_unreadable, s); }

/* ======================================================================
 * The job
 * ====================================================================== */

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int cmp_hotrec(const void *a, const void *b)
{
    return memcmp(((const ddp_hotrec *)a)->hash, ((const ddp_hotrec *)b)->hash, DDP_HASH_SIZE);
}

static void build_report(scrub_ctx *s, int repair)
{
    ddp_scrub_report *r = s->rep;
    r->count = s->nd;
    r->items = ddp_xcalloc(s->nd ? s->nd : 1, sizeof *r->items);
    size_t nall = 0, cap = 0;
    char **all = NULL;
    for (size_t i = 0; i < s->nd; i++) {
        dmg *d = &s->d[i];
        ddp_scrub_item *it = &r->items[i];
        it->kind = d->kind;
        it->file = d->file;
        it->offset = d->off;
        it->what = d->what;
        it->repaired = d->repaired;
        it->repair = d->repair ? d->repair : ddp_strdup(repair ? "could not mend" : "");
        it->nfiles = d->nfiles;
        it->files = d->files;
        r->damaged++;
        if (d->repaired) {
            r->repaired++;
        } else {
            r->unrepaired++;
            for (size_t k = 0; k < d->nfiles; k++) {
                if (nall == cap) {
                    cap = cap ? cap * 2 : 16;
                    all = ddp_xrealloc(all, cap * sizeof *all);
                }
                all[nall++] = d->files[k];
            }
        }
    }
    if (nall) {
        qsort(all, nall, sizeof *all, cmp_str);
        for (size_t k = 0; k < nall; k++)
            if (k == 0 || strcmp(all[k], all[k - 1]) != 0) r->files_affected++;
    }
    free(all);
    free(s->d);
    s->d = NULL;
    s->nd = 0;
}

DDP_API void ddp_scrub_report_free(ddp_scrub_report *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->count; i++) {
        ddp_scrub_item *it = &r->items[i];
        free(it->file);
        free(it->what);
        free(it->repair);
        for (size_t k = 0; k < it->nfiles; k++) free(it->files[k]);
        free(it->files);
    }
    free(r->items);
    memset(r, 0, sizeof *r);
}

DDP_API HRESULT ddp_scrub(ddp_volume *v, int repair, const ddp_job_callbacks *cb, ddp_scrub_report *out)
{
    ddp_clear_error();
    if (!v || !out) return E_POINTER;
    memset(out, 0, sizeof *out);
    HRESULT jr = ddp_volume_require_job(v);
    if (SUCCEEDED(jr) && repair) jr = ddp_volume_require_writable(v, "scrub --repair");
    if (FAILED(jr)) return jr;
    double t0 = ddp_now();
    scrub_ctx s;
    memset(&s, 0, sizeof s);
    s.v = v;
    s.repair = repair;
    s.cb = cb;
    s.rep = out;
    s.fd = -1;
    s.refs_complete = 1;

    HRESULT hr = ddp_mstore_load(v->store_dir, v->id.store_id, &s.ms);
    /* Hotspot containers first: their intact copies are the repair sources. */
    for (int pass = 0; SUCCEEDED(hr) && pass < 2; pass++)
        for (size_t i = 0; SUCCEEDED(hr) && i < s.ms.n; i++)
            if ((s.ms.c[i].kind == DDP_KIND_HOTSPOT) == (pass == 0)) {
                hr = scrub_container(&s, &s.ms.c[i]);
                if (cb && cb->step) cb->step(cb->ctx, "containers", out->containers, s.ms.n);
            }
    if (s.hot.n > 1) qsort(s.hot.r, s.hot.n, sizeof *s.hot.r, cmp_hotrec); /* ddp_hotset_find's order */
    if (SUCCEEDED(hr)) hr = scrub_stubs(&s);
    if (SUCCEEDED(hr) && repair && s.nd) hr = scrub_repair_all(&s);
    scrub_drop_fd(&s);
    build_report(&s, repair);
    ddp_hotset_free(&s.hot);
    ddp_mstore_free(&s.ms);
    free(s.sbuf);
    free(s.lbuf);
    out->seconds = ddp_now() - t0;
    if (SUCCEEDED(hr) && out->unrepaired)
        hr = ddp_fail(DDP_E_FILE_CORRUPT, "%s: %llu damaged item(s) %s, affecting %llu file(s)", v->root,
                      (unsigned long long)out->unrepaired, repair ? "could not be mended" : "found",
                      (unsigned long long)out->files_affected);

    char line[512];
    snprintf(line, sizeof line,
             "scrub 0x%08X repair=%d containers=%llu records=%llu stubs=%llu bytes=%llu damaged=%llu repaired=%llu "
             "unrepaired=%llu seconds=%.1f",
             (unsigned)hr, repair ? 1 : 0, (unsigned long long)out->containers, (unsigned long long)out->records,
             (unsigned long long)out->stubs, (unsigned long long)out->bytes_checked,
             (unsigned long long)out->damaged, (unsigned long long)out->repaired,
             (unsigned long long)out->unrepaired, out->seconds);
    ddp_volume_log_job(v, line);
    return hr;
}
