# pqmcp front door. Every target bootstraps what it needs first (Debian
# packages, OpenSSL 3.5 in a cached prefix), so each works on a fresh Debian 12
# machine and is quick the second time.

PQMCP_DEPS ?= $(HOME)/.cache/pqmcp
export PQMCP_DEPS
# The compiler cache (CMakeLists.txt, PQMCP_CCACHE) lives beside the OpenSSL
# build. Paths under the checkout are hashed relative to it, so a clean clone
# in another directory (CI's) reuses what this one compiled.
CCACHE_DIR       ?= $(PQMCP_DEPS)/ccache
CCACHE_BASEDIR   ?= $(CURDIR)
CCACHE_NOHASHDIR ?= 1
CCACHE_MAXSIZE   ?= 12G
export CCACHE_DIR CCACHE_BASEDIR CCACHE_NOHASHDIR CCACHE_MAXSIZE
BUILD      ?= build
BUILD_SAN  ?= build-dev
BUILD_TSAN ?= build-tsan
BUILD_FUZZ ?= build-fuzz
FUZZ_SECONDS ?= 60
JOBS       ?= $(shell nproc)
CTEST_ARGS ?=

# Tracked sources; outside a usable git checkout, every source under the tree.
SOURCES = $(shell git ls-files '*.cpp' '*.hpp' 2>/dev/null || \
            find bench include src tests -name '*.cpp' -o -name '*.hpp')

INTEROP    := tests/interop
PORT       ?= 8443

.PHONY: all bootstrap build build-sanitize build-tsan run test test-sanitize test-tsan check bench format format-check tidy clean interop-deps fuzz

all: build

bootstrap:
	@scripts/bootstrap.sh

# (Re)configure when the build directory is new or the OpenSSL prefix moved.
define configure
	@prefix=$$(scripts/bootstrap.sh --prefix); \
	if [ ! -f $(1)/build.ninja ] || [ "$$(cat $(1)/.openssl-prefix 2>/dev/null)" != "$$prefix" ]; then \
	  cmake -S . -B $(1) -G Ninja -DPQMCP_OPENSSL_ROOT=$$prefix $(2) && echo "$$prefix" > $(1)/.openssl-prefix; \
	fi
endef

build: bootstrap
	$(call configure,$(BUILD),-DCMAKE_BUILD_TYPE=RelWithDebInfo)
	cmake --build $(BUILD) -j $(JOBS)

build-sanitize: bootstrap
	$(call configure,$(BUILD_SAN),-DCMAKE_BUILD_TYPE=Debug -DPQMCP_SANITIZE=ON -DPQMCP_BUILD_BENCH=OFF)
	cmake --build $(BUILD_SAN) -j $(JOBS)

# The gateway on 127.0.0.1 in front of the built-in demo MCP server; its
# identity is created on the first run (~/.config/pqmcp/gateway).
run: build
	$(BUILD)/pqmcp serve --demo --listen 127.0.0.1:$(PORT)

# The MCP software the interop tests run against, exactly as locked.
interop-deps: $(INTEROP)/node_modules/.package-lock.json

$(INTEROP)/node_modules/.package-lock.json: $(INTEROP)/package.json $(INTEROP)/package-lock.json
	@command -v npm >/dev/null || { echo "npm not found: run scripts/bootstrap.sh" >&2; exit 1; }
	cd $(INTEROP) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

test: build interop-deps
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS) $(CTEST_ARGS)

# Every report goes to a file as well as failing its process: a pqmcp process
# an interop test starts and only stops at its end (a report at shutdown)
# fails the run too, whatever the test made of its exit status.
test-sanitize: build-sanitize interop-deps
	@rm -f $(BUILD_SAN)/asan-report.* $(BUILD_SAN)/ubsan-report.*
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:log_path=$(abspath $(BUILD_SAN))/asan-report \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$(abspath $(BUILD_SAN))/ubsan-report \
	  ctest --test-dir $(BUILD_SAN) --output-on-failure -j $(JOBS) $(CTEST_ARGS)
	@if ls $(BUILD_SAN)/*san-report.* >/dev/null 2>&1; then \
	  cat $(BUILD_SAN)/*san-report.*; \
	  echo "AddressSanitizer or UBSan reported the errors above" >&2; exit 1; fi

# ThreadSanitizer: the metrics (a shard per thread), the gateway on several threads (serve --threads), its own
# tests, the transport's (the TLS stream used from another thread than its
# socket's) and those that drive the pqmcp binary with many clients at once.
build-tsan: bootstrap
	$(call configure,$(BUILD_TSAN),-DCMAKE_BUILD_TYPE=RelWithDebInfo -DPQMCP_TSAN=ON -DPQMCP_BUILD_BENCH=OFF)
	cmake --build $(BUILD_TSAN) -j $(JOBS) --target test_audit test_observe test_policy test_gateway test_gateway_filters test_transport test_cluster_stores test_cluster_gateway pqmcp pqmcp_fixture

TSAN_TESTS ?= ^(audit|observe|policy|gateway|gateway_filters|transport|cluster_stores|cluster_gateway|cluster_tier|interop_mcp_threads|interop_mcp_everything|interop_mcp_policy|security_hostile_client)$$
# Every report (the test binaries' and the pqmcp processes' the interop tests
# start) goes to a file: any file fails the run.
test-tsan: build-tsan interop-deps
	@rm -f $(BUILD_TSAN)/tsan-report.*
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:log_path=$(abspath $(BUILD_TSAN))/tsan-report \
	  ctest --test-dir $(BUILD_TSAN) --output-on-failure -j $(JOBS) -R '$(TSAN_TESTS)'
	@if ls $(BUILD_TSAN)/tsan-report.* >/dev/null 2>&1; then \
	  cat $(BUILD_TSAN)/tsan-report.*; echo "ThreadSanitizer reported the races above" >&2; exit 1; fi

# libFuzzer on the parsers that see peer input, FUZZ_SECONDS each, from the
# seed corpus in tests/fuzz/corpus (clang 16 from Debian 12: clang 14 cannot
# compile the project's coroutines under the sanitizers; every test run
# replays the corpus anyway, under ASan/UBSan in test-sanitize).
FUZZ_TARGETS := jsonrpc sse http_util scanner config policy pem client_config http_request openapi
fuzz: export PQMCP_EXTRA_PACKAGES = clang-16 libclang-rt-16-dev
fuzz: bootstrap
	@prefix=$$(scripts/bootstrap.sh --prefix); \
	  CC=clang-16 CXX=clang++-16 cmake -S . -B $(BUILD_FUZZ) -G Ninja -DPQMCP_OPENSSL_ROOT=$$prefix \
	    -DCMAKE_BUILD_TYPE=Release -DPQMCP_FUZZ=ON -DPQMCP_SANITIZE=ON -DPQMCP_BUILD_BENCH=OFF >/dev/null
	cmake --build $(BUILD_FUZZ) -j $(JOBS) --target $(addprefix fuzz_,$(FUZZ_TARGETS))
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(BUILD_FUZZ)/corpus/$$t && cp tests/fuzz/corpus/$$t/* $(BUILD_FUZZ)/corpus/$$t/ && \
	  $(BUILD_FUZZ)/tests/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) $(BUILD_FUZZ)/corpus/$$t || exit 1; \
	done

# clang-tidy over every translation unit of the build (.clang-tidy; warnings are
# errors). A unit found clean is remembered under PQMCP_DEPS by a key over its
# preprocessed text and the raw bytes of every file it includes, its command,
# clang-tidy and its configuration, and not checked again until one of those
# changes (scripts/tidy.py, docs/bootstrap.md; PQMCP_TIDY_CACHE=0 checks everything).
tidy: build
	@status=0; scripts/tidy.py -p $(BUILD) -j $(JOBS) --cache "$(PQMCP_DEPS)/tidy" '^$(CURDIR)/(src|tests|bench)/' || status=$$?; \
	  case $$status in 0) echo "tidy: clean";; 1) echo "tidy: findings above" >&2; exit 1;; \
	  *) echo "tidy: could not run clang-tidy (above)" >&2; exit $$status;; esac

# Everything CI runs.
check: format-check tidy test test-sanitize test-tsan

bench: build interop-deps
	PQMCP_OPENSSL_ROOT=$$(scripts/bootstrap.sh --prefix) bench/run.sh $(BUILD)

format:
	clang-format -i $(SOURCES)

format-check:
	@test -n "$(strip $(SOURCES))" || { echo "format-check: no sources found"; exit 1; }
	clang-format --dry-run -Werror $(SOURCES)
	@echo "format-check: $(words $(SOURCES)) files formatted"

clean:
	rm -rf $(BUILD) $(BUILD_SAN) $(BUILD_FUZZ)
