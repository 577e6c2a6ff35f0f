/* SPDX-License-Identifier: MIT */
/*
 * test_restoretarget.c: the pieces a restore writes its target with:
 * ddp_mkdirs_beneath and ddp_rename_noreplace (lib/base/safepath.c, added
 * for restore) and the sparse writer (lib/base/sparse.c). A link or ".." on
 * the way creates nothing past it; an existing name is never replaced; all-
 * zero aligned blocks are left as holes and the bytes read back the same.
 */
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

#include "base/safepath.h"
#include "base/sparse.h"
#include "base/util.h"
#include "testutil.h"

static int setup(void **state)
{
    tu_tree *f = tu_tree_new();
    tu_tree_put(f, "root/have/x", "x");
    tu_tree_put(f, "outside/keep", "keep");
    tu_tree_link_out(f, "root/out");
    *state = f;
    return 0;
}

static void test_mkdirs(void **state)
{
    tu_tree *f = *state;
    int created = 0;
    int fd = ddp_mkdirs_beneath(f->rootfd, "have/new/deeper", 0755, &created);
    assert_true(fd >= 0);
    assert_int_equal(created, 2);
    close(fd);
    assert_true(tu_tree_exists(f, "root/have/new/deeper"));
    fd = ddp_mkdirs_beneath(f->rootfd, "have/new/deeper", 0755, &created); /* there: one lookup */
    assert_true(fd >= 0);
    assert_int_equal(created, 2);
    close(fd);
    fd = ddp_mkdirs_beneath(f->rootfd, "", 0755, NULL); /* the root itself */
    assert_true(fd >= 0);
    close(fd);
}

static void test_mkdirs_refused(void **state)
{
    tu_tree *f = *state;
    /* through a link: nothing is made on the far side */
    errno = 0;
    assert_int_equal(ddp_mkdirs_beneath(f->rootfd, "out/made", 0755, NULL), -1);
    assert_true(errno == ELOOP || errno == EXDEV || errno == ENOTDIR);
    assert_false(tu_tree_exists(f, "outside/made"));
    assert_int_equal(ddp_mkdirs_beneath(f->rootfd, "new/../../outside/made", 0755, NULL), -1);
    assert_false(tu_tree_exists(f, "outside/made"));
    assert_int_equal(ddp_mkdirs_beneath(f->rootfd, "/abs", 0755, NULL), -1);
    /* a file in the way */
    errno = 0;
    assert_int_equal(ddp_mkdirs_beneath(f->rootfd, "have/x/sub", 0755, NULL), -1);
    assert_int_equal(errno, ENOTDIR);
}

static void test_rename_noreplace(void **state)
{
    tu_tree *f = *state;
    char *p = tu_tree_path(f, "root/a");
    tu_write_file(p, "a", 1);
    free(p);
    p = tu_tree_path(f, "root/b");
    tu_write_file(p, "b", 1);
    free(p);
    errno = 0;
    assert_int_equal(ddp_rename_noreplace(f->rootfd, "a", f->rootfd, "b"), -1);
    assert_int_equal(errno, EEXIST);
    /* the link is a name that exists: not replaced, not followed */
    assert_int_equal(ddp_rename_noreplace(f->rootfd, "a", f->rootfd, "out"), -1);
    assert_int_equal(errno, EEXIST);
    assert_int_equal(ddp_rename_noreplace(f->rootfd, "a", f->rootfd, "c"), 0);
    assert_false(tu_tree_exists(f, "root/a"));
    size_t n;
    p = tu_tree_path(f, "root/c");
    uint8_t *d = tu_read_file(p, &n);
    free(p);
    assert_int_equal(n, 1);
    assert_int_equal(d[0], 'a');
    free(d);
}

static void test_sparse(void **state)
{
    tu_tree *f = *state;
    int fd = openat(f->rootfd, "sparse", O_RDWR | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    /* 1 MiB of zeros with data in two places, written in odd-sized pieces
     * that straddle block edges */
    size_t size = (size_t)1 << 20;
    uint8_t *want = calloc(1, size);
    memset(want + 5000, 0xAB, 300);
    memset(want + size - 10, 0xCD, 10);
    for (size_t off = 0; off < size;) {
        size_t len = 7777;
        if (len > size - off) len = size - off;
        assert_int_equal(ddp_pwrite_sparse(fd, want + off, len, off, "sparse"), S_OK);
        off += len;
    }
    assert_int_equal(ddp_sparse_finish(fd, size, "sparse"), S_OK);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal((size_t)st.st_size, size);
    /* far less than the whole file is allocated (file systems allocate in
     * blocks of up to 64 KiB around the data) */
    assert_true((uint64_t)st.st_blocks * 512 <= 256 * 1024);
    uint8_t *got = malloc(size);
    assert_int_equal(ddp_pread_exact(fd, got, size, 0, "sparse"), S_OK);
    assert_memory_equal(got, want, size);
    /* a trailing hole never written: ddp_sparse_finish gives the size */
    int fd2 = openat(f->rootfd, "tail", O_RDWR | O_CREAT | O_EXCL, 0600);
    assert_true(fd2 >= 0);
    memset(want, 0, size);
    assert_int_equal(ddp_pwrite_sparse(fd2, want, size, 0, "tail"), S_OK);
    assert_int_equal(fstat(fd2, &st), 0);
    assert_int_equal(st.st_size, 0);
    assert_int_equal(ddp_sparse_finish(fd2, size, "tail"), S_OK);
    assert_int_equal(fstat(fd2, &st), 0);
    assert_int_equal((size_t)st.st_size, size);
    close(fd2);
    close(fd);
    free(got);
    free(want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_mkdirs, setup, tu_tree_teardown),
        cmocka_unit_test_setup_teardown(test_mkdirs_refused, setup, tu_tree_teardown),
        cmocka_unit_test_setup_teardown(test_rename_noreplace, setup, tu_tree_teardown),
        cmocka_unit_test_setup_teardown(test_sparse, setup, tu_tree_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
