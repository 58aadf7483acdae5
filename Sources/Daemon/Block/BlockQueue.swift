// A bound block driver's request queue: what the block layer does between a byte range and
// the driver. A request's pages are mapped with dma_map_sg() (bouncing through swiotlb
// where the device cannot reach them, or when bouncing is forced), the driver builds its
// descriptors and rings the emulated controller, and completion unmaps (copying bounced
// reads back). Ranges that are not whole sectors are read, modified and written back as
// the page cache would. Remove waits for I/O in flight, as blk_mq_freeze_queue() does.
import DMA
import Glibc
import Locking
import PhysicalMemory
import SystemPackage

/// One command for a driver: whole sectors, data in a mapped scatter list.
struct BlockCommand {
    let write: Bool
    let lba: Int
    let sectors: Int
    var bytes: Int { sectors * BlockLimits.sectorSize }
}

/// A driver with a disk: its queue and what it does with one request.
protocol BlockDriver: Driver {
    /// The queue the last probe set up; nil while unbound.
    var queue: BlockQueue? { get }
    /// queue_rq (or a device-mapper target's map): carries out one request over the
    /// buffer's pages. Returns the bytes that went through bounce buffers.
    func queueRequest(_ buffer: RequestBuffer, lba: Int, write: Bool, on queue: BlockQueue) throws(Errno) -> Int
}

/// A driver of a device that does DMA: requests are mapped for it and handed over as
/// commands over scatter lists.
protocol DMABlockDriver: BlockDriver {
    /// Builds the command's descriptors for the mapped list, has the emulated controller
    /// run it, and completes it. EIO when the controller fails it.
    func execute(_ command: BlockCommand, _ list: UnsafeMutableBufferPointer<ScatterEntry>) throws(Errno)
}

extension DMABlockDriver {
    func queueRequest(_ buffer: RequestBuffer, lba: Int, write: Bool, on queue: BlockQueue) throws(Errno) -> Int {
        try queue.mapAndExecute(buffer, lba: lba, write: write, driver: self)
    }
}

final class BlockQueue: Sendable {
    let device: Device
    let store: any BackingStore
    let limits: BlockLimits
    let stats = IOStats()
    /// The driver owns the queue.
    private weak let driver: (any BlockDriver)?
    private let gate = PthreadMutex((dying: false, inflight: 0))
    /// Spare request buffers for callers that come and go (disk reads and writes).
    private let spare = PthreadMutex<[UnsafeSendable<RequestBuffer>]>([])

    var capacity: Int { store.capacity }

    init(device: Device, store: any BackingStore, limits: BlockLimits, driver: any BlockDriver) {
        self.device = device
        self.store = store
        self.limits = limits
        self.driver = driver
    }

    // MARK: - Entering and freezing

    /// Runs `body` as I/O in flight; ENODEV once remove has begun.
    func enter<R>(_ body: () throws(Errno) -> R) throws(Errno) -> R {
        try gate.withLock { (gate) throws(Errno) in
            guard !gate.dying else { throw .operationNotSupportedByDevice }
            gate.inflight += 1
        }
        defer { gate.withLock { $0.inflight -= 1 } }
        return try body()
    }

    /// blk_mq_freeze_queue(): new I/O fails, I/O in flight finishes.
    func freeze() {
        gate.withLock { $0.dying = true }
        while gate.withLock({ $0.inflight }) > 0 { usleep(100) }
        spare.withLock { $0.removeAll() }
    }

    func makeBuffer() -> RequestBuffer { RequestBuffer(ram: device.machine, limits: limits) }

    func withSpareBuffer<R>(_ body: (RequestBuffer) throws(Errno) -> R) throws(Errno) -> R {
        let buffer = spare.withLock { $0.popLast()?.value } ?? makeBuffer()
        defer {
            buffer.release()
            spare.withLock { if $0.count < 8 { $0.append(UnsafeSendable(buffer)) } }
        }
        return try body(buffer)
    }

    // MARK: - Requests

    /// How long a request whose mapping fails (swiotlb full) is requeued before it fails.
    static let requeueLimit = Duration.seconds(2)

    /// One request over the buffer's pages, through the driver. Returns the bytes that
    /// went through bounce buffers.
    @discardableResult
    func submit(_ buffer: RequestBuffer, lba: Int, write: Bool) throws(Errno) -> Int {
        guard let driver else { throw .operationNotSupportedByDevice }
        return try driver.queueRequest(buffer, lba: lba, write: write, on: self)
    }

    /// A DMA driver's request: map, execute, unmap.
    func mapAndExecute(_ buffer: RequestBuffer, lba: Int, write: Bool, driver: some DMABlockDriver) throws(Errno) -> Int {
        guard let segments = buffer.mapScatterList() else { throw .invalidArgument }
        let list = UnsafeMutableBufferPointer(rebasing: buffer.scatterList[0..<segments])
        let direction: DMADirection = write ? .toDevice : .fromDevice
        var started: ContinuousClock.Instant?
        // BLK_STS_RESOURCE: requeued until swiotlb has room again (or has grown).
        while device.mapSG(list, direction, attributes: .noWarn) == 0 {
            let now = ContinuousClock.now
            if started == nil { started = now }
            guard now - started! < Self.requeueLimit else {
                device.err("I/O error: no bounce buffer for \(buffer.length) bytes")
                throw .ioError
            }
            usleep(50)
        }
        defer { device.unmapSG(list, direction) }
        var bounced = 0
        for entry in list where entry.dmaAddress != entry.phys { bounced += entry.length }
        try driver.execute(BlockCommand(write: write, lba: lba, sectors: buffer.length / BlockLimits.sectorSize), list)
        return bounced
    }

    /// The sectors covering [offset, offset + count).
    static func span(_ offset: Int, _ count: Int) -> (start: Int, end: Int) {
        let sector = BlockLimits.sectorSize
        return (offset / sector * sector, (offset + count + sector - 1) / sector * sector)
    }

    /// Bytes [offset, offset + count) of the disk (one request's worth at most): the
    /// covering sectors are placed in `buffer` at their page-cache offset; a write that
    /// does not cover whole sectors reads them first. `fill` puts the new bytes in before
    /// a write, `drain` takes them out after a read. Returns the bytes bounced.
    @discardableResult
    func transfer(_ buffer: RequestBuffer, write: Bool, offset: Int, count: Int,
                  _ data: (RequestBuffer, Int) throws(Errno) -> Void) throws(Errno) -> Int {
        let (start, end) = Self.span(offset, count)
        guard end - start <= limits.maxTransfer else { throw .invalidArgument }
        guard buffer.allocate(length: end - start, pageOffset: start % PhysicalMemory.pageSize) else { throw .noMemory }
        defer { buffer.release() }
        var bounced = 0
        if !write || start != offset || end != offset + count {
            bounced += try submit(buffer, lba: start / BlockLimits.sectorSize, write: false)
        }
        try data(buffer, offset - start)
        if write { bounced += try submit(buffer, lba: start / BlockLimits.sectorSize, write: true) }
        return bounced
    }

    /// The largest piece of a byte range one request carries whatever the pages' layout:
    /// every page its own segment.
    var chunkLimit: Int {
        min(limits.maxTransfer, (limits.maxSegments - 1) * PhysicalMemory.pageSize) / BlockLimits.sectorSize * BlockLimits.sectorSize
    }
}

/// A value handed between threads that only one uses at a time.
struct UnsafeSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
