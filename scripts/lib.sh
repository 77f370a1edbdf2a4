# Shared helpers for usher's scripts (sourced, not run).
# Every process a script starts is recorded and stopped by its PID.

USHER_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
USHER_PIDS=()

# start NAME LOG CMD...: runs CMD in the background, logging to LOG.
start() {
  local name="$1" log="$2"; shift 2
  "$@" >"$log" 2>&1 &
  USHER_PIDS+=("$!")
  echo "started $name (pid $!)" >&2
}

# stop_all: stops every process started with `start`, by PID.
stop_all() {
  local pid
  for pid in "${USHER_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${USHER_PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  USHER_PIDS=()
}

# wait_port PORT [SECONDS]: waits until 127.0.0.1:PORT accepts connections.
wait_port() {
  local port="$1" limit="${2:-20}" i
  for ((i = 0; i < limit * 20; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "nothing listens on 127.0.0.1:$port after ${limit}s" >&2
  return 1
}

# wrk_rps URL SECONDS CONNECTIONS: requests/s that wrk measured, on core 1.
wrk_rps() {
  taskset -c 1 wrk -t1 -c"$3" -d"$2"s "$1" | awk '/Requests\/sec/ {print $2}'
}
