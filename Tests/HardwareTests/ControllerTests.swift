import DMA
import Hardware
import PhysicalMemory
import SystemPackage
import Testing

/// A device on 64 MiB of RAM (no dma-debug: any RAM its mask reaches is accessible) and a
/// 4 MiB disk whose byte i is i % 251.
func bench() throws -> (Device, RAMStore) {
    let device = Device(name: "0000:01:00.0", ram: try PhysicalMemory(size: 64 << 20), dmaMask: .max, coherentDMAMask: .max)
    let store = try RAMStore(capacity: 4 << 20)
    let pattern = (0..<(4 << 20)).map { UInt8($0 % 251) }
    try pattern.withUnsafeBytes { bytes in try store.write(from: bytes.baseAddress!, offset: 0, count: bytes.count) }
    return (device, store)
}

extension Device {
    func store64(_ value: UInt64, at address: UInt64) { ram.virt(address).storeBytes(of: value.littleEndian, as: UInt64.self) }
    func bytes(_ address: UInt64, _ count: Int) -> [UInt8] { Array(UnsafeRawBufferPointer(start: ram.virt(address), count: count)) }
}

/// The controller's side of NVMe (NVMe 1.4, 4.3 PRPs and 4.4 SGLs), commands written by hand.
@Suite struct NVMeControllerTests {
    static let sq: UInt64 = 0x10_0000

    /// A read or write of `blocks` LBAs at `slba` in slot 0, with PRP1/PRP2 (or the SGL
    /// descriptor in their place when `sgl`).
    func command(_ device: Device, write: Bool, slba: Int, blocks: Int, prp1: UInt64, prp2: UInt64, sglType: UInt8? = nil) {
        let sqe = device.ram.virt(Self.sq)
        sqe.initializeMemory(as: UInt8.self, repeating: 0, count: 64)
        sqe.storeBytes(of: write ? NVMeCommand.write : NVMeCommand.read, as: UInt8.self)
        sqe.storeBytes(of: UInt16(7).littleEndian, toByteOffset: NVMeCommand.commandID, as: UInt16.self)
        sqe.storeBytes(of: UInt64(slba).littleEndian, toByteOffset: NVMeCommand.slba, as: UInt64.self)
        sqe.storeBytes(of: UInt16(blocks - 1).littleEndian, toByteOffset: NVMeCommand.length, as: UInt16.self)
        sqe.storeBytes(of: prp1.littleEndian, toByteOffset: NVMeCommand.prp1, as: UInt64.self)
        sqe.storeBytes(of: prp2.littleEndian, toByteOffset: NVMeCommand.prp2, as: UInt64.self)
        if let sglType {
            sqe.storeBytes(of: NVMeCommand.sglFlag, toByteOffset: NVMeCommand.flags, as: UInt8.self)
            sqe.storeBytes(of: sglType, toByteOffset: NVMeCommand.prp1 + 15, as: UInt8.self)
        }
    }

    func expected(_ from: Int, _ count: Int) -> [UInt8] { (from..<(from + count)).map { UInt8($0 % 251) } }

    /// 3 pages from LBA 8 (byte 4096): PRP1 at an offset of 512 in its page takes 3584
    /// bytes, PRP2 points at a list of the next three pages (the last one 512 bytes).
    @Test func aReadFollowsPRP1AndAList() throws {
        let (device, store) = try bench()
        let controller = NVMeController(device: device, store: store, submissionQueueDMA: Self.sq)
        let list: UInt64 = 0x20_0000, pages: [UInt64] = [0x30_0000, 0x31_0000, 0x32_0000, 0x33_0000]
        for (i, page) in pages.dropFirst().enumerated() { device.store64(page, at: list + UInt64(i) * 8) }
        command(device, write: false, slba: 8, blocks: 24, prp1: pages[0] + 512, prp2: list)
        try controller.run(slot: 0)
        #expect(device.bytes(pages[0] + 512, 3584) == expected(4096, 3584))
        #expect(device.bytes(pages[1], 4096) == expected(4096 + 3584, 4096))
        #expect(device.bytes(pages[2], 4096) == expected(4096 + 3584 + 4096, 4096))
        #expect(device.bytes(pages[3], 512) == expected(4096 + 3584 + 8192, 512))
        #expect(device.bytes(pages[3] + 512, 1) == [0])
    }

    /// A write of 514 pages: the list's page holds 512 entries; the last points at a
    /// second list, whose first entry is page 513 (PRP1 took page 0).
    @Test func aFullListChainsToTheNext() throws {
        let (device, store) = try bench()
        let controller = NVMeController(device: device, store: store, submissionQueueDMA: Self.sq)
        let data: UInt64 = 0x100_0000, first: UInt64 = 0x20_0000, second: UInt64 = 0x21_0000
        for i in 0..<511 { device.store64(data + UInt64(i + 1) * 4096, at: first + UInt64(i) * 8) }
        device.store64(second, at: first + 511 * 8)
        device.store64(data + 512 * 4096, at: second)
        device.store64(data + 513 * 4096, at: second + 8)
        let payload = (0..<(514 * 4096)).map { UInt8($0 % 13) }
        payload.withUnsafeBytes { device.ram.virt(data).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        command(device, write: true, slba: 0, blocks: 514 * 8, prp1: data, prp2: first)
        try controller.run(slot: 0)
        var disk = [UInt8](repeating: 0, count: payload.count)
        try disk.withUnsafeMutableBytes { bytes in try store.read(into: bytes.baseAddress!, offset: 0, count: bytes.count) }
        #expect(disk == payload)
    }

    /// One data block descriptor in the command; then a last segment of two.
    @Test func sglDataBlocksAndALastSegment() throws {
        let (device, store) = try bench()
        let controller = NVMeController(device: device, store: store, submissionQueueDMA: Self.sq)
        command(device, write: false, slba: 1, blocks: 1, prp1: 0x30_0000, prp2: 512, sglType: NVMeCommand.dataBlock)
        try controller.run(slot: 0)
        #expect(device.bytes(0x30_0000, 512) == expected(512, 512))
        let segment: UInt64 = 0x20_0000
        for (i, (address, length)) in [(UInt64(0x40_0000), 1024), (UInt64(0x50_0100), 3072)].enumerated() {
            device.store64(address, at: segment + UInt64(i) * 16)
            device.ram.virt(segment + UInt64(i) * 16 + 8).storeBytes(of: UInt64(length).littleEndian, as: UInt64.self)
        }
        command(device, write: false, slba: 2, blocks: 8, prp1: segment, prp2: 32, sglType: NVMeCommand.lastSegment)
        try controller.run(slot: 0)
        #expect(device.bytes(0x40_0000, 1024) == expected(1024, 1024))
        #expect(device.bytes(0x50_0100, 3072) == expected(2048, 3072))
    }

    @Test func malformedCommandsFailWithTheirReason() throws {
        let (device, store) = try bench()
        let controller = NVMeController(device: device, store: store, submissionQueueDMA: Self.sq)
        // 2 pages: PRP2 must then be a page address.
        command(device, write: false, slba: 0, blocks: 16, prp1: 0x30_0000, prp2: 0x31_0010)
        #expect(throws: Errno.ioError) { try controller.run(slot: 0) }
        command(device, write: false, slba: 8191, blocks: 2, prp1: 0x30_0000, prp2: 0)
        #expect(throws: Errno.ioError) { try controller.run(slot: 0) }
        command(device, write: false, slba: 0, blocks: 1, prp1: 0x30_0000, prp2: 0, sglType: 0x50)
        #expect(throws: Errno.ioError) { try controller.run(slot: 0) }
        #expect(device.ram.log.texts() == [
            "pci 0000:01:00.0: nvme nvme0: I/O tag 7 failed: PRP2 not page aligned",
            "pci 0000:01:00.0: nvme nvme0: I/O tag 7 failed: LBA out of range",
            "pci 0000:01:00.0: nvme nvme0: I/O tag 7 failed: SGL descriptor type 80",
        ])
    }
}

/// The controller's completion queue entries (NVMe 1.4, 4.6: struct nvme_completion), as
/// bytes worked out from the format: result (8 bytes), SQ head, SQ id, command id, then the
/// status word, phase tag in bit 0 and the status field above it (Do Not Retry its bit 14).
@Suite struct NVMeCompletionTests {
    static let cq: UInt64 = 0x40_0000

    func entry(_ device: Device, _ index: Int) -> [UInt8] { device.bytes(Self.cq + UInt64(index * 16), 16) }

    /// A controller whose completions go to a queue of `depth` entries at `cq`.
    func controller(depth: Int) throws -> (Device, NVMeController, NVMeCompletionQueue) {
        let (device, store) = try bench()
        let queue = NVMeCompletionQueue(dma: Self.cq, depth: depth, submissionQueueID: 1)
        return (device, NVMeController(device: device, store: store, submissionQueueDMA: NVMeControllerTests.sq, completionQueue: queue), queue)
    }

    @Test func aCommandEndsWithAnEntry() throws {
        let (device, controller, _) = try controller(depth: 4)
        NVMeControllerTests().command(device, write: false, slba: 8, blocks: 8, prp1: 0x30_0000, prp2: 0)
        #expect(controller.execute(slot: 0))
        #expect(entry(device, 0) == [0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 7, 0, 1, 0])
        // Past the disk's end: LBA Out of Range, 0x80, with DNR: (0x4080 << 1) | 1 = 0x8101.
        NVMeControllerTests().command(device, write: false, slba: 8191, blocks: 2, prp1: 0x30_0000, prp2: 0)
        #expect(controller.execute(slot: 0))
        #expect(entry(device, 1) == [0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 7, 0, 0x01, 0x81])
        // PRP2 not page aligned: PRP Offset Invalid, 0x13: (0x4013 << 1) | 1 = 0x8027.
        NVMeControllerTests().command(device, write: false, slba: 0, blocks: 16, prp1: 0x30_0000, prp2: 0x31_0010)
        #expect(controller.execute(slot: 0))
        #expect(entry(device, 2)[14...] == [0x27, 0x80])
    }

    /// Two entries: the queue is full with one (its tail would meet the head), so the second
    /// waits for the host's doorbell; the wrap inverts the phase, and a success on the second
    /// pass reads status 0.
    @Test func thePhaseTagInvertsAtTheWrap() throws {
        let (device, controller, queue) = try controller(depth: 2)
        NVMeControllerTests().command(device, write: false, slba: 0, blocks: 1, prp1: 0x30_0000, prp2: 0)
        #expect(controller.execute(slot: 0))
        #expect(!controller.execute(slot: 0))
        #expect(device.ram.log.texts().last == "pci 0000:01:00.0: nvme nvme0: I/O tag 7: completion queue full or unwritable")
        queue.ringHead(1)
        #expect(controller.execute(slot: 0))
        #expect(entry(device, 1)[14...] == [1, 0])
        queue.ringHead(0)
        #expect(controller.execute(slot: 0))
        #expect(entry(device, 0)[12...] == [7, 0, 0, 0])
    }
}

/// The IOC's side of MPI 2.5 SCSI IO: the frame's CDB and its IEEE SGL, written by hand.
@Suite struct MPT3SASControllerTests {
    static let frames: UInt64 = 0x10_0000

    /// SMID 1's frame: READ(16) or WRITE(16) of `sectors` at `lba`, and `elements` IEEE
    /// SGEs (address, length, next chain offset, flags) from the SGL offset.
    func frame(_ device: Device, write: Bool, lba: Int, sectors: Int, _ elements: [(UInt64, Int, UInt8, UInt8)]) {
        let frame = device.ram.virt(Self.frames + UInt64(MPT3SASFrame.size))
        frame.initializeMemory(as: UInt8.self, repeating: 0, count: MPT3SASFrame.size)
        frame.storeBytes(of: UInt32(sectors * 512).littleEndian, toByteOffset: MPT3SASFrame.dataLength, as: UInt32.self)
        let control = write ? MPT3SASFrame.controlWrite : MPT3SASFrame.controlRead
        frame.storeBytes(of: control.littleEndian, toByteOffset: MPT3SASFrame.control, as: UInt32.self)
        frame.storeBytes(of: write ? MPT3SASFrame.write16 : MPT3SASFrame.read16, toByteOffset: MPT3SASFrame.cdb, as: UInt8.self)
        frame.storeBytes(of: UInt64(lba).bigEndian, toByteOffset: MPT3SASFrame.cdb + 2, as: UInt64.self)
        frame.storeBytes(of: UInt32(sectors).bigEndian, toByteOffset: MPT3SASFrame.cdb + 10, as: UInt32.self)
        for (i, element) in elements.enumerated() { Self.sge(frame + MPT3SASFrame.sglOffset + i * 16, element) }
    }

    static func sge(_ at: UnsafeMutableRawPointer, _ element: (UInt64, Int, UInt8, UInt8)) {
        at.storeBytes(of: element.0.littleEndian, as: UInt64.self)
        at.storeBytes(of: UInt32(element.1).littleEndian, toByteOffset: 8, as: UInt32.self)
        at.storeBytes(of: element.2, toByteOffset: 14, as: UInt8.self)
        at.storeBytes(of: element.3, toByteOffset: 15, as: UInt8.self)
    }

    /// One simple element in the frame and a chain to a buffer of two, the last END_OF_LIST.
    @Test func aReadWalksTheFrameAndAChain() throws {
        let (device, store) = try bench()
        let ioc = MPT3SASController(device: device, store: store, requestFramesDMA: Self.frames, chainSegmentSize: 128)
        let chain: UInt64 = 0x20_0000
        Self.sge(device.ram.virt(chain), (0x31_0000, 4096, 0, MPT3SASFrame.simple))
        Self.sge(device.ram.virt(chain + 16), (0x32_0000, 512, 0, MPT3SASFrame.endOfList))
        frame(device, write: false, lba: 3, sectors: 17, [(0x30_0000, 4096, 0, MPT3SASFrame.simple), (chain, 32, 0, MPT3SASFrame.chain)])
        try ioc.run(smid: 1)
        let bytes = { (address: UInt64, count: Int) in Array(UnsafeRawBufferPointer(start: device.ram.virt(address), count: count)) }
        #expect(bytes(0x30_0000, 4096) == (1536..<5632).map { UInt8($0 % 251) })
        #expect(bytes(0x31_0000, 4096) == (5632..<9728).map { UInt8($0 % 251) })
        #expect(bytes(0x32_0000, 512) == (9728..<10240).map { UInt8($0 % 251) })
    }

    @Test func anSGLWithoutItsEndFails() throws {
        let (device, store) = try bench()
        let ioc = MPT3SASController(device: device, store: store, requestFramesDMA: Self.frames, chainSegmentSize: 128)
        frame(device, write: true, lba: 0, sectors: 16, [(0x30_0000, 4096, 0, MPT3SASFrame.simple), (0x31_0000, 4096, 0, MPT3SASFrame.simple)])
        #expect(throws: Errno.ioError) { try ioc.run(smid: 1) }
        frame(device, write: true, lba: 0, sectors: 1, [(0x30_0000, 4096, 0, MPT3SASFrame.endOfList)])
        #expect(throws: Errno.ioError) { try ioc.run(smid: 1) }
        #expect(device.ram.log.texts() == [
            "pci 0000:01:00.0: mpt3sas_cm0: ioc status: scsi io failed for smid(1): SGL without END_OF_LIST",
            "pci 0000:01:00.0: mpt3sas_cm0: ioc status: scsi io failed for smid(1): SGL longer than the data",
        ])
    }
}

/// The IOC's reply descriptors (MPI 2.5: Mpi2SCSIIOSuccessReplyDescriptor_t and
/// Mpi2AddressReplyDescriptor_t, 8 bytes each) and SCSI IO reply frames, as bytes worked out
/// from mpi2.h: ReplyFlags (0x00 success, 0x01 address reply), MSIxIndex, SMID, then TaskTag
/// or the frame's address; the frame's IOCStatus at 0x0e.
@Suite struct MPT3SASReplyTests {
    static let posts: [UInt64] = [0x40_0000, 0x41_0000], free: UInt64 = 0x42_0000, frames: UInt64 = 0x43_0000

    /// Two post queues of `depth` entries, all ones, and a free queue of `frames` frames.
    func ioc(depth: Int, frames: Int) throws -> (Device, MPT3SASController, MPT3SASReplyQueues) {
        let (device, store) = try bench()
        for post in Self.posts { device.ram.virt(post).initializeMemory(as: UInt8.self, repeating: 0xff, count: depth * 8) }
        for i in 0..<frames { device.ram.virt(Self.free + UInt64(i) * 4).storeBytes(of: UInt32(Self.frames) + UInt32(i * 128), as: UInt32.self) }
        let queues = MPT3SASReplyQueues(postQueues: Self.posts, postDepth: depth, freeQueue: Self.free, freeDepth: frames,
                                        frameSize: 128, replyAddressHigh: 0)
        return (device, MPT3SASController(device: device, store: store, requestFramesDMA: MPT3SASControllerTests.frames,
                                          chainSegmentSize: 128, replyQueues: queues), queues)
    }

    @Test func successAndAddressReplies() throws {
        let (device, ioc, _) = try ioc(depth: 4, frames: 3)
        MPT3SASControllerTests().frame(device, write: false, lba: 0, sectors: 8, [(0x30_0000, 4096, 0, MPT3SASFrame.endOfList)])
        #expect(ioc.execute(smid: 1, msix: 1))
        #expect(device.bytes(Self.posts[1], 8) == [0x00, 0x01, 0x01, 0x00, 0, 0, 0, 0])
        #expect(device.bytes(Self.posts[1] + 8, 8) == [UInt8](repeating: 0xff, count: 8))
        #expect(device.bytes(Self.posts[0], 8) == [UInt8](repeating: 0xff, count: 8))
        // Past the disk's end (8192 sectors): an address reply to the first free frame,
        // 0x430000, whose IOCStatus is INVALID_FIELD (0x0007).
        MPT3SASControllerTests().frame(device, write: false, lba: 8191, sectors: 2, [(0x30_0000, 1024, 0, MPT3SASFrame.endOfList)])
        #expect(ioc.execute(smid: 1, msix: 1))
        #expect(device.bytes(Self.posts[1] + 8, 8) == [0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x43, 0x00])
        #expect(device.bytes(Self.frames, 0x18) == [0, 0, 0, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x07, 0x00] + [UInt8](repeating: 0, count: 8))
    }

    /// A post queue of two takes one entry until the host's index moves; two free frames
    /// (host index 1 at first) give one reply frame until the host returns it.
    @Test func fullQueuesTakeNothing() throws {
        let (device, ioc, queues) = try ioc(depth: 2, frames: 2)
        MPT3SASControllerTests().frame(device, write: false, lba: 8191, sectors: 2, [(0x30_0000, 1024, 0, MPT3SASFrame.endOfList)])
        #expect(ioc.execute(smid: 1, msix: 0))
        #expect(!ioc.execute(smid: 1, msix: 1))  // queue 1 is empty, but no frame is free
        queues.ringFreeHost(0)
        #expect(ioc.execute(smid: 1, msix: 1))
        #expect(device.bytes(Self.posts[1], 8)[4..<8] == [0x80, 0x00, 0x43, 0x00])
        #expect(!ioc.execute(smid: 1, msix: 0))  // the host has not read queue 0's entry
        #expect(device.ram.log.texts().last == "pci 0000:01:00.0: mpt3sas_cm0: smid(1): reply post queue 0 full, or no reply frame free")
    }
}

