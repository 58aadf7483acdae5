/* The per-CPU page list's limit: what an order-0 alloc+free costs when it is nothing but
 * the pcp list's own work, a compare-and-swap spinlock around popping the head of a list
 * threaded through a mem_map array (and pushing it back), with no batches, no tuning and
 * no buddy behind it; and a bulk of 256 pages popped under one lock, then pushed back one
 * by one. One thread, for about `seconds` (argument 1, default 1) each. Prints
 * {"op":"alloc_free","ns":...} and {"op":"bulk256","alloc_ns":...,"free_ns":...}. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct frame { uint32_t next, prev; uint8_t free_order, alloc_order; uint64_t owner; };
static struct frame *map;
static uint32_t head = UINT32_MAX;
static atomic_uint lock;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static inline void take(void)
{
	unsigned expected = 0;
	while (!atomic_compare_exchange_weak_explicit(&lock, &expected, 1, memory_order_acquire, memory_order_relaxed))
		expected = 0;
}

static inline void release(void) { atomic_store_explicit(&lock, 0, memory_order_release); }

static inline uint32_t pop(void)
{
	uint32_t pfn = head;
	head = map[pfn].next;
	if (head != UINT32_MAX)
		map[head].prev = UINT32_MAX;
	map[pfn].alloc_order = 1;
	return pfn;
}

static inline void push(uint32_t pfn)
{
	map[pfn].alloc_order = 0;
	map[pfn].next = head;
	map[pfn].prev = UINT32_MAX;
	if (head != UINT32_MAX)
		map[head].prev = pfn;
	head = pfn;
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 1;
	enum { pages = 4096 };
	static volatile uint32_t sink;
	uint32_t held[256];
	map = calloc(pages, sizeof(*map));
	if (!map)
		return 1;
	for (uint32_t pfn = pages; pfn-- > 0;)
		push(pfn);
	long pairs = 0;
	double start = now(), elapsed;
	do {
		for (int i = 0; i < 1000; i++) {
			take();
			uint32_t pfn = pop();
			release();
			sink = pfn;
			take();
			push(pfn);
			release();
		}
		pairs += 1000;
		elapsed = now() - start;
	} while (elapsed < seconds * 1e9);
	printf("{\"op\":\"alloc_free\",\"ns\":%.2f}\n", elapsed / pairs);
	long bulks = 0;
	double alloc = 0, freeing = 0;
	start = now();
	do {
		double t0 = now();
		take();
		for (int i = 0; i < 256; i++)
			held[i] = pop();
		release();
		double t1 = now();
		for (int i = 255; i >= 0; i--) {
			take();
			push(held[i]);
			release();
		}
		freeing += now() - t1;
		alloc += t1 - t0;
		bulks++;
	} while (now() - start < seconds * 1e9);
	printf("{\"op\":\"bulk256\",\"alloc_ns\":%.2f,\"free_ns\":%.2f}\n", alloc / bulks / 256, freeing / bulks / 256);
	return 0;
}
