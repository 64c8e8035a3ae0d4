/// A binary min-heap of connection deadlines, driving epoll_wait's timeout.
///
/// Entries are (deadline, fd, generation); a connection re-arms lazily: it pushes an entry
/// only when its new deadline is earlier than the one already queued, and when a queued
/// entry fires the owner re-checks its current deadline (see `Worker.fireTimers`). Owned by one loop.
struct TimerHeap {
    struct Entry {
        var deadline: UInt64
        var fd: Int32
        var generation: UInt32
    }

    private var items: [Entry] = []

    /// Number of queued entries.
    var count: Int { items.count }

    /// Earliest deadline, if any.
    var earliest: UInt64? { items.first?.deadline }

    /// Queues an entry.
    mutating func push(_ e: Entry) {
        items.append(e)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            if items[parent].deadline <= items[i].deadline { break }
            items.swapAt(parent, i)
            i = parent
        }
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    mutating func popDue(now: UInt64) -> Entry? {
        guard let first = items.first, first.deadline <= now else { return nil }
        let last = items.removeLast()
        if items.isEmpty { return first }
        items[0] = last
        var i = 0
        let n = items.count
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < n && items[l].deadline < items[m].deadline { m = l }
            if r < n && items[r].deadline < items[m].deadline { m = r }
            if m == i { break }
            items.swapAt(i, m)
            i = m
        }
        return first
    }
}
