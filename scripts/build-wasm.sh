#!/usr/bin/env bash
# Builds the Envoy filter: target/wasm32-wasip1/wasm/usher_filter.wasm
# (cargo profile `wasm`: lto, panic=abort), after running its unit tests on
# the host. Idempotent; `make build-wasm` calls it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
  rustup target add wasm32-wasip1
fi
cargo build --profile wasm --target wasm32-wasip1 -p usher-wasm-filter
out="$root/target/wasm32-wasip1/wasm/usher_filter.wasm"
[ -f "$out" ] || { echo "build-wasm: $out was not produced" >&2; exit 1; }
# Unexport the proxy-wasm callbacks the filter does not implement: Envoy
# then skips those calls into the VM (per response body chunk, per on_done).
python3 "$root/wasm-filter/tools/prune_exports.py" "$out"
echo "build-wasm: $out ($(stat -c %s "$out") bytes)"
