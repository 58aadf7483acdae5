// The emulated IOC of the HBA: given a request's SMID it fetches the frame by DMA, decodes
// the CDB, and walks the IEEE SGL by dma address (the frame's slots, then each chain
// buffer the chain elements point at), moving each simple element's bytes between the
// disk and memory, then posts the SMID's reply descriptor (MPT3SASReply). Anything
// malformed fails the command with the IOC status the firmware gives it; a read or write
// outside the device's mappings is refused by the DMA layer.
import DMA
import SystemPackage

public struct MPT3SASController: @unchecked Sendable {  // the store and device are shared, thread-safe
    public let device: Device
    public let store: any BackingStore
    public let requestFramesDMA: DMAAddr
    public let chainSegmentSize: Int
    /// Where replies go.
    public let replyQueues: MPT3SASReplyQueues?

    public init(device: Device, store: any BackingStore, requestFramesDMA: DMAAddr, chainSegmentSize: Int,
                replyQueues: MPT3SASReplyQueues? = nil) {
        self.device = device
        self.store = store
        self.requestFramesDMA = requestFramesDMA
        self.chainSegmentSize = chainSegmentSize
        self.replyQueues = replyQueues
    }

    struct Failure: Error {
        let status: MPT3SASReply.IOCStatus
    }

    func fail(_ smid: Int, _ why: String, _ status: MPT3SASReply.IOCStatus) -> Failure {
        device.err("mpt3sas_cm0: ioc status: scsi io failed for smid(\(smid)): \(why)")
        return Failure(status: status)
    }

    /// Executes the SCSI IO whose request frame is SMID `smid`'s; EIO when it fails.
    public func run(smid: Int) throws(Errno) {
        guard perform(smid: smid).status == .success else { throw .ioError }
    }

    /// What the IOC does for a request descriptor: runs SMID `smid`'s SCSI IO and posts its
    /// reply into reply queue `msix` (the request descriptor's MSIxIndex). False when it
    /// could not be posted.
    public func execute(smid: Int, msix: Int) -> Bool {
        let (status, moved) = perform(smid: smid)
        guard let replyQueues, replyQueues.post(device, smid: smid, msix: msix, status: status, transferred: moved) else {
            device.err("mpt3sas_cm0: smid(\(smid)): reply post queue \(msix) full, or no reply frame free")
            return false
        }
        return true
    }

    /// SMID `smid`'s SCSI IO: how it ended and the bytes it moved.
    func perform(smid: Int) -> (status: MPT3SASReply.IOCStatus, moved: Int) {
        var moved = 0
        do throws(Failure) {
            try transfer(smid: smid, moved: &moved)
            return (.success, moved)
        } catch {
            return (error.status, moved)
        }
    }

    private func transfer(smid: Int, moved: inout Int) throws(Failure) {
        try withUnsafeTemporaryAllocation(byteCount: 4096 + MPT3SASFrame.size, alignment: 16) { (scratch) throws(Failure) in
            let frame = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<MPT3SASFrame.size])
            let segment = UnsafeMutableRawBufferPointer(rebasing: scratch[MPT3SASFrame.size...])
            do {
                try device.deviceRead(requestFramesDMA + DMAAddr(smid * MPT3SASFrame.size), into: frame)
            } catch {
                throw fail(smid, "request frame not readable", .scsiIODataError)
            }
            let base = frame.baseAddress!
            guard base.load(fromByteOffset: MPT3SASFrame.function, as: UInt8.self) == MPT3SASFrame.functionSCSIIO else {
                throw fail(smid, "unknown function", .invalidFunction)
            }
            let control = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: MPT3SASFrame.control, as: UInt32.self))
            let dataLength = Int(UInt32(littleEndian: base.loadUnaligned(fromByteOffset: MPT3SASFrame.dataLength, as: UInt32.self)))
            let opcode = base.load(fromByteOffset: MPT3SASFrame.cdb, as: UInt8.self)
            let lba = Int(UInt64(bigEndian: base.loadUnaligned(fromByteOffset: MPT3SASFrame.cdb + 2, as: UInt64.self)))
            let sectors = Int(UInt32(bigEndian: base.loadUnaligned(fromByteOffset: MPT3SASFrame.cdb + 10, as: UInt32.self)))
            let write = opcode == MPT3SASFrame.write16
            guard write || opcode == MPT3SASFrame.read16,
                  control & (write ? MPT3SASFrame.controlWrite : MPT3SASFrame.controlRead) != 0,
                  dataLength == sectors * LBA.size
            else { throw fail(smid, "bad CDB or data length", .invalidField) }
            guard lba >= 0, (lba + sectors) * LBA.size <= store.capacity else {
                throw fail(smid, "LBA out of range", .invalidField)
            }
            // Walk the SGL: `elements` is the segment being read (the frame, then chains).
            var elements = UnsafeRawBufferPointer(rebasing: frame[MPT3SASFrame.sglOffset...])
            var index = 0
            var position = lba * LBA.size
            while true {
                guard (index + 1) * MPT3SASFrame.sgeSize <= elements.count else { throw fail(smid, "SGL without END_OF_LIST", .invalidSGL) }
                let at = elements.baseAddress! + index * MPT3SASFrame.sgeSize
                let address = UInt64(littleEndian: at.loadUnaligned(as: UInt64.self))
                let length = Int(UInt32(littleEndian: at.loadUnaligned(fromByteOffset: 8, as: UInt32.self)))
                let flags = at.load(fromByteOffset: 15, as: UInt8.self)
                if flags & MPT3SASFrame.chain != 0 {
                    guard length > 0, length <= chainSegmentSize, length % MPT3SASFrame.sgeSize == 0 else {
                        throw fail(smid, "bad chain element", .invalidSGL)
                    }
                    let next = UnsafeMutableRawBufferPointer(rebasing: segment[0..<length])
                    do { try device.deviceRead(address, into: next) } catch { throw fail(smid, "chain buffer not readable", .invalidSGL) }
                    elements = UnsafeRawBufferPointer(next)
                    index = 0
                    continue
                }
                guard moved + length <= dataLength else { throw fail(smid, "SGL longer than the data", .invalidSGL) }
                do {
                    try store.dma(device, address: address, length: length, position: position, write: write)
                } catch {
                    throw Failure(status: .scsiIODataError)  // the device's access check said why
                }
                position += length
                moved += length
                if flags & MPT3SASFrame.endOfList != 0 { break }
                index += 1
            }
            guard moved == dataLength else { throw fail(smid, "SGL shorter than the data", .invalidSGL) }
        }
    }
}
