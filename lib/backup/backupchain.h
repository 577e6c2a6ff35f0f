/* SPDX-License-Identifier: MIT */
/*
 * backupchain.h: the chain of directory backups behind an incremental one
 * (backupchain.c): the newest manifest and every earlier backup it builds
 * on, checked link by link.
 */
#ifndef DDP_BACKUPCHAIN_H
#define DDP_BACKUPCHAIN_H

#include <stdint.h>
#include "backup/manifest.h"

typedef struct ddp_backup_chain {
    ddp_manifest newest;     /* fully parsed */
    uint32_t nlevels;        /* newest.level + 1 */
    char **dirs;             /* [level]: absolute directory of that backup */
    int *dirfds;             /* [level]: O_DIRECTORY fds, or -1 */
} ddp_backup_chain;

/* Open the backup in dir and every earlier one it builds on (through each
 * manifest's "previous"), checking ids, levels and store ids. */
HRESULT ddp_backup_chain_open(const char *dir, ddp_backup_chain *c);
void ddp_backup_chain_close(ddp_backup_chain *c);
/* Resolve a manifest's previous path against the directory holding dir. */
char *ddp_backup_resolve_previous(const char *dir, const char *previous);

#endif /* DDP_BACKUPCHAIN_H */
