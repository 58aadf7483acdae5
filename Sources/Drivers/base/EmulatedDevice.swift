// One device of the emulated machine and its driver binding (struct device with its
// driver, as drivers/base keeps them): the DMA device, bind (probe) and unbind (remove),
// both timed, the pools it holds, whether a driver made them or a user did, and the
// devices stacked on it. Settings that only apply at probe (the dmapool generation, the
// DMA mask, the driver's parameters) change only while it is unbound, under the same
// lock probe takes, so a probe never sees half a change.
import Block
import DMA
import DMAPool
import Lib
import Locking
import PhysicalMemory
import SystemPackage

/// What the control surface hears of a device's pools coming and going.
public protocol DeviceObserver: AnyObject, Sendable {
    func poolAdded(_ pool: HeldPool, key: String)
    func poolRemoved(key: String)
}

public final class EmulatedDevice: @unchecked Sendable {  // mutable state lives in `state`; `observer` is set once, before use
    public let name: String
    public let driverName: String
    public let device: Device
    let driver: any Driver
    /// The machine's devices, where a stacked driver finds the one under it.
    weak let devices: Devices?
    public weak var observer: (any DeviceObserver)?

    struct State {
        var bound = false
        var removing = false
        var algorithm: DMAPoolAlgorithm
        var debug: Bool
        var pools: [String: HeldPool] = [:]
        var probeMicroseconds: Int64?
        var removeMicroseconds: Int64?
        /// Stacked devices using this one (bd_holders): remove is EBUSY while any do.
        var holders: Set<String> = []
        /// The devices this one's driver stacked on, released after its remove.
        var holding: [EmulatedDevice] = []
    }

    private let state: PthreadMutex<State>

    init(driver: any Driver, name: String, device: Device, algorithm: DMAPoolAlgorithm, debug: Bool, devices: Devices) {
        self.name = name
        self.driverName = type(of: driver).name
        self.driver = driver
        self.device = device
        self.devices = devices
        state = PthreadMutex(State(algorithm: algorithm, debug: debug))
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
        device.driverName = driverName
        let context = ProbeContext(
            device: device, algorithm: algorithm, debug: debug,
            makePool: { [self] (name, size, align, boundary) throws(Errno) in
                try makePool(name, size: size, align: align, boundary: boundary, algorithm: algorithm, debug: debug, byDriver: true)
            },
            holdDisk: { [self] (lower: String) throws(Errno) in try hold(disk: lower) })
        do throws(Errno) {
            try driver.probe(context)
        } catch {
            device.err("probe failed: \(error)")
            try? remove()
            throw error
        }
        let micros = (ContinuousClock.now - start).microseconds
        state.withLock { $0.probeMicroseconds = micros }
        device.printk(.info, "probe took \(micros) us")
    }

    /// rmmod: free every held block in allocation order, destroy every pool, report DMA
    /// still mapped (dma-debug), let go of the devices it stacked on, unbind. ENODEV when
    /// not bound, EBUSY while a device is stacked on this one.
    public func remove() throws(Errno) {
        let start = ContinuousClock.now
        try state.withLock { (state) throws(Errno) in
            guard state.bound, !state.removing else { throw .noDevice }
            if let holder = state.holders.sorted().first {
                device.err("in use by \(holder)")
                throw .resourceBusy
            }
            state.removing = true
        }
        driver.stop()
        let (pools, holding) = state.withLock { (state) -> ([String: HeldPool], [EmulatedDevice]) in
            defer { state.pools = [:]; state.holding = [] }
            return (state.pools, state.holding)
        }
        // Newest pool first (the device's list order), as drivers unwind what they made.
        let order = device.dmaPools.all.map(ObjectIdentifier.init)
        let position = { (held: HeldPool) in order.firstIndex(of: ObjectIdentifier(held.pool)) ?? 0 }
        for (key, held) in pools.sorted(by: { position($0.value) < position($1.value) }) {
            held.releaseAll()
            held.pool.destroy()
            observer?.poolRemoved(key: key)
        }
        driver.remove(device)
        for lower in holding { lower.release(holder: name) }
        device.checkPendingDMA()
        let micros = (ContinuousClock.now - start).microseconds
        device.printk(.info, "remove took \(micros) us")
        device.driverName = nil
        state.withLock {
            $0.bound = false
            $0.removing = false
            $0.removeMicroseconds = micros
        }
    }

    // MARK: - Stacking

    /// bd_link_disk_holder() of this device on the disk of `lower`.
    private func hold(disk lower: String) throws(Errno) -> BlockQueue {
        guard lower != name, let other = devices?.device(lower), let queue = (other.driver as? any DiskDriver)?.queue else {
            throw .noDevice
        }
        try other.state.withLock { (state) throws(Errno) in
            guard state.bound, !state.removing else { throw .noDevice }
            state.holders.insert(name)
        }
        state.withLock { $0.holding.append(other) }
        return queue
    }

    func release(holder: String) { _ = state.withLock { $0.holders.remove(holder) } }

    /// The devices stacked on this one.
    public var holders: Set<String> { state.withLock { $0.holders } }

    // MARK: - Pools

    /// The key a pool is unique by: the name as dma_pool_create keeps it (31 bytes), with
    /// spaces made underscores and '/' made '!' as sysfs names a kobject, so that no two
    /// pools of a device would show under one directory name.
    public static func poolKey(_ name: String) -> String {
        String(DMAPool.keptName(name).map { $0 == " " ? "_" : $0 == "/" ? "!" : $0 })
    }

    /// create_pool: a pool made by hand. ENODEV while unbound, EEXIST for a name taken,
    /// EINVAL (with the reason in kmsg) for what dma_pool_create() refuses.
    public func createPool(name: String, size: Int, align: Int, boundary: Int) throws(Errno) {
        let key = Self.poolKey(name)
        guard key != ".", key != ".." else { throw .invalidArgument }
        let (algorithm, debug) = try state.withLock { (state) throws(Errno) in
            guard state.bound else { throw .noDevice }
            guard state.pools[key] == nil else { throw .fileExists }
            return (state.algorithm, state.debug)
        }
        try makePool(name, size: size, align: align, boundary: boundary, algorithm: algorithm, debug: debug, byDriver: false)
    }

    /// dma_pool_create() of a pool this device holds: EINVAL (and the reason in kmsg,
    /// under the name of what asked) for what the kernel refuses, EEXIST when a pool of
    /// its key is there already (a create of the same name may have run meanwhile: the
    /// later one gives way).
    @discardableResult
    private func makePool(
        _ name: String, size: Int, align: Int, boundary: Int, algorithm: DMAPoolAlgorithm, debug: Bool, byDriver: Bool
    ) throws(Errno) -> HeldPool {
        let pool: DMAPool
        do {
            pool = try DMAPool(name: name, device: device, size: size, align: align, boundary: boundary, algorithm: algorithm, debug: debug)
        } catch {
            device.err("\(byDriver ? "dma_pool_create" : "create_pool") \(name): \(error)")
            throw .invalidArgument
        }
        let held = HeldPool(pool, ownedByDriver: byDriver)
        let key = Self.poolKey(pool.name)
        let added = state.withLock { state in
            guard state.pools[key] == nil else { return false }
            state.pools[key] = held
            return true
        }
        guard added else {
            pool.destroy()
            throw .fileExists
        }
        observer?.poolAdded(held, key: key)
        return held
    }

    /// destroy_pool: its held blocks are freed first, so the destroy is clean. ENOENT for
    /// no such pool; a driver's pool is the driver's until remove: EBUSY.
    public func destroyPool(_ name: String) throws(Errno) {
        let key = Self.poolKey(name)
        let held = try state.withLock { (state) throws(Errno) -> HeldPool in
            guard let held = state.pools[key] else { throw .noSuchFileOrDirectory }
            guard !held.ownedByDriver else { throw .resourceBusy }
            state.pools[key] = nil
            return held
        }
        held.releaseAll()
        held.pool.destroy()
        observer?.poolRemoved(key: key)
    }

    /// The pools held, by key.
    public var pools: [String: HeldPool] { state.withLock { $0.pools } }

    // MARK: - Settings that apply at probe

    public var dmapoolAlgorithm: DMAPoolAlgorithm { state.withLock { $0.algorithm } }

    /// EBUSY while bound.
    public func setDMAPoolAlgorithm(_ algorithm: DMAPoolAlgorithm) throws(Errno) {
        try whileUnbound { $0.algorithm = algorithm }
    }

    public var dmaMaskBits: Int { 64 - device.dmaMask.leadingZeroBitCount }

    /// Both masks to `bits` (20...64: what a driver could ask for); EBUSY while bound.
    public func setDMAMaskBits(_ bits: Int) throws(Errno) {
        guard (20...64).contains(bits) else { throw .invalidArgument }
        try whileUnbound { _ in
            device.dmaMask = dmaBitMask(bits)
            device.coherentDMAMask = dmaBitMask(bits)
        }
    }

    public var parameters: [(name: String, value: String)] { driver.parameters }

    /// A module parameter; EBUSY while bound, EINVAL for what the driver refuses.
    public func setParameter(_ name: String, _ value: String) throws(Errno) {
        if driver.liveParameters.contains(name) { return try driver.setParameter(name, value) }
        try whileUnbound { _ throws(Errno) in try driver.setParameter(name, value) }
    }

    private func whileUnbound(_ change: (inout State) throws(Errno) -> Void) throws(Errno) {
        try state.withLock { (state) throws(Errno) in
            guard !state.bound else { throw .resourceBusy }
            try change(&state)
        }
    }

    // MARK: - What the device shows

    /// The block layer's queue of a bound disk driver.
    public var queue: BlockQueue? { (driver as? any DiskDriver)?.queue }

    /// The `stats` lines: the bind times, a disk's I/O counters, the driver's own.
    public var stats: [(name: String, value: String)] {
        let (probe, remove) = state.withLock { ($0.probeMicroseconds, $0.removeMicroseconds) }
        return [("probe_us", String(probe ?? 0)), ("remove_us", String(remove ?? 0))]
            + (queue?.stats.values ?? []) + driver.stats
    }

    /// The driver's files of its own.
    public var files: [DriverFile] { driver.files }

    /// Whether the driver has a disk (and so `io` and `disk` files), bound or not.
    public var hasDisk: Bool { driver is any DiskDriver }
}
