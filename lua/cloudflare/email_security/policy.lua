-- The layer between a resource and its transport: every request passes
-- here. It paces requests (client-side limit and the API's RateLimit
-- header), logs them when asked, retries those that are safe to retry
-- (see retry.lua), and gives each error its method, path and attempts.

local core = require("cloudflare.email_security.core")
local errors = require("cloudflare.email_security.errors")
local retry = require("cloudflare.email_security.retry")
local log = require("cloudflare.email_security.log")

local monotonic = core.monotonic
local policy = {}

--- state: the client's internals (base_url, transport, config, pacer,
--- sleep, log); path without the base URL; query: "" or "?a=b"; body: a
--- JSON string or nil.
function policy.call(state, method, path, query, body)
  local transport = state.transport
  if transport:is_closed() then
    -- level 3: the caller of the resource method
    error("attempt to use a closed cloudflare.email_security client", 3)
  end
  local url = state.base_url .. path .. query
  local cfg, pacer, write = state.config, state.pacer, state.log
  local attempt = 0
  while true do
    attempt = attempt + 1
    local wait = pacer:delay()
    if wait > 0 then state.sleep(wait) end
    pacer:started()
    if write then log.request(write, method, path .. query, attempt, body) end
    local started = write and monotonic()

    local result, err, envelope, headers = transport:request(method, url, body)

    if write then log.response(write, method, path .. query, monotonic() - started, err) end
    pacer:observe(headers or (err and err.headers))
    if not err then return result, nil, envelope end
    if attempt > cfg.max_retries or not retry.retryable(method, err) then
      err.attempts = attempt
      return nil, errors.wrap(err, method, path), envelope
    end
    state.sleep(retry.delay(err, attempt, cfg.max_retry_wait, os.time(), math.random))
  end
end

return policy
