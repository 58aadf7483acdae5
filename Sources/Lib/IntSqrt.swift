// lib/math/int_sqrt.c: int_sqrt() and int_sqrt64(), the integer square root rounded down,
// for the kernel arithmetic that uses it (min_free_kbytes, dma_map_benchmark's deviations).

/// The corresponding kernel function is `int_sqrt64()`.
public func intSqrt(_ x: UInt64) -> UInt64 {
    guard x > 1 else { return x }
    // The double's root is within one of the answer; squares compared by division so
    // that none overflows (the root of 2^64 - 1 is 2^32 - 1).
    var root = min(UInt64(Double(x).squareRoot()), 0xFFFF_FFFF)
    while root > x / root { root -= 1 }
    while root + 1 <= x / (root + 1) { root += 1 }
    return root
}
