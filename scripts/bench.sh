#!/usr/bin/env bash
# `make bench`: every benchmark, each against its named peer in the same run.
# Figures go to stdout; docs/performance.md records them with this command.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
status=0
for part in front-door nginx envoy agent; do
  script="$here/bench-$part.sh"
  [ -f "$script" ] || continue
  echo "== bench: $part =="
  bash "$script" || { echo "bench-$part failed" >&2; status=1; }
done
exit "$status"
