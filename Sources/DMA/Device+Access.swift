// The device's side of DMA: the emulated hardware reads and writes memory by dma address.
// With dma-debug on, an access must fall inside one of this device's mappings in a
// direction that allows it, or inside one of its coherent allocations; without it, the
// range must at least be RAM the device's mask reaches. A refused access changes nothing
// and is printed: on real hardware it would have corrupted memory silently.
import PhysicalMemory

public enum DeviceAccessError: Error, Equatable {
    case unmapped(dma: DMAAddr, size: Int)
}

extension Device {
    /// The device reads [dma, dma + buffer.count) into `buffer` (a DMA read: TO_DEVICE).
    public func deviceRead(_ dma: DMAAddr, into buffer: UnsafeMutableRawBufferPointer) throws(DeviceAccessError) {
        try checkAccess(dma, buffer.count, write: false)
        guard let base = buffer.baseAddress else { return }
        base.copyMemory(from: ram.virt(dma), byteCount: buffer.count)
    }

    /// The device writes `buffer` at [dma, dma + buffer.count) (a DMA write: FROM_DEVICE).
    public func deviceWrite(_ dma: DMAAddr, from buffer: UnsafeRawBufferPointer) throws(DeviceAccessError) {
        try checkAccess(dma, buffer.count, write: true)
        guard let base = buffer.baseAddress else { return }
        ram.virt(dma).copyMemory(from: base, byteCount: buffer.count)
    }

    /// The emulated controller's view of [dma, dma + size) for a transfer of its own (to
    /// or from a disk): checked as deviceRead/deviceWrite check, then handed out.
    public func deviceMemory(_ dma: DMAAddr, size: Int, write: Bool) throws(DeviceAccessError) -> UnsafeMutableRawPointer {
        try checkAccess(dma, size, write: write)
        return ram.virt(dma)
    }

    private func checkAccess(_ dma: DMAAddr, _ size: Int, write: Bool) throws(DeviceAccessError) {
        var allowed = size >= 0 && dma < ram.size && UInt64(size) <= ram.size - dma && dmaCapable(dma, size)
        if allowed, let debug {
            if let entry = debug.containing(dma, size: size) {
                allowed = entry.type == .coherent || (write ? entry.direction.deviceWrites : entry.direction.deviceReads)
            } else {
                allowed = false
            }
        }
        guard allowed else {
            printk(
                .err,
                "dmaemu: device \(write ? "write to" : "read from") unmapped memory refused "
                    + "[device address=\(dmaAddrText(dma))] [size=\(size) bytes]")
            throw .unmapped(dma: dma, size: size)
        }
    }
}
