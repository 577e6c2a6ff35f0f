/* SPDX-License-Identifier: MIT */
/*
 * ddp_compact_all.c: a test tool that compacts a volume's containers the way
 * garbage collection does (store/compact.h, docs/FORMAT.md "Compacted
 * containers"), so the readers of compacted stores (RestoreFiles over a
 * backup, backups, the mount) can be tested with every record behind a
 * redirection table:
 *
 *   ddp_compact_all VOLUME [--drop KIND:ID:LOCALID]... [--only KIND:ID]...
 *   ddp_compact_all --set-redirect-len CONTAINER_FILE N
 *
 * With the volume's job lock held, each data and stream container of the
 * catalog (or only those named by --only; KIND is data or stream) is written
 * as its next generation keeping every record except those named by --drop
 * (a "garbage-collected" record, for tests of a reference to one), the
 * catalog is rewritten atomically to the new generations (sealed, their
 * lengths), then the old files and State/index (which names offsets of the
 * old generation's records: a cache, rebuilt) are removed. Prints one line
 * per container: "KIND ID GEN -> GEN kept N dropped M".
 *
 * --set-redirect-len rewrites the header of a container file (a hostile
 * backup) to claim a redirection table of N bytes, its checksum made good.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ddp/ddp.h>

#include "base/util.h"
#include "store/catalog.h"
#include "store/compact.h"
#include "store/container.h"
#include "volume/volume.h"

#define MAX_ARGS 64

typedef struct sel { uint32_t kind, id; uint64_t local; } sel;

typedef struct keep_ctx {
    uint32_t kind, id;
    const sel *drops;
    size_t ndrops;
} keep_ctx;

static int keep_fn(void *ctx, const ddp_record_header *h, uint64_t id)
{
    (void)h;
    const keep_ctx *k = ctx;
    for (size_t i = 0; i < k->ndrops; i++)
        if (k->drops[i].kind == k->kind && k->drops[i].id == k->id && k->drops[i].local == id) return 0;
    return 1;
}

/* A number of the selector s at *p, then sep (or the end when sep is 0). */
static int parse_num(const char **p, char sep, uint64_t max, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(*p, &end, 10);
    if (end == *p || errno != 0 || v > max || *end != sep) return 0;
    *out = v;
    *p = sep ? end + 1 : end;
    return 1;
}

static int parse_sel(const char *s, sel *out, int with_local)
{
    const char *p = s;
    if (strncmp(p, "data:", 5) == 0) {
        out->kind = DDP_KIND_DATA;
        p += 5;
    } else if (strncmp(p, "stream:", 7) == 0) {
        out->kind = DDP_KIND_STREAM;
        p += 7;
    } else {
        return 0;
    }
    uint64_t id = 0, local = 0;
    if (!parse_num(&p, with_local ? ':' : 0, UINT32_MAX, &id)) return 0;
    if (with_local && !parse_num(&p, 0, UINT64_MAX, &local)) return 0;
    out->id = (uint32_t)id;
    out->local = local;
    return 1;
}

static int fail(const char *what, HRESULT hr)
{
    fprintf(stderr, "ddp_compact_all: %s: 0x%08X %s\n", what, (unsigned)hr, ddp_error_detail());
    return 1;
}

static int set_redirect_len(const char *path, const char *len)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) return fail(path, ddp_fail_errno(errno, "opening %s", path));
    uint8_t hb[DDP_CONTAINER_HEADER_SIZE];
    ddp_container_header h;
    HRESULT hr = ddp_pread_exact(fd, hb, sizeof hb, 0, path);
    if (SUCCEEDED(hr)) hr = ddp_container_header_decode(hb, &h);
    if (SUCCEEDED(hr)) {
        h.redirect_len = strtoull(len, NULL, 0);
        ddp_container_header_encode(&h, hb);
        hr = ddp_pwrite_all(fd, hb, sizeof hb, 0, path);
    }
    close(fd);
    return FAILED(hr) ? fail(path, hr) : 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--set-redirect-len") == 0) return set_redirect_len(argv[2], argv[3]);
    if (argc < 2) {
        fprintf(stderr, "usage: ddp_compact_all VOLUME [--drop KIND:ID:LOCALID]... [--only KIND:ID]...\n");
        return 2;
    }
    sel drops[MAX_ARGS], only[MAX_ARGS];
    size_t ndrops = 0, nonly = 0;
    for (int a = 2; a < argc; a++) {
        if (strcmp(argv[a], "--drop") == 0 && a + 1 < argc && ndrops < MAX_ARGS &&
            parse_sel(argv[a + 1], &drops[ndrops], 1)) {
            ndrops++;
            a++;
        } else if (strcmp(argv[a], "--only") == 0 && a + 1 < argc && nonly < MAX_ARGS &&
                   parse_sel(argv[a + 1], &only[nonly], 0)) {
            nonly++;
            a++;
        } else {
            fprintf(stderr, "ddp_compact_all: bad argument %s\n", argv[a]);
            return 2;
        }
    }
    ddp_volume *v;
    HRESULT hr = ddp_volume_open(argv[1], DDP_OPEN_JOB, &v);
    if (FAILED(hr)) return fail(argv[1], hr);
    char *catpath = ddp_path_join(v->store_dir, "catalog");
    uint8_t *buf = NULL;
    size_t n = 0;
    ddp_catalog cat;
    hr = ddp_read_file(catpath, (size_t)64 << 20, &buf, &n);
    if (SUCCEEDED(hr)) hr = ddp_catalog_decode(buf, n, &cat);
    free(buf);
    if (FAILED(hr)) return fail(catpath, hr);

    char **old = ddp_xcalloc(cat.count + 1, sizeof *old);
    int rc = 0;
    for (uint32_t i = 0; i < cat.count && rc == 0; i++) {
        ddp_catalog_entry *e = &cat.entries[i];
        if (e->kind != DDP_KIND_DATA && e->kind != DDP_KIND_STREAM) continue;
        int chosen = nonly == 0;
        for (size_t k = 0; k < nonly; k++) chosen |= only[k].kind == e->kind && only[k].id == e->id;
        if (!chosen) continue;
        char rel[40];
        ddp_container_relpath(e->kind, e->id, e->generation, rel);
        char *path = ddp_path_join(v->store_dir, rel);
        char *dir = ddp_path_join(v->store_dir, e->kind == DDP_KIND_DATA ? "Data" : "Stream");
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || dfd < 0) {
            rc = fail(path, ddp_fail_errno(errno, "opening %s", fd < 0 ? path : dir));
        } else {
            keep_ctx kc = { e->kind, e->id, drops, ndrops };
            ddp_compact_result res;
            hr = ddp_container_compact(fd, path, e->length, dfd, keep_fn, &kc, &res);
            if (FAILED(hr)) {
                rc = fail(path, hr);
            } else if (hr == S_FALSE) {
                printf("%s %u %u -> nothing kept (left as it is)\n", e->kind == DDP_KIND_DATA ? "data" : "stream",
                       e->id, e->generation);
            } else {
                printf("%s %u %u -> %u kept %u dropped %u\n", e->kind == DDP_KIND_DATA ? "data" : "stream", e->id,
                       e->generation, res.generation, res.kept, res.dropped);
                old[i] = path;
                path = NULL;
                e->generation = res.generation;
                e->flags |= 1u;
                e->length = res.new_len;
            }
        }
        if (fd >= 0) close(fd);
        if (dfd >= 0) close(dfd);
        free(path);
        free(dir);
    }
    if (rc == 0) {
        uint8_t *enc = NULL;
        size_t elen = 0;
        hr = ddp_catalog_encode(&cat, &enc, &elen);
        if (SUCCEEDED(hr)) hr = ddp_write_file_atomic(catpath, enc, elen, 0600);
        free(enc);
        if (FAILED(hr)) rc = fail(catpath, hr);
    }
    for (uint32_t i = 0; i < cat.count; i++) {
        if (old[i] && rc == 0 && unlink(old[i]) != 0) rc = fail(old[i], ddp_fail_errno(errno, "removing %s", old[i]));
        free(old[i]);
    }
    if (rc == 0) {
        char *ix = ddp_path_join(v->state_dir, "index");
        if (unlink(ix) != 0 && errno != ENOENT) rc = fail(ix, ddp_fail_errno(errno, "removing %s", ix));
        free(ix);
    }
    free(old);
    free(catpath);
    ddp_catalog_free(&cat);
    ddp_volume_close(v);
    return rc;
}
