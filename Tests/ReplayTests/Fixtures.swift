import Foundation
import Replay

/// Parses trace text as `dmaemu-replay` reads a file.
func parse(_ text: String, skipBad: Bool = false) throws(RecordingError) -> Recording {
    var bytes = Array(text.utf8)
    return try bytes.withUnsafeMutableBufferPointer { buffer throws(RecordingError) in
        try RecordingParser(skipBad: skipBad).parse(UnsafeBufferPointer(buffer))
    }
}

/// One trace line as tracefs prints it: "%16s-%-7d [%03d] ..... %5lu.%06lu: " then the event.
func traceLine(_ event: String, task: String = "fio", pid: Int = 1234, cpu: Int = 0, microseconds: UInt64) -> String {
    let comm = String(repeating: " ", count: max(0, 16 - task.count)) + task
    let pidText = String(pid) + String(repeating: " ", count: max(0, 7 - String(pid).count))
    let cpuText = String(repeating: "0", count: 3 - String(cpu).count) + String(cpu)
    let secs = String(microseconds / 1_000_000)
    let usecs = String(microseconds % 1_000_000)
    let time = String(repeating: " ", count: max(0, 5 - secs.count)) + secs + "." + String(repeating: "0", count: 6 - usecs.count) + usecs
    return "\(comm)-\(pidText) [\(cpuText)] ..... \(time): \(event)"
}

func hexText(_ value: UInt64) -> String { String(value, radix: 16) }

/// A host's trace of `count` 256 KiB writes that are all in flight at once from a device
/// with a 32-bit mask, each bounced (the buffers sit above 4 GiB), then all completed:
/// at its peak it holds count * 128 slots of swiotlb.
func concurrentWrites(count: Int, device: String = "0000:00:05.0") -> String {
    var lines: [String] = []
    var time: UInt64 = 100_000_000
    let size = 256 << 10
    func phys(_ i: Int) -> UInt64 { 0x1_2000_0000 + UInt64(i) * 0x40000 }
    func slot(_ i: Int) -> UInt64 { 0xbc00_0000 + UInt64(i) * 0x40000 }
    for i in 0..<count {
        time += 3
        lines.append(traceLine("swiotlb_bounced: dev_name: \(device) dma_mask=ffffffff dev_addr=\(hexText(phys(i))) size=\(size) NORMAL", microseconds: time))
        lines.append(traceLine("dma_map_page: \(device) dir=TO_DEVICE dma_addr=\(hexText(slot(i))) size=\(size) phys_addr=\(hexText(phys(i))) attrs=", microseconds: time))
    }
    for i in 0..<count {
        time += 5
        lines.append(traceLine("dma_unmap_page: \(device) dir=TO_DEVICE dma_addr=\(hexText(slot(i))) size=\(size) attrs=", task: "<idle>", pid: 0, microseconds: time))
    }
    return lines.joined(separator: "\n") + "\n"
}
