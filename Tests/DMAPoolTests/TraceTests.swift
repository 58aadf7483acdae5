import DMA
import DMAPool
import PhysicalMemory
import Testing
import Trace

@Suite struct PoolTraceTests {
    /// dmaemu's own events, in the dma events' line style: the device, the pool's name and
    /// its address, the arguments of create as passed, each block's addresses.
    @Test func aPoolsLifeIsTracedWithItsArgumentsAndBlocks() throws {
        let tracer = Tracer(kernel: .v6_12, cpus: 1)
        tracer.enable(tracer.events.filter { $0.system == "dmapool" }, true)
        let device = Device(name: "0000:00:01.0", ram: try PhysicalMemory(size: 1 << 30), tracer: tracer)
        let pool = try DMAPool(name: "prp list 256", device: device, size: 256, align: 256, boundary: 0)
        let block = try #require(pool.alloc(.atomic))
        pool.free(block.cpu, dma: block.dma)
        pool.destroy()
        let p = String(UInt(bitPattern: Unmanaged.passUnretained(pool).toOpaque()), radix: 16)
        let address = String(repeating: "0", count: 16 - p.count) + p
        let lines = tracer.text(tracer.entries()).split(separator: "\n").map { String($0.dropFirst(51)) }
        #expect(lines == [
            "dma_pool_create: 0000:00:01.0 name=\"prp list 256\" pool=\(address) size=256 align=256 boundary=0",
            "dma_pool_alloc: 0000:00:01.0 name=\"prp list 256\" pool=\(address) vaddr=\(pointer(block.dma)) dma=\(String(block.dma, radix: 16))",
            "dma_pool_free: 0000:00:01.0 name=\"prp list 256\" pool=\(address) vaddr=\(pointer(block.dma)) dma=\(String(block.dma, radix: 16))",
            "dma_pool_destroy: 0000:00:01.0 name=\"prp list 256\" pool=\(address)",
        ])
    }
}
