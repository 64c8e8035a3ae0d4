#!/usr/bin/env python3
"""Turns bench/compare's raw rows (one JSON object per wrk run) into the Markdown tables printed
on stdout and the JSON result file. Standard library only.

Each row: scenario, system, round, cpu_ticks (utime+stime of the measured processes over the
run), hwm_kb / rss_kb (VmHWM / VmRSS of the process whose memory counts, after the run), wrk
(wrk's whole output) and, for idle10k, idle_open, rss_before_kb, rss_after_kb. HTTP/2 scenarios
(h2*) have h2load (h2load's whole output) instead of wrk, and h2_latency: percentiles computed
from h2load's per-request log (p50_ms, p90_ms, p99_ms, p999_ms, logged).
"""
import argparse
import json
import re
import statistics
import sys

SYSTEMS = ["direct", "sluice", "sluice-base", "sluice-busypoll", "nginx", "haproxy"]
SCENARIO_TITLES = {
    "128b": "128 B, 64 conns",
    "4k": "4 KiB, 64 conns",
    "64k": "64 KiB, 64 conns",
    "1m": "1 MiB, 64 conns",
    "close": "128 B, new conn per request",
    "post16k": "POST 16 KiB, 64 conns",
    "c1000": "128 B, 1,000 conns",
    "idle10k": "10k idle conns + trickle",
    "gzip64k": "64 KiB JSON, gzip level 5",
    "tls128b": "HTTPS 128 B, 64 conns",
    "tlsclose": "HTTPS 128 B, new TLS conn per request (resumed)",
    "tlsfull": "HTTPS 128 B, new TLS conn per request, full handshake",
    "h2tls128b": "HTTP/2 over TLS 128 B",
    "h2tls4k": "HTTP/2 over TLS 4 KiB",
    "h2c128b": "h2c 128 B",
    "h2c4k": "h2c 4 KiB",
}
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
SIZE = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    return float(m.group(1)) * UNITS[m.group(2)] if m else None


def parse_wrk(out):
    r = {"requests": 0, "duration_s": None, "bytes": 0, "rps": None, "p50_ms": None, "p99_ms": None,
         "errors": {}}
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m), ([\d.]+)([KMGT]?B) read", out)
    if m:
        r["requests"] = int(m.group(1))
        r["duration_s"] = float(m.group(2)) * UNITS[m.group(3)] / 1e3
        r["bytes"] = int(float(m.group(4)) * SIZE[m.group(5)])
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        r["rps"] = float(m.group(1))
    for pct, key in (("50", "p50_ms"), ("99", "p99_ms")):
        m = re.search(r"^\s+" + pct + r"(?:\.000)?%\s+(\S+)", out, re.M)
        if m:
            r[key] = ms(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        for k, v in zip(("connect", "read", "write", "timeout"), m.groups()):
            if int(v):
                r["errors"][k] = int(v)
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        r["errors"]["non2xx"] = int(m.group(1))
    return r


def parse_h2load(out, latency):
    """h2load's summary: requests done in the measured duration, req/s, bytes, failures; latency
    percentiles come from its per-request log (computed by bench/compare), mean and max from the
    summary's "time for request" line."""
    r = {"requests": 0, "duration_s": None, "bytes": 0, "rps": None, "p50_ms": None, "p99_ms": None,
         "errors": {}, "mean_ms": None, "max_ms": None}
    m = re.search(r"^finished in ([\d.]+)(us|ms|s|m), ([\d.]+) req/s", out, re.M)
    if m:
        r["duration_s"] = float(m.group(1)) * UNITS[m.group(2)] / 1e3
        r["rps"] = float(m.group(3))
    m = re.search(r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                  r"(\d+) errored, (\d+) timeout", out, re.M)
    if m:
        r["requests"] = int(m.group(3))
        for k, v in zip(("failed", "errored", "timeout"), m.groups()[4:]):
            if int(v):
                r["errors"][k] = int(v)
    m = re.search(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out, re.M)
    if m:
        non2xx = int(m.group(2)) + int(m.group(3)) + int(m.group(4))
        if non2xx:
            r["errors"]["non2xx"] = non2xx
    m = re.search(r"^traffic: \S+ \((\d+)\) total", out, re.M)
    if m:
        r["bytes"] = int(m.group(1))
    m = re.search(r"^time for request:\s+(\S+)\s+(\S+)\s+(\S+)", out, re.M)
    if m:
        r["max_ms"] = ms(m.group(2))
        r["mean_ms"] = ms(m.group(3))
    if not r["rps"]:
        r["errors"]["no_result"] = 1  # h2load got no response at all: keep its output in the JSON
        r["h2load_output"] = out
    latency = latency or {}
    r["p50_ms"] = latency.get("p50_ms")
    r["p99_ms"] = latency.get("p99_ms")
    r["p999_ms"] = latency.get("p999_ms")
    return r


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, digits=1, unit=""):
    if x is None:
        return "–"
    if abs(x) >= 100 and digits:
        return f"{x:,.0f}{unit}"
    return f"{x:,.{digits}f}{unit}"


def measured(results, scenarios):
    """(scenario, system, aggregate) for every system measured in each scenario, in table order."""
    for sc in scenarios:
        for system in SYSTEMS:
            a = results[sc].get(system)
            if a:
                yield sc, system, a


def ratio(a, b):
    return a / b if a is not None and b else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", required=True)
    ap.add_argument("--meta", required=True)
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    meta = json.load(open(args.meta))
    h2_shape = f", {meta['settings'].get('h2_connections', 10)} conns x {meta['settings'].get('h2_streams', 100)} streams"
    for sc in SCENARIO_TITLES:
        if sc.startswith("h2"):
            SCENARIO_TITLES[sc] += h2_shape
    tck = meta["settings"]["clk_tck"]
    runs = {}
    for line in open(args.rows):
        row = json.loads(line)
        if "h2load" in row:  # an HTTP/2 scenario
            w = parse_h2load(row.pop("h2load"), row.pop("h2_latency", None))
        else:
            w = parse_wrk(row.pop("wrk"))
        run = dict(round=row["round"], **w)
        run["cpu_us_per_request"] = (row["cpu_ticks"] / tck * 1e6 / w["requests"]) if w["requests"] else None
        run["cpu_user_us_per_request"] = (row["cpu_user_ticks"] / tck * 1e6 / w["requests"]) if w["requests"] and "cpu_user_ticks" in row else None
        run["upstream_cpu_us_per_request"] = (row["upstream_cpu_ticks"] / tck * 1e6 / w["requests"]) if w["requests"] and "upstream_cpu_ticks" in row else None
        run["mb_per_s"] = (w["bytes"] / 1e6 / w["duration_s"]) if w["duration_s"] else None
        # Wake-up economics: counts over the run divided by the requests completed.
        n = w["requests"]
        per = (lambda x: x / n if n and x is not None else None)
        run["proxy_wakeups_per_request"] = per(row.get("proxy_wakeups"))
        run["upstream_wakeups_per_request"] = per(row.get("upstream_wakeups"))
        run["syscalls_per_request"] = per(row.get("syscalls", {}).get("all"))
        run["syscalls_detail_per_request"] = {k: v / n for k, v in row.get("syscalls", {}).items() if n and k != "all"}
        run["load_cpu_switches_per_request"] = per(row.get("load_cpu", {}).get("context-switches"))
        # IPIs the load CPU sent to the proxy CPU (none to count for direct: no proxy there), and
        # the load CPU's timer interrupts (PERF=1: bench/compare's perf_start).
        irq = row.get("load_cpu_irq", {})
        run["load_cpu_ipis_to_proxy_per_request"] = per(irq.get("ipi:ipi_send_cpu")) if row["system"] != "direct" else None
        run["load_cpu_timer_interrupts_per_request"] = per(irq.get("irq_vectors:local_timer_entry"))
        run["peak_rss_kb"] = row["hwm_kb"]
        run["rss_kb"] = row["rss_kb"]
        if "idle_open" in row:
            run["idle_open"] = row["idle_open"]
            run["idle_failed"] = row["idle_failed"]
            run["rss_before_kb"] = row["rss_before_kb"]
            run["rss_after_kb"] = row["rss_after_kb"]
            run["rss_per_idle_conn_b"] = ((row["rss_after_kb"] - row["rss_before_kb"]) * 1024 / row["idle_open"]
                                          if row["idle_open"] else None)
        runs.setdefault(row["scenario"], {}).setdefault(row["system"], []).append(run)

    results = {}
    for sc, by_sys in runs.items():
        results[sc] = {}
        for system, rs in by_sys.items():
            rps = [r["rps"] for r in rs if r["rps"] is not None]
            agg = {
                "rounds": len(rs),
                "rps_median": med(rps),
                "rps_min": min(rps) if rps else None,
                "rps_max": max(rps) if rps else None,
                "rps_spread_pct": ((max(rps) - min(rps)) / med(rps) * 100) if len(rps) > 1 and med(rps) else 0.0,
                "mb_per_s_median": med([r["mb_per_s"] for r in rs]),
                "p50_ms_median": med([r["p50_ms"] for r in rs]),
                "p99_ms_median": med([r["p99_ms"] for r in rs]),
                "p999_ms_median": med([r.get("p999_ms") for r in rs]),
                "mean_ms_median": med([r.get("mean_ms") for r in rs]),
                "max_ms_max": max((r["max_ms"] for r in rs if r.get("max_ms") is not None), default=None),
                "cpu_us_per_request_median": med([r["cpu_us_per_request"] for r in rs]),
                "cpu_user_us_per_request_median": med([r.get("cpu_user_us_per_request") for r in rs]),
                "upstream_cpu_us_per_request_median": med([r.get("upstream_cpu_us_per_request") for r in rs]),
                "peak_rss_kb_max": max(r["peak_rss_kb"] for r in rs),
                "proxy_wakeups_per_request_median": med([r.get("proxy_wakeups_per_request") for r in rs]),
                "upstream_wakeups_per_request_median": med([r.get("upstream_wakeups_per_request") for r in rs]),
                "syscalls_per_request_median": med([r.get("syscalls_per_request") for r in rs]),
                "load_cpu_switches_per_request_median": med([r.get("load_cpu_switches_per_request") for r in rs]),
                "load_cpu_ipis_to_proxy_per_request_median": med([r.get("load_cpu_ipis_to_proxy_per_request") for r in rs]),
                "load_cpu_timer_interrupts_per_request_median": med([r.get("load_cpu_timer_interrupts_per_request") for r in rs]),
                "syscalls_detail_per_request_median": {
                    k: med([r["syscalls_detail_per_request"].get(k) for r in rs])
                    for k in sorted({k for r in rs for k in r.get("syscalls_detail_per_request", {})})},
                "errors": {},
                "runs": rs,
            }
            for r in rs:
                for k, v in r["errors"].items():
                    agg["errors"][k] = agg["errors"].get(k, 0) + v
            if sc == "idle10k":
                agg["rss_per_idle_conn_b_median"] = med([r.get("rss_per_idle_conn_b") for r in rs])
                agg["idle_open_min"] = min(r.get("idle_open", 0) for r in rs)
            results[sc][system] = agg

    ratios = {}
    for sc, by_sys in results.items():
        # Sluice as configured by default, then (bench/compare --busy-poll) with busy_poll on.
        for subject, others in (("sluice", ("sluice-base", "sluice-busypoll", "nginx", "haproxy", "direct")),
                                ("sluice-busypoll", ("nginx", "haproxy", "direct"))):
            s = by_sys.get(subject)
            if not s:
                continue
            ratios.setdefault(sc, {})
            for other in others:
                o = by_sys.get(other)
                if not o:
                    continue
                ratios[sc][f"{subject}/{other}"] = {
                    "rps": ratio(s["rps_median"], o["rps_median"]),
                    "mb_per_s": ratio(s["mb_per_s_median"], o["mb_per_s_median"]),
                    "cpu_us_per_request": ratio(s["cpu_us_per_request_median"], o["cpu_us_per_request_median"]),
                    "p99": ratio(s["p99_ms_median"], o["p99_ms_median"]),
                    "peak_rss": ratio(s["peak_rss_kb_max"], o["peak_rss_kb_max"]),
                    "rss_per_idle_conn": ratio(s.get("rss_per_idle_conn_b_median"), o.get("rss_per_idle_conn_b_median")),
                }

    doc = dict(meta, results=results, ratios=ratios)
    with open(args.json, "w") as f:
        json.dump(doc, f, indent=1)

    # Markdown.
    st = meta["settings"]
    v = meta["versions"]
    out = []
    out.append(f"### bench/compare, {meta['started']}")
    out.append("")
    out.append(f"{meta['machine']['cpu']}, {meta['machine']['cpus']} CPUs, {meta['machine']['kernel']}; "
               f"proxy on CPU {st['cpu_proxy']}, wrk + upstream on CPU {st['cpu_load']}; "
               f"{st['rounds']} round(s) × {st['duration_s']} s, warm-up {st['warmup_s']} s. "
               f"Sluice {v['sluice']} ({v['sluice_commit']}), nginx {v['nginx']}, HAProxy {v['haproxy']}, wrk {v['wrk']}"
               + (f", h2load {v['h2load']}" if v.get("h2load") else "") + "."
               + (f" sluice-busypoll: the same Sluice binary with `busy_poll: {st['busy_poll']}` (sluice: the default, off)."
                  if st.get("busy_poll") else "")
               + ("" if "peers_defer_accept" not in st else
                  " Listeners: TCP_DEFER_ACCEPT on all three (nginx `deferred`, HAProxy `defer-accept`, Sluice's default)."
                  if st["peers_defer_accept"] else
                  " Listeners: each proxy's default (TCP_DEFER_ACCEPT on Sluice's since c855f46; nginx and HAProxy accept at once)."))
    out.append("")
    out.append("| scenario | system | req/s (median) | spread | MB/s | p50 ms | p99 ms | CPU µs/req | of it user | upstream CPU µs/req | peak RSS MiB | RSS/idle conn | errors |")
    out.append("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|")
    order = [s for s in SCENARIO_TITLES if s in results]
    for sc, system, a in measured(results, order):
        per_conn = a.get("rss_per_idle_conn_b_median")
        per_conn_s = "" if sc != "idle10k" else (
            "–" if per_conn is None else f"{per_conn / 1024:.1f} KiB ({a['idle_open_min']} open)")
        errs = ", ".join(f"{k} {n}" for k, n in a["errors"].items())
        name = system if system != "direct" else "direct (upstream)"
        out.append(f"| {SCENARIO_TITLES[sc]} | {name} | {fmt(a['rps_median'], 0)} | {a['rps_spread_pct']:.1f}% | "
                   f"{fmt(a['mb_per_s_median'])} | {fmt(a['p50_ms_median'], 2)} | {fmt(a['p99_ms_median'], 2)} | "
                   f"{fmt(a['cpu_us_per_request_median'])} | {fmt(a['cpu_user_us_per_request_median'])} | "
                   f"{fmt(a['upstream_cpu_us_per_request_median']) if system != 'direct' else '–'} | {a['peak_rss_kb_max'] / 1024:.1f} | {per_conn_s} | {errs} |")
    out.append("")
    out.append("Ratios (Sluice ÷ other; throughput > 1 is better for Sluice, CPU/p99/RSS < 1 is better):")
    out.append("")
    out.append("| scenario | vs | throughput | CPU µs/req | p99 | peak RSS | RSS/idle conn |")
    out.append("|---|---|--:|--:|--:|--:|--:|")
    for sc in order:
        for key, rr in ratios.get(sc, {}).items():
            tp = rr["mb_per_s"] if sc == "1m" else rr["rps"]

            def f2(x):
                return "–" if x is None else f"{x:.2f}"
            subject, other = key.split('/')
            vs = other if subject == "sluice" else f"{other} (for {subject})"
            out.append(f"| {SCENARIO_TITLES[sc]} | {vs} | {f2(tp)} | {f2(rr['cpu_us_per_request'])} | "
                       f"{f2(rr['p99'])} | {f2(rr['peak_rss'])} | {f2(rr['rss_per_idle_conn'])} |")
    out.append("")
    out.append("CPU µs/req is the measured process's utime+stime over the run divided by the requests wrk "
               "completed (nginx: master + worker), and \"of it user\" its user-space part (the rest is kernel time); "
               "\"upstream CPU µs/req\" is the upstream nginx's over the same run, i.e. what the load CPU pays per request "
               "behind that proxy; for direct it is the upstream nginx's. Peak RSS is VmHWM "
               "over the run (nginx: the worker). MB/s counts 10^6 bytes read by wrk (headers included). "
               "Throughput ratio for 1 MiB is by MB/s.")
    if any(a.get("syscalls_per_request_median") is not None or a.get("proxy_wakeups_per_request_median")
           for sc in order for a in results[sc].values()):
        out.append("")
        out.append("Wake-up economics, per request (medians over rounds): the proxy's syscalls (perf, every thread), "
                   "its wake-ups (voluntary context switches: sleeps in epoll_wait that something ended), the "
                   "upstream nginx's wake-ups, and every context switch on the load CPU (wrk + upstream + anything "
                   "else there; what the proxy's way of batching costs the load side); with PERF=1 or PERF_DETAIL=1 "
                   "where perf has the tracepoints, the IPIs the load CPU sent to the proxy CPU (mostly a packet "
                   "waking a proxy that slept on an idle CPU, plus a background of other IPIs; the sender pays for "
                   "each) and the load CPU's timer interrupts (the upstream's TCP pacing timers, epoll timeouts, and "
                   "the tick: CONFIG_HZ a second while the CPU is busy, so HZ / req/s is a floor and a figure near "
                   "it is the tick alone):")
        out.append("")
        out.append("| scenario | system | syscalls | proxy wake-ups | upstream wake-ups | load-CPU switches "
                   "| load-CPU IPIs to proxy CPU | load-CPU timer interrupts |")
        out.append("|---|---|--:|--:|--:|--:|--:|--:|")
        for sc, system, a in measured(results, order):
            out.append(f"| {SCENARIO_TITLES[sc]} | {system} | {fmt(a['syscalls_per_request_median'], 2)} | "
                       f"{fmt(a['proxy_wakeups_per_request_median'], 3)} | {fmt(a['upstream_wakeups_per_request_median'], 3)} | "
                       f"{fmt(a['load_cpu_switches_per_request_median'], 3)} | "
                       f"{fmt(a.get('load_cpu_ipis_to_proxy_per_request_median'), 3)} | "
                       f"{fmt(a.get('load_cpu_timer_interrupts_per_request_median'), 3)} |")
        names = sorted({k for sc in order for a in results[sc].values() for k in a.get("syscalls_detail_per_request_median", {})})
        if names:
            out.append("")
            out.append("Syscalls per request by name (PERF_DETAIL=1; calls under 0.005 per request left blank):")
            out.append("")
            out.append("| scenario | system | " + " | ".join(names) + " |")
            out.append("|---|---|" + "--:|" * len(names))
            for sc, system, a in measured(results, order):
                d = a.get("syscalls_detail_per_request_median", {})
                cells = [(f"{d[k]:.2f}" if d.get(k) is not None and d[k] >= 0.005 else "") for k in names]
                out.append(f"| {SCENARIO_TITLES[sc]} | {system} | " + " | ".join(cells) + " |")
    h2 = [sc for sc in order if sc.startswith("h2")]
    if h2:
        out.append("")
        out.append(f"HTTP/2 scenarios (h2load, {st.get('h2_connections', 10)} connections x {st.get('h2_streams', 100)} "
                   "concurrent streams, one thread): req/s and CPU µs/req count the requests h2load completed in its "
                   "measured duration; p50/p99 are computed from h2load's per-request log (`--log-file`, time from "
                   "sending the request to the end of the response), as wrk's are; MB/s counts all bytes h2load "
                   "received (frames, HPACK-compressed headers). h2load's own summary gives mean and max only:")
        out.append("")
        out.append("| scenario | system | mean ms | p50 ms | p99 ms | p99.9 ms | max ms (over rounds) |")
        out.append("|---|---|--:|--:|--:|--:|--:|")
        for sc, system, a in measured(results, h2):
            out.append(f"| {SCENARIO_TITLES[sc]} | {system} | {fmt(a['mean_ms_median'], 2)} | {fmt(a['p50_ms_median'], 2)} | "
                       f"{fmt(a['p99_ms_median'], 2)} | {fmt(a['p999_ms_median'], 2)} | {fmt(a['max_ms_max'], 2)} |")
    print("\n".join(out))


if __name__ == "__main__":
    sys.exit(main())
