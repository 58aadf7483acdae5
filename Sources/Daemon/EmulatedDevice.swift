// One emulated device with its sysfs-like directory: the DMA device, its driver binding
// (state: probe/remove, timed), and its pools, whether a driver made them or a user did
// through create_pool. The `generic` driver owns no pools of its own.
import ControlFS
import DMA
import DMAPool
import Locking
import PhysicalMemory
import SystemPackage

public final class EmulatedDevice: @unchecked Sendable {  // mutable state lives in `state`
    public let name: String
    public let driver: String
    public let device: Device
    let driverInstance: any Driver
    public let directory = ControlDirectory()
    private let poolsDirectory: ControlDirectory
    /// The machine the device is in (a stacked driver finds its lower device there).
    weak var machine: Machine?

    struct State {
        var bound = false
        var removing = false
        var algorithm: DMAPoolAlgorithm
        var debug: Bool
        var pools: [String: HeldPool] = [:]
        var probeMicroseconds: Int?
        var removeMicroseconds: Int?
        /// Stacked devices using this one (bd_holders): remove is EBUSY while any do.
        var holders: Set<String> = []
    }

    private let state: PthreadMutex<State>

    init(driver: any Driver, name: String, device: Device, algorithm: DMAPoolAlgorithm, debug: Bool) {
        self.name = name
        self.driver = type(of: driver).name
        self.driverInstance = driver
        self.device = device
        state = PthreadMutex(State(algorithm: algorithm, debug: debug))
        poolsDirectory = directory.directory("dma_pools")
        buildDirectory()
    }

    public var isBound: Bool { state.withLock { $0.bound } }

    // MARK: - Binding

    /// modprobe: bind the driver and let it allocate what it needs; a failed probe gives
    /// everything back and leaves the device unbound. EBUSY when bound already.
    public func probe() throws(Errno) {
        let start = ContinuousClock.now
        let (algorithm, debug) = try state.withLock { (state) throws(Errno) in
            guard !state.bound else { throw .resourceBusy }
            state.bound = true
            return (state.algorithm, state.debug)
        }
        device.driverName = driver
        let context = ProbeContext(device: device, emulated: self, algorithm: algorithm, debug: debug) { [self] pool in add(pool, ownedByDriver: true) }
        do throws(Errno) {
            try driverInstance.probe(context)
        } catch {
            device.err("probe failed: \(error)")
            try? remove()
            throw error
        }
        let micros = Self.microseconds(since: start)
        state.withLock { $0.probeMicroseconds = micros }
        device.printk(.info, "probe took \(micros) us")
    }

    /// rmmod: free every held block in allocation order, destroy every pool, report DMA
    /// still mapped (dma-debug), unbind. ENODEV when not bound.
    public func remove() throws(Errno) {
        let start = ContinuousClock.now
        try state.withLock { (state) throws(Errno) in
            guard state.bound, !state.removing else { throw .operationNotSupportedByDevice }
            if let holder = state.holders.sorted().first {
                device.err("in use by \(holder)")
                throw .resourceBusy
            }
            state.removing = true
        }
        driverInstance.stop()
        let pools = state.withLock { (state) -> [HeldPool] in
            defer { state.pools = [:] }
            return Array(state.pools.values)
        }
        // Newest pool first (the device's list order), as drivers unwind what they made.
        let order = device.dmaPools.all.map(ObjectIdentifier.init)
        for held in pools.sorted(by: {
            (order.firstIndex(of: ObjectIdentifier($0.pool)) ?? 0) < (order.firstIndex(of: ObjectIdentifier($1.pool)) ?? 0)
        }) {
            held.releaseAll()
            held.pool.destroy()
            poolsDirectory.remove(directoryName(ofPool: held.pool.name))
        }
        refreshPoolsFile()
        driverInstance.remove(device)
        device.checkPendingDMA()
        let micros = Self.microseconds(since: start)
        device.printk(.info, "remove took \(micros) us")
        device.driverName = nil
        state.withLock {
            $0.bound = false
            $0.removing = false
            $0.removeMicroseconds = micros
        }
    }

    // MARK: - Holders

    /// bd_link_disk_holder(): `holder` stacks on this device. ENODEV unless bound.
    func hold(by holder: String) throws(Errno) {
        try state.withLock { (state) throws(Errno) in
            guard state.bound, !state.removing else { throw .operationNotSupportedByDevice }
            state.holders.insert(holder)
        }
    }

    func release(holder: String) { _ = state.withLock { $0.holders.remove(holder) } }

    var holders: Set<String> { state.withLock { $0.holders } }

    // MARK: - Pools

    /// create_pool "<name> <size> [align] [boundary]".
    func createPool(_ text: String) throws(Errno) {
        let words = StoreParsing.words(text)
        guard (2...4).contains(words.count) else { throw .invalidArgument }
        let name = words[0]
        // Two names alike in their first 31 bytes are one pool, as they are in the kernel.
        let key = directoryName(ofPool: name)
        guard key != ".", key != ".." else { throw .invalidArgument }
        let size = Int(try StoreParsing.number(words[1], max: UInt64(Int32.max) + 1))
        let align = words.count > 2 ? Int(try StoreParsing.number(words[2], max: 1 << 30)) : 0
        let boundary = words.count > 3 ? Int(try StoreParsing.number(words[3], max: 1 << 30)) : 0
        let (algorithm, debug) = try state.withLock { (state) throws(Errno) in
            guard state.bound else { throw .operationNotSupportedByDevice }
            guard state.pools[key] == nil else { throw .fileExists }
            return (state.algorithm, state.debug)
        }
        let pool: DMAPool
        do {
            pool = try DMAPool(name: name, device: device, size: size, align: align, boundary: boundary, algorithm: algorithm, debug: debug)
        } catch {
            device.err("create_pool \(name): \(error)")
            throw .invalidArgument
        }
        // A create of the same name may have run meanwhile: the later one gives way.
        guard add(pool) != nil else {
            pool.destroy()
            throw .fileExists
        }
    }

    /// A pool made by a driver or by create_pool: held, listed under dma_pools/. Nil (and
    /// nothing added) when a pool of that directory name is there already.
    @discardableResult
    func add(_ pool: DMAPool, ownedByDriver: Bool = false) -> HeldPool? {
        let held = HeldPool(pool, ownedByDriver: ownedByDriver)
        let key = directoryName(ofPool: pool.name)
        let added = state.withLock { state in
            guard state.pools[key] == nil else { return false }
            state.pools[key] = held
            return true
        }
        guard added else { return nil }
        poolsDirectory.add(key, poolDirectory(held))
        refreshPoolsFile()
        return held
    }

    /// destroy_pool "<name>": its held blocks are freed first, so the destroy is clean.
    /// A driver's pool is the driver's until remove: EBUSY.
    func destroyPool(_ text: String) throws(Errno) {
        let key = directoryName(ofPool: text)
        let held = try state.withLock { (state) throws(Errno) -> HeldPool in
            guard let held = state.pools[key] else { throw .noSuchFileOrDirectory }
            guard !held.ownedByDriver else { throw .resourceBusy }
            state.pools[key] = nil
            return held
        }
        held.releaseAll()
        held.pool.destroy()
        poolsDirectory.remove(key)
        refreshPoolsFile()
    }

    /// `pools` exists while the device has a pool, as the kernel creates and removes it.
    private func refreshPoolsFile() {
        if device.pools == nil {
            directory.remove("pools")
        } else if directory.child("pools") == nil {
            directory.add("pools", ControlAttribute(show: { [device] () throws(Errno) in
                guard let text = device.pools else { throw .operationNotSupportedByDevice }
                return text
            }))
        }
    }

    private func poolDirectory(_ held: HeldPool) -> ControlDirectory {
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

    // MARK: - The directory

    /// A file of this device's directory. The directory belongs to the device, so its
    /// files hold the device weakly (a strong capture would keep every removed device, and
    /// its machine, alive forever); a file still open after remove_device answers ENODEV,
    /// as sysfs does.
    private func attribute(
        show: (@Sendable (EmulatedDevice) throws(Errno) -> String)? = nil,
        store: (@Sendable (EmulatedDevice, String) throws(Errno) -> Void)? = nil
    ) -> ControlAttribute {
        var shown: ControlAttribute.Show?
        var stored: ControlAttribute.Store?
        if let show {
            shown = { [weak self] () throws(Errno) -> String in
                guard let self else { throw .operationNotSupportedByDevice }
                return try show(self)
            }
        }
        if let store {
            stored = { [weak self] (text: String) throws(Errno) in
                guard let self else { throw .operationNotSupportedByDevice }
                try store(self, text)
            }
        }
        return ControlAttribute(show: shown, store: stored)
    }

    private func buildDirectory() {
        let device = self.device
        directory.add("driver", attribute(show: { "\($0.driver)\n" }))
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
            show: { $0.state.withLock { $0.algorithm.rawValue } + "\n" },
            store: { emulated, text throws(Errno) in
                guard let algorithm = DMAPoolAlgorithm(rawValue: text) else { throw .invalidArgument }
                try emulated.state.withLock { (state) throws(Errno) in
                    guard !state.bound else { throw .resourceBusy }
                    state.algorithm = algorithm
                }
            }))
        directory.add("dma_mask_bits", attribute(
            show: { _ in "\(64 - device.dmaMask.leadingZeroBitCount)\n" },
            store: { emulated, text throws(Errno) in
                let bits = Int(try StoreParsing.number(text, max: 64))
                guard bits >= 20 else { throw .invalidArgument }
                guard !emulated.isBound else { throw .resourceBusy }
                device.dmaMask = dmaBitMask(bits)
                device.coherentDMAMask = dmaBitMask(bits)
            }))
        let params = directory.directory("params")
        for (parameter, _) in driverInstance.parameters {
            params.add(parameter, attribute(
                show: { ($0.driverInstance.parameters.first { $0.name == parameter }?.value ?? "") + "\n" },
                store: { emulated, text throws(Errno) in
                    guard !emulated.isBound else { throw .resourceBusy }
                    try emulated.driverInstance.setParameter(parameter, text)
                }))
        }
        let blockDriver = driverInstance as? any BlockDriver
        directory.add("stats", attribute(show: { emulated in
            let (probe, remove) = emulated.state.withLock { ($0.probeMicroseconds, $0.removeMicroseconds) }
            return "probe_us \(probe ?? 0)\nremove_us \(remove ?? 0)\n" + (blockDriver?.queue?.stats.text ?? "")
                + emulated.driverInstance.statsText
        }))
        if let blockDriver { addBlockFiles(blockDriver) }
        driverInstance.addFiles(to: directory)
        directory.add("create_pool", attribute(store: { emulated, text throws(Errno) in try emulated.createPool(text) }))
        directory.add("destroy_pool", attribute(store: { emulated, text throws(Errno) in try emulated.destroyPool(text) }))
    }

    /// `io` and `disk` for a driver with a disk; both are ENODEV while unbound.
    private func addBlockFiles(_ driver: any BlockDriver) {
        directory.add("io", ControlAttribute(store: { text throws(Errno) in
            let job = try IOJob(parsing: text)
            guard let queue = driver.queue else { throw .operationNotSupportedByDevice }
            try job.run(on: queue)
        }))
        directory.add("disk", ControlBlockFile(
            size: { driver.queue?.capacity ?? 0 },
            read: { buffer, offset throws(Errno) in
                guard let queue = driver.queue else { throw .operationNotSupportedByDevice }
                return try queue.read(into: buffer, at: offset)
            },
            write: { buffer, offset throws(Errno) in
                guard let queue = driver.queue else { throw .operationNotSupportedByDevice }
                return try queue.write(from: buffer, at: offset)
            },
            flush: {  () throws(Errno) in
                guard let queue = driver.queue else { throw .operationNotSupportedByDevice }
                try queue.store.flush()
            }))
    }

    static func microseconds(since start: ContinuousClock.Instant) -> Int {
        let elapsed = ContinuousClock.now - start
        return Int(elapsed.components.seconds) * 1_000_000 + Int(elapsed.components.attoseconds / 1_000_000_000_000)
    }
}
