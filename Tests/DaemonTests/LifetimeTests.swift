import ControlFS
@testable import Daemon
import PhysicalMemory
import SystemPackage
import Testing

/// Control files hold their device and machine weakly: nothing outlives its owner, and
/// a file still open after its device is gone answers ENODEV, as a sysfs file does.
@Suite struct LifetimeTests {
    @Test func aRemovedDeviceIsFreedAndItsOpenFilesAnswerENODEV() throws {
        let machine = try smallMachine()
        try machine.write("control/add_device", "generic 0000:00:09.0")
        weak var removed = machine.device("0000:00:09.0")
        #expect(removed != nil)
        // What an open file descriptor keeps: the attribute node itself.
        let state = try #require(machine.root.node(at: "devices/0000:00:09.0/state") as? ControlAttribute)
        try machine.write("devices/0000:00:09.0/state", "remove")
        try machine.write("control/remove_device", "0000:00:09.0")
        #expect(removed == nil)
        #expect(throws: Errno.operationNotSupportedByDevice) { try state.snapshot() }
        #expect(throws: Errno.operationNotSupportedByDevice) { try state.write(Array("probe".utf8)) }
    }

    /// Bound devices, a dm-crypt stacked on an NVMe disk and a user's pool with blocks out:
    /// all given back when the machine goes, and with them its RAM.
    @Test func aMachineIsFreedWithItsRAM() throws {
        weak var machine: Machine?
        weak var ram: PhysicalMemory?
        do {
            let made = try smallMachine()
            try made.write("devices/0000:00:04.0/create_pool", "chain 128 16")
            try made.write("devices/0000:00:04.0/dma_pools/chain/alloc", "1000")
            try made.write("control/add_device", "nvme nvme0 capacity=4M")
            try made.write("control/add_device", "dm-crypt dm-0 lower=nvme0 key=\(cryptKey)")
            machine = made
            ram = made.ram
        }
        #expect(machine == nil)
        #expect(ram == nil)
    }
}
