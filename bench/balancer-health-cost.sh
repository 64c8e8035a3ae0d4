#!/bin/sh
# The cost of endpoint availability on the balancer's pick (issue 15): smooth weighted round
# robin over 4 endpoints, without health state and with it attached (all endpoints available,
# the common case: one relaxed load). Builds SluiceCore's sources with a small driver at -O.
# Usage: bench/balancer-health-cost.sh   (prints ns per pick, three rounds)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/inc"
cp "$root/Sources/CSluiceAtomics/include/CSluiceAtomics.h" "$dir/inc/"
printf 'module CSluiceAtomics { header "CSluiceAtomics.h" export * }\n' > "$dir/inc/module.modulemap"
cat > "$dir/main.swift" <<'SWIFT'
internal import Glibc
func nanos() -> UInt64 { var ts = timespec(); clock_gettime(CLOCK_MONOTONIC, &ts); return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec) }
@inline(never) func sink(_ x: Int32) { if x == -99 { print("x") } }
let eps = (0..<4).map { Endpoint(address: .v4(0x7f00_0001, port: UInt16(9000 + $0)), label: "e\($0)") }
let table = RoutingTable(version: 1, upstreams: [UpstreamGroup(name: "app", endpoints: eps)], routes: [])
let health = EndpointHealth(capacity: 64, workers: 1)
let slots = health.assign(table)
var plain = BalancerState(table: table)
var withHealth = BalancerState(table: table, health: health, slots: slots, worker: 0)
let n = 20_000_000
for round in 0..<3 {
    var t = nanos()
    for _ in 0..<n { sink(plain.pick(group: 0, in: table)) }
    let a = Double(nanos() - t) / Double(n)
    t = nanos()
    for _ in 0..<n { sink(withHealth.pick(group: 0, in: table)) }
    let b = Double(nanos() - t) / Double(n)
    print("round \(round): pick without health \(a) ns, with health (all available) \(b) ns")
}
SWIFT
# shellcheck disable=SC2046
swiftc -O -wmo -package-name sluice -module-name PickBench -I "$dir/inc" $(find "$root/Sources/SluiceCore" -name '*.swift') "$dir/main.swift" -o "$dir/pick" 2>/dev/null
"$dir/pick"
