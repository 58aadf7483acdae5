// What probe may do to its device: make pools (held, and listed by the control surface),
// and stack on another device's disk as device-mapper does (bd_link_disk_holder()).
import Block
import DMA
import DMAPool
import SystemPackage

public struct ProbeContext {
    public let device: Device
    public let algorithm: DMAPoolAlgorithm
    public let debug: Bool
    /// Makes a pool the device holds for the driver (not destroyable by hand).
    let makePool: (_ name: String, _ size: Int, _ align: Int, _ boundary: Int) throws(Errno) -> HeldPool
    let holdDisk: (String) throws(Errno) -> BlockQueue

    /// dma_pool_create(); EINVAL when the driver's own sizes break the pool rules, EEXIST
    /// for a second pool of one name.
    public func createPool(_ name: String, size: Int, align: Int, boundary: Int = 0) throws(Errno) -> HeldPool {
        try makePool(name, size, align, boundary)
    }

    /// The disk of the bound device `name`, which this device now holds: that one cannot
    /// be removed (EBUSY) until this one is. ENODEV when there is no such disk.
    public func hold(disk name: String) throws(Errno) -> BlockQueue { try holdDisk(name) }
}
