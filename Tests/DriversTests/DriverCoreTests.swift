import Block
import DMA
import Drivers
import Lib
import SystemPackage
import TestSupport
import Testing

/// A driver that stacks on another device's disk, as device-mapper does, and has none of
/// its own to show.
final class StackedDriver: Driver {
    static let name = "stacked"
    static let bus = "virtual"
    let lower: String
    init(lower: String) { self.lower = lower }
    var parameters: [(name: String, value: String)] { [] }
    func setParameter(_ name: String, _ value: String) throws(Errno) { throw .invalidArgument }
    func probe(_ context: ProbeContext) throws(Errno) { _ = try context.hold(disk: lower) }
    func remove(_ device: Device) {}
}

/// The driver core: devices added and probed, removed, stacked, and powered off.
@Suite struct DriverCoreTests {
    func devices(lower: String = "0000:01:00.0") throws -> Devices {
        let memory = try smallDevices().ram
        var drivers = BuiltinDrivers.all
        drivers[StackedDriver.name] = { StackedDriver(lower: lower) }
        return Devices(platform: Platform(ram: memory, swiotlb: nil), drivers: drivers)
    }

    @Test func aStackedDeviceHoldsTheDiskUnderIt() throws {
        let devices = try devices()
        let disk = try devices.add("nvme 0000:01:00.0 capacity=4M")
        try devices.add("stacked dm-0")
        #expect(disk.holders == ["dm-0"])
        #expect(throws: Errno.resourceBusy) { try disk.remove() }
        #expect(throws: Errno.resourceBusy) { try devices.remove("0000:01:00.0") }
        #expect(devices.kmsg.contains("nvme 0000:01:00.0: in use by dm-0\n"))
        try devices.remove("dm-0")
        #expect(disk.holders.isEmpty)
        try disk.remove()
    }

    @Test(arguments: ["nothing", "0000:00:04.0", "dm-0"])
    func onlyABoundDiskCanBeHeld(lower: String) throws {
        let devices = try devices(lower: lower)
        try devices.add("generic 0000:00:04.0")
        #expect(throws: Errno.noDevice) { try devices.add("stacked dm-0") }
        #expect(devices.device("dm-0") == nil)
        #expect(devices.kmsg.contains("stacked dm-0: probe failed: "))
    }

    @Test func anUnboundDiskCannotBeHeld() throws {
        let devices = try devices()
        try devices.add("nvme 0000:01:00.0 capacity=4M").remove()
        #expect(throws: Errno.noDevice) { try devices.add("stacked dm-0") }
    }

    /// device_shutdown() at SIGTERM: dm-0 is removed before the disk under it (whose PCI
    /// name sorts first), so the disk is never refused as in use by it.
    @Test func shutdownRemovesTheStackedDeviceFirst() throws {
        let devices = try devices()
        try devices.add("nvme 0000:01:00.0 capacity=4M")
        try devices.add("stacked dm-0")
        devices.shutdown()
        let kmsg = devices.kmsg
        #expect(!kmsg.contains("in use by"), "\(kmsg)")
        #expect(devices.all.allSatisfy { !$0.isBound })
        let upper = try #require(kmsg.range(of: "dm-0: remove took")), lower = try #require(kmsg.range(of: "0000:01:00.0: remove took"))
        #expect(upper.lowerBound < lower.lowerBound)
    }

    @Test func namesAndDriversAreChecked() throws {
        let devices = try devices()
        try devices.add("generic dm-9 dma_mask_bits=32 dmapool_algorithm=rbtree")
        #expect(throws: Errno.fileExists) { try devices.add("generic dm-9") }
        for bad in ["floppy fd0", "generic a/b", "generic ..", "generic x colour=red", "generic x dma_mask_bits=19",
                    "generic x dmapool_algorithm=slab", "generic x swiotlb=nope"] {
            #expect(throws: Errno.invalidArgument, "\(bad)") { try devices.add(bad) }
        }
        #expect(devices.all.map(\.name) == ["dm-9"])
        #expect(throws: Errno.noDevice) { try devices.remove("x") }
    }

    /// What applies at probe changes only while unbound.
    /// `kernel=` on add: that kernel's dmapool generation and driver defaults (nvme's pools
    /// were renamed in v6.16), which the other keys still override.
    @Test func aDeviceTakesItsKernelsDefaults() throws {
        let devices = try smallDevices()
        let old = try devices.add("nvme nvme0 capacity=16M kernel=6.1")
        #expect(old.dmapoolAlgorithm == .legacy && old.device.pools?.contains("prp list page") == true)
        let new = try devices.add("nvme nvme1 capacity=16M kernel=6.18")
        #expect(new.dmapoolAlgorithm == .stack && new.device.pools?.contains("nvme descriptor page") == true)
        let mixed = try devices.add("nvme nvme2 capacity=16M kernel=6.18 pool_names=prp dmapool_algorithm=rbtree")
        #expect(mixed.dmapoolAlgorithm == .rbtree && mixed.device.pools?.contains("prp list page") == true)
        #expect(throws: Errno.invalidArgument) { try devices.add("nvme nvme3 kernel=5.10") }
        #expect(devices.device("nvme3") == nil)
        // Without a kernel: the driver's own defaults and the machine's generation.
        #expect(try devices.add("nvme nvme4 capacity=16M").device.pools?.contains("prp list page") == true)
    }

    @Test func settingsWaitForAnUnboundDevice() throws {
        let devices = try devices()
        let nvme = try devices.add("nvme nvme0 capacity=4M")
        #expect(throws: Errno.resourceBusy) { try nvme.setDMAMaskBits(32) }
        #expect(throws: Errno.resourceBusy) { try nvme.setDMAPoolAlgorithm(.legacy) }
        #expect(throws: Errno.resourceBusy) { try nvme.setParameter("io_queue_depth", "16") }
        try nvme.remove()
        #expect(throws: Errno.invalidArgument) { try nvme.setDMAMaskBits(19) }
        try nvme.setDMAMaskBits(36)
        try nvme.setDMAPoolAlgorithm(.legacy)
        try nvme.probe()
        #expect(nvme.dmaMaskBits == 36 && nvme.pools.values.allSatisfy { $0.pool.algorithm == .legacy })
    }
}
