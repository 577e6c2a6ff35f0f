/* SPDX-License-Identifier: MIT */
/*
 * cmd_windows.c: the ddp commands on Windows Server dedup volumes read on
 * Linux (an ntfs-3g mount or a copied tree; programs/winsrc.c finds the
 * reparse points and reads the chunk store, lib/windows rebuilds files):
 *
 *   ddp cat FILE                           (cmd_cat hands Windows files here)
 *   ddp status WINVOL [--json]             optimized files by format, store size, containers, savings
 *   ddp scrub WINVOL [--json]              read-only: every file that cannot be rebuilt, and why
 *   ddp restore --from WINVOL --to DIR PATH...   files rehydrated, with their mode and times
 *
 * Nothing here writes to the Windows volume.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "cli.h"
#include "windows/container.h"
#include "winsrc.h"

#define COPY_BUF (1u << 20)

/* ---- shared: stores of a volume ------------------------------------------------------------ */

typedef struct win_vol {
    char *root;
    win_src *src;
    ddp_win_io io;
    ddp_win_store *stores[16];
    uint8_t guids[16][16];
    size_t nstores;
} win_vol;

static HRESULT vol_open(const char *root, win_vol *v)
{
    memset(v, 0, sizeof *v);
    v->root = ddp_strdup(root);
    HRESULT hr = win_src_open(root, &v->src);
    if (SUCCEEDED(hr)) v->io = win_src_io(v->src);
    return hr;
}

static void vol_close(win_vol *v)
{
    for (size_t i = 0; i < v->nstores; i++) ddp_win_store_close(v->stores[i]);
    win_src_close(v->src);
    free(v->root);
}

/* The store of rp's GUID (one per GUID, shared by the files of a run). */
static HRESULT vol_store(win_vol *v, const ddp_win_reparse *rp, ddp_win_store **out)
{
    for (size_t i = 0; i < v->nstores; i++)
        if (memcmp(v->guids[i], rp->store_guid, 16) == 0) {
            *out = v->stores[i];
            return S_OK;
        }
    if (v->nstores == 16) return ddp_fail(DDP_E_INVALID_DATA, "more than 16 chunk stores on one volume");
    char dir[DDP_WIN_STORE_DIR_MAX];
    ddp_win_store_dir(rp->store_guid, dir);
    HRESULT hr = ddp_win_store_open(&v->io, dir, out);
    if (FAILED(hr)) return hr;
    memcpy(v->guids[v->nstores], rp->store_guid, 16);
    v->stores[v->nstores++] = *out;
    return S_OK;
}

/* Rebuild the file of rp into fd (or only check it when fd < 0). */
static HRESULT rebuild(win_vol *v, const ddp_win_reparse *rp, int fd, const char *what, uint64_t *bytes)
{
    ddp_win_store *st = NULL;
    ddp_winfile *f = NULL;
    HRESULT hr = vol_store(v, rp, &st);
    if (SUCCEEDED(hr)) hr = ddp_winfile_open_in(st, rp, &f);
    uint8_t *buf = ddp_xmalloc(COPY_BUF);
    uint64_t off = 0, size = f ? ddp_winfile_size(f) : 0;
    while (SUCCEEDED(hr) && off < size) {
        size_t got = 0;
        hr = ddp_winfile_pread(f, buf, COPY_BUF, off, &got);
        if (SUCCEEDED(hr) && got == 0) hr = ddp_fail(DDP_E_FILE_CORRUPT, "%s: no data at %llu", what, (unsigned long long)off);
        if (SUCCEEDED(hr) && fd >= 0) hr = ddp_write_all(fd, buf, got, what);
        off += got;
    }
    free(buf);
    ddp_winfile_close(f);
    if (bytes) *bytes = off;
    return hr;
}

/* ---- cat ------------------------------------------------------------------------------------ */

int win_cat_file(const char *path, int *rc)
{
    ddp_win_reparse rp;
    HRESULT hr;
    struct stat st;
    if (!win_reparse_of(path, &rp, &hr, &st)) return 0;
    if (SUCCEEDED(hr)) {
        char *root = win_find_volume(path);
        if (!root) {
            hr = ddp_fail(DDP_E_PATH_NOT_FOUND, "%s: a Windows dedup file, but no ancestor holds "
                          "'System Volume Information/Dedup/ChunkStore' (its chunk store)", path);
        } else {
            win_vol v;
            fflush(stdout);
            hr = vol_open(root, &v);
            if (SUCCEEDED(hr)) hr = rebuild(&v, &rp, STDOUT_FILENO, "stdout", NULL);
            vol_close(&v);
            free(root);
        }
    }
    if (FAILED(hr)) {
        cli_error(hr, "cat %s", path);
        *rc = DDP_EXIT_FAIL;
    }
    return 1;
}

/* ---- walking a volume ---------------------------------------------------------------------- */

typedef struct walk_stats {
    uint64_t files[4];        /* 0201, 0102, 0103, unparsable */
    uint64_t logical[4];
    uint64_t plain_files, plain_bytes;
    uint64_t failed;
    uint64_t chunk_crc_bad;   /* 0x0103 chunk CRCs that did not match */
    int scrub, json;
    win_vol *vol;
    const char *root;
} walk_stats;

static walk_stats *g_walk; /* nftw has no context pointer */

static int fmt_index(uint16_t f) { return f == DDP_WIN_FMT_0201 ? 0 : f == DDP_WIN_FMT_0102 ? 1 : 2; }

static void json_result(const char *rel, HRESULT hr, const char *detail, int *first)
{
    printf("%s{\"path\":", *first ? "" : ",");
    cli_json_str(rel);
    printf(",\"hresult\":\"0x%08X\",\"detail\":", (unsigned)hr);
    cli_json_str(detail);
    printf("}");
    *first = 0;
}

static int g_json_first = 1;

static int walk_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    walk_stats *w = g_walk;
    const char *rel = path + strlen(w->root);
    while (*rel == '/') rel++;
    if (flag == FTW_D && ftw->level == 1 && strcmp(path + ftw->base, "System Volume Information") == 0)
        return FTW_SKIP_SUBTREE;
    if (flag != FTW_F && flag != FTW_SL) return FTW_CONTINUE;
    ddp_win_reparse rp;
    HRESULT hr;
    struct stat st;
    if (!win_reparse_of(path, &rp, &hr, &st)) {
        if (S_ISREG(st.st_mode)) {
            w->plain_files++;
            w->plain_bytes += (uint64_t)st.st_size;
        }
        return FTW_CONTINUE;
    }
    if (FAILED(hr)) {
        w->files[3]++;
    } else {
        w->files[fmt_index(rp.format)]++;
        w->logical[fmt_index(rp.format)] += rp.file_size;
        w->chunk_crc_bad += rp.chunk_crcs_bad;
        if (w->scrub) hr = rebuild(w->vol, &rp, -1, rel, NULL);
    }
    if (FAILED(hr) && (w->scrub || !w->json)) {
        w->failed++;
        if (w->json) json_result(rel, hr, ddp_error_detail(), &g_json_first);
        else printf("%s: 0x%08X %s\n", rel, (unsigned)hr, ddp_error_detail());
    }
    return FTW_CONTINUE;
}

/* Sizes and counts of the chunk stores under root. */
typedef struct store_sizes {
    uint64_t bytes, data_containers, stream_containers, stores;
} store_sizes;

static store_sizes *g_sizes;

static int size_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    if (flag != FTW_F) return FTW_CONTINUE;
    g_sizes->bytes += (uint64_t)sb->st_size;
    uint32_t cid, gen;
    if (ddp_win_ccc_name_parse(path + ftw->base, &cid, &gen)) {
        if (strstr(path, "/Data/")) g_sizes->data_containers++;
        else if (strstr(path, "/Stream/")) g_sizes->stream_containers++;
    }
    return FTW_CONTINUE;
}

static void measure_store(const char *root, store_sizes *s)
{
    memset(s, 0, sizeof *s);
    char *cs = ddp_xasprintf("%s/System Volume Information/Dedup/ChunkStore", root);
    g_sizes = s;
    nftw(cs, size_one, 16, FTW_PHYS | FTW_ACTIONRETVAL);
    /* stores: the {GUID}.ddp directories */
    int dfd = open(cs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        DIR *d = fdopendir(dfd);
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            size_t l = strlen(e->d_name);
            if (l > 4 && strcasecmp(e->d_name + l - 4, ".ddp") == 0) s->stores++;
        }
        if (d) closedir(d);
        else close(dfd);
    }
    free(cs);
}

static const char *fmt_names[4] = { "0x0201", "0x0102", "0x0103", "unparsable" };

int cmd_win_status(const char *root, int json)
{
    walk_stats w;
    memset(&w, 0, sizeof w);
    w.root = root;
    w.json = json;
    g_walk = &w;
    if (json) printf("{\"windows_volume\":");
    if (json) cli_json_str(root);
    if (json) printf(",\"unparsable\":[");
    if (nftw(root, walk_one, 32, FTW_PHYS | FTW_ACTIONRETVAL) != 0) {
        if (json) printf("]}\n");
        cli_error(ddp_fail_errno(errno, "%s", root), "status %s", root);
        return DDP_EXIT_FAIL;
    }
    store_sizes s;
    measure_store(root, &s);
    uint64_t files = 0, logical = 0;
    for (int i = 0; i < 3; i++) {
        files += w.files[i];
        logical += w.logical[i];
    }
    double rate = logical ? 1.0 - (double)s.bytes / (double)logical : 0.0;
    uint64_t saved = logical > s.bytes ? logical - s.bytes : 0;
    if (json) {
        printf("],\"files_optimized\":%" PRIu64 ",\"by_format\":{", files);
        for (int i = 0; i < 4; i++)
            printf("%s\"%s\":{\"files\":%" PRIu64 ",\"logical_bytes\":%" PRIu64 "}", i ? "," : "", fmt_names[i], w.files[i],
                   w.logical[i]);
        printf("},\"logical_bytes\":%" PRIu64 ",\"files_other\":%" PRIu64 ",\"other_bytes\":%" PRIu64
               ",\"stores\":%" PRIu64 ",\"store_bytes\":%" PRIu64 ",\"data_containers\":%" PRIu64
               ",\"stream_containers\":%" PRIu64 ",\"saved_bytes\":%" PRIu64 ",\"savings_rate\":%.4f}\n",
               logical, w.plain_files, w.plain_bytes, s.stores, s.bytes, s.data_containers, s.stream_containers, saved,
               rate);
    } else {
        char b1[32], b2[32], b3[32], b4[32];
        printf("Windows dedup volume %s\n", root);
        printf("  optimized files:   %" PRIu64 " (%s logical)\n", files, cli_human_bytes(logical, b1));
        for (int i = 0; i < 4; i++)
            if (w.files[i]) printf("    format %-10s %" PRIu64 " files, %s\n", fmt_names[i], w.files[i], cli_human_bytes(w.logical[i], b2));
        printf("  other files:       %" PRIu64 " (%s)\n", w.plain_files, cli_human_bytes(w.plain_bytes, b3));
        printf("  chunk stores:      %" PRIu64 ", %s in %" PRIu64 " data and %" PRIu64 " stream containers\n", s.stores,
               cli_human_bytes(s.bytes, b4), s.data_containers, s.stream_containers);
        printf("  saved:             %s (savings rate %.1f%%)\n", cli_human_bytes(saved, b1), 100.0 * rate);
    }
    return w.files[3] ? DDP_EXIT_FAIL : 0;
}

int cmd_win_scrub(const char *root, int json)
{
    walk_stats w;
    memset(&w, 0, sizeof w);
    w.root = root;
    w.json = json;
    w.scrub = 1;
    win_vol v;
    HRESULT hr = vol_open(root, &v);
    if (FAILED(hr)) {
        cli_error(hr, "scrub %s", root);
        return DDP_EXIT_FAIL;
    }
    w.vol = &v;
    g_walk = &w;
    g_json_first = 1;
    if (json) printf("{\"windows_volume\":"), cli_json_str(root), printf(",\"failures\":[");
    int walk = nftw(root, walk_one, 32, FTW_PHYS | FTW_ACTIONRETVAL);
    uint64_t files = w.files[0] + w.files[1] + w.files[2] + w.files[3];
    ddp_win_store_stats tot;
    memset(&tot, 0, sizeof tot);
    for (size_t i = 0; i < v.nstores; i++) {
        ddp_win_store_stats s;
        ddp_win_store_get_stats(v.stores[i], &s);
        if (s.crc64 != DDP_WIN_CRC64_UNKNOWN) tot.crc64 = s.crc64;
        tot.crc64_verified += s.crc64_verified;
        tot.crc64_unverified += s.crc64_unverified;
        tot.redirected += s.redirected;
    }
    if (json) {
        printf("],\"files\":%" PRIu64 ",\"failed\":%" PRIu64 ",\"crc64_convention\":\"%s\",\"crc64_verified\":%" PRIu64
               ",\"crc64_unverified\":%" PRIu64 ",\"redirected\":%" PRIu64 ",\"reparse_chunk_crc_mismatches\":%" PRIu64 "}\n",
               files, w.failed, ddp_win_crc64_name(tot.crc64), tot.crc64_verified, tot.crc64_unverified, tot.redirected,
               w.chunk_crc_bad);
    } else {
        printf("scrub %s: %" PRIu64 " Windows-optimized files, %" PRIu64 " cannot be rebuilt\n", root, files, w.failed);
        printf("  record CRC-64: convention %s, %" PRIu64 " verified, %" PRIu64 " unverified; %" PRIu64
               " stream maps found through Rrtl; %" PRIu64 " 0x0103 property-chunk CRC-32 mismatches\n",
               ddp_win_crc64_name(tot.crc64), tot.crc64_verified, tot.crc64_unverified, tot.redirected, w.chunk_crc_bad);
        printf("  not verifiable: the bytes of raw chunks (Windows' chunk hash algorithm is unknown)\n");
    }
    vol_close(&v);
    if (walk != 0) {
        cli_error(ddp_fail_errno(errno, "%s", root), "scrub %s", root);
        return DDP_EXIT_FAIL;
    }
    return w.failed ? DDP_EXIT_FAIL : 0;
}

/* ---- restore ------------------------------------------------------------------------------- */

typedef struct rs_ctx {
    win_vol *vol;
    const char *from, *to;
    uint64_t restored, copied, failed, bytes;
    int list;
} rs_ctx;

/* Write `to/rel` from the Windows file (rp) or the plain file src; mode and times from st. */
static HRESULT restore_one(rs_ctx *c, const char *src, const char *rel, const ddp_win_reparse *rp, const struct stat *st)
{
    char *dst = ddp_path_join(c->to, rel);
    char *tmp = ddp_xasprintf("%s.ddp-restore.%d", dst, (int)getpid());
    HRESULT hr = S_OK;
    char *slash = strrchr(dst, '/');
    if (slash) {
        *slash = 0;
        hr = ddp_mkdir_p(dst, 0755);
        *slash = '/';
    }
    mode_t mode = S_ISLNK(st->st_mode) ? 0644 : (st->st_mode & 07777);
    int fd = SUCCEEDED(hr) ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600) : -1;
    if (SUCCEEDED(hr) && fd < 0) hr = ddp_fail_errno(errno, "%s", tmp);
    uint64_t bytes = 0;
    if (SUCCEEDED(hr)) {
        if (rp) {
            hr = rebuild(c->vol, rp, fd, tmp, &bytes);
        } else {
            int in = open(src, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
            if (in < 0) hr = ddp_fail_errno(errno, "%s", src);
            uint8_t *buf = ddp_xmalloc(COPY_BUF);
            while (SUCCEEDED(hr)) {
                ssize_t r = read(in, buf, COPY_BUF);
                if (r < 0 && errno == EINTR) continue;
                if (r < 0) hr = ddp_fail_errno(errno, "%s", src);
                if (r <= 0) break;
                hr = ddp_write_all(fd, buf, (size_t)r, tmp);
                bytes += (uint64_t)r;
            }
            free(buf);
            if (in >= 0) close(in);
        }
    }
    if (SUCCEEDED(hr) && fchmod(fd, mode) != 0) hr = ddp_fail_errno(errno, "%s", tmp);
    if (SUCCEEDED(hr)) {
        struct timespec ts[2] = { st->st_atim, st->st_mtim };
        if (futimens(fd, ts) != 0) hr = ddp_fail_errno(errno, "%s", tmp);
    }
    if (SUCCEEDED(hr)) hr = ddp_fsync_fd(fd, tmp);
    if (fd >= 0) close(fd);
    if (SUCCEEDED(hr) && rename(tmp, dst) != 0) hr = ddp_fail_errno(errno, "%s", dst);
    if (SUCCEEDED(hr)) hr = ddp_fsync_parent(dst);
    if (FAILED(hr)) unlink(tmp);
    else c->bytes += bytes;
    free(tmp);
    free(dst);
    return hr;
}

static void restore_path(rs_ctx *c, const char *rel);

static void restore_dir(rs_ctx *c, const char *rel)
{
    char *p = ddp_path_join(c->from, rel);
    DIR *d = opendir(p);
    free(p);
    if (!d) return;
    struct dirent *e;
    char **names = NULL;
    size_t n = 0;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (!rel[0] && !strcmp(e->d_name, "System Volume Information")) continue;
        names = ddp_xrealloc(names, (n + 1) * sizeof *names);
        names[n++] = ddp_strdup(e->d_name);
    }
    closedir(d);
    for (size_t i = 0; i < n; i++) {
        char *r = rel[0] ? ddp_xasprintf("%s/%s", rel, names[i]) : ddp_strdup(names[i]);
        restore_path(c, r);
        free(r);
        free(names[i]);
    }
    free(names);
}

static void restore_path(rs_ctx *c, const char *rel)
{
    char *src = ddp_path_join(c->from, rel);
    ddp_win_reparse rp;
    HRESULT hr;
    struct stat st;
    int win = win_reparse_of(src, &rp, &hr, &st);
    if (!win && lstat(src, &st) != 0) {
        hr = ddp_fail_errno(errno, "%s", src);
        printf("%s: 0x%08X %s\n", rel, (unsigned)hr, ddp_error_detail());
        c->failed++;
    } else if (!win && S_ISDIR(st.st_mode)) {
        restore_dir(c, rel);
    } else if (!win && !S_ISREG(st.st_mode)) {
        printf("%s: 0x%08X skipped (neither a file nor a Windows dedup file)\n", rel, (unsigned)S_FALSE);
    } else if (c->list) {
        if (win && SUCCEEDED(hr)) {
            ddp_win_store *s = NULL;
            ddp_winfile *f = NULL;
            hr = vol_store(c->vol, &rp, &s);
            if (SUCCEEDED(hr)) hr = ddp_winfile_open_in(s, &rp, &f);
            for (size_t i = 0; f && i < ddp_winfile_nstreams(f); i++) {
                const ddp_winfile_stream *sm = &ddp_winfile_streams(f)[i];
                char *p = ddp_win_container_path(ddp_win_store_path(s), 1, sm->cid, sm->gen);
                printf("%s\t%s\t%u\t%u\n", rel, p, sm->offset, 0x68 + sm->smap_size);
                free(p);
            }
            for (size_t i = 0; f && i < ddp_winfile_nchunks(f); i++) {
                const ddp_winfile_chunk *ch = &ddp_winfile_chunks(f)[i];
                char *p = ddp_win_container_path(ddp_win_store_path(s), 0, ch->cid, ch->gen);
                printf("%s\t%s\t%u\t%u\n", rel, p, ch->offset, DDP_WIN_DATA_HDR_SIZE + ch->stored);
                free(p);
            }
            ddp_winfile_close(f);
        }
        if (FAILED(hr)) {
            printf("%s: 0x%08X %s\n", rel, (unsigned)hr, ddp_error_detail());
            c->failed++;
        }
    } else {
        if (!win || SUCCEEDED(hr)) hr = restore_one(c, src, rel, win ? &rp : NULL, &st);
        if (FAILED(hr)) {
            printf("%s: 0x%08X %s\n", rel, (unsigned)hr, ddp_error_detail());
            c->failed++;
        } else if (win) {
            printf("%s: 0x%08X restored (Windows format 0x%04X, %llu bytes)\n", rel, (unsigned)hr, rp.format,
                   (unsigned long long)rp.file_size);
            c->restored++;
        } else {
            printf("%s: 0x%08X copied as it was\n", rel, (unsigned)S_FALSE);
            c->copied++;
        }
    }
    free(src);
}

int cmd_win_restore(const char *from, const char *to, char **rel, size_t n, int list)
{
    win_vol v;
    HRESULT hr = vol_open(from, &v);
    if (FAILED(hr)) {
        cli_error(hr, "restore --from %s", from);
        return DDP_EXIT_FAIL;
    }
    double t0 = ddp_now();
    rs_ctx c = { .vol = &v, .from = from, .to = to, .list = list };
    for (size_t i = 0; i < n; i++) restore_path(&c, rel[i]);
    if (!list)
        printf("summary: %zu paths, %" PRIu64 " restored, %" PRIu64 " copied as they were, %" PRIu64 " failed; %" PRIu64
               " bytes written, %" PRIu64 " reads from the Windows volume; %.3f s\n",
               n, c.restored, c.copied, c.failed, c.bytes, win_src_reads(v.src), ddp_now() - t0);
    vol_close(&v);
    return c.failed ? DDP_EXIT_FAIL : 0;
}

int win_is_volume_only(const char *dir)
{
    if (!win_is_volume(dir)) return 0;
    char *p = ddp_path_join(dir, ".ddp");
    struct stat st;
    int ddp = lstat(p, &st) == 0;
    free(p);
    return !ddp;
}
