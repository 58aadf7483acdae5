// What the mpt3sas driver writes for one SCSI IO (_base_build_sg_scmd_ieee() and the
// request it sits in): a 128-byte MPI 2.5 SCSI IO request frame with a READ(16) or
// WRITE(16) CDB, and the scatter list as IEEE 16-byte SGEs (Address u64, Length u32,
// reserved, NextChainOffset u8, Flags u8). The frame's SGL area at 0x60 has two slots:
// a list of one or two entries fits there; a longer one puts one simple element in the
// frame and a chain element in the last slot, pointing at the command's first chain
// buffer. Each chain buffer holds up to 7 simple elements, and, when more follow, a chain
// element after them; the last segment's final element carries END_OF_LIST.
import Block
import DMA
import Hardware

enum MPT3SASSGL {
    /// Writes one IEEE SGE.
    @inline(__always)
    static func element(_ at: UnsafeMutableRawPointer, address: UInt64, length: Int, nextChainOffset: UInt8 = 0, flags: UInt8) {
        at.storeBytes(of: address.littleEndian, as: UInt64.self)
        at.storeBytes(of: UInt32(length).littleEndian, toByteOffset: 8, as: UInt32.self)
        at.storeBytes(of: UInt16(0), toByteOffset: 12, as: UInt16.self)
        at.storeBytes(of: nextChainOffset, toByteOffset: 14, as: UInt8.self)
        at.storeBytes(of: flags, toByteOffset: 15, as: UInt8.self)
    }

    /// Fills the request frame for `command` (zeroing it first).
    static func buildRequest(_ frame: UnsafeMutableRawPointer, _ command: BlockCommand) {
        frame.initializeMemory(as: UInt8.self, repeating: 0, count: MPT3SASFrame.size)
        frame.storeBytes(of: UInt16(1).littleEndian, as: UInt16.self)  // DevHandle
        frame.storeBytes(of: MPT3SASFrame.functionSCSIIO, toByteOffset: MPT3SASFrame.function, as: UInt8.self)
        frame.storeBytes(of: UInt8(MPT3SASFrame.sglOffset / 4), toByteOffset: MPT3SASFrame.sglOffset0, as: UInt8.self)
        frame.storeBytes(of: UInt32(command.bytes).littleEndian, toByteOffset: MPT3SASFrame.dataLength, as: UInt32.self)
        frame.storeBytes(of: UInt16(16).littleEndian, toByteOffset: MPT3SASFrame.ioFlags, as: UInt16.self)  // CDB length
        let control = command.write ? MPT3SASFrame.controlWrite : MPT3SASFrame.controlRead
        frame.storeBytes(of: control.littleEndian, toByteOffset: MPT3SASFrame.control, as: UInt32.self)
        let cdb = frame + MPT3SASFrame.cdb
        cdb.storeBytes(of: command.write ? MPT3SASFrame.write16 : MPT3SASFrame.read16, as: UInt8.self)
        cdb.storeBytes(of: UInt64(command.lba).bigEndian, toByteOffset: 2, as: UInt64.self)
        cdb.storeBytes(of: UInt32(command.sectors).bigEndian, toByteOffset: 10, as: UInt32.self)
    }

    /// Writes the SGL for `list` into `frame` and the chain buffers `chains(i)` gives;
    /// returns how many chain buffers it used.
    @discardableResult
    static func build(
        frame: UnsafeMutableRawPointer, list: UnsafeMutableBufferPointer<ScatterEntry>,
        chainSegmentSize: Int, chains: (Int) -> HeldBlock
    ) -> Int {
        let sge = MPT3SASFrame.sgeSize
        let inMain = (MPT3SASFrame.size - MPT3SASFrame.sglOffset) / sge
        let inChain = (chainSegmentSize - sge) / sge
        var slot = frame + MPT3SASFrame.sglOffset
        var next = 0
        var left = list.count
        var used = 0
        if left > inMain {
            frame.storeBytes(of: UInt8(inMain - 1 + MPT3SASFrame.sglOffset / sge), toByteOffset: MPT3SASFrame.chainOffset, as: UInt8.self)
            for _ in 0..<(inMain - 1) {
                element(slot, address: list[next].dmaAddress, length: list[next].dmaLength, flags: MPT3SASFrame.simple)
                slot += sge
                next += 1
                left -= 1
            }
            while true {
                let inSegment = min(left, inChain)
                let last = inSegment == left
                let buffer = chains(used)
                used += 1
                element(slot, address: buffer.dma, length: (inSegment + (last ? 0 : 1)) * sge,
                        nextChainOffset: last ? 0 : UInt8(inSegment), flags: MPT3SASFrame.chain)
                slot = buffer.cpu
                if last { break }
                for _ in 0..<inSegment {
                    element(slot, address: list[next].dmaAddress, length: list[next].dmaLength, flags: MPT3SASFrame.simple)
                    slot += sge
                    next += 1
                    left -= 1
                }
            }
        }
        while left > 0 {
            element(slot, address: list[next].dmaAddress, length: list[next].dmaLength,
                    flags: left == 1 ? MPT3SASFrame.endOfList : MPT3SASFrame.simple)
            slot += sge
            next += 1
            left -= 1
        }
        return used
    }
}
