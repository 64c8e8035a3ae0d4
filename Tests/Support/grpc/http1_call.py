#!/usr/bin/env python3
"""One gRPC unary call to /sluice.test.Echo/Unary made over HTTP/1.1 (a proxy in front of an
HTTP/2 upstream turns it into a gRPC call): the request is a gRPC frame of --size bytes, the
response is read back chunked, with its trailers.

--pause S: read nothing for S seconds after sending (with a small receive buffer, so the
response backs up into the proxy), then read it all: a slow client.
--calls N: N calls one after the other on the same connection (keep-alive).

Prints one JSON line: {"calls": [{"status", "body": bytes of body, "trailers", "complete",
"seconds"}], "error"}. A call is complete when the last chunk and its trailers arrived; reading
gives up after --idle seconds without a byte.
"""
import argparse
import json
import socket
import struct
import time

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--size", type=int, default=5)
ap.add_argument("--pause", type=float, default=0)
ap.add_argument("--calls", type=int, default=1)
ap.add_argument("--idle", type=float, default=6)
a = ap.parse_args()

payload = bytes((i * 7 + (i >> 9)) & 0xFF for i in range(a.size))
body = b"\x00" + struct.pack(">I", len(payload)) + payload
head = ("POST /sluice.test.Echo/Unary HTTP/1.1\r\nHost: echo.test\r\nContent-Type: application/grpc\r\n"
        "TE: trailers\r\nContent-Length: %d\r\n\r\n" % len(body)).encode()

s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(("127.0.0.1", a.port))
s.settimeout(a.idle)
buf = b""


def fill():
    global buf
    d = s.recv(65536)
    if not d:
        raise EOFError("closed")
    buf += d


def line():
    global buf
    while b"\r\n" not in buf:
        fill()
    i = buf.index(b"\r\n")
    out, buf = buf[:i], buf[i + 2:]
    return out


def take(n):
    global buf
    while len(buf) < n:
        fill()
    out, buf = buf[:n], buf[n:]
    return out


calls, error = [], None
for _ in range(a.calls):
    start = time.monotonic()
    s.sendall(head + body)
    if a.pause:
        time.sleep(a.pause)
    call = {"status": 0, "body": 0, "trailers": [], "complete": False, "seconds": 0, "match": False}
    calls.append(call)
    data = b""
    try:
        call["status"] = int(line().split()[1])
        chunked = False
        while True:
            h = line()
            if not h:
                break
            if h.lower().startswith(b"transfer-encoding:") and b"chunked" in h.lower():
                chunked = True
        if not chunked:
            raise ValueError("not chunked")
        while True:
            size = int(line().split(b";")[0], 16)
            if size == 0:
                break
            data += take(size)
            take(2)
        while True:
            t = line()
            if not t:
                break
            call["trailers"].append(t.decode())
        call["complete"] = True
    except Exception as e:  # noqa: BLE001 (reported, not raised: the test reads it)
        error = "%s: %s" % (type(e).__name__, e)
    call["body"] = len(data)
    # A gRPC frame of "<name>:" + the request payload.
    call["match"] = len(data) > 5 and data[5:].split(b":", 1)[-1] == payload
    call["seconds"] = round(time.monotonic() - start, 3)
    if error:
        break
print(json.dumps({"calls": calls, "error": error}))
