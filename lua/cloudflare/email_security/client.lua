-- A client: one account, one credential, one transport, and its
-- resources, made on first use. The transport (transport.lua chooses and
-- builds it) is the C core's session on libcurl, or inside nginx nginx's
-- own proxy through subrequests, which does not block the worker. Closes
-- with cf:close(), a `<close>` variable or the garbage collector.

local core = require("cloudflare.email_security.core")
local config = require("cloudflare.email_security.config")
local resource = require("cloudflare.email_security.resource")
local pacer = require("cloudflare.email_security.pacer")
local log = require("cloudflare.email_security.log")
local transport = require("cloudflare.email_security.transport")
local concurrent = require("cloudflare.email_security.concurrent")

-- The resources' names (resources/names.lua, generated with them), as a set.
local RESOURCES = {}
for _, name in ipairs(require("cloudflare.email_security.resources.names")) do RESOURCES[name] = true end

local client = {}
local Client = {}

-- cf.allow_policies and the others: made on first use.
function Client.__index(self, key)
  local method = Client[key]
  if method ~= nil then return method end
  if RESOURCES[key] then
    local r = resource.new(client.internals(self), require("cloudflare.email_security.resources." .. key))
    rawset(self, key, r)
    return r
  end
end

function Client:close()
  client.internals(self).transport:close()
end

function Client:is_closed()
  return client.internals(self).transport:is_closed()
end

Client.__close = Client.close

local OPTIONS_OF_CONCURRENTLY = { "stop_on_error" }

--- cf:concurrently(list, fn [, { stop_on_error = true }]) -> results:
--- fn(list[i], i) for every item of list, the calls fn makes on this
--- client sent `concurrency` at a time (the client's option), each with
--- the checks, retries and errors it has alone. results[i]: what fn
--- returned for item i, as a table ({ result, err, envelope, n = 3 } when
--- fn returns a call's values), in the list's order. stop_on_error: after
--- the first fn whose second value is not nil, nothing more starts (what is
--- in flight finishes); results.started says how many started.
function Client:concurrently(list, fn, opts)
  if type(list) ~= "table" then
    error("bad argument #1 to 'concurrently' (table expected, got " .. type(list) .. ")", 2)
  end
  if type(fn) ~= "function" then
    error("bad argument #2 to 'concurrently' (function expected, got " .. type(fn) .. ")", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #3 to 'concurrently' (table expected, got " .. type(opts) .. ")", 2)
  end
  opts = opts or {}
  for name in pairs(opts) do
    if name ~= "stop_on_error" then
      error("bad argument #3 to 'concurrently' (unknown option '" .. tostring(name) .. "'"
        .. require("cloudflare.email_security.schema.validate").suggest(tostring(name), OPTIONS_OF_CONCURRENTLY)
        .. ")", 2)
    end
  end
  if opts.stop_on_error ~= nil and type(opts.stop_on_error) ~= "boolean" then
    error("bad argument #3 to 'concurrently' (stop_on_error must be true or false)", 2)
  end
  local state = client.internals(self)
  if state.transport:is_closed() then error("attempt to use a closed cloudflare.email_security client", 2) end
  local items, n = {}, #list
  for i = 1, n do items[i] = list[i] end
  local stop = opts.stop_on_error and function(_, _, err) return err ~= nil end or nil
  local results, started = concurrent.map(state, n, function(i) return fn(items[i], i) end, stop)
  results.started = started
  return results
end

--- cf:account(id) -> a client for another account on the same credential:
--- one connection, one flight of requests in flight and one pacer for both
--- (the API's request budget is the token's, whatever the account), so
--- that work over many accounts keeps to one budget. Closing either
--- closes both.
function Client:account(id)
  local why = config.check_account_id(id, "account id")
  if why then error("bad argument #1 to 'account' (" .. why .. ")", 2) end
  local state = client.internals(self)
  if state.transport:is_closed() then error("attempt to use a closed cloudflare.email_security client", 2) end
  -- the view's own: its account; all else is read from and made in the
  -- state it shares (a flight made later is made for both)
  local view = setmetatable({ account_id = id }, { __index = state, __newindex = state })
  return setmetatable({ account_id = id, base_url = self.base_url, _state = view }, Client)
end

function Client:__tostring()
  return ("cloudflare.email_security client (account %s, %s)")
    :format(self.account_id, self:is_closed() and "closed" or "open")
end


--- See README.md for the options. Raises when they cannot make a client.
function client.new(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    error("bad argument #1 to 'new' (table expected, got " .. type(opts) .. ")", 2)
  end
  local cfg, why = config.resolve(opts)
  if not cfg then error("cloudflare.email_security.new: " .. why, 2) end
  local t = transport.new(cfg)
  -- The credential now lives only in the transport (the C core's header
  -- lists, or the nginx transport's variables).
  cfg.auth_headers = nil
  return setmetatable({
    account_id = cfg.account_id,
    base_url = cfg.base_url,
    _state = {
      account_id = cfg.account_id,
      base_url = cfg.base_url,
      transport = t,
      config = cfg,
      pacer = pacer.new(cfg.rate_limit, core.monotonic, cfg.max_retry_wait),
      -- between retries: the caller's sleep, else the one that suits the transport
      sleep = cfg.sleep or transport.sleep(cfg),
      log = log.writer(cfg.log),
    },
  }, Client)
end

--- A client's internals, one table, for the code that works on the
--- client's behalf (its resources, the request loop) and for specs and
--- benchmarks that put a transport of their own in: account_id, base_url,
--- transport (see transport.lua for its interface), config, pacer, sleep,
--- log; and, where the code that made it sets them, interrupted (a
--- function: true once the command-line tool's Ctrl-C came: nothing more
--- starts), on_wait (a function of seconds: told before the flight waits
--- a second or more to start what is due), flight and tasks (scheduler.lua
--- and concurrent.lua make them).
--- Not for scripts: it may change with any version.
function client.internals(cf)
  return rawget(cf, "_state")
end

return client
