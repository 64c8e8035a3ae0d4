#!/usr/bin/env bash
# bench/h2-rss.sh BIN [REQUESTS]: Sluice's peak RSS (VmHWM) and CPU per request while h2load sends
# REQUESTS (default 200000) 4 KiB GETs over h2c, 10 connections x 100 streams, twice, through a
# sluice (BIN) with one worker to an nginx upstream serving the file. Loopback ports 29300-29390.
# Needs: nginx, h2load (nghttp2-client).
set -euo pipefail
BIN=$1
N=${2:-200000}
DIR=$(mktemp -d /tmp/sluice-h2rss.XXXXXX)
chmod 755 "$DIR"  # nginx workers run as another user
mkdir -p "$DIR/www"
head -c 4096 /dev/urandom > "$DIR/www/4k.bin"
cat > "$DIR/nginx.conf" <<CONF
worker_processes 1;
pid $DIR/nginx.pid;
error_log $DIR/nginx-error.log;
events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:29300; root $DIR/www; keepalive_requests 1000000; } }
CONF
cat > "$DIR/sluice.yaml" <<CONF
workers: 1
listeners: [{ name: h2c, address: "127.0.0.1:29380", http2: true }]
admin: { address: "127.0.0.1:29390" }
state_file: off
upstreams: { app: { endpoints: ["127.0.0.1:29300"] } }
routes: [{ name: web, match: { path_prefix: / }, split: { app: 100 } }]
CONF
nginx -c "$DIR/nginx.conf"
"$BIN" run --config "$DIR/sluice.yaml" > "$DIR/sluice.log" 2>&1 &
P=$!
trap 'kill $P 2>/dev/null; kill $(cat "$DIR/nginx.pid") 2>/dev/null; rm -rf "$DIR"' EXIT
sleep 1
ticks() { awk '{print $14 + $15}' /proc/$P/stat; }
HZ=$(getconf CLK_TCK)
for i in 1 2; do
    t0=$(ticks)
    out=$(h2load -n "$N" -c 10 -m 100 http://127.0.0.1:29380/4k.bin 2>&1)
    t1=$(ticks)
    rps=$(echo "$out" | awk '/^finished/ {print $4}')
    ok=$(echo "$out" | awk '/^status codes:/ {print $3}')
    echo "run $i: $rps req/s, 2xx $ok of $N, sluice CPU $(( (t1 - t0) * 1000000 / HZ / N )) us/req"
done
grep -E "VmHWM|VmRSS" /proc/$P/status | tr -s ' \t' ' ' | tr '\n' ' '
echo
