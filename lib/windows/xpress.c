/*
 * windows/xpress.c: our own [MS-XCA] Plain LZ77 decoder (windows/xpress.h).
 *
 * Fast path: literal runs are found with one count-leading-zeros of the flag
 * word and copied in one go; matches are copied 16 or 8 bytes at a time when
 * the distance allows and there is slack before the end of the output (the
 * over-copied bytes lie inside out[0, out_n) and are overwritten later).
 * Everything else, near the ends of the buffers, goes byte by byte with every
 * bound checked.
 */
#include "windows/xpress.h"

#include <string.h>

#include "base/util.h"

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

HRESULT ddp_win_xpress_decode(const uint8_t *in, size_t in_n, uint8_t *out, size_t out_n, const char *what)
{
    const uint8_t *ip = in, *const iend = in + in_n;
    uint8_t *op = out, *const oend = out + out_n;
    const uint8_t *nibble = NULL; /* the byte whose high nibble the next extended match uses */
    uint32_t flags = 0;           /* next flag at bit 31 */
    unsigned nbits = 0;
#define IPOS ((size_t)(ip - in))
#define OPOS ((size_t)(op - out))
    for (;;) {
        /* Fast loop: while 64 input bytes remain, no symbol (at most 4 + 32
         * bytes of flags and literals, or 10 of a match) can read past the
         * end, so the input checks go; output bounds are checked for every
         * symbol. Near the ends, and for anything wrong, the careful step
         * below takes one symbol at a time. */
        while ((size_t)(iend - ip) >= 64) {
            if (nbits == 0) {
                flags = rd32(ip);
                ip += 4;
                nbits = 32;
            }
            size_t oav = (size_t)(oend - op);
            if (oav < 32) break;
            if (!(flags & 0x80000000u)) {
                unsigned run = flags ? (unsigned)__builtin_clz(flags) : 32u;
                if (run > nbits) run = nbits;
                memcpy(op, ip, 32);
                op += run;
                ip += run;
                flags = (uint32_t)((uint64_t)flags << run);
                nbits -= run;
                /* clz counted every 0 bit: unless the word ran out, a match
                 * follows (no second test of the flag). */
                if (nbits == 0 || (size_t)(oend - op) < 32) continue;
                oav = (size_t)(oend - op);
            }
            uint32_t sym = rd16(ip);
            size_t dist = (sym >> 3) + 1;
            if (dist > OPOS) break;
            if ((sym & 7) != 7 && dist >= 16) {
                /* The common short match (3-9 bytes, distance >= 16): one 16-byte
                 * copy; oav >= 32 leaves room for the over-copy. */
                memcpy(op, op - dist, 16);
                op += (sym & 7) + 3;
                ip += 2;
                flags <<= 1;
                nbits--;
                continue;
            }
            const uint8_t *q = ip + 2;
            const uint8_t *nib2 = nibble;
            uint64_t len = sym & 7;
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
            if (len > oav) break;
            ip = q;
            nibble = nib2;
            flags <<= 1;
            nbits--;
            const uint8_t *s = op - dist;
            uint8_t *e = op + len;
            if (oav - len >= 16 && dist >= 16) {
                do {
                    memcpy(op, s, 16);
                    op += 16;
                    s += 16;
                } while (op < e);
            } else if (oav - len >= 8 && dist >= 8) {
                do {
                    memcpy(op, s, 8);
                    op += 8;
                    s += 8;
                } while (op < e);
            } else if (dist == 1) {
                memset(op, *s, (size_t)len);
            } else {
                for (uint8_t *d = op; d < e;) *d++ = *s++;
            }
            op = e;
        }
        if (nbits == 0) {
            if ((size_t)(iend - ip) < 4) {
                if (ip == iend && op == oend) return S_OK;
                return xfail(what, ip == iend ? "ends before the expected length" : "truncated in a flag word", IPOS, OPOS);
            }
            flags = rd32(ip);
            ip += 4;
            nbits = 32;
        }
        if (!(flags & 0x80000000u)) {
            unsigned run = flags ? (unsigned)__builtin_clz(flags) : 32u;
            if (run > nbits) run = nbits;
            size_t iav = (size_t)(iend - ip), oav = (size_t)(oend - op);
            if (iav >= 32 && oav >= 32) {
                memcpy(op, ip, 32); /* run <= 32: one fixed copy */
            } else {
                if (run > oav) return xfail(what, "decodes to more bytes than expected", IPOS, OPOS);
                if (run > iav) return xfail(what, "truncated in literals", IPOS, OPOS);
                memcpy(op, ip, run);
            }
            op += run;
            ip += run;
            flags = run >= 32 ? 0 : flags << run;
            nbits -= run;
            continue;
        }
        flags <<= 1;
        nbits--;
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
        const uint8_t *s = op - dist;
        uint8_t *e = op + len;
        if (oav - len >= 16 && dist >= 16) {
            do {
                memcpy(op, s, 16);
                op += 16;
                s += 16;
            } while (op < e);
        } else if (oav - len >= 8 && dist >= 8) {
            do {
                memcpy(op, s, 8);
                op += 8;
                s += 8;
            } while (op < e);
        } else if (dist == 1) {
            memset(op, *s, (size_t)len);
        } else {
            for (uint8_t *d = op; d < e;) *d++ = *s++;
        }
        op = e;
    }
#undef IPOS
#undef OPOS
}
