/* SPDX-License-Identifier: MIT */
/*
 * backupsupport.c: the IDedupBackupSupport COM object (<ddp/ddpbackup.h>),
 * Windows Server's backup-support API for Linux.
 *
 * The object has the layout of the Windows SDK's C binding: a struct whose
 * first member lpVtbl points at the method table, each method taking the
 * object as This. DedupCreateBackupSupport stands in for
 * CoCreateInstance(CLSID_DedupBackupSupport, ...): the object starts with one
 * reference; AddRef and Release count atomically, and the last Release frees
 * it. QueryInterface answers IID_IUnknown and IID_IDedupBackupSupport (with
 * the same pointer, after an AddRef) and E_NOINTERFACE for anything else.
 *
 * RestoreFiles is the restore engine's ddp_restore_files (restore.c); the
 * object holds no state of its own, so one object may serve any number of
 * calls, on any threads, one call per thread at a time.
 *
 * This file also defines the interface and class ids the header declares.
 */
#include <stdatomic.h>
#include <stdlib.h>

#include <ddp/ddpbackup.h>

#include "restore/restore.h"

DDP_API const IID IID_IUnknown = { 0x00000000, 0x0000, 0x0000, { 0xC0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x46 } };
DDP_API const IID IID_IDedupReadFileCallback = { 0x7BACC67A, 0x2F1D, 0x42D0,
                                                 { 0x89, 0x7E, 0x6F, 0xF6, 0x2D, 0xD5, 0x33, 0xBB } };
DDP_API const IID IID_IDedupBackupSupport = { 0xC719D963, 0x2B2D, 0x415E,
                                              { 0xAC, 0xF7, 0x7E, 0xB7, 0xCA, 0x59, 0x6F, 0xF4 } };
DDP_API const CLSID CLSID_DedupBackupSupport = { 0x73D6B2AD, 0x2984, 0x4715,
                                                 { 0xB2, 0xE3, 0x92, 0x4C, 0x14, 0x97, 0x44, 0xDD } };
DDP_API const IID IID_IDdpListBackupFolder = { 0x8E5E2D05, 0xC4EE, 0x4611,
                                               { 0x9B, 0x77, 0x64, 0x98, 0x75, 0x73, 0x60, 0x44 } };

typedef struct backup_support {
    IDedupBackupSupport iface; /* first: the object pointer is this struct's */
    atomic_uint refs;
} backup_support;

static HRESULT bs_query_interface(IDedupBackupSupport *This, REFIID riid, void **ppv)
{
    if (!ppv) return E_POINTER;
    *ppv = NULL;
    if (!This || !riid) return E_POINTER;
    if (IsEqualIID(riid, &IID_IUnknown) || IsEqualIID(riid, &IID_IDedupBackupSupport)) {
        This->lpVtbl->AddRef(This);
        *ppv = This;
        return S_OK;
    }
    return E_NOINTERFACE;
}

static ULONG bs_add_ref(IDedupBackupSupport *This)
{
    backup_support *o = (backup_support *)This;
    return (ULONG)atomic_fetch_add_explicit(&o->refs, 1u, memory_order_relaxed) + 1;
}

static ULONG bs_release(IDedupBackupSupport *This)
{
    backup_support *o = (backup_support *)This;
    unsigned left = atomic_fetch_sub_explicit(&o->refs, 1u, memory_order_acq_rel) - 1;
    if (left == 0) free(o);
    return (ULONG)left;
}

static HRESULT bs_restore_files(IDedupBackupSupport *This, ULONG NumberOfFiles, BSTR *FileFullPaths,
                                IDedupReadFileCallback *Store, DWORD Flags, HRESULT *FileResults)
{
    (void)This;
    return ddp_restore_files(NumberOfFiles, FileFullPaths, Store, Flags, FileResults);
}

static const IDedupBackupSupportVtbl backup_support_vtbl = {
    bs_query_interface,
    bs_add_ref,
    bs_release,
    bs_restore_files,
};

DDP_API HRESULT DedupCreateBackupSupport(IDedupBackupSupport **out)
{
    if (!out) return E_POINTER;
    *out = NULL;
    backup_support *o = malloc(sizeof *o);
    if (!o) return E_OUTOFMEMORY;
    o->iface.lpVtbl = &backup_support_vtbl;
    atomic_init(&o->refs, 1u);
    *out = &o->iface;
    return S_OK;
}
