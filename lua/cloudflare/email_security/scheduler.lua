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

-- Every call passes here, so a request's fields are read and written by
-- their places as numbers, which the VM does in one instruction where a
-- named place takes two: [1] method, [2] path, [3] query, [4] body,
-- [5] once, [6] compressed, [7] opts, [8] gone_id, [9] attempt, [10] acted,
-- as request.lua lays them out.
assert(request.METHOD == 1 and request.PATH == 2 and request.QUERY == 3 and request.BODY == 4
       and request.ONCE == 5 and request.COMPRESSED == 6 and request.OPTS == 7 and request.GONE_ID == 8
       and request.ATTEMPT == 9 and request.ACTED == 10, "scheduler.lua: request.lua's layout changed")

local scheduler = {}

--- state: the client's internals (base_url, transport, config, pacer,
--- sleep, log); req: a request (request.lua). Returns what the call
--- returns: result, err, envelope. One request at a time, to its end.
local function run_one(state, req)
  local transport = state.transport
  if transport:is_closed() then
    -- resource methods check this first, at their caller's line; this is
    -- for a caller of the loop itself
    error("attempt to use a closed cloudflare.email_security client", 2)
  end
  local method, path, query, body = req[1], req[2], req[3], req[4]
  local url = state.base_url .. path .. query
  local cfg, pacer, write = state.config, state.pacer, state.log
  while true do
    local attempt = req[9] + 1
    req[9] = attempt
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

    local result, err, envelope, headers = transport:request(method, url, body, req[5], req[6])

    if write then log.response(write, method, path .. query, monotonic() - started, err) end
    local seen = headers or (err and err.headers)
    if seen then pacer:observe(seen) end
    -- a success is done (request.outcome says so too): the common case,
    -- without a call
    if not err then return result, nil, envelope end
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
scheduler.run_one = run_one

--- A request made (request.new; opts as there, required here) and run to
--- its end (run_one): what a resource's call returns. The client keeps
--- the table of the request that ended last and fills it again for the
--- next, so that the common call allocates no request; a call made while
--- another runs (from a finalizer, a log function, another light thread)
--- finds none kept and makes its own.
function scheduler.call(state, method, path, query, body, opts, gone_id)
  local req = state.ended_request
  if req then
    state.ended_request = nil
    req[1], req[2], req[3], req[4], req[5], req[6], req[7], req[8], req[9], req[10] =
      method, path, query, body, opts.once, opts.compressed, opts, gone_id, 0, false
  else
    req = new_request(method, path, query, body, opts, gone_id)
  end
  local result, err, envelope = run_one(state, req)
  req[4] = nil    -- a batch's body can be large: not kept past its call
  state.ended_request = req
  return result, err, envelope
end

return scheduler
