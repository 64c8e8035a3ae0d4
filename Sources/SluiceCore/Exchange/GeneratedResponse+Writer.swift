extension GeneratedResponse {
    /// Serializes the response with `HeadWriter.appendSimpleResponse`, the one serializer of
    /// responses Sluice makes up. `responses` is the routing table's configured responses (for
    /// `.configured`). Error texts are built here, on error paths only.
    public func append(to out: inout [UInt8], responses: [DirectResponse],
                       location: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)) {
        switch body {
        case .redirectHTTPS:
            // The body repeats the URL, as nginx's does; Location is the header that counts.
            HeadWriter.appendStatic("HTTP/1.1 308 Permanent Redirect\r\nLocation: ", to: &out)
            out.append(contentsOf: location)
            HeadWriter.appendStatic("\r\nContent-Type: text/plain; charset=utf-8\r\nServer: sluice\r\n", to: &out)
            HeadWriter.appendFraming(.contentLength(UInt64(location.count + 1)), closeConnection: closing,
                                     http10KeepAlive: http10KeepAlive, to: &out)
            if !headOnly {
                out.append(contentsOf: location)
                out.append(0x0A)
            }
        case .text(let text):
            write(contentType: "text/plain; charset=utf-8",
                  UnsafeRawBufferPointer(start: text.value.utf8Start, count: text.value.utf8CodeUnitCount), to: &out)
        case .upstream(let reason):
            let text = reason.reasonText
            write(contentType: "text/plain; charset=utf-8",
                  UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount), to: &out)
        case .parseError(let error):
            var text = error.reason + "\n"
            text.withUTF8 { write(contentType: "text/plain; charset=utf-8", UnsafeRawBufferPointer($0), to: &out) }
        case .bodyTooLarge(let limit):
            var text = "request body larger than \(limit) bytes\n"
            text.withUTF8 { write(contentType: "text/plain; charset=utf-8", UnsafeRawBufferPointer($0), to: &out) }
        case .configured(let index):
            let r = responses[Int(index)]
            var type = r.contentType
            type.withUTF8 { contentType in
                r.body.withUnsafeBytes { body in
                    HeadWriter.appendSimpleResponse(status: status, contentType: UnsafeRawBufferPointer(contentType), body: body,
                                                    closeConnection: closing, http10KeepAlive: http10KeepAlive,
                                                    headOnly: headOnly, to: &out)
                }
            }
        }
    }

    private func write(contentType: StaticString, _ body: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        HeadWriter.appendSimpleResponse(status: status, contentType: contentType, body: body, closeConnection: closing,
                                        http10KeepAlive: http10KeepAlive, headOnly: headOnly, to: &out)
    }
}
