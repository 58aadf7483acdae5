// devices/<name>/: one device's sysfs-like directory. The directory belongs to the
// device's entry in the tree, so its files hold the device weakly (a strong capture would
// keep every removed device, and its RAM, alive forever); a file still open after
// remove_device answers ENODEV, as sysfs does. Pools come and go with the device's
// observer calls: dma_pools/<pool>/ for each, and `pools` while there is one.
import Block
import ControlFS
import DMAPool
import Drivers
import Lib
import SystemPackage

final class DeviceDirectory: DeviceObserver {
    let directory = ControlDirectory()
    private let poolsDirectory: ControlDirectory
    private weak let emulated: EmulatedDevice?

    init(_ emulated: EmulatedDevice) {
        self.emulated = emulated
        poolsDirectory = directory.directory("dma_pools")
        build(emulated)
        emulated.observer = self
        for (key, pool) in emulated.pools { poolAdded(pool, key: key) }
    }

    // MARK: - DeviceObserver

    func poolAdded(_ pool: HeldPool, key: String) {
        poolsDirectory.add(key, Self.poolDirectory(pool))
        refreshPoolsFile()
    }

    func poolRemoved(key: String) {
        poolsDirectory.remove(key)
        refreshPoolsFile()
    }

    /// `pools` exists while the device has a pool, as the kernel creates and removes it.
    private func refreshPoolsFile() {
        guard let device = emulated?.device else { return }
        if device.pools == nil {
            directory.remove("pools")
        } else if directory.child("pools") == nil {
            directory.add("pools", ControlAttribute(show: { [weak device] () throws(Errno) in
                guard let text = device?.pools else { throw .noDevice }
                return text
            }))
        }
    }

    // MARK: - The files

    /// A file of this device's; ENODEV once the device is gone.
    private func attribute(
        show: (@Sendable (EmulatedDevice) throws(Errno) -> String)? = nil,
        store: (@Sendable (EmulatedDevice, String) throws(Errno) -> Void)? = nil
    ) -> ControlAttribute {
        var shown: ControlAttribute.Show?
        var stored: ControlAttribute.Store?
        if let show {
            shown = { [weak emulated] () throws(Errno) -> String in
                guard let emulated else { throw .noDevice }
                return try show(emulated)
            }
        }
        if let store {
            stored = { [weak emulated] (text: String) throws(Errno) in
                guard let emulated else { throw .noDevice }
                try store(emulated, text)
            }
        }
        return ControlAttribute(show: shown, store: stored)
    }

    /// "key value" lines, as stats and the drivers' files print them.
    static func lines(_ pairs: [(name: String, value: String)]) -> String {
        pairs.map { "\($0.name) \($0.value)\n" }.joined()
    }

    private func build(_ emulated: EmulatedDevice) {
        directory.add("driver", attribute(show: { "\($0.driverName)\n" }))
        directory.add("state", attribute(
            show: { $0.isBound ? "bound\n" : "unbound\n" },
            store: { emulated, text throws(Errno) in
                switch text {
                case "probe": try emulated.probe()
                case "remove": try emulated.remove()
                default: throw .invalidArgument
                }
            }))
        directory.add("dmapool_algorithm", attribute(
            show: { $0.dmapoolAlgorithm.rawValue + "\n" },
            store: { emulated, text throws(Errno) in
                guard let algorithm = DMAPoolAlgorithm(rawValue: text) else { throw .invalidArgument }
                try emulated.setDMAPoolAlgorithm(algorithm)
            }))
        directory.add("dma_mask_bits", attribute(
            show: { "\($0.dmaMaskBits)\n" },
            store: { emulated, text throws(Errno) in try emulated.setDMAMaskBits(Int(try StoreParsing.number(text, max: 64))) }))
        let params = directory.directory("params")
        for (parameter, _) in emulated.parameters {
            params.add(parameter, attribute(
                show: { ($0.parameters.first { $0.name == parameter }?.value ?? "") + "\n" },
                store: { emulated, text throws(Errno) in try emulated.setParameter(parameter, text) }))
        }
        directory.add("stats", attribute(show: { Self.lines($0.stats) }))
        if emulated.hasDisk { addBlockFiles() }
        for file in emulated.files {
            directory.add(file.name, ControlAttribute(show: { () throws(Errno) in Self.lines(try file.lines()) }))
        }
        directory.add("create_pool", attribute(store: { emulated, text throws(Errno) in
            let words = StoreParsing.words(text)
            guard (2...4).contains(words.count) else { throw .invalidArgument }
            let size = Int(try StoreParsing.number(words[1], max: UInt64(Int32.max) + 1))
            let align = words.count > 2 ? Int(try StoreParsing.number(words[2], max: 1 << 30)) : 0
            let boundary = words.count > 3 ? Int(try StoreParsing.number(words[3], max: 1 << 30)) : 0
            try emulated.createPool(name: words[0], size: size, align: align, boundary: boundary)
        }))
        directory.add("destroy_pool", attribute(store: { emulated, text throws(Errno) in try emulated.destroyPool(text) }))
    }

    /// `io` and `disk` for a driver with a disk; both are ENODEV while unbound.
    private func addBlockFiles() {
        let queue = { @Sendable (emulated: EmulatedDevice) throws(Errno) -> BlockQueue in
            guard let queue = emulated.queue else { throw .noDevice }
            return queue
        }
        directory.add("io", attribute(store: { emulated, text throws(Errno) in
            let job = try IOJob(parsing: text)
            try job.run(on: try queue(emulated))
        }))
        directory.add("disk", ControlBlockFile(
            size: { [weak emulated] in emulated?.queue?.capacity ?? 0 },
            read: { [weak emulated] buffer, offset throws(Errno) in
                guard let emulated else { throw .noDevice }
                return try queue(emulated).read(into: buffer, at: offset)
            },
            write: { [weak emulated] buffer, offset throws(Errno) in
                guard let emulated else { throw .noDevice }
                return try queue(emulated).write(from: buffer, at: offset)
            },
            flush: { [weak emulated] () throws(Errno) in
                guard let emulated else { throw .noDevice }
                try queue(emulated).flush()
            }))
    }

    /// dma_pools/<pool>/: the pool's geometry and counters, and alloc/free of held blocks.
    static func poolDirectory(_ held: HeldPool) -> ControlDirectory {
        let pool = held.pool
        let directory = ControlDirectory()
        let geometry = pool.geometry
        let fixed: [(String, String)] = [
            ("name", pool.name), ("size", String(geometry.size)), ("align", String(geometry.align)),
            ("boundary", String(geometry.boundary)), ("allocation", String(geometry.allocation)),
            ("algorithm", pool.algorithm.rawValue),
        ]
        for (key, value) in fixed { directory.add(key, ControlAttribute(show: { value + "\n" })) }
        directory.add("nr_active", ControlAttribute(show: { "\(pool.counters.active)\n" }))
        directory.add("nr_blocks", ControlAttribute(show: { "\(pool.counters.blocks)\n" }))
        directory.add("nr_pages", ControlAttribute(show: { "\(pool.counters.pages)\n" }))
        directory.add("held", ControlAttribute(show: { "\(held.held)\n" }))
        directory.add("alloc", ControlAttribute(store: { text throws(Errno) in
            try held.alloc(Int(try StoreParsing.number(text, max: HeldPool.maxCount)))
        }))
        directory.add("free", ControlAttribute(store: { text throws(Errno) in
            let words = StoreParsing.words(text)
            guard (1...2).contains(words.count) else { throw .invalidArgument }
            let count = words[0] == "all" ? nil : Int(try StoreParsing.number(words[0], max: HeldPool.maxCount))
            let order = words.count == 2 ? words[1] : "oldest"
            guard order == "oldest" || order == "newest" else { throw .invalidArgument }
            try held.free(count, newestFirst: order == "newest")
        }))
        return directory
    }
}
