// The parsers of written text that run work when they succeed, callable on their own: the
// fuzz targets and their regression tests feed them arbitrary bytes without running an
// I/O job or a benchmark.
import SystemPackage

public enum Parsers {
    /// A disk's `io` line, as IOJob reads it.
    public static func ioRequest(_ text: String) throws(Errno) { _ = try IOJob(parsing: text) }

    /// kernel/debug/dma_map_benchmark's parameters.
    public static func mapBenchmark(_ text: String) throws(Errno) { _ = try MapBenchmarkFile.parameters(text) }
}
