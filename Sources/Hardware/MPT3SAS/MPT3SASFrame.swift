// The Fusion-MPT 2.5 message formats both the driver and the IOC use for a SCSI IO: the
// 128-byte request frame (Mpi25SCSIIORequest_t) with its CDB, and the IEEE simple and
// chain scatter-gather elements (MPI25_IEEE_SGE_*).
public enum MPT3SASFrame {
    public static let size = 128
    public static let sglOffset = 0x60
    public static let sgeSize = 16
    // Offsets in Mpi25SCSIIORequest_t.
    public static let chainOffset = 0x02, function = 0x03, sglOffset0 = 0x14, dataLength = 0x1c
    public static let ioFlags = 0x24, control = 0x3c, cdb = 0x40
    public static let functionSCSIIO: UInt8 = 0x00
    public static let controlWrite: UInt32 = 0x0100_0000, controlRead: UInt32 = 0x0200_0000
    public static let read16: UInt8 = 0x88, write16: UInt8 = 0x8a
    // IEEE SGE flags.
    public static let simple: UInt8 = 0x00, chain: UInt8 = 0x80, endOfList: UInt8 = 0x40
}
