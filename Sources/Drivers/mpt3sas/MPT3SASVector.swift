// One MSI-X vector of the HBA with the reply queue it serves, as a request goes through it.
// scsih_qcmd() fills the SMID's scsiio tracker (its mapped list and where its status goes)
// and posts a request descriptor with the vector's MSIxIndex (_base_put_smid_scsi_io()):
// the IOC takes posted descriptors in order, runs each SCSI IO and writes its reply
// descriptor into the vector's reply post queue, then raises the vector's interrupt,
// whose handler (_base_interrupt(), _base_process_reply_queue()) walks the queue and
// completes every SMID it finds, whoever submitted it (_scsih_io_done()): the list
// unmapped (scsi_dma_unmap()), the status to the waiter, who is woken, the SMID freed
// (mpt3sas_base_free_smid()). The IOC runs in a thread per vector (IOThread) and the
// handler in that thread, as an IRQ handler runs on its vector's CPU; with
// `completion=inline` the submitter runs the IOC and takes the interrupt itself.
import Block
import DMA
import Hardware
import Lib
import Locking
import SystemPackage

final class MPT3SASVector: @unchecked Sendable {  // `posted` guards the FIFO and hands a SMID's tracker over; `completion.lock` guards it after
    let msix: Int
    private let ioc: MPT3SASController
    private let replies: MPT3SASReplyQueue
    private let trackers: MPT3SASTrackers
    private let smids: TagSet
    let completion = CompletionWait()
    private var thread: IOThread?

    /// The request descriptors posted with this MSIxIndex: SMIDs in posting order, from
    /// `head` (the IOC's next) to `tail`. It holds every SMID at once at most.
    private struct FIFO {
        var head = 0
        var tail = 0
    }
    private let posted = SpinLock(FIFO())
    private let ring: UnsafeMutablePointer<Int32>
    private let capacity: Int

    init(msix: Int, ioc: MPT3SASController, replies: MPT3SASReplyQueue, trackers: MPT3SASTrackers, smids: TagSet,
         threaded: Bool) throws(Errno) {
        self.msix = msix
        self.ioc = ioc
        self.replies = replies
        self.trackers = trackers
        self.smids = smids
        capacity = trackers.count
        ring = .allocate(capacity: capacity)
        if threaded {
            guard let thread = IOThread({ [self] in runPosted() }) else {
                ring.deallocate()
                throw .noMemory
            }
            self.thread = thread
        }
    }

    deinit { ring.deallocate() }

    /// The IOC's thread has ended (remove), or there is none.
    var stopped: Bool { thread?.finished ?? true }

    /// Remove, once the queue is frozen: the IOC's thread ends.
    func shutdown() { thread?.stop() }

    /// _base_put_smid_scsi_io(): SMID `smid`, its tracker filled, goes to the IOC.
    func post(_ smid: Int, list: UnsafeMutableBufferPointer<ScatterEntry>, _ direction: DMADirection,
              waiter: UnsafeMutablePointer<UInt16>) {
        // The SMID is the submitter's until the IOC takes it from the FIFO, under `posted`.
        trackers[smid] = MPT3SASTrackers.Tracker(list: list, direction: direction, waiter: waiter)
        posted.withLock { fifo in
            ring[fifo.tail % capacity] = Int32(smid)
            fifo.tail += 1
        }
        thread?.ring()
    }

    /// Inline: the submitter runs what is posted and takes the interrupt.
    func flush() { if thread == nil { runPosted() } }

    /// Until the request whose status goes to `waiter` has completed; its status.
    func wait(_ waiter: UnsafeMutablePointer<UInt16>) -> UInt16 { completion.wait(waiter, poll: thread != nil) }

    /// The IOC: every posted request, in order, then the vector's interrupt.
    private func runPosted() {
        while let smid = posted.withLock({ fifo -> Int? in
            guard fifo.head != fifo.tail else { return nil }
            defer { fifo.head += 1 }
            return Int(ring[fifo.head % capacity])
        }) {
            guard !ioc.execute(smid: smid, msix: msix) else { continue }
            ioc.device.err("mpt3sas_cm0: smid(\(smid)): no reply (command timeout)")
            completion.lock.lock()
            complete(smid, status: CompletionWait.timedOut)
            completion.raised()
            completion.lock.unlock()
        }
        interrupt()
    }

    /// _base_interrupt(): the reply queue walked, each SMID completed, the waiters woken.
    private func interrupt() {
        completion.lock.lock()
        let found = replies.process(msix) { smid, status in complete(smid, status: status) }
        if found > 0 { completion.raised() }
        completion.lock.unlock()
    }

    /// _scsih_io_done() and mpt3sas_base_free_smid(); under `completion.lock`.
    private func complete(_ smid: Int, status: UInt16) {
        guard let waiter = trackers[smid].waiter else {
            ioc.device.err("mpt3sas_cm0: reply for smid(\(smid)), which is not in flight, on queue \(msix)")
            return
        }
        if let list = trackers[smid].list { ioc.device.unmapSG(list, trackers[smid].direction) }
        trackers[smid] = MPT3SASTrackers.Tracker()
        waiter.pointee = status
        smids.put(smid)
    }
}

/// The scsi lookup's per-SMID trackers (struct scsiio_tracker), as I/O needs them: SMID
/// `smid`'s entry belongs to the vector it was posted to until it completes.
final class MPT3SASTrackers: @unchecked Sendable {  // each entry is guarded by its vector's lock
    struct Tracker {
        var list: UnsafeMutableBufferPointer<ScatterEntry>?
        var direction = DMADirection.toDevice
        var waiter: UnsafeMutablePointer<UInt16>?
    }
    private let entries: UnsafeMutablePointer<Tracker>
    /// SMIDs 1...count - 1 (entry 0 unused, as SMID 0 is no request).
    let count: Int

    init(smids: Int) {
        count = smids + 1
        entries = .allocate(capacity: count)
        entries.initialize(repeating: Tracker(), count: count)
    }

    deinit { entries.deallocate() }

    subscript(smid: Int) -> Tracker {
        get { entries[smid] }
        set { entries[smid] = newValue }
    }
}
