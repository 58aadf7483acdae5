// dmaemu-fuzz: libFuzzer's driver running one target of Sources/Fuzzing, named by
// FUZZ_TARGET (store, io, map_benchmark, swiotlb, config); the arguments are libFuzzer's.
// SwiftPM points `main` at this file's code, which checks the target and hands over to
// libFuzzer's driver; the linker still wants the usual callback, which is the one used.
import Fuzzing
import Glibc

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

@_cdecl("LLVMFuzzerTestOneInput")
func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    // Looked up per input (a C callback captures nothing); cheap next to any target.
    FuzzTarget(rawValue: String(cString: getenv("FUZZ_TARGET")))!.run(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

guard let name = getenv("FUZZ_TARGET").map({ String(cString: $0) }), FuzzTarget(rawValue: name) != nil else {
    print("dmaemu-fuzz: set FUZZ_TARGET to one of: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))")
    exit(2)
}
var argc = CommandLine.argc
var argv = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv, testOneInput))
