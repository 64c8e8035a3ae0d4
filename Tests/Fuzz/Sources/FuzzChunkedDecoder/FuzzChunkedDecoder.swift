// libFuzzer target: ChunkedDecoder on arbitrary bytes, delivered the way a socket would.
//
// The first input byte chooses a split position and the limits; the rest is the chunked body.
// The body is decoded three ways: split in two at that position (as two reads), whole, and one
// byte per read. For every step: consumed <= input count, data lies within the consumed bytes and
// is never empty, trailers lie within the consumed bytes. All three must agree on the decoded data,
// on the outcome (done, error, or waiting for more) and on the bytes left after the body.
import FuzzSupport
import SluiceCore

/// Entry point called by libFuzzer once per input.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzChunkedDecoder(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    ChunkedDecoderFuzz.run(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

#if !FUZZING
/// Replays the files given as arguments (a build without libFuzzer, for debugging).
@main
enum Replay {
    static func main() {
        replayFiles(CommandLine.arguments.dropFirst()) { ChunkedDecoderFuzz.run($0) }
    }
}
#endif

/// What decoding a whole body delivered, for comparing ways of feeding it.
struct ChunkedOutcome: Equatable {
    /// How decoding stopped.
    enum End: Equatable {
        /// The last chunk and trailers were read; `leftover` bytes of input follow the body.
        case done(leftover: Int, trailers: [UInt8])
        /// The input ran out first.
        case needMore
        /// The body is malformed.
        case invalid(HTTPParseError)
    }

    var data: [UInt8] = []
    var end: End = .needMore
}

/// The checks for one input.
enum ChunkedDecoderFuzz {
    static func run(_ input: UnsafeRawBufferPointer) {
        guard let control = input.first else { return }
        let body = UnsafeRawBufferPointer(rebasing: input[1...])
        var limits = ParserLimits()
        if control & 0x80 != 0 {
            limits.maxChunkLine = 1 + Int(control & 0x0F)
            limits.maxTrailerBytes = 2 + Int(control & 0x30)
        }
        let split = body.isEmpty ? 0 : Int(control) % (body.count + 1)
        let twoReads = decode(body, reads: [split, body.count - split], limits: limits)
        let oneRead = decode(body, reads: [body.count], limits: limits)
        fuzzCheck(twoReads == oneRead, "split at \(split) gave \(twoReads.end), whole gave \(oneRead.end)")
        if body.count <= 4096 {
            let bytewise = decode(body, reads: Array(repeating: 1, count: body.count), limits: limits)
            fuzzCheck(bytewise == oneRead, "byte by byte gave \(bytewise.end), whole gave \(oneRead.end)")
        }
    }

    /// Decodes `body` arriving in reads of the given sizes, as the proxy does: unconsumed bytes
    /// stay in a buffer and are passed again with the next read appended.
    static func decode(_ body: UnsafeRawBufferPointer, reads: [Int], limits: ParserLimits) -> ChunkedOutcome {
        var decoder = ChunkedDecoder(limits: limits)
        var outcome = ChunkedOutcome()
        var buffer: [UInt8] = []
        var next = 0
        for size in reads {
            buffer += body[next..<(next + size)]
            next += size
            loop: while true {
                let step = buffer.withUnsafeBytes { decoder.decode($0) }
                switch step {
                case .data(let offset, let count, let consumed):
                    fuzzCheck(count > 0, "empty data step")
                    fuzzCheck(offset >= 0 && offset + count <= consumed && consumed <= buffer.count,
                              "data \(offset)+\(count), consumed \(consumed) of \(buffer.count)")
                    outcome.data += buffer[offset..<(offset + count)]
                    buffer.removeFirst(consumed)
                case .needMore(let consumed):
                    fuzzCheck(consumed >= 0 && consumed <= buffer.count, "needMore consumed \(consumed) of \(buffer.count)")
                    buffer.removeFirst(consumed)
                    break loop
                case .done(let consumed, let trailerOffset, let trailerCount):
                    fuzzCheck(consumed >= 0 && consumed <= buffer.count, "done consumed \(consumed) of \(buffer.count)")
                    fuzzCheck(trailerOffset >= 0 && trailerCount >= 0 && trailerOffset + trailerCount <= consumed,
                              "trailers \(trailerOffset)+\(trailerCount), consumed \(consumed)")
                    fuzzCheck(decoder.isDone, "done but not isDone")
                    let trailers = Array(buffer[trailerOffset..<(trailerOffset + trailerCount)])
                    buffer.removeFirst(consumed)
                    let after = buffer.withUnsafeBytes { decoder.decode($0) }
                    fuzzCheck(after == .done(consumed: 0, trailerOffset: 0, trailerCount: 0), "after done: \(after)")
                    outcome.end = .done(leftover: buffer.count + (body.count - next), trailers: trailers)
                    return outcome
                case .invalid(let error):
                    let after = buffer.withUnsafeBytes { decoder.decode($0) }
                    fuzzCheck(after == .invalid(error), "after invalid: \(after)")
                    outcome.end = .invalid(error)
                    return outcome
                }
            }
        }
        fuzzCheck(!decoder.isDone, "isDone without a done step")
        outcome.end = .needMore
        return outcome
    }
}
