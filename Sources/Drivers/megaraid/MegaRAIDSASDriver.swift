// A MegaRAID SAS controller of the MFI series (QEMU's megasas, an LSI SAS1078) and its
// driver's probe (megasas_init_adapter_mfi(), megasas_create_frame_pool()): the firmware's
// status register gives the command count and the SGE limit; the driver keeps one command
// back (max_fw_cmds = count - 1, the reply queue holding one more), 32 of them for its
// own DCMDs and ioctls, and gives every command a 1024-byte frame (an MFI frame and the 15
// more its SGL may fill) from "megasas frame pool" (align 256) and a 128-byte sense buffer
// from "megasas sense pool" (align 4). With QEMU's 1000 commands that is 999 of each: on
// 6.1 `megasas frame pool 999 1332 1024 333`, on 6.12 `999 1000 1024 250`, as the real
// kernels print for QEMU's controller. I/O (megasas_build_ldio()): each command's own
// frame carries the LD read or write and its SGL; the firmware runs it and writes the
// status back. A firmware with IEEE SGLs (QEMU's) gets skinny elements and at most
// MEGASAS_MAX_SECTORS_IEEE (128 KiB) a request, as the guests' queues show. Remove frees every frame and sense buffer, then destroys the pools.
import Block
import DMA
import Hardware
import Lib
import Locking
import SystemPackage

public final class MegaRAIDSASDriver: DiskDriver, DMABlockDriver {
    public static let name = "megaraid_sas"

    public init() {}

    struct Parameters {
        /// The firmware's command count and SGE limit (QEMU's max_cmds and max_sge).
        var firmwareCommands = 1000
        var firmwareSGE = 80
        var firmwareIEEE = true
        var disk = DiskParameters()
    }

    /// MEGASAS_INT_CMDS: the commands the driver keeps for its DCMDs and ioctls.
    static let internalCommands = 32
    /// SCSI_SENSE_BUFFERSIZE, what an io frame asks the firmware to fill at most.
    static let senseLength: UInt8 = 96
    /// SGE_BUFFER_SIZE: max_sectors_per_req is an SGE's 4 KiB per element.
    static let sgeBufferSize = 4096
    /// MEGASAS_MAX_SECTORS_IEEE in bytes.
    static let maxIEEETransfer = 256 * BlockLimits.sectorSize

    final class Instance: Sendable {
        let queue: BlockQueue
        let controller: MFIController
        let frames: [HeldBlock]
        let senses: [HeldBlock]
        let commands: TagSet
        let ieee: Bool

        init(queue: BlockQueue, controller: MFIController, frames: [HeldBlock], senses: [HeldBlock], scsiCommands: Int, ieee: Bool) {
            self.queue = queue
            self.controller = controller
            self.frames = frames
            self.senses = senses
            commands = TagSet(0...(scsiCommands - 1))
            self.ieee = ieee
        }
    }

    private let state = PthreadMutex(Parameters())
    let instance = PthreadMutex<Instance?>(nil)
    /// The reply queue, producer and consumer indices (dma_alloc_coherent()).
    private let queues = CoherentBuffers()
    public var queue: BlockQueue? { instance.withLock { $0?.queue } }

    public var parameters: [(name: String, value: String)] {
        let p = state.withLock { $0 }
        return [("fw_cmds", String(p.firmwareCommands)), ("fw_sge", String(p.firmwareSGE)), ("fw_ieee", p.firmwareIEEE ? "1" : "0")]
            + p.disk.values
    }

    public func setParameter(_ name: String, _ value: String) throws(Errno) {
        switch name {
        case "fw_cmds":
            // The driver needs its internal commands and at least one for I/O.
            let count = Int(try StoreParsing.number(value, max: 65535))
            guard count >= Self.internalCommands + 2 else { throw .invalidArgument }
            state.withLock { $0.firmwareCommands = count }
        case "fw_sge":
            let count = Int(try StoreParsing.number(value, max: 255))
            guard count >= 1 else { throw .invalidArgument }
            state.withLock { $0.firmwareSGE = count }
        case "fw_ieee":
            let on = try StoreParsing.number(value, max: 1)
            state.withLock { $0.firmwareIEEE = on == 1 }
        default:
            try state.withLock { (p) throws(Errno) in guard try p.disk.set(name, value) else { throw .invalidArgument } }
        }
    }

    public func probe(_ context: ProbeContext) throws(Errno) {
        let p = state.withLock { $0 }
        let device = context.device
        let store = try p.disk.makeStore()
        let controller = MFIController(device: device, store: store, commands: p.firmwareCommands, maxSGE: p.firmwareSGE, ieee: p.firmwareIEEE)
        let status = controller.statusRegister
        let maxFirmwareCommands = Int(status & 0xffff) - 1
        let maxSGE = Int((status & 0xff_0000) >> 16)
        let ieee = status & MFIFrame.supportsIEEE != 0
        let frames = Array(try context.createPool("megasas frame pool", size: MFIFrame.size, align: 256)
            .allocForDriver(maxFirmwareCommands, zero: true))
        let senses = Array(try context.createPool("megasas sense pool", size: 128, align: 4).allocForDriver(maxFirmwareCommands))
        for (index, frame) in frames.enumerated() {
            frame.cpu.storeBytes(of: UInt32(index).littleEndian, toByteOffset: MFIFrame.context, as: UInt32.self)
        }
        _ = try queues.alloc(device, size: 4 * (maxFirmwareCommands + 1))  // reply_queue
        _ = try queues.alloc(device, size: 4)  // producer
        _ = try queues.alloc(device, size: 4)  // consumer
        // sg_tablesize max_num_sge of any size (the template's max_segment_size 0xffffffff);
        // max_sectors_per_req an SGE buffer per element, or 128 KiB with IEEE SGLs, capped
        // by what one mapping may be (scsi_add_host()).
        let mapping = device.maxMappingSize / BlockLimits.sectorSize * BlockLimits.sectorSize
        let perRequest = ieee ? Self.maxIEEETransfer : maxSGE * Self.sgeBufferSize
        let limits = BlockLimits(maxSegments: maxSGE, maxSegmentSize: Int(UInt32.max), maxTransfer: min(perRequest, mapping))
        let queue = BlockQueue(device: device, capacity: store.capacity, limits: limits, driver: self)
        instance.withLock {
            $0 = Instance(queue: queue, controller: controller, frames: frames, senses: senses,
                          scsiCommands: maxFirmwareCommands - Self.internalCommands, ieee: ieee)
        }
    }

    /// megasas_queue_command(): a command (waiting while all are busy), its frame filled
    /// as megasas_build_ldio() fills it, the firmware runs it and sets its status.
    public func queueRequest(_ command: BlockCommand, _ list: UnsafeMutableBufferPointer<ScatterEntry>,
                             status: UnsafeMutablePointer<UInt16>) throws(Errno) -> UnsafeRawPointer? {
        guard let instance = instance.withLock({ $0 }) else { throw .noDevice }
        // The kernel trusts the firmware's SGE count; an SGL that would run past the frame
        // (more than 61 skinny elements: never within 128 KiB of pages) fails instead.
        guard list.count <= MFIFrame.maxElements(ieee: instance.ieee) else {
            instance.queue.device.err("megaraid_sas: build_ld_io: sge_count = \(list.count) does not fit the frame")
            throw .ioError
        }
        do {
            let index = instance.commands.get()
            defer { instance.commands.put(index) }
            let frame = instance.frames[index], sense = instance.senses[index]
            MFIFrameBuilder.buildLDIO(frame.cpu, command, list, sense: sense.dma, senseLength: Self.senseLength, ieee: instance.ieee)
            try instance.controller.run(frame: frame.dma)
            guard frame.cpu.load(fromByteOffset: MFIFrame.cmdStatus, as: UInt8.self) == MFIFrame.statusOK else { throw .ioError }
        }
        return nil
    }

    public func stop() {
        let queue = instance.withLock { $0?.queue }
        queue?.freeze()
        instance.withLock { $0 = nil }
    }

    public func remove(_ device: Device) { queues.freeAll(device) }

    /// SYNCHRONIZE CACHE: the controller's disk makes what it wrote durable.
    public func flush() throws(Errno) {
        guard let instance = instance.withLock({ $0 }) else { throw .noDevice }
        try instance.controller.store.flush()
    }
}
