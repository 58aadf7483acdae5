/// The kernel a machine emulates, where behaviour and formats differ between versions:
/// 6.1 (Debian 12's kernel), 6.12 (Debian's linux-6.12, with its backports), 6.18.
public enum KernelVersion: String, CaseIterable, Sendable, Comparable {
    case v6_1 = "6.1"
    case v6_12 = "6.12"
    case v6_18 = "6.18"

    public static func < (a: KernelVersion, b: KernelVersion) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}
