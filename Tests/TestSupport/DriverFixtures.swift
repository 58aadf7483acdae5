// What the tests of drivers share: a small machine's devices, and the control files'
// operations as calls (the control surface is above the drivers, so they go without it).
import Block
import Drivers
import Lib
import PhysicalMemory
import SWIOTLB
import SystemPackage
import Trace

/// A small machine's devices: `ram` of RAM, a swiotlb of `nslabs` slots in two areas that
/// grows unless told not to, the drivers given (those of Drivers), no device yet.
public func smallDevices(
    ram: UInt64 = 1 << 30, cpus: Int = CPU.online, nslabs: Int = 512, areas: Int = 2, dynamic: Bool = true,
    drivers: [String: Devices.Factory] = BuiltinDrivers.all, tracer: Tracer? = nil
) throws -> Devices {
    let memory = try PhysicalMemory(size: ram, cpus: cpus)
    var config = SWIOTLBConfig()
    config.nslabs = nslabs
    config.nareas = areas
    config.dynamic = dynamic
    return Devices(platform: Platform(ram: memory, swiotlb: IOTLBMem(ram: memory, config: config), tracer: tracer), drivers: drivers)
}

extension Devices {
    public var ram: PhysicalMemory { platform.ram }

    /// A device as control/add_device makes one: "<driver> <name> [key=value ...]".
    @discardableResult
    public func add(_ line: String) throws(Errno) -> EmulatedDevice {
        let words = StoreParsing.words(line)
        var parameters: [String: String] = [:]
        for word in words.dropFirst(2) {
            let parts = word.split(separator: "=", maxSplits: 1).map(String.init)
            parameters[parts[0]] = parts[1]
        }
        return try add(driver: words[0], name: words[1], parameters: parameters)
    }

    /// What printk printed, one line each.
    public var kmsg: String { ram.log.texts().map { $0 + "\n" }.joined() }
}

extension EmulatedDevice {
    /// An `io` job on the device's disk; ENODEV while it has none.
    public func io(_ line: String) throws(Errno) {
        let job = try IOJob(parsing: line)
        guard let queue else { throw .noDevice }
        try job.run(on: queue)
    }

    /// The stats lines, as the stats file prints them.
    public var statsText: String { stats.map { "\($0.name) \($0.value)\n" }.joined() }

    /// A file of the driver's own, as the control surface prints it.
    public func file(_ name: String) throws(Errno) -> String {
        guard let file = files.first(where: { $0.name == name }) else { throw .noSuchFileOrDirectory }
        return try file.lines().map { "\($0.name) \($0.value)\n" }.joined()
    }

    /// nr_active of the pool named `name`.
    public func active(_ name: String) -> Int? { pools[EmulatedDevice.poolKey(name)]?.pool.counters.active }
}
