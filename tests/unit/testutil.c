/* SPDX-License-Identifier: MIT */
/*
 * testutil.c: helpers shared by the unit tests (see testutil.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <ddp/ddp.h>

#include "base/fileattr.h"
#include "testutil.h"

void tu_fill_random(void *buf, size_t n, uint64_t seed)
{
    uint8_t *p = buf;
    uint64_t x = seed;
    while (n > 0) {
        x += 0x9E3779B97F4A7C15ull;
        uint64_t z = x;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        size_t k = n < 8 ? n : 8;
        memcpy(p, &z, k);
        p += k;
        n -= k;
    }
}

char *tu_mkdtemp(void)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    char *path = malloc(strlen(base) + 32);
    if (!path) abort();
    sprintf(path, "%s/ddp-test-XXXXXX", base);
    if (!mkdtemp(path)) { perror("mkdtemp"); abort(); }
    return path;
}

void tu_rmrf(const char *path)
{
    char *cmd = malloc(strlen(path) + 32);
    if (!cmd) abort();
    sprintf(cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", path);
    free(cmd);
}

static void mkparents(const char *path)
{
    char *p = strdup(path);
    if (!p) abort();
    for (char *s = p + 1; *s; s++) {
        if (*s == '/') {
            *s = 0;
            if (mkdir(p, 0755) != 0 && errno != EEXIST) { perror(p); abort(); }
            *s = '/';
        }
    }
    free(p);
}

char *tu_xprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    assert_true(n >= 0);
    return s;
}

void tu_mkdirs(const char *path)
{
    char *p = strdup(path);
    assert_non_null(p);
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char ch = *s;
            *s = '\0';
            if (mkdir(p, 0755) != 0) assert_int_equal(errno, EEXIST);
            *s = ch;
            if (!ch) break;
        }
    }
    free(p);
}

void tu_assert_no_temps(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (ddp_is_temp_name(e->d_name) || strstr(e->d_name, ".ddp-tmp.")) {
            fprintf(stderr, "leftover temporary file %s/%s\n", dir, e->d_name);
            fail();
        }
    }
    closedir(d);
}

void tu_write_file(const char *path, const void *data, size_t n)
{
    mkparents(path);
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); abort(); }
    if (n && fwrite(data, 1, n, f) != n) { perror(path); abort(); }
    if (fclose(f) != 0) { perror(path); abort(); }
}

tu_tree *tu_tree_new(void)
{
    tu_tree *t = calloc(1, sizeof *t);
    assert_non_null(t);
    t->dir = tu_mkdtemp();
    char *p = tu_tree_path(t, "outside");
    tu_mkdirs(p);
    free(p);
    p = tu_tree_path(t, "root");
    tu_mkdirs(p);
    t->rootfd = open(p, O_RDONLY | O_DIRECTORY);
    free(p);
    assert_true(t->rootfd >= 0);
    return t;
}

char *tu_tree_path(const tu_tree *t, const char *rel) { return tu_xprintf("%s/%s", t->dir, rel); }

void tu_tree_put(const tu_tree *t, const char *rel, const char *text)
{
    char *p = tu_tree_path(t, rel);
    tu_write_file(p, text, strlen(text));
    free(p);
}

void tu_tree_link_out(const tu_tree *t, const char *rel)
{
    char *p = tu_tree_path(t, rel);
    char *target = tu_tree_path(t, "outside");
    assert_int_equal(symlink(target, p), 0);
    free(target);
    free(p);
}

int tu_tree_exists(const tu_tree *t, const char *rel)
{
    char *p = tu_tree_path(t, rel);
    struct stat st;
    int r = lstat(p, &st) == 0;
    free(p);
    return r;
}

void tu_tree_free(tu_tree *t)
{
    if (!t) return;
    close(t->rootfd);
    tu_rmrf(t->dir);
    free(t->dir);
    free(t);
}

int tu_tree_teardown(void **state)
{
    tu_tree_free(*state);
    return 0;
}

uint8_t *tu_read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, len = 0;
    uint8_t *buf = malloc(cap);
    if (!buf) abort();
    for (;;) {
        if (len == cap) { cap *= 2; buf = realloc(buf, cap); if (!buf) abort(); }
        size_t r = fread(buf + len, 1, cap - len, f);
        len += r;
        if (r == 0) break;
    }
    fclose(f);
    *n = len;
    return buf;
}

void tu_write_versions(const char *dir, const tu_versions *spec, int n, char **path, uint8_t **data, size_t *size)
{
    uint8_t *base = malloc(spec->base);
    assert_non_null(base);
    tu_fill_random(base, spec->base, spec->base_seed);
    for (int i = 0; i < n; i++) {
        int shared = i < n - 1;
        size_t len = shared ? spec->base + spec->tail + (size_t)i * spec->step : spec->last;
        data[i] = malloc(len);
        assert_non_null(data[i]);
        size[i] = len;
        if (shared) {
            memcpy(data[i], base, spec->base);
            tu_fill_random(data[i] + spec->base, len - spec->base, spec->tail_seed + (uint64_t)i);
        } else {
            tu_fill_random(data[i], len, spec->last_seed);
        }
        path[i] = malloc(strlen(dir) + strlen(spec->sub) + 32);
        assert_non_null(path[i]);
        sprintf(path[i], "%s/%s%d/f%d.bin", dir, spec->sub, i % 2, i);
        tu_write_file(path[i], data[i], len);
    }
    free(base);
}

void tu_optimize_volume(const char *dir, const char *hotspot_threshold, uint64_t expect)
{
    assert_int_equal(ddp_volume_enable(dir, "Backup"), S_OK);
    ddp_volume *v = NULL;
    assert_int_equal(ddp_volume_open(dir, DDP_OPEN_JOB, &v), S_OK);
    if (hotspot_threshold) assert_int_equal(ddp_volume_set(v, "hotspot_threshold", hotspot_threshold), S_OK);
    ddp_job_stats js;
    assert_int_equal(ddp_optimize(v, 2, NULL, &js), S_OK);
    assert_int_equal(js.files_optimized, expect);
    ddp_volume_close(v);
}
