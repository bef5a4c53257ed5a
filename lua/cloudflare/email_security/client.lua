-- A client: one account, one credential, one transport, and its
-- resources, made on first use. The transport is the C core's (one reused
-- libcurl handle), or inside nginx nginx's own proxy through subrequests
-- (nginx_transport.lua), which does not block the worker. Closes with
-- cf:close(), a `<close>` variable or the garbage collector.

local core = require("cloudflare.email_security.core")
local config = require("cloudflare.email_security.config")
local resource = require("cloudflare.email_security.resource")
local pacer = require("cloudflare.email_security.pacer")
local log = require("cloudflare.email_security.log")
local nginx_transport = require("cloudflare.email_security.nginx_transport")
local VERSION = require("cloudflare.email_security.version")

-- The resources' names (resources/names.lua, generated with them), as a set.
local RESOURCES = {}
for _, name in ipairs(require("cloudflare.email_security.resources.names")) do RESOURCES[name] = true end

local Client = {}

-- cf.allow_policies and the others: made on first use.
function Client.__index(self, key)
  local method = Client[key]
  if method ~= nil then return method end
  if RESOURCES[key] then
    local r = resource.new(rawget(self, "_state"), require("cloudflare.email_security.resources." .. key))
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

local function user_agent(suffix, transport)
  local lua = _VERSION
  if type(jit) == "table" and jit.version then lua = jit.version end
  local http = "libcurl/" .. core.libcurl_version
  if transport == "nginx" then
    -- ngx.config.nginx_version is a number: 1022001 for 1.22.1
    local ngx_config = rawget(_G, "ngx").config
    local n = type(ngx_config) == "table" and tonumber(ngx_config.nginx_version) or 0
    http = ("nginx/%d.%d.%d"):format(math.floor(n / 1e6), math.floor(n / 1e3) % 1e3, n % 1e3)
  end
  local ua = ("cloudflare-email-security-lua/%s (%s; %s)"):format(VERSION, lua, http)
  return suffix and (ua .. " " .. suffix) or ua
end

local function new_transport(c)
  if c.transport == "nginx" then
    return nginx_transport.new({
      location = c.nginx_location,
      headers = c.auth_headers,
      user_agent = user_agent(c.user_agent_suffix, "nginx"),
      max_response_size = c.max_response_size,
    })
  end
  return core.new({
    user_agent = user_agent(c.user_agent_suffix, "curl"),
    headers = c.auth_headers,
    timeout_ms = c.timeout_ms,
    connect_timeout_ms = c.connect_timeout_ms,
    max_response_size = c.max_response_size,
    ca_bundle = c.ca_bundle,
  })
end

-- Between retries: the caller's sleep, else one that suits the transport
-- (ngx.sleep yields to nginx's event loop; core.sleep blocks the thread).
local function default_sleep(c)
  if c.transport == "nginx" then return rawget(_G, "ngx").sleep end
  return core.sleep
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
  local transport = new_transport(c)
  -- The credential now lives only in the transport (the C core's header
  -- lists, or the nginx transport's variables).
  c.auth_headers = nil
  return setmetatable({
    account_id = c.account_id,
    base_url = c.base_url,
    _state = {
      account_id = c.account_id,
      base_url = c.base_url,
      transport = transport,
      config = c,
      pacer = pacer.new(c.rate_limit, core.monotonic, c.max_retry_wait),
      sleep = c.sleep or default_sleep(c),
      log = log.writer(c.log),
    },
  }, Client)
end

return client
