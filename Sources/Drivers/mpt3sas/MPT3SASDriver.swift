// An mpt3sas-class SAS HBA's probe (_base_allocate_memory_pools()): the pools in the
// driver's order, with its names, sizes, alignments and allocation counts derived from the
// parameters as the driver derives them. With the defaults (a SAS 9300-8i,
// max_sgl_entries=256) the legacy pool prints the seed's six `pools` lines:
//   scsiio_depth = 10368 - 128 (hi-priority) - 133 (internal) = 10107
//   reply_free_queue_depth = 10368 + 64 = 10432; reply_post_queue_depth = 20801 -> 20816
//   chains per I/O = (256 - 1 SGE in the main frame) / 7 SGEs per 128-byte chain + 1 = 37
// Remove frees the chain buffers one by one in allocation order, then destroys the pools.
// I/O (_base_build_sg_scmd_ieee()): each command takes a SMID, whose request frame and
// chains_needed_per_io chain buffers are its own; see MPT3SASSGL and MPT3SASController,
// and MPT3SASVector for its way to the IOC and its completion.
import Block
import DMA
import Hardware
import Lib
import Locking
import SystemPackage

public final class MPT3SASDriver: DiskDriver, DMABlockDriver {
    public static let name = "mpt3sas"

    public init() {}

    struct Parameters {
        var hbaQueueDepth = 10368
        var maxSGLEntries = 256
        var replyQueueCount = 12
        var rdpq = true
        var chainSegmentSize = 128
        /// The seed's 2018 driver allocated one reply_post_free block per queue; the
        /// current driver allocates chunks of up to 16 queues.
        var replyPostFreePerQueue = true
        var completion = CompletionContext.thread
        var disk = DiskParameters()
    }

    /// What probe set up for I/O (the ioc's scsiio tracker, reduced to what I/O needs).
    final class Adapter: Sendable {
        let queue: BlockQueue
        let controller: MPT3SASController
        let requestFrames: UnsafeSendable<UnsafeMutableRawPointer>
        let chains: [HeldBlock]
        let chainsPerIO: Int
        let chainSegmentSize: Int
        /// SMIDs 1...scsiio_depth, as the scsi lookup's free list.
        let smids: TagSet
        let replies: MPT3SASReplyQueue
        /// By MSI-X index: the vectors some CPU's requests go to (cpu_msix_table's).
        let vectors: [MPT3SASVector?]
        /// IOCInit's RDPQ array (nil without RDPQ).
        let rdpqArray: HeldBlock?

        init(queue: BlockQueue, controller: MPT3SASController, replies: MPT3SASReplyQueue, rdpqArray: HeldBlock?,
             requestFrames: UnsafeMutableRawPointer, chains: [HeldBlock], chainsPerIO: Int, chainSegmentSize: Int, depth: Int,
             threaded: Bool) throws(Errno) {
            self.queue = queue
            self.controller = controller
            self.replies = replies
            self.rdpqArray = rdpqArray
            self.requestFrames = UnsafeSendable(requestFrames)
            self.chains = chains
            self.chainsPerIO = chainsPerIO
            self.chainSegmentSize = chainSegmentSize
            let smids = TagSet(1...depth), trackers = MPT3SASTrackers(smids: depth)
            self.smids = smids
            var vectors: [MPT3SASVector?] = replies.posts.map { _ in nil }
            do throws(Errno) {
                for msix in Set(replies.cpuMSIx).sorted() {
                    vectors[msix] = try MPT3SASVector(msix: msix, ioc: controller, replies: replies, trackers: trackers,
                                                      smids: smids, threaded: threaded)
                }
            } catch {
                for vector in vectors { vector?.shutdown() }
                throw error
            }
            self.vectors = vectors
        }

        /// The vector of the calling CPU's requests (_base_get_msix_index()).
        var vector: MPT3SASVector { vectors[replies.msixIndex]! }
    }

    let adapter = PthreadMutex<Adapter?>(nil)
    public var queue: BlockQueue? { adapter.withLock { $0?.queue } }

    /// From the IOC facts of the seed's HBA.
    static let highPriorityCredit = 128
    static let replyFrameSize = 128
    static let requestFrameSize = 128
    static let senseBufferSize = 96
    static let sgeSize = 16
    static let maxChainDepth = 128

    private let state = PthreadMutex(Parameters())
    /// Coherent buffers outside pools: the request frames and the config page.
    private let frames = CoherentBuffers()

    public var parameters: [(name: String, value: String)] {
        let p = state.withLock { $0 }
        return [
            ("hba_queue_depth", String(p.hbaQueueDepth)), ("max_sgl_entries", String(p.maxSGLEntries)),
            ("reply_queue_count", String(p.replyQueueCount)), ("rdpq", p.rdpq ? "1" : "0"),
            ("chain_segment_size", String(p.chainSegmentSize)),
            ("reply_post_free", p.replyPostFreePerQueue ? "per_queue" : "chunks"), ("completion", p.completion.rawValue),
        ] + p.disk.values
    }

    public func setParameter(_ name: String, _ value: String) throws(Errno) {
        func number(_ range: ClosedRange<Int>) throws(Errno) -> Int {
            let parsed = Int(try StoreParsing.number(value, max: UInt64(range.upperBound)))
            guard range.contains(parsed) else { throw .invalidArgument }
            return parsed
        }
        switch name {
        case "hba_queue_depth":
            let depth = try number(512...65535)
            state.withLock { $0.hbaQueueDepth = depth }
        case "max_sgl_entries":
            let entries = try number(16...2048)
            state.withLock { $0.maxSGLEntries = entries }
        case "reply_queue_count":
            let queues = try number(1...128)
            state.withLock { $0.replyQueueCount = queues }
        case "rdpq":
            let on = try number(0...1)
            state.withLock { $0.rdpq = on == 1 }
        case "chain_segment_size":
            let size = try number(32...4096)
            guard size % Self.sgeSize == 0 else { throw .invalidArgument }
            state.withLock { $0.chainSegmentSize = size }
        case "reply_post_free":
            guard value == "per_queue" || value == "chunks" else { throw .invalidArgument }
            state.withLock { $0.replyPostFreePerQueue = value == "per_queue" }
        case "completion":
            guard let completion = CompletionContext(rawValue: value) else { throw .invalidArgument }
            state.withLock { $0.completion = completion }
        default:
            try state.withLock { (p) throws(Errno) in guard try p.disk.set(name, value) else { throw .invalidArgument } }
        }
    }

    /// The derived sizes, as the driver computes them.
    struct Sizes {
        let scsiioDepth, replyFreeQueueDepth, replyPostQueueDepth, chainsPerIO: Int
    }

    static func sizes(_ p: Parameters) -> Sizes {
        let internalDepth = highPriorityCredit + 5
        let scsiioDepth = p.hbaQueueDepth - highPriorityCredit - internalDepth
        let replyFree = p.hbaQueueDepth + 64
        let replyPost = (p.hbaQueueDepth + replyFree + 1 + 15) / 16 * 16
        let sgesPerChain = (p.chainSegmentSize - sgeSize) / sgeSize
        let chains = min((p.maxSGLEntries - 1) / sgesPerChain + 1, maxChainDepth)
        return Sizes(scsiioDepth: scsiioDepth, replyFreeQueueDepth: replyFree, replyPostQueueDepth: replyPost, chainsPerIO: chains)
    }

    public func probe(_ context: ProbeContext) throws(Errno) {
        let p = state.withLock { $0 }
        let sizes = Self.sizes(p)
        // The masks stay as dma_mask_bits set them: the emulated bus decides what the
        // HBA reaches, so a 32-bit setting makes data above 4 GiB bounce.
        let device = context.device
        let perQueue = sizes.replyPostQueueDepth * MPT3SASReply.descriptorSize
        // Each reply queue's reply_post_free: a block each (RDPQ, as the seed's driver), one
        // block for all (no RDPQ), or chunks of up to 16 queues (today's driver).
        var posts: [HeldBlock] = []
        if p.replyPostFreePerQueue || !p.rdpq {
            let count = p.rdpq ? p.replyQueueCount : 1
            let size = p.rdpq ? perQueue : perQueue * p.replyQueueCount
            let blocks = try context.createPool("reply_post_free pool", size: size, align: 16).allocForDriver(count, zero: true)
            posts = (0..<p.replyQueueCount).map { i in
                let block = blocks[blocks.startIndex + (p.rdpq ? i : 0)], offset = p.rdpq ? 0 : i * perQueue
                return HeldBlock(cpu: block.cpu + offset, dma: block.dma + DMAAddr(offset))
            }
        } else {
            let queuesPerChunk = min(p.replyQueueCount, 16)
            let chunks = (p.replyQueueCount + 15) / 16
            let blocks = try context.createPool("reply_post_free pool", size: perQueue * queuesPerChunk, align: 16)
                .allocForDriver(chunks, zero: true)
            posts = (0..<p.replyQueueCount).map { i in
                let block = blocks[blocks.startIndex + i / 16], offset = i % 16 * perQueue
                return HeldBlock(cpu: block.cpu + offset, dma: block.dma + DMAAddr(offset))
            }
        }
        let chains = try context.createPool("chain pool", size: p.chainSegmentSize, align: 16)
            .allocForDriver(sizes.scsiioDepth * sizes.chainsPerIO)
        _ = try context.createPool("sense pool", size: sizes.scsiioDepth * Self.senseBufferSize, align: 4).allocForDriver(1)
        let replyFrames = try context.createPool("reply pool", size: sizes.replyFreeQueueDepth * Self.replyFrameSize, align: 4)
            .allocForDriver(1).first!
        let replyFree = try context.createPool("reply_free pool", size: sizes.replyFreeQueueDepth * 4, align: 16).allocForDriver(1).first!
        var rdpqArray: HeldBlock?
        if p.rdpq {
            // IOCInit's RDPQ array: each queue's base (Mpi2IOCInitRDPQArrayEntry, 16 bytes).
            let array = try context.createPool("reply_post_free_array pool", size: p.replyQueueCount * 16, align: 16)
                .allocForDriver(1).first!
            rdpqArray = array
            for (i, post) in posts.enumerated() {
                array.cpu.storeBytes(of: post.dma.littleEndian, toByteOffset: i * 16, as: UInt64.self)
                array.cpu.storeBytes(of: UInt64(0), toByteOffset: i * 16 + 8, as: UInt64.self)
            }
        }
        // Request frames and the config page come from plain dma_alloc_coherent().
        let requestFrames = try frames.alloc(device, size: p.hbaQueueDepth * Self.requestFrameSize)
        _ = try frames.alloc(device, size: 512)  // the config page
        let store = try p.disk.makeStore()
        let ioc = MPT3SASReplyQueues(
            postQueues: posts.map(\.dma), postDepth: sizes.replyPostQueueDepth, freeQueue: replyFree.dma,
            freeDepth: sizes.replyFreeQueueDepth, frameSize: Self.replyFrameSize, replyAddressHigh: UInt32(replyFrames.dma >> 32))
        let replies = MPT3SASReplyQueue(
            posts: posts.map(\.cpu), postDepth: sizes.replyPostQueueDepth, free: replyFree.cpu, freeDepth: sizes.replyFreeQueueDepth,
            frames: replyFrames.cpu, framesDMA: replyFrames.dma, frameSize: Self.replyFrameSize, smids: sizes.scsiioDepth,
            cpus: device.ram.cpus, ioc: ioc)
        let controller = MPT3SASController(
            device: device, store: store, requestFramesDMA: requestFrames.dma, chainSegmentSize: p.chainSegmentSize, replyQueues: ioc)
        // sg_tablesize segments of at most 64 KiB (the SCSI default max_segment_size);
        // max_sectors 32767, capped by what one mapping may be (swiotlb's 256 KiB when
        // the HBA's maps may bounce), as scsi_add_host() caps it.
        let limits = BlockLimits(
            maxSegments: p.maxSGLEntries, maxSegmentSize: 65536,
            maxTransfer: min(32767 * BlockLimits.sectorSize, device.maxMappingSize / BlockLimits.sectorSize * BlockLimits.sectorSize))
        let queue = BlockQueue(device: device, capacity: store.capacity, limits: limits, driver: self)
        let made = try Adapter(queue: queue, controller: controller, replies: replies, rdpqArray: rdpqArray,
                               requestFrames: requestFrames.cpu, chains: Array(chains), chainsPerIO: sizes.chainsPerIO,
                               chainSegmentSize: p.chainSegmentSize, depth: sizes.scsiioDepth, threaded: p.completion == .thread)
        adapter.withLock { $0 = made }
    }

    /// scsih_qcmd(): a SMID (waiting while all are busy, as a full host requeues), its
    /// request frame and chains (the SMID's own, preallocated), posted to the IOC with the
    /// CPU's MSI-X index. Its reply completes it in the vector's interrupt
    /// (MPT3SASVector), which unmaps its list, frees its SMID and writes `status`.
    public func queueRequest(_ command: BlockCommand, _ list: UnsafeMutableBufferPointer<ScatterEntry>,
                             status: UnsafeMutablePointer<UInt16>) throws(Errno) -> UnsafeRawPointer? {
        // Never while the queue is entered: stop() freezes it before dropping the adapter.
        guard let adapter = adapter.withLock({ $0 }) else { throw .noDevice }
        let vector = adapter.vector
        let tag = adapter.smids.get(flushing: vector.flush)
        let frame = adapter.requestFrames.value + tag * Self.requestFrameSize
        MPT3SASSGL.buildRequest(frame, command)
        let first = (tag - 1) * adapter.chainsPerIO
        MPT3SASSGL.build(frame: frame, list: list, chainSegmentSize: adapter.chainSegmentSize) { adapter.chains[first + $0] }
        status.pointee = CompletionWait.pending
        vector.post(tag, list: list, command.write ? .toDevice : .fromDevice, waiter: status)
        return UnsafeRawPointer(Unmanaged.passUnretained(vector).toOpaque())
    }

    /// _scsih_io_done(): any IOC status but success is an error (DID_SOFT_ERROR and the
    /// like), which the midlayer ends as EIO; a command with no reply timed out.
    public func completeRequest(_ status: UnsafeMutablePointer<UInt16>, context: UnsafeRawPointer?) throws(Errno) {
        guard Self.vector(context).wait(status) == MPT3SASReply.IOCStatus.success.rawValue else { throw .ioError }
    }

    /// Posting needs no doorbell; with inline completion the vector's IOC runs what was
    /// posted now.
    public func commitRequests(_ context: UnsafeRawPointer?) { Self.vector(context).flush() }

    /// The vector a request's context names (queueRequest's; the vector outlives it).
    private static func vector(_ context: UnsafeRawPointer?) -> MPT3SASVector {
        Unmanaged<MPT3SASVector>.fromOpaque(context!).takeUnretainedValue()
    }

    public var unmapsAtCompletion: Bool { true }

    public func stop() {
        let adapter = adapter.withLock { $0 }
        adapter?.queue.freeze()
        self.adapter.withLock { $0 = nil }
        for vector in adapter?.vectors ?? [] { vector?.shutdown() }
    }

    /// The vectors in use (for tests).
    var vectors: [MPT3SASVector] { adapter.withLock { $0 }?.vectors.compactMap { $0 } ?? [] }

    public func remove(_ device: Device) { frames.freeAll(device) }

    /// The RDPQ array's queue bases (for tests).
    package var rdpqArray: [UInt64]? {
        adapter.withLock { $0 }.flatMap { adapter in
            adapter.rdpqArray.map { array in (0..<adapter.replies.posts.count).map { UInt64(littleEndian: array.cpu.load(fromByteOffset: $0 * 16, as: UInt64.self)) } }
        }
    }

    /// Each reply queue's host index and the calling CPU's queue (for tests).
    package var replyQueues: (hostIndexes: [Int], cpuMSIx: [Int])? {
        adapter.withLock { $0?.replies }.map { ($0.hostIndexes, $0.cpuMSIx) }
    }

    /// SYNCHRONIZE CACHE: the IOC's disk makes what it wrote durable.
    public func flush() throws(Errno) {
        guard let adapter = adapter.withLock({ $0 }) else { throw .noDevice }
        try adapter.controller.store.flush()
    }
}
