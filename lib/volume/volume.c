/* SPDX-License-Identifier: MIT */
/*
 * volume.c: enabling, opening and locking a volume; its settings; the
 * chunk store behind it; the jobs log.
 *
 * A volume is a directory with a .ddp/ directory. Enabling writes the
 * identity (store id + stub key) and the default settings, and creates an
 * empty chunk store, each file durably (temporary file, fsync, rename,
 * directory fsync), the identity last: a crash leaves either no volume or a
 * whole one (a .ddp without an identity is not a volume and can be enabled
 * again). A job holds an flock on State/job.lock for its whole run; a second
 * job gets DDP_E_JOB_ALREADY_RUNNING.
 */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <fts.h>
#include <signal.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "base/safepath.h"
#include "base/util.h"
#include "store/stub.h"
#include "store/chunkread.h"
#include "volume/maintenance.h"
#include "volume/volume.h"

#define IDENTITY_FILE "identity"
#define SETTINGS_FILE "settings.conf"

static int parse_usage(const char *s)
{
    if (!s || !strcasecmp(s, "Default")) return DDP_USAGE_DEFAULT;
    if (!strcasecmp(s, "HyperV")) return DDP_USAGE_HYPERV;
    if (!strcasecmp(s, "Backup")) return DDP_USAGE_BACKUP;
    return -1;
}

static char *store_dir_for(const char *ddp_dir, const uint8_t store_id[DDP_STORE_ID_SIZE])
{
    char guid[39];
    ddp_guid_format(store_id, guid);
    return ddp_xasprintf("%s/ChunkStore/%s.ddp", ddp_dir, guid);
}

DDP_API HRESULT ddp_volume_enable(const char *path, const char *usage_type)
{
    ddp_clear_error();
    int usage = parse_usage(usage_type);
    if (usage < 0)
        return ddp_fail(E_INVALIDARG, "usage type '%s': expected Default, HyperV or Backup", usage_type);
    struct stat st;
    if (stat(path, &st) != 0) return ddp_fail_errno(errno, "volume %s", path);
    if (!S_ISDIR(st.st_mode))
        return ddp_fail(HRESULT_FROM_WIN32(ERROR_DIRECTORY), "volume %s: not a directory", path);

    char *root = realpath(path, NULL);
    if (!root) return ddp_fail_errno(errno, "volume %s", path);
    char *ddp_dir = ddp_path_join(root, ".ddp");
    char *settings_dir = ddp_path_join(ddp_dir, "Settings");
    char *identity_path = ddp_path_join(settings_dir, IDENTITY_FILE);
    char *settings_path = ddp_path_join(settings_dir, SETTINGS_FILE);
    char *state_dir = ddp_path_join(ddp_dir, "State");
    char *store_dir = NULL;
    char *text = NULL;
    size_t text_len = 0;
    ddp_settings s;
    ddp_settings_defaults(&s, usage);
    HRESULT hr = S_OK;

    if (access(identity_path, F_OK) == 0) {
        hr = ddp_fail(HRESULT_FROM_WIN32(ERROR_ALREADY_EXISTS), "%s is already enabled for deduplication", root);
        goto out;
    }
    if (FAILED(hr = ddp_mkdir_p(settings_dir, 0700))) goto out;
    if (FAILED(hr = ddp_mkdir_p(state_dir, 0700))) goto out;
    chmod(ddp_dir, 0700);

    ddp_identity id;
    if (FAILED(hr = ddp_identity_generate(&id))) goto out;
    store_dir = store_dir_for(ddp_dir, id.store_id);
    if (FAILED(hr = ddp_chunkstore_create(store_dir, id.store_id))) goto out;
    if (FAILED(hr = ddp_settings_encode(&s, &text, &text_len))) goto out;
    if (FAILED(hr = ddp_write_file_atomic(settings_path, text, text_len, 0600))) goto out;
    uint8_t idbuf[DDP_IDENTITY_SIZE];
    ddp_identity_encode(&id, idbuf);
    if (FAILED(hr = ddp_write_file_atomic(identity_path, idbuf, sizeof idbuf, 0600))) goto out;
    if (FAILED(hr = ddp_fsync_dir(ddp_dir))) goto out;
    hr = ddp_fsync_dir(root);
out:
    ddp_settings_free(&s);
    free(text);
    free(root);
    free(ddp_dir);
    free(settings_dir);
    free(identity_path);
    free(settings_path);
    free(state_dir);
    free(store_dir);
    return hr;
}

static HRESULT load_settings(ddp_volume *v)
{
    char *p = ddp_path_join(v->settings_dir, SETTINGS_FILE);
    uint8_t *buf = NULL;
    size_t n = 0;
    HRESULT hr = ddp_read_file(p, 1 << 20, &buf, &n);
    if (SUCCEEDED(hr)) hr = ddp_settings_decode((const char *)buf, n, &v->settings);
    free(buf);
    free(p);
    return hr;
}

static HRESULT take_lock(ddp_volume *v)
{
    char *p = ddp_path_join(v->state_dir, "job.lock");
    /* On a read-only file system (a snapshot being backed up) no job can
     * write, so the lock only keeps readers apart: taken when the file is
     * there, without writing it. */
    int fd = v->readonly ? open(p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
                         : open(p, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 && v->readonly) {
        free(p);
        return S_OK;
    }
    if (fd < 0) {
        HRESULT hr = ddp_fail_errno(errno, "job lock %s", p);
        free(p);
        return hr;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        HRESULT hr = e == EWOULDBLOCK
                         ? ddp_fail(DDP_E_JOB_ALREADY_RUNNING, "%s: another ddp job is running on this volume", v->root)
                         : ddp_fail_errno(e, "job lock %s", p);
        free(p);
        return hr;
    }
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (!v->readonly && ftruncate(fd, 0) == 0 && pwrite(fd, pid, (size_t)len, 0) < 0) { /* the pid is informational */ }
    free(p);
    v->lock_fd = fd;
    return S_OK;
}

/* When did process pid start (seconds since the epoch)? 0 when unknown. */
static time_t process_start(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    if (!p) return 0;
    unsigned long long ticks = 0;
    /* Fields after the name: state is field 3, starttime field 22. */
    for (int field = 2; field < 22 && p; field++) p = strchr(p + 1, ' ');
    if (!p) return 0;
    char *end;
    errno = 0;
    ticks = strtoull(p + 1, &end, 10);
    if (errno || end == p + 1) return 0;
    FILE *f = fopen("/proc/stat", "re");
    if (!f) return 0;
    unsigned long long btime = 0;
    char line[256];
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "btime ", 6)) {
            btime = strtoull(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    long hz = sysconf(_SC_CLK_TCK);
    if (!btime || hz <= 0) return 0;
    return (time_t)(btime + ticks / (unsigned long long)hz);
}

/* Remove NAME.tmp.PID files (ddp_write_file_atomic's) in dir whose writer
 * is gone: a catalog, stamp or plan being rewritten when a crash came. The
 * file they were to replace is intact (the rename never happened). A writer
 * holds an flock on its temporary until the rename, so one that nobody
 * holds is a leftover when its PID is dead, when the process that has that
 * PID now started after the file was written (the PID was reused: pid_max
 * is often 32768), or when it is more than two seconds old: a writer locks
 * its temporary before it has a name (O_TMPFILE), or, on a file system
 * without O_TMPFILE, microseconds after creating it. */
static void sweep_atomic_temps(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    time_t now = time(NULL);
    while ((de = readdir(d)) != NULL) {
        const char *m = strstr(de->d_name, ".tmp.");
        if (!m || m == de->d_name) continue;
        char *end;
        long pid = strtol(m + 5, &end, 10);
        if (*end != '\0' || pid <= 0 || end == m + 5) continue;
        if (pid == (long)getpid()) continue;
        int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) continue;
        struct stat st;
        if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || flock(fd, LOCK_EX | LOCK_NB) != 0) {
            close(fd);
            continue;
        }
        int gone = kill((pid_t)pid, 0) != 0 && errno == ESRCH;
        if (!gone) {
            time_t started = process_start(pid);
            gone = (started && started > st.st_mtime + 1) || st.st_mtime < now - 2;
        }
        if (gone) (void)unlinkat(dirfd(d), de->d_name, 0);
        close(fd);
    }
    closedir(d);
}

DDP_API HRESULT ddp_volume_open(const char *path, int flags, ddp_volume **out)
{
    ddp_clear_error();
    if (!path || !out) return E_POINTER;
    *out = NULL;
    char *root = realpath(path, NULL);
    if (!root) return ddp_fail_errno(errno, "volume %s", path);
    ddp_volume *v = ddp_xcalloc(1, sizeof *v);
    v->root = root;
    v->lock_fd = -1;
    v->temp_fd = -1;
    v->root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    v->flags = flags;
    pthread_mutex_init(&v->store_mu, NULL);
    v->ddp_dir = ddp_path_join(root, ".ddp");
    v->settings_dir = ddp_path_join(v->ddp_dir, "Settings");
    v->state_dir = ddp_path_join(v->ddp_dir, "State");
    ddp_settings_defaults(&v->settings, DDP_USAGE_DEFAULT);

    char *idpath = ddp_path_join(v->settings_dir, IDENTITY_FILE);
    uint8_t *buf = NULL;
    size_t n = 0;
    HRESULT hr = S_OK;
    struct statvfs vfs;
    if (v->root_fd < 0) hr = ddp_fail_errno(errno, "volume %s", root);
    else if (fstatvfs(v->root_fd, &vfs) == 0 && (vfs.f_flag & ST_RDONLY)) v->readonly = 1;
    char *store_probe = ddp_path_join(v->ddp_dir, "ChunkStore");
    struct stat idst;
    /* A .ddp this user may not enter (it is 0700) says nothing about the
     * volume's state: say what it is, never advise a job. */
    int denied = stat(idpath, &idst) != 0 && (errno == EACCES || errno == EPERM);
    int leftover = !denied && access(idpath, F_OK) != 0 && access(v->ddp_dir, F_OK) == 0 && access(store_probe, F_OK) != 0;
    free(store_probe);
    if (FAILED(hr)) {
        /* the root cannot be opened */
    } else if (denied) {
        hr = ddp_fail(HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED),
                      "permission denied: %s (run as the volume's owner or root)", v->ddp_dir);
    } else if (leftover) {
        hr = ddp_fail(DDP_E_VOLUME_DEDUP_DISABLED,
                      "%s is not a ddp volume: its .ddp has no identity and no chunk store (an unoptimization "
                      "stopped near its end; 'ddp unoptimize %s' removes the rest)", root, path);
    } else if (access(idpath, F_OK) != 0) {
        hr = ddp_fail(DDP_E_VOLUME_DEDUP_DISABLED, "%s is not a ddp volume (no .ddp/Settings/identity; run 'ddp enable %s')",
                      root, path);
    } else if (SUCCEEDED(hr = ddp_read_file(idpath, 4096, &buf, &n))) {
        hr = ddp_identity_decode(buf, n, &v->id);
        if (FAILED(hr)) hr = ddp_fail(hr, "%s: %s", idpath, ddp_error_detail());
    }
    free(buf);
    free(idpath);
    if (SUCCEEDED(hr)) {
        ddp_settings_free(&v->settings);
        hr = load_settings(v);
    }
    if (SUCCEEDED(hr)) v->store_dir = store_dir_for(v->ddp_dir, v->id.store_id);
    if (SUCCEEDED(hr) && (flags & DDP_OPEN_JOB)) hr = take_lock(v);
    if (SUCCEEDED(hr) && (flags & DDP_OPEN_JOB) && !v->readonly) {
        sweep_atomic_temps(v->settings_dir);
        sweep_atomic_temps(v->state_dir);
        sweep_atomic_temps(v->store_dir);
        /* Replacements a killed job or command was building (volume/replace.c). */
        int tdir;
        if (SUCCEEDED(ddp_volume_tempdir(v, &tdir))) (void)ddp_tmpdir_sweep(tdir);
        ddp_clear_error();
    }
    if (FAILED(hr)) {
        ddp_volume_close(v);
        return hr;
    }
    *out = v;
    return S_OK;
}

DDP_API HRESULT ddp_volume_open_containing(const char *path, int flags, ddp_volume **out)
{
    ddp_clear_error();
    char *abs = realpath(path, NULL);
    if (!abs) return ddp_fail_errno(errno, "%s", path);
    struct stat st;
    if (stat(abs, &st) == 0 && !S_ISDIR(st.st_mode)) {
        char *slash = strrchr(abs, '/');
        if (slash == abs) slash[1] = '\0';
        else *slash = '\0';
    }
    for (;;) {
        char *probe = ddp_path_join(abs, ".ddp/Settings/" IDENTITY_FILE);
        int found = access(probe, F_OK) == 0;
        if (!found && errno == EACCES) { /* a .ddp this user may not enter: ddp_volume_open says so */
            char *dd = ddp_path_join(abs, ".ddp");
            struct stat dst;
            found = lstat(dd, &dst) == 0 && S_ISDIR(dst.st_mode);
            free(dd);
        }
        free(probe);
        if (found) {
            HRESULT hr = ddp_volume_open(abs, flags, out);
            free(abs);
            return hr;
        }
        char *slash = strrchr(abs, '/');
        if (!slash || (slash == abs && abs[1] == '\0')) break;
        if (slash == abs) slash[1] = '\0';
        else *slash = '\0';
    }
    free(abs);
    return ddp_fail(DDP_E_VOLUME_DEDUP_DISABLED, "%s is not inside a ddp volume", path);
}

DDP_API void ddp_volume_close(ddp_volume *v)
{
    if (!v) return;
    if (v->store) {
        HRESULT hr = ddp_chunkstore_close(v->store);
        if (FAILED(hr)) fprintf(stderr, "ddp: closing the chunk store of %s: %s\n", v->root, ddp_error_detail());
    }
    if (v->lock_fd >= 0) close(v->lock_fd);
    if (v->root_fd >= 0) close(v->root_fd);
    if (v->temp_fd >= 0) close(v->temp_fd);
    pthread_mutex_destroy(&v->store_mu);
    ddp_settings_free(&v->settings);
    free(v->root);
    free(v->ddp_dir);
    free(v->settings_dir);
    free(v->state_dir);
    free(v->store_dir);
    free(v);
}

DDP_API const char *ddp_volume_root(const ddp_volume *v) { return v->root; }

HRESULT ddp_volume_chunkreader(ddp_volume *v, ddp_chunkreader **out)
{
    if (!v || !out) return E_POINTER;
    *out = NULL;
    ddp_chunkstore *cs = NULL;
    HRESULT hr = ddp_volume_store(v, &cs);
    if (FAILED(hr)) return hr;
    return ddp_chunkreader_open(cs, v->store_dir, v->id.store_id, out);
}

HRESULT ddp_volume_store(ddp_volume *v, ddp_chunkstore **out)
{
    HRESULT hr = S_OK;
    pthread_mutex_lock(&v->store_mu);
    /* A garbage collection that was interrupted left State/gc.plan: a job
     * finishes it before anything else (volume/gc.c). That retires the
     * records the plan names and deletes the index, which the writable open
     * just below then rebuilds from the containers (DEAD records are not
     * chunks, so they are not indexed). */
    int writable = (v->flags & DDP_OPEN_JOB) && !v->readonly;
    if (!v->store && writable) hr = ddp_gc_resume(v->store_dir, v->state_dir, v->id.store_id);
    if (!v->store && SUCCEEDED(hr))
        hr = ddp_chunkstore_open(v->store_dir, v->state_dir, v->id.store_id,
                                 writable ? DDP_STORE_WRITABLE : DDP_STORE_READONLY,
                                 v->settings.container_size_limit, &v->store);
    *out = v->store;
    pthread_mutex_unlock(&v->store_mu);
    return hr;
}

int ddp_volume_may_be_stub(const struct stat *st)
{
    return S_ISREG(st->st_mode) && st->st_size >= DDP_STUB_PREFIX_SIZE && st->st_size <= DDP_STUB_SIZE;
}

HRESULT ddp_volume_require_job(const ddp_volume *v)
{
    if (!(v->flags & DDP_OPEN_JOB) || (v->lock_fd < 0 && !v->readonly))
        return ddp_fail(DDP_E_INVALID_STATE, "the volume must be opened for a job (DDP_OPEN_JOB)");
    return S_OK;
}

HRESULT ddp_volume_require_writable(const ddp_volume *v, const char *what)
{
    if (v->readonly)
        return ddp_fail(HRESULT_FROM_WIN32(ERROR_WRITE_PROTECT),
                        "%s: the file system is mounted read-only; %s writes to the volume (scrub without --repair "
                        "and backup read a read-only volume)", v->root, what);
    return S_OK;
}

HRESULT ddp_volume_tempdir(ddp_volume *v, int *out)
{
    *out = -1;
    HRESULT hr = ddp_volume_require_writable(v, "replacing a file");
    if (FAILED(hr)) return hr;
    pthread_mutex_lock(&v->store_mu);
    if (v->temp_fd < 0) {
        int dfd = ddp_openat_beneath(v->root_fd, ".ddp", O_RDONLY | O_DIRECTORY, 0);
        if (dfd < 0) hr = ddp_fail_errno(errno, "%s", v->ddp_dir);
        if (SUCCEEDED(hr) && mkdirat(dfd, "Temp", 0700) != 0 && errno != EEXIST)
            hr = ddp_fail_errno(errno, "creating %s/Temp", v->ddp_dir);
        int tfd = -1;
        if (SUCCEEDED(hr) && (tfd = ddp_openat_beneath(dfd, "Temp", O_RDONLY | O_DIRECTORY, 0)) < 0)
            hr = ddp_fail_errno(errno, "%s/Temp", v->ddp_dir);
        struct stat st, dst;
        if (SUCCEEDED(hr) && (fstat(tfd, &st) != 0 || fstat(dfd, &dst) != 0))
            hr = ddp_fail_errno(errno, "%s/Temp", v->ddp_dir);
        /* Nobody but the volume's owner (who owns .ddp) and root may reach
         * what is built there. */
        int trusted = SUCCEEDED(hr) && (st.st_uid == geteuid() || st.st_uid == 0 || st.st_uid == dst.st_uid);
        if (SUCCEEDED(hr) && !trusted)
            hr = ddp_fail(HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED), "%s/Temp belongs to uid %u, not to the volume's owner",
                          v->ddp_dir, (unsigned)st.st_uid);
        if (SUCCEEDED(hr) && (st.st_mode & 077) && fchmod(tfd, 0700) != 0)
            hr = ddp_fail(HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED), "%s/Temp is open to others (mode %o)", v->ddp_dir,
                          (unsigned)(st.st_mode & 07777));
        if (dfd >= 0) close(dfd);
        if (SUCCEEDED(hr)) v->temp_fd = tfd;
        else if (tfd >= 0) close(tfd);
    }
    *out = v->temp_fd;
    pthread_mutex_unlock(&v->store_mu);
    return hr;
}

HRESULT ddp_volume_locate(ddp_volume *v, const char *path, int *dirfd, char **name)
{
    *dirfd = -1;
    *name = NULL;
    if (!path || !*path) return ddp_fail(E_INVALIDARG, "an empty path");
    char *abs = NULL;
    if (path[0] == '/') {
        abs = ddp_strdup(path);
    } else {
        char *cwd = getcwd(NULL, 0);
        if (!cwd) return ddp_fail_errno(errno, "%s", path);
        abs = ddp_path_join(cwd, path);
        free(cwd);
    }
    size_t n = strlen(abs);
    while (n > 1 && abs[n - 1] == '/') abs[--n] = '\0';
    size_t rl = strlen(v->root);
    const char *rel = NULL;
    char *real = NULL;
    if (strncmp(abs, v->root, rl) == 0 && abs[rl] == '/' && !strstr(abs + rl, "/./") && !strstr(abs + rl, "/../") &&
        !strstr(abs + rl, "//")) {
        rel = abs + rl + 1;
    } else {
        /* Named through a link or with ".." (by whoever runs ddp): the
         * directory as it resolves now, then the rest beneath the root. */
        char *slash = strrchr(abs, '/');
        *slash = '\0';
        char *dir = realpath(slash == abs ? "/" : abs, NULL);
        if (dir) {
            real = ddp_xasprintf("%s/%s", strcmp(dir, "/") ? dir : "", slash + 1);
            free(dir);
            if (strncmp(real, v->root, rl) == 0 && real[rl] == '/') rel = real + rl + 1;
        }
        *slash = '/';
    }
    HRESULT hr;
    if (!rel || !*rel || strcmp(rel, ".ddp") == 0 || strncmp(rel, ".ddp/", 5) == 0) {
        hr = ddp_fail(E_INVALIDARG, "%s is not a file of the volume %s", path, v->root);
    } else {
        const char *base = NULL;
        hr = ddp_open_parent_beneath(v->root_fd, rel, dirfd, &base);
        if (SUCCEEDED(hr)) *name = ddp_strdup(base);
        else hr = ddp_fail(hr, "%s: %s", path, ddp_error_detail());
    }
    free(abs);
    free(real);
    return hr;
}

HRESULT ddp_volume_open_regular(ddp_volume *v, const char *path, int oflags, const struct stat *expect, int *fd,
                                struct stat *st)
{
    *fd = -1;
    int dirfd = -1;
    char *name = NULL;
    HRESULT hr = ddp_volume_locate(v, path, &dirfd, &name);
    if (FAILED(hr)) return hr;
    hr = ddp_open_regular_at(dirfd, name, oflags, expect, fd, st);
    if (hr == HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED) && (oflags & O_NOATIME)) {
        ddp_clear_error();
        hr = ddp_open_regular_at(dirfd, name, oflags & ~O_NOATIME, expect, fd, st);
    }
    if (FAILED(hr)) hr = ddp_fail(hr, "%s: %s", path, ddp_error_detail());
    close(dirfd);
    free(name);
    return hr;
}

DDP_API HRESULT ddp_volume_rebuild_index(ddp_volume *v)
{
    ddp_clear_error();
    HRESULT hr = ddp_volume_require_job(v);
    if (FAILED(hr)) return hr;
    ddp_chunkstore *cs = NULL;
    hr = ddp_volume_store(v, &cs);
    if (SUCCEEDED(hr)) hr = ddp_chunkstore_rebuild_index(cs);
    if (SUCCEEDED(hr)) hr = ddp_chunkstore_checkpoint(cs);
    return hr;
}

DDP_API HRESULT ddp_volume_set(ddp_volume *v, const char *key, const char *value)
{
    ddp_clear_error();
    ddp_settings copy;
    char *text = NULL;
    size_t n = 0;
    /* Validate on a fresh decode of the file so a failed set changes nothing. */
    char *p = ddp_path_join(v->settings_dir, SETTINGS_FILE);
    uint8_t *buf = NULL;
    size_t blen = 0;
    HRESULT hr = ddp_read_file(p, 1 << 20, &buf, &blen);
    if (SUCCEEDED(hr)) hr = ddp_settings_decode((const char *)buf, blen, &copy);
    free(buf);
    if (FAILED(hr)) { free(p); return hr; }
    hr = ddp_settings_set(&copy, key, value);
    if (SUCCEEDED(hr)) hr = ddp_settings_encode(&copy, &text, &n);
    if (SUCCEEDED(hr)) hr = ddp_write_file_atomic(p, text, n, 0600);
    if (SUCCEEDED(hr)) {
        ddp_settings_free(&v->settings);
        v->settings = copy;
    } else {
        ddp_settings_free(&copy);
    }
    free(text);
    free(p);
    return hr;
}

DDP_API HRESULT ddp_volume_get(ddp_volume *v, const char *key, char **value)
{
    ddp_clear_error();
    return ddp_settings_get(&v->settings, key, value);
}

DDP_API const char *const *ddp_setting_keys(void) { return ddp_settings_keys(); }

void ddp_volume_log_job(ddp_volume *v, const char *line)
{
    char *p = ddp_path_join(v->state_dir, "jobs.log");
    int fd = open(p, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    free(p);
    if (fd < 0) return;
    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
    char *full = ddp_xasprintf("%s %s\n", stamp, line);
    if (write(fd, full, strlen(full)) < 0) { /* the log is informational */ }
    free(full);
    close(fd);
}

int ddp_volume_is_internal(const ddp_volume *v, const char *abspath)
{
    size_t n = strlen(v->ddp_dir);
    return strncmp(abspath, v->ddp_dir, n) == 0 && (abspath[n] == '\0' || abspath[n] == '/');
}

HRESULT ddp_volume_read_stub(ddp_volume *v, int fd, const char *path, ddp_stub *s)
{
    int own = fd < 0;
    if (own) {
        /* Beneath the root, never through a link, O_NONBLOCK (a FIFO does
         * not hang the job), regular by fstat. */
        HRESULT ho = ddp_volume_open_regular(v, path, O_RDONLY, NULL, &fd, NULL);
        if (FAILED(ho)) return ho;
    }
    struct stat st;
    HRESULT hr = S_FALSE;
    if (fstat(fd, &st) != 0) {
        hr = ddp_fail_errno(errno, "%s", path);
    } else if (st.st_size > DDP_STUB_SIZE) {
        /* A stub someone appended to (not through ddp mount): its bytes are
         * not the file's content, and the content is not all there. */
        uint64_t appended = 0;
        hr = ddp_volume_read_appended_stub(v, fd, &st, path, s, &appended);
        if (hr == S_OK)
            hr = ddp_fail(DDP_E_FILE_CORRUPT,
                          "%s: %llu bytes were appended to a stub (written to it directly, not through ddp "
                          "mount); `ddp scrub --repair` restores its content with them",
                          path, (unsigned long long)appended);
    } else if (ddp_volume_may_be_stub(&st)) {
        /* A file that begins like a stub claims to be one: if it does not
         * decode it is malformed or forged, and reported as such. */
        uint8_t buf[DDP_STUB_SIZE];
        size_t n = (size_t)st.st_size;
        hr = ddp_pread_exact(fd, buf, n, 0, path);
        if (SUCCEEDED(hr)) {
            if (!ddp_stub_has_prefix(buf, n)) {
                hr = S_FALSE;
            } else {
                hr = ddp_stub_decode(buf, n, v->id.key, s);
                if (FAILED(hr)) hr = ddp_fail(hr, "%s: %s", path, ddp_error_detail());
                else if (memcmp(s->store_id, v->id.store_id, DDP_STORE_ID_SIZE) != 0)
                    hr = ddp_fail(DDP_E_INVALID_DATA, "%s: stub of another chunk store", path);
            }
        }
    }
    if (own) close(fd);
    return hr;
}

HRESULT ddp_volume_read_appended_stub(ddp_volume *v, int fd, const struct stat *st, const char *path, ddp_stub *s,
                                      uint64_t *appended)
{
    *appended = 0;
    if (!S_ISREG(st->st_mode) || st->st_size <= DDP_STUB_SIZE) return S_FALSE;
    uint8_t buf[DDP_STUB_SIZE];
    size_t n = 0;
    HRESULT hr = ddp_pread_upto(fd, buf, sizeof buf, 0, &n, path);
    if (FAILED(hr)) return hr;
    if (n != sizeof buf || !ddp_stub_has_prefix(buf, n)) return S_FALSE;
    /* Only a stub this volume wrote (its MAC verifies): a file that merely
     * begins like one is an ordinary file. */
    ddp_stub t;
    if (FAILED(ddp_stub_decode(buf, n, v->id.key, &t)) || memcmp(t.store_id, v->id.store_id, DDP_STORE_ID_SIZE) != 0) {
        ddp_clear_error();
        return S_FALSE;
    }
    *s = t;
    *appended = (uint64_t)st->st_size - DDP_STUB_SIZE;
    return S_OK;
}

/* The directories a walk went through, as they were when it read them. */
typedef struct dirseen {
    char *path;
    struct stat st;
} dirseen;
typedef struct dirset {
    dirseen *d;
    size_t n, cap;
} dirset;

static HRESULT walk_tree(ddp_volume *v, const char *top, ddp_walk_fn fn, ddp_walk_fn on_error, void *ctx, dirset *ds)
{
    char *roots[2] = { (char *)top, NULL };
    FTS *fts = fts_open(roots, FTS_PHYSICAL | FTS_NOCHDIR | FTS_XDEV, NULL);
    if (!fts) return ddp_fail_errno(errno, "walking %s", top);
    HRESULT hr = S_OK;
    FTSENT *e;
    while (SUCCEEDED(hr)) {
        errno = 0;
        if ((e = fts_read(fts)) == NULL) {
            if (errno != 0) hr = ddp_fail_errno(errno, "walking %s", top);
            break;
        }
        switch (e->fts_info) {
        case FTS_D:
            if (strcmp(e->fts_path, v->ddp_dir) == 0) {
                fts_set(fts, e, FTS_SKIP);
            } else if (ds) {
                if (ds->n == ds->cap) {
                    ds->cap = ds->cap ? 2 * ds->cap : 64;
                    ds->d = ddp_xrealloc(ds->d, ds->cap * sizeof *ds->d);
                }
                ds->d[ds->n].path = ddp_strdup(e->fts_path);
                ds->d[ds->n].st = *e->fts_statp;
                ds->n++;
            }
            break;
        case FTS_DNR:
        case FTS_ERR:
        case FTS_NS:
            if (e->fts_errno == ENOENT) break; /* removed while we walked */
            hr = on_error ? on_error(v, e, ctx)
                          : ddp_fail_errno(e->fts_errno, "cannot read %s; stopped, since a stub in it would go unseen",
                                           e->fts_path);
            break;
        case FTS_F:
            hr = fn(v, e, ctx);
            break;
        default:
            break; /* symlinks, devices, sockets, fifos, directories after their files */
        }
    }
    fts_close(fts);
    return hr;
}

HRESULT ddp_volume_walk(ddp_volume *v, ddp_walk_fn fn, ddp_walk_fn on_error, void *ctx)
{
    return walk_tree(v, v->root, fn, on_error, ctx, NULL);
}

/* Did the directory change since the walk read it (an entry added, removed
 * or renamed changes its mtime and ctime; a directory put in its place has
 * another inode)? */
static int dir_changed(const dirseen *d)
{
    struct stat now;
    if (lstat(d->path, &now) != 0) return 1;
    return !S_ISDIR(now.st_mode) || now.st_dev != d->st.st_dev || now.st_ino != d->st.st_ino ||
           now.st_mtim.tv_sec != d->st.st_mtim.tv_sec || now.st_mtim.tv_nsec != d->st.st_mtim.tv_nsec ||
           now.st_ctim.tv_sec != d->st.st_ctim.tv_sec || now.st_ctim.tv_nsec != d->st.st_ctim.tv_nsec;
}

static int under(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

#define STABLE_ROUNDS 8

HRESULT ddp_volume_walk_stable(ddp_volume *v, ddp_walk_fn fn, ddp_walk_fn on_error, void *ctx)
{
    dirset ds = { NULL, 0, 0 };
    HRESULT hr = walk_tree(v, v->root, fn, on_error, ctx, &ds);
    int round = 0;
    for (; SUCCEEDED(hr); round++) {
        /* The directories that changed since they were read: a file moved
         * into one of them, or out of one not yet read, could have been
         * missed. Each is read again (the caller's fn sees its files again). */
        char **again = NULL;
        size_t na = 0;
        for (size_t i = 0; i < ds.n; i++)
            if (dir_changed(&ds.d[i])) {
                again = ddp_xrealloc(again, (na + 1) * sizeof *again);
                again[na++] = ds.d[i].path;
                ds.d[i].path = NULL;
            }
        if (na == 0) break;
        if (round == STABLE_ROUNDS) {
            hr = ddp_fail(DDP_E_FILE_IN_USE,
                          "%s: directories kept changing while the tree was read (%s, and %zu more); stopped "
                          "before changing anything (run it again when the tree is quieter)",
                          v->root, again[0], na - 1);
        }
        /* Forget what the changed directories held; read each again (not
         * one inside another that is read again anyway). */
        size_t k = 0;
        for (size_t i = 0; i < ds.n; i++) {
            int drop = ds.d[i].path == NULL;
            for (size_t j = 0; !drop && j < na; j++) drop = under(ds.d[i].path, again[j]);
            if (drop) free(ds.d[i].path);
            else ds.d[k++] = ds.d[i];
        }
        ds.n = k;
        for (size_t j = 0; SUCCEEDED(hr) && j < na; j++) {
            int nested = 0;
            for (size_t m = 0; !nested && m < na; m++) nested = m != j && under(again[j], again[m]) && strcmp(again[j], again[m]);
            struct stat st;
            if (!nested && lstat(again[j], &st) == 0 && S_ISDIR(st.st_mode))
                hr = walk_tree(v, again[j], fn, on_error, ctx, &ds);
        }
        for (size_t j = 0; j < na; j++) free(again[j]);
        free(again);
    }
    for (size_t i = 0; i < ds.n; i++) free(ds.d[i].path);
    free(ds.d);
    return hr;
}
