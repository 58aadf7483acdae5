/*
 * handoff_limit.c - the floor under an asynchronous completion on this machine: a request
 * handed to another thread (the doorbell) and its completion handed back (the interrupt),
 * with nothing done in between, two ways:
 *   c-handoff-sleep  each side sleeps on a pthread condition variable until the other
 *                    signals it (on a VM, waking an idle CPU is the cost);
 *   c-handoff-poll   each side spins on the other's counter (a cache line crossing CPUs
 *                    twice), which is what dmaemu's NVMe queue does within its poll window.
 *
 *   cc -O2 -pthread -o handoff_limit handoff_limit.c && ./handoff_limit [ROUND_TRIPS]
 *
 * Prints one JSON line per way: impl, round_trips, ns_per_round_trip.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t rung = PTHREAD_COND_INITIALIZER, completed = PTHREAD_COND_INITIALIZER;
static _Atomic long requests, completions;
static long total;
static int polling;

static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The device: waits for the doorbell, completes, raises the interrupt. */
static void *device(void *unused) {
    (void)unused;
    for (long done = 0; done < total; done++) {
        if (polling) {
            while (atomic_load(&requests) == done)
                __builtin_ia32_pause();
            atomic_store(&completions, done + 1);
            continue;
        }
        pthread_mutex_lock(&lock);
        while (atomic_load(&requests) == done)
            pthread_cond_wait(&rung, &lock);
        atomic_store(&completions, done + 1);
        pthread_cond_broadcast(&completed);
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

static double round_trip(int poll) {
    pthread_t thread;
    polling = poll;
    atomic_store(&requests, 0);
    atomic_store(&completions, 0);
    if (pthread_create(&thread, NULL, device, NULL))
        return -1;
    double start = seconds();
    for (long i = 1; i <= total; i++) {
        if (poll) {
            atomic_store(&requests, i);
            while (atomic_load(&completions) < i)
                __builtin_ia32_pause();
            continue;
        }
        pthread_mutex_lock(&lock);
        atomic_store(&requests, i);
        pthread_cond_signal(&rung);
        while (atomic_load(&completions) < i)
            pthread_cond_wait(&completed, &lock);
        pthread_mutex_unlock(&lock);
    }
    double elapsed = seconds() - start;
    pthread_join(thread, NULL);
    return elapsed * 1e9 / total;
}

int main(int argc, char **argv) {
    total = argc > 1 ? atol(argv[1]) : 50000;
    if (total <= 0) {
        fprintf(stderr, "handoff_limit: ROUND_TRIPS must be positive\n");
        return 1;
    }
    for (int poll = 0; poll <= 1; poll++) {
        double ns = round_trip(poll);
        if (ns < 0) {
            perror("handoff_limit: pthread_create");
            return 1;
        }
        printf("{\"impl\":\"c-handoff-%s\",\"round_trips\":%ld,\"ns_per_round_trip\":%.1f}\n", poll ? "poll" : "sleep", total, ns);
    }
    return 0;
}
