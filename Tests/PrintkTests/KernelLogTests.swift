import Locking
import Printk
import Testing

@Suite struct KernelLogTests {
    @Test func theRingKeepsTheNewestLines() {
        let log = KernelLog(capacity: 3)
        for i in 1...5 { log.printk(.info, "line \(i)") }
        #expect(log.texts() == ["line 3", "line 4", "line 5"])
        #expect(log.messages.map(\.sequence) == [2, 3, 4])
        #expect(log.texts(after: 3) == ["line 5"])
        #expect(log.nextSequence == 5)
    }

    @Test func theSinkSeesEveryLine() {
        let seen = PthreadMutex<[String]>([])
        let log = KernelLog(capacity: 1) { message in seen.withLock { $0.append(message.text) } }
        log.printk(.err, "a")
        log.printk(.warning, "b")
        #expect(seen.withLock { $0 } == ["a", "b"])
    }
}
