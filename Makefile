# ww: the two commands a new user runs are `make run` and `make test`.
# Both install what is missing first (idempotently): the wasm32-wasip2 Rust
# target and the Cap'n Proto schema compiler.

SHELL := /bin/bash
CARGO ?= cargo
GUEST_TARGET := wasm32-wasip2
GUEST_OUT := guests/target/$(GUEST_TARGET)/release
# One stamp and one lock for the guest workspace build: a repeated `make`
# with nothing changed does no guest build at all, and concurrent `make`
# runs never build the guests at the same time.
BUILD_DIR := .build
GUEST_STAMP := $(BUILD_DIR)/guests.stamp
GUEST_LOCK := $(BUILD_DIR)/guests.lock
GUEST_SOURCES := $(shell find guests -path guests/target -prune -o -path guests/ic-cdk -prune -o -path guests/ic-cdk17 -prune -o -path guests/motoko -prune -o \( -name '*.rs' -o -name '*.did' -o -name 'Cargo.toml' -o -name 'Cargo.lock' \) -print) guests/embed_candid.py $(wildcard capnp/*.capnp) $(wildcard wit/*.wit)
# The canisters written against the unmodified ic-cdk from crates.io
# (guests/ic-cdk, a workspace of its own), built for wasm32-unknown-unknown
# into the same target dir (host proc-macro builds are shared) under the same
# lock, with a stamp of their own.
IC_GUEST_TARGET := wasm32-unknown-unknown
IC_GUEST_OUT := guests/target/$(IC_GUEST_TARGET)/release
IC_GUEST_STAMP := $(BUILD_DIR)/ic-guests.stamp
IC_GUEST_SOURCES := $(shell find guests/ic-cdk guests/ic-cdk17 -name '*.rs' -o -name Cargo.toml -o -name Cargo.lock)
# The Motoko canisters (guests/motoko/src/*.mo), compiled by guests/motoko/build.js
# with the `motoko` npm package (pinned in guests/motoko/package-lock.json) to
# guests/target/motoko/<name>.wasm (+ .did, .most), with a stamp of their own.
MOTOKO_DIR := guests/motoko
MOTOKO_STAMP := $(BUILD_DIR)/motoko.stamp
MOTOKO_LOCK := $(BUILD_DIR)/motoko.lock
MOTOKO_SOURCES := $(wildcard $(MOTOKO_DIR)/src/*.mo) $(MOTOKO_DIR)/build.js $(MOTOKO_DIR)/package.json $(MOTOKO_DIR)/package-lock.json
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# The release set of examples/images/ic-deploy (root and every role payload).
RELEASE_ROLES := root wasm_store app minimal scale scale_hub shard shard_hub test user_hub user_shard

.PHONY: all deps guests ic-guests motoko images build run test bench clean

all: images build

## deps: install the wasm32-wasip2 and wasm32-unknown-unknown targets and
## the capnp compiler if missing.
deps:
	@if ! rustup target list --installed 2>/dev/null | grep -qx '$(GUEST_TARGET)'; then \
		echo "make: installing the $(GUEST_TARGET) Rust target"; \
		rustup target add $(GUEST_TARGET); \
	fi
	@if ! rustup target list --installed 2>/dev/null | grep -qx '$(IC_GUEST_TARGET)'; then \
		echo "make: installing the $(IC_GUEST_TARGET) Rust target"; \
		rustup target add $(IC_GUEST_TARGET); \
	fi
	@if ! command -v python3 >/dev/null 2>&1; then \
		echo "make: installing Debian's python3 (embeds each canister's .did in its component)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3; \
	fi
	@if ! command -v capnp >/dev/null 2>&1; then \
		echo "make: installing Debian's capnproto (the Cap'n Proto schema compiler)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq capnproto; \
	fi
	@if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then \
		echo "make: installing Debian's nodejs and npm (compile the Motoko canisters, guests/motoko)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq nodejs npm; \
	fi

## guests: build every guest component, one cargo invocation per profile
## (release, then did), both under the one lock. The did profile is release
## with debug assertions (guests/target/wasm32-wasip2/did/): its canisters
## also export `__get_candid_interface_tmp_hack`, which tests/candid.rs checks
## against the checked-in `.did` files.
guests: $(GUEST_STAMP)

$(GUEST_STAMP): $(GUEST_SOURCES) | deps
	@mkdir -p $(BUILD_DIR)
	@flock $(GUEST_LOCK) $(SHELL) -c '\
		$(CARGO) build --manifest-path guests/Cargo.toml --target $(GUEST_TARGET) --release && \
		$(CARGO) build --manifest-path guests/Cargo.toml --target $(GUEST_TARGET) --profile did && \
		python3 guests/embed_candid.py --all guests/canisters guests/target/$(GUEST_TARGET)'
	@touch $@

## ic-guests: build the ic-cdk canisters (guests/ic-cdk, and guests/ic-cdk17 for ic-cdk 0.17) for
## wasm32-unknown-unknown: raw modules in
## guests/target/wasm32-unknown-unknown/release/<canister>.wasm.
ic-guests: $(IC_GUEST_STAMP)

$(IC_GUEST_STAMP): $(IC_GUEST_SOURCES) | deps
	@mkdir -p $(BUILD_DIR)
	@flock $(GUEST_LOCK) $(CARGO) build --manifest-path guests/ic-cdk/Cargo.toml \
		--target $(IC_GUEST_TARGET) --release --target-dir guests/target
	@flock $(GUEST_LOCK) $(CARGO) build --manifest-path guests/ic-cdk17/Cargo.toml \
		--target $(IC_GUEST_TARGET) --release --target-dir guests/target
	@touch $@

## motoko: compile the Motoko canisters (guests/motoko/src/*.mo) to
## guests/target/motoko/<name>.wasm, each with its Candid interface in the
## custom section `icp:public candid:service`, and <name>.did beside it. The
## `motoko` npm package is installed (npm ci) first when node_modules is
## missing or older than package-lock.json.
motoko: $(MOTOKO_STAMP)

$(MOTOKO_STAMP): $(MOTOKO_SOURCES) | deps
	@mkdir -p $(BUILD_DIR)
	@flock $(MOTOKO_LOCK) $(SHELL) -c '\
		if [ ! -d $(MOTOKO_DIR)/node_modules ] || [ $(MOTOKO_DIR)/package-lock.json -nt $(MOTOKO_DIR)/node_modules ]; then \
			npm ci --prefix $(MOTOKO_DIR) --no-audit --no-fund && touch $(MOTOKO_DIR)/node_modules || exit 1; \
		fi && \
		node $(MOTOKO_DIR)/build.js'
	@touch $@

## images: assemble examples/images/*/bin/main.wasm from the guests.
images: guests
	@mkdir -p examples/images/echo/bin examples/images/echo/lib
	@cp -u $(GUEST_OUT)/pid0.wasm examples/images/echo/bin/main.wasm
	@cp -u $(GUEST_OUT)/child-echo.wasm examples/images/echo/lib/child-echo.wasm
	@mkdir -p examples/images/counter/bin examples/images/counter/lib
	@cp -u $(GUEST_OUT)/testkit.wasm examples/images/counter/bin/main.wasm
	@cp -u $(GUEST_OUT)/counter.wasm examples/images/counter/lib/counter.wasm
	@mkdir -p examples/images/ic-deploy/bin examples/images/ic-deploy/lib/release
	@cp -u $(GUEST_OUT)/deployer.wasm examples/images/ic-deploy/bin/main.wasm
	@# Each payload with its published checksum (`sha256sum` format).
	@cd examples/images/ic-deploy/lib/release && for role in $(RELEASE_ROLES); do \
		if [ ! -f $$role.wasm ] || [ ../../../../../$(GUEST_OUT)/$$role.wasm -nt $$role.wasm ] || [ ! -f $$role.wasm.sha256 ]; then \
			cp ../../../../../$(GUEST_OUT)/$$role.wasm $$role.wasm && sha256sum $$role.wasm > $$role.wasm.sha256; fi; done
	@# The redeploy overlay: app 0.1.1 is app gzip-compressed (a new module hash).
	@mkdir -p examples/images/ic-deploy-app-v2/lib/release
	@out=examples/images/ic-deploy-app-v2/lib/release/app.wasm.gz; \
		if [ ! -f $$out ] || [ $(GUEST_OUT)/app.wasm -nt $$out ] || [ ! -f $$out.sha256 ]; then \
			gzip -n -9 -c $(GUEST_OUT)/app.wasm > $$out && (cd $$(dirname $$out) && sha256sum app.wasm.gz > app.wasm.gz.sha256); fi

## build: the release binary, and target/release/pocket-ic -> ww (ww serves
## the PocketIC protocol when run under that name: POCKET_IC_BIN).
build: deps
	$(CARGO) build --release
	@ln -sfn ww target/release/pocket-ic

## run: the main job: the IC deploy simulation (examples/images/ic-deploy).
run: images build
	./target/release/ww run examples/images/ic-deploy

## test: every test (unit and integration; the guests are built first),
## then the PocketIC suite (tests/pocket-ic, its own workspace, built into
## the same target dir): the real `pocket-ic` 13 client against ww
## (POCKET_IC_BIN = target/debug/pocket-ic, a symlink to ww), a
## smaller suite with the 16.x client (tests/pocket-ic-16), the IC HTTP
## interface suite (tests/ic-agent: the real `ic-agent` against
## `ww serve --http`, WW_BIN = target/debug/ww, and through
## `PocketIc::make_live`), and PicJS
## (tests/picjs: @dfinity/pic as its package-lock.json pins it, installed by
## `npm ci --ignore-scripts` only when the lock changed; node's test runner),
## and the JavaScript agents and icp-cli (tests/agent-js: @icp-sdk/core 6.x,
## @dfinity/agent 3.x and icp-cli as its package-lock.json pins them, installed
## the same way, against `ww serve --http` with their checks on, WW_BIN =
## target/debug/ww; node's test runner).
POCKET_IC_SUITE := tests/pocket-ic/Cargo.toml
POCKET_IC_16_SUITE := tests/pocket-ic-16/Cargo.toml
IC_AGENT_SUITE := tests/ic-agent/Cargo.toml
PICJS_SUITE := tests/picjs
AGENT_JS_SUITE := tests/agent-js

$(PICJS_SUITE)/node_modules/.package-lock.json: $(PICJS_SUITE)/package.json $(PICJS_SUITE)/package-lock.json
	cd $(PICJS_SUITE) && npm ci --ignore-scripts --no-audit --no-fund

$(AGENT_JS_SUITE)/node_modules/.package-lock.json: $(AGENT_JS_SUITE)/package.json $(AGENT_JS_SUITE)/package-lock.json
	cd $(AGENT_JS_SUITE) && npm ci --ignore-scripts --no-audit --no-fund

test: images ic-guests motoko $(PICJS_SUITE)/node_modules/.package-lock.json $(AGENT_JS_SUITE)/node_modules/.package-lock.json
	@mkdir -p target/debug && ln -sfn ww target/debug/pocket-ic
	$(CARGO) test
	POCKET_IC_BIN=$(CURDIR)/target/debug/pocket-ic $(CARGO) test --manifest-path $(POCKET_IC_SUITE) --target-dir target
	# Demonstration 5 of issue 23: two of those suites, unchanged, under 100 seeds of strict messaging faults
	# (not M4: stop_start_and_delete expects a call to a deleted canister to reach the system).
	target/debug/ww test --seeds 100 --faults M1,M3,M6 -- $(CARGO) test --manifest-path $(POCKET_IC_SUITE) --target-dir target --test install --test lifecycle
	WW_POCKET_IC_VERSION=16 POCKET_IC_BIN=$(CURDIR)/target/debug/pocket-ic $(CARGO) test --manifest-path $(POCKET_IC_16_SUITE) --target-dir target
	WW_BIN=$(CURDIR)/target/debug/ww WW_POCKET_IC_VERSION=16 POCKET_IC_BIN=$(CURDIR)/target/debug/pocket-ic $(CARGO) test --manifest-path $(IC_AGENT_SUITE) --target-dir target
	cd $(PICJS_SUITE) && POCKET_IC_BIN=$(CURDIR)/target/debug/pocket-ic node --test
	cd $(AGENT_JS_SUITE) && WW_BIN=$(CURDIR)/target/debug/ww node --test

## bench: the benchmarks recorded in BENCHMARKS.md.
bench: images ic-guests
	$(CARGO) bench --bench foundation
	$(CARGO) bench --bench replica
	$(CARGO) bench --bench ic_canisters
	$(CARGO) bench --bench durable
	$(CARGO) bench --bench intents
	$(CARGO) bench --bench platform
	$(CARGO) bench --bench cycles
	$(CARGO) build --release
	./target/release/ww bench messaging
	$(CARGO) bench --bench deploy
	@ln -sfn ww target/release/pocket-ic
	POCKET_IC_BIN=$(CURDIR)/target/release/pocket-ic $(CARGO) bench --manifest-path $(POCKET_IC_SUITE) --target-dir target --bench pocket_ic
	WW_BIN=$(CURDIR)/target/release/ww WW_POCKET_IC_VERSION=16 POCKET_IC_BIN=$(CURDIR)/target/release/pocket-ic $(CARGO) bench --manifest-path $(IC_AGENT_SUITE) --target-dir target --bench http

clean:
	$(CARGO) clean
	$(CARGO) clean --manifest-path guests/Cargo.toml
	rm -rf $(BUILD_DIR) examples/images/*/bin/*.wasm examples/images/*/lib/*.wasm
