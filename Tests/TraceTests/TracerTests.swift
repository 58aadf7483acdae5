import Foundation
import Lib
import Testing

@testable import Trace

/// Records `event` as a replayed task would: pid 4242 ("kworker/1:1H"), CPU `cpu`, at
/// 12.345678901 s, so that every field of the line is known.
func recordReplayed(
    _ tracer: Tracer, _ event: TraceEvent, device: String = "0000:00:02.0", cpu: Int = 1, flags: Substring = ".....", _ words: [UInt64]
) {
    var context = Tracer.Context(pid: 4242, nanoseconds: 12_345_678_901, flags: Tracer.flagsWord(flags))
    Tracer.commands.set(4242, "kworker/1:1H")
    withUnsafePointer(to: &context) { context in
        Tracer.replaying(as: context) {
            CPU.acting(as: cpu) {
                tracer.record(event, TraceName(device), payload: words.count) { p in
                    for (i, word) in words.enumerated() { p[i] = word }
                }
            }
        }
    }
}

func enabledTracer(_ kernel: KernelVersion = .v6_12, cpus: Int = 2) -> Tracer {
    let tracer = Tracer(kernel: kernel, cpus: cpus)
    tracer.enable(tracer.events, true)
    return tracer
}

@Suite struct TracerTests {
    @Test func headerIsTheNopTracersAsPrintFuncHelpHeaderIrqPrintsIt() {
        let tracer = enabledTracer(cpus: 2)
        recordReplayed(tracer, .dmaSyncSingleForCPU, [0x1000, 64, 2])
        // kernel/trace/trace.c: "# tracer: %s", print_event_info(), then the irq-info
        // columns with %.*s of prec 2.
        let expected = """
            # tracer: nop
            #
            # entries-in-buffer/entries-written: 1/1   #P:2
            #
            #                                _-----=> irqs-off/BH-disabled
            #                               / _----=> need-resched
            #                              | / _---=> hardirq/softirq
            #                              || / _--=> preempt-depth
            #                              ||| / _-=> migrate-disable
            #                              |||| /     delay
            #           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION
            #              | |         |   |||||     |         |

            """
        #expect(tracer.header() == expected)
    }

    @Test func lineContextIsTraceprintContexts() {
        // "%16s-%-7d " "[%03d] " lat_fmt " %5lu.%06lu" ": "; 12.345678901 s prints as usecs.
        let tracer = enabledTracer()
        recordReplayed(tracer, .dmaSyncSingleForCPU, [0x1000, 64, 2])
        recordReplayed(tracer, .dmaSyncSingleForCPU, flags: "d..1.", [0x1000, 64, 2])
        #expect(tracer.text(tracer.entries()) == """
                kworker/1:1H-4242    [001] .....    12.345678: dma_sync_single_for_cpu: 0000:00:02.0 dir=FROM_DEVICE dma_addr=1000 size=64
                kworker/1:1H-4242    [001] d..1.    12.345678: dma_sync_single_for_cpu: 0000:00:02.0 dir=FROM_DEVICE dma_addr=1000 size=64

            """)
    }

    @Test func anUnknownPidIsShownAsTheKernelShowsOne() {
        let tracer = enabledTracer()
        var context = Tracer.Context(pid: 77, nanoseconds: 1_000, flags: 0)
        withUnsafePointer(to: &context) { context in
            Tracer.replaying(as: context) {
                // CPU 0 named, not the test thread's: the scheduler picks that one.
                CPU.acting(as: 0) {
                    tracer.record(.dmaSyncSingleForCPU, TraceName("d"), payload: 3) { p in (p[0], p[1], p[2]) = (1, 2, 0) }
                }
            }
        }
        #expect(tracer.text(tracer.entries()).hasPrefix("           <...>-77      [000] .....     0.000001: "))
    }

    @Test func disabledEventsAndTracingOffRecordNothing() {
        let tracer = Tracer(kernel: .v6_12, cpus: 1)
        #expect(!tracer.isEnabled(.dmaMapPage))
        tracer.enable([.dmaMapPage], true)
        #expect(tracer.isEnabled(.dmaMapPage) && !tracer.isEnabled(.dmaUnmapPage))
        tracer.tracingOn = false
        #expect(!tracer.isEnabled(.dmaMapPage) && tracer.isChosen(.dmaMapPage))
        tracer.tracingOn = true
        #expect(tracer.isEnabled(.dmaMapPage))
        tracer.enable([.dmaMapPage], false)
        #expect(!tracer.isEnabled(.dmaMapPage))
    }

    @Test func eventsAreMergedAcrossCPUsByTime() {
        let tracer = enabledTracer(cpus: 2)
        for (cpu, time) in [(1, 20), (1, 30), (0, 10), (0, 40)] {
            var context = Tracer.Context(pid: 1, nanoseconds: UInt64(time) * 1000, flags: 0)
            withUnsafePointer(to: &context) { context in
                Tracer.replaying(as: context) {
                    CPU.acting(as: cpu) { tracer.record(.dmaSyncSingleForCPU, TraceName("d"), payload: 3) { p in (p[0], p[1], p[2]) = (UInt64(time), 0, 0) } }
                }
            }
        }
        // Written CPU by CPU, read back in time order across them, as the kernel merges.
        #expect(tracer.entries().map(\.nanoseconds) == [10_000, 20_000, 30_000, 40_000])
        #expect(tracer.entries().map(\.cpu) == [0, 1, 1, 0])
    }

    @Test func aFullRingOverwritesTheOldestAndCountsThemAsWrittenNotInBuffer() {
        let tracer = enabledTracer(cpus: 1)
        tracer.kilobytesPerCPU = 1  // 128 words: records of 3 + 2 + 3 = 8 words, 16 fit
        for i in 0..<100 { recordReplayed(tracer, .dmaSyncSingleForCPU, device: "d", cpu: 0, [UInt64(i), 1, 0]) }
        let (inBuffer, written) = tracer.counts
        #expect(written == 100 && inBuffer == 16)
        // The newest survive, in order.
        #expect(tracer.entries().map { $0.words[5] } == (84..<100).map(UInt64.init))
        tracer.clear()
        #expect(tracer.counts.inBuffer == 0 && tracer.entries().isEmpty)
    }

    @Test func recordsThatDoNotFitAtTheEndWrapWithPadding() {
        let ring = TraceRing()
        ring.resize(words: 10)
        for i in 0..<7 {
            // 3, then 4, words: the 4-word record after 9 words pads the last word.
            _ = ring.write(count: 3 + i % 2) { p in for j in 0..<(3 + i % 2) { p[j] = j == 0 ? UInt64(3 + i % 2) | UInt64(i) << 32 : 0 } }
        }
        let records = ring.records(consume: false)
        #expect(records.map { $0[0] >> 32 } == [5, 6])
        #expect(ring.counters.written == 7 && ring.counters.overrun == 5)
        #expect(ring.write(count: 11) { _ in } == false)
    }

    @Test func consumingTakesTheRecordsAndWaitsForMore() {
        let tracer = enabledTracer(cpus: 1)
        #expect(tracer.consume(nonBlocking: true, stop: { false }) == nil)
        recordReplayed(tracer, .dmaSyncSingleForCPU, cpu: 0, [1, 2, 0])
        #expect(tracer.consume(nonBlocking: true, stop: { false })?.count == 1)
        #expect(tracer.entries().isEmpty && tracer.counts.written == 1)
        // A blocking reader sleeps until an event arrives from another thread: a thread of
        // its own, not a task (the reader blocks its thread, and on a 2-core machine other
        // suites may hold the rest of the cooperative pool: CI once hung here for good).
        let start = monotonicNs()
        let writer = Thread {
            usleep(150_000)
            recordReplayed(tracer, .dmaSyncSingleForCPU, cpu: 0, [3, 4, 0])
        }
        writer.start()
        let got = tracer.consume(nonBlocking: false, stop: { false })
        #expect(got?.count == 1 && monotonicNs() - start >= 150_000_000)
        // And a reader told to stop gives up with nothing.
        #expect(tracer.consume(nonBlocking: false, stop: { true })?.isEmpty == true)
    }

    @Test func eventNamesFollowTheKernelVersion() {
        #expect(TraceEvent.all(in: .v6_1).map { $0.name(in: .v6_1)! } == ["swiotlb_bounced", "dma_pool_create", "dma_pool_alloc", "dma_pool_free", "dma_pool_destroy"])
        let v6_12 = TraceEvent.all(in: .v6_12).filter { $0.system == "dma" }.map { $0.name(in: .v6_12)! }
        #expect(v6_12 == ["dma_map_page", "dma_unmap_page", "dma_map_resource", "dma_unmap_resource", "dma_map_sg", "dma_unmap_sg",
                          "dma_alloc", "dma_free", "dma_sync_single_for_cpu", "dma_sync_single_for_device",
                          "dma_sync_sg_for_cpu", "dma_sync_sg_for_device"])
        #expect(TraceEvent.dmaMapPage.name(in: .v6_18) == "dma_map_phys" && TraceEvent.dmaMapResource.name(in: .v6_18) == nil)
    }
}
