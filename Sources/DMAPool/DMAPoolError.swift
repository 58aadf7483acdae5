/// Why dma_pool_create() returned NULL: one case per argument rule, in the order the
/// kernel checks them.
public enum DMAPoolError: Error, Equatable, Sendable, CustomStringConvertible {
    /// align is neither 0 nor a power of two.
    case alignNotPowerOfTwo(align: Int)
    /// size is 0.
    case zeroSize
    /// size exceeds INT_MAX (v6.4+ and Tony's series; legacy accepted it).
    case sizeTooLarge(size: Int)
    /// A boundary below the (aligned) block size.
    case boundaryTooSmall(boundary: Int, size: Int)
    /// A boundary that is not a power of two.
    case boundaryNotPowerOfTwo(boundary: Int)

    public var description: String {
        switch self {
        case .alignNotPowerOfTwo(let align): "align \(align) is not a power of two"
        case .zeroSize: "size is 0"
        case .sizeTooLarge(let size): "size \(size) exceeds INT_MAX"
        case .boundaryTooSmall(let boundary, let size): "boundary \(boundary) is smaller than the block size \(size)"
        case .boundaryNotPowerOfTwo(let boundary): "boundary \(boundary) is not a power of two"
        }
    }
}
