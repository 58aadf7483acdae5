import DMA
import DMAPool
import Foundation
import PhysicalMemory

extension AlgorithmChoice {
    var algorithms: [DMAPoolAlgorithm] {
        switch self {
        case .all: DMAPoolAlgorithm.allCases
        case .stack: [.stack]
        case .rbtree: [.rbtree]
        case .legacy: [.legacy]
        }
    }
}

/// A fresh default machine (8 GiB) with one PCI function that has 64-bit masks, as an
/// HBA after dma_set_mask_and_coherent(DMA_BIT_MASK(64)).
func benchDevice(_ name: String) throws -> Device {
    let device = Device(name: name, machine: try PhysicalMemory())
    device.dmaMask = dmaBitMask(64)
    device.coherentDMAMask = dmaBitMask(64)
    return device
}

/// Milliseconds since `start`, from the monotonic clock.
func milliseconds(since start: ContinuousClock.Instant) -> Double {
    let elapsed = ContinuousClock.now - start
    return Double(elapsed.components.seconds) * 1e3 + Double(elapsed.components.attoseconds) / 1e15
}

func fixed(_ value: Double, _ digits: Int = 1) -> String { String(format: "%.\(digits)f", value) }

/// One JSON object on one line, keys in the order given.
func jsonLine(_ fields: [(String, Any)]) -> String {
    let body = fields.map { key, value -> String in
        let text: String
        switch value {
        case let string as String: text = "\"\(string)\""
        case let double as Double: text = String(format: "%.3f", double)
        case let bool as Bool: text = bool ? "true" : "false"
        default: text = "\(value)"
        }
        return "\"\(key)\":\(text)"
    }
    return "{" + body.joined(separator: ",") + "}"
}

/// Runs a limit program from ../shared/bench and returns its JSON lines, parsed.
func runLimit(_ path: String, _ arguments: [String]) throws -> [[String: Any]] {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap {
        try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
    }
}

func padded(_ text: String, _ width: Int) -> String {
    text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
}

/// The median (for an even count, the mean of the middle two).
func medianOf(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    let middle = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}
