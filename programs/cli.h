/* SPDX-License-Identifier: MIT */
/*
 * cli.h: the pieces shared by the ddp program's subcommands: each
 * subcommand is `int cmd_NAME(int argc, char **argv)` (argv[0] is the
 * subcommand name) in programs/cmd_NAME.c, returning the process exit code.
 */
#ifndef DDP_CLI_H
#define DDP_CLI_H

#include <ddp/ddp.h>
#include <ddp/ddpbackup.h>

/* Exit codes. */
#define DDP_EXIT_OK 0
#define DDP_EXIT_FAIL 1      /* the job or some files failed */
#define DDP_EXIT_USAGE 2     /* bad command line */

#include <stdio.h>

/* The command table (commands.c). */
typedef struct cli_command {
    const char *name;
    int (*fn)(int, char **);
    const char *synopsis;   /* "enable VOLUME [--usage ...]" */
    const char *summary;    /* one line, no full stop */
    const char *help;       /* the options, indented lines */
} cli_command;
extern const cli_command cli_commands[];
extern const size_t cli_ncommands;
const cli_command *cli_find(const char *name);
/* The list of commands, to out. */
void cli_list(FILE *out);
/* A command's help on stdout: 0, or 2 for an unknown command. */
int cli_help(const char *name);

/* Print "ddp: <what>: <message> (0xHRESULT)" and the library's detail, if any, to stderr. */
void cli_error(HRESULT hr, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print "ddp NAME: <message>" + the usage hint; returns DDP_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print "ddp: <what>: <strerror> (0xHRESULT: ...)" for an errno value. */
void cli_error_errno(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parse a whole number in [min, max] for option opt of cmd; -1 (after the
 * usage message) if s is not one. */
int cli_parse_uint(const char *cmd, const char *opt, const char *s, unsigned long long min, unsigned long long max,
                   unsigned long long *out);
/* Is a an option-looking argument (and not "-" alone)? */
int cli_is_option(const char *a);
/* "12.3 MiB" style sizes; returns buf. */
const char *cli_human_bytes(uint64_t n, char buf[32]);
/* Is stdout/stderr a terminal (progress lines)? */
int cli_is_tty(int fd);
/* Print s as a JSON string literal (quotes, escapes) on stdout. */
void cli_json_str(const char *s);

int cmd_enable(int argc, char **argv);
int cmd_set(int argc, char **argv);
int cmd_get(int argc, char **argv);
int cmd_optimize(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_cat(int argc, char **argv);
int cmd_unoptimize(int argc, char **argv);
int cmd_index(int argc, char **argv);
int cmd_backup(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_gc(int argc, char **argv);
int cmd_scrub(int argc, char **argv);
int cmd_mount(int argc, char **argv);
int cmd_umount(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_help(int argc, char **argv);

/* Progress on a terminal (progress.c): one line on stderr, redrawn at most
 * five times a second: done of total (percent), rate and time left; with no
 * total, the count and the rate. Off unless stderr is a terminal and the
 * command was not asked for --quiet or --json. */
typedef struct cli_progress {
    int on;
    int bytes;              /* units are bytes (else items) */
    const char *label;
    const char *unit;       /* items' name ("files", "stubs", "containers") */
    uint64_t total;
    double t0, last;
    int drawn;
} cli_progress;
void cli_progress_start(cli_progress *p, int on, const char *label, int bytes, const char *unit, uint64_t total);
void cli_progress_update(cli_progress *p, uint64_t done, uint64_t total);
/* Erase the line (before a message, and at the end). */
void cli_progress_clear(cli_progress *p);
/* A backup store that draws bar from the bytes read through it; takes over
 * the caller's reference to inner (readprogress.c). */
IDedupReadFileCallback *cli_read_progress(IDedupReadFileCallback *inner, cli_progress *bar);
/* Should a command show progress? (stderr a terminal, not quiet, not json) */
int cli_progress_wanted(int quiet, int json);

/* Windows dedup volumes (cmd_windows.c): the hooks of cat, status, scrub, restore. */
int win_is_volume(const char *dir);
/* A Windows volume that is not also a ddp volume (no .ddp/ in it). */
int win_is_volume_only(const char *dir);
/* 1 when path is a Windows dedup file (written to stdout, or the failure
 * printed and *rc set), 0 when it is not one. */
int win_cat_file(const char *path, int *rc);
int cmd_win_status(const char *root, int json);
int cmd_win_scrub(const char *root, int json);
int cmd_win_restore(const char *from, const char *to, char **rel, size_t n, int list);

#endif /* DDP_CLI_H */
