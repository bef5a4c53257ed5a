-- luarocks configuration for a Debian machine: lua-cjson and lua-argparse
-- come from Debian's packages, which luarocks cannot see, so it is told
-- they are there (else it warns that they are missing). Use it as
--   LUAROCKS_CONFIG=rockspec/debian.lua luarocks --lua-version=5.4 make --deps-mode=none \
--     rockspec/cloudflare-email-security-0.1.0-1.rockspec
rocks_provided = {
  ["lua-cjson"] = "2.1.0-1",
  argparse = "0.7.1-1",
}
