// A driver binds to an emulated device: probe allocates its pools and preallocations,
// remove gives everything back (the device frees held pool blocks in allocation order and
// destroys the pools). Parameters are the driver's module parameters, settable while
// the device is unbound.
import ControlFS
import DMA
import DMAPool
import SystemPackage

protocol Driver: AnyObject, Sendable {
    static var name: String { get }
    /// The bus its devices sit on: "pci", or "virtual" for device-mapper targets.
    static var bus: String { get }
    /// Parameter names with their current values, in the order params/ lists them.
    var parameters: [(name: String, value: String)] { get }
    /// Sets a parameter; EINVAL for an unknown name or a bad value.
    func setParameter(_ name: String, _ value: String) throws(Errno)
    /// Allocates what the driver needs through `context`; throws ENOMEM and leaves the
    /// rest to the device's unwinding when memory runs out.
    func probe(_ context: ProbeContext) throws(Errno)
    /// Stops I/O before the pools go (blk_mq_freeze_queue(), scsi_remove_host()).
    func stop()
    /// Frees what probe took outside pools (coherent buffers).
    func remove(_ device: Device)
    /// Lines of the driver's own for the device's `stats`.
    var statsText: String { get }
    /// Files of the driver's own in the device's directory, made with the device.
    func addFiles(to directory: ControlDirectory)
}

extension Driver {
    static var bus: String { "pci" }
    func stop() {}
    var statsText: String { "" }
    func addFiles(to directory: ControlDirectory) {}
}

/// What probe may do to its device: make pools (held and listed under dma_pools/).
struct ProbeContext {
    let device: Device
    /// The device being probed, and through it the machine (a stacked driver's lower device).
    let emulated: EmulatedDevice
    let algorithm: DMAPoolAlgorithm
    let debug: Bool
    /// Holds a pool the driver made (the driver's: not destroyable by hand).
    let addPool: (DMAPool) -> HeldPool?

    /// dma_pool_create(); EINVAL when the driver's own sizes break the pool rules, EEXIST
    /// for a second pool of one name.
    func createPool(_ name: String, size: Int, align: Int, boundary: Int = 0) throws(Errno) -> HeldPool {
        let pool: DMAPool
        do {
            pool = try DMAPool(name: name, device: device, size: size, align: align, boundary: boundary, algorithm: algorithm, debug: debug)
        } catch {
            device.err("dma_pool_create \(name): \(error)")
            throw .invalidArgument
        }
        guard let held = addPool(pool) else {
            pool.destroy()
            throw .fileExists
        }
        return held
    }
}

/// A device with no pools of its own: users make them with create_pool.
final class GenericDriver: Driver {
    static let name = "generic"
    var parameters: [(name: String, value: String)] { [] }
    func setParameter(_ name: String, _ value: String) throws(Errno) { throw .invalidArgument }
    func probe(_ context: ProbeContext) throws(Errno) {}
    func remove(_ device: Device) {}
}

/// The drivers dmaemu knows, by name.
enum Drivers {
    static let names = [GenericDriver.name, MPT3SASDriver.name, NVMeDriver.name, DMCryptDriver.name]

    static func make(_ name: String) -> (any Driver)? {
        switch name {
        case GenericDriver.name: GenericDriver()
        case MPT3SASDriver.name: MPT3SASDriver()
        case NVMeDriver.name: NVMeDriver()
        case DMCryptDriver.name: DMCryptDriver()
        default: nil
        }
    }
}
