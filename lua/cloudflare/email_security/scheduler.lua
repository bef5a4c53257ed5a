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

-- run fills a request by its places, as request.lua lays them out: [1]
-- method, [2] path, [3] query, [4] body, [5] once, [6] compressed, [7]
-- opts, [8] gone_id, [9] attempt, [10] acted.
assert(request.METHOD == 1 and request.PATH == 2 and request.QUERY == 3 and request.BODY == 4
       and request.ONCE == 5 and request.COMPRESSED == 6 and request.OPTS == 7 and request.GONE_ID == 8
       and request.ATTEMPT == 9 and request.ACTED == 10, "scheduler.lua: request.lua's layout changed")
local ATTEMPT = request.ATTEMPT

local scheduler = {}

-- resource methods check this first, at their caller's line; this is for
-- a caller of the loop itself (level 3: the caller of run_one or call)
local function refuse_closed()
  error("attempt to use a closed cloudflare.email_security client", 3)
end

-- The loop, on the request's fields held as locals (state and the fields:
-- as run_one and call say). Every call passes here, and a success, the
-- common case, needs nothing more; req, the table request.outcome judges,
-- is filled only when an answer is not a success (filled: req holds this
-- request already, as one from request.new does). Once filled, req keeps
-- between tries what request.outcome reads and writes: the count of tries
-- (ATTEMPT, set here before each verdict) and whether one may have acted
-- (ACTED).
local function run(state, req, filled, method, path, query, body, opts, gone_id)
  local transport = state.transport
  local once, compressed
  if opts then once, compressed = opts.once, opts.compressed end
  local url = state.base_url .. path .. query
  local cfg, pacer, write = state.config, state.pacer, state.log
  local attempt = filled and req[ATTEMPT] or 0
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
    if filled then
      req[ATTEMPT] = attempt
    else
      -- request.lua's layout (request.new): the fields, the tries so far,
      -- and no try that may have acted yet
      req[1], req[2], req[3], req[4], req[5], req[6], req[7], req[8], req[9], req[10] =
        method, path, query, body, once, compressed, opts, gone_id, attempt, false
      filled = true
    end
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
  return run(state, req, true, req[1], req[2], req[3], req[4], req[7], req[8])
end

--- A request (request.new's arguments; opts required here) run to its end
--- (run_one): what a resource's call returns. The client keeps the table
--- of the request that ended last and uses it again for the next, so that
--- the common call allocates no request; a call made while another runs
--- (from a finalizer, a log function, another light thread) finds none
--- kept and makes its own.
function scheduler.call(state, method, path, query, body, opts, gone_id)
  if state.transport:is_closed() then refuse_closed() end
  local req = state.ended_request
  if req then
    state.ended_request = nil
  else
    req = new_request(method, path, query, body, opts, gone_id)
  end
  local result, err, envelope = run(state, req, false, method, path, query, body, opts, gone_id)
  req[4] = nil    -- a batch's body can be large: not kept past its call
  state.ended_request = req
  return result, err, envelope
end

return scheduler
