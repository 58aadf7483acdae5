// Reads a recording (tools/dmaemu-record's file) or any `trace`/`trace_pipe` text saved
// from a 6.12+ kernel into a Recording. Lines of other events are counted and left out;
// a dma, swiotlb or dmapool line that cannot be read is an error naming its line, or,
// with skipBad, counted and left out. Each CPU's lines must go forward in time (its ring
// buffer wrote them in order); lines of different CPUs that trace_pipe handed out late
// are put back in time order.
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif
import Trace

public struct RecordingParser {
    public var skipBad: Bool

    public init(skipBad: Bool = false) { self.skipBad = skipBad }

    /// The recording in `bytes`.
    public func parse(_ bytes: UnsafeBufferPointer<UInt8>) throws(RecordingError) -> Recording {
        var state = ParseState()
        // About 130 bytes a line: the operations' array grows once or twice, not twenty times.
        state.recording.ops.reserveCapacity(bytes.count / 128)
        var start = 0
        var number = 0
        guard let base = bytes.baseAddress else { return state.recording }
        while start < bytes.count {
            let newline = memchr(base + start, Int32(UInt8(ascii: "\n")), bytes.count - start)
            let end = newline.map { UnsafeRawPointer($0) - UnsafeRawPointer(base) } ?? bytes.count
            number += 1
            var lineEnd = end
            if lineEnd > start && bytes[lineEnd - 1] == UInt8(ascii: "\r") { lineEnd -= 1 }
            let line = UnsafeBufferPointer(rebasing: bytes[start..<lineEnd])
            do throws(RecordingError) {
                try state.read(line, number: number)
            } catch {
                let cut = end == bytes.count
                let failure = cut ? RecordingError(line: number, "\(error.reason) (the recording ends inside this line)") : error
                guard skipBad else { throw failure }
                state.recording.skippedLines += 1
                if state.recording.firstSkipped == nil { state.recording.firstSkipped = failure }
            }
            start = end + 1
        }
        state.recording.lines = number
        state.finish()
        return state.recording
    }

    /// The recording in the file at `path`.
    /// The recording in the file at `path`; a file that cannot be read throws its Errno.
    public func parse(contentsOf path: String) throws -> Recording {
        let fd = try FileDescriptor.open(FilePath(path), .readOnly)
        defer { try? fd.close() }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = try chunk.withUnsafeMutableBytes { try fd.read(into: $0) }
            if count == 0 { break }
            bytes += chunk[..<count]
        }
        return try bytes.withUnsafeBufferPointer { buffer in try parse(buffer) }
    }
}

struct ParseState {
    var recording = Recording()
    private var deviceIndex: [String: Int] = [:]
    /// Live pools by the address their events print.
    private var poolsByAddress: [UInt64: Int] = [:]
    private var lastTime: [UInt64] = []
    private var latest: UInt64 = 0
    private var outOfOrder = false
    /// Each task's latest dma_alloc, and the pages found to be dma pools'.
    private var lastAlloc: [Int32: Int] = [:]
    private var poolPages: Set<MapKey> = []
    /// The token arrays every line borrows.
    private var spare: (keys: [Span], values: [Span]) = ([], [])
    /// The last device named, by its bytes: most lines name the one before them.
    private var lastDevice: (name: [UInt8], index: Int) = ([], 0)
    private var lastTask: Int32 = -1

    init() {
        spare.keys.reserveCapacity(16)
        spare.values.reserveCapacity(16)
    }

    mutating func read(_ bytes: UnsafeBufferPointer<UInt8>, number: Int) throws(RecordingError) {
        guard !bytes.isEmpty else { return }
        if bytes[0] == UInt8(ascii: "#") {
            readHeader(String(decoding: bytes, as: UTF8.self))
            return
        }
        if bytes.starts(with: "CPU:".utf8) {
            // trace_pipe's "CPU:%d [LOST %lu EVENTS]".
            let text = String(decoding: bytes, as: UTF8.self)
            let parts = text.split(separator: " ")
            if parts.count >= 3, let cpu = Int(parts[0].dropFirst(4)), let lost = Int(parts[2]) {
                recording.lost[cpu, default: 0] += lost
                return
            }
        }
        if bytes.allSatisfy({ $0 == TraceLine.space || $0 == UInt8(ascii: "\t") }) { return }
        var line = TraceLine(bytes, spare: &spare)
        defer { line.giveBack(&spare) }
        if let reason = line.readContext() { throw RecordingError(line: number, reason) }
        guard let kind = Self.kind(of: line) else {
            recording.notReplayed[line.string(line.event), default: 0] += 1
            return
        }
        line.tokenize()
        guard var op = try Self.op(kind, &line, &recording.arena, number: number) else {
            recording.notReplayed[line.string(line.event), default: 0] += 1
            return
        }
        // Each CPU's ring is in time order: going back on one CPU means the lines were moved.
        if line.cpu >= lastTime.count { lastTime += [UInt64](repeating: 0, count: line.cpu + 1 - lastTime.count) }
        guard line.nanoseconds >= lastTime[line.cpu] else {
            throw RecordingError(line: number, "out of order: CPU \(line.cpu) goes back in time (\(seconds(line.nanoseconds)) after \(seconds(lastTime[line.cpu])))")
        }
        lastTime[line.cpu] = line.nanoseconds
        if line.nanoseconds < latest { outOfOrder = true }
        latest = max(latest, line.nanoseconds)
        op.device = UInt16(truncatingIfNeeded: try device(line, number: number, kind: kind))
        op.cpu = UInt16(line.cpu)
        op.pid = line.pid
        op.line = Int32(truncatingIfNeeded: number)
        op.nanoseconds = line.nanoseconds
        op.flags = line.flags
        try pools(&op, line, number: number)
        if line.pid != lastTask && recording.tasks[line.pid] == nil { recording.tasks[line.pid] = line.string(line.task) }
        lastTask = line.pid
        recording.cpusSeen = max(recording.cpusSeen, line.cpu + 1)
        if kind == .mapPage || kind == .bounced { recording.highestAddress = max(recording.highestAddress, kind == .bounced ? op.dma : op.address) }
        if line.equals(line.event, "dma_map_phys") || line.equals(line.event, "dma_unmap_phys") { recording.sawPhysEvents = true }
        if kind == .alloc && op.dma != 0 { lastAlloc[line.pid] = recording.ops.count }
        if kind == .poolAlloc, let index = lastAlloc.removeValue(forKey: line.pid) {
            let alloc = recording.ops[index]
            if alloc.device == op.device && op.dma >= alloc.dma && op.dma < alloc.dma &+ alloc.size {
                recording.ops[index].poolPage = true
                poolPages.insert(MapKey(device: alloc.device, address: alloc.dma))
            }
        }
        if kind == .free && poolPages.remove(MapKey(device: op.device, address: op.address)) != nil { op.poolPage = true }
        recording.ops.append(op)
    }

    mutating func finish() {
        // trace_pipe may hand out a CPU's older events after another's newer ones.
        if outOfOrder {
            let ordered = recording.ops.enumerated().sorted { a, b in
                a.element.nanoseconds != b.element.nanoseconds ? a.element.nanoseconds < b.element.nanoseconds : a.offset < b.offset
            }
            recording.reordered = ordered.enumerated().reduce(0) { $0 + ($1.offset != $1.element.offset ? 1 : 0) }
            recording.ops = ordered.map(\.element)
        }
    }

    private func seconds(_ ns: UInt64) -> String {
        let micros = ns / 1000
        let fraction = String(micros % 1_000_000)
        return "\(micros / 1_000_000)." + String(repeating: "0", count: 6 - fraction.count) + fraction
    }

    // MARK: - Events

    static func kind(of line: TraceLine) -> ReplayKind? {
        let event = line.event
        do {
            if line.equals(event, "dma_map_page") || line.equals(event, "dma_map_phys") { return .mapPage }
            if line.equals(event, "dma_unmap_page") || line.equals(event, "dma_unmap_phys") { return .unmapPage }
            if line.equals(event, "dma_map_resource") { return .mapResource }
            if line.equals(event, "dma_unmap_resource") { return .unmapResource }
            if line.equals(event, "dma_map_sg") { return .mapSG }
            if line.equals(event, "dma_unmap_sg") { return .unmapSG }
            if line.equals(event, "dma_sync_single_for_cpu") { return .syncSingleForCPU }
            if line.equals(event, "dma_sync_single_for_device") { return .syncSingleForDevice }
            if line.equals(event, "dma_sync_sg_for_cpu") { return .syncSGForCPU }
            if line.equals(event, "dma_sync_sg_for_device") { return .syncSGForDevice }
            if line.equals(event, "dma_alloc") || line.equals(event, "dma_alloc_pages") { return .alloc }
            if line.equals(event, "dma_free") || line.equals(event, "dma_free_pages") { return .free }
            if line.equals(event, "swiotlb_bounced") { return .bounced }
            if line.equals(event, "dma_pool_create") { return .poolCreate }
            if line.equals(event, "dma_pool_alloc") { return .poolAlloc }
            if line.equals(event, "dma_pool_free") { return .poolFree }
            if line.equals(event, "dma_pool_destroy") { return .poolDestroy }
            return nil
        }
    }

    /// The op of a line of `kind`; nil for a line with nothing to replay.
    static func op(_ kind: ReplayKind, _ line: inout TraceLine, _ arena: inout [UInt64], number: Int) throws(RecordingError)
        -> ReplayOp?
    {
        var op = ReplayOp(kind: kind)
        func fail(_ reason: String) -> RecordingError { RecordingError(line: number, "\(line.string(line.event)): \(reason)") }
        func field(_ key: StaticString) throws(RecordingError) -> Span {
            guard let span = line.value(key) else { throw fail("no \(key)=") }
            return span
        }
        func hex(_ key: StaticString) throws(RecordingError) -> UInt64 {
            let span = try field(key)
            guard let value = parseHex(line.slice(span)) ?? TraceSymbols.hexNumber(line.slice(span)) else {
                throw fail("\(key)=\(line.string(span)) is not a hex number")
            }
            return value
        }
        func decimal(_ key: StaticString) throws(RecordingError) -> UInt64 {
            let span = try field(key)
            guard let value = parseDecimal(line.slice(span)) else { throw fail("\(key)=\(line.string(span)) is not a number") }
            return value
        }
        func direction() throws(RecordingError) -> UInt8 {
            guard let span = line.value("dir") else { return 0 }  // dma_alloc/free before 6.13: always BIDIRECTIONAL
            guard let value = TraceSymbols.direction(line.slice(span)), value < 4 else { throw fail("dir=\(line.string(span)) is no direction") }
            return UInt8(value)
        }
        func attributes() throws(RecordingError) -> UInt64 {
            guard let span = line.value("attrs") else { return 0 }
            guard let value = TraceSymbols.attributes(line.slice(span)) else { throw fail("attrs=\(line.string(span)) names no DMA_ATTR_") }
            return value
        }
        /// "{0x..,0x..}" into the arena; its count.
        func array(_ key: StaticString) throws(RecordingError) -> Int32 {
            let span = try field(key)
            let bytes = line.slice(span)
            guard bytes.count >= 2, bytes.first == UInt8(ascii: "{"), bytes.last == UInt8(ascii: "}") else {
                throw fail("\(key)= is not an array")
            }
            var count: Int32 = 0
            var p = 1
            while p < bytes.count - 1 {
                var q = p
                while q < bytes.count - 1 && bytes[q] != UInt8(ascii: ",") { q += 1 }
                guard let value = TraceSymbols.hexNumber(UnsafeBufferPointer(rebasing: bytes[p..<q])) else {
                    throw fail("\(key)= holds a value that is not 0x and hex")
                }
                arena.append(value)
                count += 1
                p = q + 1
            }
            return count
        }
        func fraction(_ key: StaticString) throws(RecordingError) -> (shown: UInt64, full: UInt64) {
            let bytes = line.slice(try field(key))
            guard let slash = bytes.firstIndex(of: UInt8(ascii: "/")),
                let shown = parseDecimal(UnsafeBufferPointer(rebasing: bytes[..<slash])),
                let full = parseDecimal(UnsafeBufferPointer(rebasing: bytes[(slash + 1)...])), shown <= full
            else { throw fail("\(key)= is not <traced>/<all>") }
            return (shown, full)
        }

        switch kind {
        case .mapPage, .mapResource:
            op.direction = try direction()
            op.dma = try hex("dma_addr")
            op.size = try decimal("size")
            op.address = try hex("phys_addr")
            op.attributes = try attributes()
        case .unmapPage, .unmapResource:
            op.direction = try direction()
            op.address = try hex("dma_addr")
            op.size = try decimal("size")
            op.attributes = try attributes()
        case .syncSingleForCPU, .syncSingleForDevice:
            op.direction = try direction()
            op.address = try hex("dma_addr")
            op.size = try decimal("size")
        case .mapSG:
            op.direction = try direction()
            let nents = try fraction("nents"), ents = try fraction("ents")
            op.arrayStart = Int32(truncatingIfNeeded: arena.count)
            op.count = try array("phys_addrs")
            op.count2 = try array("dma_addrs")
            guard try array("sizes") == op.count2 else { throw fail("sizes= and dma_addrs= differ in length") }
            guard UInt64(op.count) == nents.shown, UInt64(op.count2) == ents.shown else { throw fail("the arrays do not hold nents/ents entries") }
            op.extra = nents.full
            op.attributes = try attributes()
        case .unmapSG:
            op.direction = try direction()
            op.arrayStart = Int32(truncatingIfNeeded: arena.count)
            op.count = try array("phys_addrs")
            op.attributes = try attributes()
        case .syncSGForCPU, .syncSGForDevice:
            op.direction = try direction()
            op.arrayStart = Int32(truncatingIfNeeded: arena.count)
            op.count = try array("dma_addrs")
            guard try array("sizes") == op.count else { throw fail("sizes= and dma_addrs= differ in length") }
        case .alloc:
            op.direction = try direction()
            op.dma = try hex("dma_addr")
            op.size = try decimal("size")
            guard let flags = line.value("flags"), let gfp = TraceSymbols.gfp(line.slice(flags)) else { throw fail("flags= names no GFP flags") }
            op.extra = gfp
            op.attributes = try attributes()
            // dma_alloc_sgt's failure carries no device address and nothing to free.
        case .free:
            op.direction = try direction()
            op.address = try hex("dma_addr")
            op.size = try decimal("size")
            op.attributes = try attributes()
        case .bounced:
            op.address = try hex("dma_mask")
            op.dma = try hex("dev_addr")
            op.size = try decimal("size")
            op.extra = line.hasWord("FORCE") ? 1 : 0
        case .poolCreate:
            op.size = try decimal("size")
            op.attributes = try decimal("align")
            op.extra = try decimal("boundary")
        case .poolAlloc, .poolFree:
            op.address = try hex("vaddr")
            op.dma = try hex("dma")
        case .poolDestroy:
            break
        }
        if kind == .mapSG || kind == .unmapSG || kind == .syncSGForCPU || kind == .syncSGForDevice, op.count == 0 {
            throw fail("an empty scatterlist")
        }
        return op
    }

    /// The device a line names: its first word, or the one after "dev_name:" (swiotlb_bounced).
    private mutating func device(_ line: TraceLine, number: Int, kind: ReplayKind) throws(RecordingError) -> Int {
        var span = line.word(0)
        if let first = span, line.equals(first, "dev_name:") { span = line.word(1) }
        if span == nil, let dev = line.value("dev") { span = dev }  // a kprobe's dev="..."
        guard let span, !span.isEmpty else { throw RecordingError(line: number, "\(line.string(line.event)): no device") }
        if !recording.devices.isEmpty && lastDevice.name.elementsEqual(line.slice(span)) { return lastDevice.index }
        let index = try device(named: line.string(span), number: number)
        lastDevice = (Array(line.slice(span)), index)
        return index
    }

    private mutating func device(named name: String, number: Int) throws(RecordingError) -> Int {
        if let index = deviceIndex[name] { return index }
        guard recording.devices.count < Int(UInt16.max) else { throw RecordingError(line: number, "too many devices") }
        recording.devices.append(name)
        deviceIndex[name] = recording.devices.count - 1
        return recording.devices.count - 1
    }

    /// A dmapool line's pool: made at create, found by its address (or, without one, by
    /// device and name) afterwards, forgotten at destroy.
    private mutating func pools(_ op: inout ReplayOp, _ line: TraceLine, number: Int) throws(RecordingError) {
        guard op.kind == .poolCreate || op.kind == .poolAlloc || op.kind == .poolFree || op.kind == .poolDestroy else { return }
        let event = line.string(line.event)
        guard let nameSpan = line.value("name") else { throw RecordingError(line: number, "\(event): no name=") }
        let name = line.string(nameSpan)
        var address: UInt64?
        if let span = line.value("pool") {
            guard let value = parseHex(line.slice(span)) ?? TraceSymbols.hexNumber(line.slice(span)) else {
                throw RecordingError(line: number, "\(event): pool= is not an address")
            }
            address = value
        }
        let device = Int(op.device)
        if op.kind == .poolCreate {
            recording.pools.append(RecordedPool(
                device: device, name: name, size: Int(op.size), align: Int(op.attributes), boundary: Int(op.extra), line: number))
            op.pool = Int32(recording.pools.count - 1)
            poolsByAddress[address ?? Self.nameKey(device, name)] = recording.pools.count - 1
            return
        }
        let key = address ?? Self.nameKey(device, name)
        if poolsByAddress[key] == nil {
            // Made before the recording began: the header's `pools` line, if any, gives its size.
            let seen = recording.header.pools[recording.devices[device]]?.first { $0.name == name }
            recording.pools.append(RecordedPool(
                device: device, name: name, size: seen?.size ?? 0, align: 0, boundary: 0, line: 0, heldAtStart: seen?.active ?? 0))
            poolsByAddress[key] = recording.pools.count - 1
        }
        let index = poolsByAddress[key]!
        op.pool = Int32(index)
        if op.kind == .poolDestroy { poolsByAddress[key] = nil }
    }

    /// Stands in for a pool's address where the lines give none.
    private static func nameKey(_ device: Int, _ name: String) -> UInt64 {
        var hasher = Hasher()
        hasher.combine(device)
        hasher.combine(name)
        return UInt64(bitPattern: Int64(hasher.finalize())) | 1 << 63
    }

    // MARK: - The header

    private mutating func readHeader(_ text: String) {
        if let p = text.range(of: "#P:") {
            recording.headerCPUs = Int(text[p.upperBound...].prefix { $0.isNumber })
            return
        }
        guard text.hasPrefix("# "), let colon = text.firstIndex(of: ":") else { return }
        let key = text[text.index(text.startIndex, offsetBy: 2)..<colon]
        let value = String(text[text.index(after: colon)...].drop { $0 == " " })
        var header = recording.header
        switch key {
        case "kernel": header.release = value
        case "machine": header.machine = value
        case "cpus": header.cpus = Int(value)
        case "memtotal_kb": header.memoryBytes = UInt64(value).map { $0 * 1024 }
        case "cmdline": header.commandLine = value
        case "command": header.command = value
        case "config":
            if value.hasPrefix("CONFIG_SWIOTLB_DYNAMIC=") { header.dynamic = value.hasSuffix("=y") }
            if value == "# CONFIG_SWIOTLB_DYNAMIC is not set" || value.hasSuffix("CONFIG_SWIOTLB_DYNAMIC is not set") { header.dynamic = false }
        case "boot":
            header.bootLines.append(value)
            BootLine.read(value, into: &header)
        case "device":
            let words = value.split(separator: " ")
            guard let name = words.first else { break }
            var device = RecordedDevice()
            for word in words.dropFirst() {
                let pair = word.split(separator: "=", maxSplits: 1)
                guard pair.count == 2 else { continue }
                switch pair[0] {
                case "driver": device.driver = String(pair[1])
                case "dma_mask_bits": device.maskBits = Int(pair[1]).flatMap { (1...64).contains($0) ? $0 : nil }
                case "coherent_dma_mask_bits", "consistent_dma_mask_bits":
                    device.coherentMaskBits = Int(pair[1]).flatMap { (1...64).contains($0) ? $0 : nil }
                default: break
                }
            }
            header.devices[String(name)] = device
        case "pool":
            // "<device> <poolinfo line>": the name may hold spaces; the four numbers end it.
            let words = value.split(separator: " ")
            guard words.count >= 6, let active = Int(words[words.count - 4]), let size = Int(words[words.count - 2]) else { break }
            let name = words[1..<(words.count - 4)].joined(separator: " ")
            header.pools[String(words[0]), default: []].append((name, active, size))
        case "debugfs":
            let words = value.split(separator: " ")
            if words.count == 2, let number = Int(words[1]) { header.debugfs[String(words[0])] = number }
        default: break
        }
        recording.header = header
    }
}

/// The swiotlb boot lines of a dmesg: "software IO TLB: mapped [mem 0x..-0x..] (64MB)"
/// and "software IO TLB: area num 8.", with or without dmesg's timestamp.
enum BootLine {
    static func read(_ line: String, into header: inout RecordingHeader) {
        if let mapped = line.range(of: "software IO TLB: mapped [mem 0x") {
            let rest = line[mapped.upperBound...]
            let parts = rest.split(separator: "-", maxSplits: 1)
            guard parts.count == 2, let start = UInt64(parts[0], radix: 16), parts[1].hasPrefix("0x") else { return }
            guard let end = UInt64(parts[1].dropFirst(2).prefix { $0.isHexDigit }, radix: 16), end > start else { return }
            // The line's own "(<N>MB)" must agree, as swiotlb_print_info() prints both from one size.
            guard let open = line.range(of: "] ("), let mb = Int(line[open.upperBound...].prefix { $0.isNumber }),
                UInt64(mb) == (end - start) >> 20
            else { return }
            header.swiotlbStart = start
            header.swiotlbBytes = Int(end - start)
        } else if let areas = line.range(of: "software IO TLB: area num ") {
            // The kernel never prints fewer than one (swiotlb_adjust_nareas()).
            header.swiotlbAreas = Int(line[areas.upperBound...].prefix { $0.isNumber }).flatMap { $0 >= 1 && $0 <= 1 << 16 ? $0 : nil }
        }
    }
}
