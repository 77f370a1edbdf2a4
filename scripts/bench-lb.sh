#!/usr/bin/env bash
# `make bench-lb`: usher's steering benchmark (issue 12). Both scenarios run
# through usher's three proxy-mode front doors (built-in `usher door`, nginx
# interceptor, Envoy interceptor) on a real stack (demo apps behind
# server-role nginx, agent, control plane) and, on the same backends in the
# same run, through nginx `least_conn` and Envoy `LEAST_REQUEST`. Prints
# per scenario p50 / p99 / p99.9, the share sent to the slow backend, CPU
# per request, and each door's ratios to nginx `least_conn`.
#
# Settings (environment): BENCH_LB_ROUNDS (3), BENCH_LB_SCALE (1: 20,000 and
# 30,000 requests per door), BENCH_LB_CAP_S (120 s per door), BENCH_LB_WARMUP
# (500 requests), BENCH_LB_SCENARIOS (1,2). Every process binds 127.0.0.1
# and is stopped by its PID. Not part of `make test`.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$USHER_ROOT"
${CARGO:-cargo} build --release -p usher-integration --bin usher-bench-lb
echo "bench-lb: $(date -u '+%F %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')," \
  "load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
exec "$USHER_ROOT/target/release/usher-bench-lb"
