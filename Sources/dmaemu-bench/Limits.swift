// The C limits of tools/limits, compiled and run in the same run as our figures, since
// this machine is noisy: our targets are ratios against them.
import Foundation

/// Runs a limit program and decodes its JSON lines.
func runLimit<T: Decodable>(_ path: String, _ arguments: [String], as type: T.Type) throws -> [T] {
    let output = try runProgram(path, arguments)
    return try output.split(separator: "\n").map { try BenchJSON.decode(type, from: Data($0.utf8)) }
}

/// Runs a program to its end and returns its stdout; a non-zero exit is an error.
@discardableResult
func runProgram(_ path: String, _ arguments: [String], environment: [String: String]? = nil) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    if let environment { process.environment = environment }
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw BenchError(description: "\(path) \(arguments.joined(separator: " ")) exited with \(process.terminationStatus)")
    }
    return String(decoding: data, as: UTF8.self)
}

/// The compiled limits: `cc -O2` of each program in `sources` into `directory`.
struct CLimits {
    var poolLimit: String?
    var memcpyLimit: String?
    var traceLimit: String?
    var xtsLimit: String?
    var pageLimit: String?
    var handoffLimit: String?
    var fuseHello: String?
    var failures: [String] = []

    init(sources: String, into directory: String) {
        func compile(_ name: String, _ flags: [String] = []) -> String? {
            let source = "\(sources)/\(name).c", binary = "\(directory)/\(name)"
            do {
                try runProgram("/usr/bin/env", ["cc", "-O2", "-o", binary, source] + flags)
                return binary
            } catch {
                failures.append("\(source): \(error)")
                return nil
            }
        }
        poolLimit = compile("pool_limit")
        memcpyLimit = compile("memcpy_limit")
        traceLimit = compile("trace_limit")
        xtsLimit = compile("xts_limit", ["-lcrypto"])
        pageLimit = compile("page_limit")
        handoffLimit = compile("handoff_limit", ["-pthread"])
        let fuseFlags = (try? runProgram("/usr/bin/env", ["pkg-config", "--cflags", "--libs", "fuse3"]))?
            .split(whereSeparator: \.isWhitespace).map(String.init)
        if let fuseFlags { fuseHello = compile("fuse_hello", fuseFlags) } else { failures.append("pkg-config fuse3 failed") }
    }
}
