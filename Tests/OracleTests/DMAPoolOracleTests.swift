import DMA
import DMAPool
import Foundation
import PhysicalMemory
import Testing

/// What Debian's real kernels did (Fixtures/, written by tools/oracle/oracle.sh in QEMU),
/// held against dmaemu's engines with no VM: each script of dmaemu_oracle.ko run on the
/// generation the kernel has (6.1: legacy, 6.12: stack), every block's page (numbered in
/// the order the pool's pages were first seen) and offset in it, in allocation order,
/// the free list at each `list` step (6.12: the pool's stack; 6.1: each page from the
/// head of page_list, its in_use and in-page chain, read from the kernel's private structs
/// at the offsets its BTF gives), and the device's `pools` file at the end.
struct OracleExperiment {
    var name: String
    var script: String
    /// Each alloc's (page, offset), nil where it failed.
    var blocks: [(page: Int, offset: Int)?] = []
    /// Each `list` step's lines: "C page in_use" (6.1) and "L page offset".
    var lists: [[String]] = []
    var pools: [String] = []
}

let fixtureDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

func experiments(_ file: String) throws -> [OracleExperiment] {
    let text = try String(contentsOf: fixtureDirectory.appendingPathComponent(file), encoding: .utf8)
    var all: [OracleExperiment] = []
    for line in text.split(separator: "\n") {
        let words = line.split(separator: " ")
        switch words.first {
        case "experiment": all.append(OracleExperiment(name: String(words[1]), script: ""))
        case "script": all[all.count - 1].script = String(line.dropFirst(7))
        case "A":
            all[all.count - 1].blocks.append(words[2] == "failed" ? nil : (Int(words[2])!, Int(words[3])!))
        case "list": all[all.count - 1].lists.append([])
        case "C", "L":
            let experiment = all.count - 1
            all[experiment].lists[all[experiment].lists.count - 1].append(String(line))
        case "P": all[all.count - 1].pools.append(String(line.dropFirst(2)))
        default: break
        }
    }
    return all
}

/// dmaemu_oracle.c's script, run on a DMAPool the way the module runs it.
struct OracleRun {
    let device: Device
    var pool: DMAPool?
    var pageBytes = 0
    var live: [(cpu: UnsafeMutableRawPointer, dma: DMAAddr)?] = []
    var pages: [DMAAddr] = []
    var blocks: [(page: Int, offset: Int)?] = []
    var lists: [[String]] = []

    init() throws {
        device = Device(name: "dmaemu_oracle.0", ram: try PhysicalMemory(size: 1 << 30), bus: "platform")
        device.dmaMask = dmaBitMask(64)
        device.coherentDMAMask = dmaBitMask(64)
    }

    mutating func run(_ script: String, _ algorithm: DMAPoolAlgorithm) throws {
        for step in script.split(separator: ";") {
            let words = step.split(separator: " ").map(String.init)
            let numbers = words.dropFirst().compactMap { Int($0) }
            switch words[0] {
            case "create":
                pool = try DMAPool(name: "oracle", device: device, size: numbers[0], align: numbers[1], boundary: numbers[2], algorithm: algorithm)
                // dma_alloc_coherent() of the pool's allocation: a buddy block of its order.
                pageBytes = PhysicalMemory.pageSize << pageOrder(max(numbers[0], PhysicalMemory.pageSize))
            case "alloc":
                for _ in 0..<numbers[0] { alloc() }
            case "free":
                free(words[1], numbers)
            case "list":
                lists.append(list())
            default:
                Issue.record("unknown step \(step)")
            }
        }
    }

    /// The pool's n-th page seen, as the module's pool_page() numbers them.
    mutating func page(_ base: DMAAddr) -> Int {
        if !pages.contains(base) { pages.append(base) }
        return pages.firstIndex(of: base)!
    }

    mutating func alloc() {
        guard let block = pool!.alloc() else {
            blocks.append(nil)
            return
        }
        let base = block.dma & ~DMAAddr(pageBytes - 1)
        blocks.append((page(base), Int(block.dma - base)))
        live.append(block)
    }

    /// The module's do_list(), read from the engine instead of the kernel's structs.
    mutating func list() -> [String] {
        switch pool!.freeList {
        case .stack(let dmas):
            return dmas.map { dma in
                let base = dma & ~DMAAddr(pageBytes - 1)
                return "L \(page(base)) \(dma - base)"
            }
        case .pages(let chains):
            return chains.flatMap { chain in
                let index = page(chain.dma)
                return ["C \(index) \(chain.inUse)"] + chain.free.map { "L \(index) \($0)" }
            }
        case nil:
            Issue.record("no free list to read")
            return []
        }
    }

    mutating func free(_ order: String, _ numbers: [Int]) {
        func release(_ i: Int) {
            pool!.free(live[i]!.cpu, dma: live[i]!.dma)
            live[i] = nil
        }
        let count = live.count
        switch order {
        case "fwd", "rev":
            let n = numbers[0] == 0 ? count : min(numbers[0], count)
            for i in 0..<n { release(order == "fwd" ? i : count - 1 - i) }
        case "even", "odd":
            var freed = 0
            for i in stride(from: order == "odd" ? 1 : 0, to: count, by: 2) where numbers[0] == 0 || freed < numbers[0] {
                release(i)
                freed += 1
            }
        case "rand":
            // glibc's TYPE_0 rand(), as the module has it.
            var x = UInt32(numbers[0])
            let n = numbers.count > 1 && numbers[1] != 0 ? min(numbers[1], count) : count
            var freed = 0
            while freed < n {
                x = (x &* 1_103_515_245 &+ 12345) & 0x7fff_ffff
                let i = Int(x % UInt32(count))
                guard live[i] != nil else { continue }
                release(i)
                freed += 1
            }
        default:
            Issue.record("unknown free order \(order)")
        }
        live.removeAll { $0 == nil }
    }
}

@Suite struct DMAPoolOracleTests {
    static let kernels: [(file: String, algorithm: DMAPoolAlgorithm)] = [
        ("dmapool-6.1.0-57.txt", .legacy), ("dmapool-6.12.117+deb12.txt", .stack),
    ]

    @Test(arguments: kernels.map(\.file))
    func everyBlockLandsWhereTheKernelPutIt(_ file: String) throws {
        let algorithm = Self.kernels.first { $0.file == file }!.algorithm
        let all = try experiments(file)
        #expect(all.count >= 12)
        #expect(all.filter { !$0.lists.isEmpty }.count >= 12, "every experiment reads its free list")
        for experiment in all {
            var run = try OracleRun()
            try run.run(experiment.script, algorithm)
            #expect(run.blocks.count == experiment.blocks.count, "\(experiment.name): allocations")
            if let first = zip(run.blocks, experiment.blocks).enumerated().first(where: { $0.element.0?.page != $0.element.1?.page || $0.element.0?.offset != $0.element.1?.offset }) {
                Issue.record("\(file) \(experiment.name): alloc \(first.offset) at \(String(describing: first.element.0)), the kernel's at \(String(describing: first.element.1))")
            }
            #expect(run.lists.count == experiment.lists.count, "\(experiment.name): list steps")
            for (step, (ours, kernels)) in zip(run.lists, experiment.lists).enumerated() {
                guard let first = (0..<max(ours.count, kernels.count)).first(where: { ours[safe: $0] != kernels[safe: $0] }) else { continue }
                Issue.record("\(file) \(experiment.name): list \(step), line \(first): \(ours[safe: first] ?? "the end"), the kernel's \(kernels[safe: first] ?? "the end")")
            }
            let pools = ["poolinfo - 0.1", String(run.pool!.poolInfoLine().dropLast())]
            #expect(pools == experiment.pools, "\(file) \(experiment.name)")
            for block in run.live { run.pool!.free(block!.cpu, dma: block!.dma) }
            run.pool!.destroy()
        }
    }
}

extension Array {
    subscript(safe index: Int) -> Element? { indices.contains(index) ? self[index] : nil }
}
