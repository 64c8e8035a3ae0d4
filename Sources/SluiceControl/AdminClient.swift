#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore

/// A response read by `AdminClient`.
public struct AdminClientResponse: Sendable {
    /// Status code.
    public var status: Int
    /// Header fields by lowercased name.
    public var headers: [String: String]
    /// Body bytes.
    public var body: [UInt8]

    /// The body as UTF-8 text.
    public var text: String { String(decoding: body, as: UTF8.self) }
}

/// A minimal blocking HTTP/1.1 client for the admin API (`sluice status`, tests).
public enum AdminClient {
    /// The address to connect to for an admin API bound to `address`: a wildcard address
    /// (0.0.0.0, ::) is reached through loopback.
    public static func reachableAddress(for address: SocketAddress) -> SocketAddress {
        switch address {
        case .v4(0, let port): return .v4(0x7f00_0001, port: port)
        case .v6(0, 0, let port): return .v6(hi: 0, lo: 1, port: port)
        default: return address
        }
    }

    /// Sends one request and reads the whole response (the server closes the connection). A
    /// body is sent as `application/json` (the admin API refuses other types on state-changing calls).
    /// Throws when the API cannot be reached or answers something that is not HTTP.
    public static func request(_ method: String = "GET", _ path: String, to address: SocketAddress, token: String? = nil,
                               body: [UInt8] = [], timeoutMillis: Int32 = 5000) throws(AdminError) -> AdminClientResponse {
        let fd: Int32
        do throws(AdminError) {
            fd = try AdminSocket.connect(to: address, millis: timeoutMillis)
        } catch {
            throw AdminError("cannot connect to \(address): \(error.message)")
        }
        defer { close(fd) }
        var head = "\(method) \(path) HTTP/1.1\r\nHost: \(address)\r\nConnection: close\r\nUser-Agent: sluice\r\n"
        if let token { head += "Authorization: Bearer \(token)\r\n" }
        if !body.isEmpty { head += "Content-Type: application/json\r\n" }
        if !body.isEmpty || !(method == "GET" || method == "HEAD") { head += "Content-Length: \(body.count)\r\n" }
        head += "\r\n"
        guard AdminSocket.writeAll(fd, Array(head.utf8) + body) else {
            throw AdminError("cannot send the request to \(address): \(AdminSocket.errnoText())")
        }
        var buffer: [UInt8] = []
        while true {
            let n = AdminSocket.readSome(fd, into: &buffer, max: 64 * 1024)
            if n == 0 { break }
            if n < 0 { throw AdminError("no complete answer from \(address): \(AdminSocket.errnoText())") }
        }
        guard let end = AdminHTTP.find([13, 10, 13, 10], in: buffer) else {
            throw AdminError("\(address) did not answer with HTTP")
        }
        let lines = String(decoding: buffer[0..<end], as: UTF8.self).split(separator: "\r\n")
        let status = lines.first.flatMap { line -> Int? in
            let parts = line.split(separator: " ")
            return parts.count >= 2 && parts[0].hasPrefix("HTTP/1.") ? Int(parts[1]) : nil
        }
        guard let status else { throw AdminError("\(address) did not answer with HTTP") }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = String(line[line.index(after: colon)...]).trimmingSpaces()
        }
        var payload = Array(buffer[(end + 4)...])
        if let cl = headers["content-length"], let n = Int(cl), n < payload.count { payload = Array(payload.prefix(n)) }
        return AdminClientResponse(status: status, headers: headers, body: payload)
    }
}
