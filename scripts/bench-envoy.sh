#!/usr/bin/env bash
# Envoy + usher filter against stock Envoy, in the same run.
#
# 1. Throughput: both Envoys proxy to the same static backend (nginx, one
#    worker); the usher side runs the filter in the server role with records
#    on and a record receiver attached. Figure: req/s usher / req/s stock.
# 2. Added CPU: both Envoys answer a `direct_response` route; CPU time of
#    the Envoy process (utime+stime from /proc) over the requests wrk
#    completed. Figure: µs per request usher - stock.
# Each Envoy runs `--concurrency 1` pinned to CPU 0; wrk, the backend and
# the receiver run on CPU 1. The two sides alternate in rounds of equal
# length; figures are medians over the rounds.
# Each round yields one ratio and one difference (the two sides measured
# back to back); the figures are the medians over the rounds.
#   BENCH_SECONDS (default 5)  ROUNDS (default 5)  CONNECTIONS (default 32)
#   USHER_BENCH_PLUGIN (the usher side's plugin JSON)  BENCH_ONLY=direct
#   BENCH_PAIRED=1: the direct_response figure loads both sides AT THE SAME
#   TIME (two wrk), so other work on a busy machine disturbs both alike;
#   the steadiest figure for the added CPU per request.
#   A/B of two filter builds or configs: BASE_WASM and/or BASE_PLUGIN put the
#   filter on the "stock" side too (that build / that plugin JSON), so the
#   figures compare the two filters directly (usher = USHER_WASM/PLUGIN).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENVOY="${ENVOY_BIN:-$ROOT/.venv/bin/envoy}"
WASM="${USHER_WASM:-$ROOT/target/wasm32-wasip1/wasm/usher_filter.wasm}"
NGINX="${NGINX_BIN:-/usr/sbin/nginx}"
SECS="${BENCH_SECONDS:-5}"
ROUNDS="${ROUNDS:-5}"
CONNS="${CONNECTIONS:-32}"
# The usher side's plugin configuration: server role, records on.
DEFAULT_PLUGIN='{"role": "server", "app": "bench", "record": ["method", "content_path", "status", "start_time", "processing_time", "content_length"], "agent_cluster": "usher_agent", "stateful": ["/cart"], "session_cookie": "usher_session"}'
PLUGIN="${USHER_BENCH_PLUGIN:-$DEFAULT_PLUGIN}"
BASE_WASM="${BASE_WASM:-}"
BASE_PLUGIN="${BASE_PLUGIN:-}"
if [ -n "$BASE_WASM$BASE_PLUGIN" ]; then
    BASE_WASM="${BASE_WASM:-$WASM}"; BASE_PLUGIN="${BASE_PLUGIN:-$PLUGIN}"
    echo "bench-envoy: A/B run: the \"stock\" side runs $BASE_WASM with $BASE_PLUGIN"
fi
for f in "$ENVOY" "$WASM" "$NGINX"; do
    [ -e "$f" ] || { echo "bench-envoy: $f missing: run make build" >&2; exit 1; }
done
command -v wrk >/dev/null || { echo "bench-envoy: wrk missing (apt-get install wrk)" >&2; exit 1; }
ncpu="$(nproc)"
pin_server="taskset -c 0"
pin_client="taskset -c $((ncpu > 1 ? 1 : 0))"
tick="$(getconf CLK_TCK)"

work="$(mktemp -d)"
chmod 755 "$work"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_http() {
    for _ in $(seq 200); do curl -s -o /dev/null "$1" && return 0; sleep 0.05; done
    echo "bench-envoy: nothing answers $1" >&2; exit 1
}

# Static backend: nginx, one worker, a 2 KiB page.
backend="$(free_port)"
mkdir -p "$work/nginx/logs" "$work/nginx/conf" "$work/nginx/html" "$work/nginx/tmp"
chmod 755 "$work/nginx" "$work/nginx/html"
head -c 2048 /dev/zero | tr '\0' 'x' | sed 's/^/<!doctype html><p>/' >"$work/nginx/html/static.html"
cat >"$work/nginx/conf/nginx.conf" <<CONF
daemon off; master_process on; worker_processes 1; pid logs/nginx.pid;
error_log logs/error.log warn;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path tmp/body; proxy_temp_path tmp/proxy;
  fastcgi_temp_path tmp/fastcgi; uwsgi_temp_path tmp/uwsgi; scgi_temp_path tmp/scgi;
  server { listen 127.0.0.1:$backend; root html; location = /static.html { } } }
CONF
$pin_client "$NGINX" -p "$work/nginx/" -c conf/nginx.conf & pids+=($!)

# Record receiver (stands in for the agent): answers 200 to every batch.
receiver="$(free_port)"
cat >"$work/receiver.py" <<'PY'
import http.server, sys
records = 0
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        n = int(self.headers.get("content-length", 0)); self.rfile.read(n)
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
$pin_client python3 "$work/receiver.py" "$receiver" & pids+=($!)

# $1 side (stock|usher), $2 proxy port, $3 direct port, $4 admin port
envoy_config() {
    local filter="" wasm="$WASM" plugin="$PLUGIN"
    if [ "$1" = stock ] && [ -n "$BASE_WASM" ]; then wasm="$BASE_WASM"; plugin="$BASE_PLUGIN"; fi
    if [ "$1" = usher ] || [ -n "$BASE_WASM" ]; then
        filter="
$(cat <<YAML
          - name: envoy.filters.http.wasm
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: usher_server
                root_id: usher
                failure_policy: FAIL_OPEN
                vm_config: {vm_id: usher, runtime: envoy.wasm.runtime.v8, code: {local: {filename: "$wasm"}}}
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: '$plugin'
YAML
)"
    fi
    local listener
    cat <<YAML
admin: {address: {socket_address: {address: 127.0.0.1, port_value: $4}}}
static_resources:
  listeners:
YAML
    for listener in "proxy:$2" "direct:$3"; do
        local name="${listener%%:*}" port="${listener##*:}" route
        if [ "$name" = proxy ]; then route='route: {cluster: backend}'; else route='direct_response: {status: 200, body: {inline_string: "ok"}}'; fi
        cat <<YAML
  - name: $name
    address: {socket_address: {address: 127.0.0.1, port_value: $port}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: $name
          route_config:
            virtual_hosts:
            - {name: all, domains: ["*"], routes: [{match: {prefix: "/"}, $route}]}
          http_filters:$filter
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
YAML
    done
    cat <<YAML
  clusters:
  - name: backend
    type: STATIC
    connect_timeout: 1s
    load_assignment: {cluster_name: backend, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $backend}}}}]}]}
  - name: usher_agent
    type: STATIC
    connect_timeout: 1s
    load_assignment: {cluster_name: usher_agent, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $receiver}}}}]}]}
YAML
}

declare -A proxy_port direct_port envoy_pid
for side in stock usher; do
    proxy_port[$side]="$(free_port)"; direct_port[$side]="$(free_port)"; admin="$(free_port)"
    envoy_config "$side" "${proxy_port[$side]}" "${direct_port[$side]}" "$admin" >"$work/$side.yaml"
    $pin_server "$ENVOY" -c "$work/$side.yaml" --concurrency 1 --base-id "$admin" --log-level warn \
        >"$work/$side.log" 2>&1 & pids+=($!); envoy_pid[$side]=$!
done
wait_http "http://127.0.0.1:$backend/static.html"
for side in stock usher; do
    wait_http "http://127.0.0.1:${proxy_port[$side]}/static.html"
    wait_http "http://127.0.0.1:${direct_port[$side]}/"
done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# run SIDE URL -> "req/s requests cpu_seconds"
run() {
    local side="$1" url="$2" before after out
    before="$(cpu_ticks "${envoy_pid[$side]}")"
    out="$($pin_client wrk -t1 -c"$CONNS" -d"$SECS"s "$url")"
    after="$(cpu_ticks "${envoy_pid[$side]}")"
    local rps reqs
    rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
    reqs="$(awk '/requests in/ {print $1}' <<<"$out")"
    echo "$rps $reqs $(( after - before ))"
}

# run_pair STOCK_URL USHER_URL -> "stock_requests stock_ticks usher_requests usher_ticks":
# both sides loaded at the same time (two wrk on the client CPU), so load
# from other work on the machine falls on both alike.
run_pair() {
    local bs bu as au p1 p2
    bs="$(cpu_ticks "${envoy_pid[stock]}")"; bu="$(cpu_ticks "${envoy_pid[usher]}")"
    $pin_client wrk -t1 -c"$CONNS" -d"$SECS"s "$1" >"$work/wrk.stock" & p1=$!
    $pin_client wrk -t1 -c"$CONNS" -d"$SECS"s "$2" >"$work/wrk.usher" & p2=$!
    wait "$p1" "$p2"
    as="$(cpu_ticks "${envoy_pid[stock]}")"; au="$(cpu_ticks "${envoy_pid[usher]}")"
    echo "$(awk '/requests in/ {print $1}' "$work/wrk.stock") $(( as - bs ))" \
        "$(awk '/requests in/ {print $1}' "$work/wrk.usher") $(( au - bu ))"
}

# Warm up both sides (V8 tiers up the filter under load).
for side in stock usher; do
    $pin_client wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:${proxy_port[$side]}/static.html" >/dev/null
    $pin_client wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:${direct_port[$side]}/" >/dev/null
done

results="$work/results"
: >"$results"
for round in $(seq "$ROUNDS"); do
    for side in stock usher; do
        if [ "${BENCH_ONLY:-}" != direct ]; then
        read -r rps reqs ticks <<<"$(run "$side" "http://127.0.0.1:${proxy_port[$side]}/static.html")"
        echo "proxy $side $rps $round" >>"$results"
        us="$(python3 -c "print(f'{$ticks / $tick * 1e6 / max($reqs, 1):.2f} µs CPU/request, Envoy busy {$ticks / $tick / $SECS * 100:.0f}%')")"
        echo "round $round proxy  $side: $rps req/s, $us"
        fi
        [ "${BENCH_PAIRED:-}" = 1 ] && continue
        read -r rps reqs ticks <<<"$(run "$side" "http://127.0.0.1:${direct_port[$side]}/")"
        us="$(python3 -c "print(f'{$ticks / $tick * 1e6 / max($reqs, 1):.2f}')")"
        echo "direct $side $us $round" >>"$results"
        echo "round $round direct $side: $rps req/s, $us µs CPU/request"
    done
    if [ "${BENCH_PAIRED:-}" = 1 ]; then
        read -r rs ts ru tu <<<"$(run_pair "http://127.0.0.1:${direct_port[stock]}/" "http://127.0.0.1:${direct_port[usher]}/")"
        for side in stock usher; do
            if [ "$side" = stock ]; then reqs="$rs" ticks="$ts"; else reqs="$ru" ticks="$tu"; fi
            us="$(python3 -c "print(f'{$ticks / $tick * 1e6 / max($reqs, 1):.2f}')")"
            echo "direct $side $us $round" >>"$results"
            echo "round $round direct $side (paired): $reqs requests, $us µs CPU/request"
        done
    fi
done
python3 - "$results" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
val = {(r[0], r[1], r[3]): float(r[2]) for r in rows}
rounds = sorted({r[3] for r in rows})
def per_round(kind, f):
    xs = [f(val[(kind, "usher", n)], val[(kind, "stock", n)]) for n in rounds if (kind, "usher", n) in val]
    return statistics.median(xs) if xs else float("nan")
med = lambda kind, side: statistics.median([v for (k, s, _), v in val.items() if k == kind and s == side] or [float("nan")])
print(f"envoy proxy to static backend: stock {med('proxy','stock'):.0f} req/s, usher filter (server role, records on) {med('proxy','usher'):.0f} req/s (medians)")
print(f"envoy throughput ratio usher/stock: {per_round('proxy', lambda u, s: u / s):.3f} (median of per-round ratios; goal >= 0.90)")
print(f"envoy direct_response CPU per request: stock {med('direct','stock'):.2f} us, usher {med('direct','usher'):.2f} us (medians)")
print(f"envoy filter added CPU per request: {per_round('direct', lambda u, s: u - s):.2f} us (median of per-round differences; goal <= 4)")
# Other work on the machine only ever adds CPU time per request: the best
# round of each side is the least disturbed estimate of its own cost.
lo = lambda kind, side: min([v for (k, s, _), v in val.items() if k == kind and s == side] or [float("nan")])
if any(k == "direct" for (k, _, _) in val):
    ratio = per_round("direct", lambda u, s: u / s)
    print(f"envoy direct_response CPU per request usher/stock: {ratio:.3f} (median of per-round ratios; with BENCH_PAIRED=1 the steadiest figure); "
          f"x stock best round = +{(ratio - 1) * lo('direct', 'stock'):.2f} us added")
    print(f"envoy direct_response CPU per request, best round: stock {lo('direct','stock'):.2f} us, usher {lo('direct','usher'):.2f} us, difference {lo('direct','usher') - lo('direct','stock'):.2f} us")
PY
