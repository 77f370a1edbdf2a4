#!/usr/bin/env bash
# `make demo`: starts the whole stack on loopback and prints where to look.
#
#   browser → front door (usher's built-in one, an nginx one, an Envoy one)
#           → nginx + usher module (server role, one per demo server)
#           → usher-demo-app a, b, c (bounded worker pools of 2, 5 and 8)
#   usher control: managed objects in SQLite, admin API, pushes snapshots to
#   every nginx and Envoy; usher agent: reads the nginx rings, probes the
#   servers, reports to the control plane.
#
# Every process runs supervised: the control plane and the agent under
# `usher watch`, the others under lib.sh's `supervise`. When one exits it is
# started again, so a demo app can be killed to watch failover. Ctrl-C stops
# everything this script started (by PID).
#
# Environment: USHER_DEMO_BASE_PORT (8080), USHER_DEMO_ADMIN_PORT (7900),
# USHER_DEMO_DIR (<repo>/.demo: config, logs, data, PID files).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
demo="${USHER_DEMO_DIR:-$USHER_ROOT/.demo}"
bin="$USHER_ROOT/target/release"
module="$USHER_ROOT/target/nginx/ngx_http_usher_module.so"
wasm="$USHER_ROOT/target/wasm32-wasip1/wasm/usher_filter.wasm"
envoy="$USHER_ROOT/.venv/bin/envoy"

for f in "$bin/usher" "$bin/usher-demo-app" "$module" "$wasm" "$envoy"; do
  if [ ! -x "$f" ] && [ ! -f "$f" ]; then
    echo "demo: $f is missing; run make build (or make demo)" >&2
    exit 1
  fi
done

# Ports: everything is placed relative to the built-in front door's port
# ($USHER_DEMO_BASE_PORT, 8080) and the admin API ($USHER_DEMO_ADMIN_PORT, 7900).
admin=${USHER_DEMO_ADMIN_PORT:-7900}
base=${USHER_DEMO_BASE_PORT:-8080}
nginx_door=$((base - 80))      # 8000: nginx + usher module as front door
envoy_door=$((base + 10))      # 8090: Envoy + usher filter as front door
envoy_cmd=$((base + 1110))     # 9190: the Envoy front door's command endpoint
envoy_admin=$((base + 1822))   # 9902: Envoy's admin page
door_cmd=$((base + 1120))      # 9200: the usher door's command endpoint
names=(a b c)
workers=(2 5 8)
capacity=(2 5 8)
ports=("$admin" "$base" "$nginx_door" "$envoy_door" "$envoy_cmd" "$envoy_admin" "$door_cmd"
  $((base + 1)) $((base + 2)) $((base + 3)) $((base + 1001)) $((base + 1002)) $((base + 1003)))
for port in "${ports[@]}"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "demo: port $port on 127.0.0.1 is taken; stop what uses it (or set USHER_DEMO_BASE_PORT / USHER_DEMO_ADMIN_PORT) and run make demo again" >&2
    exit 1
  fi
done

# Every demo starts from a fresh folder, so the printed config is the truth.
# Only a folder an earlier demo made (it holds .usher-demo) is ever removed.
if [ -d "$demo" ] && [ -n "$(ls -A "$demo")" ] && [ ! -e "$demo/.usher-demo" ]; then
  echo "demo: $demo exists and was not made by the demo; set USHER_DEMO_DIR to another folder" >&2
  exit 1
fi
rm -rf "$demo"
mkdir -p "$demo/logs" "$demo/run"
touch "$demo/.usher-demo"
logs="$demo/logs"
run="$demo/run"

stopped=""
cleanup() {
  [ "${#USHER_SUPERVISORS[@]}" -gt 0 ] || return 0
  trap '' INT TERM
  local i what=() pid port open=()
  for i in "${!USHER_SUPERVISED[@]}"; do
    pid="$(cat "$run/${USHER_SUPERVISED[$i]}.pid" 2>/dev/null || true)"
    what+=("${USHER_SUPERVISED[$i]}${pid:+ (pid $pid)}")
  done
  echo >&2
  echo "demo: stopping ${what[*]}" >&2
  stop_all
  rm -f /dev/shm/usher-demo-"$base"-*.ring
  for port in "${ports[@]}"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then open+=("$port"); fi
  done
  if [ "${#open[@]}" -gt 0 ]; then
    echo "demo: stopped; still listening on 127.0.0.1: ${open[*]} (not started by this demo?)" >&2
  else
    echo "demo: stopped all ${#what[@]} processes${stopped:+ ($stopped)}; none of the demo's ports is open" >&2
  fi
}
trap cleanup EXIT
trap 'stopped="Ctrl-C"; exit 0' INT
trap 'stopped="SIGTERM"; exit 0' TERM

token="$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s\n' "$token" >"$demo/wsi.token"
chmod 600 "$demo/wsi.token"

# run_nginx NAME PREFIX: nginx in the foreground (`daemon off`), so the
# supervised process is its master.
run_nginx() {
  supervise "$1" "$logs/$1.log" "$run/$1.pid" nginx -p "$2" -c conf/nginx.conf -g 'daemon off;'
}

echo "demo: starting demo apps a, b, c, four nginx, Envoy, usher door, the control plane and the agent (logs in $logs)" >&2

# --- demo apps and one nginx + usher module (server role) in front of each ---
wsis=""
servers=""
for i in 0 1 2; do
  name=${names[$i]}
  app_port=$((base + 1001 + i))
  web_port=$((base + 1 + i))
  supervise "app-$name" "$logs/app-$name.log" "$run/app-$name.pid" \
    "$bin/usher-demo-app" --listen "127.0.0.1:$app_port" \
    --name "$name" --workers "${workers[$i]}" --service-ms 20

  prefix="$demo/nginx-$name"
  mkdir -p "$prefix/modules" "$prefix/conf" "$prefix/logs" "$prefix/tmp"
  cp "$module" "$prefix/modules/"
  cp "$demo/wsi.token" "$prefix/conf/usher.token"
  render "$USHER_ROOT/nginx/web-server.conf" "$prefix/conf/nginx.conf" \
    "listen 127.0.0.1:8080;" "listen 127.0.0.1:$web_port;" \
    "server 127.0.0.1:8081;" "server 127.0.0.1:$app_port;" \
    "/dev/shm/usher-nginx-8080.ring" "/dev/shm/usher-demo-$base-$name.ring"
  run_nginx "nginx-$name" "$prefix"

  servers+="
[[servers]]
name = \"$name\"
app = \"shop\"
url = \"http://127.0.0.1:$web_port\"
capacity = ${capacity[$i]}
"
  wsis+="
[[wsis]]
name = \"nginx-$name\"
url = \"http://127.0.0.1:$web_port/usher/command\"
token_file = \"wsi.token\"
role = \"server\"
app = \"shop\"
server = \"$name\"
"
done

# --- an nginx front door (interceptor role) ---
prefix="$demo/nginx-door"
mkdir -p "$prefix/modules" "$prefix/conf" "$prefix/logs" "$prefix/tmp"
cp "$module" "$prefix/modules/"
cp "$demo/wsi.token" "$prefix/conf/usher.token"
cp "$USHER_ROOT/nginx/sorry.html" "$prefix/conf/"
render "$USHER_ROOT/nginx/front-door.conf" "$prefix/conf/nginx.conf" \
  "listen 127.0.0.1:8000;" "listen 127.0.0.1:$nginx_door;" \
  "usher_server shop-1 http://127.0.0.1:8080 5;" "usher_server a http://127.0.0.1:$((base + 1)) 2;" \
  "usher_server shop-2 http://127.0.0.1:8090 5;" "usher_server b http://127.0.0.1:$((base + 2)) 5;
        usher_server c http://127.0.0.1:$((base + 3)) 8;"
run_nginx nginx-door "$prefix"
wsis+="
[[wsis]]
name = \"nginx-door\"
url = \"http://127.0.0.1:$nginx_door/usher/command\"
token_file = \"wsi.token\"
role = \"interceptor\"
app = \"shop\"
"

# --- an Envoy front door (interceptor role, proxy-wasm filter) ---
mkdir -p "$demo/envoy"
render "$USHER_ROOT/envoy/front-door.yaml" "$demo/envoy/front-door.yaml" \
  "port_value: 8090" "port_value: $envoy_door" \
  "port_value: 9190" "port_value: $envoy_cmd" \
  "port_value: 9902" "port_value: $envoy_admin" \
  "127.0.0.1:8081" "127.0.0.1:$((base + 1))" \
  "127.0.0.1:8082" "127.0.0.1:$((base + 2))" \
  "127.0.0.1:8083" "127.0.0.1:$((base + 3))" \
  "port_value: 8081" "port_value: $((base + 1))" \
  "port_value: 8082" "port_value: $((base + 2))" \
  "port_value: 8083" "port_value: $((base + 3))" \
  "filename: target/wasm32-wasip1/wasm/usher_filter.wasm" "filename: $wasm" \
  "change-me-command" "$token"
supervise envoy-door "$logs/envoy-door.log" "$run/envoy-door.pid" \
  "$envoy" -c "$demo/envoy/front-door.yaml" --concurrency 2 --disable-hot-restart --log-level warn
wsis+="
[[wsis]]
name = \"envoy-door\"
url = \"http://127.0.0.1:$envoy_cmd/usher/command\"
token_file = \"wsi.token\"
role = \"interceptor\"
app = \"shop\"
"

# --- usher's built-in front door, as its own process (usher door): it
# keeps serving while the control plane is stopped or restarted ---
cat >"$demo/door.toml" <<TOML
# Written by scripts/demo.sh; see docs/configuration.md ("usher door").
[command]
listen = "127.0.0.1:$door_cmd"
token_file = "wsi.token"
snapshot_file = "door-held.json"

[[apps]]
name = "shop"
listen = "127.0.0.1:$base"
TOML
supervise door "$logs/door.log" "$run/door.pid" "$bin/usher" door --config "$demo/door.toml"
wsis+="
[[wsis]]
name = \"door\"
url = \"http://127.0.0.1:$door_cmd/\"
token_file = \"wsi.token\"
role = \"interceptor\"
app = \"shop\"
"

# --- the control plane ---
cat >"$demo/usher.toml" <<TOML
# Written by scripts/demo.sh; see docs/configuration.md.
[control]
listen = "127.0.0.1:$admin"
data_dir = "var"
# The built-in front door runs as usher door (above), not inside usher control.
serve_front_doors = false

[[apps]]
name = "shop"
listen = "127.0.0.1:$base"
mode = "redirect"
enabled = true
stateful = ["/cart"]
session_cookie = "usher_session"
epsilon = 0
obsolescence_secs = 1200
public_url = "http://127.0.0.1:$base"
$servers$wsis
TOML
# The control plane and the agent run under usher watch (docs/watch.md);
# the agent reads the watchers' events file and sends each event on.
watched control "$logs/control.log" "$run" "$logs/watch-events.jsonl" \
  "$bin/usher" control --config "$demo/usher.toml"

# --- one agent for this host: reads the three nginx rings, probes the
# servers, reports to the control plane (it dials in; nothing dials it) ---
wait_port "$admin" 30 control "$logs/control.log"
agent_servers=""
for i in 0 1 2; do
  name=${names[$i]}
  web_port=$((base + 1 + i))
  agent_servers+="
[[servers]]
name = \"$name\"
url = \"http://127.0.0.1:$web_port\"
ring = \"/dev/shm/usher-demo-$base-$name.ring\"
probe_path = \"/health\"
probe_body = \"ok $name\"
command_url = \"http://127.0.0.1:$web_port/usher/command\"
command_token = \"$token\"
"
done
cat >"$demo/agent.toml" <<TOML
# Written by scripts/demo.sh; see docs/agent.md.
agent_id = "demo-host"
data_dir = "$demo/agent"
control_url = "ws://127.0.0.1:$admin/api/v1/agent/channel"
token_file = "$demo/var/agent.token"
watch_events = ["$logs/watch-events.jsonl"]
$agent_servers
TOML
watched agent "$logs/agent.log" "$run" "$logs/watch-events.jsonl" \
  "$bin/usher" agent --config "$demo/agent.toml"

for i in 0 1 2; do
  wait_port $((base + 1001 + i)) 30 "app-${names[$i]}" "$logs/app-${names[$i]}.log"
  wait_port $((base + 1 + i)) 30 "nginx-${names[$i]}" "$logs/nginx-${names[$i]}.log"
done
wait_port "$nginx_door" 30 nginx-door "$logs/nginx-door.log"
wait_port "$envoy_door" 30 envoy-door "$logs/envoy-door.log"
wait_port "$base" 30 "door (built-in front door)" "$logs/door.log"

cat <<TXT

usher demo is running (logs in $logs, PIDs in $run):
  front doors:  http://127.0.0.1:$base/   usher's built-in, usher door (302 to a, b or c by weighted choice)
                http://127.0.0.1:$nginx_door/   nginx + usher module (interceptor role)
                http://127.0.0.1:$envoy_door/   Envoy + usher filter (interceptor role)
  web servers:  a http://127.0.0.1:$((base + 1))/  b http://127.0.0.1:$((base + 2))/  c http://127.0.0.1:$((base + 3))/
                (nginx + usher module in front of usher-demo-app with 2, 5 and 8 workers
                on 127.0.0.1:$((base + 1001)), $((base + 1002)), $((base + 1003)); capacities 2, 5, 8)
  console:      http://127.0.0.1:$admin/console/  (sign in with the admin token, file below)
  admin API:    http://127.0.0.1:$admin/api/v1/  (token in $demo/var/admin.token)
  agent:        usher agent (config $demo/agent.toml): rings, probes, host figures

Set up this shell for usher ctl (it reads USHER_URL and USHER_TOKEN):
  export PATH=$bin:\$PATH USHER_URL=http://127.0.0.1:$admin USHER_TOKEN=\$(cat $demo/var/admin.token)

Try:
  usher ctl servers                          # state, share of new users, load of a, b, c
  usher ctl events                           # what the agent and the control plane saw
  curl -si http://127.0.0.1:$base/ | grep -i location
  kill \$(cat $run/app-a.pid)   # a leaves rotation within 1 s (usher ctl servers / events), is restarted, comes back
  kill -9 \$(cat $run/control.pid)   # the control plane crashes: all three front doors keep serving; usher watch restarts it
  kill -9 \$(cat $run/agent.pid)     # the agent crashes and is restarted; usher ctl events --type component_exited
  usher ctl server load c 500 --for 60s      # c gets far fewer new users for a minute (pinned)
  usher ctl server redirect a front-door     # nginx a sends users without a session back to the front door:
  curl -si http://127.0.0.1:$((base + 1))/ | grep -iE '^(HTTP|location)'   # ...a 302 to http://127.0.0.1:$base/
  curl -si http://127.0.0.1:$((base + 1))/cart | head -1                  # ...but never from the cart: 200
  usher ctl server redirect a --off
  usher ctl app disable shop                 # every front door shows the sorry page (503)
  usher ctl app enable shop

Press Ctrl-C to stop everything.
TXT

# Stay in the foreground until Ctrl-C. The supervisors restart whatever
# exits; a watcher ends only when its component exits with status 0.
status=0
wait -n -p gone "${USHER_SUPERVISORS[@]}" || status=$?
for i in "${!USHER_SUPERVISORS[@]}"; do
  if [ "${USHER_SUPERVISORS[$i]}" = "${gone:-}" ]; then
    stopped="${USHER_SUPERVISED[$i]} could not be restarted; see $logs/${USHER_SUPERVISED[$i]}.log"
    unset 'USHER_SUPERVISORS[i]' 'USHER_SUPERVISED[i]'
  fi
done
echo "demo: ${stopped:-a supervisor ended (status $status)}; stopping the demo" >&2
exit 1
