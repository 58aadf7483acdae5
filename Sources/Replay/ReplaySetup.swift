// The machine a replay runs on, settled from three sources, the first that says wins:
// the options of the command line, the --config machine, the recording's header (the
// host it was recorded on), then the kernel's defaults. RAM always reaches the highest
// address the lines name, and the boot pool lies where the host's did when it has the
// host's size.
import DMA
import DMAPool
import Lib
import PhysicalMemory
import SWIOTLB

/// What the command line asks for; nil leaves it to the config, the recording, the defaults.
public struct ReplayOptions: Sendable {
    public var ramBytes: UInt64?
    public var swiotlbBytes: Int?
    public var areas: Int?
    public var dynamic: Bool?
    public var force: Bool?
    public var confidential: Bool?
    public var dmapool: DMAPoolAlgorithm?
    public var cpus: Int?
    public var devices: [String: DeviceOptions] = [:]

    public init() {}
}

/// --device NAME:driver=nvme,mask=32,coherent-mask=32,min-align=0xfff,boundary=0xffffffff
public struct DeviceOptions: Sendable, Equatable {
    public var driver: String?
    public var maskBits: Int?
    public var coherentMaskBits: Int?
    public var minAlignMask: UInt64?
    public var boundaryMask: UInt64?

    public init() {}
}

/// A --config machine's settings, for what the options leave open.
public struct ReplayBase: Sendable {
    public var ramBytes: UInt64
    public var swiotlb: SWIOTLBConfig
    public var dmapool: DMAPoolAlgorithm

    public init(ramBytes: UInt64, swiotlb: SWIOTLBConfig, dmapool: DMAPoolAlgorithm) {
        self.ramBytes = ramBytes
        self.swiotlb = swiotlb
        self.dmapool = dmapool
    }
}

/// A device as the replay sets it up, and where each of its settings came from.
public struct ReplayDevice: Sendable, Codable, Equatable {
    public var name: String
    public var driver: String?
    public var dmaMask: UInt64
    public var coherentMask: UInt64
    public var minAlignMask: UInt64
    public var boundaryMask: UInt64
    /// "option", "header", "swiotlb_bounced" or "default".
    public var maskFrom: String
}

/// The settled machine.
public struct ReplaySetup: Sendable {
    public var ramBytes: UInt64
    public var swiotlb: SWIOTLBConfig
    public var cpus: Int
    public var kernel: KernelVersion
    public var dmapool: DMAPoolAlgorithm
    public var devices: [ReplayDevice]
    /// What was raised or moved to fit the recording, for the report.
    public var notes: [String] = []

    /// The swiotlb= the kernel would be booted with for this size and these areas.
    public var swiotlbBytes: Int { swiotlb.nslabs << IOTLB.shift }

    public init(recording: Recording, options: ReplayOptions, base: ReplayBase?) {
        let header = recording.header
        cpus = options.cpus ?? header.cpus ?? recording.headerCPUs ?? max(recording.cpusSeen, 1)
        cpus = max(cpus, recording.cpusSeen, 1)
        kernel = recording.kernel
        dmapool = options.dmapool ?? base?.dmapool ?? .stack
        var swiotlb = base?.swiotlb ?? SWIOTLBConfig()
        if base == nil {
            if let bytes = header.swiotlbBytes { swiotlb.nslabs = bytes >> IOTLB.shift }
            if let areas = header.swiotlbAreas { swiotlb.nareas = areas }
            if let dynamic = header.dynamic { swiotlb.dynamic = dynamic }
            if let line = header.commandLine { Self.readCommandLine(line, into: &swiotlb) }
            // A forced bounce in the recording means the host bounced everything (swiotlb=force or a CoCo guest).
            if recording.ops.contains(where: { $0.kind == .bounced && $0.extra == 1 }) { swiotlb.force = true }
        }
        if let bytes = options.swiotlbBytes { swiotlb.nslabs = max(bytes >> IOTLB.shift, 1) }
        if let areas = options.areas { swiotlb.nareas = areas }
        if let dynamic = options.dynamic { swiotlb.dynamic = dynamic }
        if let force = options.force { swiotlb.force = force }
        if let confidential = options.confidential {
            swiotlb.confidential = confidential ? ConfidentialComputing() : nil
        }
        swiotlb.movesData = false
        if base == nil, let start = header.swiotlbStart, header.swiotlbBytes == swiotlb.nslabs << IOTLB.shift {
            swiotlb.bootAddress = start
        }
        self.swiotlb = swiotlb

        var ram = options.ramBytes ?? base?.ramBytes ?? header.memoryBytes ?? (8 << 30)
        ram = (ram + (1 << 30) - 1) & ~((1 << 30) - 1)
        let needed = max(recording.highestAddress + 1, (header.swiotlbStart ?? 0) + UInt64(header.swiotlbBytes ?? 0))
        if needed > ram {
            let raised = (needed + (1 << 30) - 1) & ~((1 << 30) - 1)
            notes.append("RAM raised from \(ram >> 30) GiB to \(raised >> 30) GiB to reach the highest address recorded (0x\(String(needed - 1, radix: 16)))")
            ram = raised
        }
        ramBytes = ram

        devices = recording.devices.enumerated().map { index, name in
            Self.device(name, index: index, recording: recording, option: options.devices[name])
        }
    }

    /// swiotlb= on the recorded kernel's command line.
    static func readCommandLine(_ line: String, into config: inout SWIOTLBConfig) {
        for word in line.split(separator: " ") where word.hasPrefix("swiotlb=") {
            if let parsed = try? SWIOTLBConfig(kernelParameter: String(word.dropFirst(8))) {
                config.nslabs = parsed.nslabs
                config.nareas = parsed.nareas ?? config.nareas
                config.force = parsed.force
                config.disabled = parsed.disabled
            }
        }
    }

    /// min_align_mask by driver, as each sets it at probe: nvme keeps NVME_CTRL_PAGE_SIZE - 1.
    static func minAlignMask(driver: String?) -> UInt64 {
        switch driver {
        case "nvme": 0xfff
        default: 0
        }
    }

    static func device(_ name: String, index: Int, recording: Recording, option: DeviceOptions?) -> ReplayDevice {
        let recorded = recording.header.devices[name]
        var mask = dmaBitMask(64)
        var from = "default"
        if let bits = recorded?.maskBits {
            mask = dmaBitMask(bits)
            from = "header"
        } else if let bounce = recording.ops.first(where: { $0.kind == .bounced && Int($0.device) == index }) {
            mask = bounce.address
            from = "swiotlb_bounced"
        }
        var coherent = recorded?.coherentMaskBits.map(dmaBitMask) ?? mask
        if let bits = option?.maskBits {
            mask = dmaBitMask(bits)
            coherent = option?.coherentMaskBits.map(dmaBitMask) ?? mask
            from = "option"
        } else if let bits = option?.coherentMaskBits {
            coherent = dmaBitMask(bits)
        }
        let driver = option?.driver ?? recorded?.driver
        // A PCI function's segment boundary is 4 GiB (pci_device_add()); other devices have none.
        let pci = name.split(separator: ":").count == 3 && name.contains(".")
        return ReplayDevice(
            name: name, driver: driver, dmaMask: mask, coherentMask: coherent,
            minAlignMask: option?.minAlignMask ?? minAlignMask(driver: driver),
            boundaryMask: option?.boundaryMask ?? (pci ? 0xffff_ffff : .max), maskFrom: from)
    }
}
