import Foundation
import PhysicalMemory
import Testing

/// Fixtures/zoneinfo-*.txt: the guest's zones after a write of min_free_kbytes
/// (setup_per_zone_wmarks() and zone_pcp_update() on the zones as they are after boot), as
/// tools/oracle/workloads/zoneinfo prints them. dmaemu's arithmetic, given the same managed
/// pages and min_free_kbytes on one CPU, must give the kernel's watermarks and batch, and
/// 6.1's pcp high, its fixed zone_highsize() (high_min here; 6.12 tunes it), and each
/// zone's protection (lowmem_reserve[], recomputed by a write of lowmem_reserve_ratio).
@Suite struct ZoneInfoOracleTests {
    struct Zone {
        var name: String
        var values: [String: Int]
    }

    static func zones(_ file: String) throws -> (minFreeKbytes: Int, ratio: [Int], [Zone]) {
        let text = try String(contentsOf: fixtureDirectory.appendingPathComponent(file), encoding: .utf8)
        var minFree = 0, ratio: [Int] = [], zones: [Zone] = []
        for line in text.split(separator: "\n") {
            let words = line.split(separator: " ").map(String.init)
            guard words.first == "O", words.count > 2 else { continue }
            if words[1] == "min_free_kbytes" { minFree = Int(words[2])! }
            if words[1] == "lowmem_reserve_ratio" { ratio = words[2...].compactMap { Int($0) } }
            if words[1] == "zone" {
                var values: [String: Int] = [:]
                for i in stride(from: 3, to: words.count - 1, by: 2) { values[words[i]] = Int(words[i + 1]) }
                zones.append(Zone(name: words[2], values: values))
            }
        }
        return (minFree, ratio, zones)
    }

    @Test(arguments: ["6.1.0-57", "6.12.117+deb12"])
    func watermarksAndBatch(release: String) throws {
        let (minFree, ratio, zones) = try Self.zones("zoneinfo-\(release).txt")
        #expect(minFree == 16384 && zones.map(\.name) == ["DMA", "DMA32"])
        let sizes = PhysicalMemory.zoneSizes(managed: zones.map { $0.values["managed"]! }, minFreeKbytes: minFree, cpus: 1)
        for (zone, ours) in zip(zones, sizes) {
            let kernel = zone.values
            let marks: [Int] = [ours.min, ours.low, ours.high], kernelMarks: [Int] = [kernel["min"]!, kernel["low"]!, kernel["high"]!]
            #expect(marks == kernelMarks, "\(zone.name)")
            #expect(ours.batch == kernel["batch"]!, "\(zone.name)")
            if release.hasPrefix("6.1.") { #expect(ours.highMin == kernel["pcp_high"], "\(zone.name)") }
        }
        #expect(ratio == PhysicalMemory.lowmemReserveRatio)
        let reserves = PhysicalMemory.lowmemReserve(managed: zones.map { $0.values["managed"]! })
        for (zone, ours) in zip(zones, reserves) {
            #expect(ours == (0..<5).map { zone.values["prot\($0)"] ?? -1 }, "\(zone.name) protection")
        }
    }
}
