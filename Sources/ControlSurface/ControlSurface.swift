// The tree dmaemud mounts: devices/ (one DeviceDirectory each, as devices come and go),
// control/ (add_device, remove_device), kernel/ (buddyinfo, the debugfs files: swiotlb,
// dma_map_benchmark, fail_page_alloc), metrics and kmsg. This is the only layer that knows
// both the engines and ControlFS; it holds the machine's devices weakly, so a file still
// open after the machine is gone answers ENODEV.
import ControlFS
import DMA
import Drivers
import Lib
import Locking
import PhysicalMemory
import SystemPackage

public final class ControlSurface: DevicesObserver, @unchecked Sendable {  // `directories` is guarded; the rest is set at init
    public let root = ControlDirectory()
    private let devicesDirectory: ControlDirectory
    private weak let devices: Devices?
    private let directories = PthreadMutex<[String: DeviceDirectory]>([:])
    /// Counters from outside the machine that `metrics` shows too (the FUSE loop's).
    private let extraCounters = PthreadMutex<(@Sendable () -> [MetricCounter])?>(nil)

    public init(devices: Devices) {
        self.devices = devices
        devicesDirectory = root.directory("devices")
        build(devices.platform)
        devices.observer = self
        for device in devices.all { deviceAdded(device) }
    }

    /// `metrics` also shows what `counters` returns at each read.
    public func addCounters(_ counters: @escaping @Sendable () -> [MetricCounter]) {
        extraCounters.withLock { $0 = counters }
    }

    // MARK: - DevicesObserver

    public func deviceAdded(_ device: EmulatedDevice) {
        let directory = DeviceDirectory(device)
        directories.withLock { $0[device.name] = directory }
        devicesDirectory.add(device.name, directory.directory)
    }

    public func deviceRemoved(_ name: String) {
        directories.withLock { _ = $0.removeValue(forKey: name) }
        devicesDirectory.remove(name)
    }

    // MARK: - The tree

    private func build(_ platform: Platform) {
        let control = root.directory("control")
        control.add("add_device", ControlAttribute(store: { [weak devices] text throws(Errno) in
            guard let devices else { throw .noDevice }
            let words = StoreParsing.words(text)
            guard words.count >= 2 else { throw .invalidArgument }
            var parameters: [String: String] = [:]
            for word in words.dropFirst(2) {
                let parts = word.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2 else { throw .invalidArgument }
                parameters[parts[0]] = parts[1]
            }
            try devices.add(driver: words[0], name: words[1], parameters: parameters)
        }))
        control.add("remove_device", ControlAttribute(store: { [weak devices] text throws(Errno) in
            guard let devices else { throw .noDevice }
            try devices.remove(text)
        }))

        let ram = platform.ram
        let kernel = root.directory("kernel")
        kernel.add("buddyinfo", ControlAttribute(show: { [ram] in ram.buddyInfo }))
        kernel.add("zoneinfo", ControlAttribute(show: { [ram] in ram.zoneInfo }))
        // drain_all_pages() on request ("1"), so that buddyinfo shows what the pcp lists hold.
        control.add("drain_pages", ControlAttribute(store: { [ram] text throws(Errno) in
            guard text == "1" else { throw .invalidArgument }
            ram.drainAllPages()
        }))
        let debug = kernel.directory("debug")
        let benchmarkDevice = Device(
            name: "dma_map_benchmark", ram: ram, bus: "platform", swiotlb: platform.swiotlb, dmaMask: .max, coherentDMAMask: .max,
            tracer: platform.tracer)
        benchmarkDevice.driverName = "dma_map_benchmark"
        debug.add("dma_map_benchmark", MapBenchmarkFile(device: benchmarkDevice).attribute)
        FailPageAllocFiles.add(ram.faults, to: debug.directory("fail_page_alloc"))
        FailPageAllocFiles.add(ram.failMempoolAllocBulk, to: debug.directory("fail_mempool_alloc_bulk"), minOrder: false)
        let swiotlbDirectory = debug.directory("swiotlb")
        let dynamic = platform.swiotlb?.canGrow ?? false
        if let swiotlb = platform.swiotlb { SWIOTLBDebugfs.add(swiotlb, dynamic: dynamic, to: swiotlbDirectory) }
        for pool in platform.restrictedPools.values {
            SWIOTLBDebugfs.add(pool, dynamic: dynamic, to: swiotlbDirectory.directory(pool.name))
        }
        if let tracer = platform.tracer { TracingFiles.add(tracer, to: kernel.directory("tracing")) }
        root.add("metrics", ControlAttribute(show: { [weak self] in self?.metricsText() ?? "" }))
        root.add("kmsg", ControlAttribute(show: { [ram] in ram.log.messages.map { $0.dmesgLine + "\n" }.joined() }))
    }

    func metricsText() -> String {
        guard let devices else { return "" }
        return Metrics.text(devices, extra: extraCounters.withLock { $0 }?() ?? [])
    }
}
