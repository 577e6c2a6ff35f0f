/* SPDX-License-Identifier: MIT */
/*
 * ddp/ddperror.h: the one error type of libddp.
 *
 * Every fallible libddp call returns an HRESULT, spelled and numbered as in
 * Windows' winerror.h so that code written against Windows' Data
 * Deduplication API ports with few edits. Success codes are >= 0
 * (S_OK, S_FALSE); failures have the top bit set. ddp_strerror() gives a
 * one-line English message for every code the library returns.
 */
#ifndef DDP_DDPERROR_H
#define DDP_DDPERROR_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(DDP_BUILDING_LIBRARY)
#define DDP_API __attribute__((visibility("default")))
#else
#define DDP_API
#endif

typedef int32_t HRESULT;

#define SUCCEEDED(hr) (((HRESULT)(hr)) >= 0)
#define FAILED(hr)    (((HRESULT)(hr)) < 0)

#define S_OK           ((HRESULT)0x00000000L)
#define S_FALSE        ((HRESULT)0x00000001L)
#define E_NOTIMPL      ((HRESULT)0x80004001L)
#define E_POINTER      ((HRESULT)0x80004003L)
#define E_FAIL         ((HRESULT)0x80004005L)
#define E_OUTOFMEMORY  ((HRESULT)0x8007000EL)
#define E_INVALIDARG   ((HRESULT)0x80070057L)
#define E_NOINTERFACE  ((HRESULT)0x80004002L)
#define E_ABORT        ((HRESULT)0x80004004L)

/* Win32 error numbers that ddp maps errno values to (HRESULT_FROM_WIN32). */
#define ERROR_FILE_NOT_FOUND     2u
#define ERROR_PATH_NOT_FOUND     3u
#define ERROR_TOO_MANY_OPEN_FILES 4u
#define ERROR_ACCESS_DENIED      5u
#define ERROR_NOT_ENOUGH_MEMORY  8u
#define ERROR_WRITE_PROTECT      19u
#define ERROR_READ_FAULT         30u
#define ERROR_HANDLE_EOF         38u
#define ERROR_NOT_SUPPORTED      50u
#define ERROR_FILE_EXISTS        80u
#define ERROR_INVALID_PARAMETER  87u
#define ERROR_DISK_FULL          112u
#define ERROR_DIR_NOT_EMPTY      145u
#define ERROR_ALREADY_EXISTS     183u
#define ERROR_FILENAME_EXCED_RANGE 206u
#define ERROR_DIRECTORY          267u
#define ERROR_CANT_RESOLVE_FILENAME 1921u
#define ERROR_IO_DEVICE          1117u
#define ERROR_DISK_QUOTA_EXCEEDED 1295u
/* Network errors: what an S3 backup store answers (lib/backup/s3client.c). */
#define ERROR_BAD_NETPATH        53u    /* the host of the endpoint cannot be found */
#define ERROR_UNEXP_NET_ERR      59u    /* the service failed (HTTP 5xx) */
#define ERROR_NETNAME_DELETED    64u    /* the connection dropped */
#define ERROR_BUSY               170u   /* the service asks to slow down (HTTP 429, 503 SlowDown) */
#define ERROR_CONNECTION_REFUSED 1225u
#define ERROR_TIMEOUT            1460u

static inline HRESULT HRESULT_FROM_WIN32(uint32_t x)
{
    return (HRESULT)x <= 0 ? (HRESULT)x : (HRESULT)((x & 0x0000FFFFu) | 0x80070000u);
}

/* Data Deduplication codes (facility 0x056). Named as on Windows where the
 * reference page names them; the rest are the same family's values. */
#define DDP_E_NOT_FOUND                     ((HRESULT)0x80565301L)
#define DDP_E_PATH_NOT_FOUND                ((HRESULT)0x80565304L)
#define DDP_E_DISK_FULL                     ((HRESULT)0x8056530AL)
#define DDP_E_VOLUME_UNSUPPORTED            ((HRESULT)0x8056530BL)
#define DDP_E_UNEXPECTED                    ((HRESULT)0x8056530CL)
#define DDP_E_FILE_SYSTEM_CORRUPT           ((HRESULT)0x8056530EL)
#define DDP_E_INVALID_STATE                 ((HRESULT)0x80565319L)
#define DDP_E_INVALID_DATA                  ((HRESULT)0x8056531DL)
#define DDP_E_VOLUME_DEDUP_DISABLED         ((HRESULT)0x80565323L)
#define DDP_E_UNSUPPORTED_COMPRESSION       ((HRESULT)0x80565328L)
#define DDP_E_CANCELLED                     ((HRESULT)0x8056533DL)
#define DDP_E_FILE_IN_USE                   ((HRESULT)0x80565350L)
#define DDP_E_CHECKSUM_MISMATCH             ((HRESULT)0x80565354L)
#define DDP_E_FILE_CORRUPT                  ((HRESULT)0x80565355L)
#define DDP_E_JOB_COMPLETED_PARTIAL_SUCCESS ((HRESULT)0x80565356L)
#define DDP_E_UNSUPPORTED_VERSION           ((HRESULT)0x80565357L)
#define DDP_E_JOB_ALREADY_RUNNING           ((HRESULT)0x80565363L)

/* A one-line message for hr (never NULL; unknown codes get a generic text). */
DDP_API const char *ddp_strerror(HRESULT hr);

/* The HRESULT for a C errno value: HRESULT_FROM_WIN32 of the matching Win32
 * error (ENOENT -> 2, EACCES/EPERM -> 5, ENOSPC -> 112, ...). */
DDP_API HRESULT ddp_hresult_from_errno(int err);

/* The detail of this thread's last failure: one line naming what was wrong
 * ("stub /srv/a.iso: MAC check failed"), or "" when there is none. */
DDP_API const char *ddp_error_detail(void);

#ifdef __cplusplus
}
#endif
#endif /* DDP_DDPERROR_H */
