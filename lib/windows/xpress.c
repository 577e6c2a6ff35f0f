/* SPDX-License-Identifier: MIT */
/*
 * windows/xpress.c: our own [MS-XCA] Plain LZ77 decoder (windows/xpress.h).
 *
 * The flag word is held in 64 bits: the unconsumed flags from bit 63 down,
 * then one sentinel 1 bit, then zeros. One count-leading-zeros gives the
 * literal run before the next match (or before the end of the word), and
 * `flags == FLAGS_EMPTY` (only the sentinel left) says a new word is due.
 *
 * Fast loop, while the input and output have slack (IN_SLACK, OUT_SLACK):
 * each turn copies a literal run (possibly empty, possibly continued into
 * the next flag word) with fixed 16-byte copies, then decodes one match, so
 * the unpredictable "literal or match" branch does not exist there. Matches
 * are copied 16 or 8 bytes at a time, short distances (2-7) by widening the
 * pattern, distance 1 by memset; over-copied bytes lie inside out[0, out_n)
 * and are overwritten later. Bounds are checked once per turn (the slack
 * covers the worst turn) and per match (its distance and its length).
 *
 * Careful step, near the ends of the buffers and for anything the fast loop
 * does not take (a match reaching before the output start, a length too long
 * for the slack, a long length below 22): one literal run or one match at a
 * time, every bound checked, every error reported.
 *
 * The flag chain (count leading zeros, shift) is the loop's critical path:
 * on x86-64 the decoder is compiled twice, and CPUs with LZCNT and BMI2 (all
 * since 2013-2015) run the copy that uses them; others run the generic one.
 */
#include "windows/xpress.h"

#include <string.h>

#include "base/util.h"

#define FLAGS_EMPTY (UINT64_C(1) << 63)
/* Worst input of one fast turn: 32 literals (read 32), a flag word, 32
 * literals, a match of 2 + 1 + 1 + 2 + 4 bytes (78). Worst output before the
 * match: literal copies writing up to op + 32 and op + 64, then a short
 * match's 16-byte copy (80); longer matches check their own room. */
#define IN_SLACK 80
#define OUT_SLACK 80
/* Room a fast match copy may write past its end. */
#define MATCH_SLACK 16

static HRESULT xfail(const char *what, const char *why, size_t ipos, size_t opos)
{
    return ddp_fail(DDP_E_FILE_CORRUPT, "%s: Xpress stream %s (input byte %zu, output byte %zu)", what ? what : "chunk",
                    why, ipos, opos);
}

static inline uint32_t rd32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    return v;
}

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

/* A new flag word at p, with the sentinel under it. */
static inline uint64_t load_flags(const uint8_t *p) { return (uint64_t)rd32(p) << 32 | UINT64_C(0x80000000); }

/* 0 bits before the next 1 (a match flag or the sentinel): flags is never 0. */
static inline unsigned lit_run(uint64_t flags) { return (unsigned)__builtin_clzll((unsigned long long)flags); }

/* Copy a match of len (>= 3) bytes from op - dist (inside the output, dist
 * >= 1) to op; may write up to MATCH_SLACK - 1 bytes past op + len. */
static inline void match_copy_fast(uint8_t *op, size_t dist, size_t len)
{
    const uint8_t *s = op - dist;
    uint8_t *const e = op + len;
    if (dist >= 16) {
        do {
            memcpy(op, s, 16);
            op += 16;
            s += 16;
        } while (op < e);
    } else if (dist >= 8) {
        do {
            memcpy(op, s, 8);
            op += 8;
            s += 8;
        } while (op < e);
    } else if (dist == 1) {
        memset(op, *s, len);
    } else {
        /* The first 8 bytes one by one (each reads a byte already written),
         * then 8 at a time from the nearest multiple of dist that is >= 8
         * back: its bytes are equal (period dist) and already final. */
        static const unsigned char wide[8] = { 0, 8, 8, 9, 8, 10, 12, 14 };
        for (int k = 0; k < 8; k++) op[k] = s[k];
        s = op + 8 - wide[dist];
        op += 8;
        while (op < e) {
            memcpy(op, s, 8);
            op += 8;
            s += 8;
        }
    }
}

/* Copy a match exactly: writes out[op, op + len) and nothing else. */
static inline void match_copy_exact(uint8_t *op, size_t dist, size_t len)
{
    const uint8_t *s = op - dist;
    if (dist >= len) {
        memcpy(op, s, len);
    } else if (dist == 1) {
        memset(op, *s, len);
    } else {
        for (uint8_t *e = op + len; op < e;) *op++ = *s++;
    }
}

/* The decoder; inlined into each compiled copy (see the end of the file). */
static inline __attribute__((always_inline)) HRESULT decode(const uint8_t *in, size_t in_n, uint8_t *out, size_t out_n,
                                                            const char *what)
{
    const uint8_t *ip = in, *const iend = in + in_n;
    uint8_t *op = out, *const oend = out + out_n;
    const uint8_t *nibble = NULL; /* the byte whose high nibble the next extended match uses */
    uint64_t flags = FLAGS_EMPTY;
#define IPOS ((size_t)(ip - in))
#define OPOS ((size_t)(op - out))
    for (;;) {
        while ((size_t)(iend - ip) >= IN_SLACK && (size_t)(oend - op) >= OUT_SLACK) {
            /* The literal run before the next match, maybe empty. */
            unsigned run = lit_run(flags);
            memcpy(op, ip, 16);
            if (run > 16) memcpy(op + 16, ip + 16, 16);
            op += run;
            ip += run;
            flags <<= run;
            if (flags == FLAGS_EMPTY) {
                /* The word ran out: the run goes on in the next one. */
                flags = load_flags(ip);
                ip += 4;
                run = lit_run(flags);
                memcpy(op, ip, 16);
                if (run > 16) memcpy(op + 16, ip + 16, 16);
                op += run;
                ip += run;
                flags <<= run;
                if (flags == FLAGS_EMPTY) continue; /* 32 literals: check the slack again */
            }
            /* A match (the top flag is 1); not consumed until it is taken. */
            uint32_t sym = rd16(ip);
            size_t dist = (sym >> 3) + 1;
            if (dist > OPOS) break;
            if ((sym & 7) != 7 && dist >= 16) {
                /* The common short match (3-9 bytes): one 16-byte copy. */
                memcpy(op, op - dist, 16);
                op += (sym & 7) + 3;
                ip += 2;
                flags <<= 1;
                continue;
            }
            const uint8_t *q = ip + 2;
            const uint8_t *nib2 = nibble;
            uint64_t len = sym & 7; /* 64 bits: a u32 length + 3 does not wrap */
            if (len == 7) {
                if (!nib2) {
                    nib2 = q;
                    len = *q++ & 15u;
                } else {
                    len = *nib2 >> 4;
                    nib2 = NULL;
                }
                if (len == 15) {
                    len = *q++;
                    if (len == 255) {
                        len = rd16(q);
                        q += 2;
                        if (len == 0) {
                            len = rd32(q);
                            q += 4;
                        }
                        if (len < 15 + 7) break;
                        len -= 15 + 7;
                    }
                    len += 15;
                }
                len += 7;
            }
            len += 3;
            if (len > (uint64_t)((size_t)(oend - op) - MATCH_SLACK)) break;
            ip = q;
            nibble = nib2;
            flags <<= 1;
            match_copy_fast(op, dist, (size_t)len);
            op += len;
        }
        if (flags == FLAGS_EMPTY) {
            if ((size_t)(iend - ip) < 4) {
                if (ip == iend && op == oend) return S_OK;
                return xfail(what, ip == iend ? "ends before the expected length" : "truncated in a flag word", IPOS, OPOS);
            }
            flags = load_flags(ip);
            ip += 4;
        }
        if (!(flags & FLAGS_EMPTY)) {
            unsigned run = lit_run(flags);
            size_t iav = (size_t)(iend - ip), oav = (size_t)(oend - op);
            if (run > oav) return xfail(what, "decodes to more bytes than expected", IPOS, OPOS);
            if (run > iav) return xfail(what, "truncated in literals", IPOS, OPOS);
            memcpy(op, ip, run);
            op += run;
            ip += run;
            flags <<= run;
            continue;
        }
        flags <<= 1;
        if (ip == iend) {
            if (op == oend) return S_OK;
            return xfail(what, "ends before the expected length", IPOS, OPOS);
        }
        if ((size_t)(iend - ip) < 2) return xfail(what, "truncated in a match", IPOS, OPOS);
        uint32_t sym = rd16(ip);
        ip += 2;
        size_t dist = (sym >> 3) + 1;
        uint64_t len = sym & 7;
        if (len == 7) {
            if (!nibble) {
                if (ip == iend) return xfail(what, "truncated in a length nibble", IPOS, OPOS);
                nibble = ip;
                len = *ip++ & 15u;
            } else {
                len = *nibble >> 4;
                nibble = NULL;
            }
            if (len == 15) {
                if (ip == iend) return xfail(what, "truncated in a length byte", IPOS, OPOS);
                len = *ip++;
                if (len == 255) {
                    if ((size_t)(iend - ip) < 2) return xfail(what, "truncated in a 16-bit length", IPOS, OPOS);
                    len = rd16(ip);
                    ip += 2;
                    if (len == 0) {
                        if ((size_t)(iend - ip) < 4) return xfail(what, "truncated in a 32-bit length", IPOS, OPOS);
                        len = rd32(ip);
                        ip += 4;
                    }
                    if (len < 15 + 7) return xfail(what, "has a long length below 22", IPOS, OPOS);
                    len -= 15 + 7;
                }
                len += 15;
            }
            len += 7;
        }
        len += 3;
        if (dist > OPOS) return xfail(what, "has a match reaching before the start of the output", IPOS, OPOS);
        size_t oav = (size_t)(oend - op);
        if (len > oav) return xfail(what, "decodes to more bytes than expected", IPOS, OPOS);
        if (oav - len >= MATCH_SLACK) match_copy_fast(op, dist, (size_t)len);
        else match_copy_exact(op, dist, (size_t)len);
        op += len;
    }
#undef IPOS
#undef OPOS
}

#if defined(__x86_64__) && !(defined(__LZCNT__) && defined(__BMI2__))
#include <cpuid.h>
#include <stdatomic.h>

__attribute__((target("lzcnt,bmi2"))) static HRESULT decode_lzcnt(const uint8_t *in, size_t in_n, uint8_t *out,
                                                                  size_t out_n, const char *what)
{
    return decode(in, in_n, out, out_n, what);
}

static HRESULT decode_generic(const uint8_t *in, size_t in_n, uint8_t *out, size_t out_n, const char *what)
{
    return decode(in, in_n, out, out_n, what);
}

/* 1: the CPU has LZCNT and BMI2; 0: not; -1: not asked yet (cpuid is slow
 * in a VM: asked once; two threads asking at once store the same answer). */
static atomic_int have_lzcnt = -1;

static int cpu_has_lzcnt(void)
{
    int v = atomic_load_explicit(&have_lzcnt, memory_order_relaxed);
    if (v < 0) {
        unsigned a, b, c, d;
        int lz = __get_cpuid(0x80000001u, &a, &b, &c, &d) && (c & bit_LZCNT);
        int bmi2 = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & bit_BMI2);
        v = lz && bmi2;
        atomic_store_explicit(&have_lzcnt, v, memory_order_relaxed);
    }
    return v;
}

HRESULT ddp_win_xpress_decode(const uint8_t *in, size_t in_n, uint8_t *out, size_t out_n, const char *what)
{
    if (cpu_has_lzcnt()) return decode_lzcnt(in, in_n, out, out_n, what);
    return decode_generic(in, in_n, out, out_n, what);
}
#else
HRESULT ddp_win_xpress_decode(const uint8_t *in, size_t in_n, uint8_t *out, size_t out_n, const char *what)
{
    return decode(in, in_n, out, out_n, what);
}
#endif
