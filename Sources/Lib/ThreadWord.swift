// A word per thread (pthread_getspecific()): what a hot path reads about its own thread
// (the CPU it acts as, a replayed context, its tid) without a lock or an allocation.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

public struct ThreadWord: Sendable {
    private let key: pthread_key_t

    public init() {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        self.key = key
    }

    /// nil until the thread sets it.
    @inline(__always)
    public var value: UnsafeRawPointer? {
        get { UnsafeRawPointer(pthread_getspecific(key)) }
        nonmutating set { pthread_setspecific(key, newValue) }
    }

    /// Runs `body` with the value `value`, then puts back what was there.
    @inline(__always)
    public func with<R, E: Error>(_ value: UnsafeRawPointer?, _ body: () throws(E) -> R) throws(E) -> R {
        let previous = self.value
        self.value = value
        defer { self.value = previous }
        return try body()
    }
}
