# bench_proxy_configs PROXY_PORT UP_PORT: writes $WORK/sluice.yaml, $WORK/nginx-proxy.conf and
# $WORK/haproxy.cfg: each proxy with one worker on 127.0.0.1:PROXY_PORT, a 95/5 split over two
# backends that are both 127.0.0.1:UP_PORT, keep-alive both ways, X-Forwarded-For, no access log
# (bench/instructions-per-request.sh and bench/sampled-user-time.sh; nginx runs in the foreground
# without a master, so its PID is the worker's). Needs common.sh's $WORK.
bench_proxy_configs() {
    local PROXY_PORT=$1 UP_PORT=$2
    cat >"$WORK/sluice.yaml" <<YAML
workers: 1
listeners:
  - name: bench
    address: 127.0.0.1:$PROXY_PORT
admin: { address: "127.0.0.1:$((PROXY_PORT + 2))" }
access_log: { path: off }
limits: { max_requests_per_connection: 0 }
upstreams:
  a: { endpoints: ["127.0.0.1:$UP_PORT"] }
  b: { endpoints: ["127.0.0.1:$UP_PORT"] }
routes:
  - name: bench
    match: { path_prefix: "/" }
    split: { a: 95, b: 5 }
    sticky: none
YAML
    cat >"$WORK/nginx-proxy.conf" <<NGINX
worker_processes 1;
master_process off;
daemon off;
pid $WORK/nginx-proxy.pid;
error_log $WORK/nginx-proxy-error.log;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 10000000;
    upstream a { server 127.0.0.1:$UP_PORT; keepalive 4096; }
    upstream b { server 127.0.0.1:$UP_PORT; keepalive 4096; }
    split_clients "\$request_id" \$cohort { 95% a; * b; }
    server {
        listen 127.0.0.1:$PROXY_PORT;
        location / {
            proxy_pass http://\$cohort;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        }
    }
}
NGINX
    cat >"$WORK/haproxy.cfg" <<HAPROXY
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    option http-keep-alive
    option forwardfor
frontend f
    bind 127.0.0.1:$PROXY_PORT
    use_backend b if { rand(100) lt 5 }
    default_backend a
backend a
    http-reuse always
    server s1 127.0.0.1:$UP_PORT
backend b
    http-reuse always
    server s1 127.0.0.1:$UP_PORT
HAPROXY
}
