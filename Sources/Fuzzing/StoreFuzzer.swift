// The `store` target: a fresh small machine per input, a sequence of writes to its
// control files, every file read after, then every device removed. An input is records
// split at NUL bytes; a record's first byte picks a writable file (modulo how many there
// are at that moment, sorted by path), the rest is what is written. The oracle beyond "no
// crash": once the devices are gone, the buddy allocator has every page back and the
// swiotlb no slot in use, whatever the writes did.
import ControlFS
import Daemon
import PhysicalMemory

enum StoreFuzzer {
    /// A machine a write can fill quickly: 128 MiB, a fixed 1 MiB swiotlb (no growth
    /// keeps pages held past a remove), a restricted pool, and one device of each driver
    /// with the smallest disks, added after the free count is taken.
    static let config = """
        [machine]
        ram = "128M"
        [swiotlb]
        size = "1M"
        areas = 2
        dynamic = false
        [[restricted_pool]]
        name = "restricted"
        size = "256K"
        """

    static let machineConfig = try! MachineConfig(toml: config, file: "fuzz.toml")

    static let devices = [
        "generic gen0 dma_mask_bits=32",
        "mpt3sas mpt0 hba_queue_depth=512 capacity=1M",
        "nvme nvme0 capacity=1M io_queue_depth=64",
        "dm-crypt dm-0 lower=nvme0 cipher=cipher_null-ecb key=-",
    ]

    /// Files whose store starts work measured in seconds (the io job, the map benchmark:
    /// their parsers are targets of their own), that are not text (the disk), or that name
    /// a file to create (backing_file).
    static let skipped: Set<String> = ["io", "disk", "dma_map_benchmark", "backing_file"]

    static let maxRecords = 16

    static func run(_ input: UnsafeRawBufferPointer) {
        // A path a write could create or truncate: not in a fuzzer's reach.
        if input.firstRange(of: Array("backing_file".utf8)) != nil { return }
        guard let machine = try? Machine(machineConfig) else { fatalError("the fuzz machine does not build") }
        let freeWithoutDevices = machine.ram.unusedPages
        for line in devices {
            guard (try? write(machine, "control/add_device", Array(line.utf8))) != nil else { fatalError("cannot add \(line)") }
        }
        for record in input.split(separator: 0, omittingEmptySubsequences: true).prefix(maxRecords) {
            let files = writableFiles(machine.root)
            let file = files[Int(record.first!) % files.count]
            try? file.node.write(record.dropFirst())
        }
        for (_, node) in files(machine.root) where node.isReadable { _ = try? node.snapshot() }
        let devices = machine.devices
        for _ in 0...devices.all.count {
            for device in devices.all { try? devices.remove(device.name) }
        }
        guard devices.all.isEmpty else { fatalError("devices left after removal: \(devices.all.map(\.name))") }
        guard machine.ram.unusedPages == freeWithoutDevices else {
            fatalError("leak: \(freeWithoutDevices - machine.ram.unusedPages) pages not given back")
        }
        for mem in [machine.swiotlb!] + devices.platform.restrictedPools.values where mem.used != 0 {
            fatalError("leak: \(mem.used) swiotlb slots in use in \(mem.name)")
        }
    }

    static func write(_ machine: Machine, _ path: String, _ bytes: [UInt8]) throws {
        guard let file = machine.root.node(at: path) as? ControlAttribute else { fatalError("no \(path)") }
        try file.write(bytes)
    }

    static func writableFiles(_ root: ControlDirectory) -> [(path: String, node: ControlAttribute)] {
        files(root).filter { $0.node.isWritable && !skipped.contains(String($0.path.split(separator: "/").last!)) }
    }

    /// Every attribute under `directory`, depth first, children sorted by name.
    static func files(_ directory: ControlDirectory, _ prefix: String = "") -> [(path: String, node: ControlAttribute)] {
        directory.children.sorted { $0.name < $1.name }.flatMap { child -> [(path: String, node: ControlAttribute)] in
            switch child.node {
            case let attribute as ControlAttribute: [(prefix + child.name, attribute)]
            case let subdirectory as ControlDirectory: files(subdirectory, prefix + child.name + "/")
            default: []
            }
        }
    }
}
