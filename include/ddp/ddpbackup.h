/* SPDX-License-Identifier: MIT */
/*
 * ddp/ddpbackup.h: the backup-support API, with Windows' names and numbers.
 *
 * This is Windows Server's DdpBackup.h (IDedupBackupSupport::RestoreFiles and
 * the application's IDedupReadFileCallback) for Linux, in the layout of the
 * Windows SDK's C binding: an object is a struct whose first member lpVtbl
 * points at a table of function pointers, each taking the object as This.
 *
 * A backup application restores the stubs of the files it wants (ddp's
 * "reparse points") to local paths, then calls RestoreFiles with those paths
 * and its IDedupReadFileCallback. ddp reads everything else it needs (store
 * identity, stream maps, chunks) only through that callback, in an order the
 * application may choose (OrderContainersRestore), announcing the reads of
 * each extent first (PreviewContainerRead), and writes each file's data in
 * place of its stub. The contract, with rules R1-R10, is docs/backup-api.md.
 */
#ifndef DDP_DDPBACKUP_H
#define DDP_DDPBACKUP_H

#include <stdint.h>
#include <ddp/ddperror.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef uint32_t ULONG;
typedef uint32_t DWORD;
typedef int64_t  LONGLONG;
typedef uint8_t  BYTE;
/* A NUL-terminated UTF-8 path with '/' separators. */
typedef char    *BSTR;

#ifndef DDP_GUID_DEFINED
#define DDP_GUID_DEFINED
typedef struct _GUID {
    uint32_t Data1;
    uint16_t Data2;
    uint16_t Data3;
    uint8_t  Data4[8];
} GUID;
typedef GUID IID;
typedef GUID CLSID;
typedef const IID *REFIID;
#endif

typedef enum _DEDUP_BACKUP_SUPPORT_PARAM_TYPE {
    DEDUP_RECONSTRUCT_UNOPTIMIZED = 1,
    DEDUP_RECONSTRUCT_OPTIMIZED   = 2 /* reserved: RestoreFiles refuses it */
} DEDUP_BACKUP_SUPPORT_PARAM_TYPE;

/* One extent of a container file as it sits in the backup store.
 * ContainerIndex indexes the list handed to OrderContainersRestore.
 * Length == INT64_MAX means "to the end of the file". */
typedef struct _DEDUP_CONTAINER_EXTENT {
    ULONG    ContainerIndex;
    LONGLONG StartOffset;
    LONGLONG Length;
} DEDUP_CONTAINER_EXTENT;

/* Note: Length comes first, as on Windows. */
typedef struct _DDP_FILE_EXTENT {
    LONGLONG Length;
    LONGLONG Offset;
} DDP_FILE_EXTENT;

extern DDP_API const IID   IID_IUnknown;
extern DDP_API const IID   IID_IDedupReadFileCallback; /* 7BACC67A-2F1D-42D0-897E-6FF62DD533BB */
extern DDP_API const IID   IID_IDedupBackupSupport;    /* C719D963-2B2D-415E-ACF7-7EB7CA596FF4 */
extern DDP_API const CLSID CLSID_DedupBackupSupport;   /* 73D6B2AD-2984-4715-B2E3-924C149744DD */
extern DDP_API const IID   IID_IDdpListBackupFolder;   /* 8E5E2D05-C4EE-4611-9B77-649875736044 (ddp's own) */

static inline int IsEqualGUID(const GUID *a, const GUID *b)
{
    return a->Data1 == b->Data1 && a->Data2 == b->Data2 && a->Data3 == b->Data3 &&
           a->Data4[0] == b->Data4[0] && a->Data4[1] == b->Data4[1] &&
           a->Data4[2] == b->Data4[2] && a->Data4[3] == b->Data4[3] &&
           a->Data4[4] == b->Data4[4] && a->Data4[5] == b->Data4[5] &&
           a->Data4[6] == b->Data4[6] && a->Data4[7] == b->Data4[7];
}
#define IsEqualIID(a, b) IsEqualGUID((a), (b))

/* ---- IDedupReadFileCallback: implemented by the backup application ---- */

typedef struct IDedupReadFileCallback IDedupReadFileCallback;

typedef struct IDedupReadFileCallbackVtbl {
    HRESULT (*QueryInterface)(IDedupReadFileCallback *This, REFIID riid, void **ppvObject);
    ULONG   (*AddRef)(IDedupReadFileCallback *This);
    ULONG   (*Release)(IDedupReadFileCallback *This);

    /* Read bytes of a chunk-store file (metadata or container) from the backup
     * store. FileFullPath is relative to the root of the volume that was backed
     * up and begins with '/'. On success *ReturnedSize == SizeToRead. Flags is
     * reserved and 0. */
    HRESULT (*ReadBackupFile)(IDedupReadFileCallback *This, BSTR FileFullPath,
                              LONGLONG FileOffset, ULONG SizeToRead, BYTE *FileBuffer,
                              ULONG *ReturnedSize, DWORD Flags);

    /* ddp names the containers it needs; the application may answer with a
     * read plan (extents in the order that suits its media), allocated with
     * malloc (ddp frees it with free), or S_OK with no plan (NULL or 0). */
    HRESULT (*OrderContainersRestore)(IDedupReadFileCallback *This, ULONG NumberOfContainers,
                                      BSTR *ContainerPaths, ULONG *ReadPlanEntries,
                                      DEDUP_CONTAINER_EXTENT **ReadPlan);

    /* Before reading inside a container extent, ddp lists the reads it is
     * about to make there, in the order it will make them. */
    HRESULT (*PreviewContainerRead)(IDedupReadFileCallback *This, BSTR FileFullPath,
                                    ULONG NumberOfReads, DDP_FILE_EXTENT *ReadOffsets);
} IDedupReadFileCallbackVtbl;

struct IDedupReadFileCallback {
    const IDedupReadFileCallbackVtbl *lpVtbl;
};

#define IDedupReadFileCallback_QueryInterface(This, riid, ppv) ((This)->lpVtbl->QueryInterface(This, riid, ppv))
#define IDedupReadFileCallback_AddRef(This)  ((This)->lpVtbl->AddRef(This))
#define IDedupReadFileCallback_Release(This) ((This)->lpVtbl->Release(This))
#define IDedupReadFileCallback_ReadBackupFile(This, p, off, n, buf, got, fl) \
    ((This)->lpVtbl->ReadBackupFile(This, p, off, n, buf, got, fl))
#define IDedupReadFileCallback_OrderContainersRestore(This, n, paths, entries, plan) \
    ((This)->lpVtbl->OrderContainersRestore(This, n, paths, entries, plan))
#define IDedupReadFileCallback_PreviewContainerRead(This, p, n, ext) \
    ((This)->lpVtbl->PreviewContainerRead(This, p, n, ext))

/* ---- IDdpListBackupFolder: ddp's own, optional, beside IDedupReadFileCallback ----
 *
 * Not part of Windows' API. A Windows reparse point names its stream-map
 * container by id only, without the generation that is part of the file
 * name (Stream/<id>.<generation>.ccc), and IDedupReadFileCallback cannot list
 * a folder. A store that can answers QueryInterface(IID_IDdpListBackupFolder)
 * on its IDedupReadFileCallback with this interface (after an AddRef; ddp
 * calls Release when done). ddp's own stores (directory, tar, incremental
 * set) do. A store without it still works: ddp then probes a fixed, small
 * set of generations by reading each candidate's first bytes (docs/BACKUP.md).
 *
 * ListBackupFolder: the names (no '/') of the files directly in the folder
 * FolderFullPath of the backup (relative to the volume root, beginning with
 * '/', no trailing '/'), in any order. The callee allocates the array and
 * each name with malloc; the caller frees each name and the array with free.
 * A folder the backup does not hold: HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND)
 * (or S_OK with no names). */
typedef struct IDdpListBackupFolder IDdpListBackupFolder;

typedef struct IDdpListBackupFolderVtbl {
    HRESULT (*QueryInterface)(IDdpListBackupFolder *This, REFIID riid, void **ppvObject);
    ULONG   (*AddRef)(IDdpListBackupFolder *This);
    ULONG   (*Release)(IDdpListBackupFolder *This);
    HRESULT (*ListBackupFolder)(IDdpListBackupFolder *This, BSTR FolderFullPath, ULONG *NumberOfNames,
                                BSTR **Names);
} IDdpListBackupFolderVtbl;

struct IDdpListBackupFolder {
    const IDdpListBackupFolderVtbl *lpVtbl;
};

#define IDdpListBackupFolder_Release(This) ((This)->lpVtbl->Release(This))
#define IDdpListBackupFolder_ListBackupFolder(This, p, n, names) ((This)->lpVtbl->ListBackupFolder(This, p, n, names))

/* ---- IDedupBackupSupport: implemented by ddp ---- */

typedef struct IDedupBackupSupport IDedupBackupSupport;

typedef struct IDedupBackupSupportVtbl {
    HRESULT (*QueryInterface)(IDedupBackupSupport *This, REFIID riid, void **ppvObject);
    ULONG   (*AddRef)(IDedupBackupSupport *This);
    ULONG   (*Release)(IDedupBackupSupport *This);

    /* Reconstruct the files whose stubs sit at FileFullPaths (local paths)
     * from the backup store behind Store. NumberOfFiles <= 10000; Flags must
     * be DEDUP_RECONSTRUCT_UNOPTIMIZED; FileResults (optional) receives one
     * HRESULT per file. See docs/backup-api.md for every rule. */
    HRESULT (*RestoreFiles)(IDedupBackupSupport *This, ULONG NumberOfFiles, BSTR *FileFullPaths,
                            IDedupReadFileCallback *Store, DWORD Flags, HRESULT *FileResults);
} IDedupBackupSupportVtbl;

struct IDedupBackupSupport {
    const IDedupBackupSupportVtbl *lpVtbl;
};

#define IDedupBackupSupport_QueryInterface(This, riid, ppv) ((This)->lpVtbl->QueryInterface(This, riid, ppv))
#define IDedupBackupSupport_AddRef(This)  ((This)->lpVtbl->AddRef(This))
#define IDedupBackupSupport_Release(This) ((This)->lpVtbl->Release(This))
#define IDedupBackupSupport_RestoreFiles(This, n, paths, store, flags, results) \
    ((This)->lpVtbl->RestoreFiles(This, n, paths, store, flags, results))

#define DDP_MAX_RESTORE_FILES 10000u

/* The Linux stand-in for CoCreateInstance(CLSID_DedupBackupSupport, ...).
 * The object starts with a reference count of 1; Release frees it. */
DDP_API HRESULT DedupCreateBackupSupport(IDedupBackupSupport **out);

#ifdef __cplusplus
}
#endif
#endif /* DDP_DDPBACKUP_H */
