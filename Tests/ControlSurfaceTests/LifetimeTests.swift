import ControlFS
import Lib
import SystemPackage
import Testing

/// Control files hold their device weakly: nothing outlives its owner, and a file still
/// open after its device is gone answers ENODEV, as a sysfs file does.
@Suite struct LifetimeTests {
    @Test func aRemovedDeviceIsFreedAndItsOpenFilesAnswerENODEV() throws {
        let machine = try smallMachine()
        try machine.write("control/add_device", "generic 0000:00:09.0")
        weak let removed = machine.device("0000:00:09.0")
        #expect(removed != nil)
        // What an open file descriptor keeps: the attribute node itself.
        let state = try #require(machine.root.node(at: "devices/0000:00:09.0/state") as? ControlAttribute)
        try machine.write("devices/0000:00:09.0/state", "remove")
        try machine.write("control/remove_device", "0000:00:09.0")
        #expect(removed == nil)
        #expect(throws: Errno.noDevice) { try state.snapshot() }
        #expect(throws: Errno.noDevice) { try state.write(Array("probe".utf8)) }
    }
}
