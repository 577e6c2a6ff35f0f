/*
 * testutil.h: helpers shared by the cmocka unit tests: deterministic
 * pseudo-random data, temporary directories, small file helpers.
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

#endif
