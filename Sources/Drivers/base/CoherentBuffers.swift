// The dma_alloc_coherent() buffers a driver holds outside its pools (frames, queues),
// freed newest first at remove, as the drivers' unwinding frees them.
import DMA
import Locking
import SystemPackage

public final class CoherentBuffers: Sendable {
    private let buffers = PthreadMutex<[CoherentBuffer]>([])

    public init() {}

    public func alloc(_ device: Device, size: Int) throws(Errno) -> CoherentBuffer {
        guard let (cpu, dma) = device.allocCoherent(size: size) else { throw .noMemory }
        let buffer = CoherentBuffer(cpu: cpu, dma: dma, size: size)
        buffers.withLock { $0.append(buffer) }
        return buffer
    }

    public func freeAll(_ device: Device) {
        for buffer in buffers.withLock({ buffers in defer { buffers = [] }; return buffers }).reversed() {
            device.freeCoherent(size: buffer.size, cpu: buffer.cpu, dma: buffer.dma)
        }
    }
}

/// A dma_alloc_coherent() buffer a driver holds.
public struct CoherentBuffer: @unchecked Sendable {  // the pointer names emulated RAM
    public let cpu: UnsafeMutableRawPointer
    public let dma: DMAAddr
    public let size: Int
}
