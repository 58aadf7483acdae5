// The emulated machine's description: what Config/dmaemu.toml says, and what dmaemud
// runs with when given no file.
import DMAPool
import Lib
import SWIOTLB

public struct MachineConfig: Sendable {
    public struct DeviceConfig: Sendable, Equatable {
        public var driver: String
        public var name: String
        public var parameters: [String: String]

        public init(driver: String, name: String, parameters: [String: String] = [:]) {
            self.driver = driver
            self.name = name
            self.parameters = parameters
        }
    }

    public var ramBytes: UInt64 = 8 << 30
    /// The kernel whose behaviour and formats the machine has.
    public var kernel: KernelVersion = .v6_12
    /// Whether the config named it (`[machine] kernel`): then the drivers' defaults are
    /// that kernel's too.
    public var kernelPreset = false
    public var swiotlb = SWIOTLBConfig()
    public var dmapoolAlgorithm: DMAPoolAlgorithm = .stack
    public var dmapoolDebug = false
    public var dmaDebug = false
    public var devices: [DeviceConfig] = []

    /// A restricted-dma-pool region: its own bounce buffer, for the devices bound to it.
    public struct RestrictedPool: Sendable, Equatable {
        public var name: String
        public var bytes: Int
    }

    public var restrictedPools: [RestrictedPool] = []

    /// An empty machine with the kernel's defaults; `defaultMachine()` is the shipped one.
    public init() {}

    /// What `[machine] kernel` selects before the file's own [swiotlb] and [dmapool] keys
    /// (which still win): the dma pool generation (6.1 is before
    /// v6.4's rework: legacy), and growth (CONFIG_SWIOTLB_DYNAMIC came in 6.6; Debian's 6.12
    /// is built without it). swiotlb's slot search, trace formats and debugfs files follow the
    /// kernel directly (Machine).
    mutating func applyKernelPreset() {
        kernelPreset = true
        dmapoolAlgorithm = kernel == .v6_1 ? .legacy : .stack
        if kernel < .v6_18 { swiotlb.dynamic = false }
    }
}
