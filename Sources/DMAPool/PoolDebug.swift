// DMAPOOL_DEBUG, kept out of the engines' fast paths: poison values from
// include/linux/poison.h, the corruption check at alloc with its hex dump, and the
// kernel's print_hex_dump() line format.
import DMA
import PhysicalMemory

/// POOL_POISON_FREED: what a free block holds in debug builds.
public let poolPoisonFreed: UInt8 = 0xa7
/// POOL_POISON_ALLOCATED: what a newly allocated block holds until its user writes it.
public let poolPoisonAllocated: UInt8 = 0xa9

extension PoolContext {
    /// pool_check_block(): bytes past the free-list link must still be 0xa7; the first
    /// mismatch is reported with a dump of the whole block (not fatal). Then the block is
    /// filled with 0xa9 unless it is about to be zeroed.
    func checkBlock(_ block: UnsafeMutableRawPointer, linkSize: Int, function: String, zeroing: Bool) {
        let bytes = block.assumingMemoryBound(to: UInt8.self)
        for i in linkSize..<size where bytes[i] != poolPoisonFreed {
            device.err("\(function) \(name), \(pointer(block)) (corrupted)")
            for line in hexDump(UnsafeRawBufferPointer(start: block, count: size)) {
                device.ram.log.printk(.err, line)
            }
            break
        }
        if !zeroing { block.initializeMemory(as: UInt8.self, repeating: poolPoisonAllocated, count: size) }
    }

    func poisonFreed(_ block: UnsafeMutableRawPointer) {
        block.initializeMemory(as: UInt8.self, repeating: poolPoisonFreed, count: size)
    }
}

/// print_hex_dump(KERN_ERR, "", DUMP_PREFIX_OFFSET, 16, 1, buf, len, true): per 16 bytes,
/// "%.8x: " then "xx " per byte (the last without its space), padded to column 49 of the
/// line buffer, then the bytes as ASCII with '.' for the unprintable.
public func hexDump(_ data: UnsafeRawBufferPointer) -> [String] {
    var lines: [String] = []
    var row = 0
    while row < data.count {
        let chunk = data[row..<min(row + 16, data.count)]
        var text = chunk.map { hex($0, 2) }.joined(separator: " ")
        text += String(repeating: " ", count: 49 - text.count)
        text += String(decoding: chunk.map { $0 >= 0x20 && $0 < 0x7f ? $0 : UInt8(ascii: ".") }, as: UTF8.self)
        lines.append(hex(row, 8) + ": " + text)
        row += 16
    }
    return lines
}
