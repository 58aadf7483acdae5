/*
 * memcpy_limit.c - the floor under one swiotlb bounce on this machine: a memcpy of 4 KiB
 * and of 64 KiB (the small and big I/O of the swiotlb seed), each copy to the next slot
 * of a 64 MiB destination so that, like bounce slots, the targets are mostly not cached.
 *
 *   cc -O2 -o memcpy_limit memcpy_limit.c && ./memcpy_limit
 *
 * Prints one JSON line per size: impl, bytes, ns_per_copy, gb_per_s.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(void) {
    enum { SOURCE = 4 << 20, DESTINATION = 64 << 20 };
    unsigned char *source = aligned_alloc(4096, SOURCE), *destination = aligned_alloc(4096, DESTINATION);
    if (!source || !destination) {
        perror("memcpy_limit");
        return 1;
    }
    for (size_t i = 0; i < SOURCE; i++)
        source[i] = (unsigned char)(i * 131);
    memset(destination, 0, DESTINATION); /* fault every page in before timing */
    const size_t sizes[] = { 4096, 65536 };
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t bytes = sizes[k];
        size_t copies = (size_t)(2e9 / (double)bytes); /* 2 GB moved per size */
        size_t to = 0, from = 0;
        double start = seconds();
        for (size_t i = 0; i < copies; i++) {
            memcpy(destination + to, source + from, bytes);
            to = (to + bytes) % DESTINATION;
            from = (from + bytes) % SOURCE;
        }
        double elapsed = seconds() - start;
        /* Keep the copies: a compiler may not drop what is read back. */
        volatile unsigned char sink = destination[(to + DESTINATION - 1) % DESTINATION];
        (void)sink;
        printf("{\"impl\":\"memcpy\",\"bytes\":%zu,\"ns_per_copy\":%.1f,\"gb_per_s\":%.2f}\n", bytes,
               elapsed / (double)copies * 1e9, (double)copies * (double)bytes / elapsed / 1e9);
    }
    return 0;
}
