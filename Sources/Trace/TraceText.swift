// The text of `trace` and `trace_pipe`, made at read time from the binary records: the
// header of the nop tracer (print_func_help_header_irq()), and each line as
// trace_print_context() and the event's TP_printk make it:
//   "%16s-%-7d [%03d] %5s %5lu.%06lu: <event>: <fields>"
// with the fields exactly as include/trace/events/dma.h and swiotlb.h print them in the
// kernel the machine emulates (Tracer.kernel).
import Lib

/// What a record's payload holds, word by word, after the device's name (see Tracer.record).
enum TracePayload {
    /// dma_map_page, dma_map_resource: phys, dma, size, dir, attrs.
    static let map = 5
    /// dma_unmap_page, dma_unmap_resource: dma, size, dir, attrs.
    static let unmap = 4
    /// dma_alloc: virt, dma, size, dir, gfp, attrs. dma_free: virt, dma, size, dir, attrs.
    static let alloc = 6, free = 5
    /// dma_sync_single_*: dma, size, dir.
    static let syncSingle = 3
    /// swiotlb_bounced: dma_mask, dev_addr, size, force.
    static let bounced = 4
}

extension Tracer {
    /// `trace`'s header, with the counts now.
    public func header() -> String {
        let (inBuffer, written) = counts
        let space = "  "
        return """
            # tracer: nop
            #
            # entries-in-buffer/entries-written: \(inBuffer)/\(written)   #P:\(cpus)
            #
            #                            \(space)  _-----=> irqs-off/BH-disabled
            #                            \(space) / _----=> need-resched
            #                            \(space)| / _---=> hardirq/softirq
            #                            \(space)|| / _--=> preempt-depth
            #                            \(space)||| / _-=> migrate-disable
            #                            \(space)|||| /     delay
            #           TASK-PID  \(space) CPU#  |||||  TIMESTAMP  FUNCTION
            #              | |    \(space)   |   |||||     |         |

            """
    }

    /// The lines of `entries`, each with its newline.
    public func text(_ entries: [Entry]) -> String {
        var out = ""
        for entry in entries { out += line(entry) + "\n" }
        return out
    }

    /// One line of `trace`.
    public func line(_ entry: Entry) -> String {
        guard let event = entry.event, let name = event.name(in: kernel) else { return "" }
        let micros = entry.nanoseconds / 1000
        var line = pad(Tracer.commands.name(entry.pid), 16) + "-"
        let pid = String(entry.pid)
        line += pid + String(repeating: " ", count: max(0, 7 - pid.count)) + " [" + zeros(entry.cpu, 3) + "] "
        line += Self.flagsText(entry.words[2]) + " " + pad(String(micros / 1_000_000), 5) + "." + zeros(Int(micros % 1_000_000), 6)
        return line + ": " + name + ": " + fields(event, entry.words)
    }

    /// The 5 context characters, as trace_print_lat_fmt() prints them; 0 is ".....".
    static func flagsText(_ word: UInt64) -> String {
        guard word != 0 else { return "....." }
        return String(decoding: (0..<5).map { UInt8(truncatingIfNeeded: word >> (8 * $0)) }, as: UTF8.self)
    }

    /// The packed form of a 5-character context ("d..1.").
    public static func flagsWord(_ text: Substring) -> UInt64 {
        text.utf8.prefix(5).enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    }

    /// The event's fields (TP_printk) from the record's words.
    func fields(_ event: TraceEvent, _ words: [UInt64]) -> String {
        var reader = WordReader(words: words, index: 3)
        let device = reader.name()
        switch event {
        case .dmaMapPage, .dmaMapResource:
            let (phys, dma, size, dir, attrs) = (reader.next(), reader.next(), reader.next(), reader.next(), reader.next())
            return "\(device) dir=\(Self.direction(dir)) dma_addr=\(hex(dma)) size=\(size) phys_addr=\(hex(phys)) attrs=\(attributes(attrs))"
        case .dmaUnmapPage, .dmaUnmapResource:
            let (dma, size, dir, attrs) = (reader.next(), reader.next(), reader.next(), reader.next())
            return "\(device) dir=\(Self.direction(dir)) dma_addr=\(hex(dma)) size=\(size) attrs=\(attributes(attrs))"
        case .dmaAlloc:
            let (virt, dma, size, dir, gfp, attrs) = (reader.next(), reader.next(), reader.next(), reader.next(), reader.next(), reader.next())
            let address = kernel >= .v6_18 && virt == 0 ? 0 : dma
            return "\(device) dir=\(Self.direction(dir)) dma_addr=\(hex(address)) size=\(size) virt_addr=\(pointer(virt)) "
                + "flags=\(gfp == 0 ? "none" : printFlags(gfp, GFPNames.names)) attrs=\(attributes(attrs))"
        case .dmaFree:
            let (virt, dma, size, dir, attrs) = (reader.next(), reader.next(), reader.next(), reader.next(), reader.next())
            return "\(device) dir=\(Self.direction(dir)) dma_addr=\(hex(dma)) size=\(size) virt_addr=\(pointer(virt)) attrs=\(attributes(attrs))"
        case .dmaSyncSingleForCPU, .dmaSyncSingleForDevice:
            let (dma, size, dir) = (reader.next(), reader.next(), reader.next())
            return "\(device) dir=\(Self.direction(dir)) dma_addr=\(hex(dma)) size=\(size)"
        case .dmaMapSG:
            let (dir, attrs, nents, ents) = (reader.next(), reader.next(), Int(reader.next()), Int(reader.next()))
            let tracedNents = min(nents, dmaTraceMaxEntries), tracedEnts = min(ents, dmaTraceMaxEntries)
            let phys = reader.array(tracedNents), dma = reader.array(tracedEnts), lengths = reader.array(tracedEnts)
            let truncated = nents > dmaTraceMaxEntries || ents > dmaTraceMaxEntries ? " [TRUNCATED]" : ""
            return "\(device) dir=\(Self.direction(dir)) nents=\(tracedNents)/\(nents) ents=\(tracedEnts)/\(ents)\(truncated) "
                + "dma_addrs=\(Self.array(dma)) sizes=\(Self.array(lengths)) phys_addrs=\(Self.array(phys)) attrs=\(attributes(attrs))"
        case .dmaUnmapSG:
            let (dir, attrs, nents) = (reader.next(), reader.next(), Int(reader.next()))
            return "\(device) dir=\(Self.direction(dir)) phys_addrs=\(Self.array(reader.array(nents))) attrs=\(attributes(attrs))"
        case .dmaSyncSGForCPU, .dmaSyncSGForDevice:
            let (dir, nents) = (reader.next(), Int(reader.next()))
            let dma = reader.array(nents), lengths = reader.array(nents)
            return "\(device) dir=\(Self.direction(dir)) dma_addrs=\(Self.array(dma)) sizes=\(Self.array(lengths))"
        case .swiotlbBounced:
            let (mask, address, size, force) = (reader.next(), reader.next(), reader.next(), reader.next())
            return "dev_name: \(device) dma_mask=\(hex(mask)) dev_addr=\(hex(address)) size=\(size) \(force != 0 ? "FORCE" : "NORMAL")"
        case .dmaPoolCreate:
            let (size, align, boundary, pool) = (reader.next(), reader.next(), reader.next(), reader.next())
            return "\(device) name=\"\(reader.name())\" pool=\(pointer(pool)) size=\(size) align=\(align) boundary=\(boundary)"
        case .dmaPoolAlloc, .dmaPoolFree:
            let (vaddr, dma, pool) = (reader.next(), reader.next(), reader.next())
            return "\(device) name=\"\(reader.name())\" pool=\(pointer(pool)) vaddr=\(pointer(vaddr)) dma=\(hex(dma))"
        case .dmaPoolDestroy:
            let pool = reader.next()
            return "\(device) name=\"\(reader.name())\" pool=\(pointer(pool))"
        }
    }

    /// decode_dma_data_direction().
    static func direction(_ value: UInt64) -> String {
        value < 4 ? TraceSymbols.directions[Int(value)] : "0x" + String(value, radix: 16)
    }

    /// decode_dma_attrs(): __print_flags with "|", the bits left over in hex.
    func attributes(_ value: UInt64) -> String { printFlags(value, TraceSymbols.attributes(kernel)) }

    /// %p: the pointer itself (hash-ptr off), or as ptr_to_id() hashes it: 32 bits of a
    /// keyed hash chosen at start, zero-padded to 16 digits; NULL and error pointers raw.
    func pointer(_ value: UInt64) -> String {
        guard hashPointers, value != 0, value < UInt64.max - 4095 else { return zerosHex(value, 16) }
        var hasher = Hasher()
        hasher.combine(value)
        return zerosHex(UInt64(UInt32(truncatingIfNeeded: hasher.finalize())), 16)
    }

    /// __print_array(): "{0x..,0x..}".
    static func array(_ values: [UInt64]) -> String { "{" + values.map { "0x" + String($0, radix: 16) }.joined(separator: ",") + "}" }
}

/// __print_flags(): the names of the set masks in table order, joined by "|", then what is
/// left in hex; empty for 0.
func printFlags(_ value: UInt64, _ names: [(UInt64, String)]) -> String {
    var left = value
    var parts: [String] = []
    for (mask, name) in names where left != 0 && left & mask == mask {
        parts.append(name)
        left &= ~mask
    }
    if left != 0 { parts.append("0x" + String(left, radix: 16)) }
    return parts.joined(separator: "|")
}

/// Reads a record's words in order.
struct WordReader {
    let words: [UInt64]
    var index: Int

    mutating func next() -> UInt64 {
        defer { index += 1 }
        return index < words.count ? words[index] : 0
    }

    mutating func array(_ count: Int) -> [UInt64] { (0..<count).map { _ in next() } }

    mutating func name() -> String {
        guard index < words.count else { return "" }
        let (text, used) = words.withUnsafeBufferPointer { TraceName.read($0, at: index) }
        index += used
        return text
    }
}

/// `value` in lower-case hex, as %llx.
@inline(__always) func hex(_ value: UInt64) -> String { String(value, radix: 16) }

func zerosHex(_ value: UInt64, _ width: Int) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: max(0, width - digits.count)) + digits
}

func zeros(_ value: Int, _ width: Int) -> String {
    let digits = String(value)
    return String(repeating: "0", count: max(0, width - digits.count)) + digits
}

/// Right-aligned in `width`, as %<width>s.
func pad(_ text: String, _ width: Int) -> String { String(repeating: " ", count: max(0, width - text.count)) + text }
