import ControlFS
import Locking
import SystemPackage
import Testing

final class Recorder: ControlObserver {
    let changes = PthreadMutex<[String]>([])
    func childrenChanged(_ directory: ControlDirectory, name: String) { changes.withLock { $0.append(name) } }
}

@Suite struct ControlTreeTests {
    @Test func modesFollowWhatAnAttributeCanDo() {
        #expect(ControlAttribute(show: { "x" }).mode == 0o444)
        #expect(ControlAttribute(store: { _ in }).mode == 0o200)
        #expect(ControlAttribute(show: { "x" }, store: { _ in }).mode == 0o644)
        #expect(ControlAttribute(mode: 0o600, show: { "x" }, store: { _ in }).mode == 0o600)
        #expect(ControlDirectory().mode == 0o755)
    }

    @Test func pathsResolveThroughDirectories() throws {
        let root = ControlDirectory()
        let pools = ControlAttribute(show: { "poolinfo - 0.1\n" })
        root.directory("devices").directory("0000:85:00.0").add("pools", pools)
        #expect(root.node(at: "devices/0000:85:00.0/pools") === pools)
        #expect(root.node(at: "/devices//0000:85:00.0/pools") === pools)
        #expect(root.node(at: "devices/missing") == nil)
        #expect(root.node(at: "devices/0000:85:00.0/pools/deeper") == nil)
        #expect(try pools.snapshot() == Array("poolinfo - 0.1\n".utf8))
    }

    @Test func aSnapshotIsTakenPerOpen() throws {
        let counter = PthreadMutex(0)
        let file = ControlAttribute(show: { "\(counter.withLock { $0 += 1; return $0 })\n" })
        let first = try file.snapshot()
        let second = try file.snapshot()
        #expect(first == Array("1\n".utf8) && second == Array("2\n".utf8))
    }

    @Test func writesAreParsedWholeWithOneNewlineAllowed() throws {
        let stored = PthreadMutex<[String]>([])
        let file = ControlAttribute(store: { text throws(Errno) in
            guard Int(text) != nil else { throw .invalidArgument }
            stored.withLock { $0.append(text) }
        })
        try file.write(Array("100\n".utf8))
        try file.write(Array("7".utf8))
        #expect(throws: Errno.invalidArgument) { try file.write(Array("100\n\n".utf8)) }
        #expect(throws: Errno.invalidArgument) { try file.write(Array("ten".utf8)) }
        #expect(throws: Errno.invalidArgument) { try file.write([0xff, 0xfe]) }
        #expect(throws: Errno.invalidArgument) { try file.write(Array(repeating: UInt8(ascii: "1"), count: 4097)) }
        #expect(stored.withLock { $0 } == ["100", "7"])
        #expect(throws: Errno.permissionDenied) { try file.snapshot() }
        #expect(throws: Errno.permissionDenied) { try ControlAttribute(show: { "" }).write(Array("1".utf8)) }
    }

    @Test func observersHearOfChildrenComingAndGoing() {
        let root = ControlDirectory()
        let recorder = Recorder()
        let devices = root.directory("devices")
        root.setObserver(recorder)
        let device = devices.directory("dm-0")
        device.add("stats", ControlAttribute(show: { "" }))
        #expect(devices.remove("dm-0"))
        #expect(!devices.remove("dm-0"))
        #expect(recorder.changes.withLock { $0 } == ["dm-0", "stats", "dm-0"])
        #expect(devices.children.isEmpty)
    }
}
