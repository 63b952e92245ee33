# ringcast — the two set-up commands on a fresh machine are `make run` and `make test`.
CARGO   ?= cargo
ADDR    ?= 127.0.0.1:9001
ARGS    ?=
FUZZ_SECONDS ?= 60
SOAK_SECONDS ?= 300
QUICK   ?= 0
# Optional cargo features built by run/release/test (tls: wss:// with --tls-cert/--tls-key;
# redis: cluster mode with --broker redis://HOST:PORT, tests/cluster*.rs need redis-server).
FEATURES ?= ringcast/tls,ringcast/redis

.PHONY: run cluster test fmt-check clippy test-features test-otel build release bench compare compare-peers peers echo-cpu autobahn idle-rss soak dashboard-shot fuzz clean

## Start the server (release build) on $(ADDR); Ctrl-C stops it.
run:
	$(CARGO) run --release --features $(FEATURES) --bin ringcast -- serve --addr $(ADDR) $(ARGS)

## A local cluster: redis-server and three nodes on loopback (URLs printed; ARGS are
## passed to every node, e.g. ARGS="--history 1000"; CLUSTER=1: a three-master Redis
## Cluster instead of one redis-server); Ctrl-C stops everything.
cluster: release
	scripts/cluster.sh $(ARGS)

## Everything CI checks: formatting, clippy -D warnings, single-backend builds, all tests
## (with the tls feature: the wss:// tests run too).
test: fmt-check clippy test-features
	$(CARGO) test --workspace --all-targets --features $(FEATURES)
	$(CARGO) test --workspace --doc --features $(FEATURES)

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets --features $(FEATURES) -- -D warnings

## Each backend must build on its own (the other feature off), and without tls or redis.
test-features:
	$(CARGO) check -p ringcast --no-default-features --features uring
	$(CARGO) check -p ringcast --no-default-features --features epoll,tls
	$(CARGO) check -p ringcast --no-default-features --features epoll,redis
	$(CARGO) clippy -p ringcast --all-targets -- -D warnings

## Optional feature `otel` (OTLP export of lifecycle spans): check, clippy, and its tests
## (unit tests plus tests/otel.rs against an in-test collector). Not part of `make test`.
test-otel:
	$(CARGO) check -p ringcast --features otel
	$(CARGO) clippy -p ringcast --features otel --all-targets -- -D warnings
	$(CARGO) test -p ringcast --features otel --lib --test otel

build:
	$(CARGO) build --workspace --features $(FEATURES)

release:
	$(CARGO) build --release --workspace --features $(FEATURES)

## Criterion micro-benchmarks: protocol hot paths (benches/proto.rs), hub fan-out,
## cross-shard hand-off and the no-op metrics cost (benches/hub.rs).
bench:
	$(CARGO) bench -p ringcast

## io_uring vs epoll fan-out matrices plus a ws:// vs wss:// section, interleaved, < 15 min
## (QUICK=1: ~1.5 min check);
## report, SVGs and raw JSON in bench-results/compare-<date>*.
compare: release
	QUICK=$(QUICK) scripts/compare-backends.sh

## ringcast (both backends) vs peer servers: Bun server.publish, Node ws, tokio-tungstenite
## (peers/), 1 and 16 in flight × 64 B and 1 KiB × 1k and 10k subscribers, every server
## pinned to core 0, 3 interleaved repetitions, median (~22 min; QUICK=1: ~2 min check, 1k × 64 B, 2 repetitions).
## Needs `make peers` first for Bun and Node ws (node + npm on PATH); the Rust peer is
## built by `release`. A peer that is not installed is skipped with a message.
## Report and SVG in bench-results/compare-peers-<date>*.
compare-peers: release
	QUICK=$(QUICK) scripts/compare-peers.sh

## Installs the npm peers of compare-peers at their pinned versions (package-lock.json):
## Bun from the npm package `bun` (ships the linux-x64 binary) and Node's `ws`.
peers:
	npm ci --prefix peers/bun --no-audit --no-fund
	npm ci --prefix peers/node-ws --no-audit --no-fund

## Server CPU, syscalls and SQEs per echoed message, 1k active clients, io_uring vs epoll
## (~1 min); table in bench-results/echo-cpu-<date>.md.
echo-cpu: release
	scripts/echo-cpu.sh

## Autobahn|Testsuite (strict), cases 1-10 and the permessage-deflate cases 12 and 13,
## against /echo on both backends (~10 min each); reports in bench-results/.
autobahn: release
	scripts/autobahn.sh

## RSS per idle connection at N connections on each backend (uses ringcast-load; TLS=1:
## wss://, TRANSPORT=sse: Server-Sent Events streams on /sse/idle).
idle-rss: release
	scripts/idle-rss.sh $(ARGS)

## Slow-consumer soak: 5k subscribers, 10 % slow (stall / trickle), both backends × each
## --slow-policy, $(SOAK_SECONDS) s each (default 300: ~31 min); fails if a fast
## subscriber lost a frame; table in bench-results/soak-<date>.md.
soak: release
	SOAK_SECONDS=$(SOAK_SECONDS) scripts/soak.sh

## cargo fuzz (libFuzzer) targets handshake and frames, $(FUZZ_SECONDS) s each (stable
## toolchain via RUSTC_BOOTSTRAP=1); crashing inputs land in fuzz/artifacts/.
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) fuzz/run.sh

## Dashboard screenshot under load: bench-results/dashboard.png (needs chromium + npm ci --prefix tests/dashboard).
dashboard-shot: release
	scripts/dashboard-shot.sh

clean:
	$(CARGO) clean
