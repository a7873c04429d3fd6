# ordertrack — see README.md. `make` builds build/ordertrack; `make test` runs
# every test (unit + integration), then again under ASan+UBSan, then a short fuzz.

CC      ?= cc
PKGS    := libpq rdkafka libcurl openssl hiredis
# Quiet when a package is missing: `make run`/`make test` install it first and
# then build in a sub-make, which evaluates these again.
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
WARN    := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wstrict-prototypes
# -Wno-unused-parameter: callbacks must match library signatures they partly ignore.
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -g -Iinclude -Ithird_party $(PKG_CFLAGS) $(WARN)
CFLAGS  ?= -O2
# -lz: the static route gzips text files (api/static.c); zlib is already in
# the process through libpq/libcurl, this only names it.
LDLIBS  := $(PKG_LIBS) -lz -lpthread -lm
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
# Connection-layer targets drive the real ws/hub code on a real loop, so
# they link every module but main (rule below); the rest link codec + core.
FUZZCONN:= tests/fuzz/fuzz_ws_conn.c
FUZZ    := $(filter-out $(FUZZCONN),$(wildcard tests/fuzz/fuzz_*.c))
FUZZBIN := $(FUZZ:tests/fuzz/%.c=build/fuzz/%) $(FUZZCONN:tests/fuzz/%.c=build/fuzz/%)
BENCH   := $(wildcard tests/bench/*.c)
BENCHBIN:= $(BENCH:tests/bench/%.c=build/bench/%)

.PHONY: check-layers all asan test test-suites unit unit-asan integration integration-asan fuzz fuzz-smoke run install \
        clean bench deps ops-check soak web-vendor test-web
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
build/fuzz/fuzz_ws_conn: tests/fuzz/fuzz_ws_conn.c $(LIBSRCS) | build/fuzz
	clang $(BASE_CFLAGS) -O1 -fsanitize=fuzzer,address,undefined $< $(LIBSRCS) -o $@ $(LDLIBS)

# The connection fuzzer also needs the HTTP layer; it brings its own fake
# loop and socket (tests/fuzz/fuzz_http_conn.c), so src/event stays out.
CONNFUZZSRCS := $(FUZZSRCS) src/http/http.c src/http/router.c
build/fuzz/fuzz_http_conn: tests/fuzz/fuzz_http_conn.c $(CONNFUZZSRCS) | build/fuzz
	clang $(BASE_CFLAGS) -O1 -fsanitize=fuzzer,address,undefined $< $(CONNFUZZSRCS) -o $@ $(LDLIBS)

build/bench/%: tests/bench/%.c | build/bench
	$(CC) $(BASE_CFLAGS) -O2 $< -o $@ $(LDLIBS)
# The pure codec and core code under measurement is linked in.
build/bench/crypto_cost: tests/bench/crypto_cost.c $(filter build/obj/codec/% build/obj/core/%,$(LIBOBJS)) | build/bench
	$(CC) $(BASE_CFLAGS) -O2 $^ -o $@ $(LDLIBS)
# The broker's floor for bench-kafka.sh: librdkafka alone, nothing of ours.
build/bench/kafka_floor: tests/bench/kafka_floor.c | build/bench
	$(CC) $(BASE_CFLAGS) -O2 $< -o $@ -lrdkafka
bench-tools: $(BENCHBIN)

build/tests build/asan/tests build/fuzz build/bench:
	mkdir -p $@

unit: $(UNITBIN)
	@set -e; for t in $(UNITBIN); do echo "== $$t"; $$t --jobs 1; done
unit-asan: $(AUNITBIN)
	@set -e; for t in $(AUNITBIN); do echo "== $$t"; ASAN_OPTIONS=detect_leaks=1 $$t --jobs 1; done

# Integration tests drive the real binary over real sockets against the real
# PostgreSQL/Redis (scripts/services.sh starts them when they are down).
integration: build/ordertrack web-vendor
	OT_BIN=$(CURDIR)/build/ordertrack scripts/test-integration.sh
integration-asan: build/asan/ordertrack web-vendor
	OT_BIN=$(CURDIR)/build/asan/ordertrack OT_ASAN=1 scripts/test-integration.sh

# The dashboards in Debian's Chromium (playwright-core, tests/web/run.sh);
# screenshots in build/web-artifacts/.
test-web: build/ordertrack
	OT_BIN=$(CURDIR)/build/ordertrack tests/web/run.sh

# Seeds live in tests/fuzz/seeds/<target>/, a dictionary (if any) in
# tests/fuzz/<target>.dict; the growing corpus stays in build/.
fuzz-smoke: $(FUZZBIN)
	@set -e; for f in $(FUZZBIN); do n=$$(basename $$f); mkdir -p build/corpus/$$n; \
	  d=; [ -f tests/fuzz/$$n.dict ] && d=-dict=tests/fuzz/$$n.dict; \
	  echo "== $$n (10 s smoke)"; $$f $$d -max_total_time=10 -seed=1 build/corpus/$$n tests/fuzz/seeds/$$n 2>&1 | tail -1; done
fuzz: $(FUZZBIN)
	@set -e; for f in $(FUZZBIN); do n=$$(basename $$f); mkdir -p build/corpus/$$n; \
	  d=; [ -f tests/fuzz/$$n.dict ] && d=-dict=tests/fuzz/$$n.dict; \
	  $$f $$d -max_total_time=$${FUZZ_SECONDS:-300} build/corpus/$$n tests/fuzz/seeds/$$n; done

check-layers:
	scripts/check-layers.sh
	python3 scripts/check-cycles.py

# ---- operations (issue 16): the two commands, install, ops checks, soak ----
# `make run` and `make test` first install what is missing (quick and silent
# when nothing is), then build in a sub-make that sees the new packages.
test:
	@scripts/setup-deps.sh
	@$(MAKE) --no-print-directory test-suites
test-suites: check-layers all unit integration test-web unit-asan integration-asan fuzz-smoke ops-check
	@echo "make test: all suites passed"

run:
	@scripts/setup-deps.sh
	@$(MAKE) -s --no-print-directory build/ordertrack
	@scripts/web-vendor.sh
	scripts/run.sh

# promtool rules/config, systemd units, install modes (tests/ops/check.sh).
ops-check: build/ordertrack
	OT_BIN=$(CURDIR)/build/ordertrack tests/ops/check.sh

# 30 minutes of mixed load by default; SOAK_SECONDS=120 for a short proof.
soak: build/ordertrack
	scripts/soak.sh

# Secrets and the env file are 0600 from the first byte (umask in a
# subshell), never world-readable; existing secrets are kept.
ETC := $(DESTDIR)$(PREFIX)/etc/ordertrack
# web/vendor/ (the chart library, scripts/web-vendor.sh) goes with web/.
web-vendor:
	scripts/web-vendor.sh
install: build/ordertrack web-vendor
	install -D -m 0755 build/ordertrack $(DESTDIR)$(PREFIX)/bin/ordertrack
	install -d $(DESTDIR)$(PREFIX)/share/ordertrack/sql $(DESTDIR)$(PREFIX)/share/ordertrack/web
	install -m 0644 sql/*.sql $(DESTDIR)$(PREFIX)/share/ordertrack/sql/
	if [ -d web ] && [ -n "$$(ls -A web)" ]; then cp -r web/. $(DESTDIR)$(PREFIX)/share/ordertrack/web/; fi
	install -d -m 0755 $(DESTDIR)$(PREFIX)/share/ordertrack/grafana $(DESTDIR)$(PREFIX)/share/ordertrack/prometheus
	install -m 0644 conf/grafana/*.json conf/grafana/*.yml $(DESTDIR)$(PREFIX)/share/ordertrack/grafana/
	install -m 0644 conf/prometheus/*.yml $(DESTDIR)$(PREFIX)/share/ordertrack/prometheus/
	install -m 0644 conf/vector.toml $(DESTDIR)$(PREFIX)/share/ordertrack/vector.toml
	install -d -m 0700 $(ETC)
	install -d $(DESTDIR)$(PREFIX)/lib/systemd/system
	(umask 077 && sed 's|/usr/local|$(PREFIX)|g' conf/ordertrack.env > $(ETC)/ordertrack.env) && chmod 0600 $(ETC)/ordertrack.env
	[ -s $(ETC)/jwt_secret ] || (umask 077 && openssl rand -hex 32 > $(ETC)/jwt_secret)
	[ -s $(ETC)/database_url ] || (umask 077 && echo 'postgresql://ordertrack@127.0.0.1:5432/ordertrack' > $(ETC)/database_url)
	chmod 0600 $(ETC)/jwt_secret $(ETC)/database_url
	for u in ordertrack.service ordertrack@.service; do \
	  sed 's|/usr/local|$(PREFIX)|g' conf/systemd/$$u > $(DESTDIR)$(PREFIX)/lib/systemd/system/$$u; done
# ---- end operations ----

deps:
	scripts/setup-deps.sh

clean:
	rm -rf build

-include $(OBJS:.o=.d) $(AOBJS:.o=.d)

# Real Kafka and Elasticsearch (scripts/kafka.sh, scripts/elasticsearch.sh); not part of `make test`.
.PHONY: test-services
test-services:
	tests/services/test_services.sh
