/* SPDX-License-Identifier: MIT */
/*
 * extract_pool.h: the worker threads of the first step of a restore
 * (extract.c). Writing many small files is bound by the file system's
 * metadata work (creating inodes, setting attributes), not by the bytes:
 * several threads do it at once. A job is a function and its argument; the
 * bytes it holds (a file's content read ahead) count against a limit, and
 * submitting waits while the queue holds more.
 */
#ifndef DDP_EXTRACT_POOL_H
#define DDP_EXTRACT_POOL_H

#include <stdint.h>

typedef struct ddp_xpool ddp_xpool;
/* worker: 0 .. nthreads-1 (the job's thread, for its own buffers). */
typedef void (*ddp_xpool_fn)(void *arg, int worker);

/* nthreads worker threads (at least 1), at most max_bytes of jobs' bytes
 * queued or running at once (a single larger job still runs). */
ddp_xpool *ddp_xpool_new(int nthreads, uint64_t max_bytes);
/* Queue fn(arg); waits while the jobs queued or running hold more than
 * max_bytes - bytes. */
void ddp_xpool_submit(ddp_xpool *p, ddp_xpool_fn fn, void *arg, uint64_t bytes);
/* Wait until every job submitted has run. */
void ddp_xpool_wait(ddp_xpool *p);
/* Wait, stop the threads, free. NULL: nothing. */
void ddp_xpool_free(ddp_xpool *p);

/* The worker threads a restore uses: DDP_RESTORE_THREADS (1..16) if set,
 * else 4. */
int ddp_xpool_default_threads(void);

#endif /* DDP_EXTRACT_POOL_H */
