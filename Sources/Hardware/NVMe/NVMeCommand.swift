// The NVM Express command set as both sides use it: the 64-byte submission queue entry of
// a read or write (struct nvme_rw_command), its data pointer as PRPs or an SGL (NVMe 1.4,
// 4.3 and 4.4) in pages of the controller's memory page size.
public enum NVMeCommand {
    public static let size = 64
    public static let write: UInt8 = 0x01, read: UInt8 = 0x02
    // Offsets in struct nvme_rw_command.
    public static let flags = 1, commandID = 2, nsid = 4, prp1 = 24, prp2 = 32, slba = 40, length = 48
    /// NVME_CMD_SGL_METABUF: PSDT = 01b.
    public static let sglFlag: UInt8 = 0x40
    public static let dataBlock: UInt8 = 0x00, lastSegment: UInt8 = 0x30, segment: UInt8 = 0x20
    public static let pageSize = 4096
}
