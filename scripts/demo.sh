#!/usr/bin/env bash
# `make demo`: starts the whole stack on loopback and prints where to look.
# Ctrl-C stops everything this script started (by PID).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
demo="$USHER_ROOT/.demo"
mkdir -p "$demo/logs"
trap 'echo; echo "stopping the demo"; stop_all' EXIT INT TERM

for port in 7900 8080 8081 8082 8083; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "demo: port $port on 127.0.0.1 is taken; stop what uses it and run make demo again" >&2
    exit 1
  fi
done

cat >"$demo/usher.toml" <<TOML
# Written by scripts/demo.sh; see docs/configuration.md.
[control]
listen = "127.0.0.1:7900"
data_dir = "var"

[[apps]]
name = "shop"
listen = "127.0.0.1:8080"
mode = "redirect"
enabled = true
stateful = ["/cart"]
epsilon = 0
obsolescence_secs = 1200

[[servers]]
name = "a"
app = "shop"
url = "http://127.0.0.1:8081"
capacity = 2

[[servers]]
name = "b"
app = "shop"
url = "http://127.0.0.1:8082"
capacity = 5

[[servers]]
name = "c"
app = "shop"
url = "http://127.0.0.1:8083"
capacity = 8
TOML

bin="$USHER_ROOT/target/release"
start app-a "$demo/logs/app-a.log" "$bin/usher-demo-app" --listen 127.0.0.1:8081 --name a --workers 2 --service-ms 20
start app-b "$demo/logs/app-b.log" "$bin/usher-demo-app" --listen 127.0.0.1:8082 --name b --workers 5 --service-ms 20
start app-c "$demo/logs/app-c.log" "$bin/usher-demo-app" --listen 127.0.0.1:8083 --name c --workers 8 --service-ms 20
start control "$demo/logs/control.log" "$bin/usher" control --config "$demo/usher.toml"
for port in 8081 8082 8083 7900 8080; do wait_port "$port"; done

cat <<TXT

usher demo is running (logs in $demo/logs):
  front door:   http://127.0.0.1:8080/        (302 to one of a, b, c by weighted choice)
  admin API:    http://127.0.0.1:7900/api/v1/ (token in $demo/var/admin.token)
  servers:      a http://127.0.0.1:8081  b http://127.0.0.1:8082  c http://127.0.0.1:8083

Try:
  curl -si http://127.0.0.1:8080/ | grep -i location
  $bin/usher ctl --token-file $demo/var/admin.token servers
  $bin/usher ctl --token-file $demo/var/admin.token server load c 500

Press Ctrl-C to stop everything.
TXT
# Stay in the foreground until Ctrl-C; a child dying ends the demo too.
wait -n "${USHER_PIDS[@]}" || true
echo "demo: a component stopped; see $demo/logs" >&2
