// The seeds' own figures (the kernel mailing-list posts this project comes from), printed and reported beside ours. They were
// measured on the posters' machines, so they give scale and ratios, not absolute targets.
enum Seeds {
    /// Tony Battersby's mpt3sas chain loop, 373959 x 128 B (ms): the original pool and his
    /// rbtree series. Keith Busch's stack (v6.4) came later and has no figure here.
    static let chainLoop: [String: (alloc: Double, free: Double, text: String)] = [
        "legacy": (350, 8901, "350 / 8901 ms"), "rbtree": (18, 19, "18 / 19 ms"),
    ]

    /// Keith Busch's dmapool_test totals for the 6.4 rewrite (us): before and after.
    static let dmapoolTest: [Int: (before: Int, after: Int)] = [
        16: (57282, 24997), 64: (172_562, 26584), 256: (789_247, 33542), 1024: (371_823, 9022), 4096: (362_237, 6045),
    ]

    /// Petr Tesarik's x86 VM diffs against base (default, growing), in percent.
    static let swiotlbIO: [String: (default: String, growing: String)] = [
        "small": ("-1.5%", "-2.2%"), "big": ("+0.9%", "+2.9%"), "4way": ("-0.7%", "<0.1%"),
    ]
    /// His worst growing diff on any machine (CoCo VM, 24way).
    static let swiotlbWorstGrowing = -5.9

    /// Yang Shi's dm-crypt figures: MiB/s and page allocation us per 256-page bio.
    struct DMCryptFigure {
        var mibPerS: Double
        var allocUs: Double
    }
    static let dmcrypt: [String: DMCryptFigure] = [
        "single": .init(mibPerS: 1301, allocUs: 600), "bulk": .init(mibPerS: 1402, allocUs: 30),
    ]
}
