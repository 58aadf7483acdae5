import Replay
import SWIOTLB
import Testing

/// Where each setting of the replayed machine comes from: an option over the recording's
/// header over what its lines show over the kernel's defaults.
@Suite struct SetupTests {
    let lines = """
        # device: 0000:00:04.0 driver=nvme dma_mask_bits=64 consistent_dma_mask_bits=64
        \(traceLine("swiotlb_bounced: dev_name: 0000:00:04.0 dma_mask=ffffffffff dev_addr=1012b78000 size=4096 FORCE", microseconds: 1))
        \(traceLine("dma_unmap_page: 0000:00:04.0 dir=TO_DEVICE dma_addr=1000 size=4096 attrs=", microseconds: 2))
        \(traceLine("dma_unmap_page: 0000:00:05.0 dir=TO_DEVICE dma_addr=1000 size=4096 attrs=", microseconds: 3))
        \(traceLine("swiotlb_bounced: dev_name: 0000:00:05.0 dma_mask=ffffffff dev_addr=12b78000 size=4096 FORCE", microseconds: 4))

        """

    @Test func masksComeFromTheHeaderThenTheBounces() throws {
        let recording = try parse(lines)
        let setup = ReplaySetup(recording: recording, options: ReplayOptions(), base: nil)
        #expect(setup.devices.map(\.dmaMask) == [.max, 0xffff_ffff])
        #expect(setup.devices.map(\.maskFrom) == ["header", "swiotlb_bounced"])
        #expect(setup.devices.map(\.minAlignMask) == [0xfff, 0])
        // PCI functions: a 4 GiB segment boundary (pci_device_add()).
        #expect(setup.devices.map(\.boundaryMask) == [0xffff_ffff, 0xffff_ffff])
        // A FORCE bounce: the host bounced everything.
        #expect(setup.swiotlb.force)
        // The highest address recorded (0x1012b78000, past 64 GiB) is RAM the replay needs.
        #expect(setup.ramBytes == 65 << 30)
        #expect(setup.notes.first?.hasPrefix("RAM raised from 8 GiB to 65 GiB") == true)
    }

    @Test func optionsWin() throws {
        let recording = try parse(lines)
        var options = ReplayOptions()
        var device = DeviceOptions()
        device.maskBits = 36
        device.minAlignMask = 0x3f
        device.driver = "mpt3sas"
        options.devices["0000:00:05.0"] = device
        options.force = false
        options.swiotlbBytes = 8 << 20
        options.areas = 4
        options.cpus = 4
        let setup = ReplaySetup(recording: recording, options: options, base: nil)
        #expect(setup.devices[1].dmaMask == 0xf_ffff_ffff && setup.devices[1].coherentMask == 0xf_ffff_ffff)
        #expect((setup.devices[1].minAlignMask, setup.devices[1].driver, setup.devices[1].maskFrom) == (0x3f, "mpt3sas", "option"))
        #expect(!setup.swiotlb.force)
        #expect((setup.swiotlbBytes, setup.swiotlb.nareas, setup.cpus) == (8 << 20, 4, 4))
    }

    /// A confidential guest of 16 GiB: 6% is 1030792151 bytes, 503316 slots in whole
    /// segments of 128, rounded up to 2^19 slots for its areas (1 GiB, the clamp).
    @Test func aConfidentialGuestGetsTheKernelsSizing() throws {
        let recording = try parse(concurrentWrites(count: 1))
        var options = ReplayOptions()
        options.confidential = true
        options.ramBytes = 16 << 30
        options.cpus = 2
        let replayer = try Replayer(recording, setup: ReplaySetup(recording: recording, options: options, base: nil))
        #expect(replayer.swiotlb?.nslabs == 524_288)
        #expect(replayer.ram.log.texts().prefix(3) == [
            "software IO TLB: SWIOTLB bounce buffer size adjusted to 983MB",
            "software IO TLB: area num 2.",
            "software IO TLB: SWIOTLB bounce buffer size roundup to 1024MB",
        ])
    }

    /// A boot line whose range and "(NMB)" disagree is not the kernel's (swiotlb_print_info()
    /// prints both from one size) and is left out; one that names RAM no replay can emulate
    /// is refused by name.
    @Test func aBootLineMustAgreeWithItselfAndFit() throws {
        let unmap = traceLine("dma_unmap_page: d dir=TO_DEVICE dma_addr=1 size=2 attrs=", microseconds: 1)
        let odd = try parse("# boot: software IO TLB: mapped [mem 0x0000000001000000-0x0000050001100000] (1MB)\n\(unmap)\n")
        #expect(odd.header.swiotlbBytes == nil && odd.header.swiotlbStart == nil)
        let huge = try parse("# boot: software IO TLB: mapped [mem 0x0000000001000000-0x0000050001000000] (5242880MB)\n\(unmap)\n")
        #expect(huge.header.swiotlbBytes == 5 << 40)
        let setup = ReplaySetup(recording: huge, options: ReplayOptions(), base: nil)
        #expect(throws: ReplayError.self) { try Replayer(huge, setup: setup) }
    }
}
