# ordertrack — see README.md. `make` builds build/ordertrack; `make test` runs
# every test (unit + integration), then again under ASan+UBSan, then a short fuzz.

CC      ?= cc
PKGS    := libpq rdkafka libcurl openssl hiredis
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   := $(shell pkg-config --libs $(PKGS))
WARN    := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wstrict-prototypes
# -Wno-unused-parameter: callbacks must match library signatures they partly ignore.
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -g -Iinclude -Ithird_party $(PKG_CFLAGS) $(WARN)
CFLAGS  ?= -O2
LDLIBS  := $(PKG_LIBS) -lpthread -lm
SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

PREFIX  ?= /usr/local
PYTHON  ?= /usr/bin/python3

# src/<layer>/<module>.c; the layers and their order are in docs/ARCHITECTURE.md.
SRCS    := $(wildcard src/*/*.c)
LIBSRCS := $(filter-out src/cmd/main.c,$(SRCS))
# Fuzz targets link only the pure layers (codec and the core it stands on).
FUZZSRCS:= $(wildcard src/codec/*.c src/core/*.c)
OBJS    := $(SRCS:src/%.c=build/obj/%.o)
LIBOBJS := $(LIBSRCS:src/%.c=build/obj/%.o)
AOBJS   := $(SRCS:src/%.c=build/asan/obj/%.o)
ALIBOBJS:= $(LIBSRCS:src/%.c=build/asan/obj/%.o)
UNIT    := $(wildcard tests/unit/test_*.c)
UNITBIN := $(UNIT:tests/unit/%.c=build/tests/%)
AUNITBIN:= $(UNIT:tests/unit/%.c=build/asan/tests/%)
FUZZ    := $(wildcard tests/fuzz/fuzz_*.c)
FUZZBIN := $(FUZZ:tests/fuzz/%.c=build/fuzz/%)
BENCH   := $(wildcard tests/bench/*.c)
BENCHBIN:= $(BENCH:tests/bench/%.c=build/bench/%)

.PHONY: all asan test unit unit-asan integration integration-asan fuzz fuzz-smoke run install clean bench deps
all: build/ordertrack

# -MMD -MP: each object depends on the headers it really includes.
build/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@
build/asan/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -O1 $(SAN) -MMD -MP -c $< -o $@

build/ordertrack: $(OBJS)
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)
build/asan/ordertrack: $(AOBJS)
	$(CC) $(SAN) $^ -o $@ $(LDLIBS)
asan: build/asan/ordertrack

build/tests/%: tests/unit/%.c $(LIBOBJS) | build/tests
	$(CC) $(BASE_CFLAGS) $(CFLAGS) $< $(LIBOBJS) -o $@ $(LDLIBS) -lcriterion
build/asan/tests/%: tests/unit/%.c $(ALIBOBJS) | build/asan/tests
	$(CC) $(BASE_CFLAGS) -O1 $(SAN) $< $(ALIBOBJS) -o $@ $(LDLIBS) -lcriterion

# libFuzzer targets link the pure modules they exercise, built by clang.
build/fuzz/%: tests/fuzz/%.c $(FUZZSRCS) | build/fuzz
	clang $(BASE_CFLAGS) -O1 -fsanitize=fuzzer,address,undefined $< $(FUZZSRCS) -o $@ $(LDLIBS)

build/bench/%: tests/bench/%.c | build/bench
	$(CC) $(BASE_CFLAGS) -O2 $< -o $@ $(LDLIBS)
bench-tools: $(BENCHBIN)

build/tests build/asan/tests build/fuzz build/bench:
	mkdir -p $@

unit: $(UNITBIN)
	@set -e; for t in $(UNITBIN); do echo "== $$t"; $$t --jobs 1; done
unit-asan: $(AUNITBIN)
	@set -e; for t in $(AUNITBIN); do echo "== $$t"; ASAN_OPTIONS=detect_leaks=1 $$t --jobs 1; done

# Integration tests drive the real binary over real sockets against the real
# PostgreSQL/Redis (scripts/services.sh starts them when they are down).
integration: build/ordertrack
	OT_BIN=$(CURDIR)/build/ordertrack scripts/test-integration.sh
integration-asan: build/asan/ordertrack
	OT_BIN=$(CURDIR)/build/asan/ordertrack OT_ASAN=1 scripts/test-integration.sh

# Seeds live in tests/fuzz/seeds/<target>/, a dictionary (if any) in
# tests/fuzz/<target>.dict; the growing corpus stays in build/.
fuzz-smoke: $(FUZZBIN)
	@set -e; for f in $(FUZZBIN); do n=$$(basename $$f); mkdir -p build/corpus/$$n; \
	  d=; [ -f tests/fuzz/$$n.dict ] && d=-dict=tests/fuzz/$$n.dict; \
	  echo "== $$n (10 s smoke)"; $$f -max_total_time=10 -seed=1 $$d build/corpus/$$n tests/fuzz/seeds/$$n 2>&1 | tail -1; done
fuzz: $(FUZZBIN)
	@set -e; for f in $(FUZZBIN); do n=$$(basename $$f); mkdir -p build/corpus/$$n; \
	  d=; [ -f tests/fuzz/$$n.dict ] && d=-dict=tests/fuzz/$$n.dict; \
	  $$f -max_total_time=$${FUZZ_SECONDS:-300} $$d build/corpus/$$n tests/fuzz/seeds/$$n; done

test: all unit integration unit-asan integration-asan fuzz-smoke
	@echo "make test: all suites passed"

run: build/ordertrack
	scripts/run.sh

install: build/ordertrack
	install -D -m 0755 build/ordertrack $(DESTDIR)$(PREFIX)/bin/ordertrack
	install -d $(DESTDIR)$(PREFIX)/share/ordertrack/sql $(DESTDIR)$(PREFIX)/share/ordertrack/web
	install -m 0644 sql/*.sql $(DESTDIR)$(PREFIX)/share/ordertrack/sql/
	if [ -d web ] && [ -n "$$(ls -A web)" ]; then cp -r web/. $(DESTDIR)$(PREFIX)/share/ordertrack/web/; fi
	install -d $(DESTDIR)$(PREFIX)/etc/ordertrack $(DESTDIR)$(PREFIX)/lib/systemd/system
	sed 's|/usr/local|$(PREFIX)|g' conf/ordertrack.env > $(DESTDIR)$(PREFIX)/etc/ordertrack/ordertrack.env
	for u in ordertrack.service ordertrack@.service; do \
	  sed 's|/usr/local|$(PREFIX)|g' conf/systemd/$$u > $(DESTDIR)$(PREFIX)/lib/systemd/system/$$u; done

deps:
	scripts/setup-deps.sh

clean:
	rm -rf build

-include $(OBJS:.o=.d) $(AOBJS:.o=.d)
