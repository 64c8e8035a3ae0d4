/// A fixed response a rule answers with instead of forwarding (`respond:` in the config).
public struct DirectResponse: Sendable, Equatable {
    /// Status code (100...599).
    public let status: Int
    /// `Content-Type` value.
    public let contentType: String
    /// Body bytes.
    public let body: [UInt8]

    /// Creates a direct response.
    public init(status: Int, contentType: String = "text/plain", body: [UInt8]) {
        self.status = status
        self.contentType = contentType
        self.body = body
    }
}
