import ControlFS
import ControlSurface
import SystemPackage
import Testing

@Suite struct MapBenchmarkFileTests {
    let file = "kernel/debug/dma_map_benchmark"

    @Test func aWriteRunsTheBenchmarkAndAReadShowsTheToolsLines() throws {
        let machine = try smallMachine(ram: 5 << 30)
        #expect(try machine.read(file) == "no run yet\n")
        // The buffers come from above 4 GiB: with 32 bits they bounce through the swiotlb at 16 MiB.
        try machine.write(file, "threads=2 seconds=1 bits=32 dir=1 granule=1")
        let lines = try machine.read(file).split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines[0] == "dma mapping benchmark: threads:2 seconds:1 node:-1 dir:TO_DEVICE granule: 1")
        #expect(lines[1].wholeMatch(of: /average map latency\(us\):\d+\.\d standard deviation:\d+\.\d/) != nil)
        #expect(lines[2].wholeMatch(of: /average unmap latency\(us\):\d+\.\d standard deviation:\d+\.\d/) != nil)
        #expect(machine.swiotlb!.usedHiwater > 0)
        // 24 bits is what dma_direct_supported() still takes (ZONE_DMA), but the bounce
        // buffer at 16 MiB is out of its reach: the map fails, as in the kernel.
        #expect(throws: Errno.noMemory) { try machine.write(file, "seconds=1 bits=24") }
        #expect(try machine.read("kmsg").contains("dma_map_benchmark: dma_map_single failed on dma_map_benchmark"))
        // Narrower than ZONE_DMA: dma_set_mask() refuses it.
        #expect(throws: Errno.invalidArgument) { try machine.write(file, "seconds=1 bits=23") }
        #expect(try machine.read("kmsg").contains("dma_map_benchmark: failed to set dma_mask on device dma_map_benchmark"))
        for bad in ["threads=0", "seconds=301", "dir=3", "granule=1025", "delay=10000001", "node=1", "mode=2", "speed=1", "t"] {
            #expect(throws: Errno.invalidArgument) { try machine.write(file, bad) }
        }
    }

    /// struct map_benchmark as the selftest fills it: zeroes, then its inputs at the
    /// header's offsets (threads 32, seconds 36, node 40, dma_bits 44, dma_dir 48,
    /// dma_trans_ns 52, granule 56, and the late-2025 map_mode byte at 60).
    func argument(size: Int, threads: UInt32 = 1, seconds: UInt32 = 1, node: Int32 = -1, bits: UInt32 = 32,
                  dir: UInt32 = 0, delay: UInt32 = 0, granule: UInt32 = 1, mode: UInt8 = 0) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: size)
        func put(_ value: UInt32, _ offset: Int) {
            for i in 0..<4 { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
        }
        put(threads, 32); put(seconds, 36); put(UInt32(bitPattern: node), 40); put(bits, 44)
        put(dir, 48); put(delay, 52); put(granule, 56)
        if size > 60 { bytes[60] = mode }
        return bytes
    }

    func ioctl(_ machine: TestMachine, _ command: UInt32, _ bytes: inout [UInt8]) throws(Errno) -> Int32 {
        let attribute = machine.root.node(at: file) as! ControlAttribute
        return try control(attribute, command, &bytes)
    }

    func control(_ attribute: ControlAttribute, _ command: UInt32, _ bytes: inout [UInt8]) throws(Errno) -> Int32 {
        let result = bytes.withUnsafeMutableBytes { buffer in
            Result { () throws(Errno) in try attribute.control(command, buffer) }
        }
        return try result.get()
    }

    func word64(_ bytes: [UInt8], _ offset: Int) -> UInt64 {
        (0..<8).reduce(0) { $0 | UInt64(bytes[offset + $1]) << (8 * $1) }
    }

    @Test(arguments: [(MapBenchmarkFile.command136, 136), (MapBenchmarkFile.command64, 64)])
    func theIoctlFillsTheFiguresAndGivesTheRestBack(command: UInt32, size: Int) throws {
        let machine = try smallMachine(ram: 5 << 30)
        var bytes = argument(size: size, threads: 2, bits: 32, dir: 2, granule: 4)
        let sent = bytes
        #expect(try ioctl(machine, command, &bytes) == 0)
        // The figures are in 100 ns units (a map and an unmap of 4 bounced pages take
        // more than one); everything after the four figures comes back as it went.
        #expect(Array(bytes[32...]) == Array(sent[32...]))
        #expect(word64(bytes, 0) > 0 && word64(bytes, 16) > 0)
        let lines = try machine.read(file).split(separator: "\n")
        #expect(lines[0] == "dma mapping benchmark: threads:2 seconds:1 node:-1 dir:FROM_DEVICE granule: 4")
        // The read's figures are the struct's, as the tool prints them (value / 10.0, "%.1f").
        let avg = word64(bytes, 0)
        #expect(lines[1].hasPrefix("average map latency(us):\(avg / 10).\(avg % 10) standard deviation:"))
    }

    @Test func scatterGatherModeMapsGranuleEntriesOfAPage() throws {
        let machine = try smallMachine(ram: 5 << 30)
        var bytes = argument(size: 136, bits: 32, dir: 1, granule: 8, mode: 1)
        #expect(try ioctl(machine, MapBenchmarkFile.command136, &bytes) == 0)
        // Eight single-page entries bounce one slot pair each: 8 pages, 16 slots in use at once.
        #expect(machine.swiotlb!.usedHiwater == 16)
        // The 64-byte layout has no map_mode: byte 60 is padding and is not read.
        var old = argument(size: 64, bits: 32, granule: 1)
        old[60] = 7
        #expect(try ioctl(machine, MapBenchmarkFile.command64, &old) == 0)
    }

    @Test func badStructsGetTheKernelsErrnoAndMessage() throws {
        let machine = try smallMachine(ram: 5 << 30)
        let cases: [(String, [UInt8])] = [
            ("invalid map mode", argument(size: 136, mode: 2)),
            ("invalid thread number", argument(size: 136, threads: 0)),
            ("invalid thread number", argument(size: 136, threads: 1025)),
            ("invalid duration seconds", argument(size: 136, seconds: 0)),
            ("invalid duration seconds", argument(size: 136, seconds: 301)),
            ("invalid transmission delay", argument(size: 136, delay: 10_000_001)),
            ("invalid numa node", argument(size: 136, node: 1)),
            ("invalid numa node", argument(size: 136, node: -2)),
            ("invalid granule size", argument(size: 136, granule: 0)),
            ("invalid granule size", argument(size: 64, granule: 1025)),
            ("invalid DMA direction", argument(size: 136, dir: 3)),
            ("failed to set dma_mask on device dma_map_benchmark", argument(size: 136, bits: 0)),
        ]
        for (message, bytes) in cases {
            var bytes = bytes
            let sent = bytes
            #expect(throws: Errno.invalidArgument) { try ioctl(machine, bytes.count == 64 ? MapBenchmarkFile.command64 : MapBenchmarkFile.command136, &bytes) }
            #expect(bytes == sent)
            #expect(try machine.read("kmsg").hasSuffix("dma_map_benchmark: \(message)\n"))
        }
        #expect(try machine.read(file) == "no run yet\n")
        // Another command, or the right one with the other layout's size: the kernel's
        // `default: return -EINVAL`. Another file has no ioctl at all: ENOTTY.
        var bytes = argument(size: 136)
        #expect(throws: Errno.invalidArgument) { try ioctl(machine, 0xC088_6402, &bytes) }
        var short = argument(size: 64)
        #expect(throws: Errno.invalidArgument) { try ioctl(machine, MapBenchmarkFile.command136, &short) }
        let other = machine.root.node(at: "kernel/buddyinfo") as! ControlAttribute
        #expect(throws: Errno.inappropriateIOCTLForDevice) {
            try control(other, MapBenchmarkFile.command136, &bytes)
        }
    }
}
