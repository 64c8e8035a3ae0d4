/// A named group of upstream endpoints (one `upstreams:` entry in the config).
public struct UpstreamGroup: Sendable {
    /// The upstream's name as written in the config.
    public let name: String
    /// Its endpoints, in config order (never empty).
    public let endpoints: [Endpoint]
    /// Health checks, outlier detection and DNS refresh of the group (`EndpointAvailabilitySpec`).
    public let availability: EndpointAvailabilitySpec
    /// The protocol Sluice speaks to the group's endpoints (`protocol:`).
    public var wire: UpstreamProtocol = .http1

    /// Creates a group.
    public init(name: String, endpoints: [Endpoint], availability: EndpointAvailabilitySpec = EndpointAvailabilitySpec()) {
        self.name = name
        self.endpoints = endpoints
        self.availability = availability
    }
}

/// One upstream server.
public struct Endpoint: Sendable {
    /// The resolved address to connect to.
    public let address: SocketAddress
    /// Smooth weighted round-robin weight (1 or more).
    public let weight: Int
    /// The endpoint as written in the config, e.g. `127.0.0.1:9001` or `api.internal:80`
    /// (used in logs and metrics, and as the `Host` fallback when one is needed).
    public let label: String

    /// Creates an endpoint.
    public init(address: SocketAddress, weight: Int = 1, label: String) {
        self.address = address
        self.weight = weight
        self.label = label
    }
}

/// What Sluice speaks to an upstream group's endpoints.
public enum UpstreamProtocol: String, Sendable, Equatable {
    /// HTTP/1.1 with keep-alive pools (the default).
    case http1
    /// HTTP/2 with prior knowledge over TCP (gRPC services), streams multiplexed on few connections.
    case h2c
    /// HTTP/2 over TLS (ALPN h2; the group needs `tls:`).
    case h2
}
