// The emulated machine the daemon serves: RAM, the default software IO TLB, the devices,
// and the control tree that shows them (DESIGN.md's control surface).
import ControlFS
import DMA
import DMAPool
import FUSE
import Locking
import PhysicalMemory
import SWIOTLB
import SystemPackage

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

public final class Machine: @unchecked Sendable {  // `devices` and `server` are guarded; the rest is immutable
    public let config: MachineConfig
    public let ram: PhysicalMemory
    public let swiotlb: IOTLBMem?
    /// restricted-dma-pool regions by name; devices bind to one with `swiotlb=<name>`.
    public let restrictedPools: [String: IOTLBMem]
    public let root = ControlDirectory()
    private let devicesDirectory: ControlDirectory
    private let devices = PthreadMutex<[String: EmulatedDevice]>([:])
    /// The machine's dm-crypt targets, which share 2% of its RAM.
    let dmCryptClients: DMCryptClients
    /// The FUSE server serving the tree, once there is one, for the metrics.
    let server = PthreadMutex<Weak<FUSEServer>>(Weak())

    /// The most devices one machine holds.
    public static let maxDevices = 4096

    public init(_ config: MachineConfig, log: KernelLog = KernelLog()) throws(MachineError) {
        self.config = config
        do {
            ram = try PhysicalMemory(size: config.ramBytes, log: log)
        } catch {
            throw .memory(error)
        }
        swiotlb = IOTLBMem(ram: ram, config: config.swiotlb)
        let memory = ram
        dmCryptClients = DMCryptClients(totalPages: ZoneKind.allCases.reduce(0) { $0 + memory.managedPages(in: $1) })
        var restricted: [String: IOTLBMem] = [:]
        for pool in config.restrictedPools {
            guard let mem = IOTLBMem(restricted: pool.name, bytes: pool.bytes, ram: ram) else {
                throw .device(pool.name, .noMemory)
            }
            restricted[pool.name] = mem
        }
        restrictedPools = restricted
        devicesDirectory = root.directory("devices")
        buildTree()
        for device in config.devices {
            do throws(Errno) {
                try addDevice(driver: device.driver, name: device.name, parameters: device.parameters)
            } catch {
                throw .device(device.name, error)
            }
        }
    }

    public func device(_ name: String) -> EmulatedDevice? { devices.withLock { $0[name] } }

    /// The devices, by name.
    public var allDevices: [EmulatedDevice] { devices.withLock { $0.values.sorted { $0.name < $1.name } } }

    /// control/add_device "<driver> <name> [key=value ...]": the device is made and probed.
    public func addDevice(driver: String, name: String, parameters: [String: String] = [:]) throws(Errno) {
        guard let driverInstance = Drivers.make(driver), !name.isEmpty, !name.contains("/"), name != ".", name != ".." else {
            throw .invalidArgument
        }
        var algorithm = config.dmapoolAlgorithm
        var bits = 32
        var mem = swiotlb
        for (key, value) in parameters {
            switch key {
            case "dma_mask_bits":
                bits = Int(try StoreParsing.number(value, max: 64))
                guard bits >= 20 else { throw .invalidArgument }
            case "dmapool_algorithm":
                guard let chosen = DMAPoolAlgorithm(rawValue: value) else { throw .invalidArgument }
                algorithm = chosen
            case "swiotlb":
                guard let pool = restrictedPools[value] else { throw .invalidArgument }
                mem = pool
            default:
                try driverInstance.setParameter(key, value)
            }
        }
        let bus = type(of: driverInstance).bus
        let dma = Device(
            name: name, machine: ram, bus: bus, swiotlb: bus == "pci" ? mem : nil, dmaDebug: config.dmaDebug,
            dmaMask: dmaBitMask(bits), coherentDMAMask: dmaBitMask(bits))
        let emulated = EmulatedDevice(driver: driverInstance, name: name, device: dma, algorithm: algorithm, debug: config.dmapoolDebug)
        emulated.machine = self
        try devices.withLock { (devices) throws(Errno) in
            guard devices[name] == nil else { throw .fileExists }
            guard devices.count < Self.maxDevices else { throw .noMemory }
            devices[name] = emulated
        }
        do throws(Errno) {
            try emulated.probe()
        } catch {
            devices.withLock { _ = $0.removeValue(forKey: name) }
            throw error
        }
        devicesDirectory.add(name, emulated.directory)
    }

    /// device_shutdown(): every bound device unbound, as remove_device would (the drivers'
    /// pools and those made through create_pool destroyed), a stacked device before the
    /// devices under it, so none is refused as in use. dmaemud calls it after unmounting.
    public func shutdown() {
        var bound = allDevices.filter(\.isBound)
        // A holder is released when its device is removed: each pass frees the next level.
        while case let unheld = bound.filter(\.holders.isEmpty), !unheld.isEmpty {
            for emulated in unheld { try? emulated.remove() }
            bound = bound.filter(\.isBound)
        }
    }

    /// A pool left alive would keep its Device, and through it the RAM, allocated after
    /// the machine is gone.
    deinit { shutdown() }

    /// control/remove_device "<name>": removed (the driver unbound first); EBUSY, as the
    /// unbind is, while a stacked device holds it.
    public func removeDevice(_ name: String) throws(Errno) {
        guard let emulated = device(name) else { throw .operationNotSupportedByDevice }
        do {
            try emulated.remove()
        } catch .resourceBusy {
            throw .resourceBusy
        } catch {
            // Unbound already (or being unbound by someone else): nothing to undo.
        }
        guard devices.withLock({ $0.removeValue(forKey: name) }) != nil else { throw .operationNotSupportedByDevice }
        devicesDirectory.remove(name)
    }

    /// The debugfs counters of a software IO TLB (swiotlb_create_debugfs_files()).
    static func addDebugfsFiles(_ mem: IOTLBMem, to directory: ControlDirectory) {
        directory.add("io_tlb_nslabs", ControlAttribute(mode: 0o400, show: { "\(mem.nslabs)\n" }))
        directory.add("io_tlb_used", ControlAttribute(mode: 0o400, show: { "\(mem.used)\n" }))
        directory.add("io_tlb_used_hiwater", ControlAttribute(
            mode: 0o600, show: { "\(mem.usedHiwater)\n" },
            store: { text throws(Errno) in
                let value = Int(try StoreParsing.number(text, max: UInt64(Int.max)))
                do throws(SWIOTLBError) { try mem.setUsedHiwater(value) } catch { throw .invalidArgument }
            }))
        directory.add("io_tlb_transient_nslabs", ControlAttribute(mode: 0o400, show: { "\(mem.transientNslabs)\n" }))
    }

    private func buildTree() {
        let control = root.directory("control")
        // The tree belongs to the machine: its files hold it weakly (ENODEV once it is gone).
        control.add("add_device", ControlAttribute(store: { [weak self] text throws(Errno) in
            guard let self else { throw .operationNotSupportedByDevice }
            let words = StoreParsing.words(text)
            guard words.count >= 2 else { throw .invalidArgument }
            var parameters: [String: String] = [:]
            for word in words.dropFirst(2) {
                let parts = word.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2 else { throw .invalidArgument }
                parameters[parts[0]] = parts[1]
            }
            try addDevice(driver: words[0], name: words[1], parameters: parameters)
        }))
        control.add("remove_device", ControlAttribute(store: { [weak self] text throws(Errno) in
            guard let self else { throw .operationNotSupportedByDevice }
            try removeDevice(text)
        }))

        let kernel = root.directory("kernel")
        kernel.add("buddyinfo", ControlAttribute(show: { [ram] in ram.buddyInfo }))
        let benchmarkDevice = Device(name: "dma_map_benchmark", machine: ram, bus: "platform", swiotlb: swiotlb, dmaMask: .max, coherentDMAMask: .max)
        benchmarkDevice.driverName = "dma_map_benchmark"
        kernel.directory("debug").add("dma_map_benchmark", MapBenchmarkFile(device: benchmarkDevice).attribute)
        FailPageAllocFiles.add(ram.faults, to: kernel.directory("debug").directory("fail_page_alloc"))
        let swiotlbDirectory = kernel.directory("debug").directory("swiotlb")
        if let swiotlb { Self.addDebugfsFiles(swiotlb, to: swiotlbDirectory) }
        for pool in restrictedPools.values { Self.addDebugfsFiles(pool, to: swiotlbDirectory.directory(pool.name)) }
        root.add("metrics", ControlAttribute(show: { [weak self] in self?.metricsText() ?? "" }))
        root.add("kmsg", ControlAttribute(show: { [ram] in ram.log.messages.map { $0.dmesgLine + "\n" }.joined() }))
    }
}
