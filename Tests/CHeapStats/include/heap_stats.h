// Heap allocations made by the calling thread, counted by interposing the allocator in
// the test binary, for tests that prove a hot path allocates nothing. Per thread, so
// tests running in parallel do not disturb each other.
#include <stddef.h>
size_t thread_heap_allocations(void);
/// 0 when a sanitizer owns malloc and nothing is counted.
int heap_stats_available(void);
