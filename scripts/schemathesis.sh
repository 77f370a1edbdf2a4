#!/usr/bin/env bash
# Checks the admin API against docs/openapi.yaml with schemathesis: starts
# the real `usher control` (target/release) on loopback in a temp folder with
# one app, one server and one WSI, runs a bounded, seeded schemathesis run
# with the admin token, stops the control plane by its PID, and exits
# non-zero on any failed check (a 5xx, an undocumented status, a body or
# content type the spec does not describe, a 405 without `Allow`, ...).
#
# Bounds: SCHEMATHESIS_EXAMPLES cases per operation and phase (default 30),
# SCHEMATHESIS_SEED (default 20261202) so a failure can be replayed.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"

st="$root/.venv/bin/schemathesis"
usher="$root/target/release/usher"
examples="${SCHEMATHESIS_EXAMPLES:-30}"
seed="${SCHEMATHESIS_SEED:-20261202}"
for need in "$st" "$usher"; do
  if [ ! -x "$need" ]; then
    echo "schemathesis: $need is missing (run make build)" >&2
    exit 1
  fi
done

free_port() {
  "$root/.venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

work="$(mktemp -d)"
trap 'stop_all; rm -rf "$work"' EXIT
admin="$(free_port)"
front="$(free_port)"
cat >"$work/usher.toml" <<EOF
[control]
listen = "127.0.0.1:$admin"
data_dir = "var"
push_interval_secs = 2

[[apps]]
name = "shop"
listen = "127.0.0.1:$front"

[[servers]]
name = "a"
app = "shop"
url = "http://127.0.0.1:1"
capacity = 5

[[wsis]]
name = "w"
url = "http://127.0.0.1:1/usher/command"
token = "schemathesis-wsi-token"
role = "interceptor"
app = "shop"
EOF
echo '<p>sorry</p>' >"$work/sorry.html"

log="$work/control.log"
start "usher control" "$log" env USHER_LOG=warn "$usher" control --config "$work/usher.toml"
wait_port "$admin" 20 "usher control" "$log"
token="$(cat "$work/var/admin.token")"

echo "schemathesis: $examples examples per operation, seed $seed, against 127.0.0.1:$admin" >&2
status=0
(cd "$work" && "$st" run "$root/docs/openapi.yaml" \
  --url "http://127.0.0.1:$admin" \
  --header "Authorization: Bearer $token" \
  --checks all \
  --exclude-checks use_after_free,ensure_resource_availability,positive_data_acceptance \
  --phases examples,coverage,fuzzing \
  --max-examples "$examples" \
  --seed "$seed" \
  --workers 1 \
  --request-timeout 10 \
  --suppress-health-check all \
  --generation-database none \
  --no-color) || status=$?

if [ "$status" -ne 0 ]; then
  echo "schemathesis: FAILED (status $status); control plane log:" >&2
  tail -n 20 "$log" | sed 's/^/  | /' >&2
fi
exit "$status"
