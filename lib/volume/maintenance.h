/* SPDX-License-Identifier: MIT */
/*
 * maintenance.h: the maintenance jobs' entry points that the rest of the
 * volume layer calls (docs/MAINTENANCE.md): finishing an interrupted
 * garbage collection (gc.c), called by whoever opens a volume's store for a
 * job (volume.c), and refreshing the hotspot copies (hotspot.c), called at
 * the end of the optimization and gc jobs. What the jobs share for walking a
 * store is store/storewalk.h.
 */
#ifndef DDP_MAINTENANCE_H
#define DDP_MAINTENANCE_H

#include <stdint.h>
#include <ddp/ddp.h>
#include "store/identity.h"

/* ---- hooks ---- */

/* Finish a garbage collection that was interrupted (State/gc.plan exists):
 * retire the records the plan names (idempotent), punch their payloads,
 * delete the index (the caller rebuilds it), remove the plan. S_FALSE when
 * there is no plan. Called before a volume's store is opened for a job
 * (volume.c), so that the open then rebuilds the index. */
HRESULT ddp_gc_resume(const char *store_dir, const char *state_dir, const uint8_t store_id[DDP_STORE_ID_SIZE]);

/* Give every chunk referenced at least hotspot_threshold times a second copy
 * in Hotspot/ (hotspot.c). Counts references over the stream-map containers;
 * does nothing (S_FALSE) when neither they, the hotspot containers nor the
 * threshold changed since the last run. Called at the end of ddp_optimize
 * and of ddp_gc; the volume must be opened for a job. */
HRESULT ddp_hotspot_update(ddp_volume *v);

/* A stub that fails authentication, damaged in exactly one byte, mended in
 * buf when exactly one fix makes it verify (volume/scrub.c): 1 mended. */
int ddp_volume_mend_stub_bytes(const ddp_volume *v, uint8_t *buf);

/* Rebuild the stub with bytes appended at path (ddp_volume_read_appended_stub;
 * expect: the file a walk saw) as a regular file: the stub's content, read
 * and checked like any rehydration, followed by the appended bytes; built in
 * .ddp/Temp and exchanged with it like unoptimize does (volume/replace.h:
 * owner, mode, xattrs and times kept; DDP_E_FILE_IN_USE when it is open or
 * changes meanwhile). *content and *appended: the byte counts of the two
 * parts. S_FALSE when it is no longer such a file (unoptimize.c). */
struct stat;
HRESULT ddp_volume_restore_appended(ddp_volume *v, const char *path, const struct stat *expect, uint64_t *content,
                                    uint64_t *appended);

#endif /* DDP_MAINTENANCE_H */
