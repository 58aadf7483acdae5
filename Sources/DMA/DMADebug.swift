// dma-debug (kernel/dma/debug.c): every mapping and coherent allocation of a device,
// so that a double unmap, an unmap of an address never mapped, a size, direction or
// function mismatch, a sync outside a mapping, and mappings still held when the driver
// goes are reported in the kernel's words. Off by default (it costs a lock and a table
// entry per map); on in tests.
import Locking
import PhysicalMemory

enum DebugType: CustomStringConvertible {
    case single, scatterGather, coherent

    /// type2name[], with the kernel's spelling.
    var description: String {
        switch self {
        case .single: "single"
        case .scatterGather: "scather-gather"
        case .coherent: "coherent"
        }
    }
}

struct DebugEntry {
    let dma: DMAAddr
    let size: Int
    let direction: DMADirection
    let type: DebugType
}

final class DMADebug: Sendable {
    private let entries = PthreadMutex<[DMAAddr: [DebugEntry]]>([:])

    func add(_ entry: DebugEntry) {
        entries.withLock { $0[entry.dma, default: []].append(entry) }
    }

    /// check_unmap(): returns false (and reports) when nothing was mapped at `dma`; a
    /// mismatch in size, function or direction is reported and the entry removed.
    func checkUnmap(_ device: Device, dma: DMAAddr, size: Int, direction: DMADirection, type: DebugType) -> Bool {
        let found = entries.withLock { entries -> DebugEntry? in
            guard var list = entries[dma], !list.isEmpty else { return nil }
            // Prefer the entry that matches exactly, as hash_bucket_find() does.
            let at = list.firstIndex { $0.size == size && $0.direction == direction && $0.type == type } ?? 0
            let entry = list.remove(at: at)
            entries[dma] = list.isEmpty ? nil : list
            return entry
        }
        let address = dmaAddrText(dma)
        guard let entry = found else {
            device.apiError(
                "device driver tries to free DMA memory it has not allocated [device address=\(address)] [size=\(size) bytes]")
            return false
        }
        if entry.size != size {
            device.apiError(
                "device driver frees DMA memory with different size [device address=\(address)] "
                    + "[map size=\(entry.size) bytes] [unmap size=\(size) bytes]")
        }
        if entry.type != type {
            device.apiError(
                "device driver frees DMA memory with wrong function [device address=\(address)] [size=\(entry.size) bytes] "
                    + "[mapped as \(entry.type)] [unmapped as \(type)]")
        }
        if entry.direction != direction {
            device.apiError(
                "device driver frees DMA memory with different direction [device address=\(address)] "
                    + "[size=\(entry.size) bytes] [mapped with \(entry.direction)] [unmapped with \(direction)]")
        }
        return true
    }

    /// check_sync(): the range must lie in one mapping, synced in its direction.
    func checkSync(_ device: Device, dma: DMAAddr, size: Int, direction: DMADirection) -> Bool {
        let address = dmaAddrText(dma)
        guard let entry = containing(dma, size: 1) else {
            device.apiError(
                "device driver tries to sync DMA memory it has not allocated [device address=\(address)] [size=\(size) bytes]")
            return false
        }
        let end = Int(dma - entry.dma) + size
        if end > entry.size {
            device.apiError(
                "device driver syncs DMA memory outside allocated range [device address=\(dmaAddrText(entry.dma))] "
                    + "[allocation size=\(entry.size) bytes] [sync offset+size=\(end)]")
            return false
        }
        if entry.direction != .bidirectional && entry.direction != direction {
            device.apiError(
                "device driver syncs DMA memory with different direction [device address=\(address)] "
                    + "[size=\(size) bytes] [mapped with \(entry.direction)] [synced with \(direction)]")
        }
        return true
    }

    /// The mapping or coherent allocation holding [dma, dma + size), if any.
    func containing(_ dma: DMAAddr, size: Int) -> DebugEntry? {
        entries.withLock { entries in
            for list in entries.values {
                for entry in list where dma >= entry.dma && dma - entry.dma + UInt64(size) <= UInt64(entry.size) {
                    return entry
                }
            }
            return nil
        }
    }

    var all: [DebugEntry] { entries.withLock { $0.values.flatMap { $0 } } }
}

extension Device {
    /// dma_debug_device_change() at driver unbind: reports mappings and coherent memory
    /// still held, as the kernel does, and returns how many.
    @discardableResult
    public func checkPendingDMA() -> Int {
        guard let debug else { return 0 }
        let pending = debug.all.sorted { $0.dma < $1.dma }
        guard let first = pending.first else { return 0 }
        apiError("device driver has pending DMA allocations while released from device [count=\(pending.count)]")
        ram.log.printk(
            .warning,
            "One of leaked entries details: [device address=\(dmaAddrText(first.dma))] [size=\(first.size) bytes] "
                + "[mapped with \(first.direction)] [mapped as \(first.type)]")
        return pending.count
    }

    /// Streaming mappings and coherent allocations dma-debug is tracking (0 when it is off).
    public var dmaDebugEntryCount: Int { debug?.all.count ?? 0 }
}
