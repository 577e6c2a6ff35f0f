/* SPDX-License-Identifier: MIT */
/*
 * extract_pool.c: a fixed set of worker threads taking jobs from one FIFO
 * queue (extract_pool.h), for the file step of a restore. The bytes of the
 * jobs queued or running are bounded, so reading ahead of the writers holds
 * a bounded amount of memory.
 */
#include <pthread.h>
#include <stdlib.h>

#include "backup/extract_pool.h"
#include "base/util.h"

#define MAX_THREADS 16

typedef struct job {
    ddp_xpool_fn fn;
    void *arg;
    uint64_t bytes;
    struct job *next;
} job;

struct ddp_xpool {
    pthread_mutex_t mu;
    pthread_cond_t work;   /* a job was queued, or stop */
    pthread_cond_t done;   /* a job finished */
    job *head, *tail;
    uint64_t bytes;        /* of the jobs queued or running */
    uint64_t max_bytes;
    size_t pending;        /* jobs queued or running */
    int stop;
    int nthreads;
    pthread_t threads[MAX_THREADS];
};

typedef struct worker_arg {
    ddp_xpool *p;
    int index;
} worker_arg;

static void *worker_main(void *varg)
{
    worker_arg *wa = varg;
    ddp_xpool *p = wa->p;
    int index = wa->index;
    free(wa);
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->head && !p->stop) pthread_cond_wait(&p->work, &p->mu);
        if (!p->head) break; /* stop, and nothing left */
        job *j = p->head;
        p->head = j->next;
        if (!p->head) p->tail = NULL;
        pthread_mutex_unlock(&p->mu);
        j->fn(j->arg, index);
        pthread_mutex_lock(&p->mu);
        p->bytes -= j->bytes;
        p->pending--;
        free(j);
        pthread_cond_broadcast(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int ddp_xpool_default_threads(void)
{
    const char *e = getenv("DDP_RESTORE_THREADS");
    if (e && *e) {
        char *end;
        long v = strtol(e, &end, 10);
        if (*end == '\0' && v >= 1 && v <= MAX_THREADS) return (int)v;
    }
    return 4;
}

ddp_xpool *ddp_xpool_new(int nthreads, uint64_t max_bytes)
{
    if (nthreads < 1) nthreads = 1;
    if (nthreads > MAX_THREADS) nthreads = MAX_THREADS;
    ddp_xpool *p = ddp_xcalloc(1, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->done, NULL);
    p->max_bytes = max_bytes;
    for (int k = 0; k < nthreads; k++) {
        worker_arg *wa = ddp_xmalloc(sizeof *wa);
        wa->p = p;
        wa->index = k;
        if (pthread_create(&p->threads[k], NULL, worker_main, wa) != 0) {
            free(wa);
            break; /* fewer threads; at least one is needed */
        }
        p->nthreads++;
    }
    if (p->nthreads == 0) abort();
    return p;
}

void ddp_xpool_submit(ddp_xpool *p, ddp_xpool_fn fn, void *arg, uint64_t bytes)
{
    job *j = ddp_xmalloc(sizeof *j);
    j->fn = fn;
    j->arg = arg;
    j->bytes = bytes;
    j->next = NULL;
    pthread_mutex_lock(&p->mu);
    while (p->pending > 0 && p->bytes + bytes > p->max_bytes) pthread_cond_wait(&p->done, &p->mu);
    if (p->tail) p->tail->next = j;
    else p->head = j;
    p->tail = j;
    p->bytes += bytes;
    p->pending++;
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->mu);
}

void ddp_xpool_wait(ddp_xpool *p)
{
    pthread_mutex_lock(&p->mu);
    while (p->pending > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

void ddp_xpool_free(ddp_xpool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int k = 0; k < p->nthreads; k++) pthread_join(p->threads[k], NULL);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
