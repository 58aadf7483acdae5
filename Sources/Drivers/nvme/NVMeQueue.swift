// The host's end of an I/O completion queue (struct nvme_queue's cq_head and cq_phase,
// drivers/nvme/host/pci.c): the driver zeroes the queue, expects phase 1 on the first
// pass, and takes entries from its head while their phase tag is the one it expects
// (nvme_cqe_pending()), inverting it at each wrap (nvme_update_cq_head()), then rings the
// head doorbell. Each entry's command id and status go to the interrupt's handler.
import Glibc
import Hardware
import Locking
import SystemPackage

final class NVMeQueue: @unchecked Sendable {  // `ends` guards the queue's memory
    let entries: UnsafeMutableRawPointer
    let depth: Int
    let doorbell: NVMeCompletionQueue
    private struct Ends {
        var head = 0
        var phase: UInt16 = 1
    }
    private let ends = SpinLock(Ends())

    init(entries: UnsafeMutableRawPointer, depth: Int, doorbell: NVMeCompletionQueue) {
        self.entries = entries
        self.depth = depth
        self.doorbell = doorbell
        entries.initializeMemory(as: UInt8.self, repeating: 0, count: depth * NVMeCompletion.size)
    }

    /// Where the host will look next, and the phase it expects there (for tests).
    var head: (index: Int, phase: UInt16) { ends.withLock { ($0.head, $0.phase) } }

    /// nvme_process_cq(): every new entry's command id and status field (bits 15:1) to
    /// `handle`, then the head doorbell. Returns how many.
    @discardableResult
    func process(_ handle: (_ id: Int, _ status: UInt16) -> Void) -> Int {
        let (found, head) = ends.withLock { ends -> (Int, Int) in
            var found = 0
            while true {
                let entry = entries + ends.head * NVMeCompletion.size
                let status = UInt16(littleEndian: entry.load(fromByteOffset: NVMeCompletion.status, as: UInt16.self))
                guard status & NVMeCompletion.phaseTag == ends.phase else { break }
                handle(Int(UInt16(littleEndian: entry.load(fromByteOffset: NVMeCompletion.commandID, as: UInt16.self))), status >> 1)
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
