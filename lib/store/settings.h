/* SPDX-License-Identifier: MIT */
/*
 * settings.h: a volume's policy (Windows: Set-DedupVolume): usage type,
 * minimum file age and size, excluded folders and file types, file types
 * not to compress, zstd level, container size limit, hotspot threshold,
 * garbage-collection threshold.
 * Stored as .ddp/Settings/settings.conf, text with a checksum line.
 */
#ifndef DDP_SETTINGS_H
#define DDP_SETTINGS_H

#include <stddef.h>
#include <stdint.h>
#include <ddp/ddperror.h>

enum ddp_usage_type { DDP_USAGE_DEFAULT = 0, DDP_USAGE_HYPERV = 1, DDP_USAGE_BACKUP = 2 };

#define DDP_MIN_FILE_SIZE_FLOOR 32768u

typedef struct ddp_strlist { char **items; size_t count; } ddp_strlist;

typedef struct ddp_settings {
    int usage_type;
    uint32_t min_file_age_days;     /* Default 3, HyperV 3, Backup 0 */
    uint64_t min_file_size;         /* >= 32768 */
    ddp_strlist excluded_folders;   /* relative to the volume root, no leading '/' */
    ddp_strlist excluded_types;     /* extensions, lowercase, no dot */
    ddp_strlist no_compress_types;  /* extensions, lowercase, no dot */
    int compression_level;          /* zstd level, 1..19 (default 3) */
    uint64_t container_size_limit;  /* bytes (default 1 GiB; at least 1 MiB) */
    uint32_t hotspot_threshold;     /* default 100 */
    int enabled;                    /* 1 */
    uint32_t gc_threshold;          /* percent 0..100 (default 5): see lib/gc.c */
} ddp_settings;

/* Defaults for a usage type. The no-compression list starts with common
 * already-compressed types (zip gz bz2 xz zst 7z rar jpg jpeg png gif mp3 mp4
 * mkv avi mov webm). */
void ddp_settings_defaults(ddp_settings *s, int usage_type);
void ddp_settings_free(ddp_settings *s);
/* malloc'd text with the checksum line. */
HRESULT ddp_settings_encode(const ddp_settings *s, char **out, size_t *n);
/* DDP_E_INVALID_DATA (with a detail naming the line) on any bad line or checksum. */
HRESULT ddp_settings_decode(const char *buf, size_t n, ddp_settings *s);
/* Set one key from text, validating it: E_INVALIDARG with a detail naming the key
 * and why. Setting usage_type also sets that type's minimum file age. */
HRESULT ddp_settings_set(ddp_settings *s, const char *key, const char *value);
/* malloc'd text of one key's value; E_INVALIDARG for an unknown key. */
HRESULT ddp_settings_get(const ddp_settings *s, const char *key, char **value);
/* NULL-terminated list of the keys, in file order. */
const char *const *ddp_settings_keys(void);
/* Is relpath (relative to the volume root) inside an excluded folder or of an excluded type? */
int ddp_settings_excluded(const ddp_settings *s, const char *relpath);
/* Is this file name of a no-compression type? */
int ddp_settings_no_compress(const ddp_settings *s, const char *name);

#endif /* DDP_SETTINGS_H */
