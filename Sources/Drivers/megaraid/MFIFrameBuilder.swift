// What megasas_build_ldio() writes into a command's frame for a read or write of a logical
// drive: the io frame, with its SGL from offset 0x28, one element per mapped segment
// (megasas_make_sgl_skinny() when the firmware takes IEEE SGLs, megasas_make_sgl64()
// otherwise), and cmd_status set to MFI_STAT_INVALID_STATUS until the firmware answers.
import Block
import DMA
import Hardware

enum MFIFrameBuilder {
    static let invalidStatus: UInt8 = 0xff

    static func buildLDIO(_ frame: UnsafeMutableRawPointer, _ command: BlockCommand, _ list: UnsafeMutableBufferPointer<ScatterEntry>,
                          sense: DMAAddr, senseLength: UInt8, ieee: Bool) {
        // The context (the command's index) stays; everything up to the SGL is rewritten.
        let context = frame.load(fromByteOffset: MFIFrame.context, as: UInt32.self)
        frame.initializeMemory(as: UInt8.self, repeating: 0, count: MFIFrame.sgl)
        frame.storeBytes(of: context, toByteOffset: MFIFrame.context, as: UInt32.self)
        frame.storeBytes(of: command.write ? MFIFrame.ldWrite : MFIFrame.ldRead, toByteOffset: MFIFrame.cmd, as: UInt8.self)
        frame.storeBytes(of: senseLength, toByteOffset: MFIFrame.senseLength, as: UInt8.self)
        frame.storeBytes(of: invalidStatus, toByteOffset: MFIFrame.cmdStatus, as: UInt8.self)
        let flags = (command.write ? MFIFrame.dirWrite : MFIFrame.dirRead) | MFIFrame.sgl64 | (ieee ? MFIFrame.ieee : 0)
        frame.storeBytes(of: flags.littleEndian, toByteOffset: MFIFrame.flags, as: UInt16.self)
        frame.storeBytes(of: UInt32(command.sectors).littleEndian, toByteOffset: MFIFrame.lbaCount, as: UInt32.self)
        frame.storeBytes(of: UInt32(truncatingIfNeeded: sense).littleEndian, toByteOffset: MFIFrame.senseLo, as: UInt32.self)
        frame.storeBytes(of: UInt32(truncatingIfNeeded: sense >> 32).littleEndian, toByteOffset: MFIFrame.senseHi, as: UInt32.self)
        let lba = UInt64(command.lba)
        frame.storeBytes(of: UInt32(truncatingIfNeeded: lba).littleEndian, toByteOffset: MFIFrame.startLBALo, as: UInt32.self)
        frame.storeBytes(of: UInt32(truncatingIfNeeded: lba >> 32).littleEndian, toByteOffset: MFIFrame.startLBAHi, as: UInt32.self)
        frame.storeBytes(of: UInt8(list.count), toByteOffset: MFIFrame.sgeCount, as: UInt8.self)
        let size = ieee ? MFIFrame.skinnySize : MFIFrame.sge64Size
        for (i, entry) in list.enumerated() {
            let at = frame + MFIFrame.sgl + i * size
            at.storeBytes(of: entry.dmaAddress.littleEndian, as: UInt64.self)
            at.storeBytes(of: UInt32(entry.dmaLength).littleEndian, toByteOffset: 8, as: UInt32.self)
            if ieee { at.storeBytes(of: UInt32(0), toByteOffset: 12, as: UInt32.self) }  // flag
        }
    }
}
