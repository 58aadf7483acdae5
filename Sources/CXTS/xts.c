/* XTS's tweak pass (include/xts.h). Four sectors' chains are walked at once, as each
 * step waits on the one before it. With AVX2 and VPCLMULQDQ a register holds two
 * consecutive tweaks and steps by x^2 (two blocks a step); otherwise, with SSE2 (every
 * x86-64), one tweak a register, stepping by x. */
#include "xts.h"

#include <stdint.h>
#include <string.h>

#ifdef __x86_64__
#include <immintrin.h>

/* T * x: each 64-bit half shifted left by one, the low half's top bit carried into the
 * high half and the high half's top bit folded back as 0x87 (the sign bits of dwords 1 and
 * 3, spread and masked, as gf128mul_x_ble() does). */
static inline __m128i tweak_double(__m128i t)
{
	__m128i tops = _mm_srai_epi32(_mm_shuffle_epi32(t, _MM_SHUFFLE(1, 1, 3, 3)), 31);
	return _mm_xor_si128(_mm_slli_epi64(t, 1), _mm_and_si128(tops, _mm_set_epi64x(1, 0x87)));
}

static inline void tweak_xor(uint8_t *to, const uint8_t *from, __m128i t)
{
	_mm_storeu_si128((__m128i *)to, _mm_xor_si128(_mm_loadu_si128((const __m128i *)from), t));
}

void xts_xor_tweaks_sse2(void *dst, const void *src, const void *tweaks, size_t sectors, size_t sector_size)
{
	uint8_t *d = dst;
	const uint8_t *f = src;
	const __m128i *t0 = tweaks;
	size_t blocks = sector_size / 16, s = 0;

	for (; s + 4 <= sectors; s += 4) {
		uint8_t *p = d + s * sector_size;
		const uint8_t *q = f + s * sector_size;
		__m128i a = _mm_loadu_si128(t0 + s), b = _mm_loadu_si128(t0 + s + 1);
		__m128i c = _mm_loadu_si128(t0 + s + 2), e = _mm_loadu_si128(t0 + s + 3);
		for (size_t j = 0; j < blocks; j++, p += 16, q += 16) {
			tweak_xor(p, q, a);
			tweak_xor(p + sector_size, q + sector_size, b);
			tweak_xor(p + 2 * sector_size, q + 2 * sector_size, c);
			tweak_xor(p + 3 * sector_size, q + 3 * sector_size, e);
			a = tweak_double(a);
			b = tweak_double(b);
			c = tweak_double(c);
			e = tweak_double(e);
		}
	}
	for (; s < sectors; s++) {
		uint8_t *p = d + s * sector_size;
		const uint8_t *q = f + s * sector_size;
		__m128i a = _mm_loadu_si128(t0 + s);
		for (size_t j = 0; j < blocks; j++, p += 16, q += 16) {
			tweak_xor(p, q, a);
			a = tweak_double(a);
		}
	}
}

#define AVX2 __attribute__((target("avx2,vpclmulqdq")))

/* (T_j, T_(j+1)) to (T_(j+2), T_(j+3)): each lane times x^2. Both halves shift left by
 * two; the low half's top two bits go into the high half, the high half's come back
 * reduced, carry-less times 0x87 (so 3 is 0x189, not 0x195). */
AVX2 static inline __m256i tweak_pair_step(__m256i t)
{
	__m256i tops = _mm256_shuffle_epi32(_mm256_srli_epi64(t, 62), _MM_SHUFFLE(1, 0, 3, 2));
	__m256i folded = _mm256_clmulepi64_epi128(tops, _mm256_set_epi64x(0, 0x87, 0, 0x87), 0x00);
	__m256i carried = _mm256_and_si256(tops, _mm256_set_epi64x(-1, 0, -1, 0));
	return _mm256_xor_si256(_mm256_slli_epi64(t, 2), _mm256_xor_si256(folded, carried));
}

AVX2 static inline __m256i tweak_pair(const __m128i *t0)
{
	__m128i t = _mm_loadu_si128(t0);
	return _mm256_set_m128i(tweak_double(t), t);
}

AVX2 static inline void tweak_pair_xor(uint8_t *to, const uint8_t *from, __m256i t)
{
	_mm256_storeu_si256((__m256i *)to, _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)from), t));
}

AVX2 void xts_xor_tweaks_avx2(void *dst, const void *src, const void *tweaks, size_t sectors, size_t sector_size)
{
	uint8_t *d = dst;
	const uint8_t *f = src;
	const __m128i *t0 = tweaks;
	size_t pairs = sector_size / 32, s = 0;

	for (; s + 4 <= sectors; s += 4) {
		uint8_t *p = d + s * sector_size;
		const uint8_t *q = f + s * sector_size;
		__m256i a = tweak_pair(t0 + s), b = tweak_pair(t0 + s + 1);
		__m256i c = tweak_pair(t0 + s + 2), e = tweak_pair(t0 + s + 3);
		for (size_t j = 0; j < pairs; j++, p += 32, q += 32) {
			tweak_pair_xor(p, q, a);
			tweak_pair_xor(p + sector_size, q + sector_size, b);
			tweak_pair_xor(p + 2 * sector_size, q + 2 * sector_size, c);
			tweak_pair_xor(p + 3 * sector_size, q + 3 * sector_size, e);
			a = tweak_pair_step(a);
			b = tweak_pair_step(b);
			c = tweak_pair_step(c);
			e = tweak_pair_step(e);
		}
	}
	for (; s < sectors; s++) {
		uint8_t *p = d + s * sector_size;
		const uint8_t *q = f + s * sector_size;
		__m256i a = tweak_pair(t0 + s);
		for (size_t j = 0; j < pairs; j++, p += 32, q += 32) {
			tweak_pair_xor(p, q, a);
			a = tweak_pair_step(a);
		}
	}
}

int xts_has_avx2(void)
{
	static int known = -1;
	if (known < 0)
		known = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("vpclmulqdq");
	return known;
}

void xts_xor_tweaks(void *dst, const void *src, const void *tweaks, size_t sectors, size_t sector_size)
{
	if (sector_size % 32 == 0 && xts_has_avx2())
		xts_xor_tweaks_avx2(dst, src, tweaks, sectors, sector_size);
	else
		xts_xor_tweaks_sse2(dst, src, tweaks, sectors, sector_size);
}
#else
/* Elsewhere, the halves as integers (a little-endian machine's). */
void xts_xor_tweaks(void *dst, const void *src, const void *tweaks, size_t sectors, size_t sector_size)
{
	uint8_t *d = dst;
	const uint8_t *f = src;
	for (size_t s = 0; s < sectors; s++) {
		uint64_t t[2], b[2];
		memcpy(t, (const uint8_t *)tweaks + s * 16, 16);
		for (size_t j = 0; j < sector_size / 16; j++) {
			uint8_t *p = d + s * sector_size + j * 16;
			memcpy(b, f + s * sector_size + j * 16, 16);
			b[0] ^= t[0];
			b[1] ^= t[1];
			memcpy(p, b, 16);
			uint64_t carry = t[1] >> 63;
			t[1] = t[1] << 1 | t[0] >> 63;
			t[0] = t[0] << 1 ^ (0x87 & -carry);
		}
	}
}
#endif
