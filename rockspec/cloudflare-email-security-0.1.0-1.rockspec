-- Built from a checkout: `luarocks make --deps-mode=none rockspec/cloudflare-email-security-0.1.0-1.rockspec`
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
}
build = {
  type = "builtin",
  modules = {
    ["cloudflare.email_security"] = "lua/cloudflare/email_security.lua",
    ["cloudflare.email_security.cli"] = "lua/cloudflare/email_security/cli.lua",
    ["cloudflare.email_security.cli_output"] = "lua/cloudflare/email_security/cli_output.lua",
    ["cloudflare.email_security.client"] = "lua/cloudflare/email_security/client.lua",
    ["cloudflare.email_security.config"] = "lua/cloudflare/email_security/config.lua",
    ["cloudflare.email_security.errors"] = "lua/cloudflare/email_security/errors.lua",
    ["cloudflare.email_security.help"] = "lua/cloudflare/email_security/help.lua",
    ["cloudflare.email_security.log"] = "lua/cloudflare/email_security/log.lua",
    ["cloudflare.email_security.nginx_transport"] = "lua/cloudflare/email_security/nginx_transport.lua",
    ["cloudflare.email_security.pacer"] = "lua/cloudflare/email_security/pacer.lua",
    ["cloudflare.email_security.paging"] = "lua/cloudflare/email_security/paging.lua",
    ["cloudflare.email_security.policy"] = "lua/cloudflare/email_security/policy.lua",
    ["cloudflare.email_security.pretty"] = "lua/cloudflare/email_security/pretty.lua",
    ["cloudflare.email_security.resource"] = "lua/cloudflare/email_security/resource.lua",
    ["cloudflare.email_security.resources.allow_policies"] = "lua/cloudflare/email_security/resources/allow_policies.lua",
    ["cloudflare.email_security.resources.block_senders"] = "lua/cloudflare/email_security/resources/block_senders.lua",
    ["cloudflare.email_security.resources.content_policies"] = "lua/cloudflare/email_security/resources/content_policies.lua",
    ["cloudflare.email_security.resources.domains"] = "lua/cloudflare/email_security/resources/domains.lua",
    ["cloudflare.email_security.resources.impersonation_registry"] = "lua/cloudflare/email_security/resources/impersonation_registry.lua",
    ["cloudflare.email_security.resources.names"] = "lua/cloudflare/email_security/resources/names.lua",
    ["cloudflare.email_security.resources.sending_domain_restrictions"] = "lua/cloudflare/email_security/resources/sending_domain_restrictions.lua",
    ["cloudflare.email_security.resources.trusted_domains"] = "lua/cloudflare/email_security/resources/trusted_domains.lua",
    ["cloudflare.email_security.resources.url_ignore_patterns"] = "lua/cloudflare/email_security/resources/url_ignore_patterns.lua",
    ["cloudflare.email_security.retry"] = "lua/cloudflare/email_security/retry.lua",
    ["cloudflare.email_security.schema.body"] = "lua/cloudflare/email_security/schema/body.lua",
    ["cloudflare.email_security.schema.compile"] = "lua/cloudflare/email_security/schema/compile.lua",
    ["cloudflare.email_security.schema.validate"] = "lua/cloudflare/email_security/schema/validate.lua",
    ["cloudflare.email_security.snapshot"] = "lua/cloudflare/email_security/snapshot.lua",
    ["cloudflare.email_security.sync.apply"] = "lua/cloudflare/email_security/sync/apply.lua",
    ["cloudflare.email_security.sync.entries"] = "lua/cloudflare/email_security/sync/entries.lua",
    ["cloudflare.email_security.sync.keys"] = "lua/cloudflare/email_security/sync/keys.lua",
    ["cloudflare.email_security.sync.plan"] = "lua/cloudflare/email_security/sync/plan.lua",
    ["cloudflare.email_security.version"] = "lua/cloudflare/email_security/version.lua",
    ["cloudflare.email_security.core"] = {
      sources = { "src/core.c", "src/http.c", "src/envelope.c", "src/buffer.c", "src/clock.c" },
      libraries = { "curl", "pthread" },
      incdirs = { "$(CURL_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)" },
    },
  },
  install = {
    bin = { ["cloudflare-email-security"] = "bin/cloudflare-email-security" },
  },
}
