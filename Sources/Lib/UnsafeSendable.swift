/// A value handed between threads that only one uses at a time (a request's scratch
/// buffers, a queue's submission ring): the hand-over is what serialises it.
public struct UnsafeSendable<Value>: @unchecked Sendable {
    public let value: Value
    public init(_ value: Value) { self.value = value }
}
