// The completion side of an NVMe queue pair (NVMe 1.4, 4.6): the 16-byte completion queue
// entry the controller writes into the host's completion queue for each command it ends
// (struct nvme_completion), the status codes dmaemu's controller gives (NVME_SC_* of
// include/linux/nvme.h), and the controller's end of the queue: its tail, its phase tag
// (inverted at each wrap, so the host tells new entries from old without clearing them),
// and the head the host last rang. A full queue takes no entry.
import DMA
import Locking
import SystemPackage

public enum NVMeCompletion {
    public static let size = 16
    // Offsets in struct nvme_completion.
    public static let result = 0, sqHead = 8, sqID = 10, commandID = 12, status = 14
    /// Bit 0 of `status` is the phase tag; the status field is bits 15:1, whose bit 14 is
    /// Do Not Retry (NVME_STATUS_DNR) and bits 10:8 the status code type.
    public static let phaseTag: UInt16 = 1
    public static let doNotRetry: UInt16 = 0x4000

    /// Generic command status codes (status code type 0).
    public enum Status: UInt16, Sendable {
        case success = 0x0
        case invalidOpcode = 0x1
        case invalidField = 0x2
        case dataTransferError = 0x4
        /// Invalid SGL Segment Descriptor (NVME_SC_SGL_INVALID_LAST).
        case sglInvalidSegment = 0xd
        /// Data SGL Length Invalid.
        case sglInvalidData = 0xf
        case sglInvalidType = 0x11
        case prpInvalidOffset = 0x13
        case lbaRange = 0x80
    }
}

/// The controller's end of one completion queue.
public final class NVMeCompletionQueue: Sendable {
    public let dma: DMAAddr
    public let depth: Int
    public let submissionQueueID: UInt16
    private struct Ends {
        var tail = 0
        var phase: UInt16 = 1
        var head = 0
    }
    private let ends = SpinLock(Ends())

    /// A queue of `depth` entries at `dma`, fed by submission queue `submissionQueueID`;
    /// the host has zeroed it, so phase 1 marks the first pass's entries.
    public init(dma: DMAAddr, depth: Int, submissionQueueID: UInt16) {
        self.dma = dma
        self.depth = depth
        self.submissionQueueID = submissionQueueID
    }

    /// The host's completion queue head doorbell.
    public func ringHead(_ head: Int) { ends.withLock { $0.head = head % depth } }

    /// Writes the entry for command `id` at the tail; false when the queue is full (the
    /// tail one behind the head) or the entry cannot be written.
    func post(_ device: Device, id: UInt16, sqHead: Int, status: NVMeCompletion.Status) -> Bool {
        ends.withLock { ends in
            guard (ends.tail + 1) % depth != ends.head else { return false }
            var entry = (UInt64(0), UInt16(sqHead % depth).littleEndian, submissionQueueID.littleEndian, id.littleEndian, UInt16(0))
            let dnr = status == .success ? 0 : NVMeCompletion.doNotRetry
            entry.4 = ((status.rawValue | dnr) << 1 | ends.phase).littleEndian
            let written = withUnsafeBytes(of: &entry) { bytes in
                Result { () throws(DeviceAccessError) in
                    try device.deviceWrite(dma + DMAAddr(ends.tail * NVMeCompletion.size), from: bytes)
                }
            }
            guard case .success = written else { return false }
            ends.tail += 1
            if ends.tail == depth {
                ends.tail = 0
                ends.phase ^= 1
            }
            return true
        }
    }
}
