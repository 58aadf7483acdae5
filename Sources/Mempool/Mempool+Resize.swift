// mempool_resize(): shrinking frees surplus reserve at once; growing makes room first
// and then tops the reserve up with GFP_KERNEL allocations, giving up quietly at the
// first failure (later frees refill it). May sleep; not for atomic context.
import PhysicalMemory

extension Mempool {
    public func resize(_ newMinNr: Int) throws(MempoolError) {
        guard newMinNr > 0 else { throw .invalidMinimum(newMinNr) }
        wait.lock()
        if newMinNr <= minNr.load(ordering: .relaxed) {
            while newMinNr < currNr.load(ordering: .relaxed) {
                let n = currNr.load(ordering: .relaxed) - 1
                let element = elements[n]
                currNr.store(n, ordering: .relaxed)
                wait.unlock()
                freeFunction(element)
                wait.lock()
            }
            minNr.store(newMinNr, ordering: .relaxed)
            wait.unlock()
            return
        }
        if newMinNr > capacity {
            let grown = UnsafeMutablePointer<Element>.allocate(capacity: newMinNr)
            grown.update(from: elements, count: currNr.load(ordering: .relaxed))
            elements.deallocate()
            elements = grown
            capacity = newMinNr
        }
        minNr.store(newMinNr, ordering: .relaxed)
        while currNr.load(ordering: .relaxed) < minNr.load(ordering: .relaxed) {
            wait.unlock()
            // A bulk pool has no single-element alloc (the series would call NULL here);
            // its reserve grows with alloc_page() as it was filled.
            guard let element = fill(.kernel) else { return }
            wait.lock()
            let n = currNr.load(ordering: .relaxed)
            guard n < minNr.load(ordering: .relaxed) else {
                // Raced with a free or another resize: the reserve is full already.
                wait.unlock()
                freeFunction(element)
                return
            }
            elements[n] = element
            currNr.store(n + 1, ordering: .relaxed)
        }
        wait.unlock()
    }
}
