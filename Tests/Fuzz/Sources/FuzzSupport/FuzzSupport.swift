// Shared by the fuzz targets: invariant checks that stop the process (so libFuzzer saves the
// input as a crash file), byte-class helpers written independently of the parsers under test,
// and the replay driver used when a target is built without libFuzzer.
@preconcurrency import Glibc

/// Stops the process when `condition` is false, after printing `message` and the place.
///
/// A failed invariant is a bug in the code under test: libFuzzer sees the trap as a crash and
/// writes the input to a `crash-*` file.
@inline(__always)
public func fuzzCheck(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
                      file: StaticString = #fileID, line: UInt = #line) {
    if !condition() {
        let text = "fuzz invariant failed at \(file):\(line): \(message())\n"
        fputs(text, stderr)
        fflush(stderr)
        fatalError(text, file: file, line: line)
    }
}

/// Byte classes from RFC 9110, written out here (not taken from SluiceCore) so that the checks
/// do not share a bug with the parser they check.
public enum FuzzBytes {
    /// `tchar` (RFC 9110 5.6.2).
    public static func isTchar(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
             UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
             UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    /// A byte allowed inside a field value as Sluice passes it on: VCHAR, obs-text, SP, HTAB.
    public static func isFieldValueByte(_ b: UInt8) -> Bool {
        b == 0x09 || b == 0x20 || (b >= 0x21 && b != 0x7F)
    }

    /// True when every byte of `bytes` is a `tchar` and there is at least one.
    public static func isToken(_ bytes: some Collection<UInt8>) -> Bool {
        !bytes.isEmpty && bytes.allSatisfy(isTchar)
    }

    /// ASCII lowercase of a byte string, as a String (for comparing field names).
    public static func lowercased(_ bytes: some Collection<UInt8>) -> String {
        String(decoding: bytes.map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }, as: UTF8.self)
    }
}

/// Replays each file named in `paths` (a directory: each file in it) through `body`, printing
/// one line per input. Used by the targets' `main` when built without `-DFUZZING`.
public func replayFiles(_ paths: some Sequence<String>, _ body: (UnsafeRawBufferPointer) -> Void) {
    var files: [String] = []
    for path in paths {
        if let dir = opendir(path) {
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
                }
                if name != "." && name != ".." { files.append(path + "/" + name) }
            }
            closedir(dir)
        } else {
            files.append(path)
        }
    }
    for file in files.sorted() {
        guard let bytes = readWholeFile(file) else {
            fputs("cannot read \(file)\n", stderr)
            exit(2)
        }
        bytes.withUnsafeBytes(body)
        print("ok \(file) (\(bytes.count) bytes)")
    }
}

/// The bytes of a file, or nil when it cannot be read.
private func readWholeFile(_ path: String) -> [UInt8]? {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65_536)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            return nil
        }
        if n == 0 { return out }
        out += chunk[0..<n]
    }
}
