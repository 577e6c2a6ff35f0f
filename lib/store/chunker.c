/* SPDX-License-Identifier: MIT */
/*
 * chunker.c: content-defined chunking. Splits a byte stream into chunks of
 * 32..128 KiB whose boundaries depend only on nearby content, so that an
 * insertion or deletion in a file moves only the cut points next to it and
 * every other chunk is still found in the store. The rule is FastCDC's
 * (Xia et al., "FastCDC: a Fast and Efficient Content-Defined Chunking
 * Approach for Data Deduplication", USENIX ATC 2016): a gear rolling hash,
 * cut-point skipping of the first DDP_CHUNK_MIN bytes, and normalized
 * chunking with two masks. The rule is part of the on-disk format (it decides
 * which chunks exist): the pinned vectors in tests/unit/test_chunker.c must
 * never change.
 *
 * The cut rule, exactly. For a chunk starting at p with n > DDP_CHUNK_MIN
 * bytes available, let end = min(n, DDP_CHUNK_MAX) and
 *
 *     h = 0 before offset DDP_CHUNK_MIN - 64;
 *     h = (h << 1) + gear[p[i]]  (mod 2^64)  for i = DDP_CHUNK_MIN - 64, ...
 *
 * The chunk ends after the first byte i in [DDP_CHUNK_MIN, end) with
 * (h & mask(i)) == 0, i.e. its length is i + 1; if there is none its length
 * is end. mask(i) is MASK_STRICT for i < DDP_CHUNK_AVG and MASK_LOOSE from
 * there on. Starting the hash 64 bytes before the first candidate makes it
 * a pure function of the 64 bytes ending at i (older bytes are shifted out
 * of the 64-bit word), so whether i is a cut point never depends on where
 * the chunk started, only on i's distance from the start.
 *
 * Masks. After the skipped minimum the chunk should grow by about
 * DDP_CHUNK_AVG - DDP_CHUNK_MIN = 32 KiB = 2^15 bytes on average, so the
 * base is 15 bits; normalization level 2 gives 17 bits (p = 2^-17 per byte)
 * before the average point and 13 bits (2^-13) after it. That keeps chunk
 * sizes near 64 KiB (about 66.5 KiB measured on random data) and makes a
 * forced cut at DDP_CHUNK_MAX rare (about e^-8 of chunks). As in FastCDC the
 * bits are spread over the word rather than packed low, so each test looks
 * at many bytes of the window: bit j of a k-bit mask is at position
 * 62 - floor(j * 48 / k), j = 0..k-1, i.e. spread evenly over bits 15..62
 * (bit 63 is left out, which leaves room for FastCDC's two-bytes-per-step
 * variant, whose shifted hash loses the top bit).
 *
 * Gear table. gear[k] is the k-th output (k = 0..255) of splitmix64 seeded
 * with 0x6464702d67656172 ("ddp-gear" in ASCII):
 *
 *     state += 0x9e3779b97f4a7c15;
 *     z = state;
 *     z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
 *     z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
 *     gear[k] = z ^ (z >> 31);
 *
 * It is written out below as a literal so there is nothing to initialize.
 *
 * Speed. The inner loop steps four bytes at a time. The hash after two
 * steps is h*4 + (gear[a]*2 + gear[b]), whose second term does not depend
 * on h, so the loop-carried chain is one shift and one add per two bytes;
 * the four mask tests are separate, predictable, almost never taken
 * branches. Only bytes past the minimum are hashed (plus 64 of warm-up).
 */
#include "store/chunker.h"

_Static_assert(DDP_CHUNK_MIN >= 64, "hash warm-up needs 64 bytes before the minimum");
_Static_assert(DDP_CHUNK_MIN < DDP_CHUNK_AVG && DDP_CHUNK_AVG < DDP_CHUNK_MAX, "bounds out of order");

/* 17 bits: 62 60 57 54 51 48 46 43 40 37 34 31 29 26 23 20 17 */
#define MASK_STRICT UINT64_C(0x52494924a4920000)
/* 13 bits: 62 59 55 51 48 44 40 37 33 29 26 22 18 */
#define MASK_LOOSE UINT64_C(0x4889112224440000)

/* Warm-up length: bytes hashed before the first candidate cut position. */
#define WARMUP 64

static const uint64_t gear[256] = {
	UINT64_C(0x646c8a4d04dd2e91), UINT64_C(0x02af5c1a4b8a504d), UINT64_C(0xf638f0214040af7f),
	UINT64_C(0x4cc65c4c77969c5a), UINT64_C(0x9c3950773d684ab0), UINT64_C(0x8e54ba5fd34af304),
	UINT64_C(0x374f57717efbdcd1), UINT64_C(0xd11a435fc20c9f4f), UINT64_C(0x4af4040030d05e87),
	UINT64_C(0x3b877a123b70ea28), UINT64_C(0x2536fafc3ea1997e), UINT64_C(0x66cdfe6fa123de85),
	UINT64_C(0x71e5dec2aa18d943), UINT64_C(0x6b3550056fed9d74), UINT64_C(0x6355c6364671e178),
	UINT64_C(0x4ecd930cbee54da8), UINT64_C(0x75934784850a100d), UINT64_C(0x530da68fc5fb90d1),
	UINT64_C(0x6099936316041f0a), UINT64_C(0x2126eec67e177d8a), UINT64_C(0x7464760eb32cb694),
	UINT64_C(0xbc5626c68ae40d5c), UINT64_C(0x4c745698d4da76f1), UINT64_C(0x5f7bdf5c2668e687),
	UINT64_C(0x756452c5e9c1a1e6), UINT64_C(0x6c57a563d8ae84ab), UINT64_C(0x9520fbedf57e5c52),
	UINT64_C(0x59e8a650a2deecf6), UINT64_C(0x9a0abdff104468fd), UINT64_C(0x5f6861df681fa8a3),
	UINT64_C(0xab1dd59f31960a2d), UINT64_C(0xb8c1e7a2e2f0d5f7), UINT64_C(0x207fb4bb307269cc),
	UINT64_C(0x2717fda3de11e977), UINT64_C(0xc0262f2b077b833a), UINT64_C(0xb92399680538668e),
	UINT64_C(0x3fa411a5d6e3332f), UINT64_C(0x54ea8789bbd3c0b8), UINT64_C(0x4ac0f74a76cd226c),
	UINT64_C(0x3436b99dbaf13cb2), UINT64_C(0x0bedf53f4d77fb36), UINT64_C(0xd3fb1148c2e9038a),
	UINT64_C(0xadb1c465abb6b875), UINT64_C(0xed4ba852b1d1d7a1), UINT64_C(0xec753332965d79e2),
	UINT64_C(0x7ab1563b616217f8), UINT64_C(0x0dd20fd50413cdf4), UINT64_C(0x4e5c98de6eee8cde),
	UINT64_C(0x82b703c7f0c76710), UINT64_C(0x4d15e8abca728d71), UINT64_C(0xe3c48f072efc1af2),
	UINT64_C(0xcaf419f1024b5c3b), UINT64_C(0x755e9543910379a4), UINT64_C(0x31ad60efa23b8418),
	UINT64_C(0x680835db16fb691d), UINT64_C(0xe1c3c428839e880c), UINT64_C(0x23498e144aa545fb),
	UINT64_C(0xa60ad92c42f5e6b7), UINT64_C(0x87a5a0a69833deb7), UINT64_C(0x96fb9cf7d3090cd8),
	UINT64_C(0xf970b41f755a456f), UINT64_C(0x38d981af36e9c1be), UINT64_C(0xbd289f8771acddae),
	UINT64_C(0x40928e1dbda0fa61), UINT64_C(0xf4555e857bcb24f2), UINT64_C(0x05a8a95a74447903),
	UINT64_C(0xd8d98f0dd92a79b8), UINT64_C(0x8713e663d2188bed), UINT64_C(0xdaea0ed947cb148f),
	UINT64_C(0x8959c7c3104adba5), UINT64_C(0x4e759f3ccf2b996d), UINT64_C(0x213a2c2dd9f349db),
	UINT64_C(0xd5592a10ece59f31), UINT64_C(0xdab7ae2f73311cea), UINT64_C(0x5b6da21d5d4b6d89),
	UINT64_C(0xdeaa404b5fb227cc), UINT64_C(0x56218ab560e69a44), UINT64_C(0x4d4fe976176db675),
	UINT64_C(0x6fcb9e8687a7ef02), UINT64_C(0xd492d0963f660984), UINT64_C(0xa8dd961d6e3817e7),
	UINT64_C(0xa9bb62b62ba2fdb9), UINT64_C(0x85f273529bbcb82e), UINT64_C(0x9fee6fdfd9360f9b),
	UINT64_C(0x5f2b2d55fd16aed3), UINT64_C(0xae2cf7f9a5f6901d), UINT64_C(0x8f1c0aeb357532ba),
	UINT64_C(0x1395ed16bc2d6970), UINT64_C(0x9844ae6d416cdd79), UINT64_C(0xbe2bce653223dc90),
	UINT64_C(0xf8a464055248bc18), UINT64_C(0x5f9f47209ac2ae24), UINT64_C(0xcda2bc0a2714b757),
	UINT64_C(0x5e6f27a92d2bcdd7), UINT64_C(0x6653d10e648329d1), UINT64_C(0x0339a37662d17385),
	UINT64_C(0xf9292d12cb8f23aa), UINT64_C(0xd72167e652ad6963), UINT64_C(0x8498200006a3c22f),
	UINT64_C(0xf925e1e2a4375f2e), UINT64_C(0x595e7b011489d627), UINT64_C(0x38b23ed635b85fa5),
	UINT64_C(0xfec92f7e3a266e38), UINT64_C(0xd55887f31698b8e4), UINT64_C(0x578b104c3cc9713d),
	UINT64_C(0x713d18987ca2eb8b), UINT64_C(0x954760cfb6bfdff8), UINT64_C(0xe4e964e5b809cbab),
	UINT64_C(0xc5001298d646ed11), UINT64_C(0x585dd7269f91a9a9), UINT64_C(0xebbf07805f7b0fde),
	UINT64_C(0xc32527774a309715), UINT64_C(0xc0d8911d347824ce), UINT64_C(0x08c9dd035734b537),
	UINT64_C(0x6e145c811e509ff7), UINT64_C(0x86e0ba34bd417d7b), UINT64_C(0xadb4ea1ee2e8fe72),
	UINT64_C(0xb815915ecf14b3f2), UINT64_C(0xf1f0f3c99065a24d), UINT64_C(0x1f51efab42da8fd1),
	UINT64_C(0xe0031f09429d0d3f), UINT64_C(0x13c4350c8b3e8ec1), UINT64_C(0x86b4c86e875bc2aa),
	UINT64_C(0x0b14b2eb44717d81), UINT64_C(0x306ebea4a7b3c35b), UINT64_C(0x4d851b352f3bd442),
	UINT64_C(0x7208d6fa8acf9f83), UINT64_C(0x6fbc68aef72c4d83), UINT64_C(0x04de6a1fa093b6f7),
	UINT64_C(0x25fb3404b5f67452), UINT64_C(0x6c46d94ecc576fa6), UINT64_C(0x302b876f4f13f084),
	UINT64_C(0x92dc4cf3ec110784), UINT64_C(0x0189cd9d47ea9b21), UINT64_C(0x8b61d9c89efa7496),
	UINT64_C(0xc94be94b3edbc9d6), UINT64_C(0x69352243e8e68d5b), UINT64_C(0xed7281a7ffabf260),
	UINT64_C(0x7a2b971fcb39cc28), UINT64_C(0x7b0b1429b6447f53), UINT64_C(0x99e68cf3abfaa32d),
	UINT64_C(0x1ff881b7dab0aae3), UINT64_C(0x8088fe29f7b02c25), UINT64_C(0x06aee36030df5f35),
	UINT64_C(0xe2b32999ab620d85), UINT64_C(0xbba3b965694d7604), UINT64_C(0x879a9cf2afdc6e0b),
	UINT64_C(0x3b974c27193cde00), UINT64_C(0x714ef29dfe83bc83), UINT64_C(0xc4d64ff5144ff8d3),
	UINT64_C(0x14b1a59a024792ce), UINT64_C(0x0750b181f3c537ba), UINT64_C(0xc99ea3f0559d5d88),
	UINT64_C(0xb861414df8875e84), UINT64_C(0x7ed15fe6d233357e), UINT64_C(0xd11a1bbca73ed756),
	UINT64_C(0x9000f61088583cc2), UINT64_C(0x96a68ce8c40c0e31), UINT64_C(0x7c9b2924a12c69c2),
	UINT64_C(0x296d42f36c8c5347), UINT64_C(0xea664b5a1cab35f6), UINT64_C(0xe9925be205a394c6),
	UINT64_C(0x9c88e5095aac11e9), UINT64_C(0x6874fb59aaffeb6a), UINT64_C(0x1930ca5bd312bd6e),
	UINT64_C(0xb41981b117c1de66), UINT64_C(0x1b8cdb72100302aa), UINT64_C(0xcbbc2a348a048355),
	UINT64_C(0x426568665b929398), UINT64_C(0x2f35ccf40d43bfbd), UINT64_C(0x2748247eb48d278f),
	UINT64_C(0xd296e99f9314f769), UINT64_C(0x7992780de419e9a0), UINT64_C(0x860938a25f5bb6e0),
	UINT64_C(0xb3287712ad1a87dd), UINT64_C(0xbae47d191054d958), UINT64_C(0x7a31f3eb703f0a3c),
	UINT64_C(0x2776bab7a75b0d42), UINT64_C(0x2c94c33bb1c1e8de), UINT64_C(0x6bff06063a6a1834),
	UINT64_C(0x95b9ae1c9df56592), UINT64_C(0xe4fa695a076df212), UINT64_C(0xaf0dca734a90feee),
	UINT64_C(0x4fdf6cc7527a42c4), UINT64_C(0x6db564c7ad4941ae), UINT64_C(0xc77cf322e5d249c0),
	UINT64_C(0x499806ab09f07c86), UINT64_C(0x66a3504d3f879479), UINT64_C(0x8e435cc1513431fc),
	UINT64_C(0x3ccbd87ee75c1f28), UINT64_C(0x83190717ee6e999f), UINT64_C(0xb856fb1c6d618af7),
	UINT64_C(0x6fad442e385fa30a), UINT64_C(0xa0fe2a2dc31c4736), UINT64_C(0xbec88861ffd9234e),
	UINT64_C(0xeb805dcf886fda7c), UINT64_C(0x5055d5b131697e72), UINT64_C(0x9eff2de128167398),
	UINT64_C(0xaa91dfe4c4febd6a), UINT64_C(0x82812fc4940214b5), UINT64_C(0xe9eeadd1d123045b),
	UINT64_C(0x2a2d7bbe930cae27), UINT64_C(0x6d88ceb7070f6fc0), UINT64_C(0x87baf4c9d2e5630a),
	UINT64_C(0xa94fd4c80082f770), UINT64_C(0x9baa79bc615d04a3), UINT64_C(0x6c1966fb62ee78c6),
	UINT64_C(0x8e4e377999caae49), UINT64_C(0xba21b0384c1e9bf2), UINT64_C(0x1ac0faddb7d1f167),
	UINT64_C(0x6a262fefc7bebfdf), UINT64_C(0xeb2633a09049cb39), UINT64_C(0x7e84b76644f559b2),
	UINT64_C(0x005e8caef3e2055d), UINT64_C(0xc8116b9dd847b1ba), UINT64_C(0x7db3973f0b588a05),
	UINT64_C(0x52201bbb4f8bc92e), UINT64_C(0xadbd27f07ddaa550), UINT64_C(0xf86df5de82b86483),
	UINT64_C(0x58eb34cf5b185f4b), UINT64_C(0x66079dfa8b3df97b), UINT64_C(0xafbdc4aa391d769e),
	UINT64_C(0xca38458d89b5c479), UINT64_C(0x3fbf7d41a7eb6173), UINT64_C(0x18a2aa548f256b5b),
	UINT64_C(0x6242ad0a4d051616), UINT64_C(0x69ba9497c74f1f42), UINT64_C(0xc0adf4a3958fd650),
	UINT64_C(0x1424be379435415d), UINT64_C(0xa318b0c05a27de14), UINT64_C(0x1b0d644957cf9e60),
	UINT64_C(0x0ecd193526dc782b), UINT64_C(0xa84a9d50c86e7146), UINT64_C(0xde7a10a1b68415a1),
	UINT64_C(0xf9ce1718e5eb8006), UINT64_C(0x5942b89515a4242e), UINT64_C(0x9e1753342988f0d5),
	UINT64_C(0x4897e8d3a454bb12), UINT64_C(0x0899ae04f2d2105f), UINT64_C(0xec6a13ac4dc79491),
	UINT64_C(0x52d2f1223d4fb693), UINT64_C(0x08e2aa747ea4bed4), UINT64_C(0xff9f99cdf224ad45),
	UINT64_C(0x297153ae3b202ba2), UINT64_C(0x54ec9b8ab3a8e7bf), UINT64_C(0xee7c529dbdc8e00d),
	UINT64_C(0x6423fa69e6c147b3), UINT64_C(0xd7e6f516e43686da), UINT64_C(0x76ccf39de0737cf3),
	UINT64_C(0x7f86ad86a2ab5224), UINT64_C(0xb08f5f66407261b0), UINT64_C(0x5900a33d21f4a3f4),
	UINT64_C(0x912aaea45b29dc0d), UINT64_C(0xadf49aeb47667a29), UINT64_C(0xd363d309d66c3e72),
	UINT64_C(0x19ba95cc09879121),
};

#if defined(__GNUC__)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define UNLIKELY(x) (x)
#endif

/*
 * Continue the hash *hp over p[i..end), testing mask after every byte.
 * Returns the chunk length (cut position + 1) of the first hit, or 0 with
 * *hp updated if there is none.
 */
static size_t scan(const uint8_t *p, size_t i, size_t end, uint64_t *hp, uint64_t mask)
{
    uint64_t h = *hp;

    for (; i + 4 <= end; i += 4) {
        const uint64_t a = gear[p[i]], b = gear[p[i + 1]];
        const uint64_t c = gear[p[i + 2]], d = gear[p[i + 3]];
        const uint64_t h0 = (h << 1) + a;
        const uint64_t h1 = (h << 2) + ((a << 1) + b);
        const uint64_t h2 = (h1 << 1) + c;
        const uint64_t h3 = (h1 << 2) + ((c << 1) + d);
        if (UNLIKELY((h0 & mask) == 0))
            return i + 1;
        if (UNLIKELY((h1 & mask) == 0))
            return i + 2;
        if (UNLIKELY((h2 & mask) == 0))
            return i + 3;
        if (UNLIKELY((h3 & mask) == 0))
            return i + 4;
        h = h3;
    }
    for (; i < end; i++) {
        h = (h << 1) + gear[p[i]];
        if ((h & mask) == 0)
            return i + 1;
    }
    *hp = h;
    return 0;
}

size_t ddp_chunker_cut(const uint8_t *p, size_t n)
{
    if (n <= DDP_CHUNK_MIN)
        return n;

    const size_t end = n < DDP_CHUNK_MAX ? n : DDP_CHUNK_MAX;
    const size_t mid = end < DDP_CHUNK_AVG ? end : DDP_CHUNK_AVG;
    uint64_t h = 0;
    size_t len;

    for (size_t i = DDP_CHUNK_MIN - WARMUP; i < DDP_CHUNK_MIN; i++)
        h = (h << 1) + gear[p[i]];
    if ((len = scan(p, DDP_CHUNK_MIN, mid, &h, MASK_STRICT)) != 0)
        return len;
    if ((len = scan(p, mid, end, &h, MASK_LOOSE)) != 0)
        return len;
    return end;
}
