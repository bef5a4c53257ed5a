-- Built from a checkout, for Lua 5.4, with Debian's lua-cjson and lua-argparse:
--   LUAROCKS_CONFIG=rockspec/debian.lua luarocks --lua-version=5.4 make --deps-mode=none \
--     rockspec/cloudflare-email-security-0.1.0-1.rockspec
package = "cloudflare-email-security"
version = "0.1.0-1"
source = {
  url = "git+https://example.com/cloudflare-email-security-lua.git",
  tag = "v0.1.0",
}
description = {
  summary = "Cloudflare Email Security settings API client: a Lua module with a C core",
  detailed = [[
Creates, reads, updates, deletes and lists entries of an account's Cloudflare
Email Security impersonation registry. HTTP through libcurl (one reused handle
per client), JSON through lua-cjson, the envelope checked and decoded in C,
requests validated against the published schema before they are sent.
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
