# Builds the C core for one Lua version at a time (LUA_VERSION=5.4 by
# default), runs the specs against the local API emulator, and installs into
# the layout Lua's default package paths search.

# LuaJIT: make LUA_VERSION=5.1 LUA=luajit LUA_PC=luajit
LUA_VERSION ?= 5.4
LUA         ?= lua$(LUA_VERSION)
LUA_PC      ?= lua$(LUA_VERSION)
PREFIX      ?= /usr/local
DESTDIR     ?=
PKG_CONFIG  ?= pkg-config
BUSTED      ?= $(shell command -v busted 2>/dev/null || echo /usr/bin/busted)

LUA_CFLAGS  ?= $(shell $(PKG_CONFIG) --cflags $(LUA_PC) 2>/dev/null || echo -I/usr/include/lua$(LUA_VERSION))
CURL_CFLAGS ?= $(shell $(PKG_CONFIG) --cflags libcurl 2>/dev/null)
CURL_LIBS   ?= $(shell $(PKG_CONFIG) --libs libcurl 2>/dev/null || echo -lcurl)
# libunistring: lower-casing beyond ASCII (src/casefold.c)
TEXT_LIBS   ?= -lunistring
# zlib: gzip and deflate answers for the nginx transport (src/http.c,
# es_content_decode); libcurl decodes them for the other with the same zlib
ZLIB_LIBS   ?= $(shell $(PKG_CONFIG) --libs zlib 2>/dev/null || echo -lz)

CFLAGS      ?= -O2 -g
WARNINGS     = -Wall -Wextra -pedantic -std=c99 -Werror
# A Lua module takes the Lua API from the host that loads it, so liblua is
# not linked; only luaopen_* is visible outside the library.
ALL_CFLAGS   = $(WARNINGS) $(CFLAGS) -fPIC -fvisibility=hidden -pthread $(LUA_CFLAGS) $(CURL_CFLAGS)
LDFLAGS     ?=
ALL_LDFLAGS  = -shared -pthread $(LDFLAGS)

BUILD       ?= build/$(LUA)
OBJDIR       = $(BUILD)/obj
MODULE       = $(BUILD)/cloudflare/email_security/core.so
SOURCES      = $(wildcard src/*.c)
OBJECTS      = $(patsubst src/%.c,$(OBJDIR)/%.o,$(SOURCES))
HEADERS      = $(wildcard src/*.h)
LUA_FILES    = $(shell find lua -name '*.lua' | sort)

C_HOST       = build/c_host/two_states

LUA_DIR      = $(DESTDIR)$(PREFIX)/share/lua/$(LUA_VERSION)
LIB_DIR      = $(DESTDIR)$(PREFIX)/lib/lua/$(LUA_VERSION)
# where the installed tool looks for them when it runs (no DESTDIR: that is
# only where a package is staged)
INSTALLED_LUA_DIR ?= $(PREFIX)/share/lua/$(LUA_VERSION)
INSTALLED_LIB_DIR ?= $(PREFIX)/lib/lua/$(LUA_VERSION)
BIN_DIR      = $(DESTDIR)$(PREFIX)/bin

.PHONY: all deps deps-checks test test-unit install install-files rock-install nginx-install nginx-demo uninstall clean lint demo demo-real-api emulator check-memory check-asan check-threads spec-hosts fuzz soak bench bench-peers bench-doc repl resources

all: $(MODULE)

$(OBJDIR)/%.o: src/%.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(MODULE): $(OBJECTS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $(OBJECTS) $(CURL_LIBS) $(TEXT_LIBS) $(ZLIB_LIBS)

# Installs what is missing (Debian packages; Prism from npm for the specs).
# The build then runs in a new make, which sees the freshly installed tools.
deps:
	@bash .ci/deps --lua=$(notdir $(LUA))

# The README's test command. Prints `N passed, N failed` last.
test:
	@bash .ci/deps --prism --hosts --lua=$(notdir $(LUA))
	@$(MAKE) --no-print-directory all spec-hosts
	LUA=$(LUA) $(LUA) $(BUSTED) --cpath='./$(BUILD)/?.so' $(BUSTED_ARGS)

# The unit tier alone (spec/unit: no process, no socket), in about a
# second; spec/README.md says what each tier holds.
test-unit: all
	LUA=$(LUA) $(LUA) $(BUSTED) --cpath='./$(BUILD)/?.so' $(BUSTED_ARGS) spec/unit

# The whole suite under valgrind memcheck: any error, or a definite leak,
# fails it.
# What the specs run besides the module under test: the C host and the
# REPL specs are Lua 5.4 hosts, and nginx runs LuaJIT, whatever Lua runs
# the specs.
spec-hosts: $(C_HOST)
	@$(MAKE) --no-print-directory -s all LUA_VERSION=5.4 LUA=lua5.4 LUA_PC=lua5.4 BUILD=build/lua5.4
	@$(MAKE) --no-print-directory -s all LUA_VERSION=5.1 LUA=luajit LUA_PC=luajit BUILD=build/luajit

# What the checks need on a fresh machine: the specs' packages and
# valgrind, clang's sanitizer runtimes.
deps-checks:
	@bash .ci/deps --prism --hosts --checks --lua=$(notdir $(LUA))

check-memory: deps-checks all spec-hosts
	valgrind -q --error-exitcode=99 --leak-check=full --show-leak-kinds=definite \
		--errors-for-leak-kinds=definite $(LUA) $(BUSTED) --cpath='./$(BUILD)/?.so' $(BUSTED_ARGS)

# The whole suite against a core built with AddressSanitizer and UBSan.
# The interpreter is not instrumented, so the runtimes are preloaded;
# leaks are valgrind's job (check-memory).
ASAN_BUILD = build/asan-$(LUA)
SANITIZE   = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
check-asan: deps-checks spec-hosts
	@$(MAKE) --no-print-directory all BUILD=$(ASAN_BUILD) CFLAGS="-O1 -g $(SANITIZE)" LDFLAGS="$(SANITIZE)"
	LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		$(LUA) $(BUSTED) --cpath='./$(ASAN_BUILD)/?.so' $(BUSTED_ARGS)

# libFuzzer on the envelope decoder (clang), FUZZ_SECONDS long; the seed
# corpus and any input that once failed live in spec/fuzz/corpus.
FUZZ_SECONDS ?= 60
FUZZER = build/fuzz/decode_fuzz
$(FUZZER): spec/fuzz/decode_fuzz.c src/envelope.c src/json_scan.c $(HEADERS)
	@mkdir -p $(dir $@)
	clang -g -O1 -fsanitize=fuzzer,address,undefined $(LUA_CFLAGS) -o $@ \
		spec/fuzz/decode_fuzz.c src/envelope.c src/json_scan.c -llua$(LUA_VERSION)
fuzz: $(FUZZER)
	@mkdir -p build/fuzz/corpus
	$(FUZZER) -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -artifact_prefix=build/fuzz/ \
		build/fuzz/corpus spec/fuzz/corpus

# 100,000 calls against the emulator; fails when resident memory grows by
# 1 MiB or more.
soak: all
	LUA_CPATH='./$(BUILD)/?.so;;' LUA_PATH='./lua/?.lua;./?.lua;;' $(LUA) bench/soak.lua $(SOAK_CALLS)

# The two-thread C host under helgrind (spec/hosts/c_host/helgrind.supp says
# what it lets pass, and why).
check-threads: spec-hosts
	lua5.4 spec/hosts/c_host/check_threads.lua 10

# A C program embedding Lua 5.4 that runs the module in two states on two
# threads (spec/hosts/c_host_spec.lua runs it).
$(C_HOST): spec/hosts/c_host/two_states.c
	@mkdir -p $(dir $@)
	$(CC) $(WARNINGS) -O1 -g $(shell $(PKG_CONFIG) --cflags lua5.4 2>/dev/null) -o $@ $< -llua5.4 -pthread

# The module beside the floor (libcurl plus lua-cjson's decode) and libcurl
# alone, against a loopback nginx (HTTP/1.1, HTTPS with HTTP/1.1 and with
# HTTP/2); bulk work against the emulator; a slow API (50 ms a read, 150 ms
# a write) at 1, 4, 8 and 16 requests in flight, beside libcurl's multi
# interface (bench/libcurl_in_flight.c) and, once bench/peers/install.sh has
# put it in build/peers, the TypeScript SDK (bench/in_flight_bench.lua,
# about 3 minutes); then instructions per call of module and floor
# (callgrind). Prints its tables as doc/performance.md holds them
# (bench/doc.lua).
# The floor embeds the same Lua as the module runs on (LuaJIT too).
FLOOR_BIN = $(BUILD)/bench/floor
$(FLOOR_BIN): bench/floor.c
	@mkdir -p $(dir $@)
	$(CC) $(WARNINGS) -O2 $(LUA_CFLAGS) $(CURL_CFLAGS) -o $@ $< $(CURL_LIBS) \
		$(shell $(PKG_CONFIG) --libs $(LUA_PC) 2>/dev/null || echo -llua$(LUA_VERSION))
# libcurl alone with N requests in flight (no Lua in it: one for every Lua)
IN_FLIGHT_BIN = build/bench/libcurl_in_flight
$(IN_FLIGHT_BIN): bench/libcurl_in_flight.c
	@mkdir -p $(dir $@)
	$(CC) $(WARNINGS) -O2 $(CURL_CFLAGS) -o $@ $< $(CURL_LIBS)
bench:
	@bash .ci/deps --bench --lua=$(notdir $(LUA))
	@$(MAKE) --no-print-directory all $(FLOOR_BIN) $(IN_FLIGHT_BIN) spec-hosts
	LUA=$(LUA) BENCH_FLOOR=$(FLOOR_BIN) LUA_CPATH='./$(BUILD)/?.so;;' $(LUA) bench/run.lua
	LUA=$(LUA) LUA_CPATH='./$(BUILD)/?.so;;' $(LUA) bench/bulk_bench.lua
	LUA=$(LUA) LUA_CPATH='./$(BUILD)/?.so;;' $(LUA) bench/plan_memory.lua
	LUA=$(LUA) BENCH_IN_FLIGHT=$(IN_FLIGHT_BIN) LUA_CPATH='./$(BUILD)/?.so;;' $(LUA) bench/in_flight_bench.lua
	LUA=$(LUA) BENCH_FLOOR=$(FLOOR_BIN) LUA_CPATH='./$(BUILD)/?.so;;' bash bench/instructions.sh

# The module beside Cloudflare's TypeScript SDK on Node (installed from npm
# into build/peers, with Debian's nodejs when the machine has none).
bench-peers:
	@bash .ci/deps --bench --lua=$(notdir $(LUA))
	@bash bench/peers/install.sh
	@$(MAKE) --no-print-directory all spec-hosts
	LUA=$(LUA) LUA_CPATH='./$(BUILD)/?.so;;' $(LUA) bench/peers.lua

# make bench (BENCH_TARGET=bench-peers: make bench-peers), its output kept
# in build/, then its tables written into doc/performance.md in the place
# of the same Lua's (bench/write_doc.lua).
BENCH_TARGET ?= bench
BENCH_OUT     = build/$(BENCH_TARGET)-$(notdir $(LUA)).txt
bench-doc:
	@mkdir -p build
	@bash -c 'set -o pipefail; $(MAKE) --no-print-directory $(BENCH_TARGET) 2>&1 | tee $(BENCH_OUT)'
	$(LUA) bench/write_doc.lua $(BENCH_OUT) doc/performance.md

lint:
	luacheck lua spec examples bench tools emulator

# The resource descriptions, written again from Cloudflare's OpenAPI file
# (OPENAPI=..., default ../shared/openapi/email-security.openapi.json), and
# the reference doc/resources.md from them; commit what changes.
# spec/conformance/resources_spec.lua fails while either differs.
OPENAPI ?= ../shared/openapi/email-security.openapi.json
resources:
	lua5.4 tools/gen_resources.lua $(OPENAPI) lua/cloudflare/email_security/resources
	lua5.4 tools/gen_reference.lua doc/resources.md

# The main job: an update and a delete, on the local emulator (whatever
# credentials the environment holds); then a CSV made the account's allow
# policies by plan and apply (on the emulator too). demo-real-api runs the
# first part against the account and credential of the environment.
demo: deps
	@$(MAKE) --no-print-directory all
	LUA_CPATH='./$(BUILD)/?.so;;' LUA_PATH='./lua/?.lua;./lua/?/init.lua;./?.lua;;' \
		$(LUA) examples/update_and_delete.lua
	@echo
	LUA_CPATH='./$(BUILD)/?.so;;' LUA_PATH='./lua/?.lua;./lua/?/init.lua;./?.lua;;' \
		$(LUA) examples/plan_and_apply.lua

demo-real-api: deps
	@$(MAKE) --no-print-directory all
	DEMO_REAL_API=1 LUA_CPATH='./$(BUILD)/?.so;;' LUA_PATH='./lua/?.lua;./lua/?/init.lua;./?.lua;;' \
		$(LUA) examples/update_and_delete.lua

# Lua 5.4's prompt with es, cf and reg ready (see examples/repl.lua).
repl: deps
	@$(MAKE) --no-print-directory all
	@LUA_CPATH='./$(BUILD)/?.so;;' LUA_PATH='./lua/?.lua;./lua/?/init.lua;./?.lua;;' $(LUA) -i examples/repl.lua

# The emulator on its own, for trying things by hand: PORT=N picks the port
# (default 8787), IDLE=S how many idle seconds it waits before it exits
# (default 300); it prints how to point a client at it, and a line to paste.
emulator: deps
	lua5.4 emulator/main.lua --port $${PORT:-8787} --idle-exit $${IDLE:-300} --banner

# Installs what the build needs first (then builds in a new make, which
# sees the freshly installed headers).
install: deps
	@$(MAKE) --no-print-directory install-files

install-files: $(MODULE)
	@for f in $(LUA_FILES); do \
		dest="$(LUA_DIR)/$${f#lua/}"; \
		mkdir -p "$$(dirname "$$dest")" && cp "$$f" "$$dest" || exit 1; \
	done
	mkdir -p "$(LIB_DIR)/cloudflare/email_security"
	cp $(MODULE) "$(LIB_DIR)/cloudflare/email_security/core.so"
	@# the command-line tool, run by the Lua it was installed for (not for
	@# nginx's), told where its modules went
ifneq ($(INSTALL_CLI),no)
	mkdir -p "$(BIN_DIR)"
	sed -e '1s|.*|#!/usr/bin/env $(LUA)|' \
		-e 's|^local INSTALLED = nil$$|local INSTALLED = { path = "$(INSTALLED_LUA_DIR)/?.lua;$(INSTALLED_LUA_DIR)/?/init.lua", cpath = "$(INSTALLED_LIB_DIR)/?.so" }|' \
		bin/cloudflare-email-security > "$(BIN_DIR)/cloudflare-email-security"
	chmod 755 "$(BIN_DIR)/cloudflare-email-security"
endif

# The module where the LuaJIT of Debian's nginx (libnginx-mod-http-lua)
# finds it by default: /usr/local/share/lua/5.1 and /usr/local/lib/lua/5.1.
# Installs nginx, its Lua module and LuaJIT first when they are missing.
nginx-install:
	@bash .ci/deps --hosts
	@$(MAKE) --no-print-directory install LUA_VERSION=5.1 LUA=luajit LUA_PC=luajit INSTALL_CLI=no

# nginx with the module in front of the local emulator, as whoever runs it
# (examples/nginx/demo.sh): examples/nginx/emulator.conf filled in under
# /tmp, a few requests through it with curl, then up to try by hand for
# IDLE=S idle seconds (300 at a terminal, else 0), PORT=N its port; it stops
# everything when it ends, Ctrl-C included. Installs nginx, its Lua module
# and LuaJIT when missing and builds the core in build/luajit, which nginx
# loads from there: nothing goes into /usr/local.
nginx-demo:
	@bash .ci/deps --hosts
	@$(MAKE) --no-print-directory -s all LUA_VERSION=5.1 LUA=luajit LUA_PC=luajit BUILD=build/luajit
	@bash examples/nginx/demo.sh

# What the rockspec runs (luarocks' make backend, INST_* its directories):
# a build in a throwaway directory, installed, then removed, so that
# nothing is left in the work tree.
rock-install:
	@tmp=$$(mktemp -d) && \
	$(MAKE) --no-print-directory install-files BUILD="$$tmp" LUA="$(LUA)" LUA_CFLAGS="-I$(LUA_INCDIR)" \
		LUA_DIR="$(INST_LUADIR)" LIB_DIR="$(INST_LIBDIR)" BIN_DIR="$(INST_BINDIR)" \
		INSTALLED_LUA_DIR="$(INST_LUADIR)" INSTALLED_LIB_DIR="$(INST_LIBDIR)"; \
	status=$$?; rm -rf "$$tmp"; exit $$status

uninstall:
	rm -rf $(LUA_DIR)/cloudflare/email_security $(LUA_DIR)/cloudflare/email_security.lua
	rm -f $(LIB_DIR)/cloudflare/email_security/core.so
	rm -f $(BIN_DIR)/cloudflare-email-security

clean:
	rm -rf build
