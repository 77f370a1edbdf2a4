#!/usr/bin/env bash
# The agent's figures: records/s through a record ring into the agent (goal
# >= 5 M/s), request records/s into the logging database (goal >= 100 k/s),
# and the resident memory of a running agent (goal <= 20 MB).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bin="$USHER_ROOT/target/release"
seconds="${BENCH_SECONDS:-5}"

field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }

phased="$("$bin/usher-agent-bench" --phased --seconds "$seconds")"
live="$("$bin/usher-agent-bench" --seconds "$seconds")"
logdb="$("$bin/usher-logdb-bench")"
echo "ring -> agent, drain only (usher-agent-bench --phased): $(echo "$phased" | field records_per_sec) records/s"
echo "ring -> agent, producer running alongside (usher-agent-bench): $(echo "$live" | field records_per_sec) records/s"
echo "records -> logging database (usher-logdb-bench): $(echo "$logdb" | field rows_per_sec) rows/s"

# A real agent's resident memory after a few seconds of work.
if [ -f "$USHER_ROOT/agent.example.toml" ] && "$bin/usher" agent --help >/dev/null 2>&1; then
  work="$(mktemp -d)"
  trap 'stop_all; rm -rf "$work"' EXIT
  sed "s|^data_dir = .*|data_dir = \"$work/agent\"|" "$USHER_ROOT/agent.example.toml" >"$work/agent.toml"
  start agent "$work/agent.log" "$bin/usher" agent --config "$work/agent.toml"
  sleep "$seconds"
  rss_kib="$(awk '/VmRSS/ {print $2}' "/proc/${USHER_PIDS[0]}/status" 2>/dev/null || echo 0)"
  echo "usher agent resident memory after ${seconds}s: $((rss_kib / 1024)) MB"
else
  echo "usher-agent-bench resident memory: $(( $(echo "$phased" | field rss_kib) / 1024 )) MB"
fi
