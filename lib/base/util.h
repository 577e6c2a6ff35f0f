/* SPDX-License-Identifier: MIT */
/*
 * util.h: small pieces every module uses: little-endian encoding, whole
 * reads and writes that retry on EINTR and short counts, fsync of files and
 * directories, atomic file replacement, and the error-detail channel.
 *
 * Error detail: a failing call records a one-line message naming what was
 * wrong ("stub /srv/a.iso: MAC check failed") with ddp_fail(); the CLI prints
 * it with ddp_error_detail(). It is thread-local: each thread sees its own.
 */
#ifndef DDP_UTIL_H
#define DDP_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <ddp/ddperror.h>

static inline void ddp_put_le16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void ddp_put_le32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static inline void ddp_put_le64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static inline uint16_t ddp_get_le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t ddp_get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t ddp_get_le64(const uint8_t *p)
{
    return (uint64_t)ddp_get_le32(p) | ((uint64_t)ddp_get_le32(p + 4) << 32);
}

/* Record hr with a formatted detail message for this thread; returns hr. */
HRESULT ddp_fail(HRESULT hr, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Same, for an errno value: hr = ddp_hresult_from_errno(err), message gets strerror. */
HRESULT ddp_fail_errno(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Forget this thread's detail message. */
void ddp_clear_error(void);
/* Keep the first error of several steps: `first` if it failed (its detail,
 * saved before the later steps ran, put back), else `next`. Use as
 *   ddp_saved_error se; ddp_error_save(&se); hn = later_step();
 *   hr = ddp_first_error(hr, &se, hn);                                     */
typedef struct ddp_saved_error {
    char text[1024];
} ddp_saved_error;
void ddp_error_save(ddp_saved_error *se);
HRESULT ddp_first_error(HRESULT first, const ddp_saved_error *se, HRESULT next);

/* Whole-buffer I/O. Short reads at end of file give DDP_E_FILE_CORRUPT
 * (the caller asked for bytes the file does not have); errors map errno.
 * `what` names the file in the detail message. */
HRESULT ddp_write_all(int fd, const void *buf, size_t n, const char *what);
HRESULT ddp_pwrite_all(int fd, const void *buf, size_t n, uint64_t off, const char *what);
HRESULT ddp_pread_exact(int fd, void *buf, size_t n, uint64_t off, const char *what);
/* pread until n bytes or end of file; *got = bytes read. Errors via errno. */
HRESULT ddp_pread_upto(int fd, void *buf, size_t n, uint64_t off, size_t *got, const char *what);
/* A range of memory read the way ddp_pread_upto reads a file (a source
 * callback of the S3 uploader and of extract): at most n bytes from off into
 * buf, *got fewer at the end, none past it. ctx is a const ddp_membuf *. */
typedef struct ddp_membuf {
    const uint8_t *data;
    size_t n;
} ddp_membuf;
HRESULT ddp_membuf_read(void *ctx, void *buf, size_t n, uint64_t off, size_t *got);
HRESULT ddp_fsync_fd(int fd, const char *what);
HRESULT ddp_fsync_dir(const char *dir);
/* fsync the directory that holds path. */
HRESULT ddp_fsync_parent(const char *path);
HRESULT ddp_mkdir_p(const char *path, mode_t mode);
/* Write a whole file atomically: PATH.tmp.PID, fsync, rename over path, fsync dir. */
HRESULT ddp_write_file_atomic(const char *path, const void *data, size_t n, mode_t mode);
/* Read a whole file of at most max bytes into a malloc'd buffer. */
HRESULT ddp_read_file(const char *path, size_t max, uint8_t **out, size_t *n);

/* malloc'd "a/b" (no double slash). Never NULL: aborts on out-of-memory. */
char *ddp_path_join(const char *a, const char *b);
char *ddp_strdup(const char *s);
void *ddp_xmalloc(size_t n);
void *ddp_xcalloc(size_t n, size_t m);
void *ddp_xrealloc(void *p, size_t n);
char *ddp_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Monotonic seconds, for throughput figures. */
double ddp_now(void);

#endif /* DDP_UTIL_H */
