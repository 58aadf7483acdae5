// The zone watermarks and the pcp sizes the kernel derives from them at boot
// (mm/page_alloc.c, 6.12): calculate_min_free_kbytes(), __setup_per_zone_wmarks(),
// zone_batchsize() and zone_highsize(), with watermark_scale_factor 10 and
// percpu_pagelist_high_fraction 0 (the defaults). dmaemu has no reclaim, so the
// watermarks steer only the pcp lists (ZONE_BELOW_HIGH), not which zone serves an
// allocation.
import Lib

struct Watermarks: Equatable {
    var min: Int
    var low: Int
    var high: Int

    /// min_free_kbytes as a Debian kernel ends up with it: calculate_min_free_kbytes()
    /// (int_sqrt(lowmem_kbytes * 16) clamped to 128...262144, lowmem being every zone's
    /// managed pages at boot), then khugepaged's set_recommended_min_free_kbytes(), since
    /// transparent hugepages are enabled ("madvise"): two pageblocks per zone, and nine more
    /// for the migratetypes to fall back on, at most 5% of nr_free_buffer_pages() (managed
    /// less the high watermark, over the zones), when that is more.
    static func minFreeKbytes(managed: [Int]) -> Int {
        let lowmem = managed.reduce(0, +)
        let kbytes = UInt64(lowmem * (PhysicalMemory.pageSize >> 10))
        let calculated = Swift.min(Swift.max(Int(intSqrt(kbytes * 16)), 128), 262_144)
        let freeBuffer = managed.reduce(0) { free, pages in
            free + Swift.max(pages - zone(managed: pages, lowmemPages: lowmem, minFreeKbytes: calculated).high, 0)
        }
        let populated = managed.filter { $0 > 0 }.count
        let pageblock = 1 << 9, migrateTypes = 3
        let recommended = Swift.min(pageblock * populated * (2 + migrateTypes * migrateTypes), freeBuffer / 20)
            << (PhysicalMemory.pageShift - 10)
        return Swift.max(calculated, recommended)
    }

    /// A zone's share of pages_min (min_free_kbytes in pages) by its managed pages; low and
    /// high each a further max(min / 4, managed * 10 / 10000) above.
    static func zone(managed: Int, lowmemPages: Int, minFreeKbytes: Int) -> Watermarks {
        let pagesMin = minFreeKbytes >> (PhysicalMemory.pageShift - 10)
        let min = lowmemPages == 0 ? 0 : Int(UInt64(pagesMin) * UInt64(managed) / UInt64(lowmemPages))
        let step = Swift.max(min >> 2, managed * 10 / 10000)
        return Watermarks(min: min, low: min + step, high: min + 2 * step)
    }
}

/// setup_per_zone_lowmem_reserve(): what each zone keeps back from an allocation that may
/// also use zones above it, lowmem_reserve[j] being the managed pages of the zones above up
/// to j over the zone's sysctl_lowmem_reserve_ratio (256 for DMA and DMA32, 32 for Normal).
/// Debian's kernels have five zones, ZONE_MOVABLE and ZONE_DEVICE empty above Normal.
enum LowmemReserve {
    static let zones = 5
    /// ZONE_MOVABLE's index: free_unref_page_commit() tests the high watermark against it.
    static let movable = 3
    static let ratio = [256, 256, 32, 0, 0]

    /// Each zone's lowmem_reserve[], from the managed pages of zones 0, 1, 2 (DMA, DMA32,
    /// Normal: missing ones 0).
    static func table(managed: [Int]) -> [InlineArray<5, Int>] {
        let pages = (0..<zones).map { $0 < managed.count ? managed[$0] : 0 }
        return (0..<zones).map { i in
            var reserve = InlineArray<5, Int>(repeating: 0)
            var above = 0
            for j in (i + 1)..<max(zones, i + 1) {
                above += pages[j]
                reserve[j] = ratio[i] == 0 || pages[i] == 0 ? 0 : above / ratio[i]
            }
            return reserve
        }
    }
}

enum PCPSizes {
    /// CONFIG_PCP_BATCH_SCALE_MAX: how far batches may be scaled up (x32).
    static let batchScaleMax = 5
    /// MIN_PERCPU_PAGELIST_HIGH_FRACTION: high_max is an eighth of the zone over the CPUs.
    static let highFractionMax = 8
    /// PAGE_ALLOC_COSTLY_ORDER: orders 0...3 have pcp lists.
    static let costlyOrder = 3

    /// zone_batchsize(): ~0.1% of the zone or 1 MiB, whichever is smaller, over four,
    /// clamped to 2^n - 1 (at least 1, as zone_set_high_and_batch() makes it).
    static func batch(managed: Int) -> Int {
        var batch = Swift.min(managed >> 10, (1 << 20) / PhysicalMemory.pageSize) / 4
        if batch < 1 { batch = 1 }
        batch = roundDownPowerOfTwo(batch + batch / 2) - 1
        return Swift.max(batch, 1)
    }

    /// zone_highsize(): `pages` split over the node's CPUs, at least 4 batches.
    static func high(pages: Int, batch: Int, cpus: Int) -> Int {
        Swift.max(pages / Swift.max(cpus, 1), batch << 2)
    }

    private static func roundDownPowerOfTwo(_ x: Int) -> Int { x <= 0 ? 0 : 1 << (Int.bitWidth - 1 - x.leadingZeroBitCount) }
}
