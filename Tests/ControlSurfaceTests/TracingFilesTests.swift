import ControlFS
import ControlSurface
import Lib
import SystemPackage
import Testing
import Trace

/// kernel/tracing/ of a small machine emulating 6.12, whose generic device makes
/// dmapool events when its pool files are written.
func tracingMachine() throws -> TestMachine { try smallMachine(tracer: Tracer(kernel: .v6_12, cpus: 2)) }

let tracing = "kernel/tracing"

@Suite struct TracingFilesTests {
    @Test func theTreeHasTheFilesTracefsUsersKnow() throws {
        let machine = try tracingMachine()
        let tree = try #require(machine.root.node(at: tracing) as? ControlDirectory)
        for name in ["tracing_on", "trace", "trace_pipe", "buffer_size_kb", "buffer_total_size_kb", "available_events", "events", "options"] {
            #expect(tree.node(at: name) != nil, "\(name)")
        }
        #expect(try machine.read("\(tracing)/tracing_on") == "1\n")
        #expect(try machine.read("\(tracing)/events/enable") == "0\n")
        // Minimal buffers until first use, as the kernel shows them (trace_buf_size 1441792).
        #expect(try machine.read("\(tracing)/buffer_size_kb") == "7 (expanded: 1410)\n")
        let available = try machine.read("\(tracing)/available_events").split(separator: "\n")
        #expect(available.count == 17 && available.first == "dma:dma_map_page" && available.contains("swiotlb:swiotlb_bounced")
            && available.last == "dmapool:dma_pool_destroy")
        #expect(try machine.read("\(tracing)/events/dma/dma_map_page/id") == "1200\n")
    }

    @Test func enableSwitchesAnEventASystemOrAll() throws {
        let machine = try tracingMachine()
        try machine.write("\(tracing)/events/dmapool/dma_pool_alloc/enable", "1")
        #expect(try machine.read("\(tracing)/events/dmapool/enable") == "X\n")
        #expect(try machine.read("\(tracing)/events/enable") == "X\n")
        #expect(try machine.read("\(tracing)/buffer_size_kb") == "1410\n")
        try machine.write("\(dev)/create_pool", "p 64")
        try machine.write("\(dev)/dma_pools/p/alloc", "2")
        #expect(try machine.read("\(tracing)/trace").split(separator: "\n").filter { !$0.hasPrefix("#") }.count == 2)
        try machine.write("\(tracing)/events/dmapool/enable", "1")
        #expect(try machine.read("\(tracing)/events/dmapool/dma_pool_free/enable") == "1\n")
        try machine.write("\(dev)/dma_pools/p/free", "all")
        let lines = try machine.read("\(tracing)/trace").split(separator: "\n").filter { !$0.hasPrefix("#") }
        #expect(lines.count == 4 && lines[3].contains(" dma_pool_free: 0000:00:04.0 name=\"p\" pool="))
        try machine.write("\(tracing)/events/enable", "0")
        #expect(try machine.read("\(tracing)/events/dmapool/enable") == "0\n")
        try machine.write("\(dev)/dma_pools/p/alloc", "1")
        #expect(try machine.read("\(tracing)/trace").split(separator: "\n").filter { !$0.hasPrefix("#") }.count == 4)
        #expect(throws: Errno.invalidArgument) { try machine.write("\(tracing)/events/enable", "2") }
    }

    @Test func tracingOffKeepsTheChoiceButRecordsNothing() throws {
        let machine = try tracingMachine()
        try machine.write("\(tracing)/events/enable", "1")
        try machine.write("\(tracing)/tracing_on", "0")
        try machine.write("\(dev)/create_pool", "p 64")
        #expect(try machine.read("\(tracing)/events/enable") == "1\n")
        #expect(try machine.read("\(tracing)/trace").contains("entries-in-buffer/entries-written: 0/0   #P:2"))
        try machine.write("\(tracing)/tracing_on", "1")
        try machine.write("\(dev)/destroy_pool", "p")
        #expect(try machine.read("\(tracing)/trace").contains("entries-in-buffer/entries-written: 1/1   #P:2"))
    }

    @Test func writingOrTruncatingTraceClearsIt() throws {
        let machine = try tracingMachine()
        try machine.write("\(tracing)/events/enable", "1")
        try machine.write("\(dev)/create_pool", "p 64")
        try machine.write("\(tracing)/trace", "")
        #expect(try machine.read("\(tracing)/trace").contains("entries-in-buffer/entries-written: 0/"))
        try machine.write("\(dev)/destroy_pool", "p")
        let trace = try #require(machine.root.node(at: "\(tracing)/trace") as? ControlAttribute)
        try trace.truncated()
        #expect(try machine.read("\(tracing)/trace").contains("entries-in-buffer/entries-written: 0/"))
    }

    @Test func tracePipeConsumesWhatItHandsOutAndWaitsForMore() throws {
        let machine = try tracingMachine()
        let pipe = try #require(machine.root.node(at: "\(tracing)/trace_pipe") as? ControlStream)
        var buffer = [UInt8](repeating: 0, count: 64)
        #expect(throws: Errno.resourceTemporarilyUnavailable) {
            try buffer.withUnsafeMutableBytes { buffer in _ = try pipe.read(buffer, true, { false }) }
        }
        try machine.write("\(tracing)/events/enable", "1")
        try machine.write("\(dev)/create_pool", "p 64")
        // A short read leaves the rest of the line for the next read; no header.
        var text: [UInt8] = []
        while !text.contains(UInt8(ascii: "\n")) {
            let n = try buffer.withUnsafeMutableBytes { buffer in try pipe.read(buffer, true, { false }) }
            #expect(n <= 64)
            text += buffer[..<n]
        }
        #expect(String(decoding: text, as: UTF8.self).contains(" dma_pool_create: 0000:00:04.0 name=\"p\" pool="))
        #expect(!String(decoding: text, as: UTF8.self).hasPrefix("#"))
        // What trace_pipe took is gone from trace.
        #expect(try machine.read("\(tracing)/trace").contains("entries-in-buffer/entries-written: 0/1"))
        // A blocking read that is interrupted gives EINTR.
        #expect(throws: Errno.interrupted) {
            try buffer.withUnsafeMutableBytes { buffer in _ = try pipe.read(buffer, false, { true }) }
        }
    }

    @Test func bufferSizeIsPerCPUAndTakesOnlyPositiveNumbers() throws {
        let machine = try tracingMachine()
        try machine.write("\(tracing)/buffer_size_kb", "64")
        try machine.write("\(tracing)/events/enable", "1")
        #expect(try machine.read("\(tracing)/buffer_size_kb") == "64\n")
        #expect(try machine.read("\(tracing)/buffer_total_size_kb") == "128\n")
        #expect(throws: Errno.invalidArgument) { try machine.write("\(tracing)/buffer_size_kb", "0") }
        #expect(throws: Errno.invalidArgument) { try machine.write("\(tracing)/buffer_size_kb", "lots") }
        #expect(try machine.read("\(tracing)/buffer_size_kb") == "64\n")
    }

    @Test func hashPtrHashesPointersConsistently() throws {
        let machine = try tracingMachine()
        try machine.write("\(tracing)/events/dmapool/enable", "1")
        try machine.write("\(dev)/create_pool", "p 64")
        try machine.write("\(dev)/dma_pools/p/alloc", "1")
        try machine.write("\(dev)/dma_pools/p/free", "all")
        let raw = try machine.read("\(tracing)/trace")
        #expect(try machine.read("\(tracing)/options/hash-ptr") == "0\n")
        try machine.write("\(tracing)/options/hash-ptr", "1")
        let hashed = try machine.read("\(tracing)/trace")
        func vaddrs(_ text: String) -> [Substring] {
            text.split(separator: " ").filter { $0.hasPrefix("vaddr=") }
        }
        #expect(vaddrs(raw).allSatisfy { $0.hasPrefix("vaddr=ffff8880") })
        // ptr_to_id(): 32 bits of hash, the same for the same pointer.
        #expect(vaddrs(hashed).count == 2 && vaddrs(hashed)[0] == vaddrs(hashed)[1] && vaddrs(hashed)[0].hasPrefix("vaddr=00000000"))
    }

    @Test func formatFilesLayTheRecordOutAsTheKernelDoes() throws {
        let machine = try tracingMachine()
        // struct trace_event_raw_dma_map: the common header (8 bytes), a __data_loc u32
        // for the name at 8, then the u64s aligned to 8 from 16, the enum (4) at 40 and
        // the unsigned long at 48 (include/trace/events/dma.h, TP_STRUCT__entry).
        let format = try machine.read("\(tracing)/events/dma/dma_map_page/format")
        #expect(format.hasPrefix("""
            name: dma_map_page
            ID: 1200
            format:
            \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
            \tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
            \tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
            \tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

            \tfield:__data_loc char[] device;\toffset:8;\tsize:4;\tsigned:0;
            \tfield:u64 phys_addr;\toffset:16;\tsize:8;\tsigned:0;
            \tfield:u64 dma_addr;\toffset:24;\tsize:8;\tsigned:0;
            \tfield:size_t size;\toffset:32;\tsize:8;\tsigned:0;
            \tfield:enum dma_data_direction dir;\toffset:40;\tsize:4;\tsigned:0;
            \tfield:unsigned long attrs;\toffset:48;\tsize:8;\tsigned:0;

            print fmt: "%s dir=%s dma_addr=%llx size=%zu phys_addr=%llx attrs=%s", __get_str(device),
            """))
        #expect(format.hasSuffix("# dmaemu: Linux 6.12's format\n"))
        #expect(try machine.read("\(tracing)/events/dmapool/dma_pool_alloc/format")
            .hasSuffix("# dmaemu: dmaemu's own event (the kernel has no dmapool tracepoints)\n"))
    }
}
