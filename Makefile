# VVTV — the two commands: `make run` and `make test`. Both install missing system packages first.
CARGO ?= cargo
CONFIG ?=
BIN := target/debug

.PHONY: deps build run test lint fmt

deps:
	@bash scripts/install-deps.sh

build: deps
	$(CARGO) build --workspace

# Starts the daemon (embedded default demo channel unless CONFIG=path/to/vvtv.toml) on http://127.0.0.1:8080/
run: build
	$(BIN)/vvtv run $(if $(CONFIG),--config $(CONFIG))

# The whole test suite, in the same (dev) profile as `make run`: nothing is built twice.
test: deps
	$(CARGO) build --workspace --all-targets
	$(CARGO) test --workspace --no-fail-fast

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all
