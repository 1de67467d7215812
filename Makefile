# coro - build, tests, benchmarks.
#   make            build tests, examples and benchmarks into build/
#   make test       the whole suite: plain, ASan+UBSan, valgrind; examples
#   make bench      the benchmarks (prints a table)
#   make size       firmware sizes on Cortex-M4 / RV32; make qemu-test: the
#                   suites on an emulated Cortex-M4 (test/embedded/embedded.mk)
#   make install PREFIX=/usr/local    headers and coro.pc
#   make clean

CC      ?= cc
CXX     ?= c++
PREFIX  ?= /usr/local
BUILD   := build
HDRS    := coro.h coro_loop.h coro_sync.h coro_io.h
WARN    := -Wall -Wextra -Wpedantic -Wshadow -Werror
CFLAGS  ?=
CSTD    := -std=c11 $(WARN) -I. $(CFLAGS)
# coro_io.h needs liburing; --as-needed keeps it off binaries that do not.
LDLIBS  := -Wl,--as-needed -luring -lpthread
PLAIN   := -O2 -g
SAN     := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
           -fno-sanitize-recover=all

TEST_SRCS := $(wildcard test/test_*.c)
TESTS     := $(basename $(notdir $(TEST_SRCS))) test_link test_cpp
EXAMPLES  := $(basename $(notdir $(wildcard examples/*.c)))
BENCHES   := $(basename $(notdir $(wildcard bench/bench_*.c)))

PLAIN_TESTS := $(addprefix $(BUILD)/test/plain/,$(TESTS))
SAN_TESTS   := $(addprefix $(BUILD)/test/asan/,$(TESTS))
TSAN_TESTS  := $(addprefix $(BUILD)/test/tsan/,$(basename $(notdir $(wildcard test/test_io_thread*.c))))
# The core suites again with every size option of coro.h (ASan+UBSan).
SLIM        := -DCORO_NO_DIAG -DCORO_TIME32 -DCORO_NO_REGISTRY -DCORO_TIMER_LIST
SLIM_TESTS  := $(addprefix $(BUILD)/test/slim/,$(basename $(notdir \
               $(filter-out test/test_io%,$(TEST_SRCS)))))
EXAMPLE_BINS:= $(addprefix $(BUILD)/examples/,$(EXAMPLES))
BENCH_BINS  := $(addprefix $(BUILD)/bench/,$(BENCHES))

.PHONY: all test bench install clean check-headers conformance fuzz
all: $(PLAIN_TESTS) $(SAN_TESTS) $(TSAN_TESTS) $(SLIM_TESTS) $(EXAMPLE_BINS) $(BENCH_BINS) $(BUILD)/scenario \
     $(BUILD)/scenario-asan

# The conformance interpreter (test/conformance): plain and sanitized.
$(BUILD)/scenario: test/conformance/scenario.c $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(CSTD) $(PLAIN) $< -o $@
$(BUILD)/scenario-asan: test/conformance/scenario.c $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(CSTD) $(SAN) $< -o $@

$(BUILD)/test/plain/%: test/%.c $(HDRS) test/test.h test/test_io.h
	@mkdir -p $(@D)
	$(CC) $(CSTD) $(PLAIN) $< -o $@ $(LDLIBS)

$(BUILD)/test/asan/%: test/%.c $(HDRS) test/test.h test/test_io.h
	@mkdir -p $(@D)
	$(CC) $(CSTD) $(SAN) $< -o $@ $(LDLIBS)

$(BUILD)/test/slim/%: test/%.c $(HDRS) test/test.h
	@mkdir -p $(@D)
	$(CC) $(CSTD) $(SAN) $(SLIM) $< -o $@ $(LDLIBS)

# The thread suites (test/test_io_thread*.c) also run under TSan.
$(BUILD)/test/tsan/%: test/%.c $(HDRS) test/test.h test/test_io.h
	@mkdir -p $(@D)
	$(CC) $(CSTD) -O1 -g -fsanitize=thread $< -o $@ $(LDLIBS)

# Two translation units sharing one loop: the headers link cleanly.
$(BUILD)/test/plain/test_link: test/link/a.c test/link/b.c $(HDRS) test/test.h
	@mkdir -p $(@D)
	$(CC) $(CSTD) $(PLAIN) test/link/a.c test/link/b.c -o $@
$(BUILD)/test/asan/test_link: test/link/a.c test/link/b.c $(HDRS) test/test.h
	@mkdir -p $(@D)
	$(CC) $(CSTD) $(SAN) test/link/a.c test/link/b.c -o $@

# The headers as C++17.
$(BUILD)/test/plain/test_cpp: test/test_cpp.cpp $(HDRS)
	@mkdir -p $(@D)
	$(CXX) -std=c++17 $(WARN) -I. $(PLAIN) $< -o $@
$(BUILD)/test/asan/test_cpp: test/test_cpp.cpp $(HDRS)
	@mkdir -p $(@D)
	$(CXX) -std=c++17 $(WARN) -I. $(SAN) $< -o $@

$(BUILD)/examples/%: examples/%.c examples/example.h examples/serve.h examples/echo.h $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(CSTD) $(PLAIN) $< -o $@ $(LDLIBS)

# The HTTP example parses requests with Debian's http-parser.
$(BUILD)/examples/http_server: LDLIBS += -lhttp_parser

$(BUILD)/bench/%: bench/%.c $(HDRS) bench/bench.h
	@mkdir -p $(@D)
	$(CC) -std=c11 $(WARN) -I. -O2 -g $< -o $@ -lpthread

check-headers:
	@sh test/check_headers.sh

# Differential conformance against CPython asyncio: every shipped scenario,
# then N random ones from seed SEED (make conformance N=5000 SEED=1).
N    ?= 1000
SEED ?= 1
conformance: $(BUILD)/scenario $(BUILD)/scenario-asan
	@sh test/conformance/run.sh $(N) $(SEED)

# libFuzzer over the interpreter (clang, libclang-rt-14-dev); RUNS inputs.
RUNS ?= 1000000
$(BUILD)/fuzz-scenario: test/conformance/fuzz.c test/conformance/scenario.c $(HDRS)
	@mkdir -p $(@D)
	clang -std=c11 -g -O1 -I. -DSCENARIO_NO_MAIN -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=all test/conformance/fuzz.c test/conformance/scenario.c -o $@
fuzz: $(BUILD)/fuzz-scenario
	@mkdir -p $(BUILD)/fuzz-corpus
	@cp test/conformance/scenarios/*.co test/conformance/scenarios/reject/*.co $(BUILD)/fuzz-corpus/
	$(BUILD)/fuzz-scenario -runs=$(RUNS) -max_len=4096 -timeout=10 -rss_limit_mb=4096 \
	    -artifact_prefix=$(BUILD)/fuzz- \
	    -print_final_stats=1 $(BUILD)/fuzz-corpus

# make test and make bench first install what a fresh Debian 12 lacks
# (test/deps.sh, bench/deps.sh: they say what), then build, then run.
test:
	@sh test/deps.sh
	@$(MAKE) --no-print-directory all
	@sh test/run.sh

# Benchmarks (bench/README.md). bench: the quick profile (< 5 min), after
# installing the peers' Debian packages that are missing (bench/deps.sh);
# bench-full: the large sizes; bench-check: instruction counts under
# callgrind against bench/baseline.json, fails on a > 10% regression
# (BENCH_INJECT=K adds K increments per operation: shows that it fails).
.PHONY: bench-full bench-check
bench:
	@sh test/deps.sh
	@sh bench/deps.sh
	@$(MAKE) --no-print-directory $(BENCH_BINS)
	@sh bench/run.sh
bench-full:
	@sh test/deps.sh
	@sh bench/deps.sh
	@$(MAKE) --no-print-directory $(BENCH_BINS)
	@BENCH_PROFILE=full sh bench/run.sh
BENCH_CHECK_DIR := $(BUILD)/bench/check$(if $(BENCH_INJECT),-inject$(BENCH_INJECT))
$(BENCH_CHECK_DIR)/%: bench/%.c $(HDRS) bench/bench.h
	@mkdir -p $(@D)
	$(CC) -std=c11 $(WARN) -I. -O2 -g $(if $(BENCH_INJECT),-DBENCH_INJECT=$(BENCH_INJECT)) \
	    $< -o $@ -lpthread
bench-check: $(addprefix $(BENCH_CHECK_DIR)/,bench_switch bench_spawn bench_sync bench_cancel)
	@python3 bench/check.py --bin $(BENCH_CHECK_DIR) --baseline bench/baseline.json
# B8/B9 benchmarks use coro_io.h: bench/bench_io_<name>.c links liburing.
$(BUILD)/bench/bench_io_%: bench/bench_io_%.c $(HDRS) bench/bench.h
	@mkdir -p $(@D)
	$(CC) -std=c11 $(WARN) -I. -O2 -g $< -o $@ -luring -lpthread
# B8 runs the echo examples' own code (examples/echo.h, serve.h).
$(BUILD)/bench/bench_io_echo: examples/echo.h examples/serve.h

install:
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 $(HDRS) $(DESTDIR)$(PREFIX)/include/
	sed 's|@PREFIX@|$(PREFIX)|' coro.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/coro.pc

clean:
	rm -rf $(BUILD)

include test/embedded/embedded.mk
