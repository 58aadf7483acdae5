// The emulated machine the daemon serves, built from its config: RAM, the default software
// IO TLB and the restricted pools, the devices with their drivers (this module's table adds
// dm-crypt to the drivers of Drivers), and the control surface that shows them.
import ControlFS
import ControlSurface
import DMCrypt
import Drivers
import Lib
import PhysicalMemory
import Printk
import SWIOTLB
import SystemPackage
import Trace

public enum MachineError: Error, CustomStringConvertible {
    case memory(PhysicalMemoryError)
    case device(String, Errno)

    public var description: String {
        switch self {
        case .memory(let error): "\(error)"
        case .device(let name, let errno): "device \(name): \(errno)"
        }
    }
}

public final class Machine: Sendable {
    public let config: MachineConfig
    public let ram: PhysicalMemory
    public let devices: Devices
    public let surface: ControlSurface
    public var root: ControlDirectory { surface.root }
    public var swiotlb: IOTLBMem? { devices.platform.swiotlb }

    /// Every driver a machine with `totalPages` of RAM knows, by name.
    public static func drivers(totalPages: Int) -> [String: Devices.Factory] {
        BuiltinDrivers.all.merging([DMCryptDriver.name: DMCryptDriver.factory(totalPages: totalPages)]) { builtin, _ in builtin }
    }

    public init(_ config: MachineConfig, log: KernelLog = KernelLog()) throws(MachineError) {
        self.config = config
        let ram: PhysicalMemory
        do {
            ram = try PhysicalMemory(size: config.ramBytes, log: log)
        } catch {
            throw .memory(error)
        }
        self.ram = ram
        var restricted: [String: IOTLBMem] = [:]
        for pool in config.restrictedPools {
            guard let mem = IOTLBMem(restricted: pool.name, bytes: pool.bytes, ram: ram, kernel: config.kernel) else {
                throw .device(pool.name, .noMemory)
            }
            restricted[pool.name] = mem
        }
        let tracer = Tracer(kernel: config.kernel, cpus: CPU.online)
        // The machine's kernel is the one swiotlb follows, however the config was made.
        var swiotlb = config.swiotlb
        swiotlb.kernel = config.kernel
        var platform = Platform(ram: ram, swiotlb: IOTLBMem(ram: ram, config: swiotlb), restrictedPools: restricted, tracer: tracer)
        platform.dmapoolAlgorithm = config.dmapoolAlgorithm
        platform.dmapoolDebug = config.dmapoolDebug
        platform.dmaDebug = config.dmaDebug
        if config.kernelPreset { platform.kernelPreset = config.kernel }
        let pages = ram.zoneKinds.reduce(0) { $0 + ram.managedPages(in: $1) }
        devices = Devices(platform: platform, drivers: Self.drivers(totalPages: pages))
        surface = ControlSurface(devices: devices)
        for device in config.devices {
            do throws(Errno) {
                try devices.add(driver: device.driver, name: device.name, parameters: device.parameters)
            } catch {
                throw .device(device.name, error)
            }
        }
    }

    public func device(_ name: String) -> EmulatedDevice? { devices.device(name) }

    /// Power-off (device_shutdown()): dmaemud calls it after unmounting.
    public func shutdown() { devices.shutdown() }
}
