// The benchmarks that drive a whole machine do it as a user would: through its control
// files (add_device, state, io, stats), with no FUSE in between.
import ControlFS
import Daemon
import Foundation
import SystemPackage

struct BenchError: Error, CustomStringConvertible {
    let description: String
}

extension Machine {
    func benchWrite(_ path: String, _ text: String) throws {
        guard let file = root.node(at: path) as? ControlAttribute else { throw BenchError(description: "no \(path)") }
        do { try file.write(Array(text.utf8)) } catch { throw BenchError(description: "\(path) <- \(text): \(error)") }
    }

    func benchRead(_ path: String) throws -> String {
        guard let file = root.node(at: path) as? ControlAttribute else { throw BenchError(description: "no \(path)") }
        return String(decoding: try file.snapshot(), as: UTF8.self)
    }

    /// One numeric line of a stats file.
    func stat(_ path: String, _ key: String) throws -> Double {
        for line in try benchRead(path).split(separator: "\n") {
            let words = line.split(separator: " ")
            if words.count == 2, words[0] == key, let value = Double(words[1]) { return value }
        }
        throw BenchError(description: "\(path) has no \(key)")
    }
}
