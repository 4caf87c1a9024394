# volmig: one binary, one Makefile.  Every module folder contributes its *.c
# files by wildcard, so adding a file needs no edit here.

BUILD   ?= build
CC      ?= gcc
PREFIX  ?= /usr/local
DESTDIR ?=
DEPS    ?= ./tests/lib/deps.sh
PKGS    := liburing jansson libnbd libvirt libvirt-qemu libxml-2.0 libedit yaml-0.1 gnutls
SAN     ?=
OPT     ?= -O2 -g
CFLAGS  ?=
override CFLAGS += $(OPT) -std=gnu11 -Wall -Wextra -Werror -Wno-format-truncation -D_GNU_SOURCE -I. $(SAN) \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
override LDLIBS += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread
override LDFLAGS += $(SAN)

LIB_SRCS  := $(wildcard common/*.c nbd/*.c engine/*.c qmp/*.c k8s/*.c)
CLI_SRCS  := $(wildcard cli/*.c)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
TOOL_SRCS := $(wildcard tests/tools/*.c)
GUEST_SRCS := $(wildcard tests/tools/*.S)

LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/%.o)
CLI_OBJS  := $(CLI_SRCS:%.c=$(BUILD)/%.o)
UNIT_BINS := $(UNIT_SRCS:%.c=$(BUILD)/%)
TOOL_BINS := $(TOOL_SRCS:%.c=$(BUILD)/%)
GUEST_BINS := $(GUEST_SRCS:%.S=$(BUILD)/%.bin)

.PHONY: all deps check check-unit check-integration check-asan check-valgrind \
        check-faults check-load demo bench fuzz clean install uninstall

all: deps $(BUILD)/volmig $(TOOL_BINS) $(GUEST_BINS)

# -Wno-format-truncation: snprintf into fixed buffers truncates by design
# here (messages, names); GCC at -O1 flags every such call.

# deps installs the Debian packages the build, tests, demo and bench need.
# It is quiet when nothing is missing, and needs root only when something is.
deps:
	@$(DEPS)

# Every compile waits for deps (an order-only prerequisite: it orders, it
# does not make objects stale).  Without it `make -j2` on a fresh machine
# compiled while deps was still installing the headers.  pkg-config runs
# (CFLAGS and LDLIBS are recursive variables) when a recipe runs, so the
# flags see what deps installed.
$(BUILD)/%.o: %.c $(wildcard */*.h) | deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/libvolmig.a: $(LIB_OBJS) | deps
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/volmig: $(CLI_OBJS) $(BUILD)/libvolmig.a | deps
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJS) $(BUILD)/libvolmig.a $(LDLIBS)

$(BUILD)/tests/unit/%: tests/unit/%.c $(BUILD)/libvolmig.a | deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libvolmig.a $(LDLIBS) -lcmocka

$(BUILD)/tests/tools/%: tests/tools/%.c $(BUILD)/libvolmig.a | deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libvolmig.a $(LDLIBS)

# A test guest: a boot sector (16-bit code) for SeaBIOS to run.
$(BUILD)/tests/tools/%.bin: tests/tools/%.S | deps
	@mkdir -p $(dir $@)
	as --32 -o $@.o $<
	ld -m elf_i386 -Ttext 0x7c00 --oformat binary -o $@ $@.o
	@rm -f $@.o

# make install [PREFIX=/usr/local] [DESTDIR=staging-root]
install: $(BUILD)/volmig
	install -D -m 0755 $(BUILD)/volmig $(DESTDIR)$(PREFIX)/bin/volmig

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/volmig

# check runs every unit test binary and every integration script through one
# runner, which prints the closing "N passed, N failed" line.
check: all $(UNIT_BINS)
	@BUILD=$(BUILD) ./tests/run.sh $(CHECK_ARGS)

check-unit: all $(UNIT_BINS)
	@BUILD=$(BUILD) ./tests/run.sh --unit-only

check-integration: all
	@BUILD=$(BUILD) ./tests/run.sh --integration-only $(CHECK_ARGS)

check-asan:
	$(MAKE) BUILD=build-asan SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" OPT="-O1 -g" check

# The long randomized fault campaign (100 migrations; SEED=N to replay one)
# and the full load tests (8 volumes, 4 at once, a 100 GiB sparse volume).
check-faults: all
	@BUILD=$(BUILD) ./tests/campaign/campaign.sh 100 $(SEED)

check-load: all
	@BUILD=$(BUILD) ./tests/campaign/load.sh

check-valgrind: all $(UNIT_BINS)
	@BUILD=$(BUILD) VALGRIND=1 ./tests/run.sh --unit-only

demo: all
	@./tests/lib/demo.sh
	@./tests/lib/demo-k8s.sh

bench: all
	@./bench/run.sh

fuzz: deps
	@./tests/fuzz/run.sh

clean:
	rm -rf build build-asan build-fuzz
