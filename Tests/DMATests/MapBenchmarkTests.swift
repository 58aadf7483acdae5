@testable import DMA
import PhysicalMemory
import Testing

@Suite struct MapBenchmarkTests {
    /// map_benchmark_thread() and do_map_benchmark()'s arithmetic written out: each call's
    /// ktime delta divided by 100 (div64_ul), sums and sums of squares of those, the
    /// averages divided by the loop count (div64_u64) and int_sqrt64 of
    /// sum_sq / loops - avg * avg.
    @Test func theKernelsIntegerFigures() {
        var result = MapBenchmark.Result()
        // Maps of 150, 250 and 1099 ns are 1, 2 and 10 units: sum 13, avg 13 / 3 = 4;
        // squares 1 + 4 + 100 = 105, 105 / 3 = 35, variance 35 - 16 = 19, sqrt 4.
        // Unmaps of 99, 100 and 299 ns are 0, 1 and 2: sum 3, avg 1; squares 5, 5 / 3 = 1,
        // variance 1 - 1 = 0.
        for (map, unmap) in [(150, 99), (250, 100), (1099, 299)] as [(UInt64, UInt64)] {
            result.add(mapNs: map, unmapNs: unmap)
        }
        let figures = result.kernelFigures!
        #expect(figures.avgMap == 4 && figures.mapStddev == 4 && figures.avgUnmap == 1 && figures.unmapStddev == 0)
        #expect(MapBenchmark.Result().kernelFigures == nil)
    }

    /// dma_direct_supported(): 32 bits and more always; below, the mask must cover
    /// ZONE_DMA's top (16 MiB - 1), or all of RAM when it is smaller.
    @Test func setMaskRefusesWhatTheDirectMappingCannotServe() throws {
        let ram = try PhysicalMemory(size: 1 << 30)
        let device = Device(name: "d", ram: ram)
        #expect(device.setMask(dmaBitMask(24)) && device.dmaMask == 0xFF_FFFF)
        #expect(!device.setMask(dmaBitMask(23)) && device.dmaMask == 0xFF_FFFF)
        #expect(device.setMask(dmaBitMask(64)))
        let tiny = Device(name: "t", ram: try PhysicalMemory(size: 8 << 20))
        #expect(tiny.setMask(dmaBitMask(23)) && !tiny.setMask(dmaBitMask(22)))
    }
}
