// Config/dmaemu.toml, compiled in: the machine dmaemud runs with no --config. A test keeps
// the two identical; `make default-config` rewrites this file.
let defaultConfigText = #"""
# dmaemu's default machine: what `dmaemud` runs with no --config. Sizes take K, M, G.

[machine]
ram = "8G"                 # the emulated RAM (MAP_NORESERVE: untouched pages cost nothing)
kernel = "6.12"            # 6.1, 6.12 or 6.18: its trace events and formats, its swiotlb slot search

[swiotlb]
size = "64M"               # the boot pool (IO_TLB_DEFAULT_SIZE); or kernel_parameter = "32768,2,force"
# areas = 2                # default: the CPU count, rounded up to a power of two
dynamic = true             # CONFIG_SWIOTLB_DYNAMIC: grow with pools, transient pools meanwhile
force = false              # swiotlb=force: every streaming map bounces
debugfs_counters = true    # CONFIG_DEBUG_FS: exact io_tlb_used and io_tlb_used_hiwater
confidential = false       # a CoCo VM: every map bounces, sharing memory costs time
# decrypt_ns_per_page = 2000
# encrypt_ns_per_page = 2000
# coherent_pool = "256K"

[dmapool]
algorithm = "stack"        # stack (v6.4+), rbtree (Tony Battersby's v6), legacy (<= v6.3)
debug = false              # DMAPOOL_DEBUG: poisoning and corruption/double-free checks

[dma]
debug = false              # dma-debug: track every mapping, report misuse

[[device]]
driver = "generic"
name = "0000:00:04.0"
dma_mask_bits = 64

[[device]]                 # the seed's HBA: probe is its 373959-allocation modprobe
driver = "mpt3sas"
name = "0000:85:00.0"
dma_mask_bits = 64
# hba_queue_depth = 10368  # and max_sgl_entries, reply_queue_count, rdpq, chain_segment_size,
# reply_post_free = "per_queue"  # or "chunks" (the current driver)
# capacity = "1G"          # the disk behind it: sparse RAM, or
# backing_file = "/var/lib/dmaemu/hba.img"  # a file, created sparse, kept across restarts

[[device]]                 # an NVMe SSD: PRP lists from "prp list page" and "prp list 256"
driver = "nvme"
name = "0000:01:00.0"
dma_mask_bits = 64
# pool_names = "prp"       # or "descriptor" (the v6.16 names)
# sgl_threshold = 0        # SGLs when the average segment reaches this; 0: PRPs always
# io_queue_depth = 1024
# capacity = "1G"
"""#
