/* SPDX-License-Identifier: MIT */
/*
 * cmd_ls.c: `ddp ls [-l] [--json] PATH...`: what each file holds and what it
 * takes, without the mount (an optimized file's own size is its stub's 232
 * bytes): its logical size (what it reads as), its size on disk (allocated
 * blocks, as du counts them) and whether it is optimized, like Explorer's
 * Size / Size on disk. A directory lists its entries (not .ddp); a file
 * outside any volume is listed as itself.
 */
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"

typedef struct ls_ctx {
    int longform, json;
    ddp_volume *v;     /* the volume of the last file, kept for the next one */
    size_t rootlen;
    int rc;
} ls_ctx;

/* The logical size of an optimized file at path, or of any file: S_OK and
 * *optimized set; an error when path is a stub whose volume cannot be read. */
static HRESULT logical_size(ls_ctx *c, const char *path, const struct stat *st, uint64_t *size, int *optimized)
{
    *size = (uint64_t)st->st_size;
    *optimized = 0;
    if (!S_ISREG(st->st_mode) || st->st_size != 232) return S_OK; /* only a 232-byte file can be a stub */
    char *abs = realpath(path, NULL);
    if (!abs) return ddp_hresult_from_errno(errno);
    if (c->v && !(strncmp(abs, ddp_volume_root(c->v), c->rootlen) == 0 && abs[c->rootlen] == '/')) {
        ddp_volume_close(c->v);
        c->v = NULL;
    }
    HRESULT hr = S_OK;
    if (!c->v) {
        hr = ddp_volume_open_containing(abs, DDP_OPEN_READ, &c->v);
        if (hr == DDP_E_VOLUME_DEDUP_DISABLED) hr = S_OK; /* not in a volume: a plain file */
        if (c->v) c->rootlen = strlen(ddp_volume_root(c->v));
    }
    if (SUCCEEDED(hr) && c->v) {
        ddp_file *f = NULL;
        hr = ddp_file_open(c->v, abs, &f);
        if (SUCCEEDED(hr)) {
            *size = ddp_file_size(f);
            *optimized = ddp_file_is_optimized(f);
        }
        ddp_file_close(f);
    }
    free(abs);
    return hr;
}

static void show(ls_ctx *c, const char *path, const char *name)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        cli_error_errno(errno, "ls %s", path);
        c->rc = DDP_EXIT_FAIL;
        return;
    }
    uint64_t size = 0;
    int opt = 0;
    HRESULT hr = logical_size(c, path, &st, &size, &opt);
    if (FAILED(hr)) {
        cli_error(hr, "ls %s", path);
        c->rc = DDP_EXIT_FAIL;
        return;
    }
    uint64_t disk = (uint64_t)st.st_blocks * 512;
    if (c->json) {
        printf("{\"path\":");
        cli_json_str(path);
        printf(",\"type\":\"%s\",\"size\":%llu,\"size_on_disk\":%llu,\"optimized\":%s}\n",
               S_ISREG(st.st_mode) ? "file" : S_ISDIR(st.st_mode) ? "directory" : S_ISLNK(st.st_mode) ? "symlink" : "other",
               (unsigned long long)size, (unsigned long long)disk, opt ? "true" : "false");
        return;
    }
    if (c->longform) {
        char mode[11] = "?---------";
        mode[0] = S_ISDIR(st.st_mode) ? 'd' : S_ISLNK(st.st_mode) ? 'l' : S_ISREG(st.st_mode) ? '-' : '?';
        static const char rwx[] = "rwxrwxrwx";
        for (int i = 0; i < 9; i++)
            if (st.st_mode & (0400u >> i)) mode[1 + i] = rwx[i];
        struct passwd *pw = getpwuid(st.st_uid);
        char owner[32], group[32], when[32];
        if (pw) snprintf(owner, sizeof owner, "%s", pw->pw_name);
        else snprintf(owner, sizeof owner, "%u", (unsigned)st.st_uid);
        struct group *gr = getgrgid(st.st_gid);
        if (gr) snprintf(group, sizeof group, "%s", gr->gr_name);
        else snprintf(group, sizeof group, "%u", (unsigned)st.st_gid);
        struct tm tm;
        localtime_r(&st.st_mtime, &tm);
        strftime(when, sizeof when, "%Y-%m-%d %H:%M", &tm);
        printf("%s %-8s %-8s %14llu %14llu %-9s %s %s\n", mode, owner, group, (unsigned long long)size,
               (unsigned long long)disk, opt ? "optimized" : "-", when, name);
    } else {
        char a[32], b[32];
        printf("%12s %12s  %-9s  %s\n", cli_human_bytes(size, a), cli_human_bytes(disk, b), opt ? "optimized" : "-",
               name);
    }
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void list_dir(ls_ctx *c, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        cli_error_errno(errno, "ls %s", dir);
        c->rc = DDP_EXIT_FAIL;
        return;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") || !strcmp(de->d_name, ".ddp")) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **grown = realloc(names, cap * sizeof *names);
            if (!grown) break;
            names = grown;
        }
        names[n++] = strdup(de->d_name);
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, by_name);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(dir) + strlen(names[i]) + 2;
        char *p = malloc(len);
        snprintf(p, len, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", names[i]);
        show(c, p, c->json ? p : names[i]);
        free(p);
        free(names[i]);
    }
    free(names);
}

int cmd_ls(int argc, char **argv)
{
    ls_ctx c;
    memset(&c, 0, sizeof c);
    int npaths = 0, dashdash = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!dashdash && !strcmp(a, "--")) dashdash = i;
        else if (!dashdash && !strcmp(a, "-l")) c.longform = 1;
        else if (!dashdash && !strcmp(a, "--json")) c.json = 1;
        else if (!dashdash && cli_is_option(a)) return cli_usage_error("ls", "unknown option %s", a);
        else npaths++;
    }
    if (!npaths) return cli_usage_error("ls", "missing PATH");
    if (!c.json) {
        if (c.longform)
            printf("%-10s %-8s %-8s %14s %14s %-9s %-16s %s\n", "MODE", "OWNER", "GROUP", "SIZE", "ON DISK",
                   "OPTIMIZED", "MODIFIED", "NAME");
        else
            printf("%12s %12s  %-9s  %s\n", "SIZE", "ON DISK", "OPTIMIZED", "NAME");
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i == dashdash || (!dashdash && cli_is_option(a))) continue;
        struct stat st;
        if (stat(a, &st) == 0 && S_ISDIR(st.st_mode)) {
            if (npaths > 1 && !c.json) printf("%s:\n", a);
            list_dir(&c, a);
        } else {
            show(&c, a, a);
        }
    }
    ddp_volume_close(c.v);
    return c.rc;
}
