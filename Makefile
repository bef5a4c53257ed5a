# Builds the C core for one Lua version at a time (LUA_VERSION=5.4 by
# default), runs the specs against the local API emulator, and installs into
# the layout Lua's default package paths search.

LUA_VERSION ?= 5.4
LUA         ?= lua$(LUA_VERSION)
PREFIX      ?= /usr/local
DESTDIR     ?=
PKG_CONFIG  ?= pkg-config
BUSTED      ?= $(shell command -v busted 2>/dev/null || echo /usr/bin/busted)

LUA_CFLAGS  ?= $(shell $(PKG_CONFIG) --cflags lua$(LUA_VERSION) 2>/dev/null || echo -I/usr/include/lua$(LUA_VERSION))
CURL_CFLAGS ?= $(shell $(PKG_CONFIG) --cflags libcurl 2>/dev/null)
CURL_LIBS   ?= $(shell $(PKG_CONFIG) --libs libcurl 2>/dev/null || echo -lcurl)

CFLAGS      ?= -O2 -g
WARNINGS     = -Wall -Wextra -pedantic -std=c99 -Werror
# A Lua module takes the Lua API from the host that loads it, so liblua is
# not linked; only luaopen_* is visible outside the library.
ALL_CFLAGS   = $(WARNINGS) $(CFLAGS) -fPIC -fvisibility=hidden -pthread $(LUA_CFLAGS) $(CURL_CFLAGS)
LDFLAGS     ?=
ALL_LDFLAGS  = -shared -pthread $(LDFLAGS)

BUILD        = build/lua$(LUA_VERSION)
OBJDIR       = $(BUILD)/obj
MODULE       = $(BUILD)/cloudflare/email_security/core.so
SOURCES      = $(wildcard src/*.c)
OBJECTS      = $(patsubst src/%.c,$(OBJDIR)/%.o,$(SOURCES))
HEADERS      = $(wildcard src/*.h)
LUA_FILES    = $(shell find lua -name '*.lua' | sort)

LUA_DIR      = $(DESTDIR)$(PREFIX)/share/lua/$(LUA_VERSION)
LIB_DIR      = $(DESTDIR)$(PREFIX)/lib/lua/$(LUA_VERSION)

.PHONY: all deps test install uninstall clean lint demo emulator

all: $(MODULE)

$(OBJDIR)/%.o: src/%.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(MODULE): $(OBJECTS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $(OBJECTS) $(CURL_LIBS)

# Installs what is missing (Debian packages; Prism from npm for the specs).
# The build then runs in a new make, which sees the freshly installed tools.
deps:
	@bash .ci/deps

# The README's test command. Prints `N passed, N failed` last.
test:
	@bash .ci/deps --prism
	@$(MAKE) --no-print-directory all
	$(LUA) $(BUSTED) --cpath='./$(BUILD)/?.so' $(BUSTED_ARGS)

lint:
	luacheck lua spec examples

# The main job: an update and a delete, against the real API when
# credentials are set, else against the local emulator.
demo: deps
	@$(MAKE) --no-print-directory all
	LUA_CPATH='./$(BUILD)/?.so;;' LUA_PATH='./lua/?.lua;./lua/?/init.lua;./?.lua;;' \
		$(LUA) examples/update_and_delete.lua

# The emulator on its own, for trying things by hand.
emulator:
	lua5.4 spec/support/emulator.lua --port $${PORT:-8787}

install: $(MODULE)
	@for f in $(LUA_FILES); do \
		dest="$(LUA_DIR)/$${f#lua/}"; \
		mkdir -p "$$(dirname "$$dest")" && cp "$$f" "$$dest" || exit 1; \
	done
	mkdir -p $(LIB_DIR)/cloudflare/email_security
	cp $(MODULE) $(LIB_DIR)/cloudflare/email_security/core.so

uninstall:
	rm -rf $(LUA_DIR)/cloudflare/email_security $(LUA_DIR)/cloudflare/email_security.lua
	rm -f $(LIB_DIR)/cloudflare/email_security/core.so

clean:
	rm -rf build
