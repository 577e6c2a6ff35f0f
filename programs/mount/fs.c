/* SPDX-License-Identifier: MIT */
/*
 * fs.c: the FUSE file system behind `ddp mount` (libfuse3, high-level
 * API, multithreaded): the volume's tree passed through, with every
 * optimized file reading as the file it was. This file holds the file
 * system object: its state, the log, path resolution beneath the volume
 * root, the table of operations, init and destroy, the kernel's read-ahead
 * and ddpfs_main. mountfs.h says where the rest is: the operations on the
 * tree (tree.c), stubs and reads (stubread.c), files open for writing
 * (rehydrate.c), the chunk cache (chunkcache.c).
 *
 * Passthrough. Every path is resolved relative to an O_PATH descriptor of
 * the volume root: the parent directory is opened with openat2(2)
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS (or, on kernels without it, one
 * O_NOFOLLOW component at a time), and the operation is the *at() call on
 * the last name, never following a symlink there either. FUSE paths never
 * contain symlinks (the kernel resolves them through readlink), so nothing a
 * user does inside the volume can make the daemon act outside it. Library
 * calls that take a path get "/proc/self/fd/DIRFD/NAME". `.ddp` is hidden
 * from readdir and every lookup of it fails with ENOENT (creating it, EPERM).
 * ddp's temporaries live in .ddp/Temp, so every name in the tree is a
 * user's and is shown (a user's `.NAME.ddp-tmp.XXXXXX` too). Permission checks are the kernel's (default_permissions is always
 * on); when the daemon runs as root, what it creates is given to the caller.
 */
#ifdef DDP_HAVE_FUSE

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "base/util.h"
#include "chunkcache.h"
#include "mountfs.h"
#include "volume/volume.h"

#define KERNEL_RA_MIN_KB 128u           /* the kernel's own read-ahead of a FUSE mount */

/* ------------------------------------------------------------------ state */

mnt_state mnt;

/* -------------------------------------------------------------------- log */

/* A log line (errors: LOG_ERR; what the mount does: LOG_INFO). */
void mnt_log_at(int prio, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (mnt.use_syslog) {
        syslog(prio, "%s", msg);
        return;
    }
    if (!mnt.logf) return;
    char stamp[32];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
    pthread_mutex_lock(&mnt.logmu);
    fprintf(mnt.logf, "%s ddp mount: %s\n", stamp, msg);
    fflush(mnt.logf);
    pthread_mutex_unlock(&mnt.logmu);
}

/* The errno for a library failure. */
int mnt_hr_errno(HRESULT hr)
{
    if (hr == HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND) || hr == HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND) ||
        hr == DDP_E_NOT_FOUND || hr == DDP_E_PATH_NOT_FOUND)
        return ENOENT;
    if (hr == HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED)) return EACCES;
    if (hr == HRESULT_FROM_WIN32(ERROR_DISK_FULL) || hr == DDP_E_DISK_FULL) return ENOSPC;
    if (hr == HRESULT_FROM_WIN32(ERROR_DISK_QUOTA_EXCEEDED)) return EDQUOT;
    if (hr == HRESULT_FROM_WIN32(ERROR_WRITE_PROTECT)) return EROFS;
    if (hr == HRESULT_FROM_WIN32(ERROR_TOO_MANY_OPEN_FILES)) return EMFILE;
    if (hr == E_OUTOFMEMORY) return ENOMEM;
    if (hr == DDP_E_FILE_IN_USE) return EBUSY;
    return EIO;
}

/* ------------------------------------------------------- path resolution */

static int is_hidden(const char *path)
{
    return strncmp(path, "/.ddp", 5) == 0 && (path[5] == '\0' || path[5] == '/');
}

/* Open directory rel ("" = the root) beneath the root, following no symlink. */
static int open_dir_beneath(const char *rel)
{
    if (!*rel) return mnt.rootfd;
    if (atomic_load(&mnt.have_openat2)) {
        struct open_how how;
        memset(&how, 0, sizeof how);
        how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
        how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
        for (int tries = 0; tries < 8; tries++) {
            long fd = syscall(SYS_openat2, mnt.rootfd, rel, &how, sizeof how);
            if (fd >= 0) return (int)fd;
            if (errno == EAGAIN || errno == EINTR) continue;   /* a concurrent rename: try again */
            if (errno != ENOSYS && errno != EPERM) return -errno;
            break;
        }
        if (errno == ENOSYS || errno == EPERM) atomic_store(&mnt.have_openat2, 0);   /* EPERM: seccomp */
        else return -errno;
    }
    char buf[PATH_MAX];
    size_t n = strlen(rel);
    if (n >= sizeof buf) return -ENAMETOOLONG;
    memcpy(buf, rel, n + 1);
    int cur = mnt.rootfd;
    char *save = NULL;
    for (char *comp = strtok_r(buf, "/", &save); comp; comp = strtok_r(NULL, "/", &save)) {
        if (!strcmp(comp, "..")) {
            if (cur != mnt.rootfd) close(cur);
            return -EACCES;
        }
        int next = openat(cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int e = errno;
        if (cur != mnt.rootfd) close(cur);
        if (next < 0) return -e;
        cur = next;
    }
    return cur;
}

/* Split a FUSE path into its parent directory (opened) and last name.
 * creating: the caller makes the name (hidden names: EPERM, not ENOENT). */
int mnt_resolve(const char *path, at_path *a, int creating)
{
    a->dirfd = -1;
    a->own = 0;
    a->name = NULL;
    if (!path || path[0] != '/') return -ENOENT;
    if (is_hidden(path)) return creating ? -EPERM : -ENOENT;
    const char *slash = strrchr(path, '/');
    if (slash == path && path[1] == '\0') {
        a->dirfd = mnt.rootfd;
        a->name = ".";
        return 0;
    }
    size_t plen = (size_t)(slash - path);   /* "/a/b" -> "a" (without the leading slash) */
    char rel[PATH_MAX];
    if (plen >= sizeof rel) return -ENAMETOOLONG;
    if (plen > 0) memcpy(rel, path + 1, plen - 1);
    rel[plen > 0 ? plen - 1 : 0] = '\0';
    int fd = open_dir_beneath(rel);
    if (fd < 0) return fd;
    a->dirfd = fd;
    a->own = fd != mnt.rootfd;
    a->name = slash + 1;
    return 0;
}

void mnt_at_done(at_path *a)
{
    if (a->own && a->dirfd >= 0) close(a->dirfd);
    a->own = 0;
    a->dirfd = -1;
}

/* A path the library (or path-only syscalls) can use for a: through the
 * parent's descriptor when /proc is there, else the root's path + path. */
int mnt_lib_path(char *buf, size_t n, const at_path *a, const char *path)
{
    int w = mnt.have_proc ? snprintf(buf, n, "/proc/self/fd/%d/%s", a->dirfd, a->name)
                          : snprintf(buf, n, "%s%s", mnt.root, path);
    return w < 0 || (size_t)w >= n ? -ENAMETOOLONG : 0;
}

/* ------------------------------------------------------ init and destroy */

/* The kernel reads a FUSE mount ahead by 128 KiB, which the protocol cannot
 * raise (FUSE_INIT only lowers it): a sequential reader then waits for each
 * 1 MiB request in turn. Only the mount's backing device's sysfs knob raises
 * it (/sys/class/bdi/MAJ:MIN/read_ahead_kb, root only). Set it to half of
 * --readahead-mb: the kernel asks that far ahead, the read-ahead threads
 * decode twice as far. Run on its own thread once the mount is up (the stat
 * of the mount point is a request to this daemon). */
static void *kernel_ra_thread(void *arg)
{
    (void)arg;
    uint64_t kb = mnt.opt.readahead_bytes / 2 / 1024;
    struct stat st;
    if (kb <= KERNEL_RA_MIN_KB || !mnt.opt.mountpoint || stat(mnt.opt.mountpoint, &st) != 0) return NULL;
    char knob[128];
    snprintf(knob, sizeof knob, "/sys/class/bdi/%u:%u/read_ahead_kb", major(st.st_dev), minor(st.st_dev));
    int fd = open(knob, O_WRONLY | O_CLOEXEC);
    char val[32];
    int n = snprintf(val, sizeof val, "%llu\n", (unsigned long long)kb);
    if (fd >= 0 && write(fd, val, (size_t)n) == n) {
        atomic_store(&mnt.kernel_ra_bytes, kb * 1024);
        minfo("kernel read-ahead of %s: %llu KiB (%s)", mnt.opt.mountpoint, (unsigned long long)kb, knob);
    } else {
        minfo("kernel read-ahead of %s stays at its default (%s: %s; only root may set it, see docs/MOUNT.md)",
              mnt.opt.mountpoint, knob, strerror(errno));
    }
    if (fd >= 0) close(fd);
    return NULL;
}

static void *op_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    conn->max_read = DDPFS_MAX_READ;
    mnt.splice = (conn->capable & FUSE_CAP_SPLICE_WRITE) && mnt_pipe_fits_reply();
    if (mnt.splice) conn->want |= FUSE_CAP_SPLICE_WRITE;
    cfg->use_ino = 1;
    cfg->readdir_ino = 1;
    cfg->nullpath_ok = 1;
    cfg->hard_remove = 1;     /* no .fuse_hidden files in the volume */
    umask(0);                 /* the kernel applied the caller's umask already */
    if (!mnt.logf && !mnt.opt.foreground) {
        openlog("ddp-mount", LOG_PID, LOG_DAEMON);
        mnt.use_syslog = 1;
    }
    HRESULT hr = ddp_volume_chunkreader(mnt.v, &mnt.rd);
    if (FAILED(hr)) {
        mlog("%s: opening the chunk store: %s (0x%08X); optimized files cannot be read", mnt.root,
             ddp_error_detail(), (unsigned)hr);
        mnt.rd = NULL;
    }
    mnt_reply_start();
    unsigned threads = cc_start(mnt.rd, mnt.opt.cache_bytes, mnt.opt.workers);
    minfo("serving %s (chunk cache %llu MiB, read-ahead %llu MiB, %u read-ahead threads)", mnt.root,
          (unsigned long long)(mnt.opt.cache_bytes >> 20), (unsigned long long)(mnt.opt.readahead_bytes >> 20),
          threads);
    mnt_watch_start();
    mnt.kernel_ra_started = pthread_create(&mnt.kernel_ra, NULL, kernel_ra_thread, NULL) == 0;
    return NULL;
}

static void op_destroy(void *data)
{
    (void)data;
    mnt_watch_stop();
    if (mnt.kernel_ra_started) pthread_join(mnt.kernel_ra, NULL);
    mnt_reply_stop();
    cc_stats st;
    cc_stop(&st);
    minfo("unmounted %s: %llu chunks decoded (%llu by read-ahead, %llu by readers that waited for them), %llu cache "
          "hits, %llu failed checks, %llu served by hotspot copies; cache: %llu MiB used, %llu chunks decoded in "
          "place, %llu held outside it",
          mnt.root, (unsigned long long)st.loads, (unsigned long long)(st.loads - st.reader_loads),
          (unsigned long long)st.reader_loads, (unsigned long long)st.hits, (unsigned long long)st.failures,
          (unsigned long long)st.copies, (unsigned long long)(st.pages * 4096 >> 20), (unsigned long long)st.in_place,
          (unsigned long long)st.overflow);
    ddp_chunkreader_close(mnt.rd);
    mnt.rd = NULL;
    if (mnt.use_syslog) closelog();
}

int ddpfs_main(ddp_volume *v, const ddpfs_options *opt, int fuse_argc, char **fuse_argv)
{
    mnt.v = v;
    mnt.opt = *opt;
    if (!mnt.opt.workers) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        mnt.opt.workers = n < 2 ? 2 : n > 8 ? 8 : (unsigned)n;
    }
    mnt.root = ddp_volume_root(v);
    mnt.rootfd = open(mnt.root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (mnt.rootfd < 0) {
        fprintf(stderr, "ddp mount: %s: %s\n", mnt.root, strerror(errno));
        return 1;
    }
    mnt.is_root = geteuid() == 0;
    mnt.have_proc = access("/proc/self/fd", X_OK) == 0;
    atomic_store(&mnt.have_openat2, 1);
    pthread_mutex_init(&mnt.logmu, NULL);
    pthread_mutex_init(&mnt.szmu, NULL);
    pthread_mutex_init(&mnt.wmu, NULL);
    for (int i = 0; i < STRIPES; i++) pthread_mutex_init(&mnt.stripes[i], NULL);
    mnt.sz = ddp_xcalloc(SZ_SLOTS, sizeof *mnt.sz);
    if (opt->log_path) {
        mnt.logf = fopen(opt->log_path, "ae");
        if (!mnt.logf) {
            fprintf(stderr, "ddp mount: log file %s: %s\n", opt->log_path, strerror(errno));
            close(mnt.rootfd);
            free(mnt.sz);
            return 1;
        }
    } else if (opt->foreground) {
        mnt.logf = stderr;
    }

    struct fuse_operations ops;
    memset(&ops, 0, sizeof ops);
    mnt_tree_operations(&ops);
    ops.read_buf = mnt_read_buf;
    ops.init = op_init;
    ops.destroy = op_destroy;

    int rc = fuse_main(fuse_argc, fuse_argv, &ops, NULL);

    if (mnt.logf && mnt.logf != stderr) fclose(mnt.logf);
    mnt.logf = NULL;
    for (int i = 0; i < STRIPES; i++) pthread_mutex_destroy(&mnt.stripes[i]);
    pthread_mutex_destroy(&mnt.wmu);
    pthread_mutex_destroy(&mnt.szmu);
    pthread_mutex_destroy(&mnt.logmu);
    free(mnt.sz);
    close(mnt.rootfd);
    return rc == 0 ? 0 : 1;
}

#else
/* Built without libfuse3: cmd_mount.c says so; nothing here. */
typedef int ddp_mount_fs_not_built;
#endif /* DDP_HAVE_FUSE */
