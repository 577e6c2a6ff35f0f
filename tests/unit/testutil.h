/* SPDX-License-Identifier: MIT */
/*
 * testutil.h: helpers shared by the cmocka unit tests: deterministic
 * pseudo-random data, temporary directories, small file and string
 * helpers, and a volume of files that dedup, optimized.
 */
#ifndef DDP_TESTUTIL_H
#define DDP_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Deterministic pseudo-random bytes (splitmix64 stream from seed). */
void tu_fill_random(void *buf, size_t n, uint64_t seed);
/* A fresh directory under $TMPDIR or /tmp; malloc'd path. */
char *tu_mkdtemp(void);
/* rm -rf path (best effort). */
void tu_rmrf(const char *path);
/* Write n bytes to path (creating parent dirs); aborts on failure. */
void tu_write_file(const char *path, const void *data, size_t n);
/* Read a whole file; malloc'd, *n set; NULL if it cannot be read. */
uint8_t *tu_read_file(const char *path, size_t *n);
/* A malloc'd formatted string (fails the test when out of memory). */
char *tu_xprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* mkdir -p path (fails the test on any error but EEXIST). */
void tu_mkdirs(const char *path);
/* Fail the test when dir holds a temporary file of ddp (ddp_is_temp_name)
 * or of a restore (".ddp-tmp."). */
void tu_assert_no_temps(const char *dir);

/* A scratch tree for the tests of paths beneath a held directory: a fresh
 * directory dir with the directories "outside" and "root", root held open
 * as rootfd. Paths named rel are relative to dir. */
typedef struct tu_tree {
    char *dir;
    int rootfd;
} tu_tree;
tu_tree *tu_tree_new(void);
/* dir/rel; malloc'd. */
char *tu_tree_path(const tu_tree *t, const char *rel);
/* A file of the given text at rel (parents created). */
void tu_tree_put(const tu_tree *t, const char *rel, const char *text);
/* A symbolic link at rel to the absolute path of "outside". */
void tu_tree_link_out(const tu_tree *t, const char *rel);
/* Whether rel exists (not following a link at its end). */
int tu_tree_exists(const tu_tree *t, const char *rel);
void tu_tree_free(tu_tree *t);
/* A cmocka teardown freeing the tu_tree in *state. */
int tu_tree_teardown(void **state);

/* Versions of one file: file i of n is DIR/SUB<i % 2>/f<i>.bin. Files
 * 0..n-2 share one random base of base bytes (base_seed), followed by a
 * random tail of tail + i * step bytes (tail_seed + i); file n-1 is last
 * random bytes (last_seed). path, data and size get n malloc'd entries. */
typedef struct tu_versions {
    const char *sub;
    size_t base, tail, step, last;
    uint64_t base_seed, tail_seed, last_seed;
} tu_versions;
void tu_write_versions(const char *dir, const tu_versions *spec, int n, char **path, uint8_t **data, size_t *size);

/* Enable dir as a Backup volume, set hotspot_threshold (unless NULL) and
 * optimize it on 2 threads: every step must succeed and expect files be
 * optimized. */
void tu_optimize_volume(const char *dir, const char *hotspot_threshold, uint64_t expect);

#endif
