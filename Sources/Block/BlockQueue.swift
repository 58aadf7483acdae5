// A bound block driver's request queue: what the block layer does between a byte range and
// the driver. A request's pages are mapped with dma_map_sg() (bouncing through swiotlb
// where the device cannot reach them, or when bouncing is forced), the driver builds its
// descriptors and rings the emulated controller, and completion unmaps (copying bounced
// reads back). Ranges that are not whole sectors are read, modified and written back as
// the page cache would. Remove waits for I/O in flight, as blk_mq_freeze_queue() does.
import DMA
import Glibc
import Lib
import Locking
import PhysicalMemory
import SystemPackage

/// One command for a driver: whole sectors, data in a mapped scatter list.
public struct BlockCommand: Sendable {
    public let write: Bool
    public let lba: Int
    public let sectors: Int
    public var bytes: Int { sectors * BlockLimits.sectorSize }

    public init(write: Bool, lba: Int, sectors: Int) {
        self.write = write
        self.lba = lba
        self.sectors = sectors
    }
}

/// What one bio became: the requests the driver got, and the bytes that went through
/// bounce buffers.
public struct Submission: Sendable {
    public var requests = 0
    public var bounced = 0

    public init(requests: Int = 0, bounced: Int = 0) {
        self.requests = requests
        self.bounced = bounced
    }

    public static func += (a: inout Submission, b: Submission) {
        a.requests += b.requests
        a.bounced += b.bounced
    }
}

/// What the block layer asks of a driver (struct blk_mq_ops, and a device-mapper target's
/// map): carry out one bio over the buffer's pages, and make written data durable.
public protocol BlockDriver: AnyObject, Sendable {
    /// submit_bio: the bio split to the queue's limits, its requests through the driver;
    /// returns once they completed.
    func submitBio(_ buffer: RequestBuffer, lba: Int, write: Bool, on queue: BlockQueue) throws(Errno) -> Submission
    /// REQ_OP_FLUSH.
    func flush() throws(Errno)
}

/// A driver of a device that does DMA: requests are mapped for it and handed over as
/// commands over scatter lists, queued without waiting, reaped later (BlockFlight).
public protocol DMABlockDriver: BlockDriver {
    /// queue_rq: builds the command's descriptors for the mapped list and gives it to the
    /// emulated controller, its status to be written at `status` when it completes.
    /// Returns the hardware context it completes in (nvme's queue, mpt3sas's vector),
    /// valid while the request is in flight. A request it throws for was never queued. A
    /// driver whose controller completes in the submitter (megaraid_sas) runs it here.
    func queueRequest(_ command: BlockCommand, _ list: UnsafeMutableBufferPointer<ScatterEntry>,
                      status: UnsafeMutablePointer<UInt16>) throws(Errno) -> UnsafeRawPointer?
    /// Until the request queued with `status` in `context` has completed; EIO (or the
    /// errno its status means) when the controller failed it.
    func completeRequest(_ status: UnsafeMutablePointer<UInt16>, context: UnsafeRawPointer?) throws(Errno)
    /// commit_rqs: the task's plug ended; what it queued in the hardware context without
    /// telling the hardware (nvme's submission queue tail) is told now.
    func commitRequests(_ context: UnsafeRawPointer?)
    /// The driver unmaps `list` itself, at the request's completion or when it fails it
    /// (nvme's interrupt handler); otherwise the block layer unmaps it once it is reaped.
    var unmapsAtCompletion: Bool { get }
}

extension DMABlockDriver {
    public var unmapsAtCompletion: Bool { false }

    /// What completes in queueRequest has nothing to wait for, nor to commit.
    public func completeRequest(_ status: UnsafeMutablePointer<UInt16>, context: UnsafeRawPointer?) throws(Errno) {}
    public func commitRequests(_ context: UnsafeRawPointer?) {}

    public func submitBio(_ buffer: RequestBuffer, lba: Int, write: Bool, on queue: BlockQueue) throws(Errno) -> Submission {
        try queue.dispatch(buffer, lba: lba, write: write)
    }
}

public final class BlockQueue: Sendable {
    public let device: Device
    /// The disk's size in bytes (set_capacity()).
    public let capacity: Int
    public let limits: BlockLimits
    public let stats = IOStats()
    /// The driver owns the queue.
    private weak let driver: (any BlockDriver)?
    private let gate = PthreadMutex((dying: false, inflight: 0))
    /// Spare request buffers for callers that come and go (disk reads and writes).
    private let spare = PthreadMutex<[UnsafeSendable<RequestBuffer>]>([])

    public init(device: Device, capacity: Int, limits: BlockLimits, driver: any BlockDriver) {
        self.device = device
        self.capacity = capacity
        self.limits = limits
        self.driver = driver
    }

    // MARK: - Entering and freezing

    /// Runs `body` as I/O in flight; ENODEV once remove has begun.
    public func enter<R>(_ body: () throws(Errno) -> R) throws(Errno) -> R {
        try gate.withLock { (gate) throws(Errno) in
            guard !gate.dying else { throw .noDevice }
            gate.inflight += 1
        }
        defer { gate.withLock { $0.inflight -= 1 } }
        return try body()
    }

    /// blk_mq_freeze_queue(): new I/O fails, I/O in flight finishes.
    public func freeze() {
        gate.withLock { $0.dying = true }
        while gate.withLock({ $0.inflight }) > 0 { usleep(100) }
        spare.withLock { $0.removeAll() }
    }

    /// A buffer for bios of up to `capacity` bytes.
    public func makeBuffer(capacity: Int? = nil) -> RequestBuffer { RequestBuffer(ram: device.ram, limits: limits, capacity: capacity) }

    func withSpareBuffer<R>(_ body: (RequestBuffer) throws(Errno) -> R) throws(Errno) -> R {
        let buffer = spare.withLock { $0.popLast()?.value } ?? makeBuffer(capacity: Self.bioMaxBytes)
        defer {
            buffer.release()
            spare.withLock { if $0.count < 8 { $0.append(UnsafeSendable(buffer)) } }
        }
        return try body(buffer)
    }

    // MARK: - Requests

    /// How long a request whose mapping fails (swiotlb full) is requeued before it fails.
    public static let requeueLimit = Duration.seconds(2)

    /// One bio over the buffer's pages, through the driver.
    @discardableResult
    public func submit(_ buffer: RequestBuffer, lba: Int, write: Bool) throws(Errno) -> Submission {
        guard let driver else { throw .noDevice }
        return try driver.submitBio(buffer, lba: lba, write: write, on: self)
    }

    /// The driver, when its requests can be queued without waiting.
    var dmaDriver: (any DMABlockDriver)? { driver as? any DMABlockDriver }

    /// A FLUSH through the driver: what was written is durable when it returns.
    public func flush() throws(Errno) {
        guard let driver else { throw .noDevice }
        try driver.flush()
    }

    /// The sectors covering [offset, offset + count).
    public static func span(_ offset: Int, _ count: Int) -> (start: Int, end: Int) {
        let sector = BlockLimits.sectorSize
        return (offset / sector * sector, (offset + count + sector - 1) / sector * sector)
    }

    /// BIO_MAX_VECS pages: the most the page cache puts in one bio.
    public static let bioMaxBytes = 256 * PhysicalMemory.pageSize

    /// Bytes [offset, offset + count) of the disk as one bio (split into requests as the
    /// queue's limits say): the covering sectors are placed in `buffer` at their page-cache
    /// offset; a write that does not cover whole sectors reads them first. `fill` puts the
    /// new bytes in before a write, `drain` takes them out after a read.
    @discardableResult
    public func transfer(_ buffer: RequestBuffer, write: Bool, offset: Int, count: Int,
                         _ data: (RequestBuffer, Int) throws(Errno) -> Void) throws(Errno) -> Submission {
        let (start, end) = Self.span(offset, count)
        guard end - start <= buffer.capacity else { throw .invalidArgument }
        guard buffer.allocate(length: end - start, pageOffset: start % PhysicalMemory.pageSize) else { throw .noMemory }
        defer { buffer.release() }
        var done = Submission()
        if !write || start != offset || end != offset + count {
            done += try submit(buffer, lba: start / BlockLimits.sectorSize, write: false)
        }
        try data(buffer, offset - start)
        if write { done += try submit(buffer, lba: start / BlockLimits.sectorSize, write: true) }
        return done
    }
}
