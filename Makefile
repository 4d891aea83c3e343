# VVTV — the two commands: `make run` and `make test`. Both install missing system packages first.
CARGO ?= cargo
CONFIG ?=
BIN := target/debug

.PHONY: deps build run test lint fmt bench bench-playout bench-factory bench-loudness bench-vmaf bench-origin bench-startup bench-simulate bench-cluster check-player

deps:
	@bash scripts/install-deps.sh

build: deps
	$(CARGO) build --workspace

# Starts the daemon (embedded default demo channel unless CONFIG=path/to/vvtv.toml) on http://127.0.0.1:8080/
run: build
	$(BIN)/vvtv run $(if $(CONFIG),--config $(CONFIG))

# The whole test suite, in the same (dev) profile as `make run`: nothing is built twice.
test: deps
	@test -d scripts/player-check/node_modules || npm ci --prefix scripts/player-check
	$(CARGO) build --workspace --all-targets
	$(CARGO) test --workspace --no-fail-fast

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

# Benchmarks (outside `make test`); same dev profile, so nothing is built twice.
bench: bench-playout bench-factory bench-loudness bench-vmaf bench-origin bench-startup bench-simulate bench-cluster

# N = 1, 10, 50 channels on the default ladder for 60 s each, beside one live re-encode (BENCH_CHANNELS, BENCH_SECONDS).
bench-playout: build
	$(CARGO) bench --profile dev --bench playout

# Normalizes a generated 60 s 1080p30 source to the default ladder, stage by stage, beside the ffmpeg CLI doing the
# same encode (BENCH_SECONDS to change the length).
bench-factory: build
	$(CARGO) bench --profile dev --bench factory

# Decode, measure and normalize ten minutes of programme audio, in × real time (ebur128 meter, gain search, limiter).
bench-loudness: build
	$(CARGO) bench --profile dev --bench loudness

# The VMAF gate on a generated 60 s 1080p source at several subsample rates.
bench-vmaf: build
	$(CARGO) bench --profile dev --bench vmaf

# The origin beside Debian's nginx on the same playlist and segment, wrk -c32 against each (nginx and wrk come from
# scripts/install-deps.sh); prints req/s, p99 and the ratio (BENCH_SECONDS, BENCH_ROUNDS, BENCH_CONNECTIONS).
bench-origin: build
	$(CARGO) bench --profile dev --bench origin

# Time to the first playable stream of the demo station: first start, warm start (slate cached, empty hls/) and
# restart (hls/ kept); BENCH_LADDER=small, BENCH_RUNS.
bench-startup: build
	$(CARGO) bench --profile dev --bench startup

# `vvtv simulate` for a week of the example grid on 300, 3 000 and 20 000 generated assets, in CPU time.
bench-simulate:
	$(CARGO) bench --profile dev --bench simulate

# Two nodes sharing a station (PostgreSQL + SeaweedFS on loopback): per-node CPU and the time from a SIGKILL of the
# channel's holder to the other node's first segment (BENCH_ROUNDS, BENCH_SECONDS).
bench-cluster: build
	$(CARGO) bench --profile dev --bench cluster

# Plays a running station's stream like a viewer's browser does: hls.js in headless Chromium (scripts/player-check).
# `make check-player URL=http://host/hls/main/live.m3u8 SECONDS=60 [CHECK_ARGS=--expect-restart]`; exit 0 if it played.
URL ?= http://127.0.0.1:8080/hls/main/live.m3u8
SECONDS ?= 60
CHECK_ARGS ?=
check-player:
	@test -d scripts/player-check/node_modules || npm ci --prefix scripts/player-check
	node scripts/player-check/check.mjs '$(URL)' $(SECONDS) $(CHECK_ARGS)
