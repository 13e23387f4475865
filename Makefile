# memdissect — plain GNU make with pkg-config.
#   make            build ./memdissect and its plugins
#   make check      install missing packages, run the Check suite, then again under ASan+UBSan
#   make demo       install missing packages, build, attach to the bundled demo target
#   make bench      benchmarks, results in docs/performance.md
#   make install    PREFIX=/usr/local DESTDIR=

PREFIX ?= /usr/local
DESTDIR ?=
CC ?= cc
SANITIZE ?= 0

ifeq ($(SANITIZE),1)
BUILD ?= build-asan
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT := -O1
else
BUILD ?= build
SANFLAGS :=
OPT := -O2
endif

PKGS := libdw libelf capstone libunwind-ptrace
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)

WARN := -Wall -Wextra -Wshadow -Wformat=2 -Werror
CFLAGS_ALL := -std=gnu11 -D_GNU_SOURCE $(OPT) -g -fPIC $(WARN) $(SANFLAGS) -Iinclude -Iattach -Isrc $(PKG_CFLAGS) \
	-DMD_PLUGIN_DIR='"$(PREFIX)/lib/memdissect/plugins"' $(CFLAGS)
LDFLAGS_ALL := $(SANFLAGS) $(LDFLAGS)
LIBS_ALL := $(PKG_LIBS) -ldl -lpthread -lm

CORE_SRCS := $(wildcard attach/*.c) $(filter-out src/main.c,$(wildcard src/*.c))
CORE_OBJS := $(CORE_SRCS:%.c=$(BUILD)/%.o)
MAIN_OBJ := $(BUILD)/src/main.o

PLUGIN_NAMES := $(notdir $(wildcard plugins/*))
PLUGIN_SOS := $(PLUGIN_NAMES:%=$(BUILD)/plugins/%.so)

TEST_SRCS := $(wildcard tests/check_*.c)
TEST_OBJS := $(TEST_SRCS:%.c=$(BUILD)/%.o)
TARGET_SRCS := $(wildcard tests/targets/*.c)
TARGET_BINS := $(TARGET_SRCS:tests/targets/%.c=$(BUILD)/targets/%) \
	$(BUILD)/targets/glibc_truth_static $(BUILD)/targets/glibc_truth_static_stripped \
	$(BUILD)/targets/ia32

.PHONY: all deps check check-normal check-asan test demo bench install clean fuzz

all: memdissect-bin plugins

memdissect-bin: $(BUILD)/memdissect
ifeq ($(SANITIZE),0)
	@ln -sf $(BUILD)/memdissect memdissect
endif

plugins: $(PLUGIN_SOS)

$(BUILD)/memdissect: $(MAIN_OBJ) $(CORE_OBJS)
	$(CC) $(LDFLAGS_ALL) -rdynamic -o $@ $^ $(LIBS_ALL)

$(BUILD)/%.o: %.c $(wildcard include/memdissect/*.h attach/*.h src/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c -o $@ $<

# A plugin is every .c under plugins/<name>/, linked into <name>.so; it resolves md_* in the host.
.SECONDEXPANSION:
$(BUILD)/plugins/%.so: $$(wildcard plugins/%/*.c) $$(wildcard plugins/%/*.h) $(wildcard include/memdissect/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Iplugins/$* -shared -o $@ $(filter %.c,$^) $(LDFLAGS_ALL) $(PKG_LIBS)

# Plugins used only by the tests (wrong ABI, no entry point, a toy example).
TESTPLUGIN_SOS := $(patsubst tests/plugins/%.c,$(BUILD)/testplugins/%.so,$(wildcard tests/plugins/*.c))
$(BUILD)/testplugins/%.so: tests/plugins/%.c $(wildcard include/memdissect/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -shared -o $@ $< $(LDFLAGS_ALL)

# Test targets: plain programs, no sanitizer (they are the inspected processes, not the tool).
$(BUILD)/targets/%: tests/targets/%.c tests/targets/target_common.h
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -D_GNU_SOURCE -O1 -g -Wall -Wextra -Werror -pthread -o $@ $< $(TARGET_LDLIBS_$*)
# The glibc ground truth linked statically, with its .symtab and stripped (issue 4).
$(BUILD)/targets/glibc_truth_static: tests/targets/glibc_truth.c tests/targets/target_common.h
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -D_GNU_SOURCE -O1 -g -Wall -Wextra -Werror -pthread -static -o $@ $<
$(BUILD)/targets/glibc_truth_static_stripped: $(BUILD)/targets/glibc_truth_static
	strip -o $@ $<
# A 32-bit process, from assembly (binutils only: no gcc-multilib).
$(BUILD)/targets/ia32: tests/targets/ia32.S
	@mkdir -p $(dir $@)
	as --32 -o $@.o $<
	ld -m elf_i386 -static -o $@ $@.o
	rm -f $@.o
TARGET_LDLIBS_jemalloc_truth := -ljemalloc
TARGET_LDLIBS_jemalloc_corrupt := -ljemalloc
$(BUILD)/targets/jemalloc_static: tests/targets/jemalloc_truth.c
TARGET_LDLIBS_jemalloc_static := -Wl,-Bstatic -ljemalloc -Wl,-Bdynamic -lm -lstdc++ -ldl

$(BUILD)/tests/check_all: $(TEST_OBJS) $(CORE_OBJS)
	$(CC) $(LDFLAGS_ALL) -rdynamic -o $@ $^ $(CHECK_LIBS) $(LIBS_ALL)

$(BUILD)/tests/%.o: tests/%.c tests/tests.h $(wildcard include/memdissect/*.h attach/*.h src/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(CHECK_CFLAGS) -Itests -c -o $@ $<

deps:
	@./scripts/deps.sh

# Run the suite from this build tree. Check prints its summary line.
test: all $(BUILD)/tests/check_all $(TARGET_BINS) $(TESTPLUGIN_SOS)
	MEMDISSECT=$(abspath $(BUILD))/memdissect MD_TARGETS=$(abspath $(BUILD))/targets \
	MD_TESTDATA=$(CURDIR)/tests/data MEMDISSECT_PLUGIN_PATH=$(abspath $(BUILD))/plugins \
	$(if $(filter 1,$(SANITIZE)),ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 MD_SANITIZED=1) \
	$(BUILD)/tests/check_all

check: deps
	$(MAKE) test
	$(MAKE) SANITIZE=1 test

demo: deps
	$(MAKE) all $(BUILD)/targets/demo
	./scripts/demo.sh $(BUILD)

bench: deps
	$(MAKE) all
	./bench/run.sh $(BUILD)

fuzz: deps
	./scripts/fuzz.sh

# The hardening suite with full counts (about 2 min); figures in $(BUILD)/stress-figures.txt.
.PHONY: stress
stress: all $(BUILD)/tests/check_all $(TARGET_BINS)
	./scripts/stress.sh $(BUILD)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/memdissect/plugins
	install -m 755 $(BUILD)/memdissect $(DESTDIR)$(PREFIX)/bin/memdissect
	install -m 644 $(PLUGIN_SOS) $(DESTDIR)$(PREFIX)/lib/memdissect/plugins/

clean:
	rm -rf build build-asan memdissect

# The heuristic locator's test compiles the locator itself in (with renamed entry points).
$(BUILD)/tests/check_glibc_heuristic.o: plugins/glibc/locate_heuristic.c plugins/glibc/glibc_locate.h
