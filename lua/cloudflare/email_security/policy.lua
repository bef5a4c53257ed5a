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

-- Cloudflare's codes for a 404 that names no entry: the route or the
-- account is unknown.
local ROUTE_NOT_FOUND = { [7000] = true, [7003] = true }

-- The client was closed while this call was under way (by a finalizer
-- that ran during it, say): the call ends with an error value.
local function closed_during_call()
  return errors.new("transport", "the client was closed during the call; nothing more was sent")
end

--- state: the client's internals (base_url, transport, config, pacer,
--- sleep, log); path without the base URL; query: "" or "?a=b"; body: a
--- JSON string or nil; opts (or nil): once = true when the request must
--- never reach the server twice (a create, a batch with posts), so that it
--- is retried only when no try can have acted; large = true when the answer
--- can be large (a list page, a batch), so that it is asked for compressed.
--- gone_id: the id a DELETE removes, so that a 404 after a try that may have
--- acted counts as done (an argument of its own, so that the options of an
--- op are made once).
function policy.call(state, method, path, query, body, opts, gone_id)
  local once = opts and opts.once or false
  local transport = state.transport
  if transport:is_closed() then
    -- resource methods check this first, at their caller's line; this is
    -- for a caller of policy.call itself
    error("attempt to use a closed cloudflare.email_security client", 2)
  end
  local url = state.base_url .. path .. query
  local cfg, pacer, write = state.config, state.pacer, state.log
  local attempt, acted = 0, false
  while true do
    attempt = attempt + 1
    -- the common case, no client-side limit and no hold from a RateLimit
    -- header, costs two field reads (pacer.lua keeps both fields)
    if pacer.size or pacer.hold_until ~= 0 then
      local wait = pacer:delay()
      if wait > 0 then state.sleep(wait) end
      pacer:started()
    end
    if write then log.request(write, method, path .. query, attempt, body) end
    local started = write and monotonic()
    -- last before the request, after everything that may run Lua code (a
    -- finalizer, the caller's log function) and close the client
    if transport:is_closed() then
      local err = closed_during_call()
      err.attempts = attempt - 1
      return nil, errors.wrap(err, method, path)
    end

    local result, err, envelope, headers = transport:request(method, url, body, once, opts and opts.large)

    if write then log.response(write, method, path .. query, monotonic() - started, err) end
    local seen = headers or (err and err.headers)
    if seen then pacer:observe(seen) end
    if not err then return result, nil, envelope end
    -- an earlier try may have deleted it: that try did the work. Not a 404
    -- for the path itself (no such route or account): that one never acted.
    if acted and err.status == 404 and gone_id and not ROUTE_NOT_FOUND[err.code] then
      if write then
        write(("cloudflare.email_security: %s %s: 404 after a try that may have acted: taken as done")
          :format(method, path))
      end
      return { id = gone_id }, nil, nil
    end
    local again = attempt <= cfg.max_retries and retry.retryable(once, err, acted)
    local delay, asked
    if again then
      delay, asked = retry.delay(err, attempt, cfg.max_retry_wait, os.time(), math.random)
    end
    if not delay then
      err.attempts = attempt
      -- the API asked for a longer wait than max_retry_wait: not retried,
      -- and the error says when it may be
      err.retry_after = asked
      -- what a person needs to act on it: a create that may have happened,
      -- the credential in use (its source, never its value) and what the
      -- call needs
      if once and (acted or retry.may_have_acted(err)) then err.may_exist = true end
      -- an earlier try of this call may have done its work, whatever this
      -- last one says: a report of what was done must not count it undone
      err.acted_before = acted or nil
      if err.status == 401 or err.status == 403 then
        err.credential = cfg.credential_source
        err.permissions = opts and opts.permissions
      end
      return nil, errors.wrap(err, method, path), envelope
    end
    acted = acted or retry.may_have_acted(err)
    state.sleep(delay)
  end
end

return policy
