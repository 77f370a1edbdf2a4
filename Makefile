# usher: the two commands a new user runs are `make demo` and `make test`.
# Everything else here is what they are built from.
SHELL := /bin/bash
CARGO ?= cargo
# The nginx module builds against Debian's nginx-dev, configured once into target/.
export NGINX_BUILD_DIR := $(CURDIR)/target/nginx-build/objs

.PHONY: all deps build build-rust build-nginx build-wasm test test-rust test-configs test-api fuzz demo bench bench-lb fmt lint clean

all: build

deps:
	bash scripts/install-deps.sh

build: deps
	$(MAKE) build-rust build-nginx build-wasm

build-rust:
	$(CARGO) build --release

build-nginx:
	@if [ -f scripts/build-nginx-module.sh ]; then bash scripts/build-nginx-module.sh; fi

build-wasm:
	@if [ -f scripts/build-wasm.sh ]; then bash scripts/build-wasm.sh; fi

test: build
	$(MAKE) lint test-rust test-configs test-api

# One release build serves the binaries and the tests (no second debug build).
test-rust:
	$(CARGO) build -p usher-core --target wasm32-wasip1
	$(CARGO) test --release --no-fail-fast
	$(CARGO) test --release -p usher-wasm-filter

test-configs:
	@if [ -f scripts/validate-configs.sh ]; then bash scripts/validate-configs.sh; fi

# The admin API against docs/openapi.yaml: schemathesis, bounded and seeded
# (SCHEMATHESIS_EXAMPLES, SCHEMATHESIS_SEED), on a real `usher control`.
test-api:
	bash scripts/schemathesis.sh

# Each fuzz target (or those in FUZZ_TARGETS) for FUZZ_SECS seconds (default
# 20); the run prints its seed, and FUZZ_SEED=<seed> repeats it.
fuzz:
	$(CARGO) test --release -p usher-fuzz
	$(CARGO) run --release -p usher-fuzz -- $(FUZZ_TARGETS)

demo: build
	bash scripts/demo.sh

bench: build
	bash scripts/bench.sh

# Steering (issue 12): usher's three proxy-mode front doors against nginx
# least_conn and Envoy LEAST_REQUEST on the same backends, in one run
# (BENCH_LB_ROUNDS, BENCH_LB_SCALE, BENCH_LB_CAP_S; docs/performance.md).
bench-lb: build
	bash scripts/bench-lb.sh

fmt:
	$(CARGO) fmt --all

# Format and clippy (deny warnings) over every crate, the nginx module and
# the filter included (each needs its own build setting).
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --all-targets -- -D warnings
	$(CARGO) clippy --release -p usher-fuzz --all-targets -- -D warnings
	$(CARGO) clippy --release -p usher-nginx-module -- -D warnings
	$(CARGO) clippy --release -p usher-wasm-filter --target wasm32-wasip1 -- -D warnings

clean:
	$(CARGO) clean
