# ingestd: plain GNU make + pkg-config.  `make help` lists the targets.

VERSION    := 0.1.0
BUILD      ?= build
CC         ?= cc
PKGS       := libssl libcrypto libpq libzstd libconfig libcurl
# pkg-config is asked once, when make starts, so these describe the machine
# as it was then.  That is why the targets that install packages first
# (unit, test, crashtest, bench, demo: see "Packages first" below) do their
# build in a second make, started after tests/deps.sh.
PKG_FOUND  := $(shell pkg-config --exists $(PKGS) 2>/dev/null && echo yes)
PKG_CFLAGS := $(if $(PKG_FOUND),$(shell pkg-config --cflags $(PKGS)))
PKG_LIBS   := $(if $(PKG_FOUND),$(shell pkg-config --libs $(PKGS)))

WARN       := -Wall -Wextra -Wformat=2 -Wshadow -Wstrict-prototypes \
              -Wno-unused-parameter
ifeq ($(WERROR),1)
WARN       += -Werror
endif
OPT        ?= -O2 -g
SAN        ?=
CFLAGS_ALL := -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) $(SAN) -I. \
              -DINGESTD_VERSION='"$(VERSION)"' $(PKG_CFLAGS) $(CFLAGS)
LDLIBS_ALL := $(SAN) $(PKG_LIBS) -lpthread $(LDLIBS)

ifneq ($(V),1)
Q := @
E := @printf '  %-7s %s\n'
else
Q :=
E := @true
endif

LIB_SRC  := $(wildcard ingestd/base/*.c) \
            $(filter-out ingestd/main.c,$(wildcard ingestd/*.c)) \
            $(wildcard pop3/*.c) $(wildcard store/*.c) \
            $(wildcard store/mime/*.c)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/migrations.o
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TOOL_SRC := $(wildcard tests/fake/*.c) $(wildcard tests/bench/*.c) $(wildcard tests/integ/*.c)
TOOL_BIN := $(TOOL_SRC:tests/%.c=$(BUILD)/tests/%)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
MIGRATIONS := $(sort $(wildcard migrations/*.sql))

.PHONY: all unit test check fuzz fuzz-replay bench lint install demo help \
        clean deps crashtest freshcheck pkgs run-unit run-test run-crashtest \
        run-bench run-demo
.DEFAULT_GOAL := all

all: $(BUILD)/ingestd $(TOOL_BIN)

$(BUILD)/obj/%.o: %.c | pkgs
	@mkdir -p $(dir $@)
	$(E) CC $<
	$(Q)$(CC) $(CFLAGS_ALL) -MMD -MP -c -o $@ $<

# Migrations are compiled into the binary, so `ingestd migrate` works from
# any directory and an installed binary always carries its own schema.
$(BUILD)/migrations.c: $(MIGRATIONS) Makefile
	@mkdir -p $(dir $@)
	$(E) GEN $@
	$(Q){ echo '#include "store/migrations.h"'; \
	  echo 'const struct migration migrations[] = {'; \
	  for f in $(MIGRATIONS); do \
	    printf '{ "%s",\n' "$$(basename $$f .sql)"; \
	    sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$$/\\n"/' $$f; \
	    echo '},'; \
	  done; \
	  echo '};'; \
	  echo 'const size_t migrations_count = sizeof(migrations) / sizeof(migrations[0]);'; \
	} > $@

$(BUILD)/migrations.o: $(BUILD)/migrations.c | pkgs
	$(E) CC $<
	$(Q)$(CC) $(CFLAGS_ALL) -c -o $@ $<

$(BUILD)/libingestd.a: $(LIB_OBJ)
	$(E) AR $@
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/ingestd: $(BUILD)/obj/ingestd/main.o $(BUILD)/libingestd.a
	$(E) LD $@
	$(Q)$(CC) -o $@ $^ $(LDLIBS_ALL)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libingestd.a tests/unit/test.h
	@mkdir -p $(dir $@)
	$(E) CC $@
	$(Q)$(CC) $(CFLAGS_ALL) -o $@ $< $(BUILD)/libingestd.a $(LDLIBS_ALL)

$(BUILD)/tests/fake/%: tests/fake/%.c $(BUILD)/libingestd.a
	@mkdir -p $(dir $@)
	$(E) CC $@
	$(Q)$(CC) $(CFLAGS_ALL) -o $@ $< $(BUILD)/libingestd.a $(LDLIBS_ALL)
$(BUILD)/tests/bench/%: tests/bench/%.c $(BUILD)/libingestd.a
	@mkdir -p $(dir $@)
	$(E) CC $@
	$(Q)$(CC) $(CFLAGS_ALL) -o $@ $< $(BUILD)/libingestd.a $(LDLIBS_ALL)
$(BUILD)/tests/integ/%: tests/integ/%.c $(BUILD)/libingestd.a
	@mkdir -p $(dir $@)
	$(E) CC $@
	$(Q)$(CC) $(CFLAGS_ALL) -o $@ $< $(BUILD)/libingestd.a $(LDLIBS_ALL)

# Installs the Debian packages the build and the tests need (as root), or
# prints the apt-get line to run.
deps:
	$(Q)bash tests/deps.sh

# Stops a compile early, and says why, when pkg-config did not find the
# libraries as this make started (a machine without the packages, or a
# make that installed them only after it had started).
pkgs:
ifneq ($(PKG_FOUND),yes)
	@echo 'make: pkg-config does not find $(PKGS):' >&2; \
	 pkg-config --print-errors --exists $(PKGS) || true; \
	 echo 'make: install them with "make deps" (as root), then run make again' >&2; \
	 exit 1
endif

# Packages first: each of these runs tests/deps.sh, and only then a second
# make (run-TARGET) that builds and runs, so that the build sees the
# packages just installed.  A make started without them takes pkg-config's
# answers as empty and would fail on the first #include <libpq-fe.h>.
# `make run-test` and the like skip the package check.
unit test crashtest bench demo: deps
	$(Q)$(MAKE) --no-print-directory run-$@

run-unit: $(UNIT_BIN) $(BUILD)/ingestd
	$(Q)bash tests/unit/run.sh $(UNIT_BIN)

# Everything CI runs: unit tests, fuzz corpora replayed, the fault server's
# self-tests, and integration against a private PostgreSQL and a private
# Dovecot started by the run.  Ends with one "N passed, N failed" line.
run-test: $(UNIT_BIN) $(BUILD)/ingestd $(TOOL_BIN)
	$(Q)bash tests/run.sh $(abspath $(BUILD)) $(UNIT_BIN)

# The long crash and outage tests (CI runs them): 100 SIGKILLs of large
# polls (CRASH_KILLS=N, CRASH_SEED=N to replay), a database outage longer
# than the commit retry, a 500 MiB message over TLS and a mailbox of
# 100,000 messages.  About 4.5 minutes on 2 cores.
run-crashtest: $(BUILD)/ingestd
	$(Q)INGESTD=$(abspath $(BUILD))/ingestd BUILD=$(abspath $(BUILD)) \
	    python3 tests/integ/run.py tests/crash/test_crash_loop.py \
	    tests/crash/test_long_outage.py tests/crash/test_huge.py
	$(Q)FAULTS_LARGE=100000 INGESTD=$(abspath $(BUILD))/ingestd \
	    BUILD=$(abspath $(BUILD)) python3 tests/integ/run.py \
	    -k large_mailbox tests/integ/test_faults.py

check:
	$(Q)$(MAKE) --no-print-directory test BUILD=build-asan OPT='-O1 -g' \
	  SAN='-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer'

# libFuzzer targets, built with clang.  The scripts ask pkg-config as they
# run, after deps.
FUZZ_TIME ?= 60
FUZZ_BUILD := build-fuzz
FUZZ_FLAGS := -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -g -O1
fuzz: deps
	$(Q)bash tests/fuzz/run.sh $(FUZZ_TIME)
fuzz-replay: deps
	$(Q)bash tests/fuzz/run.sh replay

run-bench: all
	$(Q)BUILD=$(BUILD) bash tests/bench/run.sh

run-demo: all
	$(Q)INGESTD=$(abspath $(BUILD))/ingestd bash deploy/demo.sh

lint: deps
	$(Q)bash tests/lint.sh

# `make test` and `make demo`, each the first command on a pristine Debian 12
# (debootstrap, chroot) that has only git and make; needs root.
# FRESHCHECK_ARGS="lint crashtest" runs other targets the same way.
freshcheck:
	$(Q)FRESHCHECK_LOGS=$(abspath $(BUILD))/freshcheck \
	    bash tests/fresh/run.sh $(FRESHCHECK_ARGS)

# PREFIX for the program, its manual and its systemd files; the
# configuration and state directories are fixed, since the binary and the
# unit name them.  With DESTDIR (a package, an image) files get their
# modes but not their owners: run deploy/install-owners.sh DESTDIR PREFIX,
# or systemd-sysusers and systemd-tmpfiles --create on the two files in
# lib/, when the tree is installed.  As root without DESTDIR that is done
# here.  An existing ingestd.conf is never replaced.
PREFIX  ?= /usr/local
DESTDIR ?=
CONFDIR  := /etc/ingestd
STATEDIR := /var/lib/ingestd
install: $(BUILD)/ingestd
	install -D -m 755 $(BUILD)/ingestd $(DESTDIR)$(PREFIX)/bin/ingestd
	install -D -m 644 deploy/ingestd.8 $(DESTDIR)$(PREFIX)/share/man/man8/ingestd.8
	install -D -m 644 deploy/ingestd.conf.example $(DESTDIR)$(PREFIX)/share/doc/ingestd/ingestd.conf.example
	install -d -m 755 $(DESTDIR)$(PREFIX)/lib/systemd/system
	sed 's|/usr/local/bin/ingestd|$(PREFIX)/bin/ingestd|g' deploy/ingestd.service \
	    > $(DESTDIR)$(PREFIX)/lib/systemd/system/ingestd.service
	chmod 644 $(DESTDIR)$(PREFIX)/lib/systemd/system/ingestd.service
	install -D -m 644 deploy/ingestd.sysusers $(DESTDIR)$(PREFIX)/lib/sysusers.d/ingestd.conf
	install -D -m 644 deploy/ingestd.tmpfiles $(DESTDIR)$(PREFIX)/lib/tmpfiles.d/ingestd.conf
	install -d -m 750 $(DESTDIR)$(CONFDIR)
	install -d -m 700 $(DESTDIR)$(STATEDIR)
	@if [ -e $(DESTDIR)$(CONFDIR)/ingestd.conf ]; then \
	    echo "install: keeping $(DESTDIR)$(CONFDIR)/ingestd.conf"; \
	else \
	    echo "install -m 640 deploy/ingestd.conf.example $(DESTDIR)$(CONFDIR)/ingestd.conf"; \
	    install -m 640 deploy/ingestd.conf.example $(DESTDIR)$(CONFDIR)/ingestd.conf; \
	fi
	@if [ -n "$(DESTDIR)" ]; then \
	    echo "install: owners not set under DESTDIR; see deploy/install-owners.sh"; \
	elif [ "$$(id -u)" -ne 0 ]; then \
	    echo "install: not root: user ingestd and owners not set; run deploy/install-owners.sh / $(PREFIX) as root"; \
	else \
	    echo "sh deploy/install-owners.sh / $(PREFIX)"; \
	    sh deploy/install-owners.sh / $(PREFIX); \
	fi

clean:
	rm -rf build build-asan build-fuzz

help:
	@echo 'make            build $(BUILD)/ingestd'
	@echo 'make demo       archive a private demo mailbox server end to end'
	@echo 'make unit       unit tests (no services needed)'
	@echo 'make test       everything CI runs (starts private PostgreSQL and Dovecot)'
	@echo 'make crashtest  longer crash loop and long database outage (tests/crash/)'
	@echo 'make check      test under ASan and UBSan in build-asan/'
	@echo 'make fuzz       libFuzzer targets, FUZZ_TIME=$(FUZZ_TIME) seconds each'
	@echo 'make bench      throughput and memory against fetchmail, mpop, getmail6'
	@echo 'make lint       clang-format, include boundaries, cppcheck'
	@echo 'make freshcheck make test and make demo on a pristine Debian 12 chroot (root)'
	@echo 'make install    PREFIX=$(PREFIX) DESTDIR=$(DESTDIR)'
	@echo 'V=1 for verbose, WERROR=1 to fail on warnings'

-include $(shell find $(BUILD) -name '*.d' -type f 2>/dev/null)
