// The machine's devices by name, as the driver core keeps them: a device is added with its
// driver and probed at once (device_add() and the bus's match), removed after its driver
// is unbound, and all of them are unbound at power-off, stacked ones before the devices
// under them (device_shutdown()). What a device gets from the machine (its RAM, the
// swiotlb it bounces through, the defaults of the dmapool generation and dma-debug) is
// the platform's.
import DMA
import DMAPool
import Lib
import Locking
import PhysicalMemory
import SWIOTLB
import SystemPackage
import Trace

/// What the machine gives the devices on it.
public struct Platform: Sendable {
    public let ram: PhysicalMemory
    /// The default software IO TLB (nil: none, as without CONFIG_SWIOTLB).
    public let swiotlb: IOTLBMem?
    /// restricted-dma-pool regions by name; a device binds to one with `swiotlb=<name>`.
    public let restrictedPools: [String: IOTLBMem]
    public var dmapoolAlgorithm: DMAPoolAlgorithm = .stack
    public var dmapoolDebug = false
    public var dmaDebug = false
    /// The kernel the machine's config named, whose defaults the drivers take (nil: the
    /// drivers' own defaults).
    public var kernelPreset: KernelVersion?
    /// The machine's tracing (kernel/tracing/), if it has any.
    public let tracer: Tracer?

    public init(ram: PhysicalMemory, swiotlb: IOTLBMem?, restrictedPools: [String: IOTLBMem] = [:], tracer: Tracer? = nil) {
        self.ram = ram
        self.swiotlb = swiotlb
        self.restrictedPools = restrictedPools
        self.tracer = tracer
    }
}

/// What the control surface hears of devices coming and going.
public protocol DevicesObserver: AnyObject, Sendable {
    func deviceAdded(_ device: EmulatedDevice)
    func deviceRemoved(_ name: String)
}

public final class Devices: @unchecked Sendable {  // `list` is guarded; `observer` is set once, before use
    /// Makes a driver instance for a new device.
    public typealias Factory = @Sendable () -> any Driver

    public let platform: Platform
    private let drivers: [String: Factory]
    private let list = PthreadMutex<[String: EmulatedDevice]>([:])
    public weak var observer: (any DevicesObserver)?

    /// The most devices one machine holds.
    public static let maxDevices = 4096

    public init(platform: Platform, drivers: [String: Factory]) {
        self.platform = platform
        self.drivers = drivers
    }

    /// The drivers known, by name.
    public var driverNames: [String] { drivers.keys.sorted() }

    public func device(_ name: String) -> EmulatedDevice? { list.withLock { $0[name] } }

    /// The devices, by name.
    public var all: [EmulatedDevice] { list.withLock { $0.values.sorted { $0.name < $1.name } } }

    /// A device named `name` with the driver `driver`, probed; `parameters` are the
    /// device's (kernel, dma_mask_bits, dmapool_algorithm, swiotlb=<restricted pool>) and
    /// the driver's. `kernel` (or the machine's preset) gives the device that kernel's
    /// dmapool generation and the driver that kernel's defaults; the other keys win. EINVAL for an unknown driver, name or parameter, EEXIST for a name taken,
    /// ENOMEM past maxDevices, and whatever the probe fails with (nothing is left then).
    @discardableResult
    public func add(driver: String, name: String, parameters: [String: String] = [:]) throws(Errno) -> EmulatedDevice {
        guard let make = drivers[driver], !name.isEmpty, !name.contains("/"), name != ".", name != ".." else {
            throw .invalidArgument
        }
        let instance = make()
        var algorithm = platform.dmapoolAlgorithm
        var kernel = platform.kernelPreset
        if let version = parameters["kernel"] {
            guard let known = KernelVersion(rawValue: version) else { throw .invalidArgument }
            kernel = known
            algorithm = known == .v6_1 ? .legacy : .stack
        }
        if let kernel { instance.adopt(kernel) }
        var bits = 32
        var mem = platform.swiotlb
        for (key, value) in parameters where key != "kernel" {
            switch key {
            case "dma_mask_bits":
                bits = Int(try StoreParsing.number(value, max: 64))
                guard bits >= 20 else { throw .invalidArgument }
            case "dmapool_algorithm":
                guard let chosen = DMAPoolAlgorithm(rawValue: value) else { throw .invalidArgument }
                algorithm = chosen
            case "swiotlb":
                guard let pool = platform.restrictedPools[value] else { throw .invalidArgument }
                mem = pool
            default:
                try instance.setParameter(key, value)
            }
        }
        let bus = type(of: instance).bus
        let dma = Device(
            name: name, ram: platform.ram, bus: bus, swiotlb: bus == "pci" ? mem : nil, dmaDebug: platform.dmaDebug,
            dmaMask: dmaBitMask(bits), coherentDMAMask: dmaBitMask(bits), tracer: platform.tracer)
        let emulated = EmulatedDevice(
            driver: instance, name: name, device: dma, algorithm: algorithm, debug: platform.dmapoolDebug, devices: self)
        try list.withLock { (list) throws(Errno) in
            guard list[name] == nil else { throw .fileExists }
            guard list.count < Self.maxDevices else { throw .noMemory }
            list[name] = emulated
        }
        do throws(Errno) {
            try emulated.probe()
        } catch {
            list.withLock { _ = $0.removeValue(forKey: name) }
            throw error
        }
        observer?.deviceAdded(emulated)
        return emulated
    }

    /// Removed, its driver unbound first; ENODEV for no such device, EBUSY (as the unbind
    /// is) while a stacked device holds it.
    public func remove(_ name: String) throws(Errno) {
        guard let emulated = device(name) else { throw .noDevice }
        do {
            try emulated.remove()
        } catch .resourceBusy {
            throw .resourceBusy
        } catch {
            // Unbound already (or being unbound by someone else): nothing to undo.
        }
        guard list.withLock({ $0.removeValue(forKey: name) }) != nil else { throw .noDevice }
        observer?.deviceRemoved(name)
    }

    /// device_shutdown(): every bound device unbound, as remove would (the drivers' pools
    /// and those made by hand destroyed), a stacked device before the devices under it,
    /// so none is refused as in use. A pool left alive would keep its Device, and through
    /// it the RAM, allocated after the machine is gone.
    public func shutdown() {
        var bound = all.filter(\.isBound)
        // A holder is released when its device is removed: each pass frees the next level.
        while case let unheld = bound.filter(\.holders.isEmpty), !unheld.isEmpty {
            for emulated in unheld { try? emulated.remove() }
            bound = bound.filter(\.isBound)
        }
    }

    deinit { shutdown() }
}
