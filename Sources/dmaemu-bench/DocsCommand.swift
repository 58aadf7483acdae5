// `dmaemu-bench docs`: docs/benchmarks.md's Performance tables and docs/'s plots,
// regenerated from a results.json (`make bench-docs`). The page keeps its prose; only the
// text between the two markers is replaced.
import ArgumentParser
import Foundation

struct DocsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "docs", abstract: "Put a results.json's tables into a page and its plots into docs/.")

    @Option(help: "The results to publish.") var results = "bench-results/results.json"
    @Option(help: "The page to update between its bench markers.") var page = "docs/benchmarks.md"
    @Option(help: "Where the plots go (linked from the page).") var docs = "docs"

    static let begin = "<!-- bench-report:begin (make bench-docs writes this part) -->"
    static let end = "<!-- bench-report:end -->"

    func run() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: results))
        let decoded = try BenchJSON.decode(BenchResults.self, from: data)
        let text = try String(contentsOfFile: page, encoding: .utf8)
        guard let from = text.range(of: Self.begin), let to = text.range(of: Self.end), from.upperBound <= to.lowerBound else {
            throw ValidationError("\(page) has no \(Self.begin) ... \(Self.end) block")
        }
        try FileManager.default.createDirectory(atPath: docs, withIntermediateDirectories: true)
        // Smaller plots for the page; report.md keeps the full size.
        try writePlots(decoded, to: docs, width: 640)
        // Links relative to the page, so they work on GitHub and in a checkout.
        let pageDirectory = URL(fileURLWithPath: page).deletingLastPathComponent().standardized.path
        let docsPath = URL(fileURLWithPath: docs).standardized.path
        let link = docsPath == pageDirectory ? "" : docsPath.hasPrefix(pageDirectory + "/") ? String(docsPath.dropFirst(pageDirectory.count + 1)) + "/" : docs + "/"
        let report = Report.markdown(decoded, images: link)
        let updated = String(text[..<from.upperBound]) + "\n" + report + String(text[to.lowerBound...])
        try updated.write(toFile: page, atomically: true, encoding: .utf8)
        print("\(page): Performance tables from \(results); plots in \(docs)/")
    }
}
