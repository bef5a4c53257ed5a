-- cloudflare.email_security: a client for Cloudflare's Email Security
-- settings API. new(opts) makes a client; null is JSON null (lua-cjson's),
-- to clear a nullable field; resources lists the settings resources, each a
-- field of a client (cf.allow_policies, ...).

local core = require("cloudflare.email_security.core")
local client = require("cloudflare.email_security.client")
local errors = require("cloudflare.email_security.errors")

-- The resource names, in order: a copy, so that no caller can change the
-- module's own list.
local resources = {}
for i, name in ipairs(require("cloudflare.email_security.resources.names")) do resources[i] = name end

return {
  new = client.new,
  resources = resources,
  null = core.null,
  is_error = errors.is_error,
  VERSION = require("cloudflare.email_security.version"),
}
