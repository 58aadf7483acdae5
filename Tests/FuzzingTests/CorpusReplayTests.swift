// Every input kept in Fuzz/Corpus/<target>/ (the seeds, and each crash the fuzzer found,
// named crash-*) run through its target as libFuzzer would: a regression is a trap here.
import Foundation
import Fuzzing
import Testing

let corpusRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../../Fuzz/Corpus").standardizedFileURL

@Suite struct CorpusReplayTests {
    @Test(arguments: FuzzTarget.allCases)
    func replaysTheCorpus(_ target: FuzzTarget) throws {
        let directory = corpusRoot.appendingPathComponent(target.rawValue)
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        #expect(names.count >= 3, "a seed corpus for \(target.rawValue)")
        for name in names {
            let data = try Data(contentsOf: directory.appendingPathComponent(name))
            data.withUnsafeBytes { target.run($0) }
        }
    }
}
