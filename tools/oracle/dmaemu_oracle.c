// SPDX-License-Identifier: GPL-2.0
/*
 * dmaemu_oracle: runs a script of dma pool operations on a platform device of a real
 * kernel and prints where each block landed, for dmaemu's tests to hold its engines to
 * (tools/oracle/oracle.sh boots Debian's kernels in QEMU with it).
 *
 *   insmod dmaemu_oracle.ko script="create 64 8 0;alloc 200;free even 0;alloc 50"
 *
 *   create SIZE ALIGN BOUNDARY   dma_pool_create("oracle", dev, ...)
 *   alloc N                      N x dma_pool_alloc(), each appended to the live list
 *   free ORDER COUNT             dma_pool_free() of COUNT live blocks (0: all it picks):
 *                                fwd and rev from either end, even and odd by position
 *   free rand SEED COUNT         COUNT blocks picked by glibc's TYPE_0 LCG from SEED
 *   list                         the pool's free blocks in the order alloc takes them:
 *                                "list", then on 6.4+ "L <page> <offset>" for each block of
 *                                the pool's free stack; before 6.4, for each page from the
 *                                head of page_list, "C <page> <in_use>" and its in-page
 *                                chain as L lines. struct dma_pool is private to
 *                                mm/dmapool.c: oracle.sh takes the members' offsets from the
 *                                kernel's BTF with pahole into oracle_layout.h.
 *
 * Each alloc prints "oracle: A <n> <page> <offset>": its page as the pool's n-th page
 * seen (by the page's dma address, pages being buddy blocks of the pool's allocation),
 * its offset in that page. The pool stays until rmmod, so that the device's `pools` file
 * can be read.
 *
 * Streaming maps through swiotlb (the guest boots with swiotlb=force):
 *
 *   device MINALIGN              dma_set_min_align_mask()
 *   sync                         map and unmap 256 KiB: the area's next search starts at
 *                                a segment boundary, whatever the boot mapped before; the
 *                                slots printed after it count from that map's first slot
 *   map SIZE OFFSET              dma_map_single(TO_DEVICE) of SIZE bytes at OFFSET into
 *                                fresh pages: "M <n> <slot> <offset in slot>" or "M <n> failed"
 *   unmap N                      dma_unmap_single() of map N
 *   swiotlb                      "T <start> <slots>": the device's default swiotlb pool
 *
 * Maps still live at the end stay until rmmod, so that debugfs's counters can be read.
 */
#include <linux/dma-mapping.h>
#include <linux/swiotlb.h>
#include <linux/version.h>
#include <linux/dmapool.h>
#include <linux/module.h>
#include <linux/platform_device.h>
#include <linux/slab.h>
#include <linux/string.h>
#include "oracle_layout.h"

static char *script = "";
module_param(script, charp, 0444);
MODULE_PARM_DESC(script, "the operations, separated by ';'");

#define MAX_BLOCKS 16384
#define MAX_PAGES 16384

static struct platform_device *pdev;
static struct dma_pool *pool;
static size_t page_bytes;
static void **vaddrs;
static dma_addr_t *dmas;
static int live;
static dma_addr_t *pages;
static int npages;
static int allocated;

#define MAX_MAPS 4096
struct mapping {
	struct page *pages;
	unsigned int order;
	dma_addr_t dma;
	size_t size;
};
static struct mapping *maps;
static int nmaps;
static phys_addr_t slot_base;

/* Maps SIZE bytes at OFFSET into pages of their own; the mapping, or DMA_MAPPING_ERROR. */
static dma_addr_t map_one(size_t size, size_t offset)
{
	struct mapping *m;
	unsigned int order = get_order(size + offset);
	struct page *pages;

	if (nmaps == MAX_MAPS)
		return DMA_MAPPING_ERROR;
	pages = alloc_pages(GFP_KERNEL, order);
	if (!pages)
		return DMA_MAPPING_ERROR;
	m = &maps[nmaps++];
	m->pages = pages;
	m->order = order;
	m->size = size;
	m->dma = dma_map_single(&pdev->dev, page_address(pages) + offset, size, DMA_TO_DEVICE);
	if (dma_mapping_error(&pdev->dev, m->dma))
		m->dma = DMA_MAPPING_ERROR;
	return m->dma;
}

static void unmap_one(int n)
{
	struct mapping *m = &maps[n];

	if (!m->pages)
		return;
	if (m->dma != DMA_MAPPING_ERROR)
		dma_unmap_single(&pdev->dev, m->dma, m->size, DMA_TO_DEVICE);
	__free_pages(m->pages, m->order);
	m->pages = NULL;
}

static int pool_page(dma_addr_t base)
{
	int i;

	for (i = 0; i < npages; i++)
		if (pages[i] == base)
			return i;
	if (npages == MAX_PAGES)
		return -1;
	pages[npages] = base;
	return npages++;
}

static int do_alloc(int n)
{
	while (n-- > 0) {
		dma_addr_t dma, base;
		void *vaddr;

		if (live == MAX_BLOCKS)
			return -ENOSPC;
		vaddr = dma_pool_alloc(pool, GFP_KERNEL, &dma);
		if (!vaddr) {
			pr_info("oracle: A %d failed\n", allocated++);
			continue;
		}
		base = dma & ~((dma_addr_t)page_bytes - 1);
		pr_info("oracle: A %d %d %llu\n", allocated++, pool_page(base), (unsigned long long)(dma - base));
		vaddrs[live] = vaddr;
		dmas[live] = dma;
		live++;
	}
	return 0;
}

static void free_at(int i)
{
	dma_pool_free(pool, vaddrs[i], dmas[i]);
	vaddrs[i] = NULL;
}

/* Drops the freed entries, keeping the others in order. */
static void compact(void)
{
	int i, j = 0;

	for (i = 0; i < live; i++) {
		if (!vaddrs[i])
			continue;
		vaddrs[j] = vaddrs[i];
		dmas[j] = dmas[i];
		j++;
	}
	live = j;
}

static void do_free(const char *order, unsigned int a, unsigned int b)
{
	int i, count = 0;

	if (!strcmp(order, "fwd") || !strcmp(order, "rev")) {
		int n = a ? min_t(int, a, live) : live;

		for (i = 0; i < n; i++)
			free_at(!strcmp(order, "fwd") ? i : live - 1 - i);
	} else if (!strcmp(order, "even") || !strcmp(order, "odd")) {
		for (i = !strcmp(order, "odd"); i < live && (!a || count < a); i += 2, count++)
			free_at(i);
	} else if (!strcmp(order, "rand")) {
		/* rand SEED COUNT: glibc's TYPE_0 LCG, as the test replays it */
		unsigned int x = a;
		int n = b ? min_t(int, b, live) : live;

		while (count < n) {
			x = (x * 1103515245u + 12345u) & 0x7fffffff;
			i = x % live;
			if (!vaddrs[i])
				continue;
			free_at(i);
			count++;
		}
	}
	compact();
}

#define MEMBER(type, base, offset) (*(type *)((char *)(base) + (offset)))

/* The free list as mm/dmapool.c keeps it, read through the BTF offsets. */
static void do_list(void)
{
	pr_info("oracle: list\n");
#ifdef ORACLE_DMA_POOL_NEXT_BLOCK
	{
		void *block = MEMBER(void *, pool, ORACLE_DMA_POOL_NEXT_BLOCK);
		int n = 0;

		/* A block links to the next one popped; a circular chain would be a kernel bug. */
		while (block && n++ < MAX_BLOCKS * 4) {
			dma_addr_t dma = MEMBER(dma_addr_t, block, ORACLE_DMA_BLOCK_DMA);
			dma_addr_t base = dma & ~((dma_addr_t)page_bytes - 1);

			pr_info("oracle: L %d %llu\n", pool_page(base), (unsigned long long)(dma - base));
			block = MEMBER(void *, block, ORACLE_DMA_BLOCK_NEXT_BLOCK);
		}
	}
#else
	{
		struct list_head *head = (struct list_head *)((char *)pool + ORACLE_DMA_POOL_PAGE_LIST);
		size_t allocation = MEMBER(size_t, pool, ORACLE_DMA_POOL_ALLOCATION);
		struct list_head *at;

		for (at = head->next; at != head; at = at->next) {
			void *page = (char *)at - ORACLE_DMA_PAGE_PAGE_LIST;
			char *vaddr = MEMBER(char *, page, ORACLE_DMA_PAGE_VADDR);
			int index = pool_page(MEMBER(dma_addr_t, page, ORACLE_DMA_PAGE_DMA));
			unsigned int offset = MEMBER(unsigned int, page, ORACLE_DMA_PAGE_OFFSET);
			int n = 0;

			pr_info("oracle: C %d %u\n", index, MEMBER(unsigned int, page, ORACLE_DMA_PAGE_IN_USE));
			/* The chain ends at an offset past the page: each free block's first int links on. */
			while (offset < allocation && n++ < MAX_BLOCKS) {
				pr_info("oracle: L %d %u\n", index, offset);
				offset = *(unsigned int *)(vaddr + offset);
			}
		}
	}
#endif
}

static int run(char *text)
{
	char *step;

	while ((step = strsep(&text, ";")) != NULL) {
		char verb[8], order[8];
		unsigned int x, y, z;
		int n;

		if (sscanf(step, "create %u %u %u", &x, &y, &z) == 3) {
			pool = dma_pool_create("oracle", &pdev->dev, x, y, z);
			if (!pool)
				return -EINVAL;
			page_bytes = PAGE_SIZE << get_order(max_t(size_t, x, PAGE_SIZE));
			pr_info("oracle: created %u %u %u\n", x, y, z);
		} else if (sscanf(step, "alloc %u", &x) == 1 && pool) {
			if (do_alloc(x))
				return -ENOSPC;
		} else if (!strcmp(strim(step), "list") && pool) {
			do_list();
		} else if (sscanf(step, "device %u", &x) == 1) {
			dma_set_min_align_mask(&pdev->dev, x);
		} else if (!strcmp(strim(step), "sync")) {
			dma_addr_t dma = map_one(SZ_256K, 0);

			if (dma == DMA_MAPPING_ERROR)
				return -ENOSPC;
			slot_base = dma;
			unmap_one(nmaps - 1);
			pr_info("oracle: S\n");
		} else if (sscanf(step, "map %u %u", &x, &y) == 2) {
			dma_addr_t dma = map_one(x, y);

			if (dma == DMA_MAPPING_ERROR)
				pr_info("oracle: M %d failed\n", nmaps - 1);
			else
				pr_info("oracle: M %d %lld %llu\n", nmaps - 1, ((long long)dma - (long long)slot_base) >> IO_TLB_SHIFT,
					(unsigned long long)(dma & (IO_TLB_SIZE - 1)));
		} else if (!strcmp(strim(step), "swiotlb")) {
			struct io_tlb_mem *mem = pdev->dev.dma_io_tlb_mem;

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 6, 0)
			pr_info("oracle: T %pa %lu\n", &mem->defpool.start, mem->defpool.nslabs);
#else
			pr_info("oracle: T %pa %lu\n", &mem->start, mem->nslabs);
#endif
		} else if (sscanf(step, "unmap %u", &x) == 1 && x < nmaps) {
			unmap_one(x);
		} else if ((n = sscanf(step, "free %7s %u %u", order, &x, &y)) >= 2 && pool) {
			do_free(order, x, n == 3 ? y : 0);
			pr_info("oracle: F %d live\n", live);
		} else if (sscanf(step, "%7s", verb) == 1) {
			pr_err("oracle: bad step '%s'\n", step);
			return -EINVAL;
		}
	}
	if (pool)
		pr_info("oracle: end %d live %d pages\n", live, npages);
	return 0;
}

static void release(void)
{
	int i;

	if (pool) {
		for (i = 0; i < live; i++)
			dma_pool_free(pool, vaddrs[i], dmas[i]);
		dma_pool_destroy(pool);
	}
	for (i = 0; maps && i < nmaps; i++)
		unmap_one(i);
	kvfree(maps);
	kfree(pages);
	kvfree(vaddrs);
	kvfree(dmas);
	platform_device_unregister(pdev);
}

static int __init oracle_init(void)
{
	char *copy;
	int err;

	pdev = platform_device_register_simple("dmaemu_oracle", 0, NULL, 0);
	if (IS_ERR(pdev))
		return PTR_ERR(pdev);
	err = dma_coerce_mask_and_coherent(&pdev->dev, DMA_BIT_MASK(64));
	vaddrs = kvcalloc(MAX_BLOCKS, sizeof(*vaddrs), GFP_KERNEL);
	dmas = kvcalloc(MAX_BLOCKS, sizeof(*dmas), GFP_KERNEL);
	pages = kcalloc(MAX_PAGES, sizeof(*pages), GFP_KERNEL);
	maps = kvcalloc(MAX_MAPS, sizeof(*maps), GFP_KERNEL);
	copy = kstrdup(script, GFP_KERNEL);
	if (err || !vaddrs || !dmas || !pages || !maps || !copy) {
		kfree(copy);
		release();
		return err ? err : -ENOMEM;
	}
	err = run(copy);
	kfree(copy);
	if (err) {
		release();
		return err;
	}
	return 0;
}

static void __exit oracle_exit(void)
{
	release();
}

module_init(oracle_init);
module_exit(oracle_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("dmaemu's oracle: dma pool operations on a real kernel");
