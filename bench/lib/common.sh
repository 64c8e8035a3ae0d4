# Shared by the bench scripts (proxy-vs-direct, metrics-cost, malloc-per-request, scaling,
# busy-poll-wakeups, instructions-per-request...): a temporary work folder, cleanup of every process
# started (by PID), a release build, and an nginx upstream answering a fixed 128-byte body or
# serving a folder. Source it after `set -euo pipefail`.

WORK=$(mktemp -d)
PIDS=()
bench_cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap bench_cleanup EXIT

# bench_build SCRATCH: builds the release sluice binary into SCRATCH (prints nothing).
bench_build() {
    swift build -c release --scratch-path "$1" --product sluice >/dev/null
}

# bench_nginx_upstream PORT [CPU] [WORKERS] [ROOT]: nginx (one worker, or WORKERS) answering 128
# bytes on 127.0.0.1:PORT, or serving the files under ROOT (.json as application/json).
bench_nginx_upstream() {
    local port=$1 cpu=${2:-} workers=${3:-1} root=${4:-}
    local body location
    body=$(printf 'x%.0s' $(seq 1 127))
    location="location / { default_type text/plain; return 200 \"$body\\n\"; }"
    [ -n "$root" ] && location="location / { root $root; types { application/json json; } }"
    cat >"$WORK/nginx.conf" <<NGINX
worker_processes $workers;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$port reuseport;
        $location
    }
}
NGINX
    if [ -n "$cpu" ]; then taskset -c "$cpu" nginx -c "$WORK/nginx.conf" -g 'daemon on;'
    else nginx -c "$WORK/nginx.conf" -g 'daemon on;'; fi
}

# bench_wait_http PORT: waits up to 5 s for http://127.0.0.1:PORT/ to answer.
bench_wait_http() {
    for _ in $(seq 50); do curl -sf "http://127.0.0.1:$1/" >/dev/null && return 0; sleep 0.1; done
    return 1
}

# bench_cpu_ticks PID: utime + stime of a process, in clock ticks.
bench_cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
