import SluiceCore

/// `GET /admin/endpoints`: every upstream group of the serving table with its endpoints'
/// availability (`sluice status` prints it as a table, marking ejected and unhealthy endpoints).
public struct EndpointsReport: Codable, Sendable, Equatable {
    /// One upstream group.
    public struct Group: Codable, Sendable, Equatable {
        /// The upstream's name.
        public var upstream: String
        /// Fewer than half of the endpoints are available: balanced over all of them.
        public var panic: Bool
        /// Its endpoints in table order.
        public var endpoints: [EndpointRow]
        /// Its circuit-breaker and least-request counts, when it has any of those (nil otherwise).
        public var load: Load? = nil
    }

    /// What `UpstreamLoad` counts for a group with circuit breakers or `balance: least_request`
    /// (summed over workers; a limit of 0 means none).
    public struct Load: Codable, Sendable, Equatable {
        /// `round_robin` or `least_request`.
        public var balance: String
        /// Requests in flight, and `max_requests`.
        public var requests: Int
        public var maxRequests: Int
        /// Connects in progress, and `max_pending`.
        public var pending: Int
        public var maxPending: Int
        /// Connections open (idle pooled ones included), and `max_connections`.
        public var connections: Int
        public var maxConnections: Int

        enum CodingKeys: String, CodingKey {
            case balance, requests, pending, connections
            case maxRequests = "max_requests", maxPending = "max_pending", maxConnections = "max_connections"
        }
    }

    /// One endpoint (one address of a host-name endpoint).
    public struct EndpointRow: Codable, Sendable, Equatable {
        /// The address connected to.
        public var address: String
        /// The endpoint as written in the config.
        public var label: String
        /// `up`, `ejected`, `unhealthy` or `ejected,unhealthy`.
        public var state: String
        /// Seconds left of the current ejection (0 when not ejected).
        public var ejectedForSeconds: Double
        /// Times outlier detection ejected it.
        public var ejections: UInt64
        /// Attempts sent to it (summed over workers).
        public var requests: UInt64
        /// Attempts that failed (as outlier detection counts failures).
        public var errors: UInt64
        /// Consecutive failures counted towards the next ejection.
        public var consecutiveFailures: UInt64
        /// Attempts in flight to it, in a group with a `Load` (nil otherwise).
        public var inFlight: UInt64? = nil

        enum CodingKeys: String, CodingKey {
            case address, label, state, ejectedForSeconds = "ejected_for_seconds", ejections, requests, errors
            case consecutiveFailures = "consecutive_failures", inFlight = "in_flight"
        }
    }

    /// Every upstream group of the serving table.
    public var upstreams: [Group]

    /// The report for `health`'s current table at monotonic time `now`.
    public static func build(_ health: EndpointHealth, now: UInt64 = ControlClock.monotonicNanos()) -> EndpointsReport {
        guard let a = health.current else { return EndpointsReport(upstreams: []) }
        var groups: [Group] = []
        let load = a.table.load
        for (gi, group) in a.table.upstreams.enumerated() {
            let tracked = load.isTracked(gi)
            var rows: [EndpointRow] = []
            var available = 0
            for (ei, e) in group.endpoints.enumerated() {
                let s = health.state(a.slots[a.table.flatIndex(upstream: Int32(gi), endpoint: Int32(ei))])
                var marks: [String] = []
                if s?.ejected == true { marks.append("ejected") }
                if s?.downByCheck == true { marks.append("unhealthy") }
                if marks.isEmpty { available += 1 }
                let left = s.map { $0.ejected && $0.ejectedUntil > now ? Double($0.ejectedUntil - now) / 1e9 : 0 } ?? 0
                rows.append(EndpointRow(address: "\(e.address)", label: e.label, state: marks.isEmpty ? "up" : marks.joined(separator: ","),
                                        ejectedForSeconds: (left * 10).rounded() / 10, ejections: s?.ejections ?? 0,
                                        requests: s?.requests ?? 0, errors: s?.errors ?? 0, consecutiveFailures: s?.failures ?? 0,
                                        inFlight: tracked ? load.inFlight(flat: a.table.flatEndpoint(upstream: Int32(gi), endpoint: Int32(ei))) : nil))
            }
            var groupLoad: Load?
            if tracked {
                let spec = load.specs[gi]
                groupLoad = Load(balance: spec.balance == .leastRequest ? "least_request" : "round_robin",
                                 requests: load.value(.requests, group: gi), maxRequests: spec.maxRequests,
                                 pending: load.value(.pending, group: gi), maxPending: spec.maxPending,
                                 connections: load.value(.connections, group: gi), maxConnections: spec.maxConnections)
            }
            groups.append(Group(upstream: group.name, panic: OutlierPolicy.panics(available: available, total: group.endpoints.count),
                                endpoints: rows, load: groupLoad))
        }
        return EndpointsReport(upstreams: groups)
    }

    /// The `sluice status` section: one table per group, unavailable endpoints marked.
    public var text: String {
        var out = "endpoints\n"
        var rows: [[String]] = [["UPSTREAM", "ENDPOINT", "STATE", "EJECTIONS", "REQUESTS", "ERRORS"]]
        for g in upstreams {
            for e in g.endpoints {
                let endpoint = e.label == e.address ? e.address : "\(e.label) (\(e.address))"
                var state = e.state == "up" ? "up" : "DOWN: " + e.state
                if e.ejectedForSeconds > 0 { state += " (\(e.ejectedForSeconds)s left)" }
                rows.append([g.upstream + (g.panic ? " [panic]" : ""), endpoint, state, String(e.ejections), String(e.requests),
                             String(e.errors)])
            }
        }
        return out + StatusTable.table(rows)
    }
}

extension AdminServer {
    /// Adds `GET /admin/endpoints` (the endpoints' availability, `EndpointsReport`).
    public func registerEndpointHealth(_ health: EndpointHealth) {
        register("GET", "/admin/endpoints") { _ in .json(EndpointsReport.build(health)) }
    }
}
