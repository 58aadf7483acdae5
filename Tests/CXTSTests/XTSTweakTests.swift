import CXTS
import Testing

/// xts_xor_tweaks() on zeroed sectors leaves each block's tweak itself: T_0 as given, then
/// IEEE 1619's doubling (the 128-bit little-endian value shifted left by one, 0x87 folded
/// into the low byte when bit 127 falls out), worked out here by hand. Each test runs the
/// SSE2 walk (a tweak a step) and, where the CPU has them, the AVX2 and VPCLMULQDQ one (two
/// tweaks a step, by x^2), the one xts_xor_tweaks() takes there.
@Suite struct XTSTweakTests {
    typealias Pass = @convention(c) (UnsafeMutableRawPointer?, UnsafeRawPointer?, UnsafeRawPointer?, Int, Int) -> Void
    var passes: [Pass] { xts_has_avx2() != 0 ? [xts_xor_tweaks_sse2, xts_xor_tweaks_avx2] : [xts_xor_tweaks_sse2] }

    /// Block j of each sector, as (low, high) 64-bit halves, after each pass over zeros
    /// (the passes must agree).
    func tweaks(_ first: [(UInt64, UInt64)], sectorSize: Int = 512) -> [[(UInt64, UInt64)]] {
        let results = passes.map { pass in tweaks(first, sectorSize: sectorSize, pass) }
        for result in results.dropFirst() {
            #expect(result.elementsEqual(results[0]) { $0.elementsEqual($1, by: ==) }, "the two walks differ")
        }
        return results[0]
    }

    func tweaks(_ first: [(UInt64, UInt64)], sectorSize: Int, _ pass: Pass) -> [[(UInt64, UInt64)]] {
        var t0 = first.flatMap { [$0.0, $0.1] }
        var data = [UInt64](repeating: 0, count: first.count * sectorSize / 8)
        data.withUnsafeMutableBytes { d in t0.withUnsafeMutableBytes { pass(d.baseAddress, d.baseAddress, $0.baseAddress, first.count, sectorSize) } }
        let blocks = sectorSize / 16
        return (0..<first.count).map { s in (0..<blocks).map { j in (data[(s * blocks + j) * 2], data[(s * blocks + j) * 2 + 1]) } }
    }

    @Test func eachBlockDoublesTheOneBefore() {
        let sector = tweaks([(1, 0)])[0]
        #expect(sector.count == 32)
        for (j, block) in sector.enumerated() { #expect(block == (1 << UInt64(j), 0), "block \(j)") }
    }

    @Test func bit63CarriesIntoTheHighHalf() {
        let sector = tweaks([(1 << 63, 0)])[0]
        #expect(sector[0] == (1 << 63, 0) && sector[1] == (0, 1) && sector[2] == (0, 2))
    }

    @Test func bit127FoldsBackAs0x87() {
        let sector = tweaks([(0, 1 << 63)])[0]
        #expect(sector[1] == (0x87, 0) && sector[2] == (0x10e, 0))
        // Both at once: 2^127 + 2^63 doubles to 2^64 + 0x87.
        #expect(tweaks([(1 << 63, 1 << 63)])[0][1] == (0x87, 1))
    }

    /// Four sectors walked together and a fifth alone: sector s from T_0 = s + 1, so its
    /// block j is (s + 1) << j.
    @Test func fourSectorsAtATimeAndTheRest() {
        let sectors = tweaks((1...5).map { (UInt64($0), 0) })
        for (s, sector) in sectors.enumerated() {
            for (j, block) in sector.enumerated() { #expect(block == (UInt64(s + 1) << UInt64(j), 0), "sector \(s) block \(j)") }
        }
    }

    /// Tweaks with every top bit set, through sectors of 4096 bytes: after 256 doublings
    /// the walks must still agree, and the pass is an XOR: twice gives the data back.
    @Test func longSectorsAndTwiceIsNothing() {
        let first: [(UInt64, UInt64)] = [(~0, ~0), (0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210), (1 << 62, 3 << 62), (7, 1 << 63), (~0, 0)]
        _ = tweaks(first, sectorSize: 4096)
        var data = (0..<(5 * 512)).map { UInt64($0) &* 0x9e37_79b9_7f4a_7c15 }
        let before = data
        var t0 = first.flatMap { [$0.0, $0.1] }
        for _ in 0..<2 {
            data.withUnsafeMutableBytes { d in t0.withUnsafeMutableBytes { xts_xor_tweaks(d.baseAddress, d.baseAddress, $0.baseAddress, 5, 4096) } }
        }
        #expect(data == before)
    }

    /// From a source apart: the destination gets source ^ tweak, whatever it held, and the
    /// source is left alone; the same as the pass in place over a copy.
    @Test func fromASourceApart() {
        for pass in passes {
            let source = (0..<(6 * 64)).map { UInt64($0) &* 0x2545_f491_4f6c_dd1d }
            var inPlace = source
            var apart = [UInt64](repeating: 0xdead_beef, count: source.count)
            var t0: [UInt64] = (0..<12).map { UInt64($0 + 1) << 60 | 0x87 }
            t0.withUnsafeMutableBytes { t in
                inPlace.withUnsafeMutableBytes { pass($0.baseAddress, $0.baseAddress, t.baseAddress, 6, 512) }
                source.withUnsafeBytes { s in apart.withUnsafeMutableBytes { pass($0.baseAddress, s.baseAddress, t.baseAddress, 6, 512) } }
            }
            #expect(apart == inPlace && inPlace != source)
        }
    }
}
