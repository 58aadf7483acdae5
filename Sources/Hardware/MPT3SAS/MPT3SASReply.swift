// The reply side of MPI 2.5 (mpi2.h, mpi2_init.h): the 8-byte reply descriptors the IOC
// posts into a reply descriptor post queue (the driver's reply_post_free blocks, one queue
// per MSI-X vector), and the reply frames it fills for a command that did not simply
// succeed, taken from the reply free queue the host keeps stocked with frame addresses.
// The host marks a queue's entries unused with all ones; the IOC writes over them in order.
import DMA
import Locking
import SystemPackage

public enum MPT3SASReply {
    public static let descriptorSize = 8
    /// ReplyFlags' type (bits 3:0): SCSI IO Success, Address Reply, Unused.
    public static let scsiIOSuccess: UInt8 = 0x00, addressReply: UInt8 = 0x01, unused: UInt8 = 0x0f, typeMask: UInt8 = 0x0f
    // Offsets in a descriptor: ReplyFlags, MSIxIndex, SMID; then TaskTag (success) or
    // ReplyFrameAddress (address reply).
    public static let flags = 0, msixIndex = 1, smid = 2, frameAddress = 4
    // Offsets in Mpi2SCSIIOReply_t.
    public static let function = 0x03, scsiStatus = 0x0c, iocStatus = 0x0e, iocLogInfo = 0x10, transferCount = 0x14

    /// IOCStatus values the IOC gives (MPI2_IOCSTATUS_*).
    public enum IOCStatus: UInt16, Sendable {
        case success = 0x0000
        case invalidFunction = 0x0001
        case invalidSGL = 0x0003
        case invalidField = 0x0007
        case scsiIODataError = 0x0046
    }
}

/// The IOC's ends of the reply queues: where it writes next in each post queue, where it
/// takes the next frame from the free queue, and the host indexes the driver last wrote.
public final class MPT3SASReplyQueues: Sendable {
    public let postQueues: [DMAAddr]
    public let postDepth: Int
    public let freeQueue: DMAAddr
    public let freeDepth: Int
    public let frameSize: Int
    /// IOCInit's SystemReplyAddressHigh: the free queue's entries are the frames' low 32
    /// bits, all the frames in one 4 GiB region.
    public let replyAddressHigh: UInt32
    private struct Indexes {
        var post: [Int]
        var postHost: [Int]
        var free = 0
        var freeHost: Int
    }
    private let indexes: PthreadMutex<Indexes>

    /// `postQueues`: each queue's dma address (reply_q->reply_post_free); the free queue's
    /// entries are 32-bit frame addresses, those before ReplyFreeHostIndex (depth - 1 at
    /// first) the IOC's to take.
    public init(postQueues: [DMAAddr], postDepth: Int, freeQueue: DMAAddr, freeDepth: Int, frameSize: Int, replyAddressHigh: UInt32) {
        self.postQueues = postQueues
        self.replyAddressHigh = replyAddressHigh
        self.postDepth = postDepth
        self.freeQueue = freeQueue
        self.freeDepth = freeDepth
        self.frameSize = frameSize
        indexes = PthreadMutex(Indexes(post: postQueues.map { _ in 0 }, postHost: postQueues.map { _ in 0 }, freeHost: freeDepth - 1))
    }

    /// The ReplyPostHostIndex register of queue `msix`.
    public func ringPostHost(_ msix: Int, _ index: Int) { indexes.withLock { $0.postHost[msix] = index % postDepth } }

    /// The ReplyFreeHostIndex register.
    public func ringFreeHost(_ index: Int) { indexes.withLock { $0.freeHost = index % freeDepth } }

    /// Posts SMID `smid`'s end into queue `msix`: a SCSI IO Success descriptor, or for a
    /// failure a reply frame (its IOCStatus and the bytes moved) and an Address Reply
    /// descriptor pointing at it. False when the queue is full, no frame is free, or the
    /// memory cannot be written.
    func post(_ device: Device, smid: Int, msix: Int, status: MPT3SASReply.IOCStatus, transferred: Int) -> Bool {
        indexes.withLock { x in
            guard msix < postQueues.count, (x.post[msix] + 1) % postDepth != x.postHost[msix] else { return false }
            // ReplyFlags, MSIxIndex, SMID, then TaskTag 0 or the frame's address.
            var descriptor = UInt64(UInt8(truncatingIfNeeded: msix)) << 8 | UInt64(UInt16(smid)) << 16
            if status != .success {
                // The frames from the IOC's index up to the host's (not including it).
                guard x.free != x.freeHost,
                      let frame = fillFrame(device, at: x.free, status: status, transferred: transferred) else { return false }
                x.free = (x.free + 1) % freeDepth
                descriptor |= UInt64(MPT3SASReply.addressReply) | UInt64(frame) << 32
            }
            let at = postQueues[msix] + DMAAddr(x.post[msix] * MPT3SASReply.descriptorSize)
            let written = withUnsafeBytes(of: descriptor.littleEndian) { bytes in
                Result { () throws(DeviceAccessError) in try device.deviceWrite(at, from: bytes) }
            }
            guard case .success = written else { return false }
            x.post[msix] = (x.post[msix] + 1) % postDepth
            return true
        }
    }

    /// Writes a SCSI IO reply into the frame whose address is free queue entry `index`;
    /// returns that address.
    private func fillFrame(_ device: Device, at index: Int, status: MPT3SASReply.IOCStatus, transferred: Int) -> UInt32? {
        withUnsafeTemporaryAllocation(byteCount: max(frameSize, 4), alignment: 8) { frame -> UInt32? in
            let entry = UnsafeMutableRawBufferPointer(rebasing: frame[0..<4])
            guard (try? device.deviceRead(freeQueue + DMAAddr(index * 4), into: entry)) != nil else { return nil }
            let address = UInt32(littleEndian: entry.load(as: UInt32.self))
            frame.initializeMemory(as: UInt8.self, repeating: 0)
            frame[MPT3SASReply.function] = MPT3SASFrame.functionSCSIIO
            frame.storeBytes(of: status.rawValue.littleEndian, toByteOffset: MPT3SASReply.iocStatus, as: UInt16.self)
            frame.storeBytes(of: UInt32(transferred).littleEndian, toByteOffset: MPT3SASReply.transferCount, as: UInt32.self)
            let at = DMAAddr(replyAddressHigh) << 32 | DMAAddr(address)
            guard (try? device.deviceWrite(at, from: UnsafeRawBufferPointer(rebasing: frame[0..<frameSize]))) != nil else {
                return nil
            }
            return address
        }
    }
}
