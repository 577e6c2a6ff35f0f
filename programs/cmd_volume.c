/*
 * cmd_volume.c: the commands that set a volume up and look at it:
 * `ddp enable`, `ddp set`, `ddp get`, `ddp status`, `ddp index rebuild`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cmd_enable(int argc, char **argv)
{
    const char *vol = NULL, *usage = "Default";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--usage") && i + 1 < argc) usage = argv[++i];
        else if (!strncmp(argv[i], "--usage=", 8)) usage = argv[i] + 8;
        else if (argv[i][0] == '-') return cli_usage_error("enable", "unknown option %s", argv[i]);
        else if (!vol) vol = argv[i];
        else return cli_usage_error("enable", "one VOLUME only");
    }
    if (!vol) return cli_usage_error("enable", "missing VOLUME");
    HRESULT hr = ddp_volume_enable(vol, usage);
    if (FAILED(hr)) {
        cli_error(hr, "enable %s", vol);
        return DDP_EXIT_FAIL;
    }
    printf("%s: enabled for deduplication (usage type %s)\n", vol, usage);
    return 0;
}

int cmd_set(int argc, char **argv)
{
    if (argc != 4) return cli_usage_error("set", "expected VOLUME KEY VALUE");
    ddp_volume *v = NULL;
    HRESULT hr = ddp_volume_open(argv[1], DDP_OPEN_READ, &v);
    if (SUCCEEDED(hr)) hr = ddp_volume_set(v, argv[2], argv[3]);
    if (FAILED(hr)) {
        cli_error(hr, "set %s", argv[2]);
        ddp_volume_close(v);
        return hr == E_INVALIDARG ? DDP_EXIT_USAGE : DDP_EXIT_FAIL;
    }
    ddp_volume_close(v);
    return 0;
}

int cmd_get(int argc, char **argv)
{
    if (argc < 2 || argc > 3) return cli_usage_error("get", "expected VOLUME [KEY]");
    ddp_volume *v = NULL;
    HRESULT hr = ddp_volume_open(argv[1], DDP_OPEN_READ, &v);
    if (FAILED(hr)) {
        cli_error(hr, "get");
        return DDP_EXIT_FAIL;
    }
    int rc = 0;
    const char *const *keys = ddp_setting_keys();
    for (size_t i = 0; keys[i]; i++) {
        if (argc == 3 && strcmp(argv[2], keys[i])) continue;
        char *val = NULL;
        hr = ddp_volume_get(v, keys[i], &val);
        if (SUCCEEDED(hr)) {
            if (argc == 3) printf("%s\n", val);
            else printf("%s = %s\n", keys[i], val);
        }
        free(val);
    }
    if (argc == 3) {
        char *val = NULL;
        hr = ddp_volume_get(v, argv[2], &val);
        free(val);
        if (FAILED(hr)) {
            cli_error(hr, "get %s", argv[2]);
            rc = DDP_EXIT_USAGE;
        }
    }
    ddp_volume_close(v);
    return rc;
}

int cmd_status(int argc, char **argv)
{
    const char *vol = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (argv[i][0] == '-') return cli_usage_error("status", "unknown option %s", argv[i]);
        else vol = argv[i];
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
    if (json) {
        printf("{\"volume\":");
        cli_json_str(ddp_volume_root(v));
        printf(",\"files_optimized\":%llu,\"files_other\":%llu,\"logical_bytes\":%llu,\"stub_bytes\":%llu,"
               "\"other_bytes\":%llu,\"store_bytes\":%llu,\"index_bytes\":%llu,\"saved_bytes\":%llu,"
               "\"savings_rate\":%.4f,\"chunks\":%llu,\"data_containers\":%llu,\"stream_containers\":%llu,"
               "\"last_job\":",
               (unsigned long long)st.files_optimized, (unsigned long long)st.files_other,
               (unsigned long long)st.logical_bytes, (unsigned long long)st.stub_bytes,
               (unsigned long long)st.other_bytes, (unsigned long long)st.store_bytes,
               (unsigned long long)st.index_bytes, (unsigned long long)st.saved_bytes, st.savings_rate,
               (unsigned long long)st.chunks, (unsigned long long)st.data_containers,
               (unsigned long long)st.stream_containers);
        cli_json_str(st.last_job);
        printf(",\"last_optimize\":");
        cli_json_str(st.last_optimize);
        printf(",\"last_gc\":");
        cli_json_str(st.last_gc);
        printf(",\"last_scrub\":");
        cli_json_str(st.last_scrub);
        printf(",\"last_unoptimize\":");
        cli_json_str(st.last_unoptimize);
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
        printf("Last job:          %s\n", st.last_job[0] ? st.last_job : "(none)");
        printf("Last optimization: %s\n", st.last_optimize[0] ? st.last_optimize : "(never)");
        printf("Last gc:           %s\n", st.last_gc[0] ? st.last_gc : "(never)");
        printf("Last scrub:        %s\n", st.last_scrub[0] ? st.last_scrub : "(never)");
        printf("Last unoptimize:   %s\n", st.last_unoptimize[0] ? st.last_unoptimize : "(never)");
    }
    ddp_volume_close(v);
    return 0;
}
