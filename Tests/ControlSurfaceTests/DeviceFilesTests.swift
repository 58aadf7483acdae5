import Block
import ControlFS
import ControlSurface
import DMA
import Drivers
import Lib
import SystemPackage
import Testing

/// A driver with a stat and a file of its own, which the surface shows as "key value" lines.
final class ChattyDriver: Driver {
    static let name = "chatty"
    var parameters: [(name: String, value: String)] { [("loud", "1")] }
    func setParameter(_ name: String, _ value: String) throws(Errno) { throw .invalidArgument }
    func probe(_ context: ProbeContext) throws(Errno) {}
    func remove(_ device: Device) {}
    var stats: [(name: String, value: String)] { [("words", "42")] }
    var files: [DriverFile] { [DriverFile("gossip") { [("who", "me"), ("what", "nothing")] }] }
}

/// What a device's directory is made of: the driver's parameters, stats and files, and a
/// disk's io and disk files, each reaching the device through its driver.
@Suite struct DeviceFilesTests {
    @Test func aDriversDeclaredFilesAreShown() throws {
        let machine = try smallMachine()
        var drivers = BuiltinDrivers.all
        drivers[ChattyDriver.name] = { ChattyDriver() }
        let devices = Devices(platform: machine.devices.platform, drivers: drivers)
        let surface = ControlSurface(devices: devices)
        try devices.add(driver: "chatty", name: "c0")
        let read = { (path: String) throws in
            String(decoding: try #require(surface.root.node(at: path) as? ControlAttribute).snapshot(), as: UTF8.self)
        }
        #expect(try read("devices/c0/gossip") == "who me\nwhat nothing\n")
        #expect(try read("devices/c0/stats").hasSuffix("remove_us 0\nwords 42\n"))
        #expect(try read("devices/c0/params/loud") == "1\n")
        #expect(surface.root.node(at: "devices/c0/io") == nil && surface.root.node(at: "devices/c0/disk") == nil)
    }

    @Test func aDisksIoAndDiskFiles() throws {
        let machine = try smallMachine()
        try machine.write("control/add_device", "nvme nvme0 capacity=4M")
        try machine.write("devices/nvme0/io", "write 8192 offset=4096 seed=5")
        #expect(try machine.read("devices/nvme0/stats").contains("\nios 1\nbytes 8192\nbounced_bytes 0\nerrors 0\n"))
        #expect(try machine.read("devices/nvme0/params/io_queue_depth") == "1024\n")
        let disk = try #require(machine.root.node(at: "devices/nvme0/disk") as? ControlBlockFile)
        #expect(disk.size() == 4 << 20)
        var bytes = [UInt8](repeating: 0, count: 100)
        #expect(try bytes.withUnsafeMutableBytes { buffer throws(Errno) in try disk.read(buffer, 4100) } == 100)
        #expect(bytes == (4100..<4200).map { DataPattern.byte(5, at: $0) })
        try machine.write("devices/nvme0/state", "remove")
        #expect(throws: Errno.noDevice) { try machine.write("devices/nvme0/io", "read 4096") }
        #expect(throws: Errno.noDevice) { try bytes.withUnsafeMutableBytes { buffer throws(Errno) in try disk.read(buffer, 0) } }
        #expect(disk.size() == 0)
        #expect(!(try machine.read("devices/nvme0/stats")).contains("ios"))
    }
}
