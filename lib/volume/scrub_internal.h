/* SPDX-License-Identifier: MIT */
/*
 * scrub_internal.h: what the scrub job's two files share: the damage list
 * and the job's context (scrub.c checks containers and stubs and builds the
 * report; scrub_repair.c mends what can be mended, pass 3 of
 * docs/MAINTENANCE.md).
 */
#ifndef DDP_SCRUB_INTERNAL_H
#define DDP_SCRUB_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <ddp/ddp.h>
#include "store/container.h"
#include "store/storewalk.h"
#include "store/stub.h"

#define WINDOW ((size_t)1 << 20)
#define PUNCH_BLOCK 4096u

enum {
    SUB_MISSING = 1,   /* container file missing or unreadable */
    SUB_BADHDR,        /* container header */
    SUB_AFTERSEAL,     /* bytes after the seal record */
    SUB_REGION,        /* record header damaged: [off, end) */
    SUB_PAYLOAD,       /* header valid, payload damaged (or the wrong type) */
    SUB_STUB_MAC,      /* a stub that does not authenticate */
    SUB_STUB_REF,      /* a valid stub whose references are wrong */
    SUB_UNREADABLE,    /* a directory or file that could not be read */
    SUB_STUB_APPENDED  /* a valid stub with bytes appended to it */
};

typedef struct dmg {
    int kind, sub;
    ddp_mcont *c;             /* NULL for stub items */
    uint64_t off, end;        /* damaged bytes of c */
    int have_hdr;
    ddp_record_header h;      /* the (valid) header of a damaged payload */
    int have_expect;
    ddp_record_header expect; /* what references say should be there */
    char *file, *what;
    char **files;
    size_t nfiles, fcap;
    int repaired;
    char *repair;
    int wanted;               /* repair: looking for a copy in the header pass */
    ddp_mcont *src_c;         /* repair: a copy found */
    uint64_t src_off;
    int other_encoding;       /* repair: a copy exists, but encoded differently */
    struct stat seen;         /* SUB_STUB_APPENDED: the file that was judged */
} dmg;

typedef struct scrub_ctx {
    ddp_volume *v;
    int repair;
    const ddp_job_callbacks *cb;
    ddp_scrub_report *rep;
    ddp_mstore ms;
    ddp_hotset hot;           /* intact hotspot copies */
    dmg *d;
    size_t nd, dcap;
    int refs_complete;        /* every valid stub's stream map was read */
    uint8_t *sbuf, *lbuf;     /* stored and logical payloads */
    size_t scap, lcap;
    ddp_mcont *fd_c;          /* one cached read descriptor */
    int fd;
} scrub_ctx;

/* The damaged region of c that holds off, or NULL. */
dmg *scrub_find_damage(scrub_ctx *s, const ddp_mcont *c, uint64_t off);
/* Close the one cached read descriptor. */
void scrub_drop_fd(scrub_ctx *s);
/* Check what the stub st of path references. Problems that are not damage
 * already reported go to *problem (malloc'd). trusted: st authenticated; an
 * untrusted stub (one that fails its MAC) only adds its path to the damage
 * it names, for the report: it never tells a repair what to write. */
HRESULT scrub_check_stub_refs(scrub_ctx *s, const ddp_stub *st, const char *path, int trusted, char **problem);
/* Pass 3: mend every damage that can be mended (scrub_repair.c). */
HRESULT scrub_repair_all(scrub_ctx *s);

#endif /* DDP_SCRUB_INTERNAL_H */
