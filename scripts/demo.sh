#!/usr/bin/env bash
# `make demo`: starts the whole stack on loopback and prints where to look.
#
#   browser → front door (usher's built-in one, an nginx one, an Envoy one)
#           → nginx + usher module (server role, one per demo server)
#           → usher-demo-app a, b, c (bounded worker pools of 2, 5 and 8)
#   usher control: managed objects in SQLite, admin API, pushes snapshots to
#   every nginx and Envoy; usher agent (when built): reads the nginx rings,
#   probes the servers, reports to the control plane.
#
# Ctrl-C stops everything this script started (by PID).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
demo="$USHER_ROOT/.demo"
bin="$USHER_ROOT/target/release"
module="$USHER_ROOT/target/nginx/ngx_http_usher_module.so"
wasm="$USHER_ROOT/target/wasm32-wasip1/wasm/usher_filter.wasm"
envoy="$USHER_ROOT/.venv/bin/envoy"

# Every demo starts from a fresh store, so the printed config is the truth.
rm -rf "$demo"
mkdir -p "$demo/logs"

# Ports: everything is placed relative to the built-in front door's port
# ($USHER_DEMO_BASE_PORT, 8080) and the admin API ($USHER_DEMO_ADMIN_PORT, 7900).
admin=${USHER_DEMO_ADMIN_PORT:-7900}
base=${USHER_DEMO_BASE_PORT:-8080}
nginx_door=$((base - 80))      # 8000: nginx + usher module as front door
envoy_door=$((base + 10))      # 8090: Envoy + usher filter as front door
envoy_cmd=$((base + 1110))     # 9190: the Envoy front door's command endpoint
envoy_admin=$((base + 1822))   # 9902: Envoy's admin page
cleanup() {
  [ "${#USHER_PIDS[@]}" -gt 0 ] || return 0
  echo; echo "stopping the demo"
  stop_all
  rm -f /dev/shm/usher-demo-"$base"-*.ring
}
trap cleanup EXIT
trap 'cleanup; exit 0' INT TERM
names=(a b c)
workers=(2 5 8)
capacity=(2 5 8)
for port in "$admin" "$base" "$nginx_door" "$envoy_door" "$envoy_cmd" "$envoy_admin" \
  $((base + 1)) $((base + 2)) $((base + 3)) $((base + 1001)) $((base + 1002)) $((base + 1003)); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "demo: port $port on 127.0.0.1 is taken; stop what uses it (or set USHER_DEMO_BASE_PORT) and run make demo again" >&2
    exit 1
  fi
done

token="$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s\n' "$token" >"$demo/wsi.token"
chmod 600 "$demo/wsi.token"

# --- demo apps and one nginx + usher module (server role) in front of each ---
wsis=""
servers=""
for i in 0 1 2; do
  name=${names[$i]}
  app_port=$((base + 1001 + i))
  web_port=$((base + 1 + i))
  start "app-$name" "$demo/logs/app-$name.log" "$bin/usher-demo-app" --listen "127.0.0.1:$app_port" \
    --name "$name" --workers "${workers[$i]}" --service-ms 20

  prefix="$demo/nginx-$name"
  mkdir -p "$prefix/modules" "$prefix/conf" "$prefix/logs" "$prefix/tmp"
  cp "$module" "$prefix/modules/"
  cp "$demo/wsi.token" "$prefix/conf/usher.token"
  sed -e "s|127.0.0.1:8080|127.0.0.1:$web_port|; s|127.0.0.1:8081|127.0.0.1:$app_port|" \
    -e "s|/dev/shm/usher-nginx-8080.ring|/dev/shm/usher-demo-$base-$name.ring|" \
    "$USHER_ROOT/nginx/web-server.conf" >"$prefix/conf/nginx.conf"
  start "nginx-$name" "$demo/logs/nginx-$name.log" nginx -p "$prefix" -c conf/nginx.conf -g 'daemon off;'

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
sed -e "s|127.0.0.1:8000|127.0.0.1:$nginx_door|" \
  -e "s|usher_server shop-1 .*|usher_server a http://127.0.0.1:$((base + 1)) 2;|" \
  -e "s|usher_server shop-2 .*|usher_server b http://127.0.0.1:$((base + 2)) 5;\n        usher_server c http://127.0.0.1:$((base + 3)) 8;|" \
  "$USHER_ROOT/nginx/front-door.conf" >"$prefix/conf/nginx.conf"
start nginx-door "$demo/logs/nginx-door.log" nginx -p "$prefix" -c conf/nginx.conf -g 'daemon off;'
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
sed -e "s|port_value: 8090|port_value: $envoy_door|; s|port_value: 9190|port_value: $envoy_cmd|; s|port_value: 9902|port_value: $envoy_admin|" \
  -e "s|127.0.0.1:8081|127.0.0.1:$((base + 1))|; s|127.0.0.1:8082|127.0.0.1:$((base + 2))|; s|127.0.0.1:8083|127.0.0.1:$((base + 3))|" \
  -e "s|port_value: 8081|port_value: $((base + 1))|; s|port_value: 8082|port_value: $((base + 2))|; s|port_value: 8083|port_value: $((base + 3))|" \
  -e "s|filename: target/wasm32-wasip1/wasm/usher_filter.wasm|filename: $wasm|" \
  -e "s|change-me-command|$token|" \
  "$USHER_ROOT/envoy/front-door.yaml" >"$demo/envoy/front-door.yaml"
start envoy-door "$demo/logs/envoy-door.log" "$envoy" -c "$demo/envoy/front-door.yaml" --concurrency 2 \
  --disable-hot-restart --log-level warn
wsis+="
[[wsis]]
name = \"envoy-door\"
url = \"http://127.0.0.1:$envoy_cmd/usher/command\"
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
start control "$demo/logs/control.log" "$bin/usher" control --config "$demo/usher.toml"

# --- one agent for this host: reads the three nginx rings, probes the
# servers, reports to the control plane (it dials in; nothing dials it) ---
wait_port "$admin" 30
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
$agent_servers
TOML
start agent "$demo/logs/agent.log" "$bin/usher" agent --config "$demo/agent.toml"
agent_line="  agent:        usher agent (config $demo/agent.toml): rings, probes, host figures"

for port in $((base + 1001)) $((base + 1002)) $((base + 1003)) $((base + 1)) $((base + 2)) $((base + 3)) \
  "$nginx_door" "$envoy_door" "$admin" "$base"; do
  wait_port "$port" 30
done

ctl="$bin/usher ctl --url http://127.0.0.1:$admin --token-file $demo/var/admin.token"
cat <<TXT

usher demo is running (logs in $demo/logs):
  front doors:  http://127.0.0.1:$base/   usher's built-in (302 to a, b or c by weighted choice)
                http://127.0.0.1:$nginx_door/   nginx + usher module (interceptor role)
                http://127.0.0.1:$envoy_door/   Envoy + usher filter (interceptor role)
  web servers:  a http://127.0.0.1:$((base + 1))  b http://127.0.0.1:$((base + 2))  c http://127.0.0.1:$((base + 3))
                (nginx + usher module in front of usher-demo-app with 2, 5 and 8 workers)
  admin API:    http://127.0.0.1:$admin/api/v1/  (token in $demo/var/admin.token)
$agent_line

Try:
  $ctl hosts; $ctl events                    # what the agent reported
  curl -si http://127.0.0.1:$base/ | grep -i location
  $ctl servers
  $ctl server load c 500                     # c gets far fewer new users, at every front door
  $ctl server redirect a front-door          # nginx a sends stateless users back to the front door
  curl -si http://127.0.0.1:$((base + 1))/cart | head -1   # ...but never from the cart
  $ctl app disable shop                      # every front door shows the sorry page

Press Ctrl-C to stop everything.
TXT
# Stay in the foreground until Ctrl-C; a component dying ends the demo too.
wait -n "${USHER_PIDS[@]}" || true
echo "demo: a component stopped; see $demo/logs" >&2
