// Config/dmaemu.toml: parsed with TOMLKit, then checked against the schema below, so that
// an unknown key, a wrong type or a bad value is an error naming the key and its line.
import DMAPool
import Lib
import SWIOTLB
import SystemPackage
import TOMLKit

public struct ConfigError: Error, Equatable, CustomStringConvertible {
    public let file: String
    public let line: Int?
    public let message: String

    public var description: String { "\(file)\(line.map { ":\($0)" } ?? ""): \(message)" }
}

extension MachineConfig {
    /// The drivers a config may name.
    static let drivers = Machine.drivers(totalPages: 0)

    /// The machine Config/dmaemu.toml describes (compiled in: DefaultConfig.swift).
    public static func defaultMachine() -> MachineConfig {
        // The shipped file is known good: a test parses it.
        (try? MachineConfig(toml: defaultConfigText, file: "Config/dmaemu.toml")) ?? MachineConfig()
    }

    /// The largest config file read; anything longer is not a machine description.
    static let maxFileBytes = 1 << 20

    /// The machine the file at `path` describes. A file that cannot be read is an error
    /// naming it and the reason, as strerror(3) gives it.
    public init(contentsOfFile path: String) throws(ConfigError) {
        var bytes: [UInt8] = []
        do {
            let fd = try FileDescriptor.open(FilePath(path), .readOnly)
            defer { try? fd.close() }
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                let count = try chunk.withUnsafeMutableBytes { try fd.read(into: $0) }
                if count == 0 { break }
                bytes += chunk[..<count]
                guard bytes.count <= Self.maxFileBytes else {
                    throw ConfigError(file: path, line: nil, message: "longer than \(Self.maxFileBytes) bytes")
                }
            }
        } catch let error as ConfigError {
            throw error
        } catch {
            throw ConfigError(file: path, line: nil, message: "cannot read: \(error)")
        }
        try self.init(toml: String(decoding: bytes, as: UTF8.self), file: path)
    }

    public init(toml text: String, file: String) throws(ConfigError) {
        self.init()
        let reader = ConfigReader(text: text, file: file)
        try TOMLPrecheck.check(text, file: file)
        let root: TOMLTable
        do {
            root = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw ConfigError(file: file, line: error.source.begin.line, message: error.description)
        } catch {
            throw ConfigError(file: file, line: nil, message: "\(error)")
        }
        try reader.onlyKeys(root, ["machine", "swiotlb", "dmapool", "dma", "device", "restricted_pool"], section: nil)
        if let machine = try reader.table(root, "machine") {
            try reader.onlyKeys(machine, ["ram", "kernel"], section: "machine")
            if let ram = try reader.size(machine, "ram", section: "machine", minimum: 32 * 4096) { ramBytes = UInt64(ram) }
            if let version = try reader.string(machine, "kernel", section: "machine") {
                guard let known = KernelVersion(rawValue: version) else {
                    let names = KernelVersion.allCases.map(\.rawValue).joined(separator: ", ")
                    throw reader.error("machine.kernel", "machine", "must be one of \(names), not '\(version)'")
                }
                kernel = known
                applyKernelPreset()
            }
        }
        if let table = try reader.table(root, "swiotlb") { try readSWIOTLB(table, reader) }
        if let table = try reader.table(root, "dmapool") {
            try reader.onlyKeys(table, ["algorithm", "debug"], section: "dmapool")
            if let name = try reader.string(table, "algorithm", section: "dmapool") {
                guard let algorithm = DMAPoolAlgorithm(rawValue: name) else {
                    throw reader.error("dmapool.algorithm", "dmapool", "must be stack, rbtree or legacy, not '\(name)'")
                }
                dmapoolAlgorithm = algorithm
            }
            dmapoolDebug = try reader.bool(table, "debug", section: "dmapool") ?? dmapoolDebug
        }
        if let table = try reader.table(root, "dma") {
            try reader.onlyKeys(table, ["debug"], section: "dma")
            dmaDebug = try reader.bool(table, "debug", section: "dma") ?? dmaDebug
        }
        if let value = root["restricted_pool"] {
            guard let array = value.array else { throw reader.error("restricted_pool", nil, "must be an array of tables ([[restricted_pool]])") }
            for element in array {
                guard let table = element.table else { throw reader.error("restricted_pool", nil, "must be an array of tables") }
                try reader.onlyKeys(table, ["name", "size"], section: "restricted_pool")
                guard let name = try reader.string(table, "name", section: "restricted_pool"), !name.isEmpty, !name.contains("/") else {
                    throw reader.error("restricted_pool.name", "restricted_pool", "is required, without '/'")
                }
                guard let size = try reader.size(table, "size", section: "restricted_pool", minimum: 2048) else {
                    throw reader.error("restricted_pool.size", "restricted_pool", "is required")
                }
                restrictedPools.append(RestrictedPool(name: name, bytes: size))
            }
        }
        devices = []
        if let value = root["device"] {
            guard let array = value.array else { throw reader.error("device", nil, "must be an array of tables ([[device]])") }
            for (index, element) in array.enumerated() {
                guard let table = element.table else { throw reader.error("device", nil, "must be an array of tables ([[device]])") }
                devices.append(try readDevice(table, index, reader))
            }
        }
    }

    private mutating func readSWIOTLB(_ table: TOMLTable, _ reader: ConfigReader) throws(ConfigError) {
        let keys = ["size", "areas", "dynamic", "force", "kernel_parameter", "debugfs_counters", "confidential",
                    "decrypt_ns_per_page", "encrypt_ns_per_page", "coherent_pool"]
        try reader.onlyKeys(table, keys, section: "swiotlb")
        if let text = try reader.string(table, "kernel_parameter", section: "swiotlb") {
            do throws(SWIOTLBConfig.ParseError) {
                swiotlb = try SWIOTLBConfig(kernelParameter: text)
            } catch {
                throw reader.error("swiotlb.kernel_parameter", "swiotlb", "\(error)")
            }
        }
        if let size = try reader.size(table, "size", section: "swiotlb", minimum: 2048) {
            swiotlb.nslabs = (size / 2048 + 127) / 128 * 128
        }
        if let areas = try reader.int(table, "areas", section: "swiotlb", range: 1...1024) { swiotlb.nareas = areas }
        swiotlb.dynamic = try reader.bool(table, "dynamic", section: "swiotlb") ?? swiotlb.dynamic
        swiotlb.force = try reader.bool(table, "force", section: "swiotlb") ?? swiotlb.force
        swiotlb.debugfsCounters = try reader.bool(table, "debugfs_counters", section: "swiotlb") ?? swiotlb.debugfsCounters
        if try reader.bool(table, "confidential", section: "swiotlb") == true {
            var coco = ConfidentialComputing()
            coco.decryptNsPerPage = try reader.int(table, "decrypt_ns_per_page", section: "swiotlb", range: 0...10_000_000) ?? coco.decryptNsPerPage
            coco.encryptNsPerPage = try reader.int(table, "encrypt_ns_per_page", section: "swiotlb", range: 0...10_000_000) ?? coco.encryptNsPerPage
            coco.coherentPoolBytes = try reader.size(table, "coherent_pool", section: "swiotlb", minimum: 4096) ?? coco.coherentPoolBytes
            swiotlb.confidential = coco
        }
    }

    private func readDevice(_ table: TOMLTable, _ index: Int, _ reader: ConfigReader) throws(ConfigError) -> DeviceConfig {
        let section = "device#\(index)"
        let driverName = try reader.string(table, "driver", section: section)
        // A driver instance of its own, to read and check the parameters it takes.
        let instance = driverName.flatMap { Self.drivers[$0]?() }
        let driverParameters = instance?.parameters.map(\.name) ?? []
        try reader.onlyKeys(table, ["driver", "name", "dma_mask_bits", "dmapool_algorithm", "swiotlb"] + driverParameters, section: section)
        guard let driver = driverName else {
            throw reader.error("device.driver", section, "is required")
        }
        guard let instance else {
            let known = Self.drivers.keys.sorted().joined(separator: ", ")
            throw reader.error("device.driver", section, "unknown driver '\(driver)' (known: \(known))")
        }
        guard let name = try reader.string(table, "name", section: section), !name.isEmpty, !name.contains("/") else {
            throw reader.error("device.name", section, "is required, without '/'")
        }
        var parameters: [String: String] = [:]
        if let bits = try reader.int(table, "dma_mask_bits", section: section, range: 20...64) { parameters["dma_mask_bits"] = String(bits) }
        if let algorithm = try reader.string(table, "dmapool_algorithm", section: section) {
            guard DMAPoolAlgorithm(rawValue: algorithm) != nil else {
                throw reader.error("device.dmapool_algorithm", section, "must be stack, rbtree or legacy")
            }
            parameters["dmapool_algorithm"] = algorithm
        }
        for key in driverParameters {
            guard let value = table[key] else { continue }
            let text = value.int.map(String.init) ?? value.bool.map { $0 ? "1" : "0" } ?? value.string ?? ""
            do throws(Errno) { try instance.setParameter(key, text) } catch {
                throw reader.error("device.\(key)", section, "bad value for \(driver)")
            }
            parameters[key] = text
        }
        if let pool = try reader.string(table, "swiotlb", section: section) {
            guard restrictedPools.contains(where: { $0.name == pool }) else {
                throw reader.error("device.swiotlb", section, "no [[restricted_pool]] named '\(pool)'")
            }
            parameters["swiotlb"] = pool
        }
        return DeviceConfig(driver: driver, name: name, parameters: parameters)
    }
}

/// Typed reads with errors that name the key and the line it is on.
struct ConfigReader {
    let text: String
    let file: String

    func error(_ key: String, _ section: String?, _ message: String) -> ConfigError {
        ConfigError(file: file, line: line(of: String(key.split(separator: ".").last!), in: section), message: "\(key): \(message)")
    }

    /// The line of `key = ...` inside `[section]` (the nth `[[device]]` for "device#n"),
    /// or of `[key]` itself; the section header's line when the key is not written out.
    func line(of key: String, in section: String?) -> Int? {
        var current: String?
        var devices = -1
        var header: Int?
        for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.drop { $0 == " " || $0 == "\t" }
            if line.hasPrefix("[") {
                current = line.hasPrefix("[[") ? "device#\(devices + 1)" : String(line.dropFirst().prefix { $0 != "]" })
                if line.hasPrefix("[[") { devices += 1 }
                if current == section { header = number + 1 }
                if section == nil && (current == key || line.hasPrefix("[[\(key)]]")) { return number + 1 }
            } else if current == section, line.hasPrefix(key),
                line.dropFirst(key.count).drop(while: { $0 == " " || $0 == "\t" }).hasPrefix("=")
            {
                return number + 1
            }
        }
        return header
    }

    func onlyKeys(_ table: TOMLTable, _ allowed: [String], section: String?) throws(ConfigError) {
        for key in table.keys where !allowed.contains(key) {
            let name = section.map { "\($0.split(separator: "#").first!).\(key)" } ?? key
            throw ConfigError(file: file, line: line(of: key, in: section), message: "\(name): unknown key")
        }
    }

    func table(_ root: TOMLTable, _ key: String) throws(ConfigError) -> TOMLTable? {
        guard let value = root[key] else { return nil }
        guard let table = value.table else { throw error(key, nil, "must be a table ([\(key)])") }
        return table
    }

    private func name(_ key: String, _ section: String) -> String { "\(section.split(separator: "#").first!).\(key)" }

    func string(_ table: TOMLTable, _ key: String, section: String) throws(ConfigError) -> String? {
        guard let value = table[key] else { return nil }
        guard let string = value.string else { throw error(name(key, section), section, "must be a string") }
        return string
    }

    func bool(_ table: TOMLTable, _ key: String, section: String) throws(ConfigError) -> Bool? {
        guard let value = table[key] else { return nil }
        guard let bool = value.bool else { throw error(name(key, section), section, "must be true or false") }
        return bool
    }

    func int(_ table: TOMLTable, _ key: String, section: String, range: ClosedRange<Int>) throws(ConfigError) -> Int? {
        guard let value = table[key] else { return nil }
        guard let int = value.int else { throw error(name(key, section), section, "must be an integer") }
        guard range.contains(int) else { throw error(name(key, section), section, "must be \(range.lowerBound)...\(range.upperBound)") }
        return int
    }

    /// A byte count: an integer, or a string such as "64M" (K, M, G, T).
    func size(_ table: TOMLTable, _ key: String, section: String, minimum: Int) throws(ConfigError) -> Int? {
        guard let value = table[key] else { return nil }
        var bytes: Int?
        if let int = value.int {
            bytes = int
        } else if let text = value.string, let unit = text.last {
            let shift = ["K": 10, "M": 20, "G": 30, "T": 40][String(unit).uppercased()]
            if let shift, let number = Int(text.dropLast()), number <= Int.max >> shift { bytes = number << shift } else { bytes = Int(text) }
        }
        guard let bytes else { throw error(name(key, section), section, "must be a size such as 64M, or a byte count") }
        guard bytes >= minimum, bytes <= 1 << 44 else { throw error(name(key, section), section, "\(bytes) bytes is out of range") }
        return bytes
    }
}
