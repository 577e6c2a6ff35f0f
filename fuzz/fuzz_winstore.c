/* SPDX-License-Identifier: MIT */
/*
 * fuzz_winstore.c: libFuzzer target for the Windows chunk-store reader
 * (lib/windows/winstore.c) as a whole: a reparse point and the containers
 * it reads, all from the input, served by an in-memory ddp_win_io.
 *
 * Input: u8 mode, u16 reparse length, the reparse buffer, then files
 * { u8 name length, name, u32 length, bytes } whose names are taken
 * relative to the store directory ("Stream/00010000.00000001.ccc").
 * Mode bit 0: offer a list function (else the probe runs); bit 1: fix the
 * reparse CRC-32. Checked: open and pread answer S_OK, DDP_E_FILE_CORRUPT,
 * DDP_E_PATH_NOT_FOUND or DDP_E_INVALID_DATA with a detail; a read never
 * returns more than asked or past the size.
 */
#include "fuzz_common.h"
#include "windows/crc.h"
#include "windows/reparse.h"
#include "windows/winstore.h"

#define MAXF 16

typedef struct fz_fs {
    char *path[MAXF];
    const uint8_t *data[MAXF];
    size_t len[MAXF];
    int n;
} fz_fs;

static HRESULT fread_cb(void *ctx, const char *path, uint64_t off, void *buf, size_t n, size_t *got)
{
    fz_fs *f = ctx;
    *got = 0;
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->path[i], path)) {
            if (off >= f->len[i]) return S_OK;
            size_t k = f->len[i] - (size_t)off < n ? f->len[i] - (size_t)off : n;
            memcpy(buf, f->data[i] + off, k);
            *got = k;
            return S_OK;
        }
    return HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND);
}

static HRESULT flist_cb(void *ctx, const char *dir, ddp_win_list_fn fn, void *cbctx)
{
    fz_fs *f = ctx;
    size_t k = strlen(dir);
    for (int i = 0; i < f->n; i++)
        if (!strncmp(f->path[i], dir, k) && f->path[i][k] == '/') {
            HRESULT hr = fn(cbctx, f->path[i] + k + 1);
            if (FAILED(hr)) return hr;
        }
    return S_OK;
}

static int ok_code(HRESULT hr)
{
    return hr == S_OK || hr == DDP_E_FILE_CORRUPT || hr == DDP_E_PATH_NOT_FOUND || hr == DDP_E_INVALID_DATA;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = { data, size };
    uint8_t mode = fz_u8(&in);
    size_t rl = fz_u16(&in), got;
    const uint8_t *r = fz_take(&in, rl, &got);
    uint8_t *rb = fz_dup(r, got);
    if ((mode & 2) && got >= 16) ddp_put_le32(rb + got - 4, ddp_win_crc32(rb + 8, got - 12));
    ddp_win_reparse rp;
    if (FAILED(ddp_win_reparse_parse(rb, got, &rp))) {
        free(rb);
        return 0;
    }
    char dir[DDP_WIN_STORE_DIR_MAX];
    ddp_win_store_dir(rp.store_guid, dir);
    fz_fs fs = { .n = 0 };
    while (in.n > 0 && fs.n < MAXF) {
        size_t nl = fz_u8(&in), k;
        const uint8_t *name = fz_take(&in, nl, &k);
        char nm[256];
        memcpy(nm, name, k);
        nm[k] = 0;
        size_t len = fz_u32(&in);
        fs.data[fs.n] = fz_take(&in, len, &fs.len[fs.n]);
        fs.path[fs.n] = ddp_xasprintf("%s/%s", dir, nm);
        fs.n++;
    }
    ddp_win_io io = { fread_cb, (mode & 1) ? flist_cb : NULL, &fs };
    ddp_winfile *f = NULL;
    ddp_clear_error();
    HRESULT hr = ddp_winfile_open(&io, NULL, &rp, &f);
    FZ_CHECK(ok_code(hr));
    FZ_CHECK_DETAIL(hr);
    if (SUCCEEDED(hr)) {
        uint64_t size_f = ddp_winfile_size(f);
        uint8_t *buf = malloc(1 << 18);
        if (!buf) abort();
        for (uint64_t off = 0; off < size_f && off < (1u << 22);) {
            size_t n = 0;
            hr = ddp_winfile_pread(f, buf, 1 << 18, off, &n);
            FZ_CHECK(ok_code(hr));
            FZ_CHECK_DETAIL(hr);
            if (FAILED(hr)) break;
            FZ_CHECK(n > 0 && n <= (1u << 18) && off + n <= size_f);
            off += n;
        }
        free(buf);
        ddp_winfile_close(f);
    }
    for (int i = 0; i < fs.n; i++) free(fs.path[i]);
    free(rb);
    return 0;
}
