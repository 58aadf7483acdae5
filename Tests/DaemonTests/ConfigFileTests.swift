import ControlFS
import Daemon
import DMAPool
import Foundation
import Lib
import Testing

@Suite struct ConfigFileTests {
    @Test func theShippedFileIsTheCompiledInDefault() throws {
        // Tests run from the package directory (swift test and make test both do).
        let shipped = try String(contentsOfFile: "Config/dmaemu.toml", encoding: .utf8)
        let parsed = try MachineConfig(toml: shipped, file: "Config/dmaemu.toml")
        let builtIn = MachineConfig.defaultMachine()
        #expect(parsed.ramBytes == 8 << 30 && builtIn.ramBytes == 8 << 30)
        #expect(parsed.swiotlb == builtIn.swiotlb && parsed.swiotlb.nslabs == 32768)
        #expect(parsed.devices == builtIn.devices)
        #expect(parsed.devices == [
            MachineConfig.DeviceConfig(driver: "generic", name: "0000:00:04.0", parameters: ["dma_mask_bits": "64"]),
            MachineConfig.DeviceConfig(driver: "mpt3sas", name: "0000:85:00.0", parameters: ["dma_mask_bits": "64"]),
            MachineConfig.DeviceConfig(driver: "nvme", name: "0000:01:00.0", parameters: ["dma_mask_bits": "64"]),
        ])
    }

    /// What dmaemud prints for a --config it cannot use, not Foundation's NSError text.
    @Test(arguments: [
        ("/nonexistent.toml", "/nonexistent.toml: cannot read: No such file or directory"),
        ("/", "/: cannot read: Is a directory"),
        ("/dev/zero", "/dev/zero: longer than 1048576 bytes"),
    ])
    func anUnreadableFileIsNamedWithTheReason(path: String, message: String) {
        let error = #expect(throws: ConfigError.self) { try MachineConfig(contentsOfFile: path) }
        #expect(error?.description == message)
    }

    @Test func theShippedFileReadsAsTheDefault() throws {
        #expect(try MachineConfig(contentsOfFile: "Config/dmaemu.toml").devices == MachineConfig.defaultMachine().devices)
    }

    @Test func valuesAreRead() throws {
        let config = try MachineConfig(toml: """
            [machine]
            ram = "1G"
            [swiotlb]
            kernel_parameter = "512,2,force"
            dynamic = false
            [dmapool]
            algorithm = "legacy"
            debug = true
            [[device]]
            driver = "generic"
            name = "a"
            [[device]]
            driver = "generic"
            name = "b"
            dmapool_algorithm = "rbtree"
            """, file: "t.toml")
        #expect(config.ramBytes == 1 << 30)
        #expect(config.swiotlb.nslabs == 512 && config.swiotlb.nareas == 2 && config.swiotlb.force && !config.swiotlb.dynamic)
        #expect(config.dmapoolAlgorithm == .legacy && config.dmapoolDebug)
        #expect(config.devices.map(\.name) == ["a", "b"] && config.devices[1].parameters == ["dmapool_algorithm": "rbtree"])
    }

    @Test(arguments: [
        ("[machine]\nram = \"8G\"\ncolour = 1\n", "t.toml:3: machine.colour: unknown key"),
        ("[machine]\nram = true\n", "t.toml:2: machine.ram: must be a size such as 64M, or a byte count"),
        ("[machine]\nram = \"12Q\"\n", "t.toml:2: machine.ram: must be a size such as 64M, or a byte count"),
        ("\n[dmapool]\nalgorithm = \"slab\"\n", "t.toml:3: dmapool.algorithm: must be stack, rbtree or legacy, not 'slab'"),
        ("[swiotlb]\nareas = 0\n", "t.toml:2: swiotlb.areas: must be 1...1024"),
        ("[swiotlb]\nkernel_parameter = \"x,y\"\n", "t.toml:2: swiotlb.kernel_parameter: bad swiotlb= value 'x,y'"),
        ("[[device]]\ndriver = \"generic\"\n[[device]]\ndriver = \"floppy\"\nname = \"fd0\"\n", "t.toml:1: device.name: is required, without '/'"),
        ("[[device]]\ndriver = \"floppy\"\nname = \"fd0\"\n", "t.toml:2: device.driver: unknown driver 'floppy' (known: dm-crypt, generic, megaraid_sas, mpt3sas, nvme)"),
        ("[[device]]\ndriver = \"generic\"\nname = \"x\"\ndma_mask_bits = 8\n", "t.toml:4: device.dma_mask_bits: must be 20...64"),
        ("speed = 3\n", "t.toml:1: speed: unknown key"),
        ("[machine\n", "t.toml:1: "),
        // Found by `make fuzz`: what toml++ asserts on.
        ("# ok\nram\u{2}\0 = 1\n", "t.toml:2: control character 0x2 (TOML allows only tab)"),
        ("[machine]\n# é\nram = \"é\"\nram = é\n", "t.toml:4: non-ASCII character outside a string or comment"),
        ("a = \"\"\"\n#\"\"\n\u{7F}\"\"\"\n", "t.toml:3: control character 0x7f (TOML allows only tab)"),
        ("[[[1]]]\n", "t.toml:1: a table header needs a key (a bare key or a quoted one)"),
        ("[machine]\n  [\nram = 1\n", "t.toml:2: a table header needs a key (a bare key or a quoted one)"),
        // A '}' where an array expects a value: toml++ asserts unless built with NDEBUG
        // (the Makefile's TOML flags), where it reports the error.
        ("dma = [[}t\n", "t.toml:1: "), ("[machine]\nram = [ 1,\n }\n", "t.toml:3: "),
    ])
    func errorsNameTheKeyAndLine(_ text: String, _ expected: String) {
        do {
            _ = try MachineConfig(toml: text, file: "t.toml")
            Issue.record("accepted: \(text)")
        } catch {
            #expect("\(error)".hasPrefix(expected), "\(error)")
        }
    }
}

@Suite struct RestrictedPoolConfigTests {
    @Test func aDeviceBoundToARestrictedPool() throws {
        var config = try MachineConfig(toml: """
            [machine]
            ram = "1G"
            [swiotlb]
            size = "1M"
            [[restricted_pool]]
            name = "restricted-dma@0"
            size = "512K"
            [[device]]
            driver = "generic"
            name = "fw0"
            swiotlb = "restricted-dma@0"
            """, file: "r.toml")
        config.swiotlb.nareas = 2
        let machine = try Machine(config)
        let debugfs = "kernel/debug/swiotlb/restricted-dma@0"
        #expect(try machine.read("\(debugfs)/io_tlb_nslabs") == "256\n")
        // Its coherent memory comes from the restricted pool: a 4 KiB pool page is 2 slots.
        try machine.write("devices/fw0/create_pool", "p 64")
        try machine.write("devices/fw0/dma_pools/p/alloc", "1")
        #expect(try machine.read("\(debugfs)/io_tlb_used") == "2\n")
        #expect(try machine.read("kernel/debug/swiotlb/io_tlb_used") == "0\n")
        #expect(throws: ConfigError.self) {
            try MachineConfig(toml: "[[device]]\ndriver = \"generic\"\nname = \"x\"\nswiotlb = \"nope\"\n", file: "r.toml")
        }
    }

    /// `[machine] kernel` picks what that kernel has, under the file's own keys: 6.1 has the
    /// legacy pool (before v6.4), no CONFIG_SWIOTLB_DYNAMIC (6.6) and its own slot search;
    /// Debian's 6.12 is built without CONFIG_SWIOTLB_DYNAMIC; debugfs shows what each had
    /// (6.1: no io_tlb_used_hiwater; no io_tlb_transient_nslabs without the option).
    @Test func aKernelSelectsWhatItHad() throws {
        let old = try MachineConfig(toml: """
            [machine]
            kernel = "6.1"
            ram = "1G"
            [swiotlb]
            size = "1M"
            [[device]]
            driver = "generic"
            name = "0000:00:04.0"
            """, file: "k.toml")
        #expect(old.dmapoolAlgorithm == .legacy && !old.swiotlb.dynamic)
        let debian = try MachineConfig(toml: "[machine]\nkernel = \"6.12\"\n", file: "k.toml")
        #expect(debian.dmapoolAlgorithm == .stack && !debian.swiotlb.dynamic)
        #expect(try MachineConfig(toml: "[machine]\nkernel = \"6.18\"\n", file: "k.toml").swiotlb.dynamic)
        let mixed = try MachineConfig(
            toml: "[swiotlb]\ndynamic = true\n[dmapool]\nalgorithm = \"rbtree\"\n[machine]\nkernel = \"6.1\"\n", file: "k.toml")
        #expect(mixed.dmapoolAlgorithm == .rbtree && mixed.swiotlb.dynamic)

        let machine = try Machine(old)
        #expect(machine.swiotlb?.kernel == .v6_1)
        let files = try #require(machine.root.node(at: "kernel/debug/swiotlb") as? ControlDirectory).children.map(\.name).sorted()
        #expect(files == ["io_tlb_nslabs", "io_tlb_used"])
        #expect(try machine.read("devices/0000:00:04.0/dmapool_algorithm") == "legacy\n")
        let grows = try Machine(mixed)
        let grown = try #require(grows.root.node(at: "kernel/debug/swiotlb") as? ControlDirectory).children.map(\.name).sorted()
        #expect(grown == ["io_tlb_nslabs", "io_tlb_transient_nslabs", "io_tlb_used"])
        #expect(grows.swiotlb?.kernel == .v6_1)
        // The drivers take the named kernel's defaults; without the key, their own.
        let named = try Machine(MachineConfig(
            toml: "[machine]\nkernel = \"6.18\"\nram = \"1G\"\n[[device]]\ndriver = \"nvme\"\nname = \"nvme0\"\ncapacity = \"16M\"\n", file: "k.toml"))
        #expect(try named.read("devices/nvme0/params/pool_names") == "descriptor\n")
        let unnamed = try Machine(MachineConfig(
            toml: "[machine]\nram = \"1G\"\n[[device]]\ndriver = \"nvme\"\nname = \"nvme0\"\ncapacity = \"16M\"\n", file: "k.toml"))
        #expect(try unnamed.read("devices/nvme0/params/pool_names") == "prp\n")
        // A machine made in code follows its kernel as one made from a file does.
        var inCode = MachineConfig()
        inCode.ramBytes = 1 << 30
        inCode.kernel = .v6_1
        #expect(try Machine(inCode).swiotlb?.kernel == .v6_1)
    }
}
