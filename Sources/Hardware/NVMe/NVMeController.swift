// The emulated NVMe controller: it fetches a submission queue entry by DMA and follows its
// data pointer by dma address: PRP1, then PRP2 as a data page or as a PRP list whose last
// entry on a full page points at the next list; or an SGL of data block descriptors,
// segments and last segments. Each command ends with an entry in the host's completion
// queue (NVMeCompletion); anything malformed ends with the status NVMe gives it.
import DMA
import SystemPackage

public struct NVMeController: @unchecked Sendable {  // the store and device are shared, thread-safe
    public let device: Device
    public let store: any BackingStore
    public let submissionQueueDMA: DMAAddr
    /// Where completions go (the I/O queue pair's completion queue).
    public let completionQueue: NVMeCompletionQueue?

    public init(device: Device, store: any BackingStore, submissionQueueDMA: DMAAddr, completionQueue: NVMeCompletionQueue? = nil) {
        self.device = device
        self.store = store
        self.submissionQueueDMA = submissionQueueDMA
        self.completionQueue = completionQueue
    }

    /// A command that ended other than successfully, with its status.
    struct Failure: Error {
        let status: NVMeCompletion.Status
    }

    func fail(_ id: Int, _ why: String, _ status: NVMeCompletion.Status) -> Failure {
        device.err("nvme nvme0: I/O tag \(id) failed: \(why)")
        return Failure(status: status)
    }

    /// The bytes a command still has to move, and where on the disk the next ones go.
    struct Transfer {
        let id: Int
        let write: Bool
        var position: Int
        var left: Int
    }

    /// Executes the command in submission queue slot `slot`; EIO when it fails.
    public func run(slot: Int) throws(Errno) {
        guard perform(slot: slot).status == .success else { throw .ioError }
    }

    /// What the controller does between the submission queue tail doorbell and the
    /// interrupt: runs the command in `slot` and posts its completion. False when the entry
    /// could not be posted (a full completion queue, or none).
    public func execute(slot: Int) -> Bool {
        let (id, status) = perform(slot: slot)
        guard let completionQueue else { return false }
        guard completionQueue.post(device, id: id, sqHead: slot + 1, status: status) else {
            device.err("nvme nvme0: I/O tag \(id): completion queue full or unwritable")
            return false
        }
        return true
    }

    /// The command in `slot`: its id and how it ended.
    func perform(slot: Int) -> (id: UInt16, status: NVMeCompletion.Status) {
        let outcome = withUnsafeTemporaryAllocation(byteCount: NVMeCommand.size + NVMeCommand.pageSize, alignment: 16) { scratch in
            let sqe = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<NVMeCommand.size])
            let list = UnsafeMutableRawBufferPointer(rebasing: scratch[NVMeCommand.size...])
            do {
                try device.deviceRead(submissionQueueDMA + DMAAddr(slot * NVMeCommand.size), into: sqe)
            } catch {
                return (UInt16(slot), fail(slot, "submission queue entry not readable", .dataTransferError).status)
            }
            let id = UInt16(littleEndian: sqe.loadUnaligned(fromByteOffset: NVMeCommand.commandID, as: UInt16.self))
            do throws(Failure) {
                var transfer = try decode(UnsafeRawBufferPointer(sqe))
                if sqe[NVMeCommand.flags] & 0xc0 == 0 {
                    try walkPRPs(UnsafeRawBufferPointer(sqe), &transfer, list: list)
                } else {
                    try walkSGL(UnsafeRawBufferPointer(sqe), &transfer, segment: list)
                }
                return (id, NVMeCompletion.Status.success)
            } catch {
                return (id, error.status)
            }
        }
        return outcome
    }

    /// The opcode, command id and LBA range of a read or write.
    func decode(_ sqe: UnsafeRawBufferPointer) throws(Failure) -> Transfer {
        let opcode = sqe[0]
        let id = Int(UInt16(littleEndian: sqe.loadUnaligned(fromByteOffset: NVMeCommand.commandID, as: UInt16.self)))
        let slba = Int(UInt64(littleEndian: sqe.loadUnaligned(fromByteOffset: NVMeCommand.slba, as: UInt64.self)))
        let blocks = Int(UInt16(littleEndian: sqe.loadUnaligned(fromByteOffset: NVMeCommand.length, as: UInt16.self))) + 1
        guard opcode == NVMeCommand.write || opcode == NVMeCommand.read else { throw fail(id, "invalid opcode", .invalidOpcode) }
        let total = blocks * LBA.size
        guard slba >= 0, slba * LBA.size + total <= store.capacity else { throw fail(id, "LBA out of range", .lbaRange) }
        return Transfer(id: id, write: opcode == NVMeCommand.write, position: slba * LBA.size, left: total)
    }

    /// One descriptor's bytes between memory and the disk.
    func move(_ address: DMAAddr, _ length: Int, _ transfer: inout Transfer, sgl: Bool = false) throws(Failure) {
        guard length <= transfer.left else {
            throw fail(transfer.id, "data pointer longer than the transfer", sgl ? .sglInvalidData : .invalidField)
        }
        do {
            try store.dma(device, address: address, length: length, position: transfer.position, write: transfer.write)
        } catch {
            throw Failure(status: .dataTransferError)  // the device's access check said why
        }
        transfer.position += length
        transfer.left -= length
    }

    /// PRP1 (any offset), then PRP2 as the second page or as the first PRP list.
    func walkPRPs(_ sqe: UnsafeRawBufferPointer, _ transfer: inout Transfer, list: UnsafeMutableRawBufferPointer) throws(Failure) {
        let page = NVMeCommand.pageSize
        let prp1 = UInt64(littleEndian: sqe.loadUnaligned(fromByteOffset: NVMeCommand.prp1, as: UInt64.self))
        let prp2 = UInt64(littleEndian: sqe.loadUnaligned(fromByteOffset: NVMeCommand.prp2, as: UInt64.self))
        try move(prp1, min(transfer.left, page - Int(prp1 & UInt64(page - 1))), &transfer)
        if transfer.left == 0 { return }
        guard prp2 & UInt64(page - 1) == 0 || transfer.left > page else { throw fail(transfer.id, "PRP2 not page aligned", .prpInvalidOffset) }
        if transfer.left <= page { return try move(prp2, transfer.left, &transfer) }
        var listAddress = prp2
        while transfer.left > 0 {
            listAddress = try walkPRPList(at: listAddress, &transfer, scratch: list)
        }
    }

    /// The entries of one PRP list, to the end of its page; returns the next list's address
    /// when the last entry points on.
    func walkPRPList(at address: DMAAddr, _ transfer: inout Transfer, scratch: UnsafeMutableRawBufferPointer) throws(Failure) -> DMAAddr {
        let page = NVMeCommand.pageSize
        guard address & 7 == 0 else { throw fail(transfer.id, "PRP list not aligned", .prpInvalidOffset) }
        let entries = (page - Int(address & UInt64(page - 1))) / 8
        let bytes = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<(entries * 8)])
        do { try device.deviceRead(address, into: bytes) } catch { throw fail(transfer.id, "PRP list not readable", .dataTransferError) }
        for i in 0..<entries where transfer.left > 0 {
            let entry = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self))
            if i == entries - 1 && transfer.left > page { return entry }
            guard entry & UInt64(page - 1) == 0 else { throw fail(transfer.id, "PRP entry not page aligned", .prpInvalidOffset) }
            try move(entry, min(transfer.left, page), &transfer)
        }
        return 0
    }

    /// The command's descriptor, then the segments it leads to.
    func walkSGL(_ sqe: UnsafeRawBufferPointer, _ transfer: inout Transfer, segment: UnsafeMutableRawBufferPointer) throws(Failure) {
        var descriptors = UnsafeRawBufferPointer(rebasing: sqe[NVMeCommand.prp1..<(NVMeCommand.prp1 + 16)])
        var index = 0
        var last = true  // the command's descriptor is a list of one
        while transfer.left > 0 {
            guard index * 16 < descriptors.count else { throw fail(transfer.id, "SGL shorter than the transfer", .sglInvalidData) }
            let at = descriptors.baseAddress! + index * 16
            let address = UInt64(littleEndian: at.loadUnaligned(as: UInt64.self))
            let length = Int(UInt32(littleEndian: at.loadUnaligned(fromByteOffset: 8, as: UInt32.self)))
            let type = at.load(fromByteOffset: 15, as: UInt8.self)
            switch type {
            case NVMeCommand.dataBlock:
                try move(address, length, &transfer, sgl: true)
                index += 1
            case NVMeCommand.segment, NVMeCommand.lastSegment:
                guard length > 0, length % 16 == 0, length <= NVMeCommand.pageSize, index * 16 + 16 == descriptors.count || last else {
                    throw fail(transfer.id, "bad SGL segment descriptor", .sglInvalidSegment)
                }
                let bytes = UnsafeMutableRawBufferPointer(rebasing: segment[0..<length])
                do { try device.deviceRead(address, into: bytes) } catch { throw fail(transfer.id, "SGL segment not readable", .dataTransferError) }
                descriptors = UnsafeRawBufferPointer(bytes)
                last = type == NVMeCommand.lastSegment
                index = 0
            default:
                throw fail(transfer.id, "SGL descriptor type \(type)", .sglInvalidType)
            }
        }
    }
}
