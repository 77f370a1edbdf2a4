#!/usr/bin/env bash
# Front-door referral rate: usher's built-in front door (302 by weighted pick)
# against nginx `return 302` on the same machine. Both servers are pinned to
# core 0 with one worker each (usher --threads 1, nginx worker_processes 1),
# wrk on core 1; the two sides run alternately, ROUNDS times each.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
SECONDS_PER_RUN="${BENCH_SECONDS:-5}"
ROUNDS="${BENCH_ROUNDS:-3}"
CONNS="${BENCH_CONNECTIONS:-32}"
work="$(mktemp -d)"
trap 'stop_all; rm -rf "$work"' EXIT

usher_port=$((20000 + RANDOM % 10000)); admin_port=$((usher_port + 1)); nginx_port=$((usher_port + 2))
cat >"$work/usher.toml" <<TOML
[control]
listen = "127.0.0.1:$admin_port"
data_dir = "var"

[[apps]]
name = "bench"
listen = "127.0.0.1:$usher_port"
mode = "redirect"
enabled = true

[[servers]]
name = "a"
app = "bench"
url = "http://127.0.0.1:8081"
capacity = 3

[[servers]]
name = "b"
app = "bench"
url = "http://127.0.0.1:8082"
capacity = 5

[[servers]]
name = "c"
app = "bench"
url = "http://127.0.0.1:8083"
capacity = 8
TOML
mkdir -p "$work/nginx/logs"
cat >"$work/nginx/nginx.conf" <<CONF
daemon off;
master_process on;
worker_processes 1;
pid logs/nginx.pid;
error_log logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path tmp_body; proxy_temp_path tmp_proxy; fastcgi_temp_path tmp_fcgi;
  uwsgi_temp_path tmp_uwsgi; scgi_temp_path tmp_scgi;
  server {
    listen 127.0.0.1:$nginx_port;
    location / { return 302 http://127.0.0.1:8081\$request_uri; }
  }
}
CONF
start usher "$work/usher.log" taskset -c 0 "$USHER_ROOT/target/release/usher" control --threads 1 --config "$work/usher.toml"
start nginx "$work/nginx.log" taskset -c 0 nginx -p "$work/nginx" -c nginx.conf
wait_port "$usher_port"; wait_port "$nginx_port"
wrk_rps "http://127.0.0.1:$usher_port/" 1 "$CONNS" >/dev/null
wrk_rps "http://127.0.0.1:$nginx_port/" 1 "$CONNS" >/dev/null

usher_total=0; nginx_total=0
for ((i = 1; i <= ROUNDS; i++)); do
  u=$(wrk_rps "http://127.0.0.1:$usher_port/" "$SECONDS_PER_RUN" "$CONNS")
  n=$(wrk_rps "http://127.0.0.1:$nginx_port/" "$SECONDS_PER_RUN" "$CONNS")
  echo "round $i: usher front door ${u} req/s, nginx return 302 ${n} req/s"
  usher_total=$(awk -v a="$usher_total" -v b="$u" 'BEGIN {print a + b}')
  nginx_total=$(awk -v a="$nginx_total" -v b="$n" 'BEGIN {print a + b}')
done
awk -v u="$usher_total" -v n="$nginx_total" -v r="$ROUNDS" 'BEGIN {
  printf "front door referral rate: usher %.0f req/s, nginx return 302 %.0f req/s, ratio usher/nginx = %.3f\n", u / r, n / r, u / n }' 
