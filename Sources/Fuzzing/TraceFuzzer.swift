// The `trace` target: a recording's text, parsed as dmaemu-replay reads it (stopping at
// the first bad line, then skipping bad lines), and what parses replayed on a small
// machine. The oracle beyond "no crash": a parse that skips bad lines never fails, and a
// replay accounts for every operation it was given.
import Replay

enum TraceFuzzer {
    static func run(_ input: UnsafeRawBufferPointer) {
        let bytes = input.bindMemory(to: UInt8.self)
        _ = try? RecordingParser().parse(bytes)
        let recording: Recording
        do {
            recording = try RecordingParser(skipBad: true).parse(bytes)
        } catch {
            fatalError("--skip-bad refused a recording: \(error)")
        }
        // Big addresses and many devices are the machine's size, not the parser's paths.
        guard recording.highestAddress < 1 << 30, recording.devices.count <= 8, recording.ops.count <= 4096 else { return }
        var options = ReplayOptions()
        options.ramBytes = 1 << 30
        options.swiotlbBytes = 1 << 20
        options.cpus = min(max(recording.cpusSeen, 1), 4)
        let setup = ReplaySetup(recording: recording, options: options, base: nil)
        // A header may name RAM far past the lines' addresses (a boot line's pool): not this target's subject.
        guard setup.cpus <= 4, setup.ramBytes <= 1 << 30, let replayer = try? Replayer(recording, setup: setup) else { return }
        let result = replayer.run()
        precondition(result.operations.values.reduce(0, +) == recording.ops.count, "an operation went uncounted")
    }
}
