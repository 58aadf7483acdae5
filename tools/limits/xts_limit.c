/* The cipher's limit for dm-crypt: libcrypto's EVP aes-256-xts (AES-NI) on one core, run
 * as dm-crypt runs it, each 512-byte sector with its own IV (the sector number, 64-bit
 * little-endian, zero-padded), over a 1 MiB buffer for about `seconds` (argument 1,
 * default 1); and on 16 KiB units, the largest `openssl speed -evp aes-256-xts` times.
 * Prints one JSON line per unit: {"unit":512,"mib_s":...}. */
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 1;
	enum { bytes = 1 << 20 };
	unsigned char key[64], iv[16] = { 0 };
	unsigned char *buffer = malloc(bytes);
	static const int units[] = { 512, 16384 };
	for (int i = 0; i < 64; i++)
		key[i] = (unsigned char)(i * 29 + 3);
	memset(buffer, 0x5a, bytes);
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	if (!buffer || !ctx || EVP_EncryptInit_ex(ctx, EVP_aes_256_xts(), NULL, key, NULL) != 1)
		return 1;
	for (int u = 0; u < 2; u++) {
		int unit = units[u], length;
		long passes = 0;
		uint64_t sector = 0;
		double start = now(), elapsed;
		do {
			for (int at = 0; at < bytes; at += unit, sector++) {
				uint64_t le = sector; /* x86-64: little-endian already */
				memcpy(iv, &le, 8);
				if (EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, iv) != 1 ||
				    EVP_EncryptUpdate(ctx, buffer + at, &length, buffer + at, unit) != 1)
					return 1;
			}
			passes++;
			elapsed = now() - start;
		} while (elapsed < seconds);
		printf("{\"unit\":%d,\"mib_s\":%.1f}\n", unit, passes / elapsed);
	}
	EVP_CIPHER_CTX_free(ctx);
	free(buffer);
	return 0;
}
