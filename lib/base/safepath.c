/*
 * safepath.c: reaching a file beneath a directory that is held open, never
 * outside it (safepath.h). The path is walked one component at a time with
 * openat(O_NOFOLLOW), so neither a crafted path ("..", absolute) nor a
 * symbolic link planted anywhere on the way can lead out of the root; the
 * last component is opened O_NONBLOCK (a FIFO cannot hang the caller) and
 * must prove to be a regular file (or a directory, when allowed) by fstat.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/safepath.h"
#include "base/util.h"

static HRESULT open_error(int dfd, const char *comp, int err, int last, const char *rel)
{
    struct stat st;
    if (fstatat(dfd, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
        return ddp_fail(HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED),
                        "backup store: /%s: symbolic link '%s' refused", rel, comp);
    if (err == ENOENT || err == ENOTDIR) {
        if (!last || err == ENOTDIR)
            return ddp_fail(HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND),
                            "backup store: /%s: directory '%s' not found", rel, comp);
        return ddp_fail(HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND), "backup store: /%s: no such file", rel);
    }
    return ddp_fail_errno(err, "backup store: opening /%s", rel);
}

HRESULT ddp_open_beneath(int rootfd, const char *rel, int allow_dir, int *out, struct stat *st)
{
    *out = -1;
    int dfd = rootfd;
    const char *p = rel;
    char comp[NAME_MAX + 1];
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0 || len > NAME_MAX || (len == 1 && p[0] == '.') ||
            (len == 2 && p[0] == '.' && p[1] == '.')) {
            if (dfd != rootfd) close(dfd);
            return ddp_fail(E_INVALIDARG, "backup store: bad path /%s", rel);
        }
        memcpy(comp, p, len);
        comp[len] = '\0';
        int last = slash == NULL;
        int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | (last ? O_NONBLOCK : O_DIRECTORY);
        int fd = openat(dfd, comp, flags);
        if (fd < 0) {
            int err = errno;
            HRESULT hr = open_error(dfd, comp, err, last, rel);
            if (dfd != rootfd) close(dfd);
            return hr;
        }
        if (dfd != rootfd) close(dfd);
        if (last) {
            struct stat sb;
            if (fstat(fd, &sb) != 0) {
                HRESULT hr = ddp_fail_errno(errno, "backup store: /%s", rel);
                close(fd);
                return hr;
            }
            if (S_ISDIR(sb.st_mode) && !allow_dir) {
                close(fd);
                return ddp_fail(ddp_hresult_from_errno(EISDIR), "backup store: /%s is a directory", rel);
            }
            if (!S_ISREG(sb.st_mode) && !S_ISDIR(sb.st_mode)) {
                close(fd);
                return ddp_fail(HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED),
                                "backup store: /%s is not a regular file", rel);
            }
            int fl = fcntl(fd, F_GETFL);
            if (fl >= 0) (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
            if (st) *st = sb;
            *out = fd;
            return S_OK;
        }
        dfd = fd;
        p = slash + 1;
    }
}

HRESULT ddp_path_check_absolute(const char *path)
{
    if (!path) return ddp_fail(E_INVALIDARG, "backup store: NULL path");
    size_t n = strnlen(path, PATH_MAX + 1);
    if (n == 0) return ddp_fail(E_INVALIDARG, "backup store: empty path");
    if (n > PATH_MAX) return ddp_fail(E_INVALIDARG, "backup store: path longer than %d bytes", PATH_MAX);
    if (path[0] != '/') return ddp_fail(E_INVALIDARG, "backup store: path '%s' does not start with '/'", path);
    const char *p = path + 1;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0)
            return ddp_fail(E_INVALIDARG, "backup store: path '%s' has an empty component", path);
        if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
            return ddp_fail(E_INVALIDARG, "backup store: path '%s' has a '.' or '..' component", path);
        if (len > NAME_MAX)
            return ddp_fail(E_INVALIDARG, "backup store: path '%s' has a component longer than %d bytes",
                            path, NAME_MAX);
        if (!slash) break;
        p = slash + 1;
    }
    return S_OK;
}
