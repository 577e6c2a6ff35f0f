/* SPDX-License-Identifier: MIT */
/*
 * cmd_mount.c: `ddp mount VOLUME MOUNTPOINT [-o OPTIONS] [-f]` and
 * `ddp umount MOUNTPOINT`.
 *
 * mount checks that VOLUME is a ddp volume (a clear error with the HRESULT
 * if not) and that MOUNTPOINT is a directory outside it, then hands the
 * volume to the FUSE file system in mount/ (fusefs.h) with libfuse's options:
 * default_permissions always (permission checks are the kernel's, from the
 * files' own owners and modes), fsname=ddp:VOLUME and subtype=ddp (so the
 * mount shows as fuse.ddp), and whatever -o adds (ro, allow_other, ...).
 * Without -f it runs in the background once mounted and logs to syslog (or
 * to --log FILE); with -f it stays in the foreground and logs to stderr.
 * umount runs `fusermount3 -u` (plain umount(8) where fusermount3 is absent)
 * on a mount point that /proc/self/mounts shows as a ddp mount.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#ifdef DDP_HAVE_FUSE
#include "mount/fusefs.h"
#include "mount/winfs.h"
#endif

static char *mount_type(const char *mp);

#ifdef DDP_HAVE_FUSE
/* Append s to the option string, escaping ',' and '\' for libfuse's parser. */
static void opt_append_escaped(char *dst, size_t cap, const char *s)
{
    size_t n = strlen(dst);
    for (; *s && n + 2 < cap; s++) {
        if (*s == ',' || *s == '\\') dst[n++] = '\\';
        dst[n++] = *s;
    }
    dst[n] = '\0';
}

/* The option string of a mount (at least OPTS_CAP bytes): base,
 * fsname's volume path escaped, then the user's options (useropts, under
 * 2048 bytes). */
#define OPTS_CAP (PATH_MAX * 2 + 2200)
static void mount_opts(char *opts, const char *base, const char *root, const char *useropts)
{
    snprintf(opts, OPTS_CAP, "%s", base);
    opt_append_escaped(opts, OPTS_CAP, root);
    if (useropts[0]) {
        strcat(opts, ",");
        strcat(opts, useropts);
    }
}

/* libfuse's argv (8 slots) for mounting at mabs with options opts. */
static int mount_argv(char *fargv[8], char *mabs, char *opts, int fg, int debug, int single)
{
    int fargc = 0;
    fargv[fargc++] = (char *)"ddp-mount";
    fargv[fargc++] = mabs;
    fargv[fargc++] = (char *)"-o";
    fargv[fargc++] = opts;
    if (fg) fargv[fargc++] = (char *)"-f";
    if (debug) fargv[fargc++] = (char *)"-d";
    if (single) fargv[fargc++] = (char *)"-s";
    fargv[fargc] = NULL;
    return fargc;
}

static int parse_mib(const char *cmd, const char *opt, const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || end == s || v > (1ull << 20)) {
        cli_usage_error(cmd, "%s wants a number of MiB, not '%s'", opt, s);
        return -1;
    }
    *out = (uint64_t)v << 20;
    return 0;
}
#endif

#ifdef DDP_HAVE_FUSE
/* A Windows Server dedup volume: the read-only view of mount/winfs.c. */
static int mount_windows(const char *vol, const char *mnt, const char *useropts, int fg, int debug, int single)
{
    char *root = realpath(vol, NULL), *mabs = realpath(mnt, NULL);
    struct stat st;
    if (!root || !mabs || stat(mabs, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "ddp mount: %s: not a directory (0x%08X)\n", root ? mnt : vol,
                (unsigned)HRESULT_FROM_WIN32(ERROR_DIRECTORY));
        free(root);
        free(mabs);
        return DDP_EXIT_FAIL;
    }
    char opts[OPTS_CAP];
    mount_opts(opts, "ro,default_permissions,max_idle_threads=16,subtype=ddp-windows,fsname=ddpwin:", root, useropts);
    char *fargv[8];
    int fargc = mount_argv(fargv, mabs, opts, fg, debug, single);
    int rc = winfs_main(root, fargc, fargv);
    free(root);
    free(mabs);
    return rc ? DDP_EXIT_FAIL : 0;
}
#endif

int cmd_mount(int argc, char **argv)
{
#ifndef DDP_HAVE_FUSE
    (void)argc;
    (void)argv;
    fprintf(stderr, "ddp mount: this ddp was built without FUSE support (libfuse3 was not found when it was "
                    "built); install libfuse3-dev and fuse3 (Debian) and build again\n");
    return DDP_EXIT_FAIL;
#else
    const char *vol = NULL, *mnt = NULL;
    char useropts[2048] = "";
    int foreground = 0, debug = 0, single = 0;
    ddpfs_options o = { NULL, 0, (uint64_t)256 << 20, (uint64_t)8 << 20, NULL, 0 };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: ddp mount VOLUME MOUNTPOINT [-o OPTIONS] [-f] [-d] [-s] [--log FILE]\n"
                   "                 [--cache-mb N] [--readahead-mb N] [--threads N]\n"
                   "  -o OPTIONS        FUSE mount options: ro, allow_other, ... (default_permissions is always on)\n"
                   "  -f                stay in the foreground (log to stderr)\n"
                   "  -d                debug: -f plus libfuse's trace of every request\n"
                   "  -s                one thread\n"
                   "  --log FILE        append the log to FILE (default: stderr with -f, else syslog)\n"
                   "  --cache-mb N      cache of decompressed chunks, shared by every open file (default 256)\n"
                   "  --readahead-mb N  how far ahead of a sequential reader chunks are decoded (default 8; 0: off);\n"
                   "                    the kernel reads ahead half of that (as root; see docs/MOUNT.md)\n"
                   "  --threads N       read-ahead threads (default: one per core, 2..8)\n"
                   "Unmount with `ddp umount MOUNTPOINT` or `fusermount3 -u MOUNTPOINT`. See docs/MOUNT.md.\n");
            return 0;
        } else if (!strcmp(a, "-o") || !strncmp(a, "-o", 2)) {
            const char *val = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);
            if (!val) return cli_usage_error("mount", "-o needs a list of options");
            if (strlen(useropts) + strlen(val) + 2 >= sizeof useropts)
                return cli_usage_error("mount", "too many -o options");
            if (useropts[0]) strcat(useropts, ",");
            strcat(useropts, val);
        } else if (!strcmp(a, "-f")) {
            foreground = 1;
        } else if (!strcmp(a, "-d")) {
            debug = foreground = 1;
        } else if (!strcmp(a, "-s")) {
            single = 1;
        } else if (!strcmp(a, "--log") && i + 1 < argc) {
            o.log_path = argv[++i];
        } else if (!strcmp(a, "--cache-mb") && i + 1 < argc) {
            if (parse_mib("mount", a, argv[++i], &o.cache_bytes)) return DDP_EXIT_USAGE;
        } else if (!strcmp(a, "--readahead-mb") && i + 1 < argc) {
            if (parse_mib("mount", a, argv[++i], &o.readahead_bytes)) return DDP_EXIT_USAGE;
        } else if (!strcmp(a, "--threads") && i + 1 < argc) {
            char *end;
            unsigned long t = strtoul(argv[++i], &end, 10);
            if (*end || t > 64) return cli_usage_error("mount", "--threads wants a number from 0 to 64");
            o.workers = (unsigned)t;
        } else if (a[0] == '-' && a[1]) {
            return cli_usage_error("mount", "unknown option %s", a);
        } else if (!vol) {
            vol = a;
        } else if (!mnt) {
            mnt = a;
        } else {
            return cli_usage_error("mount", "one VOLUME and one MOUNTPOINT");
        }
    }
    if (!vol || !mnt) return cli_usage_error("mount", "missing %s", vol ? "MOUNTPOINT" : "VOLUME");
    if (o.cache_bytes < ((uint64_t)4 << 20)) o.cache_bytes = (uint64_t)4 << 20;
    o.foreground = foreground;
    if (win_is_volume_only(vol)) return mount_windows(vol, mnt, useropts, foreground, debug, single);

    ddp_volume *v = NULL;
    HRESULT hr = ddp_volume_open(vol, DDP_OPEN_READ, &v);
    if (FAILED(hr)) {
        cli_error(hr, "mount %s", vol);
        return DDP_EXIT_FAIL;
    }
    const char *root = ddp_volume_root(v);
    struct stat st;
    char *mabs = realpath(mnt, NULL);
    if (!mabs || stat(mabs, &st) != 0 || !S_ISDIR(st.st_mode)) {
        if (mabs) fprintf(stderr, "ddp mount: mount point %s: not a directory (0x%08X)\n", mnt,
                          (unsigned)HRESULT_FROM_WIN32(ERROR_DIRECTORY));
        else cli_error_errno(errno, "mount: mount point %s", mnt);
        free(mabs);
        ddp_volume_close(v);
        return DDP_EXIT_FAIL;
    }
    size_t rl = strlen(root);
    if (!strncmp(mabs, root, rl) && (mabs[rl] == '\0' || mabs[rl] == '/' || rl == 1)) {
        fprintf(stderr, "ddp mount: mount point %s is %s %s; mount it somewhere outside the volume (0x%08X)\n", mabs,
                mabs[rl] == '\0' ? "the volume" : "inside the volume", root, (unsigned)E_INVALIDARG);
        free(mabs);
        ddp_volume_close(v);
        return DDP_EXIT_FAIL;
    }

    /* A second mount on a mount point would hide the first: refuse. */
    char *type = mount_type(mabs);
    if (type && *type) {
        fprintf(stderr, "ddp mount: %s is already mounted (%s); unmount it first ('ddp umount %s') (0x%08X)\n",
                mabs, type, mabs, (unsigned)HRESULT_FROM_WIN32(ERROR_ALREADY_EXISTS));
        free(type);
        free(mabs);
        ddp_volume_close(v);
        return DDP_EXIT_FAIL;
    }
    free(type);

    /* max_idle_threads: libfuse 3.14 complains when it is left unset. */
    char base[128];
    snprintf(base, sizeof base, "default_permissions,max_idle_threads=16,max_read=%u,subtype=ddp,fsname=ddp:",
             DDPFS_MAX_READ);
    char opts[OPTS_CAP];
    mount_opts(opts, base, root, useropts);
    char *fargv[8];
    int fargc = mount_argv(fargv, mabs, opts, foreground, debug, single);

    o.mountpoint = mabs;
    int rc = ddpfs_main(v, &o, fargc, fargv);
    ddp_volume_close(v);
    free(mabs);
    return rc ? DDP_EXIT_FAIL : 0;
#endif
}

/* The file system type /proc/self/mounts gives for mount point mp, or "" if
 * it is not a mount point; NULL if the table cannot be read. */
static char *mount_type(const char *mp)
{
    FILE *f = fopen("/proc/self/mounts", "re");
    if (!f) return NULL;
    char line[8192], *found = strdup("");
    while (fgets(line, sizeof line, f)) {
        char dev[4096], dir[4096], type[256];
        if (sscanf(line, "%4095s %4095s %255s", dev, dir, type) != 3) continue;
        /* Unescape \040 and friends (octal) in the mount point. */
        char un[4096];
        size_t k = 0;
        for (const char *p = dir; *p && k + 1 < sizeof un; p++) {
            if (p[0] == '\\' && p[1] >= '0' && p[1] <= '7' && p[2] >= '0' && p[2] <= '7' && p[3] >= '0' && p[3] <= '7') {
                un[k++] = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
                p += 3;
            } else {
                un[k++] = *p;
            }
        }
        un[k] = '\0';
        if (!strcmp(un, mp)) {   /* the last one listed is the one on top */
            free(found);
            found = strdup(type);
        }
    }
    fclose(f);
    return found;
}

static int run(char *const args[])
{
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        execvp(args[0], args);
        _exit(errno == ENOENT ? 127 : 126);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

int cmd_umount(int argc, char **argv)
{
    const char *mnt = NULL;
    int lazy = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-z") || !strcmp(argv[i], "--lazy")) lazy = 1;
        else if (argv[i][0] == '-' && argv[i][1]) return cli_usage_error("umount", "unknown option %s", argv[i]);
        else if (!mnt) mnt = argv[i];
        else return cli_usage_error("umount", "one MOUNTPOINT");
    }
    if (!mnt) return cli_usage_error("umount", "missing MOUNTPOINT");
    char *abs = realpath(mnt, NULL);
    if (!abs) {
        cli_error_errno(errno, "umount %s", mnt);
        return DDP_EXIT_FAIL;
    }
    char *type = mount_type(abs);
    if (type && !*type) {
        fprintf(stderr, "ddp umount: %s is not a mount point (0x%08X)\n", abs, (unsigned)E_INVALIDARG);
        free(type);
        free(abs);
        return DDP_EXIT_FAIL;
    }
    if (type && strcmp(type, "fuse.ddp") != 0 && strcmp(type, "fuse.ddp-windows") != 0) {
        fprintf(stderr, "ddp umount: %s is a %s mount, not a ddp mount; not unmounting it (0x%08X)\n", abs, type,
                (unsigned)E_INVALIDARG);
        free(type);
        free(abs);
        return DDP_EXIT_FAIL;
    }
    free(type);
    char *fuser[] = { (char *)"fusermount3", (char *)"-u", lazy ? (char *)"-z" : abs, lazy ? abs : NULL, NULL };
    int rc = run(fuser);
    if (rc == 127) {
        char *um[] = { (char *)"umount", lazy ? (char *)"-l" : abs, lazy ? abs : NULL, NULL };
        rc = run(um);
    }
    if (rc != 0) fprintf(stderr, "ddp umount: unmounting %s failed (exit %d) (0x%08X)\n", abs, rc, (unsigned)E_FAIL);
    free(abs);
    return rc == 0 ? 0 : DDP_EXIT_FAIL;
}
