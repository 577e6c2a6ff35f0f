/* SPDX-License-Identifier: MIT */
/*
 * chunkstore_internal.h: the chunk store's handle as its two files share it:
 * chunkstore.c (open, catalog, writers, index, puts, close) and
 * chunkstore_read.c (the descriptor cache, the translation of local ids,
 * reads). Not for use outside lib/store/chunkstore*.c.
 */
#ifndef DDP_CHUNKSTORE_INTERNAL_H
#define DDP_CHUNKSTORE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "store/catalog.h"
#include "store/chunkstore.h"
#include "store/container.h"
#include "store/index.h"
#include "store/redirect.h"

#define CHUNK_MAX_LOGICAL 131072u
#define FD_CACHE_MAX 128
#define DEFAULT_CONTAINER_LIMIT ((uint64_t)1 << 30)
#define CATALOG_MAX_BYTES ((size_t)32 + (size_t)24 * DDP_CATALOG_MAX_ENTRIES + 8)
#define SEALED_FLAG 1u
/* Chunks being compressed at once (one per putting thread; past this many a
 * put goes on without announcing itself). */
#define FLIGHT_MAX 64

enum { W_DATA = 0, W_STREAM = 1 };

typedef struct writer_slot {
    uint32_t kind;
    ddp_container_writer *w;
    uint32_t id, generation;
    HRESULT failed;                 /* sticky write/fsync failure */
    char failed_detail[512];        /* its detail line, for every later caller */
    _Atomic uint32_t pub_id;        /* id of w's container, 0 when none */
    _Atomic uint64_t pub_flushed;   /* bytes of it that are in the file */
} writer_slot;

typedef struct fd_entry {
    uint32_t kind, id;
    int fd;
    int refs;
    uint64_t last_use;
    char *path;
    ddp_redirect redir;   /* local id -> offset in this generation (identity for version 1) */
    int emptied;          /* a later generation without a table: gc left it empty */
    uint32_t generation;  /* the generation open */
    int stale;            /* the catalog names a newer one: closed when the last reader lets go */
} fd_entry;

struct ddp_chunkstore {
    char *store_dir, *state_dir, *catalog_path, *index_path;
    uint8_t store_id[DDP_STORE_ID_SIZE];
    int writable;
    uint64_t limit;

    pthread_mutex_t lock;
    ddp_catalog cat;
    ddp_index *ix;
    writer_slot ws[2];
    uint64_t next_auto_checkpoint;  /* delta count below which no automatic checkpoint is tried */
    /* Chunks a put is compressing now (under lock): a second put of the same
     * hash waits for the first instead of compressing it again. */
    uint8_t flight[FLIGHT_MAX][DDP_HASH_SIZE];
    size_t nflight;
    pthread_cond_t flight_done;
    uint8_t *cat_written;           /* the catalog's bytes as last written (or read) */
    size_t cat_written_len;

    pthread_mutex_t fdlock;
    fd_entry **fds;
    size_t nfds, fds_cap;
    uint64_t use_clock;
    /* A read-only store (the mount) looks at most once a second whether the
     * catalog was replaced (its inode), and then lets go of the descriptors
     * of generations gc has replaced, so their disk space is freed. */
    ino_t cat_ino;
    _Atomic int64_t cat_checked_ms;
};

const char *ddp_cs_kind_name(uint32_t kind);
/* STORE/Data/CCCCCCCC.GGGGGGGG.ccc (by kind), malloc'd. */
char *ddp_cs_container_file(const ddp_chunkstore *cs, uint32_t kind, uint32_t id, uint32_t generation);
int64_t ddp_cs_now_ms(void);
/* Read and check the catalog at path (store_id NULL: any store). */
HRESULT ddp_cs_catalog_read(const char *path, const uint8_t *store_id, ddp_catalog *cat);
/* A record of container id ending at `end` still in the slot's write buffer
 * is written out to the file first. */
HRESULT ddp_cs_ensure_flushed(ddp_chunkstore *cs, writer_slot *ws, uint32_t id, uint64_t end);
/* Close every cached descriptor (at close). */
void ddp_cs_fds_close(ddp_chunkstore *cs);

#endif /* DDP_CHUNKSTORE_INTERNAL_H */
