/* SPDX-License-Identifier: MIT */
/*
 * rsrecord.h: the recording backup store of the RestoreFiles unit tests
 * (test_restore.c, test_restore_windows.c) and the checker of rules R5-R7
 * (SPEC-backup-api.md) on what it recorded.
 *
 * The store is an IDedupReadFileCallback that serves reads from a backup
 * directory and RECORDS every call: reads with path, offset, size and
 * result; the container lists handed to OrderContainersRestore and the
 * plans it answered; every preview list; with can_list, also ddp's listing
 * interface IDdpListBackupFolder (by QueryInterface) and its calls. It can
 * fail reads of chosen paths, shorten them, fail OrderContainersRestore,
 * answer with a read plan (a plan function) and run a hook on each read.
 *
 * rs_check_sequence() checks: two OrderContainersRestore calls, stream-map
 * containers first, no path twice in a list (R5); every container read
 * announced by the preview just before it, in the announced order, inside
 * the current plan extent; no read over 4 MiB; no container byte read twice
 * in the call (R7); metadata and listings only before the first order;
 * with windows_paths, before any order, previews only of the generation
 * probe of a store that cannot list; the lister released as often as it
 * was handed out.
 */
#ifndef DDP_TEST_RSRECORD_H
#define DDP_TEST_RSRECORD_H

#include <stddef.h>
#include <stdint.h>

#include <ddp/ddp.h>
#include <ddp/ddpbackup.h>

#define RS_READ_MAX ((int64_t)4 << 20)
/* Where Windows' chunk store lies below a volume root. */
#define RS_SVI "/System Volume Information/Dedup/ChunkStore/"

enum { RS_READ = 1, RS_ORDER, RS_PREVIEW, RS_LIST };

typedef struct rs_event {
    int type;
    char *path;                  /* READ, PREVIEW, LIST */
    int64_t off;
    uint32_t size, got;
    HRESULT hr;
    ULONG n;                     /* ORDER: containers; PREVIEW: reads */
    char **paths;
    DDP_FILE_EXTENT *ext;
    ULONG nplan;
    DEDUP_CONTAINER_EXTENT *plan;
} rs_event;

typedef struct rstore rstore;
/* Answers OrderContainersRestore call number `call` (1, 2, ...). */
typedef void (*rs_plan_fn)(rstore *s, int call, ULONG n, BSTR *paths, ULONG *np, DEDUP_CONTAINER_EXTENT **plan);

struct rstore {
    IDedupReadFileCallback iface;
    IDdpListBackupFolder lister;
    int can_list;                /* offer IDdpListBackupFolder */
    int windows_paths;           /* reads may name Windows' chunk store (RS_SVI) besides /.ddp/ */
    char *root;
    rs_event *evs;
    size_t nev, cap;
    int orders;
    rs_plan_fn plan;
    int plan_arg;
    const char *fail_sub;        /* reads of paths containing this fail with fail_hr */
    HRESULT fail_hr;
    const char *short_sub;       /* reads of paths containing this return one byte short */
    int order_fail_call;         /* OrderContainersRestore call number that fails with order_hr */
    HRESULT order_hr;
    void (*on_read)(rstore *s, const char *path, int64_t off);
    void *hook;
    int hook_done;
    uint64_t cont_bytes, meta_bytes;
    uint64_t cont_reads;
    int releases_due;            /* lister references handed out, not yet released */
};

void rs_init(rstore *s, const char *root, int can_list);
/* Forget the recorded calls (and the counters). */
void rs_clear(rstore *s);
void rs_free(rstore *s);
/* Recorded calls of a type whose path contains sub (NULL: any). */
size_t rs_count(const rstore *s, int type, const char *sub);
/* A container path (Data, Stream or Hotspot), not metadata. */
int rs_is_container(const char *bpath);
/* The size of the backup file bpath; 4096 when it does not exist. */
int64_t rs_file_size(const rstore *s, const char *bpath);
/* A plan: every container in pieces of s->plan_arg bytes (0: 64 KiB), in a
 * scrambled but fixed order. */
void rs_plan_scrambled(rstore *s, int call, ULONG n, BSTR *paths, ULONG *np, DEDUP_CONTAINER_EXTENT **plan);
/* R5-R7 on the recorded calls; expect_orders: how many
 * OrderContainersRestore calls there must be (-1: any). */
void rs_check_sequence(const rstore *s, int expect_orders);

#endif
