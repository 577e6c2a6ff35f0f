/* SPDX-License-Identifier: MIT */
/*
 * sparse.c: writes that leave holes where the data is zeros (sparse.h).
 *
 * The data is cut at DDP_SPARSE_BLOCK boundaries of the file; a piece that
 * is all zeros is skipped, also a partial one at either end of the buffer
 * (the file is fresh and no byte is written twice, so what is skipped reads
 * as zeros whoever writes the rest of its block: a restore's chunks end
 * anywhere, and a run of zero chunks must not allocate a block at each
 * chunk edge). The others are written in runs as long as possible (one
 * pwrite per run of non-zero pieces).
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/sparse.h"
#include "base/util.h"

static int all_zero(const uint8_t *p, size_t n)
{
    /* Word at a time where aligned enough; the compiler vectorizes this. */
    uint64_t acc = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        acc |= w;
        if (acc) return 0;
    }
    for (; i < n; i++) acc |= p[i];
    return acc == 0;
}

HRESULT ddp_pwrite_sparse(int fd, const void *vbuf, size_t n, uint64_t off, const char *what)
{
    const uint8_t *buf = vbuf;
    size_t pos = 0;     /* next byte of buf to look at */
    size_t run = 0;     /* start of the pending run of bytes to write */
    while (pos < n) {
        uint64_t abs = off + pos;
        size_t to_edge = DDP_SPARSE_BLOCK - (size_t)(abs % DDP_SPARSE_BLOCK);
        size_t piece = n - pos < to_edge ? n - pos : to_edge;
        if (all_zero(buf + pos, piece)) {
            if (pos > run) {
                HRESULT hr = ddp_pwrite_all(fd, buf + run, pos - run, off + run, what);
                if (FAILED(hr)) return hr;
            }
            run = pos + piece;
        }
        pos += piece;
    }
    if (n > run) return ddp_pwrite_all(fd, buf + run, n - run, off + run, what);
    return S_OK;
}

HRESULT ddp_sparse_finish(int fd, uint64_t size, const char *what)
{
    struct stat st;
    if (fstat(fd, &st) != 0) return ddp_fail_errno(errno, "examining %s", what);
    if ((uint64_t)st.st_size < size && ftruncate(fd, (off_t)size) != 0)
        return ddp_fail_errno(errno, "setting the size of %s", what);
    return S_OK;
}
