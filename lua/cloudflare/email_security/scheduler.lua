-- The request loop, and the only place time passes: every request passes
-- here. It paces requests (client-side limit and the API's RateLimit
-- header), logs them when asked, sends them through the transport
-- (transport.lua), and sleeps before a try again. What an answer means
-- (done, again after s, gone) is request.lua's to say.

local core = require("cloudflare.email_security.core")
local errors = require("cloudflare.email_security.errors")
local request = require("cloudflare.email_security.request")
local log = require("cloudflare.email_security.log")

local monotonic = core.monotonic
local new_request, outcome, AGAIN, GONE = request.new, request.outcome, request.AGAIN, request.GONE

local ATTEMPT = request.ATTEMPT

local scheduler = {}

-- resource methods check this first, at their caller's line; this is for
-- a caller of the loop itself (level 3: the caller of run_one or call)
local function refuse_closed()
  error("attempt to use a closed cloudflare.email_security client", 3)
end

-- The loop, on the request's fields held as locals (state and the fields:
-- as run_one and call say). Every call passes here, and a success, the
-- common case, needs nothing more: req, the request request.outcome
-- judges, is made only when an answer is not a success (or given, by
-- run_one), and keeps between tries the count of tries (ATTEMPT, set here
-- before each verdict) and whether one may have acted.
local function run(state, req, method, path, query, body, opts, gone_id)
  local transport = state.transport
  local once, compressed
  if opts then once, compressed = opts.once, opts.compressed end
  local url = state.base_url .. path .. query
  local cfg, pacer, write = state.config, state.pacer, state.log
  local attempt = req and req[ATTEMPT] or 0
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
      local err = errors.new("transport", "the client was closed during the call; nothing more was sent")
      err.attempts = attempt - 1
      return nil, errors.wrap(err, method, path)
    end

    local result, err, envelope, headers = transport:request(method, url, body, once, compressed)

    if write then log.response(write, method, path .. query, monotonic() - started, err) end
    local seen = headers or (err and err.headers)
    if seen then pacer:observe(seen) end
    -- a success is done (request.outcome says so too): the common case,
    -- without a call
    if not err then return result, nil, envelope end
    req = req or new_request(method, path, query, body, opts, gone_id)
    req[ATTEMPT] = attempt
    local verdict, a, b, c = outcome(req, result, err, envelope, cfg)
    if verdict == AGAIN then
      state.sleep(a)
    elseif verdict == GONE then
      if write then
        write(("cloudflare.email_security: %s %s: 404 after a try that may have acted: taken as done")
          :format(method, path))
      end
      return a, nil, nil
    else
      return a, b, c
    end
  end
end

--- state: the client's internals (base_url, transport, config, pacer,
--- sleep, log); req: a request (request.new). Returns what the call
--- returns: result, err, envelope. One request at a time, to its end.
function scheduler.run_one(state, req)
  if state.transport:is_closed() then refuse_closed() end
  return run(state, req, req[request.METHOD], req[request.PATH], req[request.QUERY], req[request.BODY],
             req[request.OPTS], req[request.GONE_ID])
end

--- A request (request.new's arguments; opts required here) run to its end
--- (run_one): what a resource's call returns. A success makes no request
--- table at all.
function scheduler.call(state, method, path, query, body, opts, gone_id)
  if state.transport:is_closed() then refuse_closed() end
  return run(state, nil, method, path, query, body, opts, gone_id)
end

return scheduler
