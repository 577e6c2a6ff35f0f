/* SPDX-License-Identifier: MIT */
/*
 * stubread.c: reading through the mount (programs/mount/, mountfs.h says
 * what is where): which files are stubs, and the reads of open files.
 *
 * Stubs. A regular file of exactly 232 bytes whose MAC verifies with the
 * volume's key is a stub: getattr reports its logical size (a small cache
 * keyed by device, inode, mtime and ctime remembers each verdict, so a stub
 * is read once). A file that begins like a stub but fails authentication
 * (forged, or copied from another volume) is logged and served as the small
 * plain file it is: never as anyone's data. A file longer than a stub whose
 * first 232 bytes are a stub of this volume (bytes appended to the stub
 * outside the mount) is not opened: EIO and a log line (its bytes are not
 * its content; `ddp scrub --repair` restores it).
 *
 * Reading a stub. Open authenticates the stub, reads its stream map and
 * checks it against the stub (hash, size, whole-file hash). Reads are served
 * from the cache of decoded, verified chunks that every open file shares
 * (chunkcache.c: keyed by the chunk's SHA-256, bounded in bytes, loaded by
 * the library's reader of optimized files, lib/store/chunkread.c, with
 * every check and the hotspot-copy fallback; the log names the file and
 * both records when a copy served). A chunk that fails with no intact copy
 * fails the read with EIO and a log line naming the file, the chunk and the
 * container; never wrong bytes, never a short read. A reader that reads
 * sequentially gets read-ahead: the chunks of the next few MiB are queued
 * for the cache's read-ahead threads. A reply hands the kernel the cache's
 * own pages (vmsplice into a pipe of the thread, which libfuse splices into
 * the reply), the chunks pinned until it has left (reply_pins).
 */
#ifdef DDP_HAVE_FUSE

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base/util.h"
#include "chunkcache.h"
#include "mountfs.h"
#include "store/stub.h"
#include "volume/volume.h"

#define SEQ_SLACK ((uint64_t)2 << 20)   /* reads this close to the last one count as sequential (plus the
                                           kernel's read-ahead, whose requests run that far ahead) */

/* ------------------------------------------------------ stub verdicts */

static sz_slot *sz_slot_for(const struct stat *st)
{
    uint64_t h = (uint64_t)st->st_ino * 0x9E3779B97F4A7C15ull ^ (uint64_t)st->st_dev;
    return &mnt.sz[(h >> 20) % SZ_SLOTS];
}

static int sz_get(const struct stat *st, uint64_t *logical)
{
    int kind = 0;
    pthread_mutex_lock(&mnt.szmu);
    sz_slot *s = sz_slot_for(st);
    if (s->kind && s->dev == st->st_dev && s->ino == st->st_ino && s->mtime.tv_sec == st->st_mtim.tv_sec &&
        s->mtime.tv_nsec == st->st_mtim.tv_nsec && s->ctime.tv_sec == st->st_ctim.tv_sec &&
        s->ctime.tv_nsec == st->st_ctim.tv_nsec) {
        kind = s->kind;
        *logical = s->logical;
    }
    pthread_mutex_unlock(&mnt.szmu);
    return kind;
}

static void sz_put(const struct stat *st, int kind, uint64_t logical)
{
    pthread_mutex_lock(&mnt.szmu);
    sz_slot *s = sz_slot_for(st);
    s->dev = st->st_dev;
    s->ino = st->st_ino;
    s->mtime = st->st_mtim;
    s->ctime = st->st_ctim;
    s->logical = logical;
    s->kind = kind;
    pthread_mutex_unlock(&mnt.szmu);
}

int mnt_could_be_stub(const struct stat *st) { return S_ISREG(st->st_mode) && st->st_size == DDP_STUB_SIZE; }

int mnt_open_noatime(int dirfd, const char *name)
{
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOATIME);
    if (fd < 0 && errno == EPERM) fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    return fd;
}

/* Is the file (fd, or a's name when fd < 0) a stub of this volume? K_STUB
 * with *logical, K_PLAIN, or -errno. *st is refreshed if the name was
 * opened here and turned out to be another file. */
int mnt_classify(int fd, const at_path *a, const char *display, struct stat *st, uint64_t *logical)
{
    *logical = (uint64_t)st->st_size;
    if (!mnt_could_be_stub(st)) return K_PLAIN;
    int kind = sz_get(st, logical);
    if (kind) return kind;
    int own = fd < 0;
    if (!own && (fcntl(fd, F_GETFL) & O_ACCMODE) == O_WRONLY) {
        /* Opened for writing only: read the same inode through a new descriptor. */
        char pp[64];
        snprintf(pp, sizeof pp, "/proc/self/fd/%d", fd);
        int rfd = mnt.have_proc ? open(pp, O_RDONLY | O_CLOEXEC | O_NONBLOCK) : -1;
        if (rfd < 0) return -EIO;
        fd = rfd;
        own = 2;              /* close it, but st is already this inode's */
    }
    if (own == 1) {
        fd = mnt_open_noatime(a->dirfd, a->name);
        if (fd < 0) return -errno;
        struct stat now;
        if (fstat(fd, &now) != 0) {
            int e = errno;
            close(fd);
            return -e;
        }
        if (now.st_ino != st->st_ino || now.st_dev != st->st_dev) *st = now;
        *logical = (uint64_t)st->st_size;
        if (!mnt_could_be_stub(st)) {
            close(fd);
            return K_PLAIN;
        }
    }
    ddp_stub s;
    HRESULT hr = ddp_volume_read_stub(mnt.v, fd, display, &s);
    if (own) close(fd);
    if (hr == S_OK) {
        *logical = s.file_size;
        sz_put(st, K_STUB, s.file_size);
        return K_STUB;
    }
    if (hr == S_FALSE) {
        sz_put(st, K_PLAIN, (uint64_t)st->st_size);
        return K_PLAIN;
    }
    if (hr == DDP_E_INVALID_DATA) {
        mlog("%s: not a valid stub of this volume (%s); served as the %d-byte file it is", display,
             ddp_error_detail(), DDP_STUB_SIZE);
        sz_put(st, K_PLAIN, (uint64_t)st->st_size);
        return K_PLAIN;
    }
    mlog("%s: reading it to see whether it is a stub: %s (0x%08X)", display, ddp_error_detail(), (unsigned)hr);
    return -mnt_hr_errno(hr);
}

int mnt_refuse_appended(int fd, const at_path *a, const char *display, const struct stat *st)
{
    if (!S_ISREG(st->st_mode) || st->st_size <= DDP_STUB_SIZE) return 0;
    uint64_t logical;
    if (sz_get(st, &logical) == K_PLAIN) return 0;
    int rfd = fd;
    if ((fcntl(fd, F_GETFL) & O_ACCMODE) == O_WRONLY) {
        /* Opened for writing only: read the same inode through its name. */
        rfd = mnt_open_noatime(a->dirfd, a->name);
        struct stat now;
        if (rfd < 0) return 0;  /* cannot read it: not served either */
        if (fstat(rfd, &now) != 0 || now.st_ino != st->st_ino || now.st_dev != st->st_dev) {
            close(rfd);
            return -EIO;
        }
    }
    ddp_stub s;
    uint64_t appended = 0;
    HRESULT hr = ddp_volume_read_appended_stub(mnt.v, rfd, st, display, &s, &appended);
    if (rfd != fd) close(rfd);
    if (hr == S_OK) {
        mlog("%s: %llu bytes were appended to this stub outside the mount: not served (EIO); `ddp scrub --repair` "
             "restores its content with them", display, (unsigned long long)appended);
        return -EIO;
    }
    if (FAILED(hr)) {
        mlog("%s: reading it to see whether it is a stub: %s (0x%08X)", display, ddp_error_detail(), (unsigned)hr);
        return -mnt_hr_errno(hr);
    }
    sz_put(st, K_PLAIN, (uint64_t)st->st_size);
    return 0;
}

/* ---------------------------------------------------------- reading stubs */

handle *mnt_handle_new(int kind, int fd, int flags)
{
    handle *h = ddp_xcalloc(1, sizeof *h);
    h->kind = kind;
    h->fd = fd;
    h->flags = flags;
    pthread_mutex_init(&h->mu, NULL);
    ddp_streammap_init(&h->map);
    return h;
}

void mnt_handle_free(handle *h)
{
    if (h->fd >= 0) close(h->fd);
    ddp_streammap_free(&h->map);
    pthread_mutex_destroy(&h->mu);
    free(h->display);
    free(h);
}

/* A read handle for the stub open at fd: authenticated, its stream map read
 * and checked. A file that turns out not to be a valid stub: a plain handle. */
int mnt_handle_stub(int fd, int flags, const char *path, handle **out)
{
    ddp_stub s;
    HRESULT hr = ddp_volume_read_stub(mnt.v, fd, path, &s);
    if (hr == S_FALSE || hr == DDP_E_INVALID_DATA) {
        if (hr == DDP_E_INVALID_DATA)
            mlog("%s: not a valid stub of this volume (%s); served as the %d-byte file it is", path,
                 ddp_error_detail(), DDP_STUB_SIZE);
        *out = mnt_handle_new(H_PLAIN, fd, flags);
        return 0;
    }
    if (FAILED(hr)) {
        mlog("%s: reading the stub: %s (0x%08X)", path, ddp_error_detail(), (unsigned)hr);
        return -mnt_hr_errno(hr);
    }
    handle *h = mnt_handle_new(H_STUB, fd, flags);
    h->display = ddp_strdup(path);
    hr = mnt.rd ? ddp_chunkreader_map(mnt.rd, &s, path, &h->map)
                : ddp_fail(DDP_E_INVALID_STATE, "%s: the chunk store could not be opened", path);
    /* Its container vanished under the store (gc switched the generation
     * again after the store reloaded the catalog): once more. */
    if (hr == HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND) && mnt.rd) hr = ddp_chunkreader_map(mnt.rd, &s, path, &h->map);
    if (FAILED(hr)) {
        mlog("%s (0x%08X)", ddp_error_detail(), (unsigned)hr);
        h->fd = -1;           /* the caller closes fd */
        mnt_handle_free(h);
        return -EIO;
    }
    h->size = s.file_size;
    *out = h;
    return 0;
}

/* Queue the chunks of the next readahead_bytes for a sequential reader. */
static void stub_readahead(handle *h, uint64_t off, size_t n)
{
    if (!mnt.opt.readahead_bytes || h->map.count == 0) return;
    uint64_t end = off + n;
    pthread_mutex_lock(&h->mu);
    uint64_t slack = SEQ_SLACK + atomic_load(&mnt.kernel_ra_bytes);
    int seq = off <= h->ra_pos + slack && end + slack >= h->ra_pos;
    if (!seq) {
        h->seq = 0;
        h->ra_pos = end;
        h->ra_next = 0;
        pthread_mutex_unlock(&h->mu);
        return;
    }
    if (end > h->ra_pos) h->ra_pos = end;
    if (++h->seq < 2 || h->ra_pos >= h->size) {
        pthread_mutex_unlock(&h->mu);
        return;
    }
    uint64_t want = h->ra_pos + mnt.opt.readahead_bytes;
    uint32_t i = ddp_streammap_find(&h->map, h->ra_pos);
    if (i < h->ra_next) i = h->ra_next;
    uint32_t first = i;
    while (i < h->map.count && h->map.starts[i] < want) i++;
    h->ra_next = i;
    pthread_mutex_unlock(&h->mu);
    if (i > first) cc_prefetch(&h->map.entries[first], i - first);
}

/* Chunk i of h, pinned (cc_put it), in *out: 0, or -EIO with a log line
 * naming the file and the chunk (once for a chunk failing again and again).
 * A chunk served by its hotspot copy is logged too. */
static int stub_chunk(handle *h, uint32_t i, cc_chunk **out)
{
    const ddp_streammap_entry *e = &h->map.entries[i];
    char detail[1024];
    char *note;
    HRESULT hr = cc_get(e, out, detail, sizeof detail, &note);
    if (FAILED(hr)) {
        pthread_mutex_lock(&h->mu);
        int fresh = h->logged_chunk != i + 1;
        h->logged_chunk = i + 1;
        pthread_mutex_unlock(&h->mu);
        if (fresh)
            mlog("%s: chunk %u (file offset %llu, data container %u, record at %llu): %s (0x%08X); the read fails "
                 "with EIO",
                 h->display, i, (unsigned long long)h->map.starts[i], e->loc.container,
                 (unsigned long long)e->loc.offset, detail, (unsigned)hr);
        return -EIO;
    }
    if (note) {
        mlog("%s: chunk %u (file offset %llu, data container %u, record at %llu): %s", h->display, i,
             (unsigned long long)h->map.starts[i], e->loc.container, (unsigned long long)e->loc.offset, note);
        free(note);
    }
    return 0;
}

/* The part of chunk c (chunk i of h) under file offset at: its offset in
 * the chunk (*in) and length, at most max; 0 if the chunk does not cover at
 * (the stream map and the chunk disagree). */
static size_t stub_piece(const handle *h, uint32_t i, const cc_chunk *c, uint64_t at, size_t max, size_t *in)
{
    *in = (size_t)(at - h->map.starts[i]);
    size_t take = c->len > *in ? c->len - *in : 0;
    return take > max ? max : take;
}

/* Clamp a read of size at off to the file: the bytes to read (0 at EOF). */
static size_t stub_clamp(const handle *h, size_t size, off_t off)
{
    uint64_t o = (uint64_t)off;
    if (o >= h->size) return 0;
    return size > h->size - o ? (size_t)(h->size - o) : size;
}

/* Read [off, off + size) of stub h into buf (size already clamped). */
static int stub_read(handle *h, char *buf, size_t size, off_t off)
{
    uint64_t o = (uint64_t)off;
    uint32_t i = ddp_streammap_find(&h->map, o);
    size_t done = 0;
    while (done < size) {
        if (i >= h->map.count) {
            mlog("%s: the stream map ends before offset %llu", h->display, (unsigned long long)(o + done));
            return -EIO;
        }
        cc_chunk *c = NULL;
        int r = stub_chunk(h, i, &c);
        if (r) return r;
        size_t in, take = stub_piece(h, i, c, o + done, size - done, &in);
        if (take) cc_copy(c, in, buf + done, take);
        cc_put(c);
        if (!take) {
            mlog("%s: the stream map does not cover offset %llu", h->display, (unsigned long long)(o + done));
            return -EIO;
        }
        done += take;
        i++;
    }
    return (int)done;
}

static struct fuse_bufvec *bufvec_new(size_t n)
{
    struct fuse_bufvec *v = ddp_xcalloc(1, sizeof *v + (n ? n - 1 : 0) * sizeof(struct fuse_buf));
    v->count = n;
    return v;
}

/* A reply of size bytes read by pread-like fill into one malloc'd buffer. */
static int reply_mem(struct fuse_bufvec **bufp, size_t size, int (*fill)(handle *, char *, size_t, off_t),
                     handle *h, off_t off)
{
    char *mem = malloc(size ? size : 1);
    if (!mem) return -ENOMEM;
    int n = fill(h, mem, size, off);
    if (n < 0) {
        free(mem);
        return n;
    }
    struct fuse_bufvec *v = bufvec_new(1);
    v->buf[0].size = (size_t)n;
    v->buf[0].mem = mem;
    *bufp = v;
    return 0;
}

/* What a thread's spliced reply needs: a pipe of its own that the chunks'
 * pages are put into (vmsplice), and the chunks, pinned. libfuse moves the
 * pipe's contents into the reply after read_buf has returned, and the
 * kernel copies them from the chunks' pages then: until that, the chunks
 * must stay where they are (evicted, their memory would hold other chunks).
 * So they stay pinned until this thread's next read_buf, which comes after
 * that reply was sent, or until the thread exits (the key's destructor); at
 * most REPLY_PINS a reply. */
#define REPLY_PINS 64u
#define REPLY_IOV (DDPFS_MAX_READ / 4096u + REPLY_PINS + 1u)   /* a piece per page, one more per chunk */
/* A pipe holds a page (or part of one) per slot: a reply of DDPFS_MAX_READ
 * bytes in chunks of 32 KiB or more takes at most 216 slots; 1 MiB (256) is
 * the default most an unprivileged process may give a pipe. A reply that
 * does not fit is built in memory instead. */
#define REPLY_PIPE_BYTES (1 << 20)
typedef struct reply_pins {
    uint32_t n;
    cc_chunk *c[REPLY_PINS];
    int pipe[2];              /* {-1, -1} until first needed */
} reply_pins;
static pthread_key_t pins_key;

static void pins_release(reply_pins *p)
{
    if (!p || !p->n) return;
    cc_put_many(p->c, p->n);
    p->n = 0;
}

static void pipe_drop(reply_pins *p)
{
    if (p->pipe[0] >= 0) close(p->pipe[0]);
    if (p->pipe[1] >= 0) close(p->pipe[1]);
    p->pipe[0] = p->pipe[1] = -1;
}

static void pins_destructor(void *arg)
{
    reply_pins *p = arg;
    pins_release(p);
    pipe_drop(p);
    free(p);
}

/* Before the first read is served. */
void mnt_reply_start(void) { pthread_key_create(&pins_key, pins_destructor); }

/* The other threads that served reads are gone, their pins with them; with
 * -s this is the thread that served the reads. */
void mnt_reply_stop(void)
{
    reply_pins *mine = pthread_getspecific(pins_key);
    if (mine) pins_destructor(mine);
    pthread_setspecific(pins_key, NULL);
    pthread_key_delete(pins_key);
}

/* This thread's pins, the last reply's released. */
static reply_pins *my_pins(void)
{
    reply_pins *p = pthread_getspecific(pins_key);
    if (!p) {
        p = ddp_xcalloc(1, sizeof *p);
        p->pipe[0] = p->pipe[1] = -1;
        if (pthread_setspecific(pins_key, p) != 0) {
            free(p);
            return NULL;
        }
    }
    pins_release(p);
    return p;
}

/* This thread's pipe, empty and able to hold a whole reply; -1 if it cannot
 * be had. Whatever a failed reply left in it is thrown away with it: bytes
 * of another reply must never go out with this one. */
static int reply_pipe(reply_pins *p)
{
    if (p->pipe[0] >= 0) {
        int queued = 1;
        if (ioctl(p->pipe[0], FIONREAD, &queued) == 0 && queued == 0) return p->pipe[0];
        pipe_drop(p);
    }
    if (pipe2(p->pipe, O_CLOEXEC) != 0) {
        p->pipe[0] = p->pipe[1] = -1;
        return -1;
    }
    if (fcntl(p->pipe[0], F_SETPIPE_SZ, REPLY_PIPE_BYTES) < REPLY_PIPE_BYTES) {
        pipe_drop(p);
        return -1;
    }
    return p->pipe[0];
}

/* Put the n pieces of iov (bytes in all) into pipe end w by reference: 0,
 * or -1 when the pipe took less (it is full). */
static int vmsplice_all(int w, struct iovec *iov, unsigned n, size_t bytes)
{
    size_t put = 0;
    while (put < bytes) {
        ssize_t r = vmsplice(w, iov, n, SPLICE_F_NONBLOCK);   /* a full pipe: EAGAIN, never a wait */
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        put += (size_t)r;
        while (n && (size_t)r >= iov->iov_len) {
            r -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n && r) {
            iov->iov_base = (char *)iov->iov_base + r;
            iov->iov_len -= (size_t)r;
        }
    }
    return 0;
}

/* Read [off, off + size) of stub h for libfuse: the pieces of its chunks
 * are put into this thread's pipe by reference (vmsplice), and libfuse
 * splices the pipe into the reply: the bytes go from the cache to the
 * reader with one copy, by the kernel. The chunks stay pinned until the
 * reply is sent (reply_pins). Without splicing, or when the pipe cannot
 * take the reply, the bytes are copied into a buffer instead. */
static int stub_read_buf(handle *h, struct fuse_bufvec **bufp, size_t size, off_t off)
{
    if (off < 0) return -EINVAL;
    reply_pins *pins = my_pins();
    size = stub_clamp(h, size, off);
    if (size == 0) {
        *bufp = bufvec_new(0);
        return 0;
    }
    stub_readahead(h, (uint64_t)off, size);
    uint64_t o = (uint64_t)off;
    uint32_t first = ddp_streammap_find(&h->map, o), n = 0;
    while (first + n < h->map.count && h->map.starts[first + n] < o + size) n++;
    int rd = mnt.splice && pins && n > 0 && n <= REPLY_PINS ? reply_pipe(pins) : -1;
    if (rd < 0) return reply_mem(bufp, size, stub_read, h, off);
    struct iovec iov[REPLY_IOV];
    unsigned niov = 0;
    size_t done = 0;
    for (uint32_t k = 0; k < n && done < size; k++) {
        cc_chunk *c = NULL;
        int r = stub_chunk(h, first + k, &c);
        if (r) {
            pins_release(pins);
            return r;
        }
        pins->c[pins->n++] = c;
        size_t in, take = stub_piece(h, first + k, c, o + done, size - done, &in);
        if (take == 0) break;
        unsigned got = cc_iov(c, in, take, iov + niov, REPLY_IOV - niov);
        if (got == 0) {                 /* cannot be: REPLY_IOV counts a piece per page */
            pins_release(pins);
            return reply_mem(bufp, size, stub_read, h, off);
        }
        niov += got;
        done += take;
    }
    if (done < size) {                  /* the stream map ends before the file does, or disagrees with a chunk */
        mlog("%s: the stream map does not cover offset %llu", h->display, (unsigned long long)(o + done));
        pins_release(pins);
        return -EIO;
    }
    if (vmsplice_all(pins->pipe[1], iov, niov, done) != 0) {
        pipe_drop(pins);
        pins_release(pins);
        return reply_mem(bufp, size, stub_read, h, off);
    }
    struct fuse_bufvec *v = bufvec_new(1);
    v->buf[0].flags = FUSE_BUF_IS_FD;
    v->buf[0].fd = rd;
    v->buf[0].size = done;
    *bufp = v;
    return 0;
}

static int plain_read(handle *h, char *buf, size_t size, off_t off)
{
    if (h->wn) pthread_rwlock_rdlock(&h->wn->io);
    ssize_t n;
    do n = pread(h->fd, buf, size, off);
    while (n < 0 && errno == EINTR);
    int e = errno;
    if (h->wn) pthread_rwlock_unlock(&h->wn->io);
    return n < 0 ? -e : (int)n;
}

/* Reads are answered with file descriptors where possible, which libfuse
 * splices into the reply (FUSE_CAP_SPLICE_WRITE): a plain file's pages go
 * from its page cache to the kernel's copy for the reader without passing
 * through this process. A file open for writing is read under its handles'
 * lock (recovery may swap the descriptor), so into a buffer. */
int mnt_read_buf(const char *path, struct fuse_bufvec **bufp, size_t size, off_t off, struct fuse_file_info *fi)
{
    (void)path;
    handle *h = (handle *)(uintptr_t)fi->fh;
    if (h->kind == H_STUB) return stub_read_buf(h, bufp, size, off);
    if (h->wn || !mnt.splice) return reply_mem(bufp, size, plain_read, h, off);
    struct fuse_bufvec *v = bufvec_new(1);
    v->buf[0].size = size;
    v->buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
    v->buf[0].fd = h->fd;
    v->buf[0].pos = off;
    *bufp = v;
    return 0;
}

/* Whether a pipe of this process can hold a whole read reply: libfuse
 * splices a reply through a pipe grown to fit it and, when that fails,
 * copies it instead (for good, on that thread). Where pipes cannot grow
 * that far (fs.pipe-max-size lowered), replies are built in memory. */
int mnt_pipe_fits_reply(void)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return 0;
    int ok = fcntl(p[0], F_SETPIPE_SZ, REPLY_PIPE_BYTES) >= REPLY_PIPE_BYTES;
    close(p[0]);
    close(p[1]);
    return ok;
}

#else
/* Built without libfuse3: nothing here. */
typedef int ddp_mount_stubread_not_built;
#endif /* DDP_HAVE_FUSE */
