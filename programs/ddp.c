/*
 * ddp.c: the ddp program: dispatches `ddp COMMAND ...` to programs/cmd_*.c,
 * and holds the helpers they share (messages, sizes).
 */
#include <stdarg.h>
#include <locale.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const struct command {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} commands[] = {
    { "enable", cmd_enable, "enable VOLUME [--usage Default|HyperV|Backup]   make a directory a ddp volume" },
    { "set", cmd_set, "set VOLUME KEY VALUE                            change a setting" },
    { "get", cmd_get, "get VOLUME [KEY]                                show settings" },
    { "optimize", cmd_optimize, "optimize VOLUME [--threads N] [--quiet]          deduplicate files in policy" },
    { "status", cmd_status, "status VOLUME [--json]                          savings, counts, last job" },
    { "cat", cmd_cat, "cat FILE...                                     write files' content to stdout" },
    { "unoptimize", cmd_unoptimize, "unoptimize VOLUME | FILE...                     rehydrate in place" },
    { "index", cmd_index, "index rebuild VOLUME                            rebuild the chunk index" },
    { "gc", cmd_gc, "gc VOLUME [--full]                              reclaim the space of unreferenced chunks" },
    { "scrub", cmd_scrub, "scrub VOLUME [--repair] [--json]                check every chunk, stream map and stub" },
    { "backup", cmd_backup, "backup VOLUME DEST [--tar] [--incremental PREV] an optimized backup" },
    { "restore", cmd_restore, "restore --from BACKUP [--to DIR] [--list-containers] PATH...\n"
                              "                                                    selective restore (RestoreFiles)" },
    { "mount", cmd_mount, "mount VOLUME MOUNTPOINT [-o OPTS] [-f]       FUSE view: files read as themselves" },
    { "umount", cmd_umount, "umount MOUNTPOINT                            unmount a ddp mount (fusermount3 -u)" },
};

static void usage(FILE *out)
{
    fprintf(out, "usage: ddp COMMAND [ARGS]   (ddp %s)\n\ncommands:\n", DDP_VERSION_STRING);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) fprintf(out, "  ddp %s\n", commands[i].summary);
    fprintf(out, "\nEvery failure prints its HRESULT (as on Windows) and what was wrong.\n");
}

void cli_error(HRESULT hr, const char *fmt, ...)
{
    char what[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    const char *detail = ddp_error_detail();
    if (detail && *detail)
        fprintf(stderr, "ddp: %s: %s (0x%08X: %s)\n", what, detail, (unsigned)hr, ddp_strerror(hr));
    else
        fprintf(stderr, "ddp: %s: %s (0x%08X)\n", what, ddp_strerror(hr), (unsigned)hr);
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "ddp %s: %s\n", cmd, msg);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(commands[i].name, cmd)) fprintf(stderr, "usage: ddp %s\n", commands[i].summary);
    return DDP_EXIT_USAGE;
}

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

int main(int argc, char **argv)
{
    /* The user's character set (LANG, LC_ALL, LC_CTYPE): libarchive and the
     * messages translate file names by it. Tar backups store names as raw
     * bytes (hdrcharset=BINARY), so any locale, LANG=C included, works. */
    (void)setlocale(LC_CTYPE, "");
    if (argc < 2) {
        usage(stderr);
        return DDP_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("ddp %s\n", DDP_VERSION_STRING);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(commands[i].name, argv[1])) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "ddp: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return DDP_EXIT_USAGE;
}
