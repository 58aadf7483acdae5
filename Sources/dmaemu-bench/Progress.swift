// A progress bar on stderr, drawn only when stderr is a terminal: the subcommand running,
// its step, and an ETA from the time spent so far. `all` plans the subcommands with a
// weight each (their expected share of the run); a lone subcommand is a plan of one.
import Foundation
import Locking

final class Progress: Sendable {
    static let shared = Progress()

    private struct State {
        var plan: [(name: String, weight: Double)] = []
        var current = -1
        var fraction = 0.0
        var start = ContinuousClock.now
        var lastDraw: ContinuousClock.Instant?
    }
    private let state = PthreadMutex(State())
    private let enabled = isatty(STDERR_FILENO) == 1

    /// The subcommands about to run, each with its expected seconds.
    func plan(_ plan: [(name: String, weight: Double)]) {
        state.withLock {
            $0 = State()
            $0.plan = plan
        }
    }

    /// The next subcommand starts; unplanned, it is a plan of its own.
    func begin(_ name: String) {
        state.withLock {
            if let index = $0.plan.firstIndex(where: { $0.name == name }), index > $0.current {
                $0.current = index
            } else {
                $0 = State()
                $0.plan = [(name, 1)]
                $0.current = 0
            }
            $0.fraction = 0
        }
        draw(force: true)
    }

    /// `done` of `total` steps of the current subcommand are finished.
    func step(_ done: Int, of total: Int) {
        state.withLock { $0.fraction = total > 0 ? min(1, Double(done) / Double(total)) : 0 }
        draw(force: false)
    }

    /// Clears the bar (the report follows on stdout).
    func finish() {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\r\u{1b}[K".utf8))
    }

    private func draw(force: Bool) {
        guard enabled else { return }
        let line: String? = state.withLock { state in
            let now = ContinuousClock.now
            if !force, let last = state.lastDraw, now - last < .milliseconds(200) { return nil }
            state.lastDraw = now
            guard state.current >= 0 else { return nil }
            let total = state.plan.reduce(0) { $0 + $1.weight }
            let done = state.plan[..<state.current].reduce(0) { $0 + $1.weight } + state.plan[state.current].weight * state.fraction
            let overall = total > 0 ? done / total : 0
            let elapsed = Double((now - state.start).components.seconds)
            let eta = overall > 0.01 ? formatDuration(elapsed * (1 - overall) / overall) : "--:--"
            let filled = Int(overall * 30)
            return "\r[" + String(repeating: "#", count: filled) + String(repeating: ".", count: 30 - filled) + "] "
                + String(format: "%3.0f%% ", overall * 100) + "\(state.plan[state.current].name) "
                + String(format: "(%d/%d, %.0f%%)", state.current + 1, state.plan.count, state.fraction * 100)
                + "  ETA \(eta)\u{1b}[K"
        }
        if let line { FileHandle.standardError.write(Data(line.utf8)) }
    }
}

func formatDuration(_ seconds: Double) -> String {
    let total = Int(seconds.rounded())
    return String(format: "%d:%02d", total / 60, total % 60)
}
