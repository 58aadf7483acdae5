// An I/O queue pair with its hardware context (struct nvme_queue and its blk_mq_hw_ctx), as
// a request goes through it. The request takes a tag, puts its command in the tag's slot
// of the submission queue and its descriptors in the tag's iod (struct nvme_iod), and
// moves the submission queue's tail; the doorbell is rung when the submitter's plug ends
// (blk_finish_plug(), nvme_commit_rqs()), so the requests of a split bio are in flight
// together, as blk-mq sends them. The controller then runs every command queued, in order,
// posting their completions, and raises the queue's interrupt. Its vector's affinity is
// the CPUs that submit here, so the CPU that rang takes it (nvme_irq()): every entry found
// is completed, whoever submitted it (descriptors back to their pools as nvme_unmap_data()
// does, the tag freed, the status to the request's waiter, who is woken). A submitter
// whose command another CPU's interrupt completed finds its status there, or waits for it.
import Block
import DMAPool
import Hardware
import Locking

final class NVMeIOQueue: @unchecked Sendable {  // `order` guards the ring; `completion` guards the iods and waiters
    let qid: Int
    let submissionQueue: UnsafeMutableRawPointer
    let completionQueue: NVMeQueue
    let emulated: NVMeController
    let ids: TagSet
    private let pagePool: DMAPool
    private let smallPool: DMAPool
    private let depth: Int

    /// Per tag: the request's descriptors and where its status goes.
    private struct IOD {
        var descriptors = Descriptors()
        var waiter: UnsafeMutablePointer<UInt16>?
    }
    private let iods: UnsafeMutablePointer<IOD>
    /// The submission queue's slots in the order they were queued: the controller fetches
    /// from `head` once rung, the next command goes at `tail`.
    private let slots: UnsafeMutablePointer<UInt16>
    private struct Ends {
        var head = 0
        var tail = 0
    }
    private let order = SpinLock(Ends())
    private let completion = ConditionLock()

    /// A waiter's status before its completion.
    static let pending = UInt16.max
    /// The status of a command the controller never completed (nvme_timeout() aborts it).
    static let timedOut = UInt16.max - 1

    init(qid: Int, submissionQueue: UnsafeMutableRawPointer, completionQueue: NVMeQueue, emulated: NVMeController, depth: Int,
         pagePool: DMAPool, smallPool: DMAPool) {
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
    }

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
    /// completion will free `descriptors` and write its status through `waiter`.
    func queue(_ tag: Int, descriptors: Descriptors, waiter: UnsafeMutablePointer<UInt16>) {
        completion.lock()
        iods[tag] = IOD(descriptors: descriptors, waiter: waiter)
        completion.unlock()
        order.withLock { ends in
            slots[ends.tail % depth] = UInt16(tag)
            ends.tail += 1
        }
    }

    /// The tail doorbell: the controller runs what is queued, then its interrupt is taken.
    func commit() {
        while let slot = order.withLock({ ends -> Int? in
            guard ends.head != ends.tail else { return nil }
            defer { ends.head += 1 }
            return Int(slots[ends.head % depth])
        }) {
            if !emulated.execute(slot: slot) {
                emulated.device.err("nvme nvme0: I/O tag \(slot) QID \(qid) timeout, aborting: no completion")
                completion.lock()
                complete(slot, status: Self.timedOut)
                completion.broadcast()
                completion.unlock()
            }
        }
        interrupt()
    }

    /// nvme_irq(): every new completion, then the waiters are woken.
    func interrupt() {
        completion.lock()
        let found = completionQueue.process { id, status in complete(id, status: status) }
        if found > 0 { completion.broadcast() }
        completion.unlock()
    }

    /// nvme_handle_cqe() with the request's completion; under `completion`.
    private func complete(_ id: Int, status: UInt16) {
        guard id < depth - 1, let waiter = iods[id].waiter else {
            emulated.device.err("nvme nvme0: invalid id \(id) completed on queue \(qid)")
            return
        }
        free(iods[id].descriptors)
        iods[id] = IOD()
        waiter.pointee = status
        ids.put(id)
    }

    /// Until the request whose status goes to `waiter` has completed; its status.
    func wait(_ waiter: UnsafeMutablePointer<UInt16>) -> UInt16 {
        completion.lock()
        while waiter.pointee == Self.pending { completion.wait() }
        let status = waiter.pointee
        completion.unlock()
        return status
    }
}
