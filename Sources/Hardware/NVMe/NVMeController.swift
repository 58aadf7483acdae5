// The emulated NVMe controller: it fetches a submission queue entry by DMA and follows its
// data pointer by dma address: PRP1, then PRP2 as a data page or as a PRP list whose last
// entry on a full page points at the next list; or an SGL of data block descriptors,
// segments and last segments. Anything malformed completes the command with an error.
import DMA
import SystemPackage

public struct NVMeController: @unchecked Sendable {  // the store and device are shared, thread-safe
    public let device: Device
    public let store: any BackingStore
    public let submissionQueueDMA: DMAAddr

    public init(device: Device, store: any BackingStore, submissionQueueDMA: DMAAddr) {
        self.device = device
        self.store = store
        self.submissionQueueDMA = submissionQueueDMA
    }

    func fail(_ id: Int, _ why: String) -> Errno {
        device.err("nvme nvme0: I/O tag \(id) failed: \(why)")
        return .ioError
    }

    /// The bytes a command still has to move, and where on the disk the next ones go.
    struct Transfer {
        let id: Int
        let write: Bool
        var position: Int
        var left: Int
    }

    /// Executes the command in submission queue slot `slot`.
    public func run(slot: Int) throws(Errno) {
        try withUnsafeTemporaryAllocation(byteCount: NVMeCommand.size + NVMeCommand.pageSize, alignment: 16) { (scratch) throws(Errno) in
            let sqe = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<NVMeCommand.size])
            let list = UnsafeMutableRawBufferPointer(rebasing: scratch[NVMeCommand.size...])
            do {
                try device.deviceRead(submissionQueueDMA + DMAAddr(slot * NVMeCommand.size), into: sqe)
            } catch {
                throw fail(slot, "submission queue entry not readable")
            }
            var transfer = try decode(UnsafeRawBufferPointer(sqe))
            if sqe[NVMeCommand.flags] & 0xc0 == 0 {
                try walkPRPs(UnsafeRawBufferPointer(sqe), &transfer, list: list)
            } else {
                try walkSGL(UnsafeRawBufferPointer(sqe), &transfer, segment: list)
            }
        }
    }

    /// The opcode, command id and LBA range of a read or write.
    func decode(_ sqe: UnsafeRawBufferPointer) throws(Errno) -> Transfer {
        let opcode = sqe[0]
        let id = Int(UInt16(littleEndian: sqe.loadUnaligned(fromByteOffset: NVMeCommand.commandID, as: UInt16.self)))
        let slba = Int(UInt64(littleEndian: sqe.loadUnaligned(fromByteOffset: NVMeCommand.slba, as: UInt64.self)))
        let blocks = Int(UInt16(littleEndian: sqe.loadUnaligned(fromByteOffset: NVMeCommand.length, as: UInt16.self))) + 1
        guard opcode == NVMeCommand.write || opcode == NVMeCommand.read else { throw fail(id, "invalid opcode") }
        let total = blocks * LBA.size
        guard slba >= 0, slba * LBA.size + total <= store.capacity else { throw fail(id, "LBA out of range") }
        return Transfer(id: id, write: opcode == NVMeCommand.write, position: slba * LBA.size, left: total)
    }

    /// One descriptor's bytes between memory and the disk.
    func move(_ address: DMAAddr, _ length: Int, _ transfer: inout Transfer) throws(Errno) {
        guard length <= transfer.left else { throw fail(transfer.id, "data pointer longer than the transfer") }
        try store.dma(device, address: address, length: length, position: transfer.position, write: transfer.write)
        transfer.position += length
        transfer.left -= length
    }

    /// PRP1 (any offset), then PRP2 as the second page or as the first PRP list.
    func walkPRPs(_ sqe: UnsafeRawBufferPointer, _ transfer: inout Transfer, list: UnsafeMutableRawBufferPointer) throws(Errno) {
        let page = NVMeCommand.pageSize
        let prp1 = UInt64(littleEndian: sqe.loadUnaligned(fromByteOffset: NVMeCommand.prp1, as: UInt64.self))
        let prp2 = UInt64(littleEndian: sqe.loadUnaligned(fromByteOffset: NVMeCommand.prp2, as: UInt64.self))
        try move(prp1, min(transfer.left, page - Int(prp1 & UInt64(page - 1))), &transfer)
        if transfer.left == 0 { return }
        guard prp2 & UInt64(page - 1) == 0 || transfer.left > page else { throw fail(transfer.id, "PRP2 not page aligned") }
        if transfer.left <= page { return try move(prp2, transfer.left, &transfer) }
        var listAddress = prp2
        while transfer.left > 0 {
            listAddress = try walkPRPList(at: listAddress, &transfer, scratch: list)
        }
    }

    /// The entries of one PRP list, to the end of its page; returns the next list's address
    /// when the last entry points on.
    func walkPRPList(at address: DMAAddr, _ transfer: inout Transfer, scratch: UnsafeMutableRawBufferPointer) throws(Errno) -> DMAAddr {
        let page = NVMeCommand.pageSize
        guard address & 7 == 0 else { throw fail(transfer.id, "PRP list not aligned") }
        let entries = (page - Int(address & UInt64(page - 1))) / 8
        let bytes = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<(entries * 8)])
        do { try device.deviceRead(address, into: bytes) } catch { throw fail(transfer.id, "PRP list not readable") }
        for i in 0..<entries where transfer.left > 0 {
            let entry = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self))
            if i == entries - 1 && transfer.left > page { return entry }
            guard entry & UInt64(page - 1) == 0 else { throw fail(transfer.id, "PRP entry not page aligned") }
            try move(entry, min(transfer.left, page), &transfer)
        }
        return 0
    }

    /// The command's descriptor, then the segments it leads to.
    func walkSGL(_ sqe: UnsafeRawBufferPointer, _ transfer: inout Transfer, segment: UnsafeMutableRawBufferPointer) throws(Errno) {
        var descriptors = UnsafeRawBufferPointer(rebasing: sqe[NVMeCommand.prp1..<(NVMeCommand.prp1 + 16)])
        var index = 0
        var last = true  // the command's descriptor is a list of one
        while transfer.left > 0 {
            guard index * 16 < descriptors.count else { throw fail(transfer.id, "SGL shorter than the transfer") }
            let at = descriptors.baseAddress! + index * 16
            let address = UInt64(littleEndian: at.loadUnaligned(as: UInt64.self))
            let length = Int(UInt32(littleEndian: at.loadUnaligned(fromByteOffset: 8, as: UInt32.self)))
            let type = at.load(fromByteOffset: 15, as: UInt8.self)
            switch type {
            case NVMeCommand.dataBlock:
                try move(address, length, &transfer)
                index += 1
            case NVMeCommand.segment, NVMeCommand.lastSegment:
                guard length > 0, length % 16 == 0, length <= NVMeCommand.pageSize, index * 16 + 16 == descriptors.count || last else {
                    throw fail(transfer.id, "bad SGL segment descriptor")
                }
                let bytes = UnsafeMutableRawBufferPointer(rebasing: segment[0..<length])
                do { try device.deviceRead(address, into: bytes) } catch { throw fail(transfer.id, "SGL segment not readable") }
                descriptors = UnsafeRawBufferPointer(bytes)
                last = type == NVMeCommand.lastSegment
                index = 0
            default:
                throw fail(transfer.id, "SGL descriptor type \(type)")
            }
        }
    }
}
