// The emulated MegaRAID controller (an MFI-series SAS1078, as QEMU's megasas): its status
// register says how many commands and scatter-gather elements its firmware takes, and
// given a command's frame address it fetches the frame by DMA, checks the logical drive
// read or write, walks the SGL in the frame (skinny or 64-bit, as the frame's flags say)
// by dma address, moves each element's
// bytes between the disk and memory, and writes the command status back into the frame.
// A malformed frame fails the command with the status the firmware would set.
import DMA
import SystemPackage

public struct MFIController: @unchecked Sendable {  // the store and device are shared, thread-safe
    public let device: Device
    public let store: any BackingStore
    /// The firmware's command count and SGE limit (QEMU's max_cmds and max_sge).
    public let commands: Int
    public let maxSGE: Int
    /// Whether it takes IEEE (skinny) SGLs.
    public let ieee: Bool

    public init(device: Device, store: any BackingStore, commands: Int, maxSGE: Int, ieee: Bool) {
        self.device = device
        self.store = store
        self.commands = commands
        self.maxSGE = maxSGE
        self.ieee = ieee
    }

    /// The outbound scratch pad the driver reads at init (read_fw_status_reg()): ready,
    /// IEEE SGL support, the SGE limit in bits 16-23, the command count in bits 0-15.
    public var statusRegister: UInt32 {
        MFIFrame.stateReady | (ieee ? MFIFrame.supportsIEEE : 0) | UInt32(maxSGE & 0xff) << 16 | UInt32(commands & 0xffff)
    }

    func fail(_ frameDMA: DMAAddr, _ status: UInt8, _ why: String) -> Errno {
        device.err("megaraid_sas: frame 0x\(String(frameDMA, radix: 16)): \(why)")
        setStatus(frameDMA, status)
        return .ioError
    }

    /// The firmware writes cmd_status into the host's frame when the command is done.
    func setStatus(_ frameDMA: DMAAddr, _ status: UInt8) {
        withUnsafeBytes(of: status) { try? device.deviceWrite(frameDMA + DMAAddr(MFIFrame.cmdStatus), from: $0) }
    }

    /// Executes the command whose frame is at `frameDMA`.
    public func run(frame frameDMA: DMAAddr) throws(Errno) {
        try withUnsafeTemporaryAllocation(byteCount: MFIFrame.size, alignment: 16) { (frame) throws(Errno) in
            do { try device.deviceRead(frameDMA, into: frame) } catch { throw fail(frameDMA, MFIFrame.statusInvalidParameter, "frame not readable") }
            let base = UnsafeRawPointer(frame.baseAddress!)
            let cmd = base.load(fromByteOffset: MFIFrame.cmd, as: UInt8.self)
            let flags = UInt16(littleEndian: base.loadUnaligned(fromByteOffset: MFIFrame.flags, as: UInt16.self))
            let write = cmd == MFIFrame.ldWrite
            guard write || cmd == MFIFrame.ldRead, flags & (write ? MFIFrame.dirWrite : MFIFrame.dirRead) != 0,
                  flags & MFIFrame.sgl64 != 0
            else { throw fail(frameDMA, MFIFrame.statusInvalidParameter, "not a 64-bit LD read or write") }
            let sectors = Int(UInt32(littleEndian: base.loadUnaligned(fromByteOffset: MFIFrame.lbaCount, as: UInt32.self)))
            let lba = Int(UInt64(UInt32(littleEndian: base.loadUnaligned(fromByteOffset: MFIFrame.startLBALo, as: UInt32.self)))
                | UInt64(UInt32(littleEndian: base.loadUnaligned(fromByteOffset: MFIFrame.startLBAHi, as: UInt32.self))) << 32)
            guard (lba + sectors) * LBA.size <= store.capacity else { throw fail(frameDMA, MFIFrame.statusLBAOutOfRange, "LBA out of range") }
            let skinny = flags & MFIFrame.ieee != 0
            let elementSize = skinny ? MFIFrame.skinnySize : MFIFrame.sge64Size
            let count = Int(base.load(fromByteOffset: MFIFrame.sgeCount, as: UInt8.self))
            guard count >= 1, count <= maxSGE, count <= MFIFrame.maxElements(ieee: skinny) else {
                throw fail(frameDMA, MFIFrame.statusInvalidParameter, "\(count) SGEs")
            }
            var position = lba * LBA.size, moved = 0
            for i in 0..<count {
                let at = base + MFIFrame.sgl + i * elementSize
                let address = UInt64(littleEndian: at.loadUnaligned(as: UInt64.self))
                let length = Int(UInt32(littleEndian: at.loadUnaligned(fromByteOffset: 8, as: UInt32.self)))
                guard moved + length <= sectors * LBA.size else { throw fail(frameDMA, MFIFrame.statusInvalidParameter, "SGL longer than the data") }
                do throws(Errno) {
                    try store.dma(device, address: address, length: length, position: position, write: write)
                } catch {
                    throw fail(frameDMA, MFIFrame.statusInvalidParameter, "SGE not mapped")
                }
                position += length
                moved += length
            }
            guard moved == sectors * LBA.size else { throw fail(frameDMA, MFIFrame.statusInvalidParameter, "SGL shorter than the data") }
            setStatus(frameDMA, MFIFrame.statusOK)
        }
    }
}
