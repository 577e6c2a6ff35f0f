/* SPDX-License-Identifier: MIT */
/*
 * manifest.c: the manifest of an optimized backup (.ddp-backup/manifest,
 * docs/BACKUP.md): encoding, and a parser that checks the checksum, every
 * number against its bounds, every path (absolute, no "." or ".."
 * components), contiguous container pieces, unique paths and the tar member
 * order before anything uses the data. A bad manifest is DDP_E_INVALID_DATA
 * with a detail naming the line.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "backup/manifest.h"
#include "base/safepath.h"
#include "backup/backup.h"
#include "store/catalog.h"
#include "base/hash.h"
#include "store/identity.h"
#include "store/stub.h"
#include "base/util.h"
#include "volume/volume.h"

#define COPY_BUF_SIZE ((size_t)1 << 20)
#define TAILSUM_BYTES 4096u
#define MANIFEST_MAX_LINE 65536u
#define MANIFEST_MAX_ENTRIES ((size_t)1 << 28)

/* ================================================================ text */

typedef struct sbuf {
    char *p;
    size_t n, cap;
} sbuf;

static void sb_reserve(sbuf *b, size_t more)
{
    if (b->n + more + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + more + 1) cap *= 2;
    b->p = ddp_xrealloc(b->p, cap);
    b->cap = cap;
}

static void sb_add(sbuf *b, const char *s, size_t n)
{
    sb_reserve(b, n);
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (k < 0) abort();
    sb_reserve(b, (size_t)k);
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)k + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)k;
}

/* Bytes <= 0x20, 0x7F and '%' become %XX, so a line splits on spaces. */
static void sb_escaped(sbuf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p <= 0x20 || *p == 0x7F || *p == '%') {
            char e[3] = { '%', hex[*p >> 4], hex[*p & 15] };
            sb_add(b, e, 3);
        } else {
            sb_add(b, (const char *)p, 1);
        }
    }
}

static void sb_hex(sbuf *b, const uint8_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++) sb_printf(b, "%02x", v[i]);
}

static void sb_member(sbuf *b, int64_t member)
{
    if (member < 0) sb_add(b, "-", 1);
    else sb_printf(b, "%" PRId64, member);
}

/* ============================================================ manifest */

void ddp_manifest_free(ddp_manifest *m)
{
    if (!m) return;
    for (size_t i = 0; i < m->count; i++) {
        ddp_mf_entry *e = &m->entries[i];
        free(e->path);
        free(e->target);
        for (uint32_t j = 0; e->pieces && j < e->npieces; j++) free(e->pieces[j].file);
        free(e->pieces);
    }
    free(m->entries);
    free(m->packs);
    free(m->by_path);
    free(m->members);
    free(m->source);
    free(m->previous);
    memset(m, 0, sizeof *m);
}

char *ddp_manifest_encode(const ddp_manifest *m, size_t *n)
{
    sbuf b = { 0 };
    char guid[39];
    ddp_guid_format(m->store_id, guid);
    sb_printf(&b, "ddp-backup-manifest %u\n", m->version);
    sb_add(&b, "id ", 3);
    sb_hex(&b, m->id, DDP_BACKUP_ID_SIZE);
    sb_printf(&b, "\nlevel %u\nformat %s\nsource ", m->level, m->format == DDP_BACKUP_FMT_TAR ? "tar" : "dir");
    sb_escaped(&b, m->source);
    sb_printf(&b, "\ntime %" PRId64 "\nstore %s\nprevious ", m->time, guid);
    if (m->previous) sb_escaped(&b, m->previous);
    else sb_add(&b, "-", 1);
    sb_add(&b, "\nprevious-id ", 13);
    if (m->previous) sb_hex(&b, m->previous_id, DDP_BACKUP_ID_SIZE);
    else sb_add(&b, "-", 1);
    if (m->version >= DDP_MANIFEST_VERSION_PACKS) sb_printf(&b, "\npacks %zu", m->npacks);
    sb_printf(&b, "\nentries %zu\n", m->count);
    for (size_t i = 0; m->version >= DDP_MANIFEST_VERSION_PACKS && i < m->npacks; i++)
        sb_printf(&b, "K %u %u %" PRIu64 "\n", m->packs[i].level, m->packs[i].number, m->packs[i].size);
    for (size_t i = 0; i < m->count; i++) {
        const ddp_mf_entry *e = &m->entries[i];
        switch (e->type) {
        case 'D':
            sb_add(&b, "D ", 2);
            sb_member(&b, e->member);
            sb_printf(&b, " %o %u %u %" PRId64 ".%09u ", e->mode, e->uid, e->gid, e->mtime_sec, e->mtime_nsec);
            break;
        case 'F':
            sb_printf(&b, "F %c %u ", e->is_stub ? 's' : 'f', e->level);
            sb_member(&b, e->member);
            sb_printf(&b, " %" PRIu64 " %o %u %u %" PRId64 ".%09u %" PRId64 ".%09u ", e->size, e->mode, e->uid,
                      e->gid, e->mtime_sec, e->mtime_nsec, e->ctime_sec, e->ctime_nsec);
            if (m->version >= DDP_MANIFEST_VERSION_PACKS) {
                if (e->pack) sb_printf(&b, "%u %" PRIu64 " ", e->pack, e->pack_off);
                else sb_add(&b, "- - ", 4);
            }
            break;
        case 'L':
            sb_add(&b, "L ", 2);
            sb_member(&b, e->member);
            sb_printf(&b, " %u %u %" PRId64 ".%09u ", e->uid, e->gid, e->mtime_sec, e->mtime_nsec);
            sb_escaped(&b, e->target);
            sb_add(&b, " ", 1);
            break;
        case 'C':
            sb_printf(&b, "C %" PRIu64 " %016" PRIX64 " %u ", e->size, e->tailsum, e->npieces);
            break;
        default:
            abort();
        }
        sb_escaped(&b, e->path);
        sb_add(&b, "\n", 1);
        for (uint32_t j = 0; e->type == 'C' && j < e->npieces; j++) {
            const ddp_mf_piece *p = &e->pieces[j];
            sb_printf(&b, "P %u ", p->level);
            sb_member(&b, p->member);
            sb_printf(&b, " %" PRIu64 " %" PRIu64 " ", p->offset, p->length);
            sb_escaped(&b, p->file);
            sb_add(&b, "\n", 1);
        }
    }
    sb_add(&b, "end\n", 4);
    sb_printf(&b, "checksum %016" PRIX64 "\n", ddp_checksum64(b.p, b.n));
    *n = b.n;
    return b.p;
}

/* ---- parsing ---- */

typedef struct mparser {
    const char *what;
    size_t line;
} mparser;

static HRESULT mbad(const mparser *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static HRESULT mbad(const mparser *ps, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (ps->line)
        return ddp_fail(DDP_E_INVALID_DATA, "backup manifest %s, line %zu: %s", ps->what, ps->line, msg);
    return ddp_fail(DDP_E_INVALID_DATA, "backup manifest %s: %s", ps->what, msg);
}

static int tok_u64(const char *t, uint64_t max, uint64_t *v)
{
    size_t len = strlen(t);
    if (len == 0 || len > 20) return -1;
    uint64_t x = 0;
    for (size_t i = 0; i < len; i++) {
        if (t[i] < '0' || t[i] > '9') return -1;
        unsigned d = (unsigned)(t[i] - '0');
        if (x > (UINT64_MAX - d) / 10) return -1;
        x = x * 10 + d;
    }
    if (x > max) return -1;
    *v = x;
    return 0;
}

static int tok_u32(const char *t, uint32_t max, uint32_t *v)
{
    uint64_t x = 0;
    if (tok_u64(t, max, &x)) return -1;
    *v = (uint32_t)x;
    return 0;
}

static int tok_member(const char *t, int64_t *v)
{
    if (strcmp(t, "-") == 0) { *v = -1; return 0; }
    uint64_t x = 0;
    if (tok_u64(t, INT32_MAX, &x) || x == 0) return -1;
    *v = (int64_t)x;
    return 0;
}

static int tok_mode(const char *t, uint32_t *v)
{
    size_t len = strlen(t);
    if (len == 0 || len > 5) return -1;
    uint32_t x = 0;
    for (size_t i = 0; i < len; i++) {
        if (t[i] < '0' || t[i] > '7') return -1;
        x = x * 8 + (uint32_t)(t[i] - '0');
    }
    if (x > 07777) return -1;
    *v = x;
    return 0;
}

static int tok_time(const char *t, int64_t *sec, uint32_t *nsec)
{
    int neg = 0;
    if (*t == '-') { neg = 1; t++; }
    const char *dot = strchr(t, '.');
    if (!dot || dot == t || dot - t > 18 || strlen(dot + 1) != 9) return -1;
    int64_t s = 0;
    for (const char *p = t; p < dot; p++) {
        if (*p < '0' || *p > '9') return -1;
        s = s * 10 + (*p - '0');
    }
    uint32_t ns = 0;
    for (const char *p = dot + 1; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        ns = ns * 10 + (uint32_t)(*p - '0');
    }
    *sec = neg ? -s : s;
    *nsec = ns;
    return 0;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int tok_hex(const char *t, uint8_t *out, size_t n)
{
    if (strlen(t) != 2 * n) return -1;
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(t[2 * i]), lo = hexval(t[2 * i + 1]);
        if (hi < 0 || lo < 0) return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

static int tok_hex64(const char *t, uint64_t *v)
{
    if (strlen(t) != 16) return -1;
    uint64_t x = 0;
    for (int i = 0; i < 16; i++) {
        int d = hexval(t[i]);
        if (d < 0) return -1;
        x = x << 4 | (uint64_t)d;
    }
    *v = x;
    return 0;
}

/* Unescape %XX; no NUL, not empty. malloc'd or NULL. */
static char *tok_text(const char *t)
{
    size_t len = strlen(t);
    if (len == 0) return NULL;
    char *out = ddp_xmalloc(len + 1);
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        if (t[i] == '%') {
            int hi = i + 2 < len ? hexval(t[i + 1]) : -1;
            int lo = hi >= 0 ? hexval(t[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) { free(out); return NULL; }
            out[k++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[k++] = t[i];
        }
    }
    out[k] = '\0';
    return out;
}

/* A store path ("/a/b", checked). */
static char *tok_path(const char *t)
{
    char *p = tok_text(t);
    if (p && FAILED(ddp_path_check_absolute(p))) {
        ddp_clear_error();
        free(p);
        return NULL;
    }
    return p;
}

/* Split line (modified in place) on single spaces. */
static int split(char *line, char **tok, int max)
{
    int n = 0;
    char *p = line;
    for (;;) {
        if (n == max) return -1;
        tok[n++] = p;
        char *sp = strchr(p, ' ');
        if (!sp) break;
        *sp = '\0';
        p = sp + 1;
    }
    for (int i = 0; i < n; i++)
        if (!*tok[i]) return -1;
    return n;
}

static int cmp_path_idx(const void *a, const void *b, void *ctx)
{
    const ddp_manifest *m = ctx;
    return strcmp(m->entries[*(const size_t *)a].path, m->entries[*(const size_t *)b].path);
}

static int cmp_packed(const void *a, const void *b, void *ctx)
{
    const ddp_manifest *m = ctx;
    const ddp_mf_entry *x = &m->entries[*(const size_t *)a], *y = &m->entries[*(const size_t *)b];
    if (x->level != y->level) return x->level < y->level ? -1 : 1;
    if (x->pack != y->pack) return x->pack < y->pack ? -1 : 1;
    if (x->pack_off != y->pack_off) return x->pack_off < y->pack_off ? -1 : 1;
    return 0;
}

/* The packs are listed in (level, number) order, once each, within the
 * chain; the files packed in one pack do not overlap. */
static HRESULT check_pack_overlaps(const ddp_manifest *m, size_t packed, const mparser *ps)
{
    if (packed == 0) return S_OK;
    size_t *ix = ddp_xmalloc(packed * sizeof *ix);
    size_t k = 0;
    for (size_t i = 0; i < m->count && k < packed; i++)
        if (m->entries[i].type == 'F' && m->entries[i].pack) ix[k++] = i;
    qsort_r(ix, k, sizeof *ix, cmp_packed, (void *)(uintptr_t)m);
    HRESULT hr = S_OK;
    for (size_t i = 1; i < k && SUCCEEDED(hr); i++) {
        const ddp_mf_entry *a = &m->entries[ix[i - 1]], *b = &m->entries[ix[i]];
        if (a->level == b->level && a->pack == b->pack && b->pack_off < a->pack_off + a->size)
            hr = mbad(ps, "%s and %s overlap in pack %u of level %u", a->path, b->path, a->pack, a->level);
    }
    free(ix);
    return hr;
}

const ddp_mf_pack *ddp_manifest_pack(const ddp_manifest *m, uint32_t level, uint32_t number)
{
    size_t lo = 0, hi = m->npacks;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const ddp_mf_pack *k = &m->packs[mid];
        if (k->level == level && k->number == number) return k;
        if (k->level < level || (k->level == level && k->number < number)) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

char *ddp_manifest_pack_path(uint32_t number) { return ddp_xasprintf("/" DDP_PACK_DIR "/%08u", number); }

HRESULT ddp_manifest_index(ddp_manifest *m, const char *what)
{
    mparser ps = { what, 0 };
    free(m->by_path);
    free(m->members);
    m->by_path = NULL;
    m->members = NULL;
    m->nmembers = 0;
    m->by_path = ddp_xmalloc((m->count ? m->count : 1) * sizeof *m->by_path);
    for (size_t i = 0; i < m->count; i++) m->by_path[i] = i;
    qsort_r(m->by_path, m->count, sizeof *m->by_path, cmp_path_idx, m);
    for (size_t i = 1; i < m->count; i++)
        if (strcmp(m->entries[m->by_path[i - 1]].path, m->entries[m->by_path[i]].path) == 0)
            return mbad(&ps, "path %s listed twice", m->entries[m->by_path[i]].path);

    /* The packs: in order, once each, within the chain; only in directory-format backups. */
    if (m->npacks && (m->version < DDP_MANIFEST_VERSION_PACKS || m->format != DDP_BACKUP_FMT_DIR))
        return mbad(&ps, "packs in a backup that cannot have them");
    for (size_t i = 0; i < m->npacks; i++) {
        const ddp_mf_pack *k = &m->packs[i];
        if (k->level > m->level || k->number == 0 || k->number > DDP_PACK_MAX_NUMBER || k->size > INT64_MAX)
            return mbad(&ps, "pack %u of level %u is out of range", k->number, k->level);
        if (i > 0 && (k[-1].level > k->level || (k[-1].level == k->level && k[-1].number >= k->number)))
            return mbad(&ps, "pack %u of level %u is out of order or listed twice", k->number, k->level);
    }

    /* Per-entry rules, and the member count. */
    size_t members = 0, packed = 0;
    for (size_t i = 0; i < m->count; i++) {
        const ddp_mf_entry *e = &m->entries[i];
        if (strcmp(e->path, "/" DDP_MANIFEST_DIR) == 0 ||
            strncmp(e->path, "/" DDP_MANIFEST_DIR "/", sizeof DDP_MANIFEST_DIR + 1) == 0)
            return mbad(&ps, "entry %s inside the manifest directory", e->path);
        if (e->type == 'F' && e->level > m->level)
            return mbad(&ps, "%s: level %u is newer than the backup (%u)", e->path, e->level, m->level);
        if (e->type == 'F' && e->is_stub && e->size != DDP_STUB_SIZE)
            return mbad(&ps, "%s: a stub of %" PRIu64 " bytes", e->path, e->size);
        if (e->type == 'F' && e->pack) {
            const ddp_mf_pack *k = ddp_manifest_pack(m, e->level, e->pack);
            if (!k) return mbad(&ps, "%s: pack %u of level %u is not listed", e->path, e->pack, e->level);
            if (e->size > k->size || e->pack_off > k->size - e->size)
                return mbad(&ps, "%s: bytes %" PRIu64 "+%" PRIu64 " lie past the end of pack %u of level %u (%" PRIu64
                            " bytes)", e->path, e->pack_off, e->size, e->pack, e->level, k->size);
            packed++;
        }
        if (e->type != 'C') {
            if ((m->format == DDP_BACKUP_FMT_TAR) != (e->member >= 0))
                return mbad(&ps, "%s: member index does not fit the format", e->path);
            if (e->member >= 0) members++;
            continue;
        }
        uint64_t off = 0;
        for (uint32_t j = 0; j < e->npieces; j++) {
            const ddp_mf_piece *p = &e->pieces[j];
            if (p->level > m->level || (j > 0 && p->level <= e->pieces[j - 1].level))
                return mbad(&ps, "%s: piece %u has level %u out of order", e->path, j, p->level);
            if (p->offset != off || p->length == 0 || p->length > e->size - off)
                return mbad(&ps, "%s: piece %u (%" PRIu64 "+%" PRIu64 ") is not contiguous within %" PRIu64 " bytes",
                            e->path, j, p->offset, p->length, e->size);
            off += p->length;
            if ((m->format == DDP_BACKUP_FMT_TAR) != (p->member >= 0))
                return mbad(&ps, "%s: piece member index does not fit the format", e->path);
            if (m->format == DDP_BACKUP_FMT_TAR && strcmp(p->file, e->path) != 0)
                return mbad(&ps, "%s: tar piece names another file", e->path);
            if (p->member >= 0) members++;
        }
        if (off != e->size)
            return mbad(&ps, "%s: pieces cover %" PRIu64 " of %" PRIu64 " bytes", e->path, off, e->size);
    }
    HRESULT hr = check_pack_overlaps(m, packed, &ps);
    if (FAILED(hr)) return hr;
    if (m->format != DDP_BACKUP_FMT_TAR) return S_OK;

    /* Tar: members 1..N, each exactly once. */
    if (members >= (size_t)INT32_MAX) return mbad(&ps, "too many members");
    m->nmembers = members + 1;
    m->members = ddp_xcalloc(m->nmembers, sizeof *m->members);
    m->members[0].path = "/" DDP_MANIFEST_PATH;
    m->members[0].entry = SIZE_MAX;
    m->members[0].piece = -1;
    for (size_t i = 1; i < m->nmembers; i++) m->members[i].entry = SIZE_MAX;
    for (size_t i = 0; i < m->count; i++) {
        const ddp_mf_entry *e = &m->entries[i];
        uint32_t np = e->type == 'C' ? e->npieces : 1;
        for (uint32_t j = 0; j < np; j++) {
            int64_t mem = e->type == 'C' ? e->pieces[j].member : e->member;
            if (mem < 1 || (size_t)mem >= m->nmembers)
                return mbad(&ps, "%s: member %" PRId64 " out of range 1..%zu", e->path, mem, m->nmembers - 1);
            ddp_mf_member *slot = &m->members[mem];
            if (slot->entry != SIZE_MAX) return mbad(&ps, "member %" PRId64 " listed twice", mem);
            slot->entry = i;
            slot->path = e->path;
            slot->piece = e->type == 'C' ? (int32_t)j : -1;
            slot->size = e->type == 'C' ? e->pieces[j].length : e->type == 'F' ? e->size : 0;
        }
    }
    return S_OK;
}

HRESULT ddp_manifest_parse(const uint8_t *buf, size_t n, const char *what, int header_only, ddp_manifest *m)
{
    memset(m, 0, sizeof *m);
    mparser ps = { what, 0 };
    if (n < 2 || buf[n - 1] != '\n') return mbad(&ps, "empty or not ending with a newline");
    if (n > DDP_MANIFEST_MAX_SIZE) return mbad(&ps, "larger than %zu bytes", DDP_MANIFEST_MAX_SIZE);
    if (memchr(buf, 0, n)) return mbad(&ps, "contains a NUL byte");
    size_t last = n - 1;
    while (last > 0 && buf[last - 1] != '\n') last--;
    static const char ck[] = "checksum ";
    if (n - last != sizeof ck - 1 + 16 + 1 || memcmp(buf + last, ck, sizeof ck - 1) != 0)
        return mbad(&ps, "no checksum line at the end");
    char sumtxt[17];
    memcpy(sumtxt, buf + last + sizeof ck - 1, 16);
    sumtxt[16] = '\0';
    uint64_t want;
    if (tok_hex64(sumtxt, &want)) return mbad(&ps, "bad checksum line");
    if (ddp_checksum64(buf, last) != want)
        return mbad(&ps, "checksum mismatch (the manifest is damaged)");

    char *line = ddp_xmalloc(MANIFEST_MAX_LINE + 1);
    char *tok[14];
    size_t pos = 0;
    HRESULT hr = S_OK;
    size_t declared = 0, declared_packs = 0;
    int stage = 0;               /* header fields in order, then entries */
    ddp_mf_entry *cur_c = NULL;  /* container waiting for its P lines */
    uint32_t cur_pieces = 0;
    int ended = 0;

    while (pos < last) {
        const uint8_t *nl = memchr(buf + pos, '\n', last - pos);
        size_t len = (size_t)(nl - (buf + pos));
        ps.line++;
        if (len > MANIFEST_MAX_LINE) { hr = mbad(&ps, "line too long"); goto out; }
        memcpy(line, buf + pos, len);
        line[len] = '\0';
        pos += len + 1;
        if (ended) { hr = mbad(&ps, "text after 'end'"); goto out; }
        int nt = split(line, tok, 14);
        if (nt < 1) { hr = mbad(&ps, "malformed line"); goto out; }

        static const char *const header[] = { "ddp-backup-manifest", "id", "level", "format", "source", "time",
                                               "store", "previous", "previous-id", "packs", "entries" };
        if (stage < 11) {
            if (nt != 2 || strcmp(tok[0], header[stage]) != 0) {
                hr = mbad(&ps, "expected '%s <value>'", header[stage]);
                goto out;
            }
            const char *v = tok[1];
            int bad = 0;
            switch (stage) {
            case 0:
                if (tok_u32(v, UINT32_MAX, &m->version)) bad = 1;
                else if (m->version != DDP_MANIFEST_VERSION && m->version != DDP_MANIFEST_VERSION_PACKS) {
                    hr = ddp_fail(DDP_E_UNSUPPORTED_VERSION, "backup manifest %s: version %u (this ddp reads %u and %u)",
                                  what, m->version, DDP_MANIFEST_VERSION, DDP_MANIFEST_VERSION_PACKS);
                    goto out;
                }
                break;
            case 1: bad = tok_hex(v, m->id, DDP_BACKUP_ID_SIZE); break;
            case 2: bad = tok_u32(v, DDP_BACKUP_MAX_LEVEL, &m->level); break;
            case 3:
                if (strcmp(v, "dir") == 0) m->format = DDP_BACKUP_FMT_DIR;
                else if (strcmp(v, "tar") == 0) m->format = DDP_BACKUP_FMT_TAR;
                else bad = 1;
                break;
            case 4: bad = (m->source = tok_text(v)) == NULL; break;
            case 5: {
                uint64_t t = 0;
                bad = tok_u64(v, INT64_MAX, &t);
                m->time = (int64_t)t;
                break;
            }
            case 6: bad = ddp_guid_parse(v, m->store_id) != 0; break;
            case 7:
                if (strcmp(v, "-") != 0) bad = (m->previous = tok_text(v)) == NULL;
                break;
            case 8:
                if (strcmp(v, "-") == 0) bad = m->previous != NULL;
                else bad = !m->previous || tok_hex(v, m->previous_id, DDP_BACKUP_ID_SIZE);
                break;
            case 9: {
                uint64_t c = 0;
                bad = tok_u64(v, MANIFEST_MAX_ENTRIES, &c);
                declared_packs = (size_t)c;
                break;
            }
            case 10: {
                uint64_t c = 0;
                bad = tok_u64(v, MANIFEST_MAX_ENTRIES, &c);
                declared = (size_t)c;
                break;
            }
            }
            if (bad) { hr = mbad(&ps, "bad value for '%s'", header[stage]); goto out; }
            stage++;
            if (stage == 9 && m->version < DDP_MANIFEST_VERSION_PACKS) stage = 10; /* version 1: no packs */
            if (stage == 11) {
                if ((m->level == 0) != (m->previous == NULL)) {
                    hr = mbad(&ps, "level %u does not fit 'previous'", m->level);
                    goto out;
                }
                if (m->format == DDP_BACKUP_FMT_TAR && m->level != 0) {
                    hr = mbad(&ps, "a tar backup cannot be incremental");
                    goto out;
                }
                if (header_only) {
                    free(line);
                    return S_OK;
                }
                m->cap = declared < n / 16 + 1 ? declared : n / 16 + 1;
                m->entries = ddp_xcalloc(m->cap ? m->cap : 1, sizeof *m->entries);
                if (declared_packs > n / 8) { hr = mbad(&ps, "more packs than the manifest can list"); goto out; }
                m->packs = ddp_xcalloc(declared_packs ? declared_packs : 1, sizeof *m->packs);
            }
            continue;
        }

        if (m->npacks < declared_packs) {
            /* K level number size */
            ddp_mf_pack *k = &m->packs[m->npacks];
            if (nt != 4 || strcmp(tok[0], "K") != 0 || tok_u32(tok[1], DDP_BACKUP_MAX_LEVEL, &k->level) ||
                tok_u32(tok[2], DDP_PACK_MAX_NUMBER, &k->number) || k->number == 0 ||
                tok_u64(tok[3], INT64_MAX, &k->size)) {
                hr = mbad(&ps, "expected a pack line 'K <level> <number> <size>'");
                goto out;
            }
            m->npacks++;
            continue;
        }

        if (cur_c && cur_pieces < cur_c->npieces) {
            /* P level member offset length file */
            if (nt != 6 || strcmp(tok[0], "P") != 0) { hr = mbad(&ps, "expected a piece line"); goto out; }
            ddp_mf_piece *p = &cur_c->pieces[cur_pieces];
            if (tok_u32(tok[1], DDP_BACKUP_MAX_LEVEL, &p->level) || tok_member(tok[2], &p->member) ||
                tok_u64(tok[3], INT64_MAX, &p->offset) || tok_u64(tok[4], INT64_MAX, &p->length) ||
                !(p->file = tok_path(tok[5]))) {
                hr = mbad(&ps, "bad piece line");
                goto out;
            }
            cur_pieces++;
            continue;
        }
        cur_c = NULL;
        if (nt == 1 && strcmp(tok[0], "end") == 0) { ended = 1; continue; }
        if (m->count == declared) { hr = mbad(&ps, "more entries than the %zu declared", declared); goto out; }
        if (m->count == m->cap) {
            m->cap = m->cap * 2 + 16;
            if (m->cap > declared) m->cap = declared;
            m->entries = ddp_xrealloc(m->entries, m->cap * sizeof *m->entries);
        }
        ddp_mf_entry *e = &m->entries[m->count];
        memset(e, 0, sizeof *e);
        e->member = -1;
        int bad = 0;
        const char *ptok = NULL;
        if (strcmp(tok[0], "D") == 0 && nt == 7) {
            e->type = 'D';
            bad = tok_member(tok[1], &e->member) || tok_mode(tok[2], &e->mode) ||
                  tok_u32(tok[3], UINT32_MAX, &e->uid) || tok_u32(tok[4], UINT32_MAX, &e->gid) ||
                  tok_time(tok[5], &e->mtime_sec, &e->mtime_nsec);
            ptok = tok[6];
        } else if (strcmp(tok[0], "F") == 0 && nt == (m->version >= DDP_MANIFEST_VERSION_PACKS ? 13 : 11)) {
            e->type = 'F';
            if (strcmp(tok[1], "s") == 0) e->is_stub = 1;
            else if (strcmp(tok[1], "f") != 0) bad = 1;
            bad = bad || tok_u32(tok[2], DDP_BACKUP_MAX_LEVEL, &e->level) || tok_member(tok[3], &e->member) ||
                  tok_u64(tok[4], INT64_MAX, &e->size) || tok_mode(tok[5], &e->mode) ||
                  tok_u32(tok[6], UINT32_MAX, &e->uid) || tok_u32(tok[7], UINT32_MAX, &e->gid) ||
                  tok_time(tok[8], &e->mtime_sec, &e->mtime_nsec) ||
                  tok_time(tok[9], &e->ctime_sec, &e->ctime_nsec);
            ptok = tok[10];
            if (nt == 13) { /* <pack> <offset>, or "- -" for a file that is its own object */
                ptok = tok[12];
                if (strcmp(tok[10], "-") == 0) bad = bad || strcmp(tok[11], "-") != 0;
                else bad = bad || tok_u32(tok[10], DDP_PACK_MAX_NUMBER, &e->pack) || e->pack == 0 ||
                           tok_u64(tok[11], INT64_MAX, &e->pack_off);
            }
        } else if (strcmp(tok[0], "L") == 0 && nt == 7) {
            e->type = 'L';
            bad = tok_member(tok[1], &e->member) || tok_u32(tok[2], UINT32_MAX, &e->uid) ||
                  tok_u32(tok[3], UINT32_MAX, &e->gid) || tok_time(tok[4], &e->mtime_sec, &e->mtime_nsec) ||
                  (e->target = tok_text(tok[5])) == NULL || strlen(e->target) > PATH_MAX;
            e->mode = 0777;
            ptok = tok[6];
        } else if (strcmp(tok[0], "C") == 0 && nt == 5) {
            e->type = 'C';
            bad = tok_u64(tok[1], INT64_MAX, &e->size) || tok_hex64(tok[2], &e->tailsum) ||
                  tok_u32(tok[3], m->level + 1, &e->npieces);
            ptok = tok[4];
        } else {
            m->count++; /* so the entry's fields are freed */
            hr = mbad(&ps, "unknown or malformed entry '%s'", tok[0]);
            goto out;
        }
        m->count++;
        if (bad || !(e->path = tok_path(ptok))) { hr = mbad(&ps, "bad %c entry", e->type); goto out; }
        if (e->type == 'C') {
            e->pieces = ddp_xcalloc(e->npieces ? e->npieces : 1, sizeof *e->pieces);
            /* Fields are filled by the P lines that follow; until then npieces
             * counts the allocated slots, all zeroed. */
            cur_c = e;
            cur_pieces = 0;
            if (e->npieces == 0) cur_c = NULL;
        }
    }
    if (stage < 11) { hr = mbad(&ps, "header incomplete"); goto out; }
    if (m->npacks != declared_packs) { hr = mbad(&ps, "%zu pack lines, %zu declared", m->npacks, declared_packs); goto out; }
    if (cur_c && cur_pieces < cur_c->npieces) { hr = mbad(&ps, "container %s: missing piece lines", cur_c->path); goto out; }
    if (!ended) { hr = mbad(&ps, "no 'end' line"); goto out; }
    if (m->count != declared) { hr = mbad(&ps, "%zu entries, %zu declared", m->count, declared); goto out; }
    ps.line = 0;
    hr = ddp_manifest_index(m, what);
out:
    free(line);
    if (FAILED(hr)) ddp_manifest_free(m);
    return hr;
}

HRESULT ddp_manifest_load(const char *dir, int header_only, ddp_manifest *m)
{
    memset(m, 0, sizeof *m);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return ddp_fail_errno(errno, "backup %s", dir);
    int fd;
    struct stat st;
    HRESULT hr = ddp_open_beneath(dfd, DDP_MANIFEST_PATH, 0, &fd, &st);
    close(dfd);
    if (hr == HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND) || hr == HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND))
        return ddp_fail(DDP_E_NOT_FOUND, "%s: not a ddp backup (no %s)", dir, DDP_MANIFEST_PATH);
    if (FAILED(hr)) return hr;
    if ((uint64_t)st.st_size > DDP_MANIFEST_MAX_SIZE) {
        close(fd);
        return ddp_fail(DDP_E_INVALID_DATA, "backup manifest %s: %lld bytes, too large", dir, (long long)st.st_size);
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = ddp_xmalloc(n + 1);
    char *what = ddp_path_join(dir, DDP_MANIFEST_PATH);
    hr = ddp_pread_exact(fd, buf, n, 0, what);
    close(fd);
    if (SUCCEEDED(hr)) hr = ddp_manifest_parse(buf, n, what, header_only, m);
    if (SUCCEEDED(hr) && m->npacks > 0) { /* packs are objects of an S3 backup: a local copy has none to read */
        ddp_manifest_free(m);
        hr = ddp_fail(DDP_E_INVALID_DATA, "backup manifest %s: its files lie in S3 pack objects; restore it from S3", what);
    }
    free(what);
    free(buf);
    return hr;
}

static int cmp_key_path(const void *key, const void *elem, void *ctx)
{
    const ddp_manifest *m = ctx;
    return strcmp((const char *)key, m->entries[*(const size_t *)elem].path);
}

const ddp_mf_entry *ddp_manifest_find(const ddp_manifest *m, const char *path)
{
    if (!m->by_path || !path) return NULL;
    size_t lo = 0, hi = m->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_key_path(path, &m->by_path[mid], (void *)(uintptr_t)m);
        if (c == 0) return &m->entries[m->by_path[mid]];
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

int ddp_manifest_has_parent(const ddp_manifest *m, const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path) return 1;
    char *parent = ddp_xasprintf("%.*s", (int)(slash - path), path);
    const ddp_mf_entry *e = ddp_manifest_find(m, parent);
    free(parent);
    return e && e->type == 'D';
}

void ddp_backup_set_attrs_fd(int fd, const ddp_mf_entry *e)
{
    if (fchown(fd, e->uid, e->gid) != 0) { /* not permitted: keep ours */ }
    (void)fchmod(fd, e->mode);
    struct timespec ts[2] = { { e->mtime_sec, e->mtime_nsec }, { e->mtime_sec, e->mtime_nsec } };
    (void)futimens(fd, ts);
}

const ddp_mf_piece *ddp_manifest_piece_at(const ddp_mf_entry *e, uint64_t off)
{
    uint32_t lo = 0, hi = e->npieces;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        const ddp_mf_piece *p = &e->pieces[mid];
        if (off < p->offset) hi = mid;
        else if (off - p->offset >= p->length) lo = mid + 1;
        else return p;
    }
    return NULL;
}
