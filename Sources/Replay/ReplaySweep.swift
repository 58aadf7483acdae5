// --sweep: the same recording replayed on each combination of swiotlb sizes, area counts
// and dynamic or not, one row each, with the smallest size that never overflowed marked:
// the answer to "which swiotlb= would have been enough".
import Foundation
import Lib
import SystemPackage

public struct SweepAxis: Sendable, Equatable {
    public enum Parameter: String, Sendable { case swiotlb, areas, dynamic }
    public let parameter: Parameter
    public let values: [Int]

    /// "swiotlb=1M,4M,16M", "areas=1,4,8", "dynamic=0,1".
    public init(_ text: String) throws(SweepError) {
        let parts = text.split(separator: "=", maxSplits: 1)
        guard parts.count == 2, let parameter = Parameter(rawValue: String(parts[0])) else {
            throw SweepError(description: "--sweep \(text): expected swiotlb=, areas= or dynamic= and a list")
        }
        self.parameter = parameter
        var values: [Int] = []
        for word in parts[1].split(separator: ",") {
            let value: UInt64
            do throws(Errno) {
                value = parameter == .swiotlb ? try StoreParsing.size(String(word), max: 1 << 34) : try StoreParsing.number(String(word), max: 1 << 16)
            } catch {
                throw SweepError(description: "--sweep \(text): '\(word)' is not a \(parameter == .swiotlb ? "size" : "number")")
            }
            guard parameter != .dynamic || value <= 1, parameter == .dynamic || value > 0 else {
                throw SweepError(description: "--sweep \(text): '\(word)' is out of range")
            }
            values.append(Int(value))
        }
        guard !values.isEmpty else { throw SweepError(description: "--sweep \(text): no values") }
        self.values = values
    }
}

public struct SweepError: Error, CustomStringConvertible {
    public let description: String
}

public struct SweepRow: Codable, Sendable {
    public var swiotlbBytes: Int
    public var areas: Int
    public var dynamic: Bool
    public var full: Int
    public var hiwater: Int
    public var poolsAdded: Int
    public var transientPools: Int
    public var bounces: Int
    /// The smallest swiotlb that never overflowed (the first such row, in size order).
    public var smallestThatFits = false
}

public enum ReplaySweep {
    /// Every combination of `axes`, on the options given, each on a fresh machine.
    public static func run(_ recording: Recording, options: ReplayOptions, base: ReplayBase?, axes: [SweepAxis]) throws -> [SweepRow] {
        var combinations: [ReplayOptions] = [options]
        for axis in axes {
            combinations = combinations.flatMap { partial in
                axis.values.map { value in
                    var next = partial
                    switch axis.parameter {
                    case .swiotlb: next.swiotlbBytes = value
                    case .areas: next.areas = value
                    case .dynamic: next.dynamic = value == 1
                    }
                    return next
                }
            }
        }
        var rows: [SweepRow] = []
        for combination in combinations {
            let replayer = try Replayer(recording, setup: ReplaySetup(recording: recording, options: combination, base: base))
            let result = replayer.run()
            let use = result.swiotlb
            let boot = replayer.swiotlb?.pools.first
            rows.append(SweepRow(
                swiotlbBytes: (boot?.nslabs ?? 0) << 11, areas: boot?.nareas ?? 0, dynamic: replayer.setup.swiotlb.dynamic,
                full: use?.full ?? 0, hiwater: use?.hiwater ?? 0, poolsAdded: use?.poolsAdded ?? 0,
                transientPools: use?.transientPools ?? 0, bounces: result.bounces))
        }
        if let best = rows.indices.filter({ rows[$0].full == 0 }).min(by: { rows[$0].swiotlbBytes < rows[$1].swiotlbBytes }) {
            rows[best].smallestThatFits = true
        }
        return rows
    }

    public static func text(_ rows: [SweepRow]) -> String {
        var out = pad("swiotlb", 10) + pad("areas", 7) + pad("dynamic", 9) + pad("full", 8) + pad("hiwater", 9) + pad("added", 7)
            + pad("transient", 10) + "bounces\n"
        for row in rows {
            out += pad(mib(row.swiotlbBytes), 10) + pad("\(row.areas)", 7) + pad(row.dynamic ? "yes" : "no", 9) + pad("\(row.full)", 8)
                + pad("\(row.hiwater)", 9) + pad("\(row.poolsAdded)", 7) + pad("\(row.transientPools)", 10) + "\(row.bounces)"
            out += row.smallestThatFits ? "  <- smallest that never overflowed\n" : "\n"
        }
        if !rows.contains(where: \.smallestThatFits) { out += "every setting overflowed\n" }
        return out
    }
}
