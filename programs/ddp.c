/* SPDX-License-Identifier: MIT */
/*
 * ddp.c: the ddp program: dispatches `ddp COMMAND ...` to programs/cmd_*.c,
 * and holds the helpers they share (messages, sizes).
 */
#include <errno.h>
#include <stdarg.h>
#include <locale.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* "ddp: WHAT: DETAIL (0xHR: what HR means)", or without a detail
 * "ddp: WHAT: what HR means (0xHR)". */
static void report(HRESULT hr, const char *what, const char *detail)
{
    if (detail && *detail)
        fprintf(stderr, "ddp: %s: %s (0x%08X: %s)\n", what, detail, (unsigned)hr, ddp_strerror(hr));
    else
        fprintf(stderr, "ddp: %s: %s (0x%08X)\n", what, ddp_strerror(hr), (unsigned)hr);
}

void cli_error(HRESULT hr, const char *fmt, ...)
{
    char what[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    report(hr, what, ddp_error_detail());
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "ddp %s: %s (0x%08X)\n", cmd, msg, (unsigned)E_INVALIDARG);
    const cli_command *c = cli_find(cmd);
    if (c) fprintf(stderr, "usage: ddp %s\n'ddp %s --help' for more\n", c->synopsis, c->name);
    return DDP_EXIT_USAGE;
}

void cli_error_errno(int err, const char *fmt, ...)
{
    char what[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    report(ddp_hresult_from_errno(err), what, strerror(err));
}

int cli_parse_uint(const char *cmd, const char *opt, const char *s, unsigned long long min, unsigned long long max,
                   unsigned long long *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = (s && *s >= '0' && *s <= '9') ? strtoull(s, &end, 10) : 0;
    if (!s || !end || *end || errno || v < min || v > max) {
        cli_usage_error(cmd, "%s wants a whole number from %llu to %llu, not '%s'", opt, min, max, s ? s : "");
        return -1;
    }
    *out = v;
    return 0;
}

int cli_is_option(const char *a) { return a[0] == '-' && a[1] != '\0'; }

const char *cli_human_bytes(uint64_t n, char buf[32])
{
    static const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
    double d = (double)n;
    int u = 0;
    while (d >= 1024 && u < 5) { d /= 1024; u++; }
    if (u == 0) snprintf(buf, 32, "%llu B", (unsigned long long)n);
    else snprintf(buf, 32, "%.1f %s", d, units[u]);
    return buf;
}

int cli_is_tty(int fd) { return isatty(fd); }

void cli_json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20) printf("\\u%04x", *s);
        else putchar(*s);
    }
    putchar('"');
}

/* Does the command line after the command ask for help (before a "--")? */
static int wants_help(int argc, char **argv)
{
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--")) return 0;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    /* The user's character set (LANG, LC_ALL, LC_CTYPE): libarchive and the
     * messages translate file names by it. Tar backups store names as raw
     * bytes (hdrcharset=BINARY), so any locale, LANG=C included, works. */
    (void)setlocale(LC_CTYPE, "");
    if (argc < 2) {
        cli_list(stderr);
        return DDP_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        cli_list(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("ddp %s\n", DDP_VERSION_STRING);
        return 0;
    }
    const cli_command *c = cli_find(argv[1]);
    if (!c) {
        fprintf(stderr, "ddp: unknown command '%s' (0x%08X)\n", argv[1], (unsigned)E_INVALIDARG);
        cli_list(stderr);
        return DDP_EXIT_USAGE;
    }
    if (wants_help(argc, argv)) return cli_help(c->name);
    return c->fn(argc - 1, argv + 1);
}
