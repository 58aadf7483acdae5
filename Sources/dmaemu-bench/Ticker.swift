/// Moves the progress bar by the clock while a call that cannot report runs for a known
/// number of seconds.
struct Ticker {
    private let loop: Periodic

    init(seconds: Int) {
        let total = max(seconds, 1) * 10
        loop = Periodic(everyMicroseconds: 100_000) { tenths in Progress.shared.step(min(tenths, total), of: total) }
    }

    func stop() { loop.stop() }
}
