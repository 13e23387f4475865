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
# Quiet here (`make check` installs the packages before it builds); a build with a package
# missing stops at the pkgcheck step with pkg-config's own message.
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)
# The plugin directory carries the ABI line: the oldest plugin ABI this host still loads (a
# plugin built for any ABI from there to MD_PLUGIN_ABI_VERSION works).
ABI_MAJOR := $(shell sed -n 's/^\#define MD_PLUGIN_ABI_OLDEST \([0-9]*\).*/\1/p' include/memdissect/plugin.h)
# Libraries and plugins go to $(PREFIX)/$(LIBSUBDIR): lib, or lib/<multiarch> (debian/rules).
LIBSUBDIR ?= lib
PLUGIN_SUBDIR := $(LIBSUBDIR)/memdissect/$(ABI_MAJOR)/plugins
PLUGIN_INSTALL_DIR := $(PREFIX)/$(PLUGIN_SUBDIR)
VERSION := $(shell sed -n 's/^\#define MEMDISSECT_VERSION "\(.*\)"/\1/p' src/main.c)

WARN := -Wall -Wextra -Wshadow -Wformat=2 -Werror
CFLAGS_ALL := -std=gnu11 -D_GNU_SOURCE $(OPT) -g -fPIC $(WARN) $(SANFLAGS) -MMD -MP -Iinclude -Iattach -Isrc \
	$(PKG_CFLAGS) $(CPPFLAGS) $(CFLAGS)
LDFLAGS_ALL := $(SANFLAGS) $(LDFLAGS)
LIBS_ALL := $(PKG_LIBS) -ldl -lpthread -lm

CORE_SRCS := $(wildcard attach/*.c) $(filter-out src/main.c,$(wildcard src/*.c))
CORE_OBJS := $(CORE_SRCS:%.c=$(BUILD)/%.o)
MAIN_OBJ := $(BUILD)/src/main.o

# plugins/common/ is no plugin: code several plugins compile in (read_ahead.c, a reader thread).
PLUGIN_NAMES := $(filter-out common,$(notdir $(wildcard plugins/*)))
PLUGIN_SOS := $(PLUGIN_NAMES:%=$(BUILD)/plugins/%.so)

TEST_SRCS := $(wildcard tests/check_*.c)
TEST_OBJS := $(TEST_SRCS:%.c=$(BUILD)/%.o)
TARGET_SRCS := $(wildcard tests/targets/*.c)
TARGET_BINS := $(TARGET_SRCS:tests/targets/%.c=$(BUILD)/targets/%) \
	$(BUILD)/targets/glibc_truth_static $(BUILD)/targets/glibc_truth_static_stripped \
	$(BUILD)/targets/ia32 $(BUILD)/targets/mimalloc_truth_static $(BUILD)/targets/mimalloc_truth_secure \
	$(BUILD)/targets/mimalloc_truth_static_stripped \
	$(BUILD)/targets/libsymx5.so $(BUILD)/targets/libsymx4.so
# musl mallocng targets (tests/check_musl.c), built with musl-gcc when it is installed.
MUSL_GCC := $(shell command -v musl-gcc 2>/dev/null)
ifneq ($(MUSL_GCC),)
TARGET_BINS += $(BUILD)/targets/musl_truth_static $(BUILD)/targets/musl_truth_static_stripped \
	$(BUILD)/targets/musl_truth_dynamic
endif

.PHONY: all deps check check-normal check-asan test demo bench install clean fuzz pkgcheck

all: memdissect-bin plugins

# Every object depends on it (order-only): a missing library says so in pkg-config's words.
pkgcheck:
	@pkg-config --print-errors --exists $(PKGS)

memdissect-bin: $(BUILD)/memdissect
ifeq ($(SANITIZE),0)
	@ln -sf $(BUILD)/memdissect memdissect
endif

plugins: $(PLUGIN_SOS)

# The executable exports only the plugin ABI: the functions declared in the ABI headers (a
# dynamic list made from them), nothing else of the core.
ABI_HEADERS := include/memdissect/error.h include/memdissect/node.h include/memdissect/target.h \
	include/memdissect/plugin.h
$(BUILD)/abi.list: $(ABI_HEADERS)
	@mkdir -p $(dir $@)
	{ echo '{'; sed -n 's/.*\b\(md_[a-z0-9_]*\) *(.*/\1;/p; s/^extern .*\b\(md_[a-z0-9_]*\);.*/\1;/p' $^ | \
		grep -v '^md_plugin_entry;' | sort -u; echo '};'; } > $@

$(BUILD)/memdissect: $(MAIN_OBJ) $(CORE_OBJS) $(BUILD)/abi.list
	$(CC) $(LDFLAGS_ALL) -Wl,--dynamic-list=$(BUILD)/abi.list -o $@ $(MAIN_OBJ) $(CORE_OBJS) $(LIBS_ALL)

# The plugin directory compiled in: the exact PREFIX of this build; the executable also looks
# in ../lib/memdissect/<ABI>/plugins next to itself, so an install under another PREFIX works.
$(BUILD)/src/plugins.o: CFLAGS_ALL += -DMD_PLUGIN_DIR='"$(PLUGIN_INSTALL_DIR)"' -DMD_PLUGIN_SUBDIR='"$(PLUGIN_SUBDIR)"'

$(BUILD)/%.o: %.c | pkgcheck
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c -o $@ $<

# A plugin is every .c under plugins/<name>/ and plugins/common/, linked into <name>.so; it resolves
# md_* in the host.
.SECONDEXPANSION:
$(BUILD)/plugins/%.so: $$(wildcard plugins/%/*.c) $$(wildcard plugins/%/*.h) $(wildcard plugins/common/*.c) \
		$(wildcard plugins/common/*.h) $(wildcard include/memdissect/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -MMD -MP,$(CFLAGS_ALL)) -Iplugins/$* -Iplugins/common -shared -o $@ $(filter %.c,$^) $(LDFLAGS_ALL) $(PKG_LIBS)

# Plugins used only by the tests (wrong ABI, no entry point, a toy example).
TESTPLUGIN_SOS := $(patsubst tests/plugins/%.c,$(BUILD)/testplugins/%.so,$(wildcard tests/plugins/*.c))
$(BUILD)/testplugins/%.so: tests/plugins/%.c $(wildcard include/memdissect/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -MMD -MP,$(CFLAGS_ALL)) -shared -o $@ $< $(LDFLAGS_ALL)
# The SDK example, built in tree too, for the layered-claims test (its pool inside a glibc chunk).
TESTPLUGIN_SOS += $(BUILD)/testplugins/bumppool.so
$(BUILD)/testplugins/bumppool.so: examples/plugin/bumppool.c $(wildcard include/memdissect/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -MMD -MP,$(CFLAGS_ALL)) -shared -o $@ $< $(LDFLAGS_ALL)

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
# The shared objects symx_truth dlopens (C++: namespaced types, bit-fields, dynamic TLS), with
# DWARF 5 and with DWARF 4 (GCC's DW_AT_bit_offset form of bit-fields).
$(BUILD)/targets/libsymx%.so: tests/targets/symx/libsymx.cc
	@mkdir -p $(dir $@)
	$(CXX) -O1 -g -gdwarf-$* -fPIC -shared -Wall -Wextra -Werror -o $@ $<
$(BUILD)/targets/symx_truth: $(BUILD)/targets/libsymx5.so $(BUILD)/targets/libsymx4.so
TARGET_LDLIBS_symx_truth := -ldl
# A 32-bit process, from assembly (binutils only: no gcc-multilib).
$(BUILD)/targets/ia32: tests/targets/ia32.S
	@mkdir -p $(dir $@)
	as --32 -o $@.o $<
	ld -m elf_i386 -static -o $@ $@.o
	rm -f $@.o
# musl mallocng ground truth: static with .symtab, the same stripped, and on ld-musl (issue 17).
MUSL_TARGET_FLAGS := -std=gnu11 -D_GNU_SOURCE -O1 -g -Wall -Wextra -Werror
$(BUILD)/targets/musl_truth_static: tests/targets/musl/musl_truth.c tests/targets/target_common.h
	@mkdir -p $(dir $@)
	$(MUSL_GCC) $(MUSL_TARGET_FLAGS) -static -o $@ $<
$(BUILD)/targets/musl_truth_static_stripped: $(BUILD)/targets/musl_truth_static
	strip -o $@ $<
$(BUILD)/targets/musl_truth_dynamic: tests/targets/musl/musl_truth.c tests/targets/target_common.h
	@mkdir -p $(dir $@)
	$(MUSL_GCC) $(MUSL_TARGET_FLAGS) -o $@ $<
TARGET_LDLIBS_jemalloc_truth := -ljemalloc
TARGET_LDLIBS_jemalloc_small := -ljemalloc
TARGET_LDLIBS_mimalloc_truth := -l:libmimalloc.so.2
# mimalloc 2.0.9 built from Debian's source package as static libraries, release and MI_SECURE
# (scripts/mimalloc-build.sh; Debian ships no libmimalloc.a), cached in build/mimalloc for both
# builds (the targets are not sanitized). When the source cannot be had, the targets are not
# made and the mimalloc suite says why (a required skip).
MIMALLOC_STATIC := build/mimalloc
$(MIMALLOC_STATIC)/release/libmimalloc.a $(MIMALLOC_STATIC)/secure/libmimalloc-secure.a &: scripts/mimalloc-build.sh
	@./scripts/mimalloc-build.sh $(MIMALLOC_STATIC) || echo "memdissect: mimalloc 2.0.9 static libraries not built (scripts/mimalloc-build.sh)" >&2
$(BUILD)/targets/mimalloc_truth_static: tests/targets/mimalloc_truth.c tests/targets/target_common.h $(MIMALLOC_STATIC)/release/libmimalloc.a
$(BUILD)/targets/mimalloc_truth_secure: tests/targets/mimalloc_truth.c tests/targets/target_common.h $(MIMALLOC_STATIC)/secure/libmimalloc-secure.a
$(BUILD)/targets/mimalloc_truth_static $(BUILD)/targets/mimalloc_truth_secure:
	@mkdir -p $(dir $@)
	@if [ -f $(lastword $^) ]; then echo "$(CC) ... -o $@ $< $(lastword $^)"; \
		$(CC) -std=gnu11 -D_GNU_SOURCE -O1 -g -Wall -Wextra -Werror -pthread $(if $(findstring secure,$@),-DTRUTH_PAGE_SHIFT=16) \
			-o $@ $< $(lastword $^); \
	else rm -f $@; fi
$(BUILD)/targets/mimalloc_truth_static_stripped: $(BUILD)/targets/mimalloc_truth_static
	@if [ -f $< ]; then strip -o $@ $<; else rm -f $@; fi
TARGET_LDLIBS_jemalloc_corrupt := -ljemalloc
TARGET_LDLIBS_pyembed := -I/usr/include/python3.11 -lpython3.11
$(BUILD)/targets/jemalloc_static: tests/targets/jemalloc_truth.c
$(BUILD)/targets/jemalloc_truth $(BUILD)/targets/jemalloc_small $(BUILD)/targets/jemalloc_static: tests/targets/jemalloc_common.h
TARGET_LDLIBS_jemalloc_static := -Wl,-Bstatic -ljemalloc -Wl,-Bdynamic -lm -lstdc++ -ldl
# gperftools tcmalloc 2.10 (issue 15): one source, linked to each library, to none (LD_PRELOAD)
# and statically to libtcmalloc_minimal.a.
TARGET_LDLIBS_tcmalloc_truth := -ltcmalloc_minimal
$(BUILD)/targets/tcmalloc_truth_full $(BUILD)/targets/tcmalloc_truth_plain $(BUILD)/targets/tcmalloc_truth_static: tests/targets/tcmalloc_truth.c
TARGET_LDLIBS_tcmalloc_truth_full := -ltcmalloc
TARGET_LDLIBS_tcmalloc_truth_static := -Wl,-Bstatic -ltcmalloc_minimal -Wl,-Bdynamic -lstdc++ -lm
TARGET_LDLIBS_tcmalloc_truth_plain :=

# The glibc version suite (tests/check_glibc_versions.c): glibc_versions_truth linked against every
# fixture glibc in $(GLIBC_FIXTURES)/<version> (libc.so.6 with .symtab, libc.so.6.stripped), built
# from the upstream tags. A program compiled here must be linked with that build's start files
# (link/) and loader; truth_stripped finds the stripped copy first, under the name libc.so.6.
# Nothing is built when the folder is absent (the suite then skips, and fails under CI=true).
MD_GLIBC_FIXTURES ?= $(CURDIR)/../shared/fixtures/glibc
GLIBC_FIXTURES := $(abspath $(MD_GLIBC_FIXTURES))
GLIBCVER_VERSIONS := $(patsubst $(GLIBC_FIXTURES)/%/libc.so.6,%,$(wildcard $(GLIBC_FIXTURES)/2.*/libc.so.6))
GLIBCVER := $(BUILD)/targets/glibcver
GLIBCVER_BINS := $(foreach v,$(GLIBCVER_VERSIONS),$(GLIBCVER)/$(v)/truth $(GLIBCVER)/$(v)/truth_stripped \
	$(GLIBCVER)/$(v)/stripped/libc.so.6)
# The programs name the fixture folder (loader, run path): relinked when it moves.
.PHONY: glibcver-always
$(GLIBCVER)/fixtures.path: glibcver-always
	@mkdir -p $(dir $@)
	@echo '$(GLIBC_FIXTURES)' | cmp -s - $@ || echo '$(GLIBC_FIXTURES)' > $@
$(GLIBCVER)/truth.o: tests/targets/glibc_versions_truth.c tests/targets/target_common.h
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -D_GNU_SOURCE -O1 -g -Wall -Wextra -Werror -fno-stack-protector -c -o $@ $<
# $(1): output, $(2): the version, $(3): the run path (directories searched for libc.so.6 first).
glibcver_link = $(CC) -no-pie -nostdlib -o $(1) $(GLIBC_FIXTURES)/$(2)/link/crt1.o $(GLIBC_FIXTURES)/$(2)/link/crti.o \
	$$($(CC) -print-file-name=crtbegin.o) $(GLIBCVER)/truth.o -Wl,-rpath-link=$(GLIBC_FIXTURES)/$(2) \
	$(GLIBC_FIXTURES)/$(2)/libc.so.6 $(wildcard $(GLIBC_FIXTURES)/$(2)/libpthread.so.0 $(GLIBC_FIXTURES)/$(2)/link/libpthread_nonshared.a) \
	$(GLIBC_FIXTURES)/$(2)/link/libc_nonshared.a $(GLIBC_FIXTURES)/$(2)/ld-linux-x86-64.so.2 -lgcc \
	$$($(CC) -print-file-name=crtend.o) $(GLIBC_FIXTURES)/$(2)/link/crtn.o \
	-Wl,--dynamic-linker=$(GLIBC_FIXTURES)/$(2)/ld-linux-x86-64.so.2 -Wl,-rpath=$(3)
$(GLIBCVER)/%/truth: $(GLIBCVER)/truth.o $(GLIBCVER)/fixtures.path $(GLIBC_FIXTURES)/%/libc.so.6
	@mkdir -p $(dir $@)
	$(call glibcver_link,$@,$*,$(GLIBC_FIXTURES)/$*)
$(GLIBCVER)/%/stripped/libc.so.6: $(GLIBC_FIXTURES)/%/libc.so.6.stripped
	@mkdir -p $(dir $@)
	install -m 755 $< $@
$(GLIBCVER)/%/truth_stripped: $(GLIBCVER)/truth.o $(GLIBCVER)/fixtures.path $(GLIBCVER)/%/stripped/libc.so.6
	$(call glibcver_link,$@,$*,$(abspath $(GLIBCVER))/$*/stripped:$(GLIBC_FIXTURES)/$*)

$(BUILD)/tests/check_all: $(TEST_OBJS) $(CORE_OBJS)
	$(CC) $(LDFLAGS_ALL) -rdynamic -o $@ $^ $(CHECK_LIBS) $(LIBS_ALL)

$(BUILD)/tests/%.o: tests/%.c | pkgcheck
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(CHECK_CFLAGS) -Itests -c -o $@ $<

deps:
	@./scripts/deps.sh

# Run the suite from this build tree. Check prints its summary line.
test: all $(BUILD)/tests/check_all $(TARGET_BINS) $(TESTPLUGIN_SOS) $(GLIBCVER_BINS)
	MEMDISSECT=$(abspath $(BUILD))/memdissect MD_TARGETS=$(abspath $(BUILD))/targets \
	MD_GLIBC_FIXTURES=$(GLIBC_FIXTURES) \
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

# The plugin SDK goes with it: the ABI headers and memdissect-plugin.pc (examples/plugin builds
# against them out of the tree).
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PLUGIN_INSTALL_DIR) \
		$(DESTDIR)$(PREFIX)/include/memdissect $(DESTDIR)$(PREFIX)/$(LIBSUBDIR)/pkgconfig
	install -m 755 $(BUILD)/memdissect $(DESTDIR)$(PREFIX)/bin/memdissect
	install -m 644 $(PLUGIN_SOS) $(DESTDIR)$(PLUGIN_INSTALL_DIR)/
	install -m 644 $(ABI_HEADERS) include/memdissect/figures.h $(DESTDIR)$(PREFIX)/include/memdissect/
	install -d $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/bash-completion/completions
	install -m 644 docs/memdissect.1 $(DESTDIR)$(PREFIX)/share/man/man1/memdissect.1
	install -m 644 scripts/completion/memdissect.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/memdissect
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@ABI@|$(ABI_MAJOR)|g' -e 's|@PLUGIN_SUBDIR@|$(PLUGIN_SUBDIR)|g' \
		-e 's|@VERSION@|$(VERSION)|g' memdissect-plugin.pc.in > $(DESTDIR)$(PREFIX)/$(LIBSUBDIR)/pkgconfig/memdissect-plugin.pc

# The Debian packages memdissect and memdissect-dev (debian/), built from a copy of the tree in
# $(BUILD)/deb, then checked with lintian; the .deb files end up in $(BUILD)/deb.
.PHONY: deb
deb:
	rm -rf $(BUILD)/deb && mkdir -p $(BUILD)/deb/memdissect-$(VERSION)
	if [ -d .git ] || [ -f .git ]; then git ls-files -co --exclude-standard -z; \
	else find . -path ./build -prune -o -path ./build-asan -prune -o -type f -print0; fi | \
		tar --null -T - -cf - | tar -xf - -C $(BUILD)/deb/memdissect-$(VERSION)
	cd $(BUILD)/deb/memdissect-$(VERSION) && DEB_BUILD_OPTIONS="parallel=2 nocheck" dpkg-buildpackage -us -uc -b
	lintian --fail-on error $(BUILD)/deb/memdissect_$(VERSION)_*.changes

clean:
	rm -rf build build-asan memdissect

# Header dependencies, from -MMD.
-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
