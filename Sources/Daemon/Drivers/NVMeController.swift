// The emulated NVMe controller: it fetches a submission queue entry by DMA and follows its
// data pointer by dma address: PRP1, then PRP2 as a data page or as a PRP list whose last
// entry on a full page points at the next list; or an SGL of data block descriptors,
// segments and last segments. Anything malformed completes the command with an error.
import DMA
import SystemPackage

struct NVMeController: @unchecked Sendable {  // the store and device are shared, thread-safe
    let device: Device
    let store: any BackingStore
    let submissionQueueDMA: DMAAddr

    func fail(_ id: Int, _ why: String) -> Errno {
        device.err("nvme nvme0: I/O tag \(id) failed: \(why)")
        return .ioError
    }

    func run(slot: Int) throws(Errno) {
        try withUnsafeTemporaryAllocation(byteCount: NVMeCommand.size + NVMeCommand.pageSize, alignment: 16) { (scratch) throws(Errno) in
            let sqe = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<NVMeCommand.size])
            let list = UnsafeMutableRawBufferPointer(rebasing: scratch[NVMeCommand.size...])
            do {
                try device.deviceRead(submissionQueueDMA + DMAAddr(slot * NVMeCommand.size), into: sqe)
            } catch {
                throw fail(slot, "submission queue entry not readable")
            }
            let base = sqe.baseAddress!
            let opcode = base.load(as: UInt8.self)
            let id = Int(UInt16(littleEndian: base.loadUnaligned(fromByteOffset: NVMeCommand.commandID, as: UInt16.self)))
            let slba = Int(UInt64(littleEndian: base.loadUnaligned(fromByteOffset: NVMeCommand.slba, as: UInt64.self)))
            let blocks = Int(UInt16(littleEndian: base.loadUnaligned(fromByteOffset: NVMeCommand.length, as: UInt16.self))) + 1
            guard opcode == NVMeCommand.write || opcode == NVMeCommand.read else { throw fail(id, "invalid opcode") }
            let write = opcode == NVMeCommand.write
            let total = blocks * BlockLimits.sectorSize
            guard slba >= 0, slba * BlockLimits.sectorSize + total <= store.capacity else { throw fail(id, "LBA out of range") }
            var position = slba * BlockLimits.sectorSize
            var left = total
            func move(_ address: DMAAddr, _ length: Int) throws(Errno) {
                guard length <= left else { throw fail(id, "data pointer longer than the transfer") }
                try store.dma(device, address: address, length: length, position: position, write: write)
                position += length
                left -= length
            }
            let page = NVMeCommand.pageSize
            let prp1 = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: NVMeCommand.prp1, as: UInt64.self))
            let prp2 = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: NVMeCommand.prp2, as: UInt64.self))
            if base.load(fromByteOffset: NVMeCommand.flags, as: UInt8.self) & 0xc0 == 0 {
                try move(prp1, min(left, page - Int(prp1 & UInt64(page - 1))))
                if left == 0 { return }
                guard prp2 & UInt64(page - 1) == 0 || left > page else { throw fail(id, "PRP2 not page aligned") }
                if left <= page {
                    try move(prp2, left)
                    return
                }
                // PRP lists: entries to the end of the list's page; the last one points on.
                var listAddress = prp2
                while left > 0 {
                    guard listAddress & 7 == 0 else { throw fail(id, "PRP list not aligned") }
                    let entries = (page - Int(listAddress & UInt64(page - 1))) / 8
                    let bytes = UnsafeMutableRawBufferPointer(rebasing: list[0..<(entries * 8)])
                    do { try device.deviceRead(listAddress, into: bytes) } catch { throw fail(id, "PRP list not readable") }
                    var i = 0
                    while left > 0 {
                        let entry = UInt64(littleEndian: bytes.baseAddress!.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self))
                        if i == entries - 1 && left > page {
                            listAddress = entry
                            break
                        }
                        guard entry & UInt64(page - 1) == 0 else { throw fail(id, "PRP entry not page aligned") }
                        try move(entry, min(left, page))
                        i += 1
                    }
                }
                return
            }
            // SGL: the command's descriptor, then the segments it leads to.
            var descriptors = UnsafeRawBufferPointer(rebasing: sqe[NVMeCommand.prp1..<(NVMeCommand.prp1 + 16)])
            var index = 0
            var last = true  // the command's descriptor is a list of one
            while left > 0 {
                guard index * 16 < descriptors.count else { throw fail(id, "SGL shorter than the transfer") }
                let at = descriptors.baseAddress! + index * 16
                let address = UInt64(littleEndian: at.loadUnaligned(as: UInt64.self))
                let length = Int(UInt32(littleEndian: at.loadUnaligned(fromByteOffset: 8, as: UInt32.self)))
                let type = at.load(fromByteOffset: 15, as: UInt8.self)
                switch type {
                case NVMeCommand.dataBlock:
                    try move(address, length)
                    index += 1
                case NVMeCommand.segment, NVMeCommand.lastSegment:
                    guard length > 0, length % 16 == 0, length <= page, index * 16 + 16 == descriptors.count || last else {
                        throw fail(id, "bad SGL segment descriptor")
                    }
                    let bytes = UnsafeMutableRawBufferPointer(rebasing: list[0..<length])
                    do { try device.deviceRead(address, into: bytes) } catch { throw fail(id, "SGL segment not readable") }
                    descriptors = UnsafeRawBufferPointer(bytes)
                    last = type == NVMeCommand.lastSegment
                    index = 0
                default:
                    throw fail(id, "SGL descriptor type \(type)")
                }
            }
        }
    }
}
