/* SPDX-License-Identifier: MIT */
/*
 * test_safepath.c: the one way to reach a path beneath a held directory
 * (lib/base/safepath.c): symbolic links anywhere on the way, "..", absolute
 * paths and FIFOs are refused, a file replaced after its check is caught,
 * and both the openat2 path and the component walk behave the same.
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
#include "base/util.h"
#include "testutil.h"

static int setup(void **state)
{
    tu_tree *f = tu_tree_new();
    tu_tree_put(f, "root/a/b/file", "inside");
    tu_tree_put(f, "outside/secret", "secret");
    tu_tree_link_out(f, "root/a/link-out");
    char *p = tu_tree_path(f, "root/a/filelink");
    assert_int_equal(symlink("b/file", p), 0);
    free(p);
    p = tu_tree_path(f, "root/a/fifo");
    assert_int_equal(mkfifo(p, 0600), 0);
    free(p);
    *state = f;
    return 0;
}

static void test_inside_ok(void **state)
{
    tu_tree *f = *state;
    int fd = ddp_openat_beneath(f->rootfd, "a/b/file", O_RDONLY, 0);
    assert_true(fd >= 0);
    char buf[8] = { 0 };
    assert_int_equal(read(fd, buf, sizeof buf), 6);
    assert_string_equal(buf, "inside");
    close(fd);
}

typedef int (*open_fn)(int, const char *, int, mode_t);

static void escapes_refused(tu_tree *f, open_fn fn)
{
    const char *bad[] = { "a/link-out/secret", "a/filelink", "../outside/secret", "a/../../outside/secret",
                          "/etc/passwd", "" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        errno = 0;
        int fd = fn(f->rootfd, bad[i], O_RDONLY, 0);
        if (fd >= 0) fail_msg("'%s' was opened", bad[i]);
        assert_true(errno == ELOOP || errno == EXDEV || errno == ENOTDIR);
    }
    int fd = fn(f->rootfd, "a/b/file", O_RDONLY, 0);
    assert_true(fd >= 0);
    close(fd);
}

static void test_escapes_refused(void **state) { escapes_refused(*state, ddp_openat_beneath); }
static void test_escapes_refused_walk(void **state) { escapes_refused(*state, ddp_openat_walk); }

static void test_parent(void **state)
{
    tu_tree *f = *state;
    int dfd;
    const char *base;
    assert_int_equal(ddp_open_parent_beneath(f->rootfd, "a/b/file", &dfd, &base), S_OK);
    assert_string_equal(base, "file");
    struct stat st;
    assert_int_equal(fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW), 0);
    assert_true(S_ISREG(st.st_mode));
    close(dfd);
    assert_int_equal(ddp_open_parent_beneath(f->rootfd, "a/link-out/secret", &dfd, &base),
                     HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED));
    assert_int_equal(dfd, -1);
    assert_int_equal(ddp_open_parent_beneath(f->rootfd, "a/..", &dfd, &base), E_INVALIDARG);
    assert_int_equal(ddp_open_parent_beneath(f->rootfd, "top", &dfd, &base), S_OK);
    assert_string_equal(base, "top");
    close(dfd);
}

static void test_regular_only(void **state)
{
    tu_tree *f = *state;
    int fd;
    struct stat st;
    /* A FIFO with no writer: must come back at once, refused. */
    assert_int_equal(ddp_open_regular_at(f->rootfd, "a/fifo", O_RDONLY, NULL, &fd, &st),
                     HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED));
    assert_int_equal(fd, -1);
    assert_int_equal(ddp_open_regular_at(f->rootfd, "a", O_RDONLY, NULL, &fd, &st),
                     HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED));
    assert_int_equal(ddp_open_regular_at(f->rootfd, "a/filelink", O_RDONLY, NULL, &fd, &st),
                     HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED));
    assert_int_equal(ddp_open_regular_at(f->rootfd, "a/b/file", O_RDONLY, NULL, &fd, &st), S_OK);
    assert_true(S_ISREG(st.st_mode));
    /* O_NONBLOCK is cleared again. */
    assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
    close(fd);
}

static void test_replaced_caught(void **state)
{
    tu_tree *f = *state;
    int fd;
    struct stat checked, st;
    assert_int_equal(ddp_open_regular_at(f->rootfd, "a/b/file", O_RDONLY, NULL, &fd, &checked), S_OK);
    close(fd);
    /* The file is swapped for another one between the check and the open. */
    char *p = tu_tree_path(f, "root/a/b/file");
    char *q = tu_tree_path(f, "root/a/b/other");
    tu_write_file(q, "other", 5);
    assert_int_equal(rename(q, p), 0);
    assert_int_equal(ddp_open_regular_at(f->rootfd, "a/b/file", O_RDONLY, &checked, &fd, &st),
                     HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED));
    assert_int_equal(fd, -1);
    assert_non_null(strstr(ddp_error_detail(), "replaced"));
    free(p);
    free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_inside_ok, setup, tu_tree_teardown),
        cmocka_unit_test_setup_teardown(test_escapes_refused, setup, tu_tree_teardown),
        cmocka_unit_test_setup_teardown(test_escapes_refused_walk, setup, tu_tree_teardown),
        cmocka_unit_test_setup_teardown(test_parent, setup, tu_tree_teardown),
        cmocka_unit_test_setup_teardown(test_regular_only, setup, tu_tree_teardown),
        cmocka_unit_test_setup_teardown(test_replaced_caught, setup, tu_tree_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
