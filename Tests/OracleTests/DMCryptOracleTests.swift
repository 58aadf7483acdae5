import Block
import Crypto
import DMCrypt
import Drivers
import Foundation
import SystemPackage
import Testing
import TestSupport

/// dmaemu's dm-crypt against the kernel's (Fixtures/nvme-dmcrypt-*.txt, from
/// tools/oracle/dmcrypt-check), both ways, with each key the guest used: the plaintext
/// dmaemu writes through dm-0 lands on the disk as the bytes the kernel's aes-xts-plain64
/// put there (the sha256 of 64 KiB, the first 1 KiB byte for byte); the kernel's
/// ciphertext on dmaemu's disk reads back through dm-0 as the plaintext; and the 8 KiB
/// dmaemu writes one MiB further are Fixtures/dmcrypt-<MiB>M.img, which the guest's
/// dm-crypt read back as the plaintext.
@Suite struct DMCryptOracleTests {
    struct Check {
        var key = "", mib = 0
        var written = "", image = "", cipher = "", said: [String] = []
    }

    static func checks(_ file: String) throws -> [Check] {
        let text = try String(contentsOf: fixtureDirectory.appendingPathComponent(file), encoding: .utf8)
        var all: [Check] = []
        for line in text.split(separator: "\n") {
            let words = line.split(separator: " ").map(String.init)
            switch (words.first, words.count > 1 ? words[1] : "") {
            case ("experiment", _): all.append(Check())
            case ("script", _): (all[all.count - 1].key, all[all.count - 1].mib) = (words[3], Int(words[4])!)
            case ("O", "written"): all[all.count - 1].written = words[2]
            case ("O", "image") where words.count == 3: all[all.count - 1].image = words[2]
            case ("O", "cipher"): all[all.count - 1].cipher += words[2]
            case ("O", _): all[all.count - 1].said.append(words.dropFirst().joined(separator: " "))
            case ("failed", _), ("E", _): Issue.record("the guest: \(line)")
            default: break
            }
        }
        return all
    }

    /// dmcrypt-check's plaintext: the first 64 KiB of `seq 1 20000`.
    static let plaintext = Array((1...20000).map { "\($0)\n" }.joined().utf8.prefix(65536))

    static func hex(_ bytes: some Sequence<UInt8>) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    @Test(arguments: ["6.1.0-57", "6.12.117+deb12"])
    func dmaemuAndTheKernelReadEachOthersDisks(release: String) throws {
        let checks = try Self.checks("nvme-dmcrypt-\(release).txt")
        #expect(checks.count == 2)
        for check in checks {
            let (devices, upper, lower) = try Self.machine(key: check.key)
            defer { withExtendedLifetime(devices) {} }
            let at = check.mib << 20
            // dmaemu writes what the kernel wrote.
            _ = try Self.plaintext.withUnsafeBytes { buffer throws(Errno) in try upper.write(from: buffer, at: at) }
            var disk = [UInt8](repeating: 0, count: 65536)
            _ = try disk.withUnsafeMutableBytes { buffer throws(Errno) in try lower.read(into: buffer, at: at) }
            #expect(Self.hex(SHA256.hash(data: disk)) == check.written, "\(release) \(check.mib)M")
            #expect(Self.hex(disk.prefix(1024)) == check.cipher)
            // The kernel's ciphertext, put on a fresh disk, reads back through dmaemu's dm-0.
            let kernels = try #require(Self.bytes(hex: check.cipher))
            let (other, fresh, under) = try Self.machine(key: check.key)
            defer { withExtendedLifetime(other) {} }
            _ = try kernels.withUnsafeBytes { buffer throws(Errno) in try under.write(from: buffer, at: at) }
            var back = [UInt8](repeating: 0, count: 1024)
            _ = try back.withUnsafeMutableBytes { buffer throws(Errno) in try fresh.read(into: buffer, at: at) }
            #expect(back == Array(Self.plaintext.prefix(1024)))
            // The image dmaemu writes, which the kernel read back.
            let file = fixtureDirectory.appendingPathComponent("dmcrypt-\(check.mib + 1)M.img")
            #expect(try Data(contentsOf: file) == Data(try Self.image(key: check.key, mib: check.mib)), "\(file.lastPathComponent) is not what dmaemu writes")
            let image = Array(Self.plaintext.prefix(8192))
            #expect(check.image == Self.hex(SHA256.hash(data: image)) && check.said == ["image reads back the plaintext"])
        }
    }

    /// What dmaemu's dm-0 with `key` puts on the disk for the plaintext's first 8 KiB at
    /// `mib` + 1 MiB.
    static func image(key: String, mib: Int) throws -> [UInt8] {
        let (devices, upper, lower) = try machine(key: key)
        defer { withExtendedLifetime(devices) {} }
        let at = (mib + 1) << 20
        _ = try Array(plaintext.prefix(8192)).withUnsafeBytes { buffer throws(Errno) in try upper.write(from: buffer, at: at) }
        var written = [UInt8](repeating: 0, count: 8192)
        _ = try written.withUnsafeMutableBytes { buffer throws(Errno) in try lower.read(into: buffer, at: at) }
        return written
    }

    /// DMAEMU_WRITE_IMAGES=1 swift test --filter writeTheImages: the images for the keys of
    /// tools/oracle/workloads/nvme-dmcrypt, before `make oracle` puts them on the guest's disk.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["DMAEMU_WRITE_IMAGES"] == "1"))
    func writeTheImages() throws {
        let workloads = fixtureDirectory.appendingPathComponent("../../../tools/oracle/workloads/nvme-dmcrypt").standardized
        for line in try String(contentsOf: workloads, encoding: .utf8).split(separator: "\n") where !line.hasPrefix("#") && line.contains("dmcrypt-check") {
            let words = line.split(separator: " ")
            let (key, mib) = (String(words[2]), Int(words[3])!)
            try Data(try Self.image(key: key, mib: mib)).write(to: fixtureDirectory.appendingPathComponent("dmcrypt-\(mib + 1)M.img"))
        }
    }

    /// A 64 MiB nvme disk and dm-0 over it with `key` (aes-xts-plain64): their queues.
    static func machine(key: String) throws -> (Devices, upper: BlockQueue, lower: BlockQueue) {
        let devices = try smallDevices(
            ram: 1 << 30, drivers: BuiltinDrivers.all.merging([DMCryptDriver.name: DMCryptDriver.factory(totalPages: 262143)]) { a, _ in a })
        let nvme = try devices.add("nvme nvme0 capacity=64M")
        let crypt = try devices.add("dm-crypt dm-0 lower=nvme0 key=\(key)")
        return (devices, try #require(crypt.queue), try #require(nvme.queue))
    }

    static func bytes(hex: String) -> [UInt8]? {
        let digits = Array(hex.utf8)
        guard digits.count % 2 == 0 else { return nil }
        return stride(from: 0, to: digits.count, by: 2).compactMap { UInt8(String(decoding: digits[$0..<$0 + 2], as: UTF8.self), radix: 16) }
    }
}
