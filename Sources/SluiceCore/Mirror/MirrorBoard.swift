import CSluiceAtomics
import Synchronization

/// Mirroring's metrics and diff samples for the whole process: an id per (route, mirror) that
/// survives reloads, one `MirrorShard` per worker, and the Prometheus families.
///
/// Thread-safe: the registry has a lock taken when a worker receives a table (never per
/// request); shards are written by their worker only (relaxed single-writer stores) and summed
/// at scrape time.
public final class MirrorBoard: Sendable {
    /// Most (route, mirror) series a process keeps; later ones are not counted.
    public static let maxSeries = 256
    /// Differing pairs kept per worker (and returned at most by `diffs`).
    public static let ringCapacity = 100

    /// One shard per worker.
    public let shards: [MirrorShard]
    private let registry = Mutex<[(route: String, mirror: String)]>([])

    /// A board for `workers` workers.
    public init(workers: Int) {
        shards = (0..<max(1, workers)).map { _ in MirrorShard() }
    }

    /// The series id of each of `table`'s mirrors (-1 past `maxSeries`), registering new names.
    public func ids(for table: RoutingTable) -> [Int32] {
        let names = table.mirrorPlans.map { (table.routes[Int($0.route)].name, $0.spec.name) }
        guard !names.isEmpty else { return [] }
        return registry.withLock { known in
            names.map { name in
                if let i = known.firstIndex(where: { $0.route == name.0 && $0.mirror == name.1 }) { return Int32(i) }
                guard known.count < Self.maxSeries else { return -1 }
                known.append((name.0, name.1))
                return Int32(known.count - 1)
            }
        }
    }

    /// The `sluice_mirror_*` families (empty while no route mirrors).
    public func renderMetrics() -> String {
        let names = registry.withLock { $0 }
        guard !names.isEmpty else { return "" }
        var sums = [UInt64](repeating: 0, count: names.count * MirrorShard.wordsPerSeries)
        for shard in shards {
            for i in sums.indices { sums[i] &+= shard.load(i) }
        }
        func labels(_ s: Int) -> String {
            "route=\"\(Self.escape(names[s].route))\",mirror=\"\(Self.escape(names[s].mirror))\""
        }
        var out = "# HELP sluice_mirror_requests_total Requests selected for mirroring, by route, mirror and what became of the copy.\n"
            + "# TYPE sluice_mirror_requests_total counter\n"
        for s in names.indices {
            for r in MirrorResult.allCases {
                out += "sluice_mirror_requests_total{\(labels(s)),result=\"\(r.label)\"} \(sums[s * MirrorShard.wordsPerSeries + r.rawValue])\n"
            }
        }
        out += "# HELP sluice_mirror_duration_seconds Latency of compared exchanges: the primary's (request start to its last "
            + "response byte) and the mirror's (request copy start to its last response byte).\n"
            + "# TYPE sluice_mirror_duration_seconds histogram\n"
        for s in names.indices {
            for (side, name) in [(0, "primary"), (1, "mirror")] {
                let base = s * MirrorShard.wordsPerSeries + MirrorShard.sideOffset(side)
                var cumulative: UInt64 = 0
                for b in 0..<DurationBuckets.count {
                    cumulative &+= sums[base + b]
                    out += "sluice_mirror_duration_seconds_bucket{\(labels(s)),side=\"\(name)\",le=\"\(DurationBuckets.labels[b])\"} \(cumulative)\n"
                }
                let sum = Double(sums[base + DurationBuckets.count + 1]) / 1e9
                out += "sluice_mirror_duration_seconds_sum{\(labels(s)),side=\"\(name)\"} \(sum)\n"
                out += "sluice_mirror_duration_seconds_count{\(labels(s)),side=\"\(name)\"} \(sums[base + DurationBuckets.count])\n"
            }
        }
        return out
    }

    /// The latest differing pairs of every worker (of `route` only when given), oldest first, at
    /// most `ringCapacity`; `format` writes a Unix time in nanoseconds as text.
    public func diffs(route: String? = nil, format: (UInt64) -> String) -> [MirrorDiff] {
        var all: [(UInt64, MirrorDiff)] = []
        for shard in shards { all += shard.ring.withLock { $0.entries } }
        all.sort { $0.0 < $1.0 }
        return all.filter { route == nil || $0.1.route == route }.suffix(Self.ringCapacity).map { entry in
            var d = entry.1
            d.time = format(entry.0)
            return d
        }
    }

    /// Prometheus label escaping.
    static func escape(_ s: String) -> String {
        var out = ""
        for ch in s {
            switch ch {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(ch)
            }
        }
        return out
    }
}

/// One worker's mirroring counters and its ring of differing pairs.
///
/// Counters: written only by the owning worker (relaxed load + store, no read-modify-write
/// shared with anyone), read by the scrape. The ring is behind a lock the worker takes only
/// when it records a differing pair (never for a match nor for a request that is not mirrored)
/// and the admin side takes to copy it.
public final class MirrorShard: @unchecked Sendable {
    /// Words per series: the results, then per side the duration buckets, a count and a sum.
    static let wordsPerSeries = MirrorResult.allCases.count + 2 * (DurationBuckets.count + 2)
    private let words: UnsafeMutablePointer<UInt64>
    /// The latest differing pairs (Unix nanoseconds, diff), oldest first.
    let ring = Mutex(DiffRing())

    package init() {
        let n = MirrorBoard.maxSeries * Self.wordsPerSeries
        words = .allocate(capacity: n)
        words.initialize(repeating: 0, count: n)
    }

    deinit { words.deallocate() }

    /// Offset of side 0 (primary) or 1 (mirror) in a series.
    static func sideOffset(_ side: Int) -> Int { MirrorResult.allCases.count + side * (DurationBuckets.count + 2) }

    @inline(__always)
    func load(_ i: Int) -> UInt64 { csluice_load_relaxed(words + i) }

    /// Counts one request of series `id` (-1: not counted) as `result`.
    @inline(__always)
    public func record(_ id: Int32, _ result: MirrorResult) {
        guard id >= 0 else { return }
        csluice_add_relaxed(words + Int(id) * Self.wordsPerSeries + result.rawValue, 1)
    }

    /// Records a compared exchange's latencies.
    public func recordLatency(_ id: Int32, primaryNanos: UInt64, mirrorNanos: UInt64) {
        guard id >= 0 else { return }
        for (side, nanos) in [(0, primaryNanos), (1, mirrorNanos)] {
            let base = words + Int(id) * Self.wordsPerSeries + Self.sideOffset(side)
            csluice_add_relaxed(base + DurationBuckets.index(nanos: nanos), 1)
            csluice_add_relaxed(base + DurationBuckets.count, 1)
            csluice_add_relaxed(base + DurationBuckets.count + 1, nanos)
        }
    }

    /// Keeps a differing pair (the oldest goes when the ring is full).
    public func keep(_ diff: MirrorDiff, unixNanos: UInt64) {
        ring.withLock { $0.push((unixNanos, diff)) }
    }
}

/// A fixed-capacity ring of differing pairs.
struct DiffRing: Sendable {
    private var items: [(UInt64, MirrorDiff)] = []
    private var next = 0

    mutating func push(_ item: (UInt64, MirrorDiff)) {
        if items.count < MirrorBoard.ringCapacity {
            items.append(item)
        } else {
            items[next] = item
            next = (next + 1) % MirrorBoard.ringCapacity
        }
    }

    /// Oldest first.
    var entries: [(UInt64, MirrorDiff)] { Array(items[next...] + items[..<next]) }
}
