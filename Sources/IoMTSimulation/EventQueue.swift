/// A binary min-heap ordered by (time, sequence number): events at the same simulated millisecond
/// run in the order they were scheduled, so a run depends on nothing but the seed.
struct EventQueue<Element> {
    private struct Entry {
        var time: UInt64
        var sequence: UInt64
        var element: Element
        func precedes(_ o: Entry) -> Bool { time != o.time ? time < o.time : sequence < o.sequence }
    }

    private var heap: [Entry] = []
    private var nextSequence: UInt64 = 0

    var count: Int { heap.count }
    var isEmpty: Bool { heap.isEmpty }

    mutating func push(_ element: Element, at time: UInt64) {
        heap.append(Entry(time: time, sequence: nextSequence, element: element))
        nextSequence += 1
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard heap[i].precedes(heap[parent]) else { break }
            heap.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> (time: UInt64, element: Element)? {
        guard !heap.isEmpty else { return nil }
        heap.swapAt(0, heap.count - 1)
        let top = heap.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < heap.count, heap[l].precedes(heap[m]) { m = l }
            if r < heap.count, heap[r].precedes(heap[m]) { m = r }
            if m == i { break }
            heap.swapAt(i, m)
            i = m
        }
        return (top.time, top.element)
    }
}
