#!/usr/bin/env python3
"""A gRPC test client for Sluice's HTTP/2 tests: K calls to grpc_server.py's methods, through a
proxy or directly, over plaintext HTTP/2 (h2c, prior knowledge: grpc.insecure_channel), or over
TLS with --ca (grpc.secure_channel; the server must pick h2 by ALPN).

  grpc_client.py --target 127.0.0.1:PORT [--method unary|stream] [--calls K]
                 [--metadata key=value ...] [--payload TEXT] [--messages N]
                 [--channels C] [--concurrency M] [--timeout S] [--quiet]
                 [--ca CA.pem [--server-name NAME]]

Each call's outcome is one JSON line on stdout (unless --quiet):
  {"call": 0, "ok": true, "code": "OK", "name": "stable", "messages": 1, "reply": "stable:hello", "served_by": "stable"}
  {"call": 1, "ok": false, "code": "UNAVAILABLE", "name": "canary", "details": "canary: failing on purpose", ...}
and the LAST line is always the summary:
  {"summary": true, "calls": 100, "ok": 90, "failed": 10,
   "by_name": {"canary": 10, "stable": 90}, "by_code": {"OK": 90, "UNAVAILABLE": 10},
   "by_name_code": {"canary": {"UNAVAILABLE": 10}, "stable": {"OK": 90}}}

"name" is who answered: taken from the reply ("stable:hello" -> stable), else from the
`x-served-by` trailing/initial metadata (a failing server sends no message), else from the status
message ("canary: failing on purpose"), else null (e.g. the proxy itself refused the call).
A call counts as ok only when its status is OK AND the reply is well formed: a unary reply
"NAME:PAYLOAD" echoing the payload; a stream of exactly --messages messages "NAME:0".."NAME:N-1"
from one server. A malformed reply is reported with "code": "BAD_REPLY" and a "problem".

--channels C opens C channels (C HTTP/2 connections) and spreads the calls round-robin over
them; --concurrency M keeps up to M calls in flight at once (streams multiplexed on the
channels). Every call has a deadline (--timeout, default 5 s), so the client never hangs.

Exit status: 0 when every call was ok, 1 when some were not (the summary says which), 2 on bad
arguments, 3 when the grpcio package is missing.
"""
import argparse
import json
import sys
import threading
from concurrent import futures

try:
    import grpc
except ImportError:
    sys.stderr.write("grpc_client.py: the grpcio package is missing "
                     "(python3 -m pip install grpcio, or apt-get install python3-grpcio)\n")
    sys.exit(3)

UNARY = "/sluice.test.Echo/Unary"
STREAM = "/sluice.test.Echo/Stream"


def served_by(metadata):
    for key, value in metadata or ():
        if key == "x-served-by":
            return value
    return None


def one_call(index, channel, args, metadata):
    rec = {"call": index, "ok": False, "code": None, "name": None, "messages": 0}
    call = None
    replies = []
    try:
        if args.method == "unary":
            fn = channel.unary_unary(UNARY)
            reply, call = fn.with_call(args.payload.encode(), metadata=metadata, timeout=args.timeout)
            replies = [reply]
        else:
            call = channel.unary_stream(STREAM)(str(args.messages).encode(), metadata=metadata,
                                                 timeout=args.timeout)
            for m in call:
                replies.append(m)
        rec["code"] = "OK"
    except grpc.RpcError as e:
        call = e if call is None else call
        rec["code"] = e.code().name if e.code() else "UNKNOWN"
        rec["details"] = e.details()
    rec["messages"] = len(replies)
    try:
        rec["served_by"] = served_by(call.trailing_metadata()) or served_by(call.initial_metadata())
    except Exception:  # no call object (failed before it started)
        rec["served_by"] = None
    names = {r.split(b":", 1)[0].decode("utf-8", "replace") for r in replies}
    if len(names) == 1:
        rec["name"] = names.pop()
    elif rec["served_by"]:
        rec["name"] = rec["served_by"]
    if args.method == "unary" and replies:
        rec["reply"] = replies[0].decode("utf-8", "replace")
    if rec["code"] == "OK":
        problem = check(args, replies)
        if problem:
            rec["code"] = "BAD_REPLY"
            rec["problem"] = problem
        else:
            rec["ok"] = True
    return rec


def check(args, replies):
    if args.method == "unary":
        if len(replies) != 1:
            return f"{len(replies)} replies"
        name, sep, rest = replies[0].partition(b":")
        if not sep or not name or rest != args.payload.encode():
            return f"reply {replies[0][:80]!r} is not NAME:{args.payload}"
        return None
    if len(replies) != args.messages:
        return f"{len(replies)} messages, want {args.messages}"
    names = set()
    for i, r in enumerate(replies):
        name, sep, rest = r.partition(b":")
        if not sep or rest != str(i).encode():
            return f"message {i} is {r[:80]!r}, want NAME:{i}"
        names.add(name)
    if len(names) > 1:
        return f"messages from several servers: {sorted(n.decode() for n in names)}"
    return None


def main():
    ap = argparse.ArgumentParser(description="gRPC test client (h2c) for Sluice's tests")
    ap.add_argument("--target", required=True, help="HOST:PORT (a proxy's h2c listener or a grpc_server.py)")
    ap.add_argument("--method", choices=("unary", "stream"), default="unary")
    ap.add_argument("--calls", type=int, default=1)
    ap.add_argument("--metadata", action="append", default=[], metavar="KEY=VALUE",
                    help="gRPC metadata sent with every call (repeatable)")
    ap.add_argument("--payload", default="hello", help="unary request bytes (UTF-8)")
    ap.add_argument("--messages", type=int, default=3, help="messages asked of a streaming call")
    ap.add_argument("--channels", type=int, default=1, help="channels (HTTP/2 connections)")
    ap.add_argument("--concurrency", type=int, default=1, help="calls in flight at once")
    ap.add_argument("--timeout", type=float, default=5.0, help="deadline per call, seconds")
    ap.add_argument("--wait-ready", type=float, default=5.0,
                    help="seconds to wait for each channel to connect first (0: do not wait)")
    ap.add_argument("--quiet", action="store_true", help="print the summary line only")
    ap.add_argument("--ca", help="PEM CA certificate(s): TLS instead of h2c, trusting these")
    ap.add_argument("--server-name", help="with --ca: the name to send (SNI, :authority) and verify, "
                                          "when --target is an address")
    args = ap.parse_args()
    if args.calls < 0 or args.channels < 1 or args.concurrency < 1 or args.messages < 0 or args.timeout <= 0:
        ap.error("--calls >= 0, --channels >= 1, --concurrency >= 1, --messages >= 0, --timeout > 0")
    metadata = []
    for kv in args.metadata:
        key, sep, value = kv.partition("=")
        if not sep or not key or key != key.lower():
            ap.error(f"--metadata wants key=value with a lowercase key, got {kv!r}")
        metadata.append((key, value))

    # Each channel gets its own subchannel pool so that C channels really are C connections.
    options = [("grpc.use_local_subchannel_pool", 1)]
    if args.server_name and not args.ca:
        ap.error("--server-name needs --ca")
    if args.ca:
        try:
            with open(args.ca, "rb") as f:
                credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
        except OSError as e:
            ap.error(f"cannot read --ca: {e}")
        if args.server_name:
            options += [("grpc.ssl_target_name_override", args.server_name), ("grpc.default_authority", args.server_name)]
        channels = [grpc.secure_channel(args.target, credentials, options=options) for _ in range(args.channels)]
    else:
        channels = [grpc.insecure_channel(args.target, options=options) for _ in range(args.channels)]
    out_lock = threading.Lock()

    def emit(line):
        with out_lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    if args.wait_ready > 0:
        for ch in channels:
            try:
                grpc.channel_ready_future(ch).result(timeout=args.wait_ready)
            except grpc.FutureTimeoutError:
                pass  # the calls will fail with UNAVAILABLE and say so

    records = []
    with futures.ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        jobs = [pool.submit(one_call, i, channels[i % len(channels)], args, metadata) for i in range(args.calls)]
        for job in jobs:  # in call order
            rec = job.result()
            records.append(rec)
            if not args.quiet:
                emit(json.dumps(rec, sort_keys=True))
    for ch in channels:
        ch.close()

    by_name, by_code, by_name_code = {}, {}, {}
    for rec in records:
        name = rec["name"] if rec["name"] is not None else "none"
        by_name[name] = by_name.get(name, 0) + 1
        by_code[rec["code"]] = by_code.get(rec["code"], 0) + 1
        per = by_name_code.setdefault(name, {})
        per[rec["code"]] = per.get(rec["code"], 0) + 1
    ok = sum(1 for r in records if r["ok"])
    emit(json.dumps({"summary": True, "calls": len(records), "ok": ok, "failed": len(records) - ok,
                     "by_name": by_name, "by_code": by_code, "by_name_code": by_name_code}, sort_keys=True))
    return 0 if ok == len(records) else 1


if __name__ == "__main__":
    sys.exit(main())
