// A driver's command tags (blk-mq's tag set: SMIDs for the HBA, command ids for NVMe).
// A submitter that finds none waits, as a full queue holds its requests back.
import DMA
import Glibc
import Locking
import SystemPackage

final class TagSet: Sendable {
    private let free: PthreadMutex<[Int]>

    /// Tags are handed out lowest first.
    init(_ tags: ClosedRange<Int>) { free = PthreadMutex(Array(tags.reversed())) }

    func get() -> Int {
        while true {
            if let tag = free.withLock({ $0.popLast() }) { return tag }
            usleep(10)
        }
    }

    func put(_ tag: Int) { free.withLock { $0.append(tag) } }
}

/// The dma_alloc_coherent() buffers a driver holds outside its pools (frames, queues),
/// freed newest first at remove.
final class CoherentBuffers: Sendable {
    private let buffers = PthreadMutex<[CoherentBuffer]>([])

    func alloc(_ device: Device, size: Int) throws(Errno) -> CoherentBuffer {
        guard let (cpu, dma) = device.allocCoherent(size: size) else { throw .noMemory }
        let buffer = CoherentBuffer(cpu: cpu, dma: dma, size: size)
        buffers.withLock { $0.append(buffer) }
        return buffer
    }

    func freeAll(_ device: Device) {
        for buffer in buffers.withLock({ buffers in defer { buffers = [] }; return buffers }).reversed() {
            device.freeCoherent(size: buffer.size, cpu: buffer.cpu, dma: buffer.dma)
        }
    }
}

/// A dma_alloc_coherent() buffer a driver holds.
struct CoherentBuffer: @unchecked Sendable {  // the pointer names emulated RAM
    let cpu: UnsafeMutableRawPointer
    let dma: DMAAddr
    let size: Int
}
