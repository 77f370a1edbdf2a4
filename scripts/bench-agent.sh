#!/usr/bin/env bash
# The agent's figures: records/s through a record ring into the agent (goal
# >= 5 M/s), request records/s into the logging database (goal >= 100 k/s),
# end to end into the logging database, and the resident memory of a running
# agent (goal <= 20 MB).
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

# End to end: records in a ring file → a real `usher agent` → the control
# channel → the manager → the logging database (SQLite). The ring is filled
# first; the clock runs from the agent's start to the last row committed.
records="${BENCH_E2E_RECORDS:-250000}"
e2e="$(mktemp -d)"
trap 'stop_all; rm -rf "$e2e"' EXIT
admin_port=$((20000 + RANDOM % 10000))
cat >"$e2e/usher.toml" <<TOML
[control]
listen = "127.0.0.1:$admin_port"
data_dir = "var"
TOML
start control "$e2e/control.log" "$bin/usher" control --config "$e2e/usher.toml"
wait_port "$admin_port"
"$bin/usher-ring-fill" "$e2e/ring" "$records" >/dev/null
cat >"$e2e/agent.toml" <<TOML
agent_id = "bench"
data_dir = "$e2e/agent"
control_url = "ws://127.0.0.1:$admin_port/api/v1/agent/channel"
token_file = "$e2e/var/agent.token"

[records]
batch_ms = 50

[[servers]]
name = "bench"
url = "http://127.0.0.1:9"
ring = "$e2e/ring"
probe = false
TOML
t0=$(date +%s.%N)
start agent "$e2e/agent.log" "$bin/usher" agent --config "$e2e/agent.toml"
count=0
for ((i = 0; i < 1200; i++)); do
  count=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from requests").fetchone()[0])' "$e2e/var/usher-log.db" 2>/dev/null || echo 0)
  [ "$count" -ge "$records" ] && break
  sleep 0.05
done
t1=$(date +%s.%N)
awk -v n="$count" -v a="$t0" -v b="$t1" 'BEGIN {
  printf "records end to end, ring -> agent -> control channel -> logging database: %d in %.2f s = %.0f records/s\n", n, b - a, n / (b - a) }'
# The agent's memory once the burst is in the database: resident now and at
# its peak (VmHWM), and what the resident part is made of (its own heap and
# stacks, pages of mapped files such as the ring, shared memory).
agent_pid="${USHER_PIDS[1]}"
status_kib() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$agent_pid/status" 2>/dev/null || echo 0; }
rss_kib="$(status_kib VmRSS)"
hwm_kib="$(status_kib VmHWM)"
awk -v n="$records" -v r="$rss_kib" -v h="$hwm_kib" -v a="$(status_kib RssAnon)" -v f="$(status_kib RssFile)" -v s="$(status_kib RssShmem)" 'BEGIN {
  printf "usher agent resident memory after the %d-record burst: %.1f MB (peak %.1f MB; anonymous %.1f MB, file pages %.1f MB, shared memory %.1f MB)\n", n, r / 1024, h / 1024, a / 1024, f / 1024, s / 1024 }'
