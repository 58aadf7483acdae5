// An I/O queue pair with its hardware context (struct nvme_queue and its blk_mq_hw_ctx), as
// a request goes through it. The request takes a tag, puts its command in the tag's slot
// of the submission queue and its descriptors and mapped list in the tag's iod (struct
// nvme_iod), and moves the submission queue's tail; the doorbell is rung when the
// submitter's plug ends (blk_finish_plug(), nvme_commit_rqs()), so the requests of a split
// bio are in flight together, as blk-mq sends them. The controller is a thread of its own
// per queue: rung, it runs every command queued, in order, posting their completions, and
// raises the queue's interrupt, whose handler (nvme_irq()) runs in that thread as an IRQ
// handler runs on the vector's CPU: every entry found is completed, whoever submitted it:
// its list unmapped and its descriptors back to their pools (nvme_unmap_data()), the tag
// freed, the status to the request's waiter (CompletionWait), who is woken. Both ends
// poll before they sleep (IOThread, CompletionWait). With `completion=inline` the
// ringing thread runs the controller and takes the interrupt itself (dmaemu's synchronous
// model, kept to measure what the thread costs).
import Block
import DMA
import DMAPool
import Hardware
import Lib
import Locking
import SystemPackage

final class NVMeIOQueue: @unchecked Sendable {  // `order` guards the ring and hands a tag's iod over; `completion.lock` guards the iods and waiters after
    let qid: Int
    let submissionQueue: UnsafeMutableRawPointer
    let completionQueue: NVMeQueue
    let emulated: NVMeController
    let ids: TagSet
    private let faults: NVMeFaultInject
    private let reorder: Bool
    private let pagePool: DMAPool
    private let smallPool: DMAPool
    private let depth: Int

    /// Per tag: the request's descriptors, its mapped list and where its status goes.
    private struct IOD {
        var descriptors = Descriptors()
        var list: UnsafeMutableBufferPointer<ScatterEntry>?
        var direction = DMADirection.toDevice
        var waiter: UnsafeMutablePointer<UInt16>?
    }
    private let iods: UnsafeMutablePointer<IOD>
    /// The submission queue's slots in the order they were queued: the controller fetches
    /// from `head` once rung, the next command goes at `tail`.
    private let slots: UnsafeMutablePointer<UInt16>
    private struct Ends {
        var head = 0
        var tail = 0
        /// The tail the doorbell last told the controller.
        var rung = 0
    }
    private let order = SpinLock(Ends())
    private let completion = CompletionWait()
    private var controller: IOThread?

    /// A waiter's status before its completion.
    static let pending = CompletionWait.pending
    /// The status of a command the controller never completed (nvme_timeout() aborts it).
    static let timedOut = CompletionWait.timedOut

    init(qid: Int, submissionQueue: UnsafeMutableRawPointer, completionQueue: NVMeQueue, emulated: NVMeController, depth: Int,
         pagePool: DMAPool, smallPool: DMAPool, threaded: Bool, reorder: Bool, faults: NVMeFaultInject) throws(Errno) {
        self.faults = faults
        self.reorder = reorder
        self.qid = qid
        self.submissionQueue = submissionQueue
        self.completionQueue = completionQueue
        self.emulated = emulated
        self.depth = depth
        self.pagePool = pagePool
        self.smallPool = smallPool
        // The tag set's depth is sqsize, q_depth - 1 (nvme_alloc_io_tag_set()): a
        // completion queue of q_depth entries is full at q_depth - 1.
        ids = TagSet(0...(depth - 2))
        iods = .allocate(capacity: depth)
        iods.initialize(repeating: IOD(), count: depth)
        slots = .allocate(capacity: depth)
        slots.initialize(repeating: 0, count: depth)
        if threaded {
            guard let thread = IOThread({ [self] in runQueued() }) else { throw .noMemory }
            controller = thread
        }
    }

    /// The controller's thread has ended (remove), or there is none (for tests).
    var controllerStopped: Bool { controller?.finished ?? true }

    /// Remove, once the queue is frozen: the controller's thread ends.
    func shutdown() { controller?.stop() }

    deinit {
        iods.deallocate()
        slots.deallocate()
    }

    func pool(_ pool: NVMePool) -> DMAPool { pool == .small ? smallPool : pagePool }

    /// nvme_unmap_data(): the descriptors back to their pools.
    func free(_ descriptors: Descriptors) {
        for i in 0..<descriptors.count {
            let (block, from) = descriptors[i]
            pool(from).free(block.cpu, dma: block.dma)
        }
    }

    /// nvme_queue_rq() without the doorbell: the command in slot `tag` is queued, its
    /// completion will unmap `list`, free `descriptors` and write its status through `waiter`.
    func queue(_ tag: Int, descriptors: Descriptors, list: UnsafeMutableBufferPointer<ScatterEntry>, _ direction: DMADirection,
               waiter: UnsafeMutablePointer<UInt16>) {
        // The tag is the submitter's until the controller fetches its slot, which it does
        // under `order`, after this write.
        iods[tag] = IOD(descriptors: descriptors, list: list, direction: direction, waiter: waiter)
        order.withLock { ends in
            slots[ends.tail % depth] = UInt16(tag)
            ends.tail += 1
        }
    }

    /// The tail doorbell, when the tail moved since it was last rung: the controller runs
    /// what is queued, then its interrupt is taken.
    func commit() {
        guard order.withLock({ ends in
            defer { ends.rung = ends.tail }
            return ends.rung != ends.tail
        }) else { return }
        guard let controller else { return runQueued() }
        controller.ring()
    }

    /// Every command from the head to the tail, then the interrupt.
    /// With `reorder`, each batch found at the doorbell runs last-first, as a controller
    /// that spreads commands over its channels may complete them; its slots stay valid
    /// until their commands complete, since the tags keep the ring from wrapping onto them.
    private func runQueued() {
        if reorder {
            let (head, tail) = order.withLock { ends in
                defer { ends.head = ends.tail }
                return (ends.head, ends.tail)
            }
            for at in stride(from: tail - 1, through: head, by: -1) { run(slot: Int(slots[at % depth])) }
        } else {
            while let slot = order.withLock({ ends -> Int? in
                guard ends.head != ends.tail else { return nil }
                defer { ends.head += 1 }
                return Int(slots[ends.head % depth])
            }) {
                run(slot: slot)
            }
        }
        interrupt()
    }

    private func run(slot: Int) {
        guard !emulated.execute(slot: slot) else { return }
        emulated.device.err("nvme nvme0: I/O tag \(slot) QID \(qid) timeout, aborting: no completion")
        completion.lock.lock()
        complete(slot, status: Self.timedOut)
        completion.raised()
        completion.lock.unlock()
    }

    /// nvme_irq(): every new completion, then the waiters are woken.
    func interrupt() {
        completion.lock.lock()
        let found = completionQueue.process { id, status in complete(id, status: status) }
        if found > 0 { completion.raised() }
        completion.lock.unlock()
    }

    /// nvme_handle_cqe() with the request's completion; under `completion.lock`.
    private func complete(_ id: Int, status: UInt16) {
        guard id < depth - 1, let waiter = iods[id].waiter else {
            emulated.device.err("nvme nvme0: invalid id \(id) completed on queue \(qid)")
            return
        }
        if let list = iods[id].list { emulated.device.unmapSG(list, iods[id].direction) }
        free(iods[id].descriptors)
        iods[id] = IOD()
        waiter.pointee = status == Self.timedOut ? status : faults.complete(status)
        ids.put(id)
    }

    /// Until the request whose status goes to `waiter` has completed; its status.
    func wait(_ waiter: UnsafeMutablePointer<UInt16>) -> UInt16 { completion.wait(waiter, poll: controller != nil) }
}
