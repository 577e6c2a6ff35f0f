/*
 * backup.c: `ddp backup`, the backup manifest, and the first step of a
 * selective restore.
 *
 * An optimized backup is the volume as it is on disk: stubs as the 232-byte
 * files they are, files that were not optimized, directories and symlinks,
 * each with owner, mode and times; the store's settings and catalog; and
 * every container file once, cut at the length it had when the backup took
 * the volume's job lock (containers are append-only, so that prefix is
 * exactly what the stubs of the backup can reference). .ddp/State (the
 * rebuildable index, the lock, the logs) is left out.
 *
 * Three shapes:
 *   - a directory that mirrors the volume, plus DEST/.ddp-backup/manifest;
 *   - an incremental directory: only the files that changed since the
 *     previous backup (size, times, mode or owner differ), the new
 *     containers, and for a container that grew only the appended tail, as a
 *     piece file "<container path>.@<hex offset>"; the manifest lists the
 *     whole tree and says which backup of the chain holds each file and each
 *     piece, so the newest manifest alone describes the volume;
 *   - a tar archive whose first member is the manifest, then Settings, the
 *     catalog, the stream containers, the data containers, then the rest of
 *     the tree: a restore reads it in one forward pass, like a tape.
 *
 * The manifest is text (docs/BACKUP.md): a header, one line per directory,
 * file, symlink and container, one line per container piece, and a last line
 * with the XXH3-64 of everything before it. Paths are escaped so each line
 * splits on single spaces. The parser checks the checksum, every number
 * against its bounds, every path (absolute, no "." or ".." components),
 * contiguous container pieces, unique paths and the tar member order before
 * anything uses the data: a bad manifest is DDP_E_INVALID_DATA with a detail
 * naming the line.
 *
 * Durability: every file is written to a temporary name and renamed; one
 * syncfs() makes them all durable; the manifest is written last (atomically), so a
 * backup directory without a manifest is an unfinished one.
 *
 * ddp_backup_extract() is the backup application's half of a selective
 * restore: it copies the stubs (or plain files, directories, symlinks) of the
 * requested paths out of any of the three shapes, with their metadata,
 * before RestoreFiles is called on them.
 */
#include <dirent.h>
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

#include "backup.h"
#include "backupstore_internal.h"
#include "catalog.h"
#include "hash.h"
#include "identity.h"
#include "stub.h"
#include "util.h"
#include "volume.h"

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
    sb_printf(&b, "\nentries %zu\n", m->count);
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
    if (p && FAILED(ddp_bs_check_path(p))) {
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

    /* Per-entry rules, and the member count. */
    size_t members = 0;
    for (size_t i = 0; i < m->count; i++) {
        const ddp_mf_entry *e = &m->entries[i];
        if (strcmp(e->path, "/" DDP_MANIFEST_DIR) == 0 ||
            strncmp(e->path, "/" DDP_MANIFEST_DIR "/", sizeof DDP_MANIFEST_DIR + 1) == 0)
            return mbad(&ps, "entry %s inside the manifest directory", e->path);
        if (e->type == 'F' && e->level > m->level)
            return mbad(&ps, "%s: level %u is newer than the backup (%u)", e->path, e->level, m->level);
        if (e->type == 'F' && e->is_stub && e->size != DDP_STUB_SIZE)
            return mbad(&ps, "%s: a stub of %" PRIu64 " bytes", e->path, e->size);
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
    char *tok[12];
    size_t pos = 0;
    HRESULT hr = S_OK;
    size_t declared = 0;
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
        int nt = split(line, tok, 12);
        if (nt < 1) { hr = mbad(&ps, "malformed line"); goto out; }

        static const char *const header[] = { "ddp-backup-manifest", "id", "level", "format", "source",
                                               "time", "store", "previous", "previous-id", "entries" };
        if (stage < 10) {
            if (nt != 2 || strcmp(tok[0], header[stage]) != 0) {
                hr = mbad(&ps, "expected '%s <value>'", header[stage]);
                goto out;
            }
            const char *v = tok[1];
            int bad = 0;
            switch (stage) {
            case 0:
                if (tok_u32(v, UINT32_MAX, &m->version)) bad = 1;
                else if (m->version != DDP_MANIFEST_VERSION) {
                    hr = ddp_fail(DDP_E_UNSUPPORTED_VERSION, "backup manifest %s: version %u (this ddp reads %u)",
                                  what, m->version, DDP_MANIFEST_VERSION);
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
                declared = (size_t)c;
                break;
            }
            }
            if (bad) { hr = mbad(&ps, "bad value for '%s'", header[stage]); goto out; }
            stage++;
            if (stage == 10) {
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
            }
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
        } else if (strcmp(tok[0], "F") == 0 && nt == 11) {
            e->type = 'F';
            if (strcmp(tok[1], "s") == 0) e->is_stub = 1;
            else if (strcmp(tok[1], "f") != 0) bad = 1;
            bad = bad || tok_u32(tok[2], DDP_BACKUP_MAX_LEVEL, &e->level) || tok_member(tok[3], &e->member) ||
                  tok_u64(tok[4], INT64_MAX, &e->size) || tok_mode(tok[5], &e->mode) ||
                  tok_u32(tok[6], UINT32_MAX, &e->uid) || tok_u32(tok[7], UINT32_MAX, &e->gid) ||
                  tok_time(tok[8], &e->mtime_sec, &e->mtime_nsec) ||
                  tok_time(tok[9], &e->ctime_sec, &e->ctime_nsec);
            ptok = tok[10];
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
    if (stage < 10) { hr = mbad(&ps, "header incomplete"); goto out; }
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
    HRESULT hr = ddp_bs_open_beneath(dfd, DDP_MANIFEST_PATH, 0, &fd, &st);
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

/* ======================================================== the backup */

typedef struct bctx {
    ddp_volume *v;
    int vfd;                  /* volume root */
    int destfd;               /* dir format: the backup directory */
    ddp_manifest m;           /* being built */
    uint8_t *copy_piece;      /* [entry]: C: index of the piece written now + 1 (0: none); F: 1 to copy */
    size_t items_cap;
    const ddp_manifest *prev; /* incremental: the previous backup */
    ddp_backup_stats *st;
    uint8_t *buf;             /* COPY_BUF_SIZE */
    uint64_t tmp_counter;
} bctx;

static ddp_mf_entry *add_entry(bctx *b, char type, const char *path, const struct stat *st)
{
    if (b->m.count == b->m.cap) {
        size_t cap = b->m.cap ? b->m.cap * 2 : 256;
        b->m.entries = ddp_xrealloc(b->m.entries, cap * sizeof *b->m.entries);
        b->copy_piece = ddp_xrealloc(b->copy_piece, cap);
        b->m.cap = cap;
    }
    b->copy_piece[b->m.count] = 0;
    ddp_mf_entry *e = &b->m.entries[b->m.count++];
    memset(e, 0, sizeof *e);
    e->type = type;
    e->member = -1;
    e->level = b->m.level;
    e->path = ddp_strdup(path);
    e->mode = st->st_mode & 07777;
    e->uid = st->st_uid;
    e->gid = st->st_gid;
    e->mtime_sec = st->st_mtim.tv_sec;
    e->mtime_nsec = (uint32_t)st->st_mtim.tv_nsec;
    e->ctime_sec = st->st_ctim.tv_sec;
    e->ctime_nsec = (uint32_t)st->st_ctim.tv_nsec;
    return e;
}

/* "/.ddp/ChunkStore/X.ddp/{Data,Stream,Hotspot}/CCCCCCCC.GGGGGGGG.ccc": the
 * container kind, else 0. */
static int container_kind(const char *p)
{
    static const char pre[] = "/.ddp/ChunkStore/";
    if (strncmp(p, pre, sizeof pre - 1) != 0) return 0;
    p += sizeof pre - 1;
    const char *s = strchr(p, '/');
    if (!s || s - p < 5 || memcmp(s - 4, ".ddp", 4) != 0) return 0;
    p = s + 1;
    int kind;
    if (strncmp(p, "Data/", 5) == 0) { kind = DDP_KIND_DATA; p += 5; }
    else if (strncmp(p, "Stream/", 7) == 0) { kind = DDP_KIND_STREAM; p += 7; }
    else if (strncmp(p, "Hotspot/", 8) == 0) { kind = DDP_KIND_HOTSPOT; p += 8; }
    else return 0;
    if (strlen(p) != 21 || p[8] != '.' || strcmp(p + 17, ".ccc") != 0) return 0;
    for (int i = 0; i < 17; i++)
        if (i != 8 && hexval(p[i]) < 0) return 0;
    return kind;
}

/* Is the regular file name (in dfd) a valid stub of this volume? */
static int is_volume_stub(bctx *b, int dfd, const char *name)
{
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return 0;
    uint8_t buf[DDP_STUB_SIZE + 1];
    size_t got = 0;
    HRESULT hr = ddp_bs_pread_upto(fd, buf, sizeof buf, 0, &got, name);
    close(fd);
    if (FAILED(hr) || got != DDP_STUB_SIZE) { ddp_clear_error(); return 0; }
    ddp_stub s;
    if (FAILED(ddp_stub_decode(buf, got, b->v->id.key, &s))) { ddp_clear_error(); return 0; }
    return memcmp(s.store_id, b->v->id.store_id, DDP_STORE_ID_SIZE) == 0;
}

/* xxh64 of the container bytes [size - min(size, 4096), size). */
static HRESULT tail_sum(bctx *b, const char *path, uint64_t size, uint64_t *sum)
{
    int fd;
    HRESULT hr = ddp_bs_open_beneath(b->vfd, path + 1, 0, &fd, NULL);
    if (FAILED(hr)) return hr;
    uint64_t t = size < TAILSUM_BYTES ? size : TAILSUM_BYTES;
    uint8_t tail[TAILSUM_BYTES];
    hr = ddp_pread_exact(fd, tail, (size_t)t, size - t, path);
    close(fd);
    if (SUCCEEDED(hr)) *sum = ddp_checksum64(tail, (size_t)t);
    return hr;
}

static int same_file(const ddp_mf_entry *a, const ddp_mf_entry *p)
{
    return p && p->type == 'F' && a->is_stub == p->is_stub && a->size == p->size && a->mode == p->mode &&
           a->uid == p->uid && a->gid == p->gid && a->mtime_sec == p->mtime_sec &&
           a->mtime_nsec == p->mtime_nsec && a->ctime_sec == p->ctime_sec && a->ctime_nsec == p->ctime_nsec;
}

/* The pieces of container e (its size set): carried over from the previous
 * backup where its bytes are unchanged, plus what is new. */
static HRESULT plan_container(bctx *b, ddp_mf_entry *e, size_t idx)
{
    uint64_t L = e->size;
    HRESULT hr = S_OK;
    if (L > 0) {
        hr = tail_sum(b, e->path, L, &e->tailsum);
        if (FAILED(hr)) return hr;
    }
    const ddp_mf_entry *p = b->prev ? ddp_manifest_find(b->prev, e->path) : NULL;
    uint64_t keep = 0; /* bytes covered by earlier pieces */
    if (p && p->type == 'C' && p->size <= L && p->npieces > 0) {
        uint64_t sum = 0;
        hr = tail_sum(b, e->path, p->size, &sum);
        if (FAILED(hr)) return hr;
        if (sum == p->tailsum) keep = p->size;
    }
    uint32_t np = 0;
    e->pieces = ddp_xcalloc((p ? p->npieces : 0) + 1, sizeof *e->pieces);
    if (keep) {
        for (uint32_t j = 0; j < p->npieces; j++) {
            e->pieces[np] = p->pieces[j];
            e->pieces[np].member = -1;
            e->pieces[np].file = ddp_strdup(p->pieces[j].file);
            np++;
        }
    }
    if (L > keep) {
        ddp_mf_piece *q = &e->pieces[np];
        q->level = b->m.level;
        q->offset = keep;
        q->length = L - keep;
        q->member = -1;
        q->file = keep ? ddp_xasprintf("%s.@%" PRIx64, e->path, keep) : ddp_strdup(e->path);
        np++;
        b->copy_piece[idx] = (uint8_t)1; /* the last piece is written now */
    }
    e->npieces = np;
    return S_OK;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Walk the directory dfd (store path rel, "" for the root) in name order. */
static HRESULT walk_dir(bctx *b, int dfd, const char *rel)
{
    int dup_fd = dup(dfd);
    if (dup_fd < 0) return ddp_fail_errno(errno, "listing %s/", rel);
    DIR *d = fdopendir(dup_fd);
    if (!d) {
        close(dup_fd);
        return ddp_fail_errno(errno, "listing %s/", rel);
    }
    char **names = NULL;
    size_t nn = 0, cap = 0;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        if (nn == cap) {
            cap = cap ? cap * 2 : 64;
            names = ddp_xrealloc(names, cap * sizeof *names);
        }
        names[nn++] = ddp_strdup(de->d_name);
    }
    int err = errno;
    closedir(d);
    HRESULT hr = S_OK;
    if (err) hr = ddp_fail_errno(err, "listing %s/", rel);
    if (nn) qsort(names, nn, sizeof *names, cmp_names);

    for (size_t i = 0; i < nn && SUCCEEDED(hr); i++) {
        char *child = ddp_xasprintf("%s/%s", rel, names[i]);
        struct stat st;
        if (!*rel && strcmp(names[i], DDP_MANIFEST_DIR) == 0) {
            b->st->skipped++; /* would collide with the backup's own manifest */
        } else if (strcmp(child, "/.ddp/State") == 0) {
            /* the index is rebuildable; the lock and logs belong to the volume */
        } else if (fstatat(dfd, names[i], &st, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno != ENOENT) hr = ddp_fail_errno(errno, "backup: %s", child);
        } else if (S_ISDIR(st.st_mode)) {
            add_entry(b, 'D', child, &st);
            b->st->dirs++;
            int cfd = openat(dfd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (cfd < 0) hr = ddp_fail_errno(errno, "backup: opening %s", child);
            else {
                hr = walk_dir(b, cfd, child);
                close(cfd);
            }
        } else if (S_ISLNK(st.st_mode)) {
            char target[PATH_MAX + 1];
            ssize_t k = readlinkat(dfd, names[i], target, sizeof target);
            if (k < 0) hr = ddp_fail_errno(errno, "backup: reading link %s", child);
            else if (k == 0 || (size_t)k > PATH_MAX) hr = ddp_fail(DDP_E_INVALID_DATA, "backup: link %s: bad target", child);
            else {
                target[k] = '\0';
                ddp_mf_entry *e = add_entry(b, 'L', child, &st);
                e->target = ddp_strdup(target);
                b->st->symlinks++;
            }
        } else if (S_ISREG(st.st_mode)) {
            size_t idx = b->m.count;
            if (container_kind(child)) {
                ddp_mf_entry *e = add_entry(b, 'C', child, &st);
                e->size = (uint64_t)st.st_size; /* the valid length now, under the lock */
                b->st->containers++;
                hr = plan_container(b, e, idx);
            } else {
                ddp_mf_entry *e = add_entry(b, 'F', child, &st);
                e->size = (uint64_t)st.st_size;
                e->is_stub = st.st_size == DDP_STUB_SIZE && is_volume_stub(b, dfd, names[i]);
                b->st->files++;
                if (e->is_stub) b->st->stubs++;
                if (strncmp(child, "/.ddp/", 6) == 0) b->st->metadata_files++;
                const ddp_mf_entry *p = b->prev ? ddp_manifest_find(b->prev, child) : NULL;
                if (same_file(e, p)) {
                    e->level = p->level;
                    b->st->files_unchanged++;
                } else {
                    b->copy_piece[idx] = 1;
                }
            }
        } else {
            b->st->skipped++; /* fifo, socket, device: not backed up */
        }
        free(child);
    }
    for (size_t i = 0; i < nn; i++) free(names[i]);
    free(names);
    return hr;
}

/* ---- copying ---- */

/* Copy up to len bytes from sfd at soff to dfd at doff; *done = bytes copied
 * (less only at the end of the source). */
static HRESULT copy_range(bctx *b, int sfd, uint64_t soff, int dfd, uint64_t doff, uint64_t len,
                          uint64_t *done, const char *what)
{
    *done = 0;
    int use_cfr = 1;
    while (*done < len) {
        size_t want = len - *done > ((uint64_t)1 << 30) ? (size_t)1 << 30 : (size_t)(len - *done);
        if (use_cfr) {
            loff_t in = (loff_t)(soff + *done), out = (loff_t)(doff + *done);
            ssize_t r = copy_file_range(sfd, &in, dfd, &out, want, 0);
            if (r > 0) { *done += (uint64_t)r; continue; }
            if (r == 0) break;
            if (errno == EINTR) continue;
            if (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP || errno == EPERM) {
                use_cfr = 0;
                continue;
            }
            return ddp_fail_errno(errno, "backup: copying %s", what);
        }
        if (want > COPY_BUF_SIZE) want = COPY_BUF_SIZE;
        size_t got;
        HRESULT hr = ddp_bs_pread_upto(sfd, b->buf, want, soff + *done, &got, what);
        if (FAILED(hr)) return hr;
        if (got == 0) break;
        hr = ddp_pwrite_all(dfd, b->buf, got, doff + *done, what);
        if (FAILED(hr)) return hr;
        *done += got;
    }
    return S_OK;
}

static void set_owner_mode_times_fd(int fd, const ddp_mf_entry *e)
{
    if (fchown(fd, e->uid, e->gid) != 0) { /* not permitted: keep ours */ }
    (void)fchmod(fd, e->mode);
    struct timespec ts[2] = { { e->mtime_sec, e->mtime_nsec }, { e->mtime_sec, e->mtime_nsec } };
    (void)futimens(fd, ts);
}

/* Create a temporary file beside store path "/dir/name" in the backup:
 * *tmp = "/dir/.ddp-tmp.PID.N" (malloc'd; *at calls use tmp + 1). */
static HRESULT create_tmp(bctx *b, const char *path, char **tmp, int *fd)
{
    const char *slash = strrchr(path, '/');
    for (;;) {
        *tmp = ddp_xasprintf("%.*s/.ddp-tmp.%ld.%" PRIu64, (int)(slash - path), path, (long)getpid(),
                             ++b->tmp_counter);
        *fd = openat(b->destfd, *tmp + 1, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (*fd >= 0) return S_OK;
        int err = errno;
        free(*tmp);
        *tmp = NULL;
        if (err != EEXIST) return ddp_fail_errno(err, "backup: creating a file for %s", path);
    }
}

/* No fsync here: the whole backup is made durable by one syncfs() before
 * the manifest is written (see sync_backup_tree), and a backup without its
 * manifest is not a backup. */
static HRESULT finish_tmp(bctx *b, int fd, char *tmp, const char *path, HRESULT hr)
{
    if (close(fd) != 0 && SUCCEEDED(hr)) hr = ddp_fail_errno(errno, "backup: closing %s", path);
    if (SUCCEEDED(hr) && renameat(b->destfd, tmp + 1, b->destfd, path + 1) != 0)
        hr = ddp_fail_errno(errno, "backup: renaming into %s", path);
    if (FAILED(hr)) unlinkat(b->destfd, tmp + 1, 0);
    free(tmp);
    return hr;
}

/* Did the file change since the walk? Then take what it is now. */
static void refresh_entry(bctx *b, ddp_mf_entry *e, const struct stat *st, int sfd)
{
    if ((uint64_t)st->st_size == e->size && st->st_mtim.tv_sec == e->mtime_sec &&
        (uint32_t)st->st_mtim.tv_nsec == e->mtime_nsec && st->st_ctim.tv_sec == e->ctime_sec &&
        (uint32_t)st->st_ctim.tv_nsec == e->ctime_nsec)
        return;
    b->st->changed_during++;
    e->size = (uint64_t)st->st_size;
    e->mode = st->st_mode & 07777;
    e->uid = st->st_uid;
    e->gid = st->st_gid;
    e->mtime_sec = st->st_mtim.tv_sec;
    e->mtime_nsec = (uint32_t)st->st_mtim.tv_nsec;
    e->ctime_sec = st->st_ctim.tv_sec;
    e->ctime_nsec = (uint32_t)st->st_ctim.tv_nsec;
    int was = e->is_stub;
    e->is_stub = 0;
    if (e->size == DDP_STUB_SIZE) {
        uint8_t buf[DDP_STUB_SIZE];
        size_t got;
        ddp_stub s;
        if (SUCCEEDED(ddp_bs_pread_upto(sfd, buf, sizeof buf, 0, &got, e->path)) && got == DDP_STUB_SIZE &&
            SUCCEEDED(ddp_stub_decode(buf, got, b->v->id.key, &s)) &&
            memcmp(s.store_id, b->v->id.store_id, DDP_STORE_ID_SIZE) == 0)
            e->is_stub = 1;
        ddp_clear_error();
    }
    if (was != e->is_stub) {
        if (was) b->st->stubs--;
        else b->st->stubs++;
    }
}

static HRESULT dir_copy_file(bctx *b, ddp_mf_entry *e)
{
    int sfd;
    struct stat st;
    HRESULT hr = ddp_bs_open_beneath(b->vfd, e->path + 1, 0, &sfd, &st);
    if (FAILED(hr)) return hr;
    refresh_entry(b, e, &st, sfd);
    char *tmp;
    int dfd;
    hr = create_tmp(b, e->path, &tmp, &dfd);
    if (FAILED(hr)) { close(sfd); return hr; }
    uint64_t done = 0;
    hr = copy_range(b, sfd, 0, dfd, 0, e->size, &done, e->path);
    close(sfd);
    if (SUCCEEDED(hr) && done != e->size) {
        /* shrank while being copied: keep what was read, say so */
        b->st->changed_during++;
        e->size = done;
        if (e->is_stub && done != DDP_STUB_SIZE) { e->is_stub = 0; b->st->stubs--; }
    }
    if (SUCCEEDED(hr)) set_owner_mode_times_fd(dfd, e);
    hr = finish_tmp(b, dfd, tmp, e->path, hr);
    if (SUCCEEDED(hr)) {
        b->st->files_copied++;
        b->st->bytes_written += done;
    }
    return hr;
}

static HRESULT dir_copy_piece(bctx *b, const ddp_mf_entry *e, const ddp_mf_piece *p)
{
    int sfd;
    struct stat st;
    HRESULT hr = ddp_bs_open_beneath(b->vfd, e->path + 1, 0, &sfd, &st);
    if (FAILED(hr)) return hr;
    char *tmp;
    int dfd;
    hr = create_tmp(b, p->file, &tmp, &dfd);
    if (FAILED(hr)) { close(sfd); return hr; }
    uint64_t done = 0;
    hr = copy_range(b, sfd, p->offset, dfd, 0, p->length, &done, e->path);
    close(sfd);
    if (SUCCEEDED(hr) && done != p->length)
        hr = ddp_fail(DDP_E_INVALID_STATE, "backup: container %s shrank during the backup", e->path);
    if (SUCCEEDED(hr)) {
        (void)fchmod(dfd, st.st_mode & 07777);
        struct timespec ts[2] = { st.st_atim, st.st_mtim };
        (void)futimens(dfd, ts);
    }
    hr = finish_tmp(b, dfd, tmp, p->file, hr);
    if (SUCCEEDED(hr)) {
        b->st->pieces_copied++;
        b->st->container_bytes += done;
        b->st->bytes_written += done;
    }
    return hr;
}

static void set_dir_attrs(int destfd, const ddp_mf_entry *e)
{
    const char *rel = e->path + 1;
    if (fchownat(destfd, rel, e->uid, e->gid, AT_SYMLINK_NOFOLLOW) != 0) { /* not permitted */ }
    if (e->type == 'D') (void)fchmodat(destfd, rel, e->mode, 0);
    struct timespec ts[2] = { { e->mtime_sec, e->mtime_nsec }, { e->mtime_sec, e->mtime_nsec } };
    (void)utimensat(destfd, rel, ts, AT_SYMLINK_NOFOLLOW);
}

static HRESULT write_dir_backup(bctx *b, const char *dest)
{
    HRESULT hr = S_OK;
    for (size_t i = 0; i < b->m.count && SUCCEEDED(hr); i++) {
        ddp_mf_entry *e = &b->m.entries[i];
        switch (e->type) {
        case 'D':
            if (mkdirat(b->destfd, e->path + 1, 0700) != 0)
                hr = ddp_fail_errno(errno, "backup: creating %s/%s", dest, e->path + 1);
            break;
        case 'L':
            if (symlinkat(e->target, b->destfd, e->path + 1) != 0)
                hr = ddp_fail_errno(errno, "backup: creating link %s/%s", dest, e->path + 1);
            else
                set_dir_attrs(b->destfd, e);
            break;
        case 'F':
            if (b->copy_piece[i]) hr = dir_copy_file(b, e);
            break;
        case 'C':
            if (b->copy_piece[i]) hr = dir_copy_piece(b, e, &e->pieces[e->npieces - 1]);
            break;
        }
    }
    if (FAILED(hr)) return hr;
    /* Directories last, deepest first: their mode may forbid writing into them. */
    for (size_t i = b->m.count; i-- > 0;) {
        const ddp_mf_entry *e = &b->m.entries[i];
        if (e->type != 'D') continue;
        set_dir_attrs(b->destfd, e);
    }
    /* Every file and directory written above becomes durable at once, before
     * the manifest that makes the backup a backup. */
    if (syncfs(b->destfd) != 0) return ddp_fail_errno(errno, "backup: syncing %s", dest);
    return S_OK;
}

static HRESULT write_manifest_dir(bctx *b, const char *dest)
{
    if (mkdirat(b->destfd, DDP_MANIFEST_DIR, 0700) != 0)
        return ddp_fail_errno(errno, "backup: creating %s/%s", dest, DDP_MANIFEST_DIR);
    size_t n;
    char *text = ddp_manifest_encode(&b->m, &n);
    char *path = ddp_path_join(dest, DDP_MANIFEST_PATH);
    HRESULT hr = ddp_write_file_atomic(path, text, n, 0600);
    free(path);
    free(text);
    if (SUCCEEDED(hr)) {
        b->st->bytes_written += n;
        hr = ddp_fsync_dir(dest);
    }
    return hr;
}

/* ---- tar ---- */

/* Where a store path goes in a tar backup (see the file comment). */
static int tar_section(const ddp_mf_entry *e)
{
    const char *p = e->path;
    if (strcmp(p, "/.ddp") == 0 || strcmp(p, "/.ddp/Settings") == 0 || strncmp(p, "/.ddp/Settings/", 15) == 0)
        return 1;
    if (e->type == 'C') {
        int k = container_kind(p);
        return k == DDP_KIND_STREAM ? 3 : k == DDP_KIND_DATA ? 4 : 5;
    }
    static const char cs[] = "/.ddp/ChunkStore";
    if (strcmp(p, cs) == 0) return 2;
    if (strncmp(p, cs, sizeof cs - 1) == 0 && p[sizeof cs - 1] == '/') {
        const char *rest = p + sizeof cs;
        const char *s = strchr(rest, '/');
        if (!s) return 2;                                   /* the store directory */
        if (e->type == 'F' && strcmp(s, "/catalog") == 0) return 2;
        if (e->type == 'D' && strcmp(s, "/Stream") == 0) return 3;
        if (e->type == 'D' && strcmp(s, "/Data") == 0) return 4;
        if (e->type == 'D' && strcmp(s, "/Hotspot") == 0) return 5;
    }
    return 6;
}

static HRESULT tar_fail(struct archive *a, const char *what)
{
    int err = archive_errno(a);
    const char *msg = archive_error_string(a);
    if (err > 0 && err != EILSEQ && err != EINVAL)
        return ddp_fail(ddp_hresult_from_errno(err), "backup: %s: %s", what, msg ? msg : strerror(err));
    return ddp_fail(E_FAIL, "backup: %s: %s", what, msg ? msg : "libarchive error");
}

static HRESULT tar_write_data(bctx *b, struct archive *a, const void *data, size_t n, const char *what)
{
    const uint8_t *p = data;
    while (n > 0) {
        la_ssize_t w = archive_write_data(a, p, n);
        if (w <= 0) return tar_fail(a, what);
        p += w;
        n -= (size_t)w;
        b->st->bytes_written += (uint64_t)w;
    }
    return S_OK;
}

/* Stream len bytes of sfd from off into the current member; pad with zeros
 * if the file ends early (*short_by gets how many). */
static HRESULT tar_copy(bctx *b, struct archive *a, int sfd, uint64_t off, uint64_t len, uint64_t *short_by,
                        const char *what)
{
    uint64_t done = 0;
    *short_by = 0;
    while (done < len) {
        size_t want = len - done > COPY_BUF_SIZE ? COPY_BUF_SIZE : (size_t)(len - done);
        size_t got;
        HRESULT hr = ddp_bs_pread_upto(sfd, b->buf, want, off + done, &got, what);
        if (FAILED(hr)) return hr;
        if (got == 0) {
            *short_by = len - done;
            memset(b->buf, 0, COPY_BUF_SIZE);
            while (done < len) {
                size_t z = len - done > COPY_BUF_SIZE ? COPY_BUF_SIZE : (size_t)(len - done);
                hr = tar_write_data(b, a, b->buf, z, what);
                if (FAILED(hr)) return hr;
                done += z;
            }
            break;
        }
        hr = tar_write_data(b, a, b->buf, got, what);
        if (FAILED(hr)) return hr;
        done += got;
    }
    return S_OK;
}

typedef struct tar_slot {
    size_t entry;
    int section;
} tar_slot;

static int cmp_slot(const void *a, const void *b)
{
    const tar_slot *x = a, *y = b;
    if (x->section != y->section) return x->section < y->section ? -1 : 1;
    return x->entry < y->entry ? -1 : x->entry > y->entry;
}

static HRESULT write_tar_backup(bctx *b, int fd, const char *dest)
{
    size_t n = b->m.count;
    tar_slot *slots = ddp_xmalloc((n ? n : 1) * sizeof *slots);
    for (size_t i = 0; i < n; i++) {
        slots[i].entry = i;
        slots[i].section = tar_section(&b->m.entries[i]);
    }
    qsort(slots, n, sizeof *slots, cmp_slot);
    /* Number the members; an empty container (no piece) has none. */
    int64_t next = 1;
    for (size_t i = 0; i < n; i++) {
        ddp_mf_entry *e = &b->m.entries[slots[i].entry];
        if (e->type == 'C') {
            for (uint32_t j = 0; j < e->npieces; j++) e->pieces[j].member = next++;
        } else {
            e->member = next++;
        }
    }
    size_t mlen;
    char *text = ddp_manifest_encode(&b->m, &mlen);

    HRESULT hr = S_OK;
    struct archive *a = archive_write_new();
    struct archive_entry *ae = archive_entry_new();
    if (!a || !ae) abort();
    if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
        archive_write_set_bytes_per_block(a, 65536) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
        archive_write_open_fd(a, fd) != ARCHIVE_OK) {
        hr = tar_fail(a, dest);
        goto out;
    }

    archive_entry_set_pathname(ae, DDP_MANIFEST_PATH);
    archive_entry_set_filetype(ae, AE_IFREG);
    archive_entry_set_perm(ae, 0600);
    archive_entry_set_size(ae, (la_int64_t)mlen);
    archive_entry_set_uid(ae, getuid());
    archive_entry_set_gid(ae, getgid());
    archive_entry_set_mtime(ae, (time_t)b->m.time, 0);
    if (archive_write_header(a, ae) != ARCHIVE_OK) { hr = tar_fail(a, dest); goto out; }
    hr = tar_write_data(b, a, text, mlen, DDP_MANIFEST_PATH);

    for (size_t i = 0; i < n && SUCCEEDED(hr); i++) {
        ddp_mf_entry *e = &b->m.entries[slots[i].entry];
        if (e->type == 'C' && e->npieces == 0) continue;
        archive_entry_clear(ae);
        archive_entry_set_pathname(ae, e->path + 1);
        archive_entry_set_uid(ae, e->uid);
        archive_entry_set_gid(ae, e->gid);
        archive_entry_set_mtime(ae, (time_t)e->mtime_sec, (long)e->mtime_nsec);
        int sfd = -1;
        struct stat st;
        if (e->type == 'D') {
            archive_entry_set_filetype(ae, AE_IFDIR);
            archive_entry_set_perm(ae, e->mode);
            archive_entry_set_size(ae, 0);
        } else if (e->type == 'L') {
            archive_entry_set_filetype(ae, AE_IFLNK);
            archive_entry_set_perm(ae, 0777);
            archive_entry_set_symlink(ae, e->target);
            archive_entry_set_size(ae, 0);
        } else {
            hr = ddp_bs_open_beneath(b->vfd, e->path + 1, 0, &sfd, &st);
            if (FAILED(hr)) break;
            archive_entry_set_filetype(ae, AE_IFREG);
            if (e->type == 'C') {
                archive_entry_set_perm(ae, st.st_mode & 07777);
                archive_entry_set_uid(ae, st.st_uid);
                archive_entry_set_gid(ae, st.st_gid);
                archive_entry_set_mtime(ae, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
                archive_entry_set_size(ae, (la_int64_t)e->size);
            } else {
                archive_entry_set_perm(ae, e->mode);
                archive_entry_set_size(ae, (la_int64_t)e->size);
            }
        }
        if (archive_write_header(a, ae) != ARCHIVE_OK) {
            hr = tar_fail(a, e->path);
        } else if (sfd >= 0) {
            uint64_t short_by = 0;
            hr = tar_copy(b, a, sfd, 0, e->size, &short_by, e->path);
            if (SUCCEEDED(hr) && e->type == 'C') {
                if (short_by) hr = ddp_fail(DDP_E_INVALID_STATE, "backup: container %s shrank during the backup", e->path);
                b->st->pieces_copied++;
                b->st->container_bytes += e->size;
            } else if (SUCCEEDED(hr)) {
                b->st->files_copied++;
                if (short_by || (uint64_t)st.st_size != e->size || st.st_mtim.tv_sec != e->mtime_sec ||
                    (uint32_t)st.st_mtim.tv_nsec != e->mtime_nsec)
                    b->st->changed_during++;
            }
        }
        if (sfd >= 0) close(sfd);
        if (SUCCEEDED(hr) && archive_write_finish_entry(a) != ARCHIVE_OK) hr = tar_fail(a, e->path);
    }
    if (SUCCEEDED(hr) && archive_write_close(a) != ARCHIVE_OK) hr = tar_fail(a, dest);
out:
    archive_entry_free(ae);
    archive_write_free(a);
    free(text);
    free(slots);
    return hr;
}

/* ---- the whole job ---- */

static HRESULT check_dest_dir(const char *dest, int *created)
{
    *created = 0;
    struct stat st;
    if (lstat(dest, &st) != 0) {
        if (errno != ENOENT) return ddp_fail_errno(errno, "backup destination %s", dest);
        if (mkdir(dest, 0700) != 0) return ddp_fail_errno(errno, "backup: creating %s", dest);
        *created = 1;
        return S_OK;
    }
    if (!S_ISDIR(st.st_mode))
        return ddp_fail(HRESULT_FROM_WIN32(ERROR_FILE_EXISTS), "backup destination %s exists and is not a directory", dest);
    DIR *d = opendir(dest);
    if (!d) return ddp_fail_errno(errno, "backup destination %s", dest);
    struct dirent *de;
    int empty = 1;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) { empty = 0; break; }
    closedir(d);
    if (!empty)
        return ddp_fail(HRESULT_FROM_WIN32(ERROR_DIR_NOT_EMPTY), "backup destination %s exists and is not empty", dest);
    return S_OK;
}

/* Absolute form of a path that may not exist yet (its parent must). */
static char *abs_path_of(const char *p)
{
    char *r = realpath(p, NULL);
    if (r) return r;
    char *c1 = ddp_strdup(p), *c2 = ddp_strdup(p);
    char *parent = realpath(dirname(c1), NULL);
    char *out = parent ? ddp_path_join(parent, basename(c2)) : NULL;
    free(parent);
    free(c1);
    free(c2);
    return out;
}

/* How the new backup names the previous one: its name if both sit in the
 * same directory, else its absolute path. */
static char *previous_ref(const char *dest_abs, const char *prev_abs)
{
    char *a = ddp_strdup(dest_abs), *b = ddp_strdup(prev_abs), *c = ddp_strdup(prev_abs);
    char *out = strcmp(dirname(a), dirname(b)) == 0 ? ddp_strdup(basename(c)) : ddp_strdup(prev_abs);
    free(a);
    free(b);
    free(c);
    return out;
}

HRESULT ddp_backup(const char *volume_root, const char *dest, const ddp_backup_options *opt,
                   ddp_backup_stats *st_out)
{
    ddp_backup_stats st_local;
    ddp_backup_stats *st = st_out ? st_out : &st_local;
    memset(st, 0, sizeof *st);
    if (!volume_root || !dest) return E_POINTER;
    ddp_backup_options defaults = { DDP_BACKUP_DIR, NULL };
    if (!opt) opt = &defaults;
    if (opt->format != DDP_BACKUP_DIR && opt->format != DDP_BACKUP_TAR)
        return ddp_fail(E_INVALIDARG, "backup: unknown format %d", opt->format);
    if (opt->format == DDP_BACKUP_TAR && opt->incremental_from)
        return ddp_fail(E_INVALIDARG, "backup: incremental backups are directories (not --tar)");
    double t0 = ddp_now();

    bctx b;
    memset(&b, 0, sizeof b);
    b.vfd = b.destfd = -1;
    b.st = st;
    ddp_backup_chain chain;
    memset(&chain, 0, sizeof chain);
    int have_chain = 0, dest_created = 0, tar_fd = -1;
    char *vroot = NULL, *dest_abs = NULL, *tar_tmp = NULL;

    HRESULT hr = ddp_volume_open(volume_root, DDP_OPEN_JOB, &b.v);
    if (FAILED(hr)) return hr;

    vroot = realpath(b.v->root, NULL);
    dest_abs = abs_path_of(dest);
    if (!vroot || !dest_abs) { hr = ddp_fail_errno(errno, "backup: resolving %s", vroot ? dest : b.v->root); goto out; }
    size_t vl = strlen(vroot);
    if (strcmp(dest_abs, vroot) == 0 || (strncmp(dest_abs, vroot, vl) == 0 && (dest_abs[vl] == '/' || vl == 1))) {
        hr = ddp_fail(E_INVALIDARG, "backup: the destination %s is inside the volume %s", dest, vroot);
        goto out;
    }

    if (opt->incremental_from) {
        hr = ddp_backup_chain_open(opt->incremental_from, &chain);
        if (hr == DDP_E_NOT_FOUND)
            hr = ddp_fail(DDP_E_NOT_FOUND, "%s is not a ddp backup (no %s)", opt->incremental_from, DDP_MANIFEST_PATH);
        if (FAILED(hr)) goto out;
        have_chain = 1;
        if (memcmp(chain.newest.store_id, b.v->id.store_id, DDP_STORE_ID_SIZE) != 0) {
            hr = ddp_fail(DDP_E_INVALID_DATA, "%s is a backup of another volume (another store id)", opt->incremental_from);
            goto out;
        }
        if (chain.newest.level + 1 > DDP_BACKUP_MAX_LEVEL) {
            hr = ddp_fail(DDP_E_INVALID_STATE, "%s: the chain is too long; make a full backup", opt->incremental_from);
            goto out;
        }
        b.prev = &chain.newest;
    }

    /* The destination. */
    if (opt->format == DDP_BACKUP_DIR) {
        hr = check_dest_dir(dest, &dest_created);
        if (FAILED(hr)) goto out;
        b.destfd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (b.destfd < 0) { hr = ddp_fail_errno(errno, "backup: opening %s", dest); goto out; }
        free(dest_abs);
        dest_abs = realpath(dest, NULL);
        if (!dest_abs) { hr = ddp_fail_errno(errno, "backup: resolving %s", dest); goto out; }
    } else {
        struct stat dst;
        if (stat(dest, &dst) == 0 && (!S_ISREG(dst.st_mode) || dst.st_size > 0)) {
            hr = ddp_fail(HRESULT_FROM_WIN32(ERROR_FILE_EXISTS), "backup destination %s exists and is not empty", dest);
            goto out;
        }
        tar_tmp = ddp_xasprintf("%s.tmp.%ld", dest, (long)getpid());
        tar_fd = open(tar_tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (tar_fd < 0) {
            hr = ddp_fail_errno(errno, "backup: creating %s", tar_tmp);
            free(tar_tmp);
            tar_tmp = NULL;
            goto out;
        }
    }

    /* The manifest header. */
    b.m.version = DDP_MANIFEST_VERSION;
    if (ddp_random_bytes(b.m.id, sizeof b.m.id) != 0) { hr = ddp_fail(E_FAIL, "backup: no random bytes"); goto out; }
    b.m.format = opt->format == DDP_BACKUP_TAR ? DDP_BACKUP_FMT_TAR : DDP_BACKUP_FMT_DIR;
    b.m.source = ddp_strdup(vroot);
    b.m.time = (int64_t)time(NULL);
    memcpy(b.m.store_id, b.v->id.store_id, DDP_STORE_ID_SIZE);
    if (b.prev) {
        b.m.level = b.prev->level + 1;
        char *prev_abs = realpath(opt->incremental_from, NULL);
        if (!prev_abs) { hr = ddp_fail_errno(errno, "backup: resolving %s", opt->incremental_from); goto out; }
        b.m.previous = previous_ref(dest_abs, prev_abs);
        free(prev_abs);
        memcpy(b.m.previous_id, b.prev->id, DDP_BACKUP_ID_SIZE);
    }
    st->level = b.m.level;
    b.buf = ddp_xmalloc(COPY_BUF_SIZE);

    /* Walk the volume, under the job lock: container lengths are those now. */
    b.vfd = open(vroot, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (b.vfd < 0) { hr = ddp_fail_errno(errno, "backup: opening %s", vroot); goto out; }
    hr = walk_dir(&b, b.vfd, "");
    if (FAILED(hr)) goto out;

    if (opt->format == DDP_BACKUP_DIR) {
        hr = write_dir_backup(&b, dest);
        if (SUCCEEDED(hr)) hr = ddp_manifest_index(&b.m, dest);
        if (SUCCEEDED(hr)) hr = write_manifest_dir(&b, dest);
    } else {
        hr = write_tar_backup(&b, tar_fd, dest);
        if (SUCCEEDED(hr)) hr = ddp_fsync_fd(tar_fd, tar_tmp);
        if (close(tar_fd) != 0 && SUCCEEDED(hr)) hr = ddp_fail_errno(errno, "backup: closing %s", tar_tmp);
        tar_fd = -1;
        if (SUCCEEDED(hr) && rename(tar_tmp, dest) != 0) hr = ddp_fail_errno(errno, "backup: renaming to %s", dest);
        if (SUCCEEDED(hr)) hr = ddp_fsync_parent(dest);
        if (SUCCEEDED(hr)) { free(tar_tmp); tar_tmp = NULL; }
    }

out:
    if (tar_fd >= 0) close(tar_fd);
    if (tar_tmp) { unlink(tar_tmp); free(tar_tmp); }
    if (b.vfd >= 0) close(b.vfd);
    if (b.destfd >= 0) close(b.destfd);
    /* An unfinished directory stays, without a manifest: it is not a backup.
     * One this call created and left empty is removed. */
    if (dest_created && FAILED(hr)) (void)rmdir(dest);
    if (have_chain) ddp_backup_chain_close(&chain);
    ddp_manifest_free(&b.m);
    free(b.copy_piece);
    free(b.buf);
    free(vroot);
    free(dest_abs);
    if (b.v) {
        /* keep the detail of a failure across the close */
        char detail[1024];
        snprintf(detail, sizeof detail, "%s", ddp_error_detail());
        ddp_volume_close(b.v);
        if (FAILED(hr)) ddp_fail(hr, "%s", detail);
    }
    st->seconds = ddp_now() - t0;
    return hr;
}

/* ===================================================== restore, step 1 */

HRESULT ddp_backup_normalize_relpath(const char *in, char **out)
{
    *out = NULL;
    if (!in || !*in) return ddp_fail(E_INVALIDARG, "empty path");
    if (in[0] == '/') return ddp_fail(E_INVALIDARG, "%s: give the path relative to the volume root", in);
    size_t n = strlen(in);
    if (n > PATH_MAX) return ddp_fail(E_INVALIDARG, "path too long");
    char *buf = ddp_xmalloc(n + 1);
    size_t k = 0;
    const char *p = in;
    while (*p) {
        const char *s = strchr(p, '/');
        size_t len = s ? (size_t)(s - p) : strlen(p);
        if (len == 2 && p[0] == '.' && p[1] == '.') {
            free(buf);
            return ddp_fail(E_INVALIDARG, "%s: '..' is not allowed", in);
        }
        if (len > 0 && !(len == 1 && p[0] == '.')) {
            if (k) buf[k++] = '/';
            memcpy(buf + k, p, len);
            k += len;
        }
        p += len;
        if (*p == '/') p++;
    }
    buf[k] = '\0';
    if (k == 0) { free(buf); return ddp_fail(E_INVALIDARG, "%s: names no file", in); }
    if (strcmp(buf, DDP_MANIFEST_DIR) == 0 || strncmp(buf, DDP_MANIFEST_DIR "/", sizeof DDP_MANIFEST_DIR) == 0) {
        free(buf);
        return ddp_fail(E_INVALIDARG, "%s: the backup's own manifest is not a volume file", in);
    }
    *out = buf;
    return S_OK;
}

/* Where the extracted bytes come from. */
typedef struct xsource {
    int fd;                       /* a file of a directory backup, or -1 */
    ddp_tar_reader *tar;          /* or the tar reader, at the member */
} xsource;

static HRESULT xs_read(xsource *s, void *buf, size_t n, uint64_t off, size_t *got, const char *what)
{
    if (s->fd >= 0) return ddp_bs_pread_upto(s->fd, buf, n, off, got, what);
    return ddp_tar_reader_read(s->tar, buf, n, got);
}

/* Make the parent directories of dest_dir/rel (mode 0755). */
static HRESULT make_parents(const char *full)
{
    char *c = ddp_strdup(full);
    char *dir = dirname(c);
    HRESULT hr = ddp_mkdir_p(dir, 0755);
    free(c);
    return hr;
}

static void set_attrs_path(const char *path, const ddp_mf_entry *e, int is_link)
{
    if (lchown(path, e->uid, e->gid) != 0) { /* not permitted */ }
    if (!is_link) (void)chmod(path, e->mode);
    struct timespec ts[2] = { { e->mtime_sec, e->mtime_nsec }, { e->mtime_sec, e->mtime_nsec } };
    (void)utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW);
}

/* Write a file's bytes to full (atomically), with e's metadata. */
static HRESULT extract_file(const char *full, const ddp_mf_entry *e, xsource *src, uint8_t *buf)
{
    HRESULT hr = make_parents(full);
    if (FAILED(hr)) return hr;
    char *tmp = ddp_xasprintf("%s.ddp-restore.%ld", full, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        hr = ddp_fail_errno(errno, "creating %s", tmp);
        free(tmp);
        return hr;
    }
    uint64_t off = 0;
    while (off < e->size && SUCCEEDED(hr)) {
        size_t want = e->size - off > COPY_BUF_SIZE ? COPY_BUF_SIZE : (size_t)(e->size - off);
        size_t got = 0;
        hr = xs_read(src, buf, want, off, &got, e->path);
        if (SUCCEEDED(hr) && got == 0)
            hr = ddp_fail(DDP_E_FILE_CORRUPT, "backup: %s is shorter (%" PRIu64 " bytes) than its manifest says (%" PRIu64 ")",
                          e->path, off, e->size);
        if (SUCCEEDED(hr)) hr = ddp_write_all(fd, buf, got, full);
        off += got;
    }
    if (SUCCEEDED(hr)) set_owner_mode_times_fd(fd, e);
    /* No fsync per file: ddp_backup_extract() syncs the target file system
     * once, after every file is in place (one syncfs instead of thousands). */
    if (close(fd) != 0 && SUCCEEDED(hr)) hr = ddp_fail_errno(errno, "closing %s", full);
    if (SUCCEEDED(hr) && rename(tmp, full) != 0) hr = ddp_fail_errno(errno, "replacing %s", full);
    if (FAILED(hr)) unlink(tmp);
    free(tmp);
    return hr;
}

static HRESULT extract_dir(const char *full, const ddp_mf_entry *e)
{
    HRESULT hr = ddp_mkdir_p(full, 0755);
    if (FAILED(hr)) return hr;
    struct stat st;
    if (lstat(full, &st) != 0 || !S_ISDIR(st.st_mode))
        return ddp_fail(HRESULT_FROM_WIN32(ERROR_FILE_EXISTS), "%s exists and is not a directory", full);
    set_attrs_path(full, e, 0);
    return S_OK;
}

static HRESULT extract_link(const char *full, const ddp_mf_entry *e)
{
    HRESULT hr = make_parents(full);
    if (FAILED(hr)) return hr;
    char *tmp = ddp_xasprintf("%s.ddp-restore.%ld", full, (long)getpid());
    unlink(tmp);
    if (symlink(e->target, tmp) != 0) hr = ddp_fail_errno(errno, "creating link %s", full);
    else if (rename(tmp, full) != 0) {
        hr = ddp_fail_errno(errno, "replacing %s", full);
        unlink(tmp);
    } else {
        set_attrs_path(full, e, 1);
    }
    free(tmp);
    return hr;
}

static int item_kind(const ddp_mf_entry *e)
{
    switch (e->type) {
    case 'D': return DDP_ITEM_DIR;
    case 'L': return DDP_ITEM_SYMLINK;
    case 'F': return e->is_stub ? DDP_ITEM_STUB : DDP_ITEM_FILE;
    default: return DDP_ITEM_MISSING;
    }
}

/* A directory that is a copy of a volume without a manifest (cp -a, rsync):
 * take what is there, by its own metadata. */
static HRESULT extract_plain(int rootfd, const char *rel, const char *full, ddp_backup_item *it, uint8_t *buf)
{
    char *c = ddp_strdup(rel);
    char *slash = strrchr(c, '/');
    int pfd = rootfd;
    const char *name = c;
    HRESULT hr = S_OK;
    if (slash) {
        *slash = '\0';
        name = slash + 1;
        struct stat pst;
        hr = ddp_bs_open_beneath(rootfd, c, 1, &pfd, &pst);
        if (SUCCEEDED(hr) && !S_ISDIR(pst.st_mode)) {
            close(pfd);
            pfd = rootfd;
            hr = HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND);
        }
    }
    struct stat st;
    if (SUCCEEDED(hr) && fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) hr = ddp_hresult_from_errno(errno);
    if (FAILED(hr)) {
        it->hr = ddp_fail(DDP_E_NOT_FOUND, "%s: not in the backup", rel);
        goto out;
    }
    ddp_mf_entry e;
    memset(&e, 0, sizeof e);
    e.path = (char *)rel;
    e.mode = st.st_mode & 07777;
    e.uid = st.st_uid;
    e.gid = st.st_gid;
    e.mtime_sec = st.st_mtim.tv_sec;
    e.mtime_nsec = (uint32_t)st.st_mtim.tv_nsec;
    e.size = (uint64_t)st.st_size;
    if (S_ISDIR(st.st_mode)) {
        it->kind = DDP_ITEM_DIR;
        it->hr = extract_dir(full, &e);
    } else if (S_ISLNK(st.st_mode)) {
        char target[PATH_MAX + 1];
        ssize_t k = readlinkat(pfd, name, target, PATH_MAX);
        it->kind = DDP_ITEM_SYMLINK;
        if (k <= 0) it->hr = ddp_fail_errno(errno, "reading link %s", rel);
        else {
            target[k] = '\0';
            e.target = target;
            it->hr = extract_link(full, &e);
        }
    } else if (S_ISREG(st.st_mode)) {
        xsource src = { -1, NULL };
        it->hr = ddp_bs_open_beneath(pfd, name, 0, &src.fd, NULL);
        if (SUCCEEDED(it->hr)) {
            uint8_t head[DDP_STUB_SIZE];
            size_t got = 0;
            it->kind = DDP_ITEM_FILE;
            if (st.st_size == DDP_STUB_SIZE &&
                SUCCEEDED(ddp_bs_pread_upto(src.fd, head, sizeof head, 0, &got, rel)) &&
                ddp_stub_looks_like(head, got))
                it->kind = DDP_ITEM_STUB;
            it->size = e.size;
            it->hr = extract_file(full, &e, &src, buf);
            close(src.fd);
        }
    } else {
        it->hr = ddp_fail(DDP_E_NOT_FOUND, "%s: not a file, directory or link", rel);
    }
out:
    if (pfd != rootfd) close(pfd);
    free(c);
    return S_OK;
}

typedef struct want {
    int64_t member;
    size_t item;
} want;

static int cmp_want(const void *a, const void *b)
{
    const want *x = a, *y = b;
    if (x->member != y->member) return x->member < y->member ? -1 : 1;
    return x->item < y->item ? -1 : x->item > y->item;
}

static HRESULT extract_tar(const char *archive, size_t n, char *const *relpaths, const char *dest_dir,
                           ddp_backup_item *items, uint8_t *buf)
{
    ddp_tar_reader *r;
    HRESULT hr = ddp_tar_reader_open(archive, &r);
    if (FAILED(hr)) return hr;
    const ddp_manifest *m = ddp_tar_reader_manifest(r);
    want *w = ddp_xmalloc((n ? n : 1) * sizeof *w);
    size_t nw = 0;
    for (size_t i = 0; i < n; i++) {
        char *sp = ddp_xasprintf("/%s", relpaths[i]);
        char *full = ddp_path_join(dest_dir, relpaths[i]);
        const ddp_mf_entry *e = ddp_manifest_find(m, sp);
        if (!e || e->type == 'C') {
            items[i].hr = ddp_fail(DDP_E_NOT_FOUND, "%s: not in the backup", relpaths[i]);
        } else {
            items[i].kind = item_kind(e);
            items[i].size = e->size;
            if (e->type == 'D') items[i].hr = extract_dir(full, e);
            else if (e->type == 'L') items[i].hr = extract_link(full, e);
            else w[nw++] = (want){ e->member, i };
        }
        free(full);
        free(sp);
    }
    qsort(w, nw, sizeof *w, cmp_want);
    for (size_t k = 0; k < nw; k++) {
        size_t i = w[k].item;
        char *full = ddp_path_join(dest_dir, relpaths[i]);
        const ddp_mf_entry *e = &m->entries[m->members[w[k].member].entry];
        if (k > 0 && w[k - 1].member == w[k].member) {
            items[i].hr = items[w[k - 1].item].hr; /* the same file named twice */
        } else {
            items[i].hr = ddp_tar_reader_goto(r, (size_t)w[k].member);
            if (SUCCEEDED(items[i].hr)) {
                xsource src = { -1, r };
                items[i].hr = extract_file(full, e, &src, buf);
            }
            /* a damaged archive stops everything after it */
            if (FAILED(items[i].hr) && ddp_tar_reader_broken(r)) {
                for (size_t j = k + 1; j < nw; j++) items[w[j].item].hr = items[i].hr;
                free(full);
                break;
            }
        }
        free(full);
    }
    free(w);
    ddp_tar_reader_close(r);
    return S_OK;
}

/* Make what extraction wrote durable: one syncfs of the target's file
 * system. A failure turns every item written so far into that failure. */
static void sync_target(const char *dest_dir, size_t n, ddp_backup_item *items)
{
    int fd = open(dest_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return; /* nothing was written there */
    if (syncfs(fd) != 0) {
        HRESULT hr = ddp_fail_errno(errno, "syncing %s", dest_dir);
        for (size_t i = 0; i < n; i++)
            if (SUCCEEDED(items[i].hr)) items[i].hr = hr;
    }
    close(fd);
}

static HRESULT extract_any(const char *backup, size_t n, char *const *relpaths, const char *dest_dir,
                           ddp_backup_item *items);

HRESULT ddp_backup_extract(const char *backup, size_t n, char *const *relpaths, const char *dest_dir,
                           ddp_backup_item *items)
{
    HRESULT hr = extract_any(backup, n, relpaths, dest_dir, items);
    if (SUCCEEDED(hr) && n > 0) sync_target(dest_dir, n, items);
    return hr;
}

static HRESULT extract_any(const char *backup, size_t n, char *const *relpaths, const char *dest_dir,
                           ddp_backup_item *items)
{
    if (!backup || !dest_dir || (n && (!relpaths || !items))) return E_POINTER;
    for (size_t i = 0; i < n; i++) items[i] = (ddp_backup_item){ DDP_E_NOT_FOUND, DDP_ITEM_MISSING, 0 };
    struct stat st;
    if (stat(backup, &st) != 0) return ddp_fail_errno(errno, "backup %s", backup);
    uint8_t *buf = ddp_xmalloc(COPY_BUF_SIZE);
    HRESULT hr = S_OK;
    if (S_ISREG(st.st_mode)) {
        hr = extract_tar(backup, n, relpaths, dest_dir, items, buf);
        free(buf);
        return hr;
    }
    if (!S_ISDIR(st.st_mode)) {
        free(buf);
        return ddp_fail(E_INVALIDARG, "backup %s: neither a directory nor an archive file", backup);
    }
    ddp_backup_chain chain;
    hr = ddp_backup_chain_open(backup, &chain);
    if (hr == DDP_E_NOT_FOUND) {
        /* no manifest: a plain copy of a volume */
        ddp_clear_error();
        int rootfd = open(backup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (rootfd < 0) {
            free(buf);
            return ddp_fail_errno(errno, "backup %s", backup);
        }
        for (size_t i = 0; i < n; i++) {
            char *full = ddp_path_join(dest_dir, relpaths[i]);
            extract_plain(rootfd, relpaths[i], full, &items[i], buf);
            free(full);
        }
        close(rootfd);
        free(buf);
        return S_OK;
    }
    if (FAILED(hr)) {
        free(buf);
        return hr;
    }
    for (size_t i = 0; i < n; i++) {
        char *sp = ddp_xasprintf("/%s", relpaths[i]);
        char *full = ddp_path_join(dest_dir, relpaths[i]);
        const ddp_mf_entry *e = ddp_manifest_find(&chain.newest, sp);
        if (!e || e->type == 'C') {
            items[i].hr = ddp_fail(DDP_E_NOT_FOUND, "%s: not in the backup", relpaths[i]);
        } else {
            items[i].kind = item_kind(e);
            items[i].size = e->size;
            if (e->type == 'D') items[i].hr = extract_dir(full, e);
            else if (e->type == 'L') items[i].hr = extract_link(full, e);
            else {
                xsource src = { -1, NULL };
                struct stat fst;
                items[i].hr = ddp_bs_open_beneath(chain.dirfds[e->level], sp + 1, 0, &src.fd, &fst);
                if (items[i].hr == HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND) ||
                    items[i].hr == HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND))
                    items[i].hr = ddp_fail(DDP_E_NOT_FOUND, "%s: listed in the manifest but missing from %s",
                                           relpaths[i], chain.dirs[e->level]);
                if (SUCCEEDED(items[i].hr)) {
                    if ((uint64_t)fst.st_size != e->size)
                        items[i].hr = ddp_fail(DDP_E_FILE_CORRUPT, "%s: %lld bytes in the backup, %" PRIu64 " in its manifest",
                                               relpaths[i], (long long)fst.st_size, e->size);
                    else
                        items[i].hr = extract_file(full, e, &src, buf);
                    close(src.fd);
                }
            }
        }
        free(full);
        free(sp);
    }
    ddp_backup_chain_close(&chain);
    free(buf);
    return S_OK;
}
