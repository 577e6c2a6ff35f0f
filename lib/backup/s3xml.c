/* SPDX-License-Identifier: MIT */
/*
 * s3xml.c: finding elements in S3's XML answers (s3xml.h). The input is
 * bounded by the caller (an error body, one page of a listing); everything
 * here scans it linearly.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup/s3xml.h"
#include "base/util.h"

static const char *find(const char *h, size_t hn, const char *needle)
{
    size_t nn = strlen(needle);
    if (nn == 0 || hn < nn) return NULL;
    for (size_t i = 0; i + nn <= hn; i++)
        if (h[i] == needle[0] && memcmp(h + i, needle, nn) == 0) return h + i;
    return NULL;
}

int ddp_s3_xml_next(const char *xml, size_t n, const char *tag, size_t *pos, size_t *start, size_t *len)
{
    char open[80], close[80];
    if (strlen(tag) > 64) return 0;
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    if (*pos > n) return 0;
    const char *a = find(xml + *pos, n - *pos, open);
    if (!a) return 0;
    size_t s = (size_t)(a - xml) + strlen(open);
    const char *b = find(xml + s, n - s, close);
    if (!b) return 0;
    *start = s;
    *len = (size_t)(b - xml) - s;
    *pos = (size_t)(b - xml) + strlen(close);
    return 1;
}

/* Decode the five entities and numeric references (ASCII range and UTF-8). */
static char *decode(const char *s, size_t n)
{
    char *o = ddp_xmalloc(n + 1), *p = o;
    for (size_t i = 0; i < n;) {
        if (s[i] != '&') { *p++ = s[i++]; continue; }
        const char *semi = memchr(s + i, ';', n - i < 12 ? n - i : 12);
        if (!semi) { *p++ = s[i++]; continue; }
        size_t el = (size_t)(semi - (s + i)) + 1;
        const char *e = s + i + 1;
        if (el == 5 && memcmp(e, "amp", 3) == 0) *p++ = '&';
        else if (el == 4 && memcmp(e, "lt", 2) == 0) *p++ = '<';
        else if (el == 4 && memcmp(e, "gt", 2) == 0) *p++ = '>';
        else if (el == 6 && memcmp(e, "quot", 4) == 0) *p++ = '"';
        else if (el == 6 && memcmp(e, "apos", 4) == 0) *p++ = '\'';
        else if (e[0] == '#') {
            unsigned long cp = e[1] == 'x' ? strtoul(e + 2, NULL, 16) : strtoul(e + 1, NULL, 10);
            if (cp == 0 || cp > 0x10FFFF) { *p++ = s[i++]; continue; }
            if (cp < 0x80) *p++ = (char)cp;
            else if (cp < 0x800) { *p++ = (char)(0xC0 | (cp >> 6)); *p++ = (char)(0x80 | (cp & 0x3F)); }
            else if (cp < 0x10000) {
                *p++ = (char)(0xE0 | (cp >> 12)); *p++ = (char)(0x80 | ((cp >> 6) & 0x3F));
                *p++ = (char)(0x80 | (cp & 0x3F));
            } else {
                *p++ = (char)(0xF0 | (cp >> 18)); *p++ = (char)(0x80 | ((cp >> 12) & 0x3F));
                *p++ = (char)(0x80 | ((cp >> 6) & 0x3F)); *p++ = (char)(0x80 | (cp & 0x3F));
            }
        } else { *p++ = s[i++]; continue; }
        i += el;
    }
    *p = '\0';
    return o;
}

char *ddp_s3_xml_text(const char *xml, size_t n, const char *tag)
{
    size_t pos = 0, s, l;
    if (!xml || !ddp_s3_xml_next(xml, n, tag, &pos, &s, &l)) return NULL;
    return decode(xml + s, l);
}
