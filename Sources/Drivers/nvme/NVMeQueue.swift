// The host's end of the I/O completion queue (struct nvme_queue's cq_head and cq_phase,
// drivers/nvme/host/pci.c): the driver zeroes the queue, expects phase 1 on the first
// pass, and takes entries from its head while their phase tag is the one it expects
// (nvme_cqe_pending()), inverting it at each wrap (nvme_update_cq_head()), then rings the
// head doorbell. Each entry's status goes to its command id's slot, for the submitter to
// collect, whoever's interrupt took it.
import Glibc
import Hardware
import Locking
import SystemPackage

final class NVMeQueue: @unchecked Sendable {  // `ends` guards the queue's memory and `results`
    let entries: UnsafeMutableRawPointer
    let depth: Int
    let doorbell: NVMeCompletionQueue
    private struct Ends {
        var head = 0
        var phase: UInt16 = 1
    }
    private let ends = SpinLock(Ends())
    /// Per command id: the status field of its completion (bits 15:1), or `pending`.
    private let results: UnsafeMutablePointer<UInt16>
    static let pending = UInt16.max

    init(entries: UnsafeMutableRawPointer, depth: Int, doorbell: NVMeCompletionQueue) {
        self.entries = entries
        self.depth = depth
        self.doorbell = doorbell
        entries.initializeMemory(as: UInt8.self, repeating: 0, count: depth * NVMeCompletion.size)
        results = .allocate(capacity: depth)
        results.initialize(repeating: Self.pending, count: depth)
    }

    deinit { results.deallocate() }

    /// Where the host will look next, and the phase it expects there (for tests).
    var head: (index: Int, phase: UInt16) { ends.withLock { ($0.head, $0.phase) } }

    /// Before a command with id `id` is submitted.
    func expect(_ id: Int) { ends.withLock { _ in results[id] = Self.pending } }

    /// nvme_process_cq(): every new entry, then the head doorbell. Returns how many.
    @discardableResult
    func process() -> Int {
        let (found, head) = ends.withLock { ends -> (Int, Int) in
            var found = 0
            while true {
                let entry = entries + ends.head * NVMeCompletion.size
                let status = UInt16(littleEndian: entry.load(fromByteOffset: NVMeCompletion.status, as: UInt16.self))
                guard status & NVMeCompletion.phaseTag == ends.phase else { break }
                let id = Int(UInt16(littleEndian: entry.load(fromByteOffset: NVMeCompletion.commandID, as: UInt16.self)))
                if id < depth { results[id] = status >> 1 }
                found += 1
                ends.head += 1
                if ends.head == depth {
                    ends.head = 0
                    ends.phase ^= 1
                }
            }
            return (found, ends.head)
        }
        if found > 0 { doorbell.ringHead(head) }
        return found
    }

    /// The status field of command `id`'s completion, nil while none has come.
    func result(_ id: Int) -> UInt16? {
        ends.withLock { _ in results[id] == Self.pending ? nil : results[id] }
    }

    /// nvme_error_status() and blk_status_to_errno(): what the submitter's caller gets.
    static func errno(_ status: UInt16) -> Errno? {
        switch NVMeCompletion.Status(rawValue: status & 0x7ff) {
        case .success: nil
        case .lbaRange: Errno(rawValue: EREMOTEIO)  // BLK_STS_TARGET
        case .invalidOpcode, .invalidField: Errno(rawValue: EOPNOTSUPP)  // BLK_STS_NOTSUPP
        default: .ioError  // BLK_STS_IOERR
        }
    }
}
