-- cloudflare.email_security: a client for Cloudflare's Email Security
-- settings API. new(opts) makes a client; null is JSON null (lua-cjson's),
-- to clear a nullable field.

local core = require("cloudflare.email_security.core")
local client = require("cloudflare.email_security.client")
local errors = require("cloudflare.email_security.errors")

return {
  new = client.new,
  null = core.null,
  is_error = errors.is_error,
  VERSION = require("cloudflare.email_security.version"),
}
