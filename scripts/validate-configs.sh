#!/usr/bin/env bash
# Checks every ready configuration with the real servers: `nginx -t` with the
# usher module loaded for nginx/, `envoy --mode validate` for envoy/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
status=0
for part in nginx envoy; do
  script="$here/validate-$part-configs.sh"
  if [ ! -f "$script" ]; then
    echo "validate-configs: $script is missing" >&2
    status=1
    continue
  fi
  bash "$script" || status=1
done
exit "$status"
