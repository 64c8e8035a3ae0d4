/// Objects waiting for the worker to act on them, handed out a batch at a time (streams with
/// news for their exchange, streams whose output nghttp2 took, connections with frames to send).
///
/// Two buffers swap: what is appended while a batch is processed waits for the next `drain`, and
/// once both have grown nothing is allocated (copying an array out and emptying it, the obvious
/// way, allocates a new buffer per batch). A `drain` called from inside another of the same list
/// takes what was added since the outer one started, copying it out as before (the rare case).
///
/// Owned by one worker loop.
final class WorkList<Item: AnyObject> {
    private var items: [Item] = []
    private var batch: [Item] = []
    private var draining = false

    var isEmpty: Bool { items.isEmpty }

    func append(_ item: Item) { items.append(item) }

    /// Forgets every waiting item.
    func removeAll() { items.removeAll(keepingCapacity: true) }

    /// Calls `body` with each item waiting now, in order.
    func drain(_ body: (Item) -> Void) {
        guard !items.isEmpty else { return }
        guard !draining else {
            let nested = items
            items.removeAll(keepingCapacity: true)
            for item in nested { body(item) }
            return
        }
        draining = true
        swap(&items, &batch)
        for item in batch { body(item) }
        batch.removeAll(keepingCapacity: true)
        draining = false
    }
}
