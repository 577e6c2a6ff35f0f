/* SPDX-License-Identifier: MIT */
/*
 * progress.c: the progress line long commands draw on a terminal:
 *
 *   optimize: 1.2 GiB of 3.4 GiB (35%), 120.3 MB/s, 0:42 left
 *   gc: 1234 stubs, 5678/s
 *
 * on stderr, redrawn in place ("\r" and erase-line) at most five times a
 * second, erased when the command ends or prints a message. Only when stderr
 * is a terminal and the command runs without --quiet and --json: a log or a
 * pipe gets the summary alone.
 */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int cli_progress_wanted(int quiet, int json) { return !quiet && !json && isatty(2); }

void cli_progress_start(cli_progress *p, int on, const char *label, int bytes, const char *unit, uint64_t total)
{
    p->on = on;
    p->bytes = bytes;
    p->label = label;
    p->unit = unit ? unit : "";
    p->total = total;
    p->t0 = now_s();
    p->last = 0;
    p->drawn = 0;
}

static void amount(const cli_progress *p, uint64_t n, char buf[32])
{
    if (p->bytes) cli_human_bytes(n, buf);
    else snprintf(buf, 32, "%llu", (unsigned long long)n);
}

void cli_progress_update(cli_progress *p, uint64_t done, uint64_t total)
{
    if (!p->on) return;
    if (total) p->total = total;
    double t = now_s();
    /* The first call draws at once; then five times a second. */
    if (p->drawn && t - p->last < 0.2 && !(p->total && done >= p->total)) return;
    p->last = t;
    double el = t - p->t0;
    double rate = el > 0 ? (double)done / el : 0.0;
    char a[32], b[32], r[48];
    amount(p, done, a);
    if (p->bytes) snprintf(r, sizeof r, "%.1f MB/s", rate / 1e6);
    else snprintf(r, sizeof r, "%.0f %s/s", rate, p->unit);
    if (p->total) {
        amount(p, p->total, b);
        uint64_t d = done > p->total ? p->total : done;
        double frac = (double)d / (double)p->total;
        char left[32] = "--:-- left";
        if (d == p->total) {
            snprintf(left, sizeof left, "0:00 left");
        } else if (rate > 0 && d > 0) {
            unsigned long s = (unsigned long)((double)(p->total - d) / rate + 0.5);
            if (s >= 3600) snprintf(left, sizeof left, "%lu:%02lu:%02lu left", s / 3600, s / 60 % 60, s % 60);
            else snprintf(left, sizeof left, "%lu:%02lu left", s / 60, s % 60);
        }
        fprintf(stderr, "\r\033[K%s: %s%s%s of %s (%.0f%%), %s, %s", p->label, a, p->bytes ? "" : " ",
                p->bytes ? "" : p->unit, b, 100.0 * frac, r, left);
    } else {
        fprintf(stderr, "\r\033[K%s: %s%s%s, %s", p->label, a, p->bytes ? "" : " ", p->bytes ? "" : p->unit, r);
    }
    fflush(stderr);
    p->drawn = 1;
}

void cli_progress_clear(cli_progress *p)
{
    if (!p->on || !p->drawn) return;
    fputs("\r\033[K", stderr);
    fflush(stderr);
}
