/* SPDX-License-Identifier: MIT */
/*
 * error.c: HRESULT messages, errno mapping, and the thread-local detail
 * message that names what went wrong (see util.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/util.h"

static const struct { HRESULT hr; const char *msg; } messages[] = {
    { S_OK, "success" },
    { S_FALSE, "the file is not a deduplicated file" },
    { E_NOTIMPL, "not implemented" },
    { E_POINTER, "invalid pointer" },
    { E_FAIL, "unspecified failure" },
    { E_OUTOFMEMORY, "out of memory" },
    { E_INVALIDARG, "invalid argument" },
    { E_NOINTERFACE, "no such interface" },
    { E_ABORT, "the operation was aborted" },
    { DDP_E_NOT_FOUND, "the requested object was not found" },
    { DDP_E_PATH_NOT_FOUND, "a container path was not found in the backup store" },
    { DDP_E_DISK_FULL, "not enough disk space" },
    { DDP_E_VOLUME_UNSUPPORTED, "the volume type is not supported" },
    { DDP_E_UNEXPECTED, "data deduplication encountered an unexpected error" },
    { DDP_E_FILE_SYSTEM_CORRUPT, "data deduplication encountered a file system corruption error" },
    { DDP_E_INVALID_STATE, "invalid state" },
    { DDP_E_INVALID_DATA, "the data is not valid" },
    { DDP_E_VOLUME_DEDUP_DISABLED, "the volume is not enabled for deduplication" },
    { DDP_E_UNSUPPORTED_COMPRESSION, "unsupported compression format" },
    { DDP_E_CANCELLED, "the operation was cancelled" },
    { DDP_E_FILE_IN_USE, "the file is in use" },
    { DDP_E_CHECKSUM_MISMATCH, "checksum mismatch" },
    { DDP_E_FILE_CORRUPT, "data deduplication encountered a file corruption error" },
    { DDP_E_JOB_COMPLETED_PARTIAL_SUCCESS, "the operation completed with some errors" },
    { DDP_E_UNSUPPORTED_VERSION, "unsupported chunk store version" },
    { DDP_E_JOB_ALREADY_RUNNING, "another job is already running on the volume" },
};

static const struct { uint32_t code; const char *msg; } win32_messages[] = {
    { ERROR_FILE_NOT_FOUND, "the file was not found" },
    { ERROR_PATH_NOT_FOUND, "the path was not found" },
    { ERROR_TOO_MANY_OPEN_FILES, "too many open files" },
    { ERROR_ACCESS_DENIED, "access denied" },
    { ERROR_NOT_ENOUGH_MEMORY, "not enough memory" },
    { ERROR_WRITE_PROTECT, "the file system is read-only" },
    { ERROR_READ_FAULT, "read fault" },
    { ERROR_HANDLE_EOF, "reached the end of the file" },
    { ERROR_NOT_SUPPORTED, "not supported" },
    { ERROR_FILE_EXISTS, "the file exists" },
    { ERROR_INVALID_PARAMETER, "invalid parameter" },
    { ERROR_DISK_FULL, "the disk is full" },
    { ERROR_DIR_NOT_EMPTY, "the directory is not empty" },
    { ERROR_ALREADY_EXISTS, "it already exists" },
    { ERROR_FILENAME_EXCED_RANGE, "the file name is too long" },
    { ERROR_DIRECTORY, "the directory name is invalid (a directory where a file belongs, or the reverse)" },
    { ERROR_CANT_RESOLVE_FILENAME, "too many levels of symbolic links" },
    { ERROR_IO_DEVICE, "I/O error" },
    { ERROR_DISK_QUOTA_EXCEEDED, "disk quota exceeded" },
    { ERROR_BAD_NETPATH, "the network path was not found" },
    { ERROR_UNEXP_NET_ERR, "an unexpected network error occurred" },
    { ERROR_NETNAME_DELETED, "the network connection was dropped" },
    { ERROR_BUSY, "the service is busy" },
    { ERROR_CONNECTION_REFUSED, "the remote computer refused the connection" },
    { ERROR_TIMEOUT, "the operation timed out" },
};

DDP_API const char *ddp_strerror(HRESULT hr)
{
    for (size_t i = 0; i < sizeof messages / sizeof messages[0]; i++)
        if (messages[i].hr == hr)
            return messages[i].msg;
    if (((uint32_t)hr & 0xFFFF0000u) == 0x80070000u) {
        uint32_t code = (uint32_t)hr & 0xFFFFu;
        for (size_t i = 0; i < sizeof win32_messages / sizeof win32_messages[0]; i++)
            if (win32_messages[i].code == code)
                return win32_messages[i].msg;
        return "system error";
    }
    return SUCCEEDED(hr) ? "success" : "unknown error";
}

DDP_API HRESULT ddp_hresult_from_errno(int err)
{
    switch (err) {
    case 0: return S_OK;
    case ENOENT: return HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND);
    case ENOTDIR: return HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND);
    case EACCES: case EPERM: return HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED);
    case EMFILE: case ENFILE: return HRESULT_FROM_WIN32(ERROR_TOO_MANY_OPEN_FILES);
    case ENOMEM: return E_OUTOFMEMORY;
    case EROFS: return HRESULT_FROM_WIN32(ERROR_WRITE_PROTECT);
    case ENOSPC: return HRESULT_FROM_WIN32(ERROR_DISK_FULL);
    case EDQUOT: return HRESULT_FROM_WIN32(ERROR_DISK_QUOTA_EXCEEDED);
    case EEXIST: return HRESULT_FROM_WIN32(ERROR_ALREADY_EXISTS);
    case ENOTEMPTY: return HRESULT_FROM_WIN32(ERROR_DIR_NOT_EMPTY);
    case ENAMETOOLONG: return HRESULT_FROM_WIN32(ERROR_FILENAME_EXCED_RANGE);
    case EISDIR: return HRESULT_FROM_WIN32(ERROR_DIRECTORY);
    case ELOOP: return HRESULT_FROM_WIN32(ERROR_CANT_RESOLVE_FILENAME);
    case EINVAL: return E_INVALIDARG;
    case EOPNOTSUPP: return HRESULT_FROM_WIN32(ERROR_NOT_SUPPORTED);
    case EIO: default: return HRESULT_FROM_WIN32(ERROR_IO_DEVICE);
    }
}

static _Thread_local char detail[1024];

DDP_API const char *ddp_error_detail(void) { return detail; }

void ddp_clear_error(void) { detail[0] = '\0'; }

void ddp_error_save(ddp_saved_error *se) { snprintf(se->text, sizeof se->text, "%s", detail); }

HRESULT ddp_first_error(HRESULT first, const ddp_saved_error *se, HRESULT next)
{
    if (SUCCEEDED(first)) return next;
    snprintf(detail, sizeof detail, "%s", se->text);
    return first;
}

/* The arguments may include ddp_error_detail() itself (to add context to
 * the message below), so format into a scratch buffer first. */
HRESULT ddp_fail(HRESULT hr, const char *fmt, ...)
{
    char msg[sizeof detail];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    memcpy(detail, msg, sizeof detail);
    return hr;
}

HRESULT ddp_fail_errno(int err, const char *fmt, ...)
{
    char head[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    return ddp_fail(ddp_hresult_from_errno(err), "%s: %s", head, strerror(err));
}
