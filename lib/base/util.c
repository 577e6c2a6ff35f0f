/* SPDX-License-Identifier: MIT */
/*
 * util.c: whole reads and writes, fsync of files and directories, atomic
 * file replacement, paths and allocation helpers (see util.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/util.h"

void *ddp_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) { fputs("ddp: out of memory\n", stderr); abort(); }
    return p;
}

void *ddp_xcalloc(size_t n, size_t m)
{
    void *p = calloc(n ? n : 1, m ? m : 1);
    if (!p) { fputs("ddp: out of memory\n", stderr); abort(); }
    return p;
}

void *ddp_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) { fputs("ddp: out of memory\n", stderr); abort(); }
    return q;
}

char *ddp_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = ddp_xmalloc(n);
    memcpy(d, s, n);
    return d;
}

char *ddp_xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) abort();
    char *s = ddp_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

char *ddp_path_join(const char *a, const char *b)
{
    size_t la = strlen(a);
    while (la > 1 && a[la - 1] == '/') la--;
    while (*b == '/') b++;
    if (!*b) return ddp_xasprintf("%.*s", (int)la, a);
    if (la == 1 && a[0] == '/') return ddp_xasprintf("/%s", b);
    return ddp_xasprintf("%.*s/%s", (int)la, a, b);
}

double ddp_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

HRESULT ddp_write_all(int fd, const void *buf, size_t n, const char *what)
{
    const uint8_t *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return ddp_fail_errno(errno, "writing %s", what);
        }
        if (w == 0) return ddp_fail_errno(ENOSPC, "writing %s", what);
        p += w;
        n -= (size_t)w;
    }
    return S_OK;
}

HRESULT ddp_pwrite_all(int fd, const void *buf, size_t n, uint64_t off, const char *what)
{
    const uint8_t *p = buf;
    while (n > 0) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR) continue;
            return ddp_fail_errno(errno, "writing %s", what);
        }
        if (w == 0) return ddp_fail_errno(ENOSPC, "writing %s", what);
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return S_OK;
}

HRESULT ddp_pread_exact(int fd, void *buf, size_t n, uint64_t off, const char *what)
{
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0) {
            if (errno == EINTR) continue;
            return ddp_fail_errno(errno, "reading %s", what);
        }
        if (r == 0)
            return ddp_fail(DDP_E_FILE_CORRUPT, "%s: truncated (wanted %zu more bytes at offset %llu)",
                            what, n, (unsigned long long)off);
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return S_OK;
}

HRESULT ddp_fsync_fd(int fd, const char *what)
{
    if (fsync(fd) != 0) return ddp_fail_errno(errno, "syncing %s", what);
    return S_OK;
}

HRESULT ddp_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return ddp_fail_errno(errno, "opening directory %s", dir);
    HRESULT hr = S_OK;
    if (fsync(fd) != 0 && errno != EINVAL) hr = ddp_fail_errno(errno, "syncing directory %s", dir);
    close(fd);
    return hr;
}

HRESULT ddp_fsync_parent(const char *path)
{
    char *copy = ddp_strdup(path);
    HRESULT hr = ddp_fsync_dir(dirname(copy));
    free(copy);
    return hr;
}

HRESULT ddp_mkdir_p(const char *path, mode_t mode)
{
    char *p = ddp_strdup(path);
    for (char *s = p + 1; ; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (mkdir(p, mode) != 0 && errno != EEXIST) {
                HRESULT hr = ddp_fail_errno(errno, "creating directory %s", p);
                free(p);
                return hr;
            }
            *s = c;
            if (!c) break;
        }
    }
    free(p);
    return S_OK;
}

/* An unnamed file in path's directory (O_TMPFILE), or -1 where the file
 * system has none. */
static int open_unnamed_beside(const char *path, mode_t mode)
{
    char *copy = ddp_strdup(path);
    int fd = open(dirname(copy), O_TMPFILE | O_WRONLY | O_CLOEXEC, mode);
    free(copy);
    return fd;
}

HRESULT ddp_write_file_atomic(const char *path, const void *data, size_t n, mode_t mode)
{
    char *tmp = ddp_xasprintf("%s.tmp.%ld", path, (long)getpid());
    /* The temporary is locked from before it has its name until the rename
     * is done, so a job's sweep of crash leftovers (volume.c) can take any
     * unlocked NAME.tmp.PID for a dead writer's: it is written unnamed
     * (O_TMPFILE), locked, and only then linked to its name. Where the file
     * system has no O_TMPFILE it is created by name and locked at once. */
    int fd = open_unnamed_beside(path, mode);
    int unnamed = fd >= 0;
    /* Only a file system (or kernel) without O_TMPFILE takes the named way;
     * any other failure (no space, no permission) is the write's failure. */
    if (!unnamed && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL))
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        HRESULT hr = ddp_fail_errno(errno, "creating %s", tmp);
        free(tmp);
        return hr;
    }
    (void)flock(fd, LOCK_EX);
    if (unnamed) (void)fchmod(fd, mode); /* O_TMPFILE's mode went through the umask */
    HRESULT hr = ddp_write_all(fd, data, n, tmp);
    if (SUCCEEDED(hr)) hr = ddp_fsync_fd(fd, tmp);
    if (SUCCEEDED(hr) && unnamed) {
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
        (void)unlink(tmp); /* a dead writer's leftover of this PID */
        if (linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) != 0)
            hr = ddp_fail_errno(errno, "naming %s", tmp);
    }
    if (SUCCEEDED(hr) && rename(tmp, path) != 0) hr = ddp_fail_errno(errno, "renaming %s", tmp);
    if (FAILED(hr)) unlink(tmp);
    if (close(fd) != 0 && SUCCEEDED(hr)) hr = ddp_fail_errno(errno, "closing %s", path);
    if (SUCCEEDED(hr)) hr = ddp_fsync_parent(path);
    free(tmp);
    return hr;
}

HRESULT ddp_read_file(const char *path, size_t max, uint8_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ddp_fail_errno(errno, "opening %s", path);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        HRESULT hr = ddp_fail_errno(errno, "reading %s", path);
        close(fd);
        return hr;
    }
    if ((uint64_t)st.st_size > max) {
        close(fd);
        return ddp_fail(DDP_E_INVALID_DATA, "%s: %lld bytes, more than the %zu expected", path,
                        (long long)st.st_size, max);
    }
    uint8_t *buf = ddp_xmalloc((size_t)st.st_size + 1);
    HRESULT hr = ddp_pread_exact(fd, buf, (size_t)st.st_size, 0, path);
    close(fd);
    if (FAILED(hr)) { free(buf); return hr; }
    buf[st.st_size] = 0;
    *out = buf;
    *n = (size_t)st.st_size;
    return S_OK;
}

HRESULT ddp_pread_upto(int fd, void *buf, size_t n, uint64_t off, size_t *got, const char *what)
{
    uint8_t *p = buf;
    size_t done = 0;
    *got = 0;
    while (done < n) {
        ssize_t r = pread(fd, p + done, n - done, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR) continue;
            return ddp_fail_errno(errno, "reading %s", what);
        }
        if (r == 0) break;
        done += (size_t)r;
    }
    *got = done;
    return S_OK;
}

HRESULT ddp_membuf_read(void *ctx, void *buf, size_t n, uint64_t off, size_t *got)
{
    const ddp_membuf *m = ctx;
    size_t k = off >= m->n ? 0 : (m->n - (size_t)off < n ? m->n - (size_t)off : n);
    if (k) memcpy(buf, m->data + off, k);
    *got = k;
    return S_OK;
}
