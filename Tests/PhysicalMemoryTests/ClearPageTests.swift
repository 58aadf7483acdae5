import PhysicalMemory
import Testing

@Suite struct ClearPageTests {
    /// Two pages in the middle of three filled with 0xa5: both become zero, and not one
    /// byte on either side changes.
    @Test func clearsExactlyThePagesAsked() {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 3 * 4096, alignment: 4096)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0xa5, count: 3 * 4096)
        PhysicalMemory.clearPages(buffer + 2048, bytes: 2 * 4096)
        let bytes = UnsafeBufferPointer(start: buffer.assumingMemoryBound(to: UInt8.self), count: 3 * 4096)
        #expect(bytes[..<2048].allSatisfy { $0 == 0xa5 })
        #expect(bytes[2048..<(2048 + 8192)].allSatisfy { $0 == 0 })
        #expect(bytes[(2048 + 8192)...].allSatisfy { $0 == 0xa5 })
    }
}
