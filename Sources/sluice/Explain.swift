import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SluiceControl

/// `sluice explain METHOD URL [-H 'Name: value']... [--cookie 'a=b']... [--from ADDR] [--entropy N] [--json]`.
struct Explain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show how the running sluice would route a request: sluice explain GET http://shop.example/cart -H 'X-User-Id: 42'.",
        discussion: """
            Asks the running sluice (POST /admin/explain) to route the request with its serving table, \
            runtime overrides included, using the same routing code as the proxy: which route matched \
            and why each earlier one did not (the first condition that failed and what the request had), \
            which rule or which bucket decided (the sticky key, its hash and bucket), the cohort, the \
            endpoint the balancer would pick, and the header fields the upstream would get (cohort \
            header, X-Forwarded-*). Nothing is sent to an upstream. Without a sticky key the split uses \
            the request's random value; --entropy fixes it (a Sluice cookie value 0123456789abcdef came \
            from --entropy 0x0123456789abcdef).
            """
    )

    @OptionGroup var options: AdminOptions

    @Argument(help: "The method, e.g. GET.")
    var method: String

    @Argument(help: "http://HOST/PATH?QUERY (the host becomes the Host field), or /PATH with -H 'Host: ...'.")
    var url: String

    @Option(name: [.customShort("H"), .customLong("header")], help: "A header field, 'Name: value' (repeatable).")
    var headers: [String] = []

    @Option(name: [.customShort("b"), .customLong("cookie")], help: "Cookies, 'name=value' or 'a=1; b=2' (repeatable).")
    var cookies: [String] = []

    @Option(help: "The client address the proxy would see (default 127.0.0.1).")
    var from: String?

    @Option(help: "The request's random value: decimal, 0x and hex, or a 16-hex-digit Sluice cookie value.")
    var entropy: String?

    @Flag(help: "Print the raw JSON of POST /admin/explain.")
    var json = false

    func run() throws {
        let input = ExplainInput(method: method, url: url, headers: headers, cookies: cookies, from: from, entropy: entropy)
        let body: [UInt8]
        do {
            body = Array(try JSONEncoder().encode(input))
        } catch {
            printError("sluice explain: cannot encode the request: \(error)")
            throw ExitCode(1)
        }
        let response = try ControlCall.send("explain", "POST", "/admin/explain", body: body, options: options)
        guard response.status == 200 else { ControlCall.failed("explain", response) }
        if json {
            print(response.text, terminator: response.text.hasSuffix("\n") ? "" : "\n")
            return
        }
        guard let report = try? JSONDecoder().decode(ExplainReport.self, from: Data(response.body)) else {
            printError("sluice explain: the admin API answered JSON this version cannot read: \(response.text)")
            throw ExitCode(1)
        }
        print(report.text, terminator: "")
    }
}
