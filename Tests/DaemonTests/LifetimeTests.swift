import ControlFS
import Daemon
import PhysicalMemory
import Testing

/// The tree holds the machine weakly: when the machine goes, everything it made goes.
@Suite struct MachineLifetimeTests {
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
