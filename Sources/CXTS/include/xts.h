/* XTS's tweak pass, in C for the vector unit: what the kernel's crypto/xts.c does around
 * ecb(aes) in xts_xor_tweak(), which Swift's code generator turns into scalar halves and
 * spills (the whole of AESXTS.convert's time beside libcrypto's ECB). Only DMCrypt
 * imports it. */
#ifndef DMAEMU_XTS_H
#define DMAEMU_XTS_H

#include <stddef.h>

/* Writes to `dst` every 16-byte block of `sectors` consecutive `sector_size`-byte sectors at
 * `src` XORed with its tweak: T_0 the sector's 16 bytes at `tweaks` (E_K2 of its IV,
 * already encrypted), T_(i+1) = T_i * x in GF(2^128) (IEEE 1619, little-endian). Run before
 * the block cipher (from the plaintext or ciphertext into where the result goes, as the
 * kernel's skcipher takes a source and a destination) and after it (in place: dst == src). */
void xts_xor_tweaks(void *dst, const void *src, const void *tweaks, size_t sectors, size_t sector_size);

#ifdef __x86_64__
/* The two ways it is done, for the tests: xts_xor_tweaks() takes the second where the CPU
 * has AVX2 and VPCLMULQDQ (xts_has_avx2()) and sector_size is a multiple of 32. */
void xts_xor_tweaks_sse2(void *dst, const void *src, const void *tweaks, size_t sectors, size_t sector_size);
void xts_xor_tweaks_avx2(void *dst, const void *src, const void *tweaks, size_t sectors, size_t sector_size);
int xts_has_avx2(void);
#endif

#endif
