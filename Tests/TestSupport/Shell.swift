// A shell command from a test, as a user would type it.
import Foundation
import Glibc

/// Runs `script` with sh; its exit status and output.
@discardableResult
public func shell(_ script: String) throws -> (status: Int32, output: String) {
    // Process hands the calling thread's signal mask to the child, and the test runner's
    // threads block SIGTERM: a strace the script starts would never die of its `kill`.
    var none = sigset_t()
    sigemptyset(&none)
    pthread_sigmask(SIG_SETMASK, &none, nil)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    process.arguments = ["-c", script]
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return (process.terminationStatus, output)
}
