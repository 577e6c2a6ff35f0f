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

/* Print "ddp: <what>: <message> (0xHRESULT)" and the library's detail, if any, to stderr. */
void cli_error(HRESULT hr, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print "ddp NAME: <message>" + the usage hint; returns DDP_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
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
