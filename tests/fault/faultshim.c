/* SPDX-License-Identifier: MIT */
/*
 * faultshim.c: an LD_PRELOAD shim that makes one file-system call of a
 * process fail on demand, so the tests can walk a failure point through a
 * whole ddp job (tests/e2e/test_fault.sh, docs/ROBUSTNESS.md).
 *
 *   DDP_FAULT=FAMILY:N:ERR[,FAMILY:N:ERR...]
 *
 * FAMILY is a group of calls counted together:
 *   write     write, pwrite, pwrite64, writev, pwritev
 *   fsync     fsync, fdatasync, syncfs
 *   rename    rename, renameat, renameat2
 *   open      open, open64, openat, openat64, creat with O_CREAT (or
 *             O_TMPFILE), and mkstemp, mkostemp (glibc creates those
 *             files internally, out of reach of an interposed open)
 *   close     close
 *   ftruncate ftruncate, ftruncate64
 * N is 1-based: "fsync:3:EIO" fails the third fsync-family call only;
 * "write:5+:ENOSPC" fails the fifth and every later write (a disk that
 * stays full). ERR is an errno name (EIO, ENOSPC, EDQUOT, EROFS, EACCES,
 * EPERM, EMFILE, ENOMEM, EFBIG, EINTR, EAGAIN) or number, or "short" for
 * the write family: the call writes only part of the bytes (at most half)
 * and reports that count, as a real write may. ERR "kill" ends the process
 * with SIGKILL just before the call, "killafter" just after it: a crash at
 * an exact point (bench/crash_stress.sh).
 *
 * A failing call does nothing, except close, which still releases the
 * descriptor (as Linux does when close reports an error).
 *
 * Writes to descriptors 0-2 are not counted: they are the program's
 * terminal or pipes, not the volume.
 *
 *   DDP_FAULT_LOG=PATH    append a line per injected fault: family, call
 *                         number, errno, the function, the file, and for a
 *                         descriptor whether it was open read-only
 *   DDP_FAULT_COUNT=PATH  at exit, write "FAMILY COUNT" for every family
 *                         (a clean run tells a test the range of N to walk)
 *   DDP_FAULT_SPLICE_DELAY_US=N
 *                         every splice(2) waits N microseconds first: a
 *                         reply of `ddp mount` that libfuse splices is held
 *                         up after the read handler returned, so the test
 *                         sees whether what it hands the kernel stays put
 *                         (tests/e2e/test_mount.sh)
 *
 * The counters are process-wide and atomic, so a multi-threaded job is
 * covered; with more than one thread the N-th call is whichever comes N-th.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

enum family { F_WRITE, F_FSYNC, F_RENAME, F_OPEN, F_CLOSE, F_FTRUNCATE, F_COUNT };
static const char *const family_names[F_COUNT] = { "write", "fsync", "rename", "open", "close", "ftruncate" };

#define MAX_RULES 8
#define ERR_SHORT (-1)
#define ERR_KILL (-2)
#define ERR_KILL_AFTER (-3)

typedef struct rule {
    int family;
    unsigned long n;
    int and_later;
    int err; /* errno, or ERR_SHORT */
} rule;

static rule rules[MAX_RULES];
static int nrules = -1; /* -1: not parsed yet */
static unsigned long counters[F_COUNT];
static const char *log_path, *count_path;

static const struct { const char *name; int value; } errnames[] = {
    { "EIO", EIO }, { "ENOSPC", ENOSPC }, { "EDQUOT", EDQUOT }, { "EROFS", EROFS }, { "EACCES", EACCES },
    { "EPERM", EPERM }, { "EMFILE", EMFILE }, { "ENOMEM", ENOMEM }, { "EFBIG", EFBIG }, { "EINTR", EINTR },
    { "EAGAIN", EAGAIN }, { "EBADF", EBADF }, { "EINVAL", EINVAL }, { "ENFILE", ENFILE },
};

/* ---- the real functions ---- */

#define REAL(ret, name, params)                                                     \
    static ret(*real_##name) params;                                                \
    static ret(*get_##name(void)) params                                            \
    {                                                                               \
        if (!real_##name) {                                                         \
            real_##name = (ret(*) params)dlsym(RTLD_NEXT, #name);                   \
            if (!real_##name) {                                                     \
                static const char msg[] = "faultshim: cannot find " #name "\n";     \
                syscall_write_stderr(msg, sizeof msg - 1);                          \
                abort();                                                            \
            }                                                                       \
        }                                                                           \
        return real_##name;                                                         \
    }

static void syscall_write_stderr(const char *msg, size_t n);

REAL(ssize_t, write, (int, const void *, size_t))
REAL(ssize_t, pwrite, (int, const void *, size_t, off_t))
REAL(ssize_t, pwrite64, (int, const void *, size_t, off64_t))
REAL(ssize_t, writev, (int, const struct iovec *, int))
REAL(ssize_t, pwritev, (int, const struct iovec *, int, off_t))
REAL(int, fsync, (int))
REAL(int, fdatasync, (int))
REAL(int, syncfs, (int))
REAL(int, rename, (const char *, const char *))
REAL(int, renameat, (int, const char *, int, const char *))
REAL(int, renameat2, (int, const char *, int, const char *, unsigned int))
REAL(int, open, (const char *, int, ...))
REAL(int, open64, (const char *, int, ...))
REAL(int, openat, (int, const char *, int, ...))
REAL(int, openat64, (int, const char *, int, ...))
REAL(int, creat, (const char *, mode_t))
REAL(int, mkstemp, (char *))
REAL(int, mkostemp, (char *, int))
REAL(int, mkstemp64, (char *))
REAL(int, mkostemp64, (char *, int))
REAL(int, close, (int))
REAL(int, ftruncate, (int, off_t))
REAL(int, ftruncate64, (int, off64_t))
REAL(ssize_t, splice, (int, loff_t *, int, loff_t *, size_t, unsigned int))

static void syscall_write_stderr(const char *msg, size_t n)
{
    /* Not through write(): that may be us. */
    if (real_write) (void)real_write(2, msg, n);
}

/* ---- configuration ---- */

static int parse_err(const char *s, size_t n)
{
    if (n == 5 && memcmp(s, "short", 5) == 0) return ERR_SHORT;
    if (n == 4 && memcmp(s, "kill", 4) == 0) return ERR_KILL;
    if (n == 9 && memcmp(s, "killafter", 9) == 0) return ERR_KILL_AFTER;
    for (size_t i = 0; i < sizeof errnames / sizeof errnames[0]; i++)
        if (strlen(errnames[i].name) == n && memcmp(errnames[i].name, s, n) == 0) return errnames[i].value;
    if (n > 0 && n < 6 && s[0] >= '1' && s[0] <= '9') {
        char *end;
        long v = strtol(s, &end, 10);
        return end == s + n ? (int)v : 0;
    }
    return 0;
}

static void bad_config(const char *spec)
{
    (void)get_write();
    char msg[512];
    int k = snprintf(msg, sizeof msg,
                     "faultshim: cannot parse DDP_FAULT=%s (want FAMILY:N[+]:ERR, FAMILY one of write fsync "
                     "rename open close ftruncate)\n", spec);
    syscall_write_stderr(msg, k > 0 && (size_t)k < sizeof msg ? (size_t)k : sizeof msg - 1);
    _exit(97);
}

static void write_counts(void);

static void configure(void)
{
    if (__atomic_load_n(&nrules, __ATOMIC_ACQUIRE) >= 0) return;
    static int lock;
    while (__atomic_exchange_n(&lock, 1, __ATOMIC_ACQUIRE)) {
    }
    if (nrules < 0) {
        int k = 0;
        const char *spec = getenv("DDP_FAULT");
        log_path = getenv("DDP_FAULT_LOG");
        count_path = getenv("DDP_FAULT_COUNT");
        if (count_path) atexit(write_counts);
        const char *p = spec;
        while (p && *p && k < MAX_RULES) {
            const char *end = strchr(p, ',');
            if (!end) end = p + strlen(p);
            const char *c1 = memchr(p, ':', (size_t)(end - p));
            const char *c2 = c1 ? memchr(c1 + 1, ':', (size_t)(end - c1 - 1)) : NULL;
            if (!c1 || !c2) bad_config(spec);
            rule r = { -1, 0, 0, 0 };
            for (int f = 0; f < F_COUNT; f++)
                if (strlen(family_names[f]) == (size_t)(c1 - p) && memcmp(family_names[f], p, (size_t)(c1 - p)) == 0)
                    r.family = f;
            char *num_end;
            r.n = strtoul(c1 + 1, &num_end, 10);
            if (*num_end == '+') {
                r.and_later = 1;
                num_end++;
            }
            r.err = parse_err(c2 + 1, (size_t)(end - c2 - 1));
            if (r.family < 0 || r.n == 0 || num_end != c2 || r.err == 0) bad_config(spec);
            if (r.err == ERR_SHORT && r.family != F_WRITE) bad_config(spec);
            rules[k++] = r;
            p = *end ? end + 1 : end;
        }
        __atomic_store_n(&nrules, k, __ATOMIC_RELEASE);
    }
    __atomic_store_n(&lock, 0, __ATOMIC_RELEASE);
}

static void write_counts(void)
{
    int fd = get_open()(count_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return;
    char buf[512];
    size_t len = 0;
    for (int f = 0; f < F_COUNT; f++) {
        int k = snprintf(buf + len, sizeof buf - len, "%s %lu\n", family_names[f],
                         __atomic_load_n(&counters[f], __ATOMIC_RELAXED));
        if (k > 0) len += (size_t)k;
    }
    (void)get_write()(fd, buf, len);
    (void)get_close()(fd);
}

static void log_fault(int family, unsigned long n, int err, const char *fn, int fd, const char *path)
{
    if (!log_path) return;
    char target[512] = "";
    const char *access_mode = "";
    if (fd >= 0) {
        int fl = fcntl(fd, F_GETFL);
        access_mode = fl < 0 ? " (bad fd)" : (fl & O_ACCMODE) == O_RDONLY ? " (read-only)" : " (writable)";
    }
    if (path) {
        snprintf(target, sizeof target, "%s", path);
    } else if (fd >= 0) {
        char link[64];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t l = readlink(link, target, sizeof target - 1);
        target[l > 0 ? l : 0] = '\0';
    }
    char line[1024];
    int k = snprintf(line, sizeof line, "fault: %s #%lu %s in %s(%s)%s pid %ld\n", family_names[family], n,
                     err == ERR_SHORT ? "short" : err == ERR_KILL ? "kill" : err == ERR_KILL_AFTER ? "killafter" : strerrorname_np(err) ? strerrorname_np(err) : "?", fn, target,
                     access_mode, (long)getpid());
    if (k <= 0) return;
    int lfd = get_open()(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (lfd < 0) return;
    (void)get_write()(lfd, line, (size_t)k < sizeof line ? (size_t)k : sizeof line - 1);
    (void)get_close()(lfd);
}

static void kill_self(void)
{
    raise(SIGKILL);
    _exit(137);
}

/* Count one call of family; 0 to let it through, else the errno (or
 * ERR_SHORT) to inject. */
static int should_fail(int family, const char *fn, int fd, const char *path)
{
    configure();
    unsigned long n = __atomic_add_fetch(&counters[family], 1, __ATOMIC_RELAXED);
    for (int i = 0; i < nrules; i++) {
        const rule *r = &rules[i];
        if (r->family == family && (n == r->n || (r->and_later && n > r->n))) {
            int saved = errno;
            log_fault(family, n, r->err, fn, fd, path);
            errno = saved;
            if (r->err == ERR_KILL) kill_self();
            return r->err;
        }
    }
    return 0;
}

/* ---- the interposed calls ---- */

/* Count the call; fail it (errno = e, return -1) or run it, then maybe end
 * the process (killafter). */
#define RUN(family, fn, fd, path, type, call)               \
    do {                                                    \
        int e_ = should_fail(family, fn, fd, path);         \
        if (e_ > 0) {                                       \
            errno = e_;                                     \
            return -1;                                      \
        }                                                   \
        type r_ = call;                                     \
        if (e_ == ERR_KILL_AFTER) kill_self();              \
        return r_;                                          \
    } while (0)

/* The write family: short writes too. */
#define RUN_WRITE(fn, fd, n, call, short_call)              \
    do {                                                    \
        if ((fd) <= 2) return (call);                       \
        int e_ = should_fail(F_WRITE, fn, fd, NULL);        \
        if (e_ > 0) {                                       \
            errno = e_;                                     \
            return -1;                                      \
        }                                                   \
        ssize_t r_ = (e_ == ERR_SHORT && (n) > 1) ? (short_call) : (call); \
        if (e_ == ERR_KILL_AFTER) kill_self();              \
        return r_;                                          \
    } while (0)

ssize_t write(int fd, const void *buf, size_t n)
{
    RUN_WRITE("write", fd, n, get_write()(fd, buf, n), get_write()(fd, buf, n / 2));
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    RUN_WRITE("pwrite", fd, n, get_pwrite()(fd, buf, n, off), get_pwrite()(fd, buf, n / 2, off));
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
    RUN_WRITE("pwrite64", fd, n, get_pwrite64()(fd, buf, n, off), get_pwrite64()(fd, buf, n / 2, off));
}

/* A short vectored write: the first half of the first non-empty buffer. */
static ssize_t short_iov(const struct iovec *iov, int cnt, int fd, off_t off, int positional)
{
    for (int i = 0; i < cnt; i++) {
        if (iov[i].iov_len == 0) continue;
        size_t k = iov[i].iov_len > 1 ? iov[i].iov_len / 2 : 1;
        return positional ? get_pwrite()(fd, iov[i].iov_base, k, off) : get_write()(fd, iov[i].iov_base, k);
    }
    return 0;
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    RUN_WRITE("writev", fd, 2, get_writev()(fd, iov, cnt), short_iov(iov, cnt, fd, 0, 0));
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
    RUN_WRITE("pwritev", fd, 2, get_pwritev()(fd, iov, cnt, off), short_iov(iov, cnt, fd, off, 1));
}

int fsync(int fd) { RUN(F_FSYNC, "fsync", fd, NULL, int, get_fsync()(fd)); }
int fdatasync(int fd) { RUN(F_FSYNC, "fdatasync", fd, NULL, int, get_fdatasync()(fd)); }
int syncfs(int fd) { RUN(F_FSYNC, "syncfs", fd, NULL, int, get_syncfs()(fd)); }

int rename(const char *a, const char *b) { RUN(F_RENAME, "rename", -1, b, int, get_rename()(a, b)); }
int renameat(int da, const char *a, int db, const char *b)
{
    RUN(F_RENAME, "renameat", -1, b, int, get_renameat()(da, a, db, b));
}
int renameat2(int da, const char *a, int db, const char *b, unsigned int flags)
{
    RUN(F_RENAME, "renameat2", -1, b, int, get_renameat2()(da, a, db, b, flags));
}

static int creates(int flags) { return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE; }

static mode_t mode_arg(int flags, va_list ap)
{
    return creates(flags) ? (mode_t)va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    if (creates(flags)) RUN(F_OPEN, "open", -1, path, int, get_open()(path, flags, mode));
    return get_open()(path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    if (creates(flags)) RUN(F_OPEN, "open64", -1, path, int, get_open64()(path, flags, mode));
    return get_open64()(path, flags, mode);
}

int openat(int dfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    if (creates(flags)) RUN(F_OPEN, "openat", -1, path, int, get_openat()(dfd, path, flags, mode));
    return get_openat()(dfd, path, flags, mode);
}

int openat64(int dfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    if (creates(flags)) RUN(F_OPEN, "openat64", -1, path, int, get_openat64()(dfd, path, flags, mode));
    return get_openat64()(dfd, path, flags, mode);
}

/* The _FORTIFY_SOURCE entry points of open. */
REAL(int, __open_2, (const char *, int))
REAL(int, __open64_2, (const char *, int))
REAL(int, __openat_2, (int, const char *, int))
REAL(int, __openat64_2, (int, const char *, int))
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dfd, const char *path, int flags);
int __openat64_2(int dfd, const char *path, int flags);
int __open_2(const char *path, int flags)
{
    if (creates(flags)) RUN(F_OPEN, "__open_2", -1, path, int, get___open_2()(path, flags));
    return get___open_2()(path, flags);
}
int __open64_2(const char *path, int flags)
{
    if (creates(flags)) RUN(F_OPEN, "__open64_2", -1, path, int, get___open64_2()(path, flags));
    return get___open64_2()(path, flags);
}
int __openat_2(int dfd, const char *path, int flags)
{
    if (creates(flags)) RUN(F_OPEN, "__openat_2", -1, path, int, get___openat_2()(dfd, path, flags));
    return get___openat_2()(dfd, path, flags);
}
int __openat64_2(int dfd, const char *path, int flags)
{
    if (creates(flags)) RUN(F_OPEN, "__openat64_2", -1, path, int, get___openat64_2()(dfd, path, flags));
    return get___openat64_2()(dfd, path, flags);
}

int creat(const char *path, mode_t mode) { RUN(F_OPEN, "creat", -1, path, int, get_creat()(path, mode)); }
int mkstemp(char *tmpl) { RUN(F_OPEN, "mkstemp", -1, tmpl, int, get_mkstemp()(tmpl)); }
int mkostemp(char *tmpl, int flags) { RUN(F_OPEN, "mkostemp", -1, tmpl, int, get_mkostemp()(tmpl, flags)); }
int mkstemp64(char *tmpl) { RUN(F_OPEN, "mkstemp64", -1, tmpl, int, get_mkstemp64()(tmpl)); }
int mkostemp64(char *tmpl, int flags) { RUN(F_OPEN, "mkostemp64", -1, tmpl, int, get_mkostemp64()(tmpl, flags)); }

int close(int fd)
{
    if (fd <= 2) return get_close()(fd);
    int e = should_fail(F_CLOSE, "close", fd, NULL);
    int r = get_close()(fd);
    if (e == ERR_KILL_AFTER) kill_self();
    if (e > 0) {
        errno = e;
        return -1;
    }
    return r;
}

int ftruncate(int fd, off_t len) { RUN(F_FTRUNCATE, "ftruncate", fd, NULL, int, get_ftruncate()(fd, len)); }
int ftruncate64(int fd, off64_t len) { RUN(F_FTRUNCATE, "ftruncate64", fd, NULL, int, get_ftruncate64()(fd, len)); }

/* Not a fault: a delay (DDP_FAULT_SPLICE_DELAY_US) before every splice. */
ssize_t splice(int fd_in, loff_t *off_in, int fd_out, loff_t *off_out, size_t len, unsigned int flags)
{
    static long delay_us = -1;
    if (__atomic_load_n(&delay_us, __ATOMIC_RELAXED) < 0) {
        const char *d = getenv("DDP_FAULT_SPLICE_DELAY_US");
        __atomic_store_n(&delay_us, d ? atol(d) : 0, __ATOMIC_RELAXED);
    }
    if (delay_us > 0) usleep((useconds_t)delay_us);
    return get_splice()(fd_in, off_in, fd_out, off_out, len, flags);
}
