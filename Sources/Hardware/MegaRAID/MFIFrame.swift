// The MegaRAID firmware interface (MFI) both megaraid_sas and the controller use for a
// logical drive read or write: the io frame (struct megasas_io_frame) at the start of a
// command's frame, its scatter-gather elements from offset 0x28 on into the frame's extra
// 64-byte frames (struct megasas_sge_skinny, 16 bytes, when the firmware supports IEEE
// SGLs, as QEMU's does; struct megasas_sge64, 12 bytes, otherwise), and the status the
// firmware reports.
public enum MFIFrame {
    /// MEGAMFI_FRAME_SIZE, and the 15 extra frames an MFI-series command carries its SGL in.
    public static let unit = 64
    public static let size = 16 * unit
    /// sizeof(struct megasas_sge64) and sizeof(struct megasas_sge_skinny).
    public static let sge64Size = 12, skinnySize = 16
    // Offsets in struct megasas_io_frame.
    public static let cmd = 0x00, senseLength = 0x01, cmdStatus = 0x02, targetID = 0x04, sgeCount = 0x07
    public static let context = 0x08, flags = 0x10, lbaCount = 0x14, senseLo = 0x18, senseHi = 0x1c
    public static let startLBALo = 0x20, startLBAHi = 0x24, sgl = 0x28
    /// The elements one frame holds.
    public static func maxElements(ieee: Bool) -> Int { (size - sgl) / (ieee ? skinnySize : sge64Size) }
    // enum MFI_CMD_OP.
    public static let ldRead: UInt8 = 0x01, ldWrite: UInt8 = 0x02
    // MFI_FRAME_* flags.
    public static let sgl64: UInt16 = 0x0002, dirWrite: UInt16 = 0x0008, dirRead: UInt16 = 0x0010, ieee: UInt16 = 0x0020
    // MFI_STAT_*.
    public static let statusOK: UInt8 = 0x00, statusInvalidParameter: UInt8 = 0x03, statusLBAOutOfRange: UInt8 = 0x0d
    /// MFI_FWSTATE_READY, in the status register's top nibble, and the bit saying the
    /// firmware takes IEEE (skinny) SGLs (megasas_init_mfi()'s fw_support_ieee).
    public static let stateReady: UInt32 = 0xb000_0000, supportsIEEE: UInt32 = 0x0400_0000
}
