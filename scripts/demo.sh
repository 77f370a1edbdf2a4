#!/usr/bin/env bash
# `make demo`: starts the whole stack on loopback and prints where to look.
# Ctrl-C stops everything this script started (by PID).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
demo="$USHER_ROOT/.demo"
# Every demo starts from a fresh store, so the printed config is the truth.
rm -rf "$demo/var"
mkdir -p "$demo/logs"
trap 'echo; echo "stopping the demo"; stop_all' EXIT INT TERM

# Ports: the admin API on $USHER_DEMO_ADMIN_PORT (7900), the front door on
# $USHER_DEMO_BASE_PORT (8080) and the three servers on the next three.
admin=${USHER_DEMO_ADMIN_PORT:-7900}
base=${USHER_DEMO_BASE_PORT:-8080}
pa=$((base + 1)) pb=$((base + 2)) pc=$((base + 3))
for port in "$admin" "$base" "$pa" "$pb" "$pc"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "demo: port $port on 127.0.0.1 is taken; stop what uses it and run make demo again" >&2
    exit 1
  fi
done

cat >"$demo/usher.toml" <<TOML
# Written by scripts/demo.sh; see docs/configuration.md.
[control]
listen = "127.0.0.1:$admin"
data_dir = "var"

[[apps]]
name = "shop"
listen = "127.0.0.1:$base"
mode = "redirect"
enabled = true
stateful = ["/cart"]
epsilon = 0
obsolescence_secs = 1200

[[servers]]
name = "a"
app = "shop"
url = "http://127.0.0.1:$pa"
capacity = 2

[[servers]]
name = "b"
app = "shop"
url = "http://127.0.0.1:$pb"
capacity = 5

[[servers]]
name = "c"
app = "shop"
url = "http://127.0.0.1:$pc"
capacity = 8
TOML

bin="$USHER_ROOT/target/release"
start app-a "$demo/logs/app-a.log" "$bin/usher-demo-app" --listen 127.0.0.1:$pa --name a --workers 2 --service-ms 20
start app-b "$demo/logs/app-b.log" "$bin/usher-demo-app" --listen 127.0.0.1:$pb --name b --workers 5 --service-ms 20
start app-c "$demo/logs/app-c.log" "$bin/usher-demo-app" --listen 127.0.0.1:$pc --name c --workers 8 --service-ms 20
start control "$demo/logs/control.log" "$bin/usher" control --config "$demo/usher.toml"
for port in "$pa" "$pb" "$pc" "$admin" "$base"; do wait_port "$port"; done

cat <<TXT

usher demo is running (logs in $demo/logs):
  front door:   http://127.0.0.1:$base/        (302 to one of a, b, c by weighted choice)
  admin API:    http://127.0.0.1:$admin/api/v1/ (token in $demo/var/admin.token)
  servers:      a http://127.0.0.1:$pa  b http://127.0.0.1:$pb  c http://127.0.0.1:$pc

Try:
  curl -si http://127.0.0.1:$base/ | grep -i location
  $bin/usher ctl --url http://127.0.0.1:$admin --token-file $demo/var/admin.token servers
  $bin/usher ctl --url http://127.0.0.1:$admin --token-file $demo/var/admin.token server load c 500

Press Ctrl-C to stop everything.
TXT
# Stay in the foreground until Ctrl-C; a child dying ends the demo too.
wait -n "${USHER_PIDS[@]}" || true
echo "demo: a component stopped; see $demo/logs" >&2
