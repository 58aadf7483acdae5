/*
 * pool_limit.c - how fast the mpt3sas chain-pool loop can go on this machine: COUNT
 * blocks of SIZE bytes allocated, then freed in allocation order, by the smallest pool
 * of each kernel shape, over pages taken from one reserved arena (no page allocator):
 *
 *   stack   v6.4+: free blocks on one LIFO list across all pages, linked through the
 *           blocks themselves; alloc and free are a pop and a push.
 *   legacy  <= v6.3: a list of pages, each with an in-page chain of free offsets; alloc
 *           walks the pages for one with room, free walks them for the block's page.
 *           A block may not end at the page's end (the ">=" test), and the blocks
 *           column counts PAGE / SIZE per page, as the kernel's does.
 *
 *   cc -O2 -o pool_limit pool_limit.c && ./pool_limit [COUNT=373959] [stack|legacy] [SIZE=128]
 *
 * Prints one JSON line: impl, count, size, alloc_ms, free_ms, pages, blocks.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

enum { PAGE_SIZE = 4096 };

static double ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* The arena stands in for coherent pages: page i is at arena + i * PAGE_SIZE and has
 * dma address DMA_BASE + i * PAGE_SIZE. */
#define DMA_BASE 0x100000000ull
static unsigned char *arena;
static uint32_t pages_taken;

static uint32_t take_page(void) { return pages_taken++; }
static unsigned char *page_addr(uint32_t page) { return arena + (size_t)page * PAGE_SIZE; }

/* --- stack ------------------------------------------------------------------------- */

struct free_block { struct free_block *next; };
static struct free_block *stack_top;
static size_t stack_blocks;

static void *stack_alloc(unsigned size, uint64_t *dma) {
    if (stack_top == NULL) {
        uint32_t page = take_page();
        unsigned char *base = page_addr(page);
        /* Push the page's blocks last to first, so the first is on top. */
        for (int off = (PAGE_SIZE / size - 1) * size; off >= 0; off -= size) {
            struct free_block *b = (struct free_block *)(base + off);
            b->next = stack_top;
            stack_top = b;
            stack_blocks++;
        }
    }
    struct free_block *b = stack_top;
    stack_top = b->next;
    *dma = DMA_BASE + (uint64_t)((unsigned char *)b - arena);
    return b;
}

static void stack_free(void *block) {
    struct free_block *b = block;
    b->next = stack_top;
    stack_top = b;
}

/* --- legacy ------------------------------------------------------------------------ */

struct legacy_page {
    uint32_t page;
    uint32_t first_free; /* offset of the first free block, PAGE_SIZE when full */
    uint32_t in_use;
};
static struct legacy_page *legacy_pages; /* newest last; searched newest first */
static size_t legacy_count, legacy_blocks;

static struct legacy_page *legacy_new_page(unsigned size) {
    struct legacy_page *lp = &legacy_pages[legacy_count++];
    lp->page = take_page();
    lp->first_free = 0;
    lp->in_use = 0;
    unsigned char *base = page_addr(lp->page);
    uint32_t off = 0;
    while (off < PAGE_SIZE) {
        uint32_t next = off + size;
        if (next + size >= PAGE_SIZE) /* the kernel's ">=": the last block is lost */
            next = PAGE_SIZE;
        memcpy(base + off, &next, sizeof next);
        off = next;
    }
    legacy_blocks += PAGE_SIZE / size;
    return lp;
}

static void *legacy_alloc(unsigned size, uint64_t *dma) {
    struct legacy_page *lp = NULL;
    for (size_t i = legacy_count; i-- > 0;)
        if (legacy_pages[i].first_free < PAGE_SIZE) {
            lp = &legacy_pages[i];
            break;
        }
    if (lp == NULL)
        lp = legacy_new_page(size);
    uint32_t off = lp->first_free;
    unsigned char *block = page_addr(lp->page) + off;
    memcpy(&lp->first_free, block, sizeof lp->first_free);
    lp->in_use++;
    *dma = DMA_BASE + (uint64_t)lp->page * PAGE_SIZE + off;
    return block;
}

static void legacy_free(void *block, uint64_t dma) {
    for (size_t i = legacy_count; i-- > 0;) {
        struct legacy_page *lp = &legacy_pages[i];
        uint64_t start = DMA_BASE + (uint64_t)lp->page * PAGE_SIZE;
        if (dma < start || dma >= start + PAGE_SIZE)
            continue;
        memcpy(block, &lp->first_free, sizeof lp->first_free);
        lp->first_free = (uint32_t)(dma - start);
        lp->in_use--;
        return;
    }
    abort();
}

int main(int argc, char **argv) {
    unsigned count = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 373959;
    int legacy = argc > 2 && strcmp(argv[2], "legacy") == 0;
    unsigned size = argc > 3 ? (unsigned)strtoul(argv[3], NULL, 10) : 128;
    if (size < sizeof(struct free_block) || size > PAGE_SIZE / 2) {
        fprintf(stderr, "pool_limit: size must be %zu..%d\n", sizeof(struct free_block), PAGE_SIZE / 2);
        return 2;
    }
    size_t most_pages = (size_t)count / (PAGE_SIZE / size - 1) + 2;
    arena = mmap(NULL, most_pages * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    legacy_pages = calloc(most_pages, sizeof *legacy_pages);
    void **blocks = malloc((size_t)count * sizeof *blocks);
    uint64_t *dmas = malloc((size_t)count * sizeof *dmas);
    if (arena == MAP_FAILED || !legacy_pages || !blocks || !dmas) {
        perror("pool_limit");
        return 1;
    }

    double start = ms();
    for (unsigned i = 0; i < count; i++)
        blocks[i] = legacy ? legacy_alloc(size, &dmas[i]) : stack_alloc(size, &dmas[i]);
    double allocated = ms();
    for (unsigned i = 0; i < count; i++)
        legacy ? legacy_free(blocks[i], dmas[i]) : stack_free(blocks[i]);
    double freed = ms();

    printf("{\"impl\":\"c-%s\",\"count\":%u,\"size\":%u,\"alloc_ms\":%.3f,\"free_ms\":%.3f,\"pages\":%u,\"blocks\":%zu}\n",
           legacy ? "legacy" : "stack", count, size, allocated - start, freed - allocated, pages_taken,
           legacy ? legacy_blocks : stack_blocks);
    return 0;
}
