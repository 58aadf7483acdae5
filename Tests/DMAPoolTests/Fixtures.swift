import DMA
import DMAPool
import PhysicalMemory

/// A 1 GiB machine and an unbound PCI device with 64-bit masks; pages come from DMA32.
func testDevice(_ name: String = "0000:00:01.0", size: UInt64 = 1 << 30) throws -> Device {
    let device = Device(name: name, ram: try PhysicalMemory(size: size))
    device.dmaMask = dmaBitMask(64)
    device.coherentDMAMask = dmaBitMask(64)
    return device
}

extension DMAPool {
    /// Allocates until a second page is added; returns how many blocks the first page gave.
    func blocksInFirstPage() -> Int {
        var blocks = 0
        while counters.pages < 2 {
            guard alloc() != nil else { return -1 }
            if counters.pages < 2 { blocks += 1 }
        }
        return blocks
    }
}

/// `%p` as dmaemu prints it: the x86-64 direct-map address of a physical address.
func pointer(_ phys: UInt64) -> String { String(0xffff_8880_0000_0000 + phys, radix: 16) }

/// `%pad`: "0x" and 16 digits.
func pad(_ dma: UInt64) -> String {
    let digits = String(dma, radix: 16)
    return "0x" + String(repeating: "0", count: 16 - digits.count) + digits
}
