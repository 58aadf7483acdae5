import ControlFS
import ControlSurface
import Drivers
import PhysicalMemory
import SWIOTLB
import SystemPackage
import TestSupport
import Testing
import Trace

/// A small machine as the control surface shows it: 1 GiB of RAM, a 1 MiB swiotlb in two
/// areas, the drivers of Drivers, and the generic device 0000:00:04.0 with 64-bit masks.
final class TestMachine {
    let devices: Devices
    let surface: ControlSurface
    var root: ControlDirectory { surface.root }
    var ram: PhysicalMemory { devices.platform.ram }
    var swiotlb: IOTLBMem? { devices.platform.swiotlb }

    init(ram bytes: UInt64, tracer: Tracer? = nil) throws {
        let ram = try PhysicalMemory(size: bytes)
        var config = SWIOTLBConfig()
        config.nslabs = 512
        config.nareas = 2
        devices = Devices(platform: Platform(ram: ram, swiotlb: IOTLBMem(ram: ram, config: config), tracer: tracer), drivers: BuiltinDrivers.all)
        surface = ControlSurface(devices: devices)
        try devices.add(driver: "generic", name: "0000:00:04.0", parameters: ["dma_mask_bits": "64"])
    }

    func device(_ name: String) -> EmulatedDevice? { devices.device(name) }

    func read(_ path: String) throws(Errno) -> String { try root.read(path) }
    func write(_ path: String, _ text: String) throws(Errno) { try root.write(path, text) }
}

func smallMachine(ram: UInt64 = 1 << 30, tracer: Tracer? = nil) throws -> TestMachine { try TestMachine(ram: ram, tracer: tracer) }

let dev = "devices/0000:00:04.0"
