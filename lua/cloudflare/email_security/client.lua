-- A client: one account, one credential, one C transport (one reused
-- libcurl handle), and its resources, made on first use. Closes with
-- cf:close(), a `<close>` variable or the garbage collector.

local core = require("cloudflare.email_security.core")
local config = require("cloudflare.email_security.config")
local resource = require("cloudflare.email_security.resource")
local pacer = require("cloudflare.email_security.pacer")
local log = require("cloudflare.email_security.log")
local VERSION = require("cloudflare.email_security.version")

local SCHEMAS = {
  impersonation_registry = "cloudflare.email_security.schema.impersonation_registry",
}

local Client = {}

function Client.__index(self, key)
  local method = Client[key]
  if method ~= nil then return method end
  local schema = SCHEMAS[key]
  if schema then
    local r = resource.new(rawget(self, "_state"), require(schema))
    rawset(self, key, r)
    return r
  end
end

function Client:close()
  self._state.transport:close()
end

function Client:is_closed()
  return self._state.transport:is_closed()
end

Client.__close = Client.close

function Client:__tostring()
  return ("cloudflare.email_security client (account %s, %s)")
    :format(self.account_id, self:is_closed() and "closed" or "open")
end

local function user_agent(suffix)
  local lua = _VERSION
  if type(jit) == "table" and jit.version then lua = jit.version end
  local ua = ("cloudflare-email-security-lua/%s (%s; libcurl/%s)")
    :format(VERSION, lua, core.libcurl_version)
  return suffix and (ua .. " " .. suffix) or ua
end

local client = {}

--- See README.md for the options. Raises when they cannot make a client.
function client.new(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    error("bad argument #1 to 'new' (table expected, got " .. type(opts) .. ")", 2)
  end
  local c, why = config.resolve(opts)
  if not c then error("cloudflare.email_security.new: " .. why, 2) end
  local transport = core.new({
    user_agent = user_agent(c.user_agent_suffix),
    headers = c.auth_headers,
    timeout_ms = c.timeout_ms,
    connect_timeout_ms = c.connect_timeout_ms,
    max_response_size = c.max_response_size,
    ca_bundle = c.ca_bundle,
  })
  -- The credential now lives only in the C transport's header lists.
  c.auth_headers = nil
  return setmetatable({
    account_id = c.account_id,
    base_url = c.base_url,
    _state = {
      account_id = c.account_id,
      base_url = c.base_url,
      transport = transport,
      config = c,
      pacer = pacer.new(c.rate_limit, core.monotonic),
      sleep = c.sleep or core.sleep,
      log = log.writer(c.log),
    },
  }, Client)
end

client.metatable = Client
return client
