import Foundation
import Testing

/// systemd/dmaemu.service must not give the service a mount namespace of its own: systemd
/// makes such a namespace a slave of the host's, so the FUSE mount would exist only inside
/// the service. `make vm-test` shows it on a real systemd; this catches it in `make test`.
@Suite struct SystemdUnitTests {
    /// What makes systemd 252 set one up (exec_needs_mount_namespace() and the directives
    /// that imply its settings: DynamicUser= implies ProtectSystem=strict and PrivateTmp=).
    static let namespaceDirectives: Set<String> = [
        "ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices", "PrivateMounts",
        "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups",
        "ProtectProc", "ProcSubset", "ReadWritePaths", "ReadOnlyPaths", "InaccessiblePaths", "ExecPaths",
        "NoExecPaths", "BindPaths", "BindReadOnlyPaths", "TemporaryFileSystem", "RootDirectory", "RootImage",
        "MountImages", "ExtensionImages", "ExtensionDirectories", "LogNamespace", "MountFlags", "DynamicUser",
    ]

    static func unit() throws -> [Substring] {
        try String(contentsOfFile: "systemd/dmaemu.service", encoding: .utf8).split(separator: "\n")
    }

    @Test func noDirectiveGivesTheServiceAMountNamespace() throws {
        let set = try Self.unit().filter { !$0.hasPrefix("#") }.compactMap { $0.split(separator: "=").first.map(String.init) }
        #expect(!set.isEmpty)
        #expect(Self.namespaceDirectives.intersection(set).isEmpty)
    }

    /// So that nobody "hardens" it back into the bug.
    @Test func theUnitSaysWhichMustNotBeAdded() throws {
        let comments = try Self.unit().filter { $0.hasPrefix("#") }.joined(separator: " ")
        for directive in Self.namespaceDirectives { #expect(comments.contains(" \(directive)="), "\(directive)") }
    }
}
