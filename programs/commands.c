/* SPDX-License-Identifier: MIT */
/*
 * commands.c: the ddp program's command table: each command's name, the
 * function that runs it, its synopsis and its help (`ddp COMMAND --help`,
 * `ddp help COMMAND`). The man pages (docs/man/ddp-COMMAND.1.scd) say the same at
 * length; keep the two in step.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

const cli_command cli_commands[] = {
    { "enable", cmd_enable, "enable VOLUME [--usage Default|HyperV|Backup]", "make a directory a ddp volume",
      "  Creates VOLUME/.ddp (settings, chunk store). A volume already enabled is left\n"
      "  as it is and the command succeeds, saying so.\n"
      "  --usage TYPE   Default, HyperV or Backup (default: Default); sets the policy's defaults\n" },
    { "set", cmd_set, "set VOLUME KEY VALUE", "change a setting",
      "  Keys: usage_type, min_file_age_days, min_file_size, excluded_folders, excluded_types,\n"
      "  no_compress_types, compression_level, container_size_limit, hotspot_threshold,\n"
      "  enabled, gc_threshold (ddp-set(1)). Changing usage_type also changes the settings\n"
      "  that follow from it, and says which.\n" },
    { "get", cmd_get, "get VOLUME [KEY]", "show settings", "  Without KEY: every setting as 'key = value'.\n" },
    { "optimize", cmd_optimize, "optimize VOLUME [--threads N] [--quiet] [--json]", "deduplicate the files in policy",
      "  --threads N   worker threads, 1..256 (default: one per core)\n"
      "  --quiet, -q   no progress and no summary unless something failed\n"
      "  --json        the summary as one JSON object\n" },
    { "status", cmd_status, "status VOLUME [--json]", "savings, counts, last run of each job",
      "  --json   one JSON object; each job's last run as an object\n" },
    { "ls", cmd_ls, "ls [-l] [--json] PATH...", "logical size, size on disk, optimized or not",
      "  Each file's logical size (what it reads as), its size on disk, and whether it is\n"
      "  optimized; a directory lists its entries. Works on plain files too.\n"
      "  -l       long form: mode, owner, times, both sizes\n"
      "  --json   one JSON object per file, one per line\n" },
    { "cat", cmd_cat, "cat FILE...", "write files' content to stdout",
      "  An optimized file reads as its original content, any other file as itself.\n" },
    { "unoptimize", cmd_unoptimize, "unoptimize [--quiet] [--json] VOLUME | FILE...", "rehydrate in place",
      "  VOLUME: rehydrate every stub, then remove VOLUME/.ddp (run again to finish an\n"
      "  interrupted run). FILE: rehydrate that file (owner, mode and times kept).\n"
      "  --quiet, -q   no progress\n"
      "  --json        the summary as one JSON object\n" },
    { "index", cmd_index, "index rebuild VOLUME", "rebuild the chunk index from the containers",
      "  The index is a cache of the containers: rebuilding it never loses data.\n" },
    { "gc", cmd_gc, "gc VOLUME [--full] [--quiet] [--json]", "reclaim the space of unreferenced chunks",
      "  --full        collect every container with dead records (default: those over gc_threshold)\n"
      "  --quiet, -q   no progress\n"
      "  --json        the summary as one JSON object\n" },
    { "scrub", cmd_scrub, "scrub VOLUME [--repair] [--quiet] [--json]", "check every chunk, stream map and stub",
      "  --repair      mend damage from intact copies, retire what no file needs\n"
      "  --quiet, -q   no progress\n"
      "  --json        the report as one JSON object\n" },
    { "backup", cmd_backup, "backup VOLUME DEST [--tar] [--incremental PREV] [--endpoint URL] [--quiet] [--json]",
      "an optimized backup",
      "  An optimized backup of VOLUME: stubs as they are, every container once.\n"
      "  DEST          a directory that does not exist or is empty (with --tar: the archive file),\n"
      "                or s3://BUCKET/PREFIX (objects in S3; the same command again finishes an\n"
      "                interrupted backup)\n"
      "  --tar         one tar archive, ordered so a restore reads it in one forward pass\n"
      "  --incremental PREV\n"
      "                copy only what changed since the backup PREV (a directory, or s3://BUCKET/PREFIX)\n"
      "  --endpoint URL  the S3 service (default: AWS_ENDPOINT_URL, the AWS profile, AWS);\n"
      "                credentials and region as the AWS CLI reads them (AWS_ACCESS_KEY_ID, ...)\n"
      "  --quiet, -q   no progress\n"
      "  --json        the summary as one JSON object\n" },
    { "restore", cmd_restore,
      "restore --from BACKUP [--to DIR] [--existing refuse|keep|overwrite|rename] [--list-containers]\n"
      "                   [--endpoint URL] [--quiet] [--json] PATH...",
      "selective restore (RestoreFiles)",
      "  Restore files from an optimized backup (directory, incremental, tar archive or\n"
      "  s3://BUCKET/PREFIX) through IDedupBackupSupport::RestoreFiles.\n"
      "  PATH                paths inside the backed-up volume, relative to its root (a/b.txt)\n"
      "  --to DIR            where to restore them (DIR/PATH; default: the current directory)\n"
      "  --existing WHAT     an existing file: refuse (default), keep, overwrite, or rename (NAME.~N~)\n"
      "  --endpoint URL      the S3 service of an s3:// backup (default: AWS_ENDPOINT_URL, the AWS\n"
      "                      profile, AWS)\n"
      "  --list-containers   print the container ranges a restore would read, restore nothing\n"
      "  --quiet, -q         no progress\n"
      "  --json              the outcome as one JSON object\n" },
    { "mount", cmd_mount, "mount VOLUME MOUNTPOINT [-o OPTS] [-f]", "FUSE view: files read as themselves",
      "  -o OPTIONS        FUSE mount options: ro, allow_other, ... (default_permissions is always on)\n"
      "  -f                stay in the foreground (log to stderr)\n"
      "  -d                debug: -f plus libfuse's trace of every request\n"
      "  -s                one thread\n"
      "  --log FILE        append the log to FILE (default: stderr with -f, else syslog)\n"
      "  --cache-mb N      cache of decompressed chunks (default 256)\n"
      "  --readahead-mb N  how far ahead of a sequential reader chunks are decoded (default 8; 0: off)\n"
      "  --threads N       read-ahead threads, 0..64 (default: one per core, 2..8)\n"
      "  A mount point that is already mounted is refused. See docs/MOUNT.md.\n" },
    { "umount", cmd_umount, "umount [-z] MOUNTPOINT", "unmount a ddp mount (fusermount3 -u)",
      "  -z, --lazy   detach now, finish when the last reader is gone\n" },
    { "help", cmd_help, "help [COMMAND]", "this list, or a command's help", "" },
};
const size_t cli_ncommands = sizeof cli_commands / sizeof cli_commands[0];

const cli_command *cli_find(const char *name)
{
    for (size_t i = 0; i < cli_ncommands; i++)
        if (!strcmp(cli_commands[i].name, name)) return &cli_commands[i];
    return NULL;
}

void cli_list(FILE *out)
{
    fprintf(out, "usage: ddp COMMAND [ARGS]   (ddp %s)\n\ncommands:\n", DDP_VERSION_STRING);
    for (size_t i = 0; i < cli_ncommands; i++)
        fprintf(out, "  %-12s %s\n", cli_commands[i].name, cli_commands[i].summary);
    fprintf(out, "\n'ddp COMMAND --help' or 'ddp help COMMAND' for a command's options; man ddp for more.\n"
                 "Every failure prints its HRESULT (as on Windows) and what was wrong.\n"
                 "Exit status: 0 success, 1 the job or some files failed, 2 bad command line.\n");
}

int cli_help(const char *name)
{
    const cli_command *c = cli_find(name);
    if (!c) {
        fprintf(stderr, "ddp help: unknown command '%s'\n", name);
        cli_list(stderr);
        return DDP_EXIT_USAGE;
    }
    printf("usage: ddp %s\n\n  %s.\n\n%s", c->synopsis, c->summary, c->help);
    if (*c->help) putchar('\n');
    printf("  -h, --help     this help (man ddp-%s for more)\n", c->name);
    return DDP_EXIT_OK;
}

int cmd_help(int argc, char **argv)
{
    if (argc == 1) {
        cli_list(stdout);
        return DDP_EXIT_OK;
    }
    if (argc > 2) return cli_usage_error("help", "one COMMAND only");
    return cli_help(argv[1]);
}
