import ControlFS
import Daemon
import Foundation
import SystemPackage
import TestSupport

/// A small machine: 1 GiB of RAM, a 1 MiB swiotlb in two areas, the default generic device.
func smallMachine(ram: UInt64 = 1 << 30) throws -> Machine {
    var config = MachineConfig.defaultMachine()
    config.ramBytes = ram
    config.swiotlb.nslabs = 512
    config.swiotlb.nareas = 2
    config.devices = config.devices.filter { $0.driver == "generic" }
    return try Machine(config)
}

extension Machine {
    func read(_ path: String) throws(Errno) -> String { try root.read(path) }
    func write(_ path: String, _ text: String) throws(Errno) { try root.write(path, text) }
}

let dev = "devices/0000:00:04.0"
let cryptKey = (0..<64).map { String(format: "%02x", ($0 * 37 + 11) & 0xff) }.joined()
