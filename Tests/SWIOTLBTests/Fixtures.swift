import PhysicalMemory
import SWIOTLB

/// A 1 GiB machine whose swiotlb boot pool is `nslabs` slots in `nareas` areas. The boot
/// pool is the first free 4 MiB block of DMA32: it starts at 16 MiB (0x1000000).
func testMem(nslabs: Int = 512, nareas: Int = 2, dynamic: Bool = false) throws -> IOTLBMem {
    var config = SWIOTLBConfig()
    config.nslabs = nslabs
    config.nareas = nareas
    config.dynamic = dynamic
    return try #require(IOTLBMem(ram: try PhysicalMemory(size: 1 << 30), config: config))
}

let poolStart: PhysAddr = 0x100_0000

func client(_ mem: IOTLBMem) -> IOTLBClient { IOTLBClient(mem: mem) { "pci 0000:00:04.0" } }

/// A 32-bit PCI device with no min_align_mask.
let plain = IOTLBDeviceLimits(minAlignMask: 0, segmentBoundaryMask: 0xffff_ffff, dmaLimit: 1 << 32)

/// A buffer in RAM to map: a fresh page (or block) of the mem's machine.
func buffer(_ mem: IOTLBMem, order: Int = 0) throws -> PhysAddr {
    try #require(mem.ram.allocPages(order: order))
}

import Testing
