/// enum dma_data_direction.
public enum DMADirection: Int, Sendable, CaseIterable, CustomStringConvertible {
    case bidirectional = 0, toDevice = 1, fromDevice = 2, none = 3

    /// The name dma-debug prints.
    public var description: String {
        switch self {
        case .bidirectional: "DMA_BIDIRECTIONAL"
        case .toDevice: "DMA_TO_DEVICE"
        case .fromDevice: "DMA_FROM_DEVICE"
        case .none: "DMA_NONE"
        }
    }

    /// The device may read the memory (the CPU's data must reach it).
    var deviceReads: Bool { self == .toDevice || self == .bidirectional }
    /// The device may write the memory (its data must reach the CPU).
    var deviceWrites: Bool { self == .fromDevice || self == .bidirectional }
}

/// DMA_ATTR_* flags of the map and unmap calls.
public struct DMAAttributes: OptionSet, Sendable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }

    /// DMA_ATTR_SKIP_CPU_SYNC: no copy at unmap (and none at map but swiotlb's own).
    public static let skipCPUSync = DMAAttributes(rawValue: 1 << 5)
    /// DMA_ATTR_NO_WARN: no "swiotlb buffer is full" report.
    public static let noWarn = DMAAttributes(rawValue: 1 << 8)
}

/// One entry of a scatterlist: the buffer, and the dma address map_sg gives it.
public struct ScatterEntry: Sendable, Equatable {
    public var phys: UInt64
    public var length: Int
    public var dmaAddress: UInt64 = 0
    public var dmaLength: Int = 0

    public init(phys: UInt64, length: Int) {
        self.phys = phys
        self.length = length
    }
}
