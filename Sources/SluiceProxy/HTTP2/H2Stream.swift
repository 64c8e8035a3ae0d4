import CNghttp2
import SluiceCore

/// One HTTP/2 stream, seen by the rest of the worker as a client connection of its own
/// (`client`, with a negative fd and no socket): its request is written into `client.inBuffer` as
/// an HTTP/1.1 request, the exchange answers into `client.outBuffer` as it would answer an
/// HTTP/1.1 client, and this object turns that answer back into HEADERS, DATA and trailers.
///
/// Pooled by the worker (`H2Streams`): its connection object, buffers and arrays are reused, so a
/// stream allocates nothing of Sluice's own (nghttp2 allocates its stream state).
///
/// Owned by one worker loop thread.
final class H2Stream {
    /// The slot in the worker's stream table (`client.fd == -(slot + 1)`).
    let slot: Int
    /// The connection object the exchange drives.
    let client: ClientConnection
    /// The HTTP/2 connection carrying the stream (nil while pooled).
    var connection: H2Connection?
    /// The stream id (0 once nghttp2 closed the stream, or while pooled).
    var id: Int32 = 0
    /// The client reached Sluice over TLS.
    var secure = false

    // Request side.
    /// The request's header fields, written as an HTTP/1.1 head once HEADERS is complete.
    var head = H2RequestHead()
    /// HEADERS (with its CONTINUATIONs) is complete.
    var headComplete = false
    /// HEADERS itself ended the stream: the request has no body.
    var bodiless = false
    /// The head was handed to the exchange (later HEADERS are trailers).
    var headWritten = false
    /// Decoded size of request trailer fields (not forwarded; counted against the header limit).
    var trailerBytes = 0
    /// DATA is written as chunks (no content-length).
    var chunked = false
    /// The client ended the stream (END_STREAM); the last chunk is written once the data is.
    var requestEnded = false
    var lastChunkWritten = false
    /// DATA payload received and not yet moved into `client.inBuffer` (at most the stream window).
    var bodyIn: IOBuffer
    /// DATA bytes moved into the exchange's input, and how many of them had their window given
    /// back (as the exchange took them: `Worker.ackRequestBody`).
    var movedIn = 0
    var acked = 0

    // Response side.
    var reader: H1ResponseReader
    var responseHead = ResponseHead()
    /// Response body bytes waiting for nghttp2's data callback (a small block: nghttp2 takes at
    /// most a frame, 16 KiB, at a time, and a stream waiting for its turn holds only this).
    var dataOut: IOBuffer
    /// The final HEADERS was submitted (with a data provider when a body follows).
    var submitted = false
    /// The data provider is waiting for bytes (`NGHTTP2_ERR_DEFERRED`).
    var deferred = false
    /// The body's end was read (END_STREAM, or trailers, follows the last of `dataOut`).
    var responseEnded = false
    /// Trailer fields (`name: value CRLF` lines) sent after the last DATA.
    var trailers: [UInt8] = []
    /// The exchange ended before its response did: the stream is reset once `dataOut` is sent.
    var cut = false
    /// The exchange is over (its connection object closed); the slot is freed when nghttp2 closes the stream.
    var finished = false
    /// In the connection's `ready` list.
    var inReadyList = false
    /// The peer reset the stream (or nghttp2 closed it) while the exchange was running.
    var peerClosed = false
    /// A RST_STREAM from the client arrived for it (already counted against `max_resets_per_second`).
    var resetByClient = false

    init(slot: Int, capacity: Int, buffers: BufferPool, small: BufferPool, limits: ParserLimits) {
        self.slot = slot
        self.client = ClientConnection(fd: Int32(-(slot + 1)), generation: 0, peer: .v4(0, port: 0), listenerIndex: 0,
                                       inCapacity: capacity, outCapacity: capacity, pool: buffers)
        self.bodyIn = IOBuffer(capacity: capacity, pool: buffers)
        self.dataOut = IOBuffer(capacity: small.blockSize, pool: small)
        self.reader = H1ResponseReader(limits: limits)
        client.stream = self
    }

    deinit {
        bodyIn.release()
        dataOut.release()
    }

    /// Prepares the pooled stream for stream `id` of `connection`.
    func open(id: Int32, on connection: H2Connection, now: UInt64) {
        let parent = connection.client
        self.connection = connection
        self.id = id
        secure = parent.tls != nil
        head.reset()
        headComplete = false
        bodiless = false
        headWritten = false
        trailerBytes = 0
        chunked = false
        requestEnded = false
        lastChunkWritten = false
        movedIn = 0
        acked = 0
        reader.reset(method: .get)
        submitted = false
        deferred = false
        responseEnded = false
        trailers.removeAll(keepingCapacity: true)
        cut = false
        finished = false
        inReadyList = false
        peerClosed = false
        resetByClient = false
        let c = client
        c.generation &+= 1
        c.peer = parent.peer
        c.trusted = parent.trusted
        c.listenerIndex = parent.listenerIndex
        c.conn = ConnectionState()
        c.readable = false
        c.writable = true
        c.readEOF = false
        c.hangup = false
        c.deadline = 0
        c.queuedDeadline = 0
        c.phaseStart = now
        c.lastReadProgress = now
        c.lastWriteProgress = now
    }

    /// Back to the pool: buffers returned, references dropped.
    func release() {
        connection = nil
        id = 0
        client.inBuffer.release()
        client.outBuffer.release()
        bodyIn.release()
        dataOut.release()
    }
}

/// A stream object the worker pools by slot (`H2Stream`, `H2UpstreamStream`).
protocol H2PooledStream: AnyObject {
    var slot: Int { get }
    /// Back to the pool: buffers returned, references dropped.
    func release()
}

extension H2Stream: H2PooledStream {}
extension H2UpstreamStream: H2PooledStream {}

/// A worker's pooled HTTP/2 stream objects by slot (a stream object's fd is derived from its slot,
/// so timers find it), the free slots, the sessions with frames to send at the end of the event
/// batch, and nghttp2's callback and option sets for one side (made at first use).
///
/// Owned by one worker loop.
class H2StreamTable<Stream: H2PooledStream, Session: AnyObject> {
    private(set) var slots: [Stream] = []
    private var free: [Int] = []
    /// Sessions (connections) with frames to send at the end of the event batch.
    let dirty = WorkList<Session>()
    var callbacks: OpaquePointer?
    var option: OpaquePointer?

    deinit {
        if let callbacks { nghttp2_session_callbacks_del(callbacks) }
        if let option { nghttp2_option_del(option) }
    }

    /// A pooled stream object, or a new one made by `make` for the next slot.
    func take(_ make: (Int) -> Stream) -> Stream {
        if let i = free.popLast() { return slots[i] }
        let s = make(slots.count)
        slots.append(s)
        return s
    }

    /// Returns a stream object to the pool.
    func give(_ s: Stream) {
        s.release()
        free.append(s.slot)
    }

    /// The stream object in slot `i`, if there is one.
    func slot(_ i: Int) -> Stream? {
        i >= 0 && i < slots.count ? slots[i] : nil
    }
}

/// Client-side HTTP/2 streams (`H2Stream`; fd `-(slot + 1)`) and the scratch their heads use.
final class H2Streams: H2StreamTable<H2Stream, H2Connection> {
    /// 16 KiB blocks for the streams' `dataOut` (trimmed with the worker's connection buffers).
    let small = BufferPool(blockSize: 16 * 1024, maxFree: 4096)
    /// Scratch for response heads and trailers: field bytes, offsets into them, and the name/value list.
    var fields: [UInt8] = []
    var offsets: [Int] = []
    var nvs: [nghttp2_nv] = []

    /// A stream object for a new stream (recycled when one is free).
    func take(capacity: Int, buffers: BufferPool, limits: ParserLimits) -> H2Stream {
        take { H2Stream(slot: $0, capacity: capacity, buffers: buffers, small: small, limits: limits) }
    }

    /// The stream whose connection object has `fd` (negative), if its generation matches.
    func lookup(fd: Int32, generation: UInt32) -> H2Stream? {
        guard let s = slot(Int(-(Int64(fd) + 1))), s.connection != nil, s.client.generation == generation else { return nil }
        return s
    }
}
