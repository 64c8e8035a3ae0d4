#!/usr/bin/env python3
"""Opens COUNT keep-alive connections to HOST:PORT, sends one GET on each and reads the whole
response (so the server has fully set the connection up), then holds them all open, idle, until
it gets SIGTERM or SIGINT (or --hold seconds pass).

Used by bench/compare for the "10,000 mostly idle keep-alive connections" scenario: the RSS of
the server is read before and after the connections are opened.

Prints one line "ready OPEN FAILED SECONDS" on stdout once every connection has its response (or
has failed), then, when told to stop, "alive N" (connections still open) and exits. Standard
library only; raises RLIMIT_NOFILE to its hard limit.
"""
import argparse
import errno
import resource
import selectors
import signal
import socket
import sys
import time


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, need)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        sys.exit(f"idle_conns: RLIMIT_NOFILE {soft} < {need} needed")


class Conn:
    __slots__ = ("sock", "out", "buf", "state")

    def __init__(self, sock, request):
        self.sock = sock
        self.out = request
        self.buf = b""
        self.state = "connecting"


def response_complete(buf):
    """True when buf holds one whole response with a Content-Length (or chunked end)."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return False
    head = buf[:end].decode("latin-1").lower()
    body = len(buf) - end - 4
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip() == "content-length":
            return body >= int(value.strip())
        if name.strip() == "transfer-encoding" and "chunked" in value:
            return buf.endswith(b"0\r\n\r\n")
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--path", default="/128b")
    ap.add_argument("--batch", type=int, default=500, help="connections being set up at once")
    ap.add_argument("--hold", type=float, default=3600.0, help="seconds to hold before exiting")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds allowed for the setup")
    args = ap.parse_args()
    raise_nofile(args.count + 64)

    stop = {"now": False}

    def on_signal(_signo, _frame):
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    request = (f"GET {args.path} HTTP/1.1\r\nHost: bench\r\nUser-Agent: idle-conns\r\n\r\n").encode()
    sel = selectors.DefaultSelector()
    done, failed, pending, started = [], 0, 0, 0
    t0 = time.monotonic()
    while (started < args.count or pending) and not stop["now"]:
        while started < args.count and pending < args.batch:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            err = s.connect_ex((args.host, args.port))
            if err not in (0, errno.EINPROGRESS):
                s.close()
                failed += 1
                started += 1
                continue
            c = Conn(s, request)
            sel.register(s, selectors.EVENT_WRITE, c)
            started += 1
            pending += 1
        if time.monotonic() - t0 > args.timeout:
            break
        for key, ev in sel.select(timeout=1.0):
            c = key.data
            s = c.sock
            try:
                if c.state == "connecting":
                    e = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if e:
                        raise OSError(e, "connect")
                    c.state = "sending"
                if c.state == "sending":
                    n = s.send(c.out)
                    c.out = c.out[n:]
                    if not c.out:
                        c.state = "reading"
                        sel.modify(s, selectors.EVENT_READ, c)
                    continue
                data = s.recv(65536)
                if not data:
                    raise OSError("closed by server")
                c.buf += data
                if response_complete(c.buf):
                    if not c.buf.startswith(b"HTTP/1.1 200"):
                        raise OSError("status " + c.buf[:12].decode("latin-1"))
                    sel.unregister(s)
                    c.buf = b""
                    done.append(s)
                    pending -= 1
            except OSError:
                sel.unregister(s)
                s.close()
                failed += 1
                pending -= 1
    # Whatever is still pending after the timeout counts as failed.
    for key in list(sel.get_map().values()):
        sel.unregister(key.fileobj)
        key.fileobj.close()
        failed += 1
    print(f"ready {len(done)} {failed} {time.monotonic() - t0:.2f}", flush=True)

    # Hold, idle. Watch for server-side closes without reading anything else.
    for s in done:
        sel.register(s, selectors.EVENT_READ)
    alive = len(done)
    deadline = time.monotonic() + args.hold
    while not stop["now"] and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.5):
            sel.unregister(key.fileobj)
            key.fileobj.close()
            alive -= 1
    print(f"alive {alive}", flush=True)
    for key in list(sel.get_map().values()):
        key.fileobj.close()


if __name__ == "__main__":
    main()
