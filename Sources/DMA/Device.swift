// An emulated device as the DMA layer sees it: its masks, its pools, its coherent
// allocations and the driver it is bound to. Masks are atomics because the streaming
// map path reads them on every call and must not take a second lock for it.
import Locking
import PhysicalMemory
import Printk
import SWIOTLB
import Trace
import Synchronization

public final class Device: @unchecked Sendable {  // `swiotlbRef` is kept alive by `swiotlb`
    public let name: String
    /// The bus, named in messages while no driver is bound (dev_driver_string()).
    public let bus: String
    /// The RAM the device does DMA to and from.
    public let ram: PhysicalMemory
    /// The pools of this device, newest first, as dev->dma_pools (DMAPool fills it).
    public let dmaPools = DevicePoolList()

    /// The software IO TLB this device bounces through (dev->dma_io_tlb_mem), if any.
    public let swiotlb: IOTLBClient?
    let swiotlbRef: Unmanaged<IOTLBClient>?  // kept alive by `swiotlb`
    /// dma-debug's record of this device's mappings, when dma-debug is on.
    let debug: DMADebug?
    /// The machine's tracing, if it has any, and dev_name() as its records keep it.
    public let tracer: Tracer?
    @usableFromInline let tracerRef: Unmanaged<Tracer>?  // kept alive by `tracer`
    public let traceName: TraceName
    /// dma_skip_sync: a coherent device skips the sync calls until its first bounce.
    let skipSync = Atomic(true)


    private let streamingMask: Atomic<UInt64>
    private let coherentMask: Atomic<UInt64>
    private let alignMask: Atomic<UInt64>
    private let boundaryMask: Atomic<UInt64>
    /// Tags this device's coherent blocks in their page descriptors.
    let id: UInt32
    let coherentCount = Atomic<Int>(0)
    private static let nextID = Atomic<UInt32>(1)

    /// A PCI function starts with 32-bit masks and a 4 GiB segment boundary, as
    /// pci_device_add() leaves it; its driver widens them at probe. `swiotlb` is the
    /// machine's default software IO TLB or a restricted pool; `dmaDebug` turns on
    /// dma-debug's tracking for this device.
    public init(
        name: String, ram: PhysicalMemory, bus: String = "pci", swiotlb: IOTLBMem? = nil, dmaDebug: Bool = false,
        dmaMask: UInt64 = dmaBitMask(32), coherentDMAMask: UInt64 = dmaBitMask(32),
        minAlignMask: UInt64 = 0, segmentBoundaryMask: UInt64 = 0xffff_ffff, tracer: Tracer? = nil
    ) {
        self.name = name
        self.bus = bus
        self.ram = ram
        // The client prints "<driver> <name>" in its reports; it reads the driver then.
        let box = DriverName(name: name, bus: bus)
        self.driverBox = box
        let client = swiotlb.map { IOTLBClient(mem: $0) { box.prefix } }
        self.swiotlb = client
        self.swiotlbRef = client.map { .passUnretained($0) }
        self.debug = dmaDebug ? DMADebug() : nil
        self.tracer = tracer
        tracerRef = tracer.map { .passUnretained($0) }
        traceName = TraceName(name)
        id = Self.nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        streamingMask = Atomic(dmaMask)
        coherentMask = Atomic(coherentDMAMask)
        alignMask = Atomic(minAlignMask)
        boundaryMask = Atomic(segmentBoundaryMask)
    }

    private let driverBox: DriverName

    /// The bound driver's name, or nil while unbound.
    public var driverName: String? {
        get { driverBox.driver.withLock { $0 } }
        set { driverBox.driver.withLock { $0 = newValue } }
    }

    /// The corresponding kernel function is `dev_driver_string()`.
    public var driverString: String { driverName ?? bus }

    /// The limits a swiotlb search reads from this device.
    var iotlbLimits: IOTLBDeviceLimits {
        IOTLBDeviceLimits(minAlignMask: minAlignMask, segmentBoundaryMask: segmentBoundaryMask, dmaLimit: limit(of: dmaMask))
    }

    /// The streaming DMA mask (dma_set_mask()).
    public var dmaMask: UInt64 {
        get { streamingMask.load(ordering: .relaxed) }
        set { streamingMask.store(newValue, ordering: .relaxed) }
    }

    /// The coherent DMA mask (dma_set_coherent_mask()).
    public var coherentDMAMask: UInt64 {
        get { coherentMask.load(ordering: .relaxed) }
        set { coherentMask.store(newValue, ordering: .relaxed) }
    }

    /// Low address bits a bounce buffer must preserve (dma_set_min_align_mask()).
    public var minAlignMask: UInt64 {
        get { alignMask.load(ordering: .relaxed) }
        set { alignMask.store(newValue, ordering: .relaxed) }
    }

    /// A mapping never crosses a multiple of mask + 1 (dma_set_seg_boundary()).
    public var segmentBoundaryMask: UInt64 {
        get { boundaryMask.load(ordering: .relaxed) }
        set { boundaryMask.store(newValue, ordering: .relaxed) }
    }

    /// The corresponding kernel function is `dev_printk()`: "<driver> <device>: text".
    public func printk(_ level: LogLevel, _ text: String) {
        ram.log.printk(level, "\(driverString) \(name): \(text)")
    }

    /// The corresponding kernel function is `dev_err()`.
    public func err(_ text: String) { printk(.err, text) }

    /// `%p` of a CPU address in this device's machine: its direct-map kernel address.
    public func pointerText(_ virt: UnsafeRawPointer) -> String { hex(ram.kernelAddress(virt), 16) }
}

/// `%pad`: a dma address as "0x" and 16 hex digits.
public func dmaAddrText(_ dma: DMAAddr) -> String { "0x" + hex(dma, 16) }

/// The driver binding, shared with the swiotlb client so its reports name the device as
/// dev_warn() would at the time of the report.
final class DriverName: Sendable {
    let name: String
    let bus: String
    let driver = PthreadMutex<String?>(nil)

    init(name: String, bus: String) {
        self.name = name
        self.bus = bus
    }

    var prefix: String { "\(driver.withLock { $0 } ?? bus) \(name)" }
}
