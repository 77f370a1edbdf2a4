#!/usr/bin/env bash
# nginx + usher module (server role, every field recorded, a reader attached)
# against stock nginx, on the same static page, in the same run.
#
# Both nginx instances run one worker pinned to CPU 0; wrk (and the ring
# reader) run on CPU 1. The two sides alternate in rounds of equal length;
# the figure is the ratio of the medians.
#   BENCH_SECONDS (default 5)  ROUNDS (default 3)  CONNECTIONS (default 32)
#   USHER_SERVER_LINES (default: server role, usher_record all) to try others
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODULE="${USHER_NGINX_MODULE:-$ROOT/target/nginx/ngx_http_usher_module.so}"
DRAIN="$ROOT/target/release/usher-ring-drain"
NGINX="${NGINX_BIN:-/usr/sbin/nginx}"
SECONDS_PER_RUN="${BENCH_SECONDS:-5}"
ROUNDS="${ROUNDS:-3}"
CONNECTIONS="${CONNECTIONS:-32}"

for f in "$MODULE" "$DRAIN"; do
    [ -f "$f" ] || { echo "bench-nginx: $f missing: run make build" >&2; exit 1; }
done
command -v wrk >/dev/null || { echo "bench-nginx: wrk missing (apt-get install wrk)" >&2; exit 1; }
ncpu="$(nproc)"
pin_server="taskset -c 0"
pin_client="taskset -c $((ncpu > 1 ? 1 : 0))"

work="$(mktemp -d)"
chmod 755 "$work" # workers run as an unprivileged user when started as root
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$work" "/dev/shm/usher-bench-$$.ring"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# $1 name, $2 port, $3 extra main lines, $4 extra http lines, $5 extra server lines
start_nginx() {
    local dir="$work/$1"
    mkdir -p "$dir/logs" "$dir/conf" "$dir/html" "$dir/tmp"
    chmod 755 "$dir" "$dir/html"
    head -c 2048 /dev/zero | tr '\0' 'x' | sed 's/^/<!doctype html><p>/' >"$dir/html/static.html"
    cat >"$dir/conf/nginx.conf" <<CONF
$3
daemon off;
master_process on;
worker_processes 1;
pid logs/nginx.pid;
error_log logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path tmp/body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    $4
    server {
        listen 127.0.0.1:$2;
        root html;
        $5
        location = /static.html { }
    }
}
CONF
    $pin_server "$NGINX" -p "$dir/" -c conf/nginx.conf &
    pids+=($!)
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$2/static.html" -o /dev/null && return 0
        sleep 0.05
    done
    echo "bench-nginx: $1 did not start:" >&2
    tail -n 5 "$dir/logs/error.log" >&2
    exit 1
}

stock_port="$(free_port)"
usher_port="$(free_port)"
ring="/dev/shm/usher-bench-$$.ring"
start_nginx stock "$stock_port" "" "" ""
start_nginx usher "$usher_port" "load_module $MODULE;" "usher_ring $ring 4m;" \
    "${USHER_SERVER_LINES:-usher_role server; usher_app bench; usher_record all;}
        location = /usher/command { usher_command; usher_command_token bench-token-0123; }"
$pin_client "$DRAIN" "$ring" --interval-ms 2 --count-only >"$work/drain.log" 2>&1 &
pids+=($!)
sleep 0.3

worker_of() { # $1 name → pid of its (single) worker
    ps --ppid "$(cat "$work/$1/logs/nginx.pid")" -o pid= | head -n 1 | tr -d ' '
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# $1 port, $2 worker pid → "req/s cpu-µs-per-request"
run() {
    local before after out reqs
    before="$(cpu_ticks "$2")"
    out="$($pin_client wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" "http://127.0.0.1:$1/static.html")"
    after="$(cpu_ticks "$2")"
    reqs="$(echo "$out" | awk '/requests in/ {print $1}')"
    echo "$out" | awk -v t="$((after - before))" -v n="$reqs" -v hz="$(getconf CLK_TCK)" \
        '/Requests\/sec/ {printf "%s %.2f\n", $2, t * 1e6 / hz / n}'
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

stock_worker="$(worker_of stock)"
usher_worker="$(worker_of usher)"
run "$stock_port" "$stock_worker" >/dev/null # warm-up
run "$usher_port" "$usher_worker" >/dev/null
stock=()
usher=()
stock_cpu=()
usher_cpu=()
for r in $(seq "$ROUNDS"); do
    read -r s sc <<<"$(run "$stock_port" "$stock_worker")"
    read -r u uc <<<"$(run "$usher_port" "$usher_worker")"
    stock+=("$s")
    usher+=("$u")
    stock_cpu+=("$sc")
    usher_cpu+=("$uc")
    echo "round $r: stock nginx $s req/s ($sc µs CPU/req), nginx+usher $u req/s ($uc µs CPU/req)"
done
ms="$(printf '%s\n' "${stock[@]}" | median)"
mu="$(printf '%s\n' "${usher[@]}" | median)"
msc="$(printf '%s\n' "${stock_cpu[@]}" | median)"
muc="$(printf '%s\n' "${usher_cpu[@]}" | median)"
counts="$(curl -s -H 'Authorization: Bearer bench-token-0123' "http://127.0.0.1:$usher_port/usher/command")"
last_drain="$(tail -n 1 "$work/drain.log")"
echo "nginx static page, 1 worker on CPU 0, wrk -t1 -c$CONNECTIONS on CPU 1, ${ROUNDS}x${SECONDS_PER_RUN}s alternating"
echo "stock nginx:            $ms req/s (median), worker CPU $msc µs/request"
echo "nginx + usher (${USHER_SERVER_LINES:-all fields}, reader attached): $mu req/s (median), worker CPU $muc µs/request"
awk -v u="$mu" -v s="$ms" 'BEGIN { printf "ratio nginx+usher / stock: %.3f (goal >= 0.97)\n", u / s }'
echo "module counters: $counts"
echo "reader: $last_drain"
