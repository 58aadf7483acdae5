// An NVMe controller's driver (nvme-pci): probe sets min_align_mask to the controller page
// (so bounce buffers keep each PRP's offset), creates the descriptor pools ("prp list page"
// 4096/4096 and "prp list 256" 256/256 before 6.16, "nvme descriptor page" and "nvme
// descriptor small" after), and allocates the admin queue pair and an I/O queue pair per
// CPU (nvme_setup_io_queues()), each with its hardware context's tags (q_depth - 1 of
// them). I/O goes to the submitting CPU's queue (NVMeIOQueue) and builds PRPs or an SGL
// from the pools per request (NVMeDescriptors); the controller runs the queue's commands
// when its doorbell is rung at the end of the submitter's plug, in a thread of its own per
// queue, and the interrupt that completes them unmaps their lists and frees their
// descriptors, in that thread.
import Block
import DMA
import DMAPool
import Hardware
import Lib
import Locking
import SystemPackage

public final class NVMeDriver: DiskDriver, DMABlockDriver {
    public static let name = "nvme"

    public init() {}

    struct Parameters {
        /// "prp" (the pre-6.16 pool names) or "descriptor" (6.16's).
        var poolNames = "prp"
        /// Use SGLs when the average segment is at least this many bytes; 0: PRPs always.
        var sglThreshold = 0
        var ioQueueDepth = 1024
        var completion = CompletionContext.thread
        /// The controller runs each doorbell's batch last-first.
        var reorder = false
        var disk = DiskParameters()
    }

    /// NVME_MAX_KB_SZ, NVME_MAX_SEGS, NVME_AQ_DEPTH.
    static let maxTransfer = 8192 << 10
    static let maxSegments = 128
    static let adminQueueDepth = 32
    /// The I/O queue pairs the emulated controller offers (QEMU's nvme max_ioqpairs).
    static let maxIOQueues = 64

    final class Controller: Sendable {
        let queue: BlockQueue
        let store: any BackingStore
        let ioQueues: [NVMeIOQueue]
        let cpus: Int
        let sglThreshold: Int

        init(queue: BlockQueue, store: any BackingStore, ioQueues: [NVMeIOQueue], cpus: Int, sglThreshold: Int) {
            self.queue = queue
            self.store = store
            self.ioQueues = ioQueues
            self.cpus = cpus
            self.sglThreshold = sglThreshold
        }

        /// blk_mq_map_queue(): the submitting CPU's queue. Each queue serves the CPUs of
        /// its interrupt vector's affinity, which group_cpus_evenly() made: with more CPUs
        /// than queues, runs of consecutive CPUs (a flat topology, as QEMU's), the first
        /// cpus % queues runs one CPU longer. A host CPU past the machine's acts as one of
        /// the machine's.
        func ioQueue(cpu: Int) -> NVMeIOQueue {
            let machineCPU = cpu < cpus ? cpu : cpu % cpus
            let (run, longer) = (cpus / ioQueues.count, cpus % ioQueues.count)
            let inLonger = longer * (run + 1)
            return ioQueues[machineCPU < inLonger ? machineCPU / (run + 1) : longer + (machineCPU - inLonger) / run]
        }
    }

    private let state = PthreadMutex(Parameters())
    let controller = PthreadMutex<Controller?>(nil)
    private let queues = CoherentBuffers()
    private let faults = NVMeFaultInject()
    public var queue: BlockQueue? { controller.withLock { $0?.queue } }

    public var parameters: [(name: String, value: String)] {
        let p = state.withLock { $0 }
        return [("pool_names", p.poolNames), ("sgl_threshold", String(p.sglThreshold)),
                ("io_queue_depth", String(p.ioQueueDepth)), ("completion", p.completion.rawValue), ("reorder", p.reorder ? "1" : "0")]
            + faults.parameters + p.disk.values
    }

    public func setParameter(_ name: String, _ value: String) throws(Errno) {
        switch name {
        case "pool_names":
            guard value == "prp" || value == "descriptor" else { throw .invalidArgument }
            state.withLock { $0.poolNames = value }
        case "sgl_threshold":
            let bytes = Int(try StoreParsing.size(value, max: UInt64(UInt32.max)))
            state.withLock { $0.sglThreshold = bytes }
        case "io_queue_depth":
            let depth = Int(try StoreParsing.number(value, max: 65536))
            guard depth >= 2 else { throw .invalidArgument }
            state.withLock { $0.ioQueueDepth = depth }
        case "fault_inject_probability", "fault_inject_interval", "fault_inject_times":
            var a = faults.attributes.attributes
            switch name {
            case "fault_inject_probability": a.probability = try StoreParsing.number(value, max: 100)
            case "fault_inject_interval": a.interval = max(1, try StoreParsing.number(value))
            default: a.times = try StoreParsing.int32(value)
            }
            faults.attributes.attributes = a
        case "fault_inject_status":
            // The 15-bit status field (nvme_status_code), 0 never: that would complete the
            // request as a success that moved nothing.
            let status = UInt16(try StoreParsing.number(value, max: 0x7fff))
            guard status != 0 else { throw .invalidArgument }
            faults.status.store(status, ordering: .relaxed)
        case "reorder":
            let on = try StoreParsing.number(value, max: 1)
            state.withLock { $0.reorder = on == 1 }
        case "completion":
            guard let completion = CompletionContext(rawValue: value) else { throw .invalidArgument }
            state.withLock { $0.completion = completion }
        default:
            try state.withLock { (p) throws(Errno) in guard try p.disk.set(name, value) else { throw .invalidArgument } }
        }
    }

    /// fault_inject's, read at each completion.
    public var liveParameters: Set<String> { Set(faults.parameters.map(\.name)) }

    /// The pools were renamed in v6.16.
    public func adopt(_ kernel: KernelVersion) {
        state.withLock { $0.poolNames = kernel >= .v6_18 ? "descriptor" : "prp" }
    }

    public func probe(_ context: ProbeContext) throws(Errno) {
        let p = state.withLock { $0 }
        let device = context.device
        device.minAlignMask = UInt64(NVMeCommand.pageSize - 1)
        let names = p.poolNames == "prp" ? ("prp list page", "prp list 256") : ("nvme descriptor page", "nvme descriptor small")
        let pagePool = try context.createPool(names.0, size: NVMeCommand.pageSize, align: NVMeCommand.pageSize).pool
        let smallPool = try context.createPool(names.1, size: NVMeDescriptors.smallPoolSize, align: NVMeDescriptors.smallPoolSize).pool
        // Completion and submission queues, admin then each I/O pair (nvme_alloc_queue()):
        // an I/O queue per CPU, as many as the controller offers (nvme_max_io_queues()).
        let cpus = device.ram.cpus
        let count = min(cpus, Self.maxIOQueues)
        _ = try queues.alloc(device, size: Self.adminQueueDepth * NVMeCompletion.size)
        _ = try queues.alloc(device, size: Self.adminQueueDepth * NVMeCommand.size)
        let store = try p.disk.makeStore()
        var ioQueues: [NVMeIOQueue] = []
        do {
            for qid in 1...count {
                let completion = try queues.alloc(device, size: p.ioQueueDepth * NVMeCompletion.size)
                let submission = try queues.alloc(device, size: p.ioQueueDepth * NVMeCommand.size)
                let doorbell = NVMeCompletionQueue(dma: completion.dma, depth: p.ioQueueDepth, submissionQueueID: UInt16(qid))
                let emulated = NVMeController(device: device, store: store, submissionQueueDMA: submission.dma, completionQueue: doorbell)
                let host = NVMeQueue(entries: completion.cpu, depth: p.ioQueueDepth, doorbell: doorbell)
                ioQueues.append(try NVMeIOQueue(qid: qid, submissionQueue: submission.cpu, completionQueue: host, emulated: emulated,
                                                depth: p.ioQueueDepth, pagePool: pagePool, smallPool: smallPool,
                                                threaded: p.completion == .thread, reorder: p.reorder, faults: faults))
            }
        } catch {
            for io in ioQueues { io.shutdown() }
            throw error
        }
        device.printk(.info, "\(count)/0/0 default/read/poll queues")
        let mapping = device.maxMappingSize / BlockLimits.sectorSize * BlockLimits.sectorSize
        let maxTransfer = min(Self.maxTransfer, mapping)
        // nvme_max_drv_segments(): a segment per controller page of the transfer, and one
        // for a start inside a page; NVME_MAX_SEGS above that.
        // The virt boundary: PRPs cannot describe a gap inside a controller page.
        let limits = BlockLimits(
            maxSegments: min(Self.maxSegments, maxTransfer / NVMeCommand.pageSize + 1), maxSegmentSize: Int(UInt32.max),
            maxTransfer: maxTransfer, virtBoundaryMask: UInt64(NVMeCommand.pageSize - 1))
        let queue = BlockQueue(device: device, capacity: store.capacity, limits: limits, driver: self)
        controller.withLock {
            $0 = Controller(queue: queue, store: store, ioQueues: ioQueues, cpus: cpus, sglThreshold: p.sglThreshold)
        }
    }

    /// The interrupt's handler unmaps each request's list (nvme_pci_complete_rq()).
    public var unmapsAtCompletion: Bool { true }

    /// nvme_queue_rq() up to the doorbell (rung at the plug's end: commitRequests(_:)): a
    /// command id of the CPU's queue (with none free the plug goes out first, so the
    /// requests holding them can complete), the command and its data pointer, its
    /// completion to `status`. A request that is not queued is unmapped here, as
    /// nvme_queue_rq() does on its errors.
    public func queueRequest(_ command: BlockCommand, _ list: UnsafeMutableBufferPointer<ScatterEntry>,
                             status: UnsafeMutablePointer<UInt16>) throws(Errno) -> UnsafeRawPointer? {
        let direction: DMADirection = command.write ? .toDevice : .fromDevice
        // Never while the queue is entered: stop() freezes it before dropping the controller.
        guard let controller = controller.withLock({ $0 }) else { throw .noDevice }
        let io = controller.ioQueue(cpu: CPU.current)
        let tag = io.ids.get(flushing: io.commit)
        let sqe = io.submissionQueue + tag * NVMeCommand.size
        NVMeDescriptors.buildCommand(sqe, command, id: tag)
        var taken = Descriptors()
        let alloc = { (pool: NVMePool) -> HeldBlock? in
            // nvme_pci_setup_prps(): GFP_ATOMIC, in the submission path.
            guard let block = io.pool(pool).alloc(.atomic) else { return nil }
            return HeldBlock(cpu: block.cpu, dma: block.dma)
        }
        let built = NVMeDescriptors.useSGLs(list, bytes: command.bytes, threshold: controller.sglThreshold)
            ? NVMeDescriptors.setupSGLs(sqe, list, taken: &taken, alloc: alloc)
            : NVMeDescriptors.setupPRPs(sqe, list, bytes: command.bytes, taken: &taken, alloc: alloc)
        guard built else {
            io.free(taken)
            io.ids.put(tag)
            controller.queue.device.unmapSG(list, direction)
            controller.queue.device.err("nvme: request of \(command.bytes) bytes: no descriptors (BLK_STS_RESOURCE)")
            throw .ioError
        }
        status.pointee = NVMeIOQueue.pending
        io.queue(tag, descriptors: taken, list: list, direction, waiter: status)
        return UnsafeRawPointer(Unmanaged.passUnretained(io).toOpaque())
    }

    /// The wait in the queue the request went to, and the errno of its status.
    public func completeRequest(_ status: UnsafeMutablePointer<UInt16>, context: UnsafeRawPointer?) throws(Errno) {
        let status = Self.ioQueue(context).wait(status)
        guard status != NVMeIOQueue.timedOut else { throw .ioError }
        if let error = NVMeQueue.errno(status) { throw error }
    }

    /// The queue a request's context names (queueRequest's; the queue outlives it).
    private static func ioQueue(_ context: UnsafeRawPointer?) -> NVMeIOQueue {
        Unmanaged<NVMeIOQueue>.fromOpaque(context!).takeUnretainedValue()
    }

    /// nvme_commit_rqs(): the queue's doorbell, if its tail moved since it was rung.
    public func commitRequests(_ context: UnsafeRawPointer?) { Self.ioQueue(context).commit() }

    public func stop() {
        let controller = controller.withLock { $0 }
        controller?.queue.freeze()
        self.controller.withLock { $0 = nil }
        for io in controller?.ioQueues ?? [] { io.shutdown() }
    }

    public func remove(_ device: Device) { queues.freeAll(device) }

    /// Each I/O completion queue as the host sees it: its head, the phase expected there,
    /// and the entries' bytes (for tests).
    package var completionQueues: [(head: Int, phase: UInt16, entries: [UInt8])] {
        (controller.withLock { $0?.ioQueues } ?? []).map(\.completionQueue).map { cq in
            let (head, phase) = cq.head
            return (head, phase, Array(UnsafeRawBufferPointer(start: cq.entries, count: cq.depth * NVMeCompletion.size)))
        }
    }

    /// nvme_submit_flush(): the controller makes what it wrote durable.
    public func flush() throws(Errno) {
        guard let controller = controller.withLock({ $0 }) else { throw .noDevice }
        try controller.store.flush()
    }
}
