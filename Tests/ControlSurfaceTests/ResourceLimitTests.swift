import ControlFS
import Drivers
import PhysicalMemory
import SystemPackage
import Testing

/// Absurd counts and sizes fail at once with EINVAL or ENOMEM and change nothing; none of
/// them gets as far as asking the host for the memory.
@Suite struct ResourceLimitTests {
    let pool = "\(dev)/dma_pools/p"

    @Test func anAllocOfATrillionBlocksIsRefusedUnparsed() throws {
        let machine = try smallMachine(ram: 64 << 20)
        try machine.write("\(dev)/create_pool", "p 2048")
        let free = machine.ram.unusedPages
        #expect(throws: Errno.invalidArgument) { try machine.write("\(pool)/alloc", "1000000000000") }
        #expect(throws: Errno.invalidArgument) { try machine.write("\(pool)/free", "1000000000000") }
        #expect(try machine.read("\(pool)/nr_active") == "0\n")
        #expect(machine.ram.unusedPages == free)
    }

    /// 10^8 blocks of 2 KiB are 200 GB: the pool runs the 64 MiB machine dry, gives every
    /// block back and answers ENOMEM; the pool still works, and its destroy frees all.
    @Test func anAllocBeyondRAMGivesEverythingBack() throws {
        let machine = try smallMachine(ram: 64 << 20)
        let free = machine.ram.unusedPages
        try machine.write("\(dev)/create_pool", "p 2048")
        #expect(throws: Errno.noMemory) { try machine.write("\(pool)/alloc", "100000000") }
        #expect(try machine.read("\(pool)/nr_active") == "0\n")
        #expect(try machine.read("\(pool)/held") == "0\n")
        try machine.write("\(pool)/alloc", "3")
        #expect(try machine.read("\(pool)/nr_active") == "3\n")
        try machine.write("\(dev)/destroy_pool", "p")
        #expect(machine.ram.unusedPages == free)
    }

    @Test func aPoolOfATerabyteBlockCannotAllocate() throws {
        let machine = try smallMachine(ram: 64 << 20)
        let free = machine.ram.unusedPages
        do {
            try machine.write("\(dev)/create_pool", "p 1099511627776")
        } catch {
            #expect(error == .invalidArgument)
            return
        }
        #expect(throws: Errno.noMemory) { try machine.write("\(pool)/alloc", "1") }
        try machine.write("\(dev)/destroy_pool", "p")
        #expect(machine.ram.unusedPages == free)
    }

    /// A terabyte of I/O is a write that would hold its FUSE thread for hours: EINVAL with a
    /// line naming the limit (64 GiB), nothing counted. One transfer of 1 TiB does not parse.
    @Test func ioOfATerabyteIsRefused() throws {
        let machine = try smallMachine(ram: 256 << 20)
        try machine.write("control/add_device", "nvme nvme0 capacity=4M")
        let io = "devices/nvme0/io"
        #expect(throws: Errno.invalidArgument) { try machine.write(io, "write 1M count=1048576 random") }
        #expect(try machine.read("kmsg").contains("nvme nvme0: dmaemu: io job of 1099511627776 bytes exceeds the 64 GiB a write may move"))
        #expect(throws: Errno.invalidArgument) { try machine.write(io, "write 1099511627776") }
        #expect(throws: Errno.invalidArgument) { try machine.write(io, "read 4096 count=10000001") }
        #expect(throws: Errno.invalidArgument) { try machine.write(io, "read 4096 threads=65") }
        #expect(try machine.read("devices/nvme0/stats").contains("ios 0\n"))
        #expect(throws: Errno.invalidArgument) { try machine.write("control/add_device", "nvme nvme1 capacity=17T") }
    }

    /// add_device stops at 4096 devices with ENOMEM; a million attempts change nothing
    /// more, and removing them all gives every page back.
    @Test func aMillionDevicesStopAtTheLimit() throws {
        let machine = try smallMachine(ram: 64 << 20)
        let free = machine.ram.unusedPages
        var added = 0
        var refused = 0
        for index in 0..<1_000_000 {
            do {
                try machine.write("control/add_device", "generic d\(index)")
                added += 1
            } catch {
                #expect(error == .noMemory)
                refused += 1
                if refused == 1000 { break }  // the rest would be the same refusal
            }
        }
        #expect(added == Devices.maxDevices - 1)  // the default generic device is one
        #expect(machine.devices.all.count == Devices.maxDevices)
        for index in 0..<added { try machine.write("control/remove_device", "d\(index)") }
        #expect(machine.devices.all.count == 1)
        #expect(machine.ram.unusedPages == free)
    }

    /// Every store takes at most a page, as sysfs does: one byte more is EINVAL.
    @Test func aWriteIsAtMostAPage() throws {
        let machine = try smallMachine(ram: 64 << 20)
        let name = String(repeating: "p", count: ControlAttribute.maxWrite - " 64".utf8.count - 1)
        #expect(throws: Errno.invalidArgument) { try machine.write("\(dev)/create_pool", name + "pp 64\n") }
        try machine.write("\(dev)/create_pool", name + " 64\n")
        #expect(try machine.read("\(dev)/pools").contains(String(name.prefix(31)) + " "))
    }
}
