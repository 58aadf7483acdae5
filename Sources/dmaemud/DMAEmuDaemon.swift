// dmaemud: builds the emulated machine, mounts its control tree and serves it in the
// foreground until SIGTERM or SIGINT, then unmounts and exits 0. State is reached through
// the FUSE session's userdata; nothing lives in top-level globals, which the FUSE loop's
// threads must not touch.
import ArgumentParser
import ControlSurface
import Daemon
import Dispatch
import Foundation
import FUSE
import Logging
import Printk

@main
struct DMAEmuDaemon: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dmaemud",
        abstract: "Emulate the kernel's DMA memory machinery behind a sysfs-like FUSE tree.",
        version: "dmaemud 0.1.0"
    )

    @Argument(help: "Where to mount the control tree.") var mountpoint = "/mnt"
    @Option(help: "The machine to emulate (default: the shipped Config/dmaemu.toml, compiled in).")
    var config: String?
    @Flag(help: "Check the configuration and exit.") var checkConfig = false
    @Flag(help: "Let users other than the mounting one use the tree (allow_other).") var allowOther = false
    @Option(help: "Longest poll of /dev/fuse between requests, in microseconds, before the reader sleeps (0: never poll; saves CPU, costs latency).")
    var pollUs = MountOptions.defaultPollMicroseconds
    @Option(help: "Lowest level printed: emerg, alert, crit, err, warning, notice, info, debug.")
    var logLevel = "info"

    func validate() throws {
        guard Self.level(logLevel) != nil else { throw ValidationError("unknown log level '\(logLevel)'") }
        let range = MountOptions.pollMicrosecondsRange
        guard range.contains(pollUs) else { throw ValidationError("--poll-us must be \(range.lowerBound)...\(range.upperBound)") }
    }

    static func level(_ name: String) -> LogLevel? {
        ["emerg": .emerg, "alert": .alert, "crit": .crit, "err": .err, "warning": .warning,
         "notice": .notice, "info": .info, "debug": .debug][name]
    }

    func run() throws {
        let environment = ProcessInfo.processInfo.environment
        let journal = environment["JOURNAL_STREAM"] != nil
        let level = KernelLogHandler.level(Self.level(logLevel)!)
        LoggingSystem.bootstrap { _ in KernelLogHandler(level: level, journal: journal) }
        let logger = Logger(label: "dmaemud")
        let log = KernelLog(sink: { logger.forward($0) })
        let notifier = SystemdNotifier(environment: environment)
        var machineConfig = MachineConfig.defaultMachine()
        if let config {
            do {
                machineConfig = try MachineConfig(contentsOfFile: config)
            } catch {
                log.printk(.err, "dmaemud: \(error)")
                throw ExitCode.failure
            }
        }
        if checkConfig {
            print("\(config ?? "built-in configuration"): OK, \(machineConfig.devices.count) devices")
            return
        }
        let machine: Machine
        do {
            machine = try Machine(machineConfig, log: log)
        } catch {
            log.printk(.err, "dmaemud: \(error)")
            throw ExitCode.failure
        }
        let server = FUSEServer(root: machine.root, mountpoint: mountpoint)
        machine.surface.addCounters { [weak server] in server.map(Self.loopCounters) ?? [] }
        do {
            try server.mount(MountOptions(allowOther: allowOther, pollMicroseconds: pollUs))
        } catch {
            log.printk(.err, "dmaemud: \(error)")
            throw ExitCode.failure
        }
        log.printk(.info, "dmaemud: mounted at \(mountpoint)")
        notifier.notify("READY=1\nSTATUS=serving \(machine.config.devices.count) devices at \(mountpoint)")
        let watchdog = Self.startWatchdog(notifier, environment)
        // The tree's files hold the machine weakly; its shutdown below keeps it alive
        // through the loop (an optimized build may release a local after its last use).
        server.run()
        watchdog?.cancel()
        notifier.notify("STOPPING=1\nSTATUS=unmounted \(mountpoint)")
        log.printk(.info, "dmaemud: unmounted \(mountpoint)")
        machine.shutdown()
    }

    /// What the FUSE loop has done, for `metrics`.
    static func loopCounters(_ server: FUSEServer) -> [MetricCounter] {
        let loop = server.loopStatistics
        return [
            MetricCounter(subsystem: "fuse", name: "requests", help: "Requests read from /dev/fuse", value: loop.requests),
            MetricCounter(subsystem: "fuse", name: "requests_polled", help: "Requests that came while the reader polled /dev/fuse", value: loop.polled),
            MetricCounter(subsystem: "fuse", name: "reader_wakeups", help: "Requests the sleeping reader was woken for", value: loop.wakeups),
            MetricCounter(
                subsystem: "fuse", name: "handoffs", help: "Slow requests that had the reader's place handed to another worker", value: loop.handoffs),
        ]
    }

    /// WATCHDOG=1 at half the period systemd asked for.
    static func startWatchdog(_ notifier: SystemdNotifier, _ environment: [String: String]) -> DispatchSourceTimer? {
        guard let usec = SystemdNotifier.watchdogMicroseconds(environment) else { return nil }
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "dmaemud.watchdog"))
        timer.schedule(deadline: .now(), repeating: .microseconds(Int(usec / 2)))
        timer.setEventHandler { notifier.notify("WATCHDOG=1") }
        timer.resume()
        return timer
    }
}
