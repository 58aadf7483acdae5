// A driver binds to an emulated device: probe allocates its pools and preallocations,
// remove gives everything back (the device frees held pool blocks in allocation order and
// destroys the pools). A driver knows nothing of how it is shown: its parameters (the
// module parameters, settable while the device is unbound), its stats and any files of
// its own are data, which the control surface presents.
import Block
import DMA
import DMAPool
import Lib
import SystemPackage

public protocol Driver: AnyObject, Sendable {
    static var name: String { get }
    /// The bus its devices sit on: "pci", or "virtual" for device-mapper targets.
    static var bus: String { get }
    /// Parameter names with their current values, in the order params/ lists them.
    var parameters: [(name: String, value: String)] { get }
    /// Sets a parameter; EINVAL for an unknown name or a bad value.
    func setParameter(_ name: String, _ value: String) throws(Errno)
    /// The parameters that take effect while bound (a debugfs file's, such as nvme's
    /// fault_inject); the others are EBUSY until remove.
    var liveParameters: Set<String> { get }
    /// Takes the defaults `kernel` has for the parameters (before those given on add).
    func adopt(_ kernel: KernelVersion)
    /// Allocates what the driver needs through `context`; throws ENOMEM and leaves the
    /// rest to the device's unwinding when memory runs out.
    func probe(_ context: ProbeContext) throws(Errno)
    /// Stops I/O before the pools go (blk_mq_freeze_queue(), scsi_remove_host()).
    func stop()
    /// Frees what probe took outside pools (coherent buffers).
    func remove(_ device: Device)
    /// Lines of the driver's own for the device's `stats`, in order.
    var stats: [(name: String, value: String)] { get }
    /// Files of the driver's own in the device's directory.
    var files: [DriverFile] { get }
}

extension Driver {
    public static var bus: String { "pci" }
    public func adopt(_ kernel: KernelVersion) {}
    public func stop() {}
    public var stats: [(name: String, value: String)] { [] }
    public var files: [DriverFile] { [] }
    public var liveParameters: Set<String> { [] }
}

/// A driver with a disk: the block layer's queue it set up at probe.
public protocol DiskDriver: Driver, BlockDriver {
    /// The queue the last probe set up; nil while unbound.
    var queue: BlockQueue? { get }
}

/// A read-only file a driver adds to its device's directory: "key value" lines, read
/// from the driver's state at each open; ENODEV while there is nothing to show.
public struct DriverFile: Sendable {
    public let name: String
    public let lines: @Sendable () throws(Errno) -> [(name: String, value: String)]

    public init(_ name: String, lines: @escaping @Sendable () throws(Errno) -> [(name: String, value: String)]) {
        self.name = name
        self.lines = lines
    }
}

/// A device with no pools of its own: users make them with create_pool.
public final class GenericDriver: Driver {
    public static let name = "generic"
    public init() {}
    public var parameters: [(name: String, value: String)] { [] }
    public func setParameter(_ name: String, _ value: String) throws(Errno) { throw .invalidArgument }
    public func probe(_ context: ProbeContext) throws(Errno) {}
    public func remove(_ device: Device) {}
}

/// The drivers of this module, by name; a machine adds the ones above it (dm-crypt).
public enum BuiltinDrivers {
    public static let all: [String: Devices.Factory] = [
        GenericDriver.name: { GenericDriver() },
        MPT3SASDriver.name: { MPT3SASDriver() },
        MegaRAIDSASDriver.name: { MegaRAIDSASDriver() },
        NVMeDriver.name: { NVMeDriver() },
    ]
}
