import Block
import DMA
import DMAPool
@testable import Drivers
import Hardware
import Lib
import SystemPackage
import TestSupport
import Testing

@Suite struct MegaRAIDSASTests {
    func controller(ram: UInt64 = 1 << 30, algorithm: DMAPoolAlgorithm = .stack, _ extra: String = "") throws -> (Devices, EmulatedDevice) {
        let devices = try smallDevices(ram: ram)
        return (devices, try devices.add("megaraid_sas 0000:00:03.0 capacity=64M dmapool_algorithm=\(algorithm) \(extra)"))
    }

    /// QEMU's 1000 firmware commands: max_fw_cmds 999, a frame and a sense buffer each.
    /// 6.12's pool: 4 frames of 1024 bytes and 32 sense buffers of 128 in a page, so 250
    /// and 32 pages. 6.1's legacy pool ends a page's chain one block early (pool_initialise_page()
    /// takes a block only while the next would end before the page does): 3 frames and 31
    /// sense buffers a page, 333 and 33 pages, each printed as allocation / size blocks.
    /// The newer pool is listed first (dma_pool_create() adds at the head).
    @Test(arguments: [(DMAPoolAlgorithm.stack, "megasas sense pool  999 1024  128 32\nmegasas frame pool  999 1000 1024 250\n"),
                      (.legacy, "megasas sense pool  999 1056  128 33\nmegasas frame pool  999 1332 1024 333\n")])
    func probeGivesEveryFirmwareCommandAFrameAndSense(algorithm: DMAPoolAlgorithm, pools: String) throws {
        let (devices, hba) = try controller(algorithm: algorithm)
        defer { withExtendedLifetime(devices) {} }
        #expect(hba.device.pools == "poolinfo - 0.1\n" + pools)
        // IEEE SGLs (QEMU's firmware): MEGASAS_MAX_SECTORS_IEEE, the firmware's 80 SGEs.
        #expect(hba.queue?.limits == BlockLimits(maxSegments: 80, maxSegmentSize: Int(UInt32.max), maxTransfer: 128 << 10))
    }

    @Test func removeGivesEveryPageBack() throws {
        let devices = try smallDevices(ram: 1 << 30)
        let free = devices.ram.unusedPages
        let hba = try devices.add("megaraid_sas 0000:00:03.0 capacity=16M fw_cmds=64 fw_sge=16")
        #expect(hba.active("megasas frame pool") == 63 && hba.active("megasas sense pool") == 63)
        try hba.io("verify 256K count=4 threads=2")
        try hba.remove()
        #expect(devices.ram.unusedPages == free && hba.device.pools == nil)
        #expect(throws: Errno.invalidArgument) { try hba.setParameter("fw_cmds", "33") }
        #expect(throws: Errno.invalidArgument) { try hba.setParameter("fw_sge", "0") }
        #expect(throws: Errno.invalidArgument) { try hba.setParameter("fw_sge", "256") }
        // Without IEEE SGLs: an SGE buffer (4 KiB) a request per SGE, 12-byte SGEs.
        try hba.setParameter("fw_ieee", "0")
        try hba.setParameter("fw_sge", "80")
        try hba.probe()
        #expect(hba.queue?.limits == BlockLimits(maxSegments: 80, maxSegmentSize: Int(UInt32.max), maxTransfer: 80 * 4096))
        try hba.io("verify 1M count=2")
        #expect(hba.statsText.contains("\nerrors 0\n"))
    }

    @Test(arguments: [64, 32])
    func ioGoesThroughTheFramesDirectOrBounced(maskBits: Int) throws {
        let (devices, hba) = try controller(ram: 8 << 30, "dma_mask_bits=\(maskBits)")
        defer { withExtendedLifetime(devices) {} }
        // One thread: two threads' read-modify-writes of partial sectors may overlap.
        try hba.io("verify 1000000 count=8 random")
        try hba.io("verify 64K count=64 threads=2")
        #expect(hba.statsText.contains("\nerrors 0\n"))
        #expect(hba.statsText.contains(maskBits == 32 ? "bounced_bytes" : "\nbounced_bytes 0\n"))
    }

    /// The io frame as megasas_build_ldio() fills it, by offset (struct megasas_io_frame),
    /// with 12-byte megasas_sge64 or 16-byte skinny elements.
    @Test(arguments: [false, true])
    func theFrameIsAnLDWrite(ieee: Bool) {
        let frame = UnsafeMutableRawPointer.allocate(byteCount: 1024, alignment: 256)
        defer { frame.deallocate() }
        frame.initializeMemory(as: UInt8.self, repeating: 0xee, count: 1024)
        frame.storeBytes(of: UInt32(7).littleEndian, toByteOffset: 8, as: UInt32.self)
        let list = UnsafeMutableBufferPointer<ScatterEntry>.allocate(capacity: 2)
        defer { list.deallocate() }
        for (i, (address, length)) in [(UInt64(0x1_2345_6000), 4096), (0x8000, 512)].enumerated() {
            list[i] = ScatterEntry(phys: address, length: length)
            list[i].dmaAddress = address
            list[i].dmaLength = length
        }
        MFIFrameBuilder.buildLDIO(frame, BlockCommand(write: true, lba: 0x1_0000_0002, sectors: 9), list, sense: 0x2_0000_0080,
                                  senseLength: 96, ieee: ieee)
        let bytes = Array(UnsafeRawBufferPointer(start: frame, count: 0x28 + 32))
        #expect(bytes[0x00] == 0x02 && bytes[0x01] == 96 && bytes[0x02] == 0xff && bytes[0x07] == 2)  // LD_WRITE, sense, status, SGEs
        #expect(bytes[0x08..<0x0c].elementsEqual([7, 0, 0, 0]))  // the context stays
        #expect(bytes[0x10..<0x12].elementsEqual([ieee ? 0x2a : 0x0a, 0x00]))  // DIR_WRITE | SGL64 (| IEEE)
        #expect(bytes[0x14..<0x18].elementsEqual([9, 0, 0, 0]))  // lba_count
        #expect(bytes[0x18..<0x20].elementsEqual([0x80, 0, 0, 0, 2, 0, 0, 0]))  // sense lo, hi
        #expect(bytes[0x20..<0x28].elementsEqual([2, 0, 0, 0, 1, 0, 0, 0]))  // start_lba lo, hi
        let flag: [UInt8] = ieee ? [0, 0, 0, 0] : []
        let first: [UInt8] = [0x00, 0x60, 0x45, 0x23, 0x01, 0, 0, 0, 0x00, 0x10, 0, 0] + flag
        let second: [UInt8] = [0x00, 0x80, 0, 0, 0, 0, 0, 0, 0x00, 0x02, 0, 0] + flag
        #expect(bytes[0x28...].prefix(first.count + second.count).elementsEqual(first + second))
    }

    @Test func aFrameTheFirmwareCannotRunFailsTheCommand() throws {
        let devices = try smallDevices(ram: 1 << 30)
        let hba = try devices.add("megaraid_sas 0000:00:03.0 capacity=16M")
        let controller = MFIController(device: hba.device, store: try RAMStore(capacity: 1 << 20), commands: 1000, maxSGE: 80, ieee: true)
        #expect(controller.statusRegister == 0xb450_03e8)
        // A frame the device cannot read.
        #expect(throws: Errno.ioError) { try controller.run(frame: 0x7fff_f000) }
        #expect(devices.kmsg.contains("megaraid_sas: frame 0x7ffff000: frame not readable"))
    }

    /// The kernel trusts the firmware's SGE count: megasas_build_ldio() writes as many
    /// elements as the request has, and with a firmware that allows 255 (fw_sge) and 12-byte
    /// megasas_sge64 elements an SGL of 83 runs past the 1024-byte frame into the next
    /// command's. dmaemu refuses it before the frame is written: EIO and a log line, every
    /// frame as it was, the command given back. 82 elements, (1024 - 0x28) / 12, still fit.
    @Test func anSGLThatWouldRunPastItsFrameFailsBeforeAnyFrameIsWritten() throws {
        let (devices, hba) = try controller(ram: 1 << 30, "fw_ieee=0 fw_sge=255")
        let driver = try #require(hba.driver as? MegaRAIDSASDriver)
        let instance = try #require(driver.instance.withLock { $0 })
        #expect(hba.queue?.limits.maxSegments == 255)
        let phys = try #require(devices.ram.allocPages(order: 6))
        defer { devices.ram.freePages(phys, order: 6) }
        let list = UnsafeMutableBufferPointer<ScatterEntry>.allocate(capacity: 83)
        defer { list.deallocate() }
        for i in 0..<list.count {
            list[i] = ScatterEntry(phys: phys + UInt64(i * 1024), length: 512)  // never adjacent: one element each
            (list[i].dmaAddress, list[i].dmaLength) = (list[i].phys, 512)
        }
        func frames() -> [UInt8] { instance.frames.flatMap { Array(UnsafeRawBufferPointer(start: $0.cpu, count: MFIFrame.size)) } }
        let before = frames()
        let status = UnsafeMutablePointer<UInt16>.allocate(capacity: 1)
        defer { status.deallocate() }
        #expect(throws: Errno.ioError) {
            _ = try driver.queueRequest(BlockCommand(write: false, lba: 0, sectors: 83), list, status: status)
        }
        #expect(devices.kmsg.contains("megaraid_sas: build_ld_io: sge_count = 83 does not fit the frame"))
        let unchanged = frames() == before
        #expect(unchanged, "a frame was written")
        #expect(instance.commands.available == 1000 - 1 - MegaRAIDSASDriver.internalCommands)
        let fits = UnsafeMutableBufferPointer(rebasing: list[0..<82])
        _ = try driver.queueRequest(BlockCommand(write: false, lba: 0, sectors: 82), fits, status: status)
        try hba.io("verify 4K count=64 threads=2")
        #expect(hba.statsText.contains("\nerrors 0\n"))
    }
}
