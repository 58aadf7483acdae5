import DMA
import DMAPool
import PhysicalMemory
import Testing

/// dma_pool_create()'s argument rules, checked in the kernel's order: align, size,
/// then the boundary against the aligned size.
@Suite struct CreateRulesTests {
    @Test(arguments: DMAPoolAlgorithm.allCases)
    func rejectedCreates(_ algorithm: DMAPoolAlgorithm) throws {
        let device = try testDevice()
        func create(_ size: Int, _ align: Int, _ boundary: Int) throws(DMAPoolError) {
            _ = try DMAPool(name: "bad", device: device, size: size, align: align, boundary: boundary, algorithm: algorithm)
        }
        #expect(throws: DMAPoolError.alignNotPowerOfTwo(align: 3)) { try create(64, 3, 0) }
        #expect(throws: DMAPoolError.alignNotPowerOfTwo(align: 48)) { try create(0, 48, 0) }  // align first
        #expect(throws: DMAPoolError.zeroSize) { try create(0, 0, 0) }
        // 128 < 256 is too small; 100 aligned to 64 is 128, above a boundary of 64.
        #expect(throws: DMAPoolError.boundaryTooSmall(boundary: 64, size: 128)) { try create(128, 0, 64) }
        #expect(throws: DMAPoolError.boundaryTooSmall(boundary: 100, size: 128)) { try create(100, 64, 100) }
        #expect(throws: DMAPoolError.boundaryNotPowerOfTwo(boundary: 3000)) { try create(128, 0, 3000) }
        if algorithm == .legacy {
            // v6.3 had no INT_MAX check; such a pool is made and cannot allocate.
            let huge = try DMAPool(name: "huge", device: device, size: 1 << 31, algorithm: algorithm)
            #expect(huge.alloc() == nil)
        } else {
            #expect(throws: DMAPoolError.sizeTooLarge(size: 1 << 31)) { try create(1 << 31, 0, 0) }
        }
        // Nothing rejected was added to the device (the legacy huge pool is the only one).
        #expect(device.dmaPools.all.count == (algorithm == .legacy ? 1 : 0))
    }

    @Test func acceptedEdges() throws {
        let device = try testDevice()
        // align 0 means 1; a boundary equal to the size is fine; stack clamps a boundary
        // above the allocation to it, the older generations keep it.
        #expect(try DMAPool(name: "a", device: device, size: 24, align: 0).geometry.size == 24)
        #expect(try DMAPool(name: "b", device: device, size: 128, boundary: 128).geometry.boundary == 128)
        #expect(try DMAPool(name: "c", device: device, size: 64, boundary: 65536).geometry.boundary == 4096)
        #expect(try DMAPool(name: "d", device: device, size: 64, boundary: 65536, algorithm: .legacy).geometry.boundary == 65536)
        #expect(try DMAPool(name: "e", device: device, size: Int(Int32.max), algorithm: .stack).geometry.size == Int(Int32.max))
    }

    @Test(arguments: DMAPoolAlgorithm.allCases)
    func alignmentAndBoundaryAreAlwaysMet(_ algorithm: DMAPoolAlgorithm) throws {
        var rng = SplitMix(seed: 0x5eed + UInt64(algorithm.rawValue.count))
        let device = try testDevice(size: 256 << 20)
        for _ in 0..<150 {
            let size = Int(rng.next() % 3000) + 1
            let align = [0, 1, 2, 4, 8, 16, 32, 64, 128, 512, 4096][Int(rng.next() % 11)]
            let aligned = max(size, 16).roundedUp(to: max(align, 1))
            let boundaries = [0] + (4...16).map { 1 << $0 }.filter { $0 >= aligned }
            let boundary = boundaries[Int(rng.next() % UInt64(boundaries.count))]
            let pool = try DMAPool(
                name: "random", device: device, size: size, align: align, boundary: boundary, algorithm: algorithm)
            #expect(pool.geometry.size >= size && pool.geometry.size % max(align, 1) == 0)
            var blocks: [(cpu: UnsafeMutableRawPointer, dma: UInt64)] = []
            for _ in 0..<(Int(rng.next() % 200) + 1) {
                let block = try #require(pool.alloc())
                let first = block.dma
                let last = block.dma + UInt64(pool.geometry.size) - 1
                if align > 0 { #expect(first % UInt64(align) == 0) }
                if boundary > 0 { #expect(first / UInt64(boundary) == last / UInt64(boundary)) }
                // Never across the end of its coherent allocation either.
                if pool.geometry.allocation == 4096 {
                    #expect(first / 4096 == last / 4096)
                } else {
                    #expect(first % 4096 == 0)  // one block per multi-page allocation
                }
                blocks.append(block)
            }
            for block in blocks { pool.free(block.cpu, dma: block.dma) }
            pool.destroy()
        }
        #expect(device.ram.log.texts().isEmpty)
        #expect(device.coherentAllocationCount == 0)
    }
}

struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

extension Int {
    func roundedUp(to multiple: Int) -> Int { (self + multiple - 1) / multiple * multiple }
}
