// kernel/tracing/: tracefs as its users know it. `trace` shows the buffers (the nop
// tracer's header, then the events oldest first) and is cleared by a write or a
// truncation; `trace_pipe` hands out the events and consumes them, waiting for more;
// tracing_on stops recording without changing which events are enabled; buffer_size_kb
// is per CPU; events/enable, events/<system>/enable and each event's enable switch
// events on and off (reading "X" where they are mixed), and each event has its format;
// options/hash-ptr hashes %p as the kernel does by default (dmaemu starts with it off).
import ControlFS
import Lib
import Locking
import SystemPackage
import Trace

enum TracingFiles {
    static func add(_ tracer: Tracer, to directory: ControlDirectory) {
        directory.add("tracing_on", ControlAttribute(
            show: { tracer.tracingOn ? "1\n" : "0\n" },
            store: { text throws(Errno) in tracer.tracingOn = try bit(text) }))
        directory.add("trace", ControlAttribute(
            show: { tracer.header() + tracer.text(tracer.entries()) },
            store: { _ in tracer.clear() },
            truncate: { tracer.clear() }))
        directory.add("trace_pipe", pipe(tracer))
        directory.add("buffer_size_kb", ControlAttribute(
            show: {
                // Before first use the kernel keeps minimal buffers and says what they grow to.
                let kilobytes = tracer.kilobytesPerCPU
                return tracer.events.contains(where: tracer.isChosen) || tracer.counts.written > 0
                    ? "\(kilobytes)\n" : "7 (expanded: \(kilobytes))\n"
            },
            store: { text throws(Errno) in
                let kilobytes = Int(try StoreParsing.number(text, max: 1 << 20))
                guard kilobytes > 0 else { throw .invalidArgument }
                tracer.kilobytesPerCPU = kilobytes
            }))
        directory.add("buffer_total_size_kb", ControlAttribute(show: { "\(tracer.kilobytesPerCPU * tracer.cpus)\n" }))
        directory.add("available_events", ControlAttribute(show: {
            tracer.events.map { "\($0.system):\($0.name(in: tracer.kernel)!)\n" }.joined()
        }))
        directory.directory("options").add("hash-ptr", ControlAttribute(
            show: { tracer.hashPointers ? "1\n" : "0\n" },
            store: { text throws(Errno) in tracer.hashPointers = try bit(text) }))
        let events = directory.directory("events")
        events.add("enable", enableFile(tracer, tracer.events))
        for system in ["dma", "swiotlb", "dmapool"] {
            let members = tracer.events.filter { $0.system == system }
            guard !members.isEmpty else { continue }
            let systemDirectory = events.directory(system)
            systemDirectory.add("enable", enableFile(tracer, members))
            for event in members {
                let eventDirectory = systemDirectory.directory(event.name(in: tracer.kernel)!)
                eventDirectory.add("enable", enableFile(tracer, [event]))
                let format = event.formatFile(in: tracer.kernel)
                eventDirectory.add("format", ControlAttribute(show: { format }))
                eventDirectory.add("id", ControlAttribute(show: { "\(event.id)\n" }))
            }
        }
    }

    /// "0" or "1".
    static func bit(_ text: String) throws(Errno) -> Bool {
        switch text {
        case "0": false
        case "1": true
        default: throw .invalidArgument
        }
    }

    /// An enable file of `events`: "1" all on, "0" all off, "X" mixed.
    static func enableFile(_ tracer: Tracer, _ events: [TraceEvent]) -> ControlAttribute {
        ControlAttribute(
            show: {
                let on = events.filter(tracer.isChosen).count
                return on == events.count ? "1\n" : on == 0 ? "0\n" : "X\n"
            },
            store: { text throws(Errno) in tracer.enable(events, try bit(text)) })
    }

    /// trace_pipe: what one read does not take waits for the next read.
    static func pipe(_ tracer: Tracer) -> ControlStream {
        let pending = PthreadMutex<[UInt8]>([])
        return ControlStream { buffer, nonBlocking, interrupted throws(Errno) in
            while true {
                let taken = pending.withLock { (pending) -> Int in
                    let n = min(buffer.count, pending.count)
                    if n > 0 {
                        buffer.copyBytes(from: pending[..<n])
                        pending.removeFirst(n)
                    }
                    return n
                }
                if taken > 0 { return taken }
                guard let entries = tracer.consume(nonBlocking: nonBlocking, stop: interrupted) else { throw .resourceTemporarilyUnavailable }
                if entries.isEmpty { throw .interrupted }
                let text = Array(tracer.text(entries).utf8)
                pending.withLock { $0 += text }
            }
        }
    }
}
