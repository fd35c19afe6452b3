# The two commands a newcomer needs on a fresh Debian 12 machine:
#   make run    installs missing packages, configures, builds, runs the main job
#   make test   the same set-up, then the tests, an ASan/UBSan build of them and a
#               ThreadSanitizer build of the ring, client, gateway and scheduler tests
JOBS ?= $(shell nproc)
BUILD ?= build
CONFIG ?= perf/default.toml
DURATION ?= 20s
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo

.PHONY: all deps build run test test-release test-asan test-tsan bench clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

run: build
	./$(BUILD)/keel run --config $(CONFIG) --duration $(DURATION) --verify

test: test-release test-asan test-tsan

test-release: build
	cd $(BUILD) && ctest --output-on-failure -j1

test-asan: deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKEEL_SANITIZE=address >/dev/null
	@cmake --build build-asan -j$(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j1

# ThreadSanitizer checks the memory ordering of the rings, of a tile handed between cores,
# of the client table and gateway built on them, and of the scheduler, the pool supervisor and the worker process with its
# oneTBB arena (threads and processes). tests/tsan.supp says which oneTBB internals it
# cannot see into; atexit_sleep_ms=0 lets a worker's _exit be as quick as in production.
TSAN_TESTS = keel_test_shm_ring keel_test_shm_arena keel_test_engine_core keel_test_engine_client_table keel_test_engine_client \
             keel_test_engine_client_gateway keel_test_engine_sched_scheduler keel_test_engine_sched_worker \
             keel_test_engine_sched_pool_supervisor
test-tsan: deps
	@cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKEEL_SANITIZE=thread >/dev/null
	@cmake --build build-tsan -j$(JOBS) --target $(TSAN_TESTS)
	cd build-tsan && TSAN_OPTIONS="halt_on_error=1 atexit_sleep_ms=0 suppressions=$(CURDIR)/tests/tsan.supp" ctest --output-on-failure -j1 -R '^($(subst $() ,|,$(strip $(TSAN_TESTS))))$$'

bench: build
	./$(BUILD)/keel bench ring

clean:
	rm -rf $(BUILD) build-asan build-tsan
