-- The request loop, and the only place time passes: every request passes
-- here. It paces requests (client-side limit and the API's RateLimit
-- header), logs them when asked, sends them through the transport
-- (transport.lua), and sleeps before a try again. What an answer means
-- (done, again after s, gone) is request.lua's to say.
--
-- Two ways through: one call to its end (run_one, call: the common case,
-- which pays nothing for the other), and many requests in flight at once
-- (submit, step: the client's `concurrency` of them), which concurrent.lua
-- drives for listings, apply and cf:concurrently. A call made inside one
-- of concurrent.lua's tasks is not run here: it is handed to that task's
-- driver (coroutine.yield), which submits it.

local core = require("cloudflare.email_security.core")
local new_pacer = require("cloudflare.email_security.pacer").new
local errors = require("cloudflare.email_security.errors")
local request = require("cloudflare.email_security.request")
local log = require("cloudflare.email_security.log")

local monotonic = core.monotonic
local new_request, outcome, AGAIN, GONE = request.new, request.outcome, request.AGAIN, request.GONE
local running, yield = coroutine.running, coroutine.yield

local ATTEMPT, METHOD, PATH, QUERY, BODY, ONCE, COMPRESSED = request.ATTEMPT, request.METHOD, request.PATH,
  request.QUERY, request.BODY, request.ONCE, request.COMPRESSED

local scheduler = {}

-- The command-line tool's Ctrl-C came while a call waited to be sent (again):
-- it is not. req: the request (its earlier tries), or nil.
local function interrupted_error(method, path, req, attempts)
  local err = errors.new("interrupted", "stopped by an interrupt (Ctrl-C) before it was sent")
  err.attempts, err.not_sent = attempts, true
  local acted = req and req[request.ACTED]
  if acted then
    err.acted_before = true
    if req[ONCE] then err.may_exist = true end
  end
  return errors.wrap(err, method, path)
end

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
      if wait > 0 then
        state.sleep(wait)
        local stop = state.interrupted
        if stop and stop() then return nil, interrupted_error(method, path, req, attempt - 1) end
      end
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
      local stop = state.interrupted
      if stop and stop() then return nil, interrupted_error(method, path, req, attempt) end
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
  local tasks = state.tasks
  if tasks and tasks[running()] then return yield(req) end
  return run(state, req, req[request.METHOD], req[request.PATH], req[request.QUERY], req[request.BODY],
             req[request.OPTS], req[request.GONE_ID])
end

--- A request (request.new's arguments; opts required here) run to its end
--- (run_one): what a resource's call returns. A success makes no request
--- table at all.
function scheduler.call(state, method, path, query, body, opts, gone_id)
  if state.transport:is_closed() then refuse_closed() end
  -- inside a task of concurrent.lua: its driver sends it, with others
  local tasks = state.tasks
  if tasks and tasks[running()] then return yield(new_request(method, path, query, body, opts, gone_id)) end
  return run(state, nil, method, path, query, body, opts, gone_id)
end

---------------------------------------------------------------------------
-- Many requests in flight at once. The flight, made on first use, in state
-- (or, inside nginx, in the table the transport's scope() gives for the
-- nginx request):
--   transport   the client's, or for one without start/wait (a stand-in a
--               spec puts in) a shim that runs each request as it starts
--   limit       the most in flight (the client's concurrency option)
--   running     how many are in flight; by_slot: slot -> request
--   queue       requests submitted and not yet started, in order
--   retries     requests to send again, each at its ready_at
--   pacer       the client's, or with no rate_limit given one of the
--               default budget for bulk work (config.lua)
--   slept_to    the time the last idle sleep slept to: the flight's clock
--               never reads less (a sleep a caller put in need not make
--               time pass on the clock; see now_of)
--   arrived     the requests whose answers wait unread: see submit
-- A request in the flight is request.new's, with on_done (called once
-- with the call's result, err, envelope), ready_at and sent_at.

local unpack = table.unpack or rawget(_G, "unpack")

-- One request at a time, for a transport without start and wait: each
-- runs to its answer when started, and wait hands the answers back.
local function serial(t)
  local answers, order, count = {}, {}, 0
  return {
    start = function(_, method, url, body, once, compressed)
      count = count + 1
      answers[count] = { t:request(method, url, body, once, compressed) }
      order[#order + 1] = count
      return count
    end,
    wait = function()
      return table.remove(order, 1)
    end,
    answer = function(_, slot)
      local a = answers[slot]
      answers[slot] = nil
      return unpack(a, 1, 4)
    end,
    is_closed = function() return t:is_closed() end,
  }
end

-- The flight's time: the clock's, or the time an idle sleep slept to when
-- that is later.
local function now_of(f)
  local t, slept_to = monotonic(), f.slept_to
  if slept_to and slept_to > t then return slept_to end
  return t
end

local function flight_of(state)
  local t = state.transport
  -- inside nginx, each nginx request has its own (transport/nginx.lua)
  local home = t.scope and t:scope() or state
  local f = home.flight
  if f then return f end
  local cfg = state.config
  -- no rate_limit given: bulk work keeps to the default budget, one for
  -- the client (inside nginx, for all the nginx requests that share it)
  local pacer = state.pacer
  if cfg.bulk_rate_limit then
    pacer = state.bulk_pacer or new_pacer(cfg.bulk_rate_limit, monotonic, cfg.max_retry_wait)
    state.bulk_pacer = pacer
  end
  f = { transport = t, limit = cfg.concurrency, ahead = 0, running = 0, by_slot = {}, queue = {}, first = 1,
        last = 0, retries = {}, pacer = pacer, held_back = 0 }
  if not t.start then
    f.transport, f.limit = serial(t), 1
  elseif t.limit and t.sent_at and not t:is_closed() then
    -- the C transport keeps `concurrency` on the wire itself and sends
    -- the next the moment one ends: pages ahead of a listing may be handed
    -- to it that many more (see admit)
    t:limit(f.limit)
    f.ahead = f.limit
  end
  home.flight = f
  return f
end

--- Adds req (request.new's) to the requests to send; on_done(result, err,
--- envelope) is called once with what the call returns, from a later
--- scheduler.step (or from this one's, when the client is closed).
--- req.later (set by the caller): its answer, when it comes, waits unread
--- (req.arrived) until scheduler.take reads it, so that answers are read
--- in the order a listing walks them; up to `concurrency` wait so, and the
--- oldest is read when one more comes.
function scheduler.submit(state, req, on_done)
  local f = flight_of(state)
  req.on_done = on_done
  f.last = f.last + 1
  f.queue[f.last] = req
end

-- Takes back from the transport the pages it still holds back for room on
-- the wire (f.ahead), for which which(req) is true: they never went out,
-- and are as if never started. Returns them in the order they started.
local function take_back(f, which)
  local t, back = f.transport, {}
  if f.ahead == 0 or t:is_closed() then return back end
  for slot, req in pairs(f.by_slot) do
    if req.held_back and which(req) and t:recall(slot) then
      f.by_slot[slot] = nil
      f.running = f.running - 1
      req.held_back, req.paced_at = nil, nil
      req[ATTEMPT] = req[ATTEMPT] - 1
      back[#back + 1] = req
    end
  end
  table.sort(back, function(a, b) return a.started_as < b.started_as end)
  return back
end

local function is_cancelled(req) return req.cancelled end
local function not_cancelled(req) return not req.cancelled end
local function every() return true end

-- The API says its budget is spent (a 429, or a RateLimit header): what
-- the transport holds back waits to start again, first, and so waits for
-- the hold; what was given up is let go. The transport, which stopped
-- putting what it holds back on the wire at the 429, may go on.
local function hold_all(f)
  take_back(f, is_cancelled)
  local back = take_back(f, not_cancelled)
  for i = #back, 1, -1 do
    f.first = f.first - 1
    f.queue[f.first] = back[i]
  end
  if f.ahead > 0 and not f.transport:is_closed() then f.transport:release() end
end

-- The answer of a request: done, or again later. closed: the client was
-- closed with it in flight (kept from a retry: nothing more may be sent).
local function complete(state, f, req, result, err, envelope, headers)
  local write = state.log
  if write then log.response(write, req[METHOD], req[PATH] .. req[QUERY], monotonic() - req.sent_at, err) end
  local seen = headers or (err and err.headers)
  if seen then
    f.pacer:observe(seen, now_of(f))
    if f.pacer ~= state.pacer then state.pacer:observe(seen) end
    if f.pacer.hold_until > now_of(f) then hold_all(f) end
  end
  -- not needed any more (cancel): never tried again
  if not err or req.cancelled then return req.on_done(result, err, envelope) end
  local verdict, a, b, c = outcome(req, result, err, envelope, state.config)
  if verdict == AGAIN then
    req.ready_at = now_of(f) + a
    -- the API says its budget is spent: nothing starts before this one
    -- may, for any request in flight, nor any single call
    if err.status == 429 then
      for _, pacer in ipairs({ f.pacer, state.pacer }) do
        if pacer.hold_until < req.ready_at then pacer.hold_until = req.ready_at end
      end
      hold_all(f)
    end
    f.retries[#f.retries + 1] = req
  elseif verdict == GONE then
    if write then
      write(("cloudflare.email_security: %s %s: 404 after a try that may have acted: taken as done")
        :format(req[METHOD], req[PATH]))
    end
    req.on_done(a, nil, nil)
  else
    req.on_done(a, b, c)
  end
end

-- The client was closed: what waits is not sent, and what was in flight
-- may have reached the server (a create then may exist).
local function end_closed(f)
  local ended = {}
  for slot, req in pairs(f.by_slot) do ended[#ended + 1] = { req, true } ; f.by_slot[slot] = nil end
  for _, req in ipairs(f.arrived or {}) do ended[#ended + 1] = { req, true } end
  f.arrived = nil
  for i = f.first, f.last do ended[#ended + 1] = { f.queue[i], false } end
  for _, req in ipairs(f.retries) do ended[#ended + 1] = { req, false } end
  f.queue, f.first, f.last, f.retries, f.running = {}, 1, 0, {}, 0
  for _, e in ipairs(ended) do
    local req, sent = e[1], e[2]
    local err = errors.new("transport", sent
      and "the client was closed with this request in flight: it may have reached the server"
      or "the client was closed during the call; nothing more was sent")
    err.attempts = req[ATTEMPT]
    if sent then err.sent = true else err.not_sent = true end
    if req[ONCE] and (sent or req[request.ACTED]) then err.may_exist = true end
    err.acted_before = req[request.ACTED] or nil
    req.on_done(nil, errors.wrap(err, req[METHOD], req[PATH]), nil)
  end
end

-- An interrupt (the command-line tool's Ctrl-C: state.interrupted) came:
-- what waits is not sent; what is in flight finishes.
local function end_waiting(f, ended)
  for i = f.first, f.last do ended[#ended + 1] = f.queue[i] end
  for _, req in ipairs(f.retries) do ended[#ended + 1] = req end
  f.queue, f.first, f.last, f.retries = {}, 1, 0, {}
  for _, req in ipairs(ended) do
    req.on_done(nil, interrupted_error(req[METHOD], req[PATH], req, req[ATTEMPT]), nil)
  end
end

-- The next request whose time has come (now: the clock, or later after an
-- idle sleep), and where it is; nil and the time the first will be due.
local function next_due(f, now)
  local due
  for i = #f.retries, 1, -1 do
    if f.retries[i].cancelled then table.remove(f.retries, i) end
  end
  for i, req in ipairs(f.retries) do
    if req.ready_at <= now then return req, i end
    if not due or req.ready_at < due then due = req.ready_at end
  end
  -- a request whose work was given up (cancel) is dropped here
  while f.queue[f.first] and f.queue[f.first].cancelled do
    f.queue[f.first] = nil
    f.first = f.first + 1
  end
  if f.queue[f.first] then return f.queue[f.first], 0 end
  return nil, due
end

-- Starts what may start: up to the limit, in order (retries first), as the
-- pacer allows. Returns when the next start is due, when one is waiting.
--
-- Past the limit, up to f.ahead more pages ahead of a listing (req.later:
-- reads, answered in their turn) when the transport holds back what is
-- past the limit itself (f.ahead > 0, the C transport): the next page then
-- goes out the moment one ends, not when Lua next looks (reading a page of
-- 1,000 entries takes a few milliseconds, and a whole round of pages used
-- to wait for it). The server still sees at most `concurrency` at once.
local function admit(state, f)
  local t, pacer, write = f.transport, f.pacer, state.log
  local now = now_of(f)
  local interrupted = state.interrupted
  while f.running < f.limit + f.ahead and not t:is_closed() do
    -- after the tool's Ctrl-C nothing more starts (step ends what waits)
    if interrupted and interrupted() then return nil end
    local req, where = next_due(f, now)
    if not req then return where end
    local held_back = f.running >= f.limit
    if held_back and not req.later then return nil end
    if pacer.size or pacer.hold_until ~= 0 then
      local wait = pacer:delay(now)
      if wait > 0 then return now + wait end
      -- one held back is counted again from when it goes out (gather)
      local at = pacer:started(now)
      if held_back then req.paced_at = at end
    end
    if where == 0 then
      f.queue[f.first] = nil
      f.first = f.first + 1
    else
      table.remove(f.retries, where)
    end
    local attempt = req[ATTEMPT] + 1
    req[ATTEMPT] = attempt
    local url_path = req[PATH] .. req[QUERY]
    if write then log.request(write, req[METHOD], url_path, attempt, req[BODY]) end
    req.sent_at = now
    -- a finalizer or the caller's log function may have closed it
    if t:is_closed() then
      local err = errors.new("transport", "the client was closed during the call; nothing more was sent")
      err.attempts, err.not_sent = attempt - 1, true
      if req[ONCE] and req[request.ACTED] then err.may_exist = true end
      err.acted_before = req[request.ACTED] or nil
      req.on_done(nil, errors.wrap(err, req[METHOD], req[PATH]), nil)
      return nil
    end
    local slot, err = t:start(req[METHOD], state.base_url .. url_path, req[BODY], req[ONCE], req[COMPRESSED])
    if slot then
      f.by_slot[slot] = req
      f.running = f.running + 1
      if held_back then
        -- it may wait in the transport: take_back can still withdraw it
        f.held_back = f.held_back + 1
        req.held_back, req.started_as = true, f.held_back
      end
    else
      complete(state, f, req, nil, err, nil, nil)
    end
    now = now_of(f)
  end
end

-- slot: a request that has finished (t:wait gave it). Takes every other
-- that has finished by now, then starts the next ones before any answer is
-- read (they are on their way meanwhile), then hands out the answers not
-- left for a listing to read in its turn.
local function gather(state, f, slot)
  local t = f.transport
  local finished = {}
  while slot do
    local req = f.by_slot[slot]
    f.by_slot[slot] = nil
    f.running = f.running - 1
    req.arrived, req.held_back = slot, nil
    if f.ahead > 0 then
      local sent, status = t:sent_at(slot)
      -- it may have waited for room on the wire: counted from when it
      -- went out
      if req.paced_at then f.pacer:went_out(req.paced_at, req.sent_at, sent) end
      req.paced_at, req.status = nil, status
    end
    finished[#finished + 1] = req
    slot = f.running > 0 and t:wait(0) or nil
  end
  -- a 429 is read before anything more starts, a page's too (not left for
  -- its turn): its hold then holds back what would start, and what the
  -- transport holds back (complete, hold_all)
  local met_429 = false
  for _, req in ipairs(finished) do
    if req.status == 429 and req.arrived ~= nil and not t:is_closed() then
      local at = req.arrived
      req.arrived, met_429 = nil, true
      complete(state, f, req, t:answer(at))
    end
  end
  -- the transport stopped putting what it holds back on the wire at the
  -- 429: now that its hold is known (none, for a Retry-After past
  -- max_retry_wait), it may go on
  if met_429 and not t:is_closed() then
    if f.pacer.hold_until > now_of(f) then hold_all(f) else t:release() end
  end
  admit(state, f)
  for _, req in ipairs(finished) do
    -- (one that the code of an answer before it has read already, by a
    -- join, is done)
    if req.arrived ~= nil then
      if (req.later and not req.cancelled) or t:is_closed() then
        -- left unread: a listing reads it in its turn; or the client was
        -- closed meanwhile (by the code an answer ran), and step ends it
        local arrived = f.arrived or {}
        f.arrived = arrived
        arrived[#arrived + 1] = req
        -- no more than `concurrency` wait unread: the oldest is read now
        if #arrived > f.limit and not t:is_closed() then scheduler.take(state, arrived[1]) end
      else
        local at = req.arrived
        req.arrived = nil
        complete(state, f, req, t:answer(at))
      end
    end
  end
end

--- Starts what may start now (see step), without waiting for anything.
function scheduler.send(state)
  local f = flight_of(state)
  if f.queue[f.first] and not f.transport:is_closed() then admit(state, f) end
end

--- The request will not be needed: if it has not started, it never will
--- (its on_done is not called).
function scheduler.cancel(req)
  req.cancelled = true
end

--- Pages the transport holds back for work given up (cancel) are taken
--- back now, and never go out: for the code that gives the work up, where
--- it is not a finalizer (cancel only marks; steps take them back too).
function scheduler.let_go(state)
  local f = flight_of(state)
  if f.ahead > 0 then take_back(f, is_cancelled) end
end

--- Reads the answer of req, which came and waits unread (req.arrived),
--- and hands it out (its on_done, or a try again).
function scheduler.take(state, req)
  local f = flight_of(state)
  -- closed: step ends every request, this one with the others
  if f.transport:is_closed() then return scheduler.step(state) end
  -- what has finished frees its slot, and what waits to start goes
  -- first: on its way while this is read
  local t = f.transport
  local done = f.running > 0 and t:wait(0)
  if done then gather(state, f, done) elseif f.queue[f.first] then admit(state, f) end
  -- (gather may have read this one, for a join its code made)
  if req.arrived == nil then return end
  local slot = req.arrived
  req.arrived = nil
  for i, r in ipairs(f.arrived) do
    if r == req then
      table.remove(f.arrived, i)
      break
    end
  end
  complete(state, f, req, f.transport:answer(slot))
end

--- Sends, waits and hands out answers once: starts what may start (up to
--- the limit, as the pacer allows, retries when due), then waits for one
--- answer (or the time the next start is due) and calls its on_done; with
--- nothing in flight, sleeps until the next start is due. false when
--- nothing was waiting or in flight.
function scheduler.step(state)
  local f = flight_of(state)
  local t = f.transport
  if t:is_closed() then
    local any = f.running > 0 or f.queue[f.first] ~= nil or f.retries[1] ~= nil
    end_closed(f)
    return any
  end
  -- pages the transport holds back for work given up never go out
  take_back(f, is_cancelled)
  local interrupted = state.interrupted
  if interrupted and interrupted() then
    -- what the transport still holds back never goes out either
    local back = take_back(f, every)
    if back[1] ~= nil or f.queue[f.first] ~= nil or f.retries[1] ~= nil then
      end_waiting(f, back)
      return true
    end
  end
  -- answers that came for work given up: read and let go, so that their
  -- slots are free (concurrent.cancel only marks them: it may run in a
  -- finalizer)
  if f.arrived then
    for i = #f.arrived, 1, -1 do
      local req = f.arrived[i]
      if req.cancelled then scheduler.take(state, req) end
    end
  end
  local due = admit(state, f)
  if f.running > 0 then
    local timeout = due and math.max(due - now_of(f), 0) or nil
    local slot = t:wait(timeout)
    if not slot then
      if timeout == nil and not t:is_closed() then
        -- the transport has none in flight that we count
        error("cloudflare.email_security: the transport lost track of the requests in flight")
      end
      return true
    end
    gather(state, f, slot)
    return true
  end
  if due then
    local wait = due - now_of(f)
    -- a wait a person would notice (the budget of the pacer, a 429's
    -- hold): said, where the code that made the client asked (the tool,
    -- on a terminal)
    if wait >= 1 and state.on_wait then state.on_wait(wait) end
    if wait > 0 then state.sleep(wait) end
    if not f.slept_to or due > f.slept_to then f.slept_to = due end
    return true
  end
  return f.queue[f.first] ~= nil
end

return scheduler
