# Shared helpers for usher's scripts (sourced, not run).
# Every process a script starts is recorded and stopped by its PID.

USHER_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
USHER_PIDS=()        # started with `start`
USHER_SUPERVISORS=() # supervisor loops started with `supervise`
USHER_SUPERVISED=()  # their component names, in the same order

# start NAME LOG CMD...: runs CMD in the background, logging to LOG.
start() {
  local name="$1" log="$2"; shift 2
  "$@" >"$log" 2>&1 &
  USHER_PIDS+=("$!")
  echo "started $name (pid $!)" >&2
}

# supervise [--give-up N] NAME LOG PIDFILE CMD...: runs CMD in the
# background and starts it again whenever it exits, after 1 s, 2 s, 4 s, then
# 5 s (back to 1 s once it has run for 10 s). CMD's PID is kept in PIDFILE
# while it runs; its output is appended to LOG. With --give-up N the loop
# ends (status 3) when CMD has exited N times in a row within 10 s of its
# start. CMD runs in its own session, so a Ctrl-C at the terminal reaches
# only the script, which stops the loops (and so CMD) with `stop_all`.
supervise() {
  local give_up=0
  if [ "$1" = --give-up ]; then give_up="$2"; shift 2; fi
  local name="$1" log="$2" pidfile="$3"; shift 3
  _usher_supervise "$name" "$log" "$pidfile" "$give_up" "$@" &
  USHER_SUPERVISORS+=("$!")
  USHER_SUPERVISED+=("$name")
}

# watched NAME LOG RUNDIR EVENTS CMD...: runs CMD under `usher watch` (the
# usher binary in target/release) in its own session: restarted when it
# fails, after 1 s, 2 s, 4 s, then 5 s (back to 1 s once it ran 10 s); its
# events appended to EVENTS as JSON lines; CMD's PID kept in RUNDIR/NAME.pid
# while it runs and the watcher's in RUNDIR/watch-NAME.pid. `stop_all` stops
# the watcher, which stops CMD.
watched() {
  local name="$1" log="$2" rundir="$3" events="$4"; shift 4
  echo "--- $(basename "$0" .sh): starting $name under usher watch ($(date '+%F %T'))" >>"$log"
  setsid "$USHER_ROOT/target/release/usher" watch --name "$name" --events-file "$events" \
    --pid-file "$rundir/$name.pid" --initial-delay 1 --max-delay 5 --max-attempts 3 \
    --healthy-after 10 --stop-timeout 5 -- "$@" >>"$log" 2>&1 </dev/null &
  printf '%s\n' "$!" >"$rundir/watch-$name.pid"
  USHER_SUPERVISORS+=("$!")
  USHER_SUPERVISED+=("$name")
}

# The loop behind `supervise` (runs in its own subshell). TERM stops it: it
# passes TERM to the child, waits up to 5 s (then KILL), and exits 0.
_usher_supervise() {
  set +e
  local name="$1" log="$2" pidfile="$3" give_up="$4"; shift 4
  local me child="" nap="" stopping=0 delay=1000 quick=0 status began shown i
  me="$(basename "$0" .sh)"
  trap 'stopping=1
        [ -z "$child" ] || kill -TERM "$child" 2>/dev/null
        [ -z "$nap" ] || kill -TERM "$nap" 2>/dev/null' TERM
  trap '' INT
  while [ "$stopping" = 0 ]; do
    began=$SECONDS
    echo "--- $me: starting $name ($(date '+%F %T'))" >>"$log"
    setsid "$@" >>"$log" 2>&1 </dev/null &
    child=$!
    [ "$stopping" = 0 ] || kill -TERM "$child" 2>/dev/null
    printf '%s\n' "$child" >"$pidfile.new" && mv -f "$pidfile.new" "$pidfile"
    wait "$child"
    status=$?
    [ "$stopping" = 0 ] || break
    child=""
    rm -f "$pidfile"
    if ((SECONDS - began >= 10)); then
      delay=1000
      quick=0
    else
      quick=$((quick + 1))
    fi
    if ((status > 128)); then
      status="$status, $(kill -l "$status" 2>/dev/null || echo signal)"
    fi
    if ((give_up > 0 && quick >= give_up)); then
      echo "$me: $name exited (status $status), $quick times in a row within 10s of its start; not restarting it (see $log)" >&2
      exit 3
    fi
    printf -v shown '%d.%d' $((delay / 1000)) $((delay % 1000 / 100))
    echo "$me: $name exited (status $status); restarting in ${shown%.0}s" >&2
    sleep "$shown" &
    nap=$!
    wait "$nap"
    nap=""
    delay=$((delay * 2 > 5000 ? 5000 : delay * 2))
  done
  if [ -n "$child" ]; then
    for ((i = 0; i < 100; i++)); do
      kill -0 "$child" 2>/dev/null || break
      sleep 0.05
    done
    kill -KILL "$child" 2>/dev/null
    wait "$child" 2>/dev/null
  fi
  rm -f "$pidfile"
  exit 0
}

# stop_all: stops every process started with `start` and every supervisor
# loop (with its child), by PID, and waits for them.
stop_all() {
  local pid
  for pid in "${USHER_PIDS[@]}" "${USHER_SUPERVISORS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${USHER_PIDS[@]}" "${USHER_SUPERVISORS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  USHER_PIDS=()
  USHER_SUPERVISORS=()
  USHER_SUPERVISED=()
}

# wait_port PORT [SECONDS [NAME LOG]]: waits until 127.0.0.1:PORT accepts
# connections; on time-out says which component (NAME) and where its log is.
wait_port() {
  local port="$1" limit="${2:-20}" name="${3:-}" log="${4:-}" i
  for ((i = 0; i < limit * 20; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  if [ -n "$name" ]; then
    echo "$(basename "$0" .sh): $name did not start: nothing listens on 127.0.0.1:$port after ${limit}s; see $log" >&2
    [ ! -s "$log" ] || tail -n 3 "$log" | sed 's/^/  | /' >&2
  else
    echo "nothing listens on 127.0.0.1:$port after ${limit}s" >&2
  fi
  return 1
}

# render TEMPLATE OUT OLD NEW [OLD NEW]...: writes TEMPLATE to OUT with every
# literal OLD replaced by its NEW. Each OLD is matched in the template only
# (never inside another pair's NEW), and must occur in it: a changed template
# fails here, by name, instead of starting a server on a wrong port.
render() {
  local tpl="$1" out="$2" text n=0 i
  local -a news=()
  shift 2
  text="$(<"$tpl")"
  while [ "$#" -ge 2 ]; do
    if [[ "$text" != *"$1"* ]]; then
      echo "$(basename "$0" .sh): $tpl no longer contains \"$1\"; update scripts/$(basename "$0")" >&2
      return 1
    fi
    text="${text//"$1"/"@@usher-render-$n@@"}"
    news+=("$2")
    n=$((n + 1))
    shift 2
  done
  for ((i = 0; i < n; i++)); do
    text="${text//"@@usher-render-$i@@"/"${news[$i]}"}"
  done
  printf '%s\n' "$text" >"$out"
}

# wrk_rps URL SECONDS CONNECTIONS: requests/s that wrk measured, on core 1.
wrk_rps() {
  taskset -c 1 wrk -t1 -c"$3" -d"$2"s "$1" | awk '/Requests\/sec/ {print $2}'
}
