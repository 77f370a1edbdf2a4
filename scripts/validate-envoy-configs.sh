#!/usr/bin/env bash
# Runs `envoy --mode validate` on every config in envoy/, with the built
# filter's absolute path substituted, so the usher plugin really loads and
# checks its configuration (a bad one makes on_configure refuse it).
# Exit status is non-zero if any config fails.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
envoy="${ENVOY_BIN:-$root/.venv/bin/envoy}"
wasm="${USHER_WASM:-$root/target/wasm32-wasip1/wasm/usher_filter.wasm}"
rel="target/wasm32-wasip1/wasm/usher_filter.wasm"
[ -x "$envoy" ] || { echo "validate-envoy: $envoy is missing (run scripts/install-deps.sh)" >&2; exit 1; }
[ -f "$wasm" ] || { echo "validate-envoy: $wasm is missing (run scripts/build-wasm.sh)" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
status=0
shopt -s nullglob
configs=("$root"/envoy/*.yaml)
[ "${#configs[@]}" -gt 0 ] || { echo "validate-envoy: no configs in $root/envoy" >&2; exit 1; }
for cfg in "${configs[@]}"; do
  name="$(basename "$cfg")"
  sed "s|$rel|$wasm|g" "$cfg" >"$tmp/$name"
  if out="$("$envoy" --mode validate -c "$tmp/$name" --base-id "$((40000 + $$ % 20000))" 2>&1)"; then
    echo "validate-envoy: envoy/$name OK"
  else
    echo "validate-envoy: envoy/$name FAILED" >&2
    echo "$out" | grep -E "critical|error" >&2 || echo "$out" | tail -5 >&2
    status=1
  fi
done
exit "$status"
