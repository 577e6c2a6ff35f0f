/* SPDX-License-Identifier: MIT */
/*
 * cmd_volume.c: the commands that set a volume up and look at it:
 * `ddp enable`, `ddp set`, `ddp get`, `ddp status`, `ddp index rebuild`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

static const char *const usage_types[] = { "Default", "HyperV", "Backup" };

int cmd_enable(int argc, char **argv)
{
    const char *vol = NULL, *usage = "Default";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--usage") || !strncmp(a, "--usage=", 8)) {
            const char *val = a[7] == '=' ? a + 8 : (i + 1 < argc ? argv[++i] : NULL);
            if (!val) return cli_usage_error("enable", "--usage needs Default, HyperV or Backup");
            usage = NULL;
            for (size_t k = 0; k < 3; k++)
                if (!strcasecmp(val, usage_types[k])) usage = usage_types[k];
            if (!usage) return cli_usage_error("enable", "--usage: '%s' is not Default, HyperV or Backup", val);
        } else if (cli_is_option(a)) {
            return cli_usage_error("enable", "unknown option %s", a);
        } else if (!vol) {
            vol = a;
        } else {
            return cli_usage_error("enable", "one VOLUME only");
        }
    }
    if (!vol) return cli_usage_error("enable", "missing VOLUME");
    HRESULT hr = ddp_volume_enable(vol, usage);
    if (hr == HRESULT_FROM_WIN32(ERROR_ALREADY_EXISTS)) {
        /* Like Enable-DedupVolume: enabling an enabled volume succeeds. */
        ddp_volume *v = NULL;
        char *cur = NULL;
        if (SUCCEEDED(ddp_volume_open(vol, DDP_OPEN_READ, &v))) (void)ddp_volume_get(v, "usage_type", &cur);
        printf("%s: already enabled for deduplication (usage type %s); settings left as they are\n", vol,
               cur ? cur : "unknown");
        free(cur);
        ddp_volume_close(v);
        return 0;
    }
    if (FAILED(hr)) {
        cli_error(hr, "enable %s", vol);
        return hr == E_INVALIDARG ? DDP_EXIT_USAGE : DDP_EXIT_FAIL;
    }
    printf("%s: enabled for deduplication (usage type %s)\n", vol, usage);
    return 0;
}

static int known_key(const char *key)
{
    const char *const *keys = ddp_setting_keys();
    for (size_t i = 0; keys[i]; i++)
        if (!strcmp(keys[i], key)) return 1;
    return 0;
}

/* "ddp CMD: unknown setting 'x'; the settings are: a, b, c" (exit 2). */
static int unknown_key(const char *cmd, const char *key)
{
    char list[1024] = "";
    const char *const *keys = ddp_setting_keys();
    for (size_t i = 0; keys[i]; i++) {
        if (i) strncat(list, ", ", sizeof list - strlen(list) - 1);
        strncat(list, keys[i], sizeof list - strlen(list) - 1);
    }
    return cli_usage_error(cmd, "unknown setting '%s'; the settings are: %s", key, list);
}

/* Every setting's value, malloc'd, in ddp_setting_keys() order. */
static char **all_values(ddp_volume *v)
{
    const char *const *keys = ddp_setting_keys();
    size_t n = 0;
    while (keys[n]) n++;
    char **vals = calloc(n + 1, sizeof *vals);
    for (size_t i = 0; vals && i < n; i++)
        if (FAILED(ddp_volume_get(v, keys[i], &vals[i]))) vals[i] = NULL;
    return vals;
}

static void free_values(char **vals)
{
    for (size_t i = 0; vals && ddp_setting_keys()[i]; i++) free(vals[i]);
    free(vals);
}

int cmd_set(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (cli_is_option(argv[i])) return cli_usage_error("set", "unknown option %s", argv[i]);
    if (argc != 4) return cli_usage_error("set", "expected VOLUME KEY VALUE");
    if (!known_key(argv[2])) return unknown_key("set", argv[2]);
    ddp_volume *v = NULL;
    HRESULT hr = ddp_volume_open(argv[1], DDP_OPEN_READ, &v);
    char **before = SUCCEEDED(hr) ? all_values(v) : NULL;
    if (SUCCEEDED(hr)) hr = ddp_volume_set(v, argv[2], argv[3]);
    if (FAILED(hr)) {
        cli_error(hr, "set %s", argv[2]);
        free_values(before);
        ddp_volume_close(v);
        return hr == E_INVALIDARG ? DDP_EXIT_USAGE : DDP_EXIT_FAIL;
    }
    char **after = all_values(v);
    const char *const *keys = ddp_setting_keys();
    for (size_t i = 0; keys[i] && before && after; i++) {
        const char *b = before[i] ? before[i] : "", *a = after[i] ? after[i] : "";
        if (!strcmp(keys[i], argv[2])) printf("%s = %s\n", keys[i], a);
        else if (strcmp(a, b)) printf("%s = %s (was %s; follows from %s)\n", keys[i], a, b, argv[2]);
    }
    free_values(before);
    free_values(after);
    ddp_volume_close(v);
    return 0;
}

int cmd_get(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (cli_is_option(argv[i])) return cli_usage_error("get", "unknown option %s", argv[i]);
    if (argc < 2 || argc > 3) return cli_usage_error("get", "expected VOLUME [KEY]");
    if (argc == 3 && !known_key(argv[2])) return unknown_key("get", argv[2]);
    ddp_volume *v = NULL;
    HRESULT hr = ddp_volume_open(argv[1], DDP_OPEN_READ, &v);
    if (FAILED(hr)) {
        cli_error(hr, "get %s", argv[1]);
        return DDP_EXIT_FAIL;
    }
    int rc = 0;
    const char *const *keys = ddp_setting_keys();
    for (size_t i = 0; keys[i]; i++) {
        if (argc == 3 && strcmp(argv[2], keys[i])) continue;
        char *val = NULL;
        hr = ddp_volume_get(v, keys[i], &val);
        if (FAILED(hr)) {
            cli_error(hr, "get %s", keys[i]);
            rc = DDP_EXIT_FAIL;
        } else if (argc == 3) {
            printf("%s\n", val);
        } else {
            printf("%s = %s\n", keys[i], val);
        }
        free(val);
    }
    ddp_volume_close(v);
    return rc;
}

/* A jobs-log line "STAMP JOB 0xHRESULT key=value..." as a JSON object
 * {"time":..,"job":..,"result":..,"key":value...}, or null for "". */
static void json_job_line(const char *line)
{
    if (!*line) {
        printf("null");
        return;
    }
    char buf[256];
    snprintf(buf, sizeof buf, "%s", line);
    char *save = NULL, *tok = strtok_r(buf, " ", &save);
    static const char *const heads[] = { "time", "job", "result" };
    printf("{");
    for (int k = 0; tok; k++, tok = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(tok, '=');
        if (k < 3 || !eq) {
            printf("%s", k ? "," : "");
            cli_json_str(k < 3 ? heads[k] : "note");
            putchar(':');
            cli_json_str(tok);
            continue;
        }
        *eq = '\0';
        const char *val = eq + 1;
        char *end = NULL;
        (void)strtod(val, &end);
        printf(",");
        cli_json_str(tok);
        putchar(':');
        if (*val && end && !*end && (*val == '-' || (*val >= '0' && *val <= '9'))) printf("%s", val);
        else cli_json_str(val);
    }
    printf("}");
}

/* The last run of a job for the text form: "2026-...Z 0x00000000 files=..." */
static const char *job_text(const char *line, const char *never) { return *line ? line : never; }

int cmd_status(int argc, char **argv)
{
    const char *vol = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (cli_is_option(argv[i])) return cli_usage_error("status", "unknown option %s", argv[i]);
        else if (!vol) vol = argv[i];
        else return cli_usage_error("status", "one VOLUME only");
    }
    if (!vol) return cli_usage_error("status", "missing VOLUME");
    if (win_is_volume_only(vol)) return cmd_win_status(vol, json);
    ddp_volume *v = NULL;
    ddp_status st;
    HRESULT hr = ddp_volume_open(vol, DDP_OPEN_READ, &v);
    if (SUCCEEDED(hr)) hr = ddp_volume_status(v, &st);
    if (FAILED(hr)) {
        cli_error(hr, "status %s", vol);
        ddp_volume_close(v);
        return DDP_EXIT_FAIL;
    }
    /* The last job is one of the four unless some other job wrote the log last. */
    const char *last_other = st.last_job;
    const char *known[] = { st.last_optimize, st.last_gc, st.last_scrub, st.last_unoptimize };
    for (size_t i = 0; i < 4; i++)
        if (!strcmp(known[i], st.last_job)) last_other = "";
    if (json) {
        printf("{\"volume\":");
        cli_json_str(ddp_volume_root(v));
        printf(",\"files_optimized\":%llu,\"files_other\":%llu,\"logical_bytes\":%llu,\"stub_bytes\":%llu,"
               "\"other_bytes\":%llu,\"store_bytes\":%llu,\"index_bytes\":%llu,\"saved_bytes\":%llu,"
               "\"savings_rate\":%.4f,\"hole_bytes\":%llu,\"chunks\":%llu,\"data_containers\":%llu,\"stream_containers\":%llu,"
               "\"last_job\":",
               (unsigned long long)st.files_optimized, (unsigned long long)st.files_other,
               (unsigned long long)st.logical_bytes, (unsigned long long)st.stub_bytes,
               (unsigned long long)st.other_bytes, (unsigned long long)st.store_bytes,
               (unsigned long long)st.index_bytes, (unsigned long long)st.saved_bytes, st.savings_rate,
               (unsigned long long)st.hole_bytes, (unsigned long long)st.chunks, (unsigned long long)st.data_containers,
               (unsigned long long)st.stream_containers);
        json_job_line(st.last_job);
        printf(",\"last_optimize\":");
        json_job_line(st.last_optimize);
        printf(",\"last_gc\":");
        json_job_line(st.last_gc);
        printf(",\"last_scrub\":");
        json_job_line(st.last_scrub);
        printf(",\"last_unoptimize\":");
        json_job_line(st.last_unoptimize);
        printf("}\n");
    } else {
        char a[32], b[32], c[32], d[32], e[32];
        printf("Volume:            %s\n", ddp_volume_root(v));
        printf("Optimized files:   %llu (%s logical, %s in stubs)\n", (unsigned long long)st.files_optimized,
               cli_human_bytes(st.logical_bytes, a), cli_human_bytes(st.stub_bytes, b));
        printf("Other files:       %llu (%s)\n", (unsigned long long)st.files_other, cli_human_bytes(st.other_bytes, c));
        printf("Chunk store:       %s in %llu data + %llu stream containers, %llu chunks\n",
               cli_human_bytes(st.store_bytes, d), (unsigned long long)st.data_containers,
               (unsigned long long)st.stream_containers, (unsigned long long)st.chunks);
        printf("Index:             %s\n", cli_human_bytes(st.index_bytes, e));
        printf("Saved:             %s (%.1f%% of all file bytes)\n", cli_human_bytes(st.saved_bytes, a),
               100.0 * st.savings_rate);
        if (st.hole_bytes)
            printf("Holes:             %s (sparse files' holes and runs of zeros: not counted as savings)\n",
                   cli_human_bytes(st.hole_bytes, b));
        printf("Last optimization: %s\n", job_text(st.last_optimize, "(never)"));
        printf("Last gc:           %s\n", job_text(st.last_gc, "(never)"));
        printf("Last scrub:        %s\n", job_text(st.last_scrub, "(never)"));
        printf("Last unoptimize:   %s\n", job_text(st.last_unoptimize, "(never)"));
        if (*last_other) printf("Last job:          %s\n", last_other);
    }
    ddp_volume_close(v);
    return 0;
}
