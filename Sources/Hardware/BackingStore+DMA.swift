// The emulated controller's data movement: one descriptor's bytes between the disk and
// memory, by dma address, through the device's access checks (a buffer that is not mapped
// the right way is refused, and the command fails).
import DMA
import SystemPackage

extension BackingStore {
    /// A write command reads memory at `address` into the disk at `position`; a read
    /// command does the reverse.
    public func dma(_ device: Device, address: DMAAddr, length: Int, position: Int, write: Bool) throws(Errno) {
        let memory: UnsafeMutableRawPointer
        do {
            memory = try device.deviceMemory(address, size: length, write: !write)
        } catch {
            throw .ioError
        }
        if write {
            try self.write(from: memory, offset: position, count: length)
        } else {
            try read(into: memory, offset: position, count: length)
        }
    }
}
