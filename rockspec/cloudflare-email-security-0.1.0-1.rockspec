-- Built from a checkout, for Lua 5.4, with Debian's lua-cjson and lua-argparse:
--   LUAROCKS_CONFIG=rockspec/debian.lua luarocks --lua-version=5.4 make --deps-mode=none \
--     rockspec/cloudflare-email-security-0.1.0-1.rockspec
package = "cloudflare-email-security"
version = "0.1.0-1"
-- The project has no public address yet: the host below stands for it (the
-- name is the project's); `luarocks make` from a checkout, as above, does
-- not fetch it.
source = {
  url = "git+https://example.com/cloudflare-email-security-lua.git",
  tag = "v0.1.0",
}
description = {
  summary = "Cloudflare Email Security settings API client: a Lua module with a C core, and a tool",
  detailed = [[
All eight Email Security settings resources of a Cloudflare account (allow
policies, blocked senders, trusted domains, domains, the impersonation registry,
sending domain restrictions, URL ignore patterns, content policies): every call of the
API, listings walked page by page, and plan/apply of a CSV or JSON file with a
dry run first. Requests are checked against the API's schema before they are
sent, answers before they are trusted; bulk work keeps several requests in
flight (libcurl's multi interface, or light threads inside nginx) within the
API's rate limit, and a create is never sent twice. A whole account, or many,
exports to a folder of files and is planned and applied from one, with saved
plans that apply only if nothing moved. HTTP through libcurl, JSON through
lua-cjson; a command-line tool, cloudflare-email-security, comes with it
(tables, JSON, YAML and CSV output; plan, apply, export; shell completion).
]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.1, < 5.5",
  "lua-cjson >= 2.1.0",
  "argparse >= 0.6",
}
external_dependencies = {
  -- Only the library is looked for: Debian keeps curl.h in a multiarch
  -- include directory that the header check does not search, while the
  -- compiler finds it by itself.
  CURL = { library = "curl" },
  -- lower-casing beyond ASCII, for the keys plan matches entries by
  UNISTRING = { library = "unistring" },
  -- gzip and deflate answers inside nginx (libcurl decodes them outside)
  ZLIB = { library = "z" },
}
-- Built by the Makefile in a directory of its own that it removes after
-- (the builtin backend would leave objects and a core.so in the work tree).
build = {
  type = "make",
  build_pass = false,
  install_target = "rock-install",
  -- luarocks asks for its CFLAGS here, though this backend builds in the install pass
  build_variables = { CFLAGS = "$(CFLAGS)" },
  install_variables = {
    CFLAGS = "$(CFLAGS)",
    LUA = "$(LUA)",
    LUA_INCDIR = "$(LUA_INCDIR)",
    INST_LUADIR = "$(LUADIR)",
    INST_LIBDIR = "$(LIBDIR)",
    INST_BINDIR = "$(BINDIR)",
  },
}
