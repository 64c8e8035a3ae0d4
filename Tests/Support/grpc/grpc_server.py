#!/usr/bin/env python3
"""A gRPC test server for Sluice's HTTP/2 tests: one cohort (stable or canary) of a split.

Plaintext HTTP/2 (h2c, prior knowledge), the way an upstream with `protocol: h2c` is reached;
with --tls-cert/--tls-key, HTTP/2 over TLS (ALPN h2), for `protocol: h2` upstreams.
No .proto file and no generated code: the methods are registered with a generic handler and
identity (bytes) serializers, so requests and replies are raw bytes.

Methods:
  /sluice.test.Echo/Unary    replies NAME + ":" + the request bytes
  /sluice.test.Echo/Stream   the request is a decimal count N (ASCII, empty = 3); replies N
                             messages "NAME:0" .. "NAME:N-1"
Every reply carries trailing metadata `x-served-by: NAME` next to grpc-status, and a successful
one initial metadata `x-served-by: NAME` too (a failure is a trailers-only response).

With --fail every call ends with status --fail-code (default UNAVAILABLE) and the message
"NAME: failing on purpose", before any message is sent (as a crashing canary would).

Output on stdout, one line each, flushed at once (a test reads it as it comes):
  READY <port>                               once, when listening (with --port 0: the port picked)
  CALL <Method> <CODE> <name> <metadata JSON> per finished call, e.g.
        CALL Unary OK stable {"x-user": "42"}
        CALL Stream UNAVAILABLE canary {}
    (the metadata JSON holds the call's invocation metadata, without grpc-* and pseudo headers:
     what the proxy forwarded, e.g. gRPC metadata used for header routing)
  COUNTS <JSON>                              on SIGTERM/SIGINT, before exiting 0:
        {"name": "stable", "calls": 12, "Unary": {"OK": 10}, "Stream": {"OK": 2}}

Exit status: 0 after SIGTERM/SIGINT, 2 on bad arguments or a port that cannot be bound,
3 when the grpcio package is missing.
"""
import argparse
import json
import signal
import sys
import threading
from concurrent import futures

try:
    import grpc
except ImportError:
    sys.stderr.write("grpc_server.py: the grpcio package is missing "
                     "(python3 -m pip install grpcio, or apt-get install python3-grpcio)\n")
    sys.exit(3)

SERVICE = "sluice.test.Echo"
MAX_STREAM_MESSAGES = 100000


class Server:
    def __init__(self, name, fail, fail_code):
        self.name = name
        self.quiet_calls = False
        self.fail = fail
        self.fail_code = fail_code
        self.lock = threading.Lock()
        self.counts = {}
        self.calls = 0

    def emit(self, line):
        with self.lock:
            try:
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
            except (BrokenPipeError, ValueError):
                pass  # the reader went away; keep serving

    def record(self, method, code, context):
        md = {}
        for key, value in context.invocation_metadata():
            if key.startswith("grpc-") or key.startswith(":"):
                continue
            if isinstance(value, bytes):  # -bin metadata
                value = value.hex()
            md[key] = value if key not in md else md[key] + "," + value
        with self.lock:
            self.calls += 1
            per = self.counts.setdefault(method, {})
            per[code] = per.get(code, 0) + 1
        if not self.quiet_calls:
            self.emit(f"CALL {method} {code} {self.name} {json.dumps(md, sort_keys=True)}")

    def begin(self, context):
        context.send_initial_metadata((("x-served-by", self.name),))
        context.set_trailing_metadata((("x-served-by", self.name),))

    def unary(self, request, context):
        if self.fail:
            self.record("Unary", self.fail_code.name, context)
            context.set_trailing_metadata((("x-served-by", self.name),))
            context.abort(self.fail_code, f"{self.name}: failing on purpose")
        self.begin(context)
        self.record("Unary", "OK", context)
        return self.name.encode() + b":" + request

    def stream(self, request, context):
        if self.fail:
            self.record("Stream", self.fail_code.name, context)
            context.set_trailing_metadata((("x-served-by", self.name),))
            context.abort(self.fail_code, f"{self.name}: failing on purpose")
        text = request.decode("ascii", "replace").strip()
        try:
            n = int(text) if text else 3
        except ValueError:
            n = -1
        if not 0 <= n <= MAX_STREAM_MESSAGES:
            self.record("Stream", "INVALID_ARGUMENT", context)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"{self.name}: the request must be a count 0...{MAX_STREAM_MESSAGES}, got {text!r}")
        self.begin(context)
        for i in range(n):
            if not context.is_active():  # cancelled by the client (or the proxy): stop sending
                self.record("Stream", "CANCELLED", context)
                return
            yield f"{self.name}:{i}".encode()
        self.record("Stream", "OK", context)

    def summary(self):
        with self.lock:
            doc = {"name": self.name, "calls": self.calls}
            doc.update({m: dict(c) for m, c in self.counts.items()})
        return "COUNTS " + json.dumps(doc, sort_keys=True)


def main():
    # A child of `swift test` inherits its thread's signal mask, which blocks SIGTERM and SIGINT:
    # unblock them (before grpc starts its threads, which inherit the mask) so that stopping works.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    ap = argparse.ArgumentParser(description="gRPC test server (h2c) for Sluice's tests")
    ap.add_argument("--port", type=int, required=True, help="TCP port on --host; 0 picks a free one")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--name", default="stable", help="returned in every reply (stable, canary, ...)")
    ap.add_argument("--fail", action="store_true", help="every call fails with --fail-code")
    ap.add_argument("--fail-code", default="UNAVAILABLE",
                    help="gRPC status name for --fail (default UNAVAILABLE)")
    ap.add_argument("--quiet-calls", action="store_true",
                    help="no CALL lines (a reader that does not drain stdout would block the server); COUNTS still printed")
    ap.add_argument("--threads", type=int, default=32, help="handler threads (concurrent calls)")
    ap.add_argument("--tls-cert", help="PEM certificate (chain): serve HTTP/2 over TLS instead of h2c")
    ap.add_argument("--tls-key", help="PEM private key for --tls-cert")
    args = ap.parse_args()
    try:
        code = grpc.StatusCode[args.fail_code.upper()]
    except KeyError:
        ap.error(f"unknown status code {args.fail_code}")
    if code == grpc.StatusCode.OK:
        ap.error("--fail-code OK is not a failure")
    if not 0 <= args.port <= 65535:
        ap.error(f"port out of range: {args.port}")
    if bool(args.tls_cert) != bool(args.tls_key):
        ap.error("--tls-cert and --tls-key go together")
    credentials = None
    if args.tls_cert:
        try:
            with open(args.tls_key, "rb") as k, open(args.tls_cert, "rb") as c:
                credentials = grpc.ssl_server_credentials([(k.read(), c.read())])
        except OSError as e:
            ap.error(f"cannot read the TLS files: {e}")

    srv = Server(args.name, args.fail, code)
    srv.quiet_calls = args.quiet_calls
    handler = grpc.method_handlers_generic_handler(SERVICE, {
        "Unary": grpc.unary_unary_rpc_method_handler(srv.unary),
        "Stream": grpc.unary_stream_rpc_method_handler(srv.stream),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.threads),
                         options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((handler,))
    try:
        address = f"{args.host}:{args.port}"
        port = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    except RuntimeError as e:  # grpcio >= 1.50 raises when the port cannot be bound
        sys.stderr.write(f"grpc_server.py: cannot listen on {args.host}:{args.port}: {e}\n")
        sys.exit(2)
    if port == 0:  # older grpcio returns 0 instead
        sys.stderr.write(f"grpc_server.py: cannot listen on {args.host}:{args.port}\n")
        sys.exit(2)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server.start()
    srv.emit(f"READY {port}")
    while not stop.wait(0.5):
        pass
    server.stop(grace=1).wait()
    srv.emit(srv.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
