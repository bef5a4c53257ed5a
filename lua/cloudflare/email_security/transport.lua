-- The transports, and the one place a client's is chosen and built. Every
-- transport is a value with these three methods, and the request loop
-- (scheduler.lua) knows no other:
--
--   t:request(method, url, body, once, compressed)
--       -> result, err, envelope [, headers]
--     Sends one HTTP request and decodes its answer (the C core's decoder,
--     src/envelope.c). method: one of core.methods; url: absolute, query
--     included; body: a JSON string or nil; once: the request must never
--     reach the server twice (a create, a batch with posts), not even by
--     the HTTP stack's own resend; compressed: ask for a gzip answer (a
--     list page, a batch). result, err, envelope are what a call returns
--     (README, "Errors"); err.headers holds the answer's retry and
--     rate-limit headers (lower-case names), and so does headers after a
--     success whose answer had any. Raises on a closed transport.
--   t:close()
--     Idempotent; the credential goes with it. From inside a request (a
--     finalizer that runs during it) it takes effect at the request's end;
--     requests started and not yet answered are ended.
--   t:is_closed() -> boolean
--
-- and, for requests in flight at once (scheduler.lua's submit and step; a
-- transport without them sends one at a time):
--
--   t:start(method, url, body, once, compressed) -> slot, or nil and err
--     The request is on its way (err: it could not start, nothing sent;
--     err.not_sent).
--   t:wait([seconds]) -> slot, or nothing
--     A request started here that has ended; nothing when none ends within
--     that long (none given: until one does) or none is in flight.
--   t:answer(slot) -> what request gives
--     The answer of a slot wait gave; the slot is free again.
--   t:scope() -> table (optional)
--     Where the scheduler keeps its state of requests in flight, when it
--     must not be the client's (inside nginx: the nginx request's).
--
-- A transport module (transport/curl.lua, transport/nginx.lua) gives:
-- available(), OPTIONS (the options only it reads), foreign(option, owner)
-- (what a client of it is told of another's option), agent() (its part of
-- the User-Agent), sleep() (the sleep between retries that suits it) and
-- new(cfg, user_agent).

local VERSION = require("cloudflare.email_security.version")

local MODULES = {
  curl = require("cloudflare.email_security.transport.curl"),
  nginx = require("cloudflare.email_security.transport.nginx"),
}
local NAMES = { "curl", "nginx" }

local transport = {}

--- The transport for the option `transport`: when nil, nginx's where its
--- subrequests work, else curl. nil and a message when it cannot be.
function transport.choose(name)
  if name == nil then name = MODULES.nginx.available() and "nginx" or "curl" end
  local module = (name == "curl" or name == "nginx") and MODULES[name]
  if not module then return nil, "transport must be \"curl\" or \"nginx\"" end
  if not module.available() then return nil, module.UNAVAILABLE end
  return name
end

--- A message when opts give an option that only another transport than
--- `name` reads, else nil.
function transport.misplaced(name, opts)
  for _, other in ipairs(NAMES) do
    if other ~= name then
      for _, option in ipairs(MODULES[other].OPTIONS) do
        if opts[option] ~= nil then return MODULES[name].foreign(option, other) end
      end
    end
  end
end

local function user_agent(suffix, http)
  local lua = _VERSION
  if type(jit) == "table" and jit.version then lua = jit.version end
  local ua = ("cloudflare-email-security-lua/%s (%s; %s)"):format(VERSION, lua, http)
  return suffix and (ua .. " " .. suffix) or ua
end

--- cfg: a checked configuration (config.lua). The transport it names.
function transport.new(cfg)
  local module = MODULES[cfg.transport]
  return module.new(cfg, user_agent(cfg.user_agent_suffix, module.agent()))
end

--- The sleep between retries that suits cfg's transport.
function transport.sleep(cfg)
  return MODULES[cfg.transport].sleep()
end

return transport
