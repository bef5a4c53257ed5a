-- What the hostile review of requests in flight (issue 24) found wrong,
-- one case for each of its reproductions, so that what was mended stays
-- mended: the core's slots, a failed multi handle, a finalizer that closes
-- a session inside session:start, a refused start, session:wait's
-- negative waits (against the emulator, or a child process with a poll()
-- that fails); the default bulk budget, a cancelled page, and an answer
-- taken twice (against stand-in transports, in the order libcurl may give
-- them). The command-line tool's Ctrl-C during a retry's wait is in
-- spec/hosts/cli_spec.lua.
local es = require("cloudflare.email_security")
local core = require("cloudflare.email_security.core")
local retry = require("cloudflare.email_security.retry")
local emulator_process = require("emulator.process")
local client_internals = require("cloudflare.email_security.client").internals
local files = require("spec.support.files")
local socket = require("socket")

local ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"
local LIST_PATH = "/accounts/" .. ACCOUNT .. "/email-security/settings/impersonation_registry"
-- src/flight.h's ES_FLIGHT_MAX: three times the largest concurrency (64)
local FLIGHT_MAX = 320
-- the emulator that answers slowly: a GET waits this long
local SLOW_MS = 2000

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function registries(from, to)
  local out = {}
  for i = from, to do
    out[#out + 1] = { name = "Person " .. i, email = ("p%04d@example.com"):format(i), is_email_regex = false }
  end
  return out
end

-- Faults that match the next n requests of `method` and do nothing.
local function pass(method, n) return { method = method, times = n } end

-- A session of the core, as the transport makes one.
local function session(token)
  return core.new({ user_agent = "in-flight-review", headers = { "Authorization: Bearer " .. token },
                    timeout_ms = 10000, connect_timeout_ms = 5000, max_response_size = 1e6 })
end

-- The page numbers of the registry list GETs the server saw, in arrival order.
local function registry_pages(emu)
  local out = {}
  for _, r in ipairs(emu.requests()) do
    if r.method == "GET" and r.path:find("impersonation_registry", 1, true) then
      out[#out + 1] = tonumber((r.query or ""):match("page=(%d+)")) or 1
    end
  end
  return out
end

-- A client on a stand-in transport (transport.lua's interface); the real
-- transport it had is closed first.
local function client_on(transport, opts)
  local o = { api_token = "t", account_id = ACCOUNT, base_url = "http://127.0.0.1:1/client/v4" }
  for k, v in pairs(opts or {}) do o[k] = v end
  local cf = es.new(o)
  local st = client_internals(cf)
  st.transport:close()
  st.transport = transport
  return cf, st
end

describe("requests in flight, as the review found them", function()
  -- emu: answers at once unless a case says otherwise; slow: every GET
  -- waits SLOW_MS, for requests that must stay in flight (its cases close
  -- their sessions with requests in flight, and look at no request log)
  local emu, slow
  local clients = {}

  local function client(opts)
    local o = { api_token = "t", account_id = ACCOUNT, base_url = emu.base_url, max_retry_wait = 0.05 }
    for k, v in pairs(opts or {}) do o[k] = v end
    local cf = es.new(o)
    clients[#clients + 1] = cf
    return cf
  end

  -- Until nothing is in flight at the server and no request has arrived
  -- for a while: what a closed client sent must not reach the next case.
  local function settle()
    local last, quiet = -1, 0
    local deadline = socket.gettime() + 5
    while quiet < 4 and socket.gettime() < deadline do
      local n, current = #emu.requests(), emu.in_flight().current
      if current == 0 and n == last then quiet = quiet + 1 else quiet = 0 end
      last = n
      socket.sleep(0.03)
    end
  end

  -- Runs a Lua script in a process of its own, with this checkout's
  -- modules and core, `env` (assignments) before it and the arguments
  -- after; the environment else is this one's (LD_PRELOAD, ASAN_OPTIONS).
  -- Answers its output, stdout and stderr; raises unless it exited 0.
  local dir
  local function run_lua(env, script, ...)
    local path = dir .. "/child.lua"
    local f = assert(io.open(path, "wb"))
    f:write(script)
    f:close()
    local args = {}
    for i, a in ipairs({ ... }) do args[i] = q(a) end
    local out = files.command_output(("%s LUA_PATH='./lua/?.lua;;' LUA_CPATH=%s %s %s %s 2>&1; echo \"exit=$?\"")
      :format(env, q(package.cpath), os.getenv("LUA") or "lua5.4", q(path), table.concat(args, " ")))
    assert(out:find("exit=0$"), out)
    return out
  end

  lazy_setup(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. q(dir)))
    emu = emulator_process.start({ token = "t" })
    slow = emulator_process.start({ token = "t", latency = { read_ms = SLOW_MS, write_ms = 0 } })
  end)
  lazy_teardown(function()
    if emu then emu.stop() end
    if slow then slow.stop() end
    if dir then os.execute("rm -rf " .. q(dir)) end
  end)
  before_each(function() emu.reset() end)
  after_each(function()
    for _, cf in ipairs(clients) do cf:close() end
    clients = {}
    emu.latency(0, 0)
    settle()
  end)

  it("64 in flight with a slow second page: all() has slots enough for every page, and gives all 600", function()
    -- (r01) the walk keeps 64 pages ahead unread while 64 more are in
    -- flight, and a wait gathers more again: 128 slots ran out
    emu.seed(ACCOUNT, registries(1, 600))
    emu.latency(20, 0)
    emu.faults({ pass("GET", 1), { method = "GET", delay_ms = 1500 } })
    local cf = client({ concurrency = 64 })
    local all, err = cf.impersonation_registry:all({ per_page = 2 })
    assert.is_nil(err and tostring(err.message or err))
    assert.are.equal(600, #all)
    local seen = {}
    for _, e in ipairs(all) do seen[e.email] = true end
    for i = 1, 600 do assert.is_true(seen[("p%04d@example.com"):format(i)], "missing entry " .. i) end
    assert.are.equal(300, #registry_pages(emu))
  end)

  it("a multi handle that fails gives each request that was in flight, with that failure; none is held", function()
    -- (r02) poll() fails (ENOMEM) under libcurl's curl_multi_poll, in a
    -- child process with spec/support/failpoll.c preloaded
    if not files.command_output("command -v cc 2>/dev/null"):find("cc", 1, true) then
      return pending("no C compiler (cc) to build spec/support/failpoll.c")
    end
    local shim = dir .. "/failpoll.so"
    local built = files.command_output(("cc -shared -fPIC -o %s spec/support/failpoll.c -ldl 2>&1; echo \"exit=$?\"")
      :format(q(shim)))
    assert.matches("exit=0$", built)
    -- what is preloaded already (AddressSanitizer's runtime, under make
    -- check-asan) stays first
    local preload = os.getenv("LD_PRELOAD")
    preload = (preload and preload ~= "") and (preload .. " " .. shim) or shim
    local out = run_lua(("LD_PRELOAD=%s FAIL_POLL_AT=1"):format(q(preload)), [[
local core = require("cloudflare.email_security.core")
local s = core.new({ user_agent = "in-flight-review", headers = { "Authorization: Bearer " .. arg[2] },
                     timeout_ms = 10000, connect_timeout_ms = 5000, max_response_size = 1e6 })
for _ = 1, 3 do print("started", tostring(s:start("GET", arg[1]))) end
for _ = 1, 4 do
  local slot = s:wait(5)
  if slot then
    local result, err = s:answer(slot)
    print("given", slot, tostring(result), err and err.message or "no error")
  else
    print("none")
  end
end
print("in_flight", s:in_flight())
s:close()
]], slow.base_url .. LIST_PATH, slow.token)
    local started, given, failed = {}, {}, 0
    for slot in out:gmatch("started\t(%d+)") do started[#started + 1] = tonumber(slot) end
    assert.are.equal(3, #started, out)
    -- the transport's thread polls as soon as the first is on the wire:
    -- those in flight then get the failure, those started after it are
    -- answered as usual
    for slot, result, message in out:gmatch("given\t(%d+)\t([^\t]+)\t([^\n]*)") do
      given[#given + 1] = tonumber(slot)
      if result == "nil" then
        assert.truthy(message:find("multi handle failed", 1, true), out)
        failed = failed + 1
      else
        assert.are.equal("no error", message, out)
      end
    end
    assert.is_true(failed >= 1, "no request got the multi handle's failure\n" .. out)
    table.sort(given)
    assert.are.same(started, given, out)
    assert.truthy(out:find("\nnone\n", 1, true), out)
    assert.are.equal("0", out:match("in_flight\t(%d+)"), out)
  end)

  it("a finalizer that closes the session while start converts a number body: nil and an error, never a slot",
     function()
    -- (r03) the number is made a string after the session was found open;
    -- making it may run the collector, and so a finalizer that closes the
    -- session: start must not then start a request on a closed session.
    -- In a child process: a small heap, whose collector's cycles end inside
    -- the calls (on 5.4 nearly every one of them, on LuaJIT and 5.1 one in
    -- ten or so; the old code gave a slot at the first)
    local out = run_lua("", [[
local core = require("cloudflare.email_security.core")
local url, token, n = arg[1], arg[2], tonumber(arg[3])
-- LuaJIT runs no finalizer in compiled code, and may sink the debt's tables
if rawget(_G, "jit") then jit.off() end
local newproxy = rawget(_G, "newproxy")
local target, armed, stopped = nil, false, false
-- finalizers always pending, each making the next
local function chain()
  if stopped then return end
  local function finalize()
    if armed and target then
      armed = false
      target:close()
    end
    chain()
  end
  if newproxy then
    getmetatable(newproxy(true)).__gc = finalize     -- 5.1, LuaJIT: no __gc on tables
  else
    setmetatable({}, { __gc = finalize })
  end
end
for _ = 1, 50 do chain() end
-- the collector steps on nearly every allocation
if not pcall(collectgarbage, "incremental", 10, 400) then
  collectgarbage("setpause", 10)
  collectgarbage("setstepmul", 400)
end
local closed, given = 0, 0
for i = 1, n do
  local s = core.new({ user_agent = "in-flight-review", headers = { "Authorization: Bearer " .. token },
                       timeout_ms = 10000, connect_timeout_ms = 5000, max_response_size = 1e6 })
  for _ = 1, 200 do local _ = { i } end           -- debt for the collector
  -- called directly: 5.1's pcall steps the collector after the call, and a
  -- session closed there was open all through start
  target, armed = s, true
  local slot, err = s:start("POST", url, i + 0.5)
  armed = false
  if s:is_closed() then
    closed = closed + 1
    if slot ~= nil or type(err) ~= "table" then
      given = given + 1
      if given == 1 then print(("iteration %d: start gave %s, %s"):format(i, tostring(slot), tostring(err))) end
    end
  end
  s:close()
  target = nil
end
stopped = true
print("closed_during", closed)
print("slot_given", given)
]], slow.base_url .. LIST_PATH, slow.token, 300)
    local closed = tonumber(out:match("closed_during\t(%d+)"))
    assert(closed, out)
    assert.are.equal("0", out:match("slot_given\t(%d+)"), out)
    assert.is_true(closed > 0, "no finalizer closed a session inside start: the case showed nothing\n" .. out)
  end)

  it(("a start past the %d slots is refused as not sent, which acted nowhere"):format(FLIGHT_MAX), function()
    -- (r10) a create refused so may be tried again, and is not in doubt
    local url = slow.base_url .. LIST_PATH
    local s = session(slow.token)
    finally(function() s:close() end)
    local started, slot, err = 0, nil, nil
    for _ = 1, FLIGHT_MAX + 1 do
      slot, err = s:start("GET", url)
      if not slot then break end
      started = started + 1
    end
    assert.is_nil(slot)
    assert.is_table(err)
    assert.truthy(tostring(err.message):find("too many requests in flight", 1, true), tostring(err.message))
    assert.is_true(err.not_sent, "the refusal does not say it was not sent: " .. tostring(err.message))
    assert.is_false(retry.may_have_acted(err))
    assert.are.equal(FLIGHT_MAX, started)
    assert.are.equal(FLIGHT_MAX, s:in_flight())
  end)

  it("the default bulk budget is the client's, shared by the scopes of its flights (nginx requests)", function()
    -- (r11) a stand-in transport with scope(), as transport/nginx.lua has,
    -- that answers at once; the sleeps are counted, not slept
    local ok_env = { success = true, errors = {}, messages = {}, result = {},
                     result_info = { page = 1, per_page = 20, count = 0, total_count = 0 } }
    local scopes, current = { A = {}, B = {} }, "A"
    local answers, order, n, first, last = {}, {}, 0, 1, 0
    local sent = { A = 0, B = 0 }
    local slept = 0
    local cf = client_on({
      start = function()
        n = n + 1
        sent[current] = sent[current] + 1
        answers[n] = { {}, nil, ok_env }
        last = last + 1
        order[last] = n
        return n
      end,
      wait = function()
        local slot = order[first]
        if slot then
          order[first] = nil
          first = first + 1
        end
        return slot
      end,
      answer = function(_, slot)
        local a = answers[slot]
        answers[slot] = nil
        return a[1], a[2], a[3]
      end,
      is_closed = function() return false end,
      request = function() error("not used") end,
      scope = function() return scopes[current] end,
      close = function() end,
    }, { sleep = function(seconds) slept = slept + seconds end })
    local items = {}
    for i = 1, 1000 do items[i] = i end
    local function burst(scope)
      current = scope
      local before = slept
      cf:concurrently(items, function() return cf.impersonation_registry:list({ page = 1 }) end)
      return slept - before
    end
    assert.are.equal(0, burst("A"))
    -- A has spent the budget (1,000 per 5 minutes): B, with the same client, waits
    assert.is_true(burst("B") > 0, "another scope of the same client has a budget of its own")
    assert.are.same({ A = 1000, B = 1000 }, sent)
  end)

  it("a page given up that met a 503 is not sent again by the client's next bulk call", function()
    -- (r14) the walk fails on page 2; pages ahead answered 503 were kept
    -- as retries, and sent again at the next step of the flight
    emu.seed(ACCOUNT, registries(1, 20))
    emu.latency(100, 0)
    emu.faults({ pass("GET", 1), { method = "GET", status = 400, body = "{}" },
                 { method = "GET", status = 503, body = "{}", times = 3 } })
    local cf = client({ concurrency = 4 })
    local all, err = cf.impersonation_registry:all({ per_page = 2 })
    assert.is_nil(all)
    assert.is_table(err)
    -- (the pages that went out before the walk failed have all arrived)
    settle()
    local before = registry_pages(emu)
    local results = cf:concurrently({ 1 }, function() return cf.block_senders:list() end)
    assert.is_table(results[1][1])
    assert.are.same(before, registry_pages(emu))
  end)

  it("session:wait with a negative, NaN or -inf wait returns at once, a request in flight", function()
    -- (r15) they waited without limit, as no argument does
    local s = session(slow.token)
    finally(function() s:close() end)
    assert.is_number(s:start("GET", slow.base_url .. LIST_PATH))
    for _, seconds in ipairs({ -1, 0 / 0, -math.huge }) do
      local t0 = core.monotonic()
      local slot = s:wait(seconds)
      local took = core.monotonic() - t0
      assert.is_true(took < SLOW_MS / 4000,
                     ("wait(%s) took %.3f s and gave %s"):format(tostring(seconds), took, tostring(slot)))
      assert.is_nil(slot)
    end
    assert.are.equal(1, s:in_flight())
  end)

  it("an answer a join took while its batch was handed out is not kept again: the next all() works", function()
    -- (r16) a stand-in transport that gives a get's answer before the
    -- pages', pages last first, and holds page 2 of the first walk until
    -- the walk's first get has started (completion orders libcurl gives)
    local TOTAL = 12
    local function entry(i)
      return { id = ("00000000-0000-4000-8000-%012d"):format(i), name = "P" .. i, email = ("p%d@example.com"):format(i),
               is_email_regex = false, created_at = "2024-01-01T00:00:00Z",
               last_modified = "2024-01-01T00:00:00Z", modified_at = "2024-01-01T00:00:00Z",
               provenance = "A1S_INTERNAL" }
    end
    local answers, pending_slots, n, closed, gets = {}, {}, 0, false, 0
    local fake = {
      start = function(_, _, url)
        n = n + 1
        if url:find("impersonation_registry%?") or url:find("impersonation_registry$") then
          local page = tonumber(url:match("[?&]page=(%d+)")) or 1
          local env = { success = true, errors = {}, messages = {}, result = { entry(page) },
                        result_info = { page = page, per_page = 1, count = 1, total_count = TOTAL } }
          answers[n] = { env.result, nil, env, kind = "list", page = page }
        else
          local env = { success = true, errors = {}, messages = {}, result = entry(tonumber(url:match("(%d+)$"))) }
          answers[n] = { env.result, nil, env, kind = "get" }
          gets = gets + 1
        end
        pending_slots[#pending_slots + 1] = n
        return n
      end,
      wait = function()
        local ready = {}
        for _, slot in ipairs(pending_slots) do
          if not (answers[slot].page == 2 and gets == 0) then ready[#ready + 1] = slot end
        end
        if #ready == 0 then return nil end
        table.sort(ready, function(a, b)
          local x, y = answers[a], answers[b]
          if x.kind ~= y.kind then return x.kind == "get" end
          return (x.page or 0) > (y.page or 0)
        end)
        for i, slot in ipairs(pending_slots) do
          if slot == ready[1] then
            table.remove(pending_slots, i)
            break
          end
        end
        return ready[1]
      end,
      answer = function(_, slot)
        if slot == nil then error("answer(nil): a request taken twice", 2) end
        local a = answers[slot]
        answers[slot] = nil
        return a[1], a[2], a[3]
      end,
      is_closed = function() return closed end,
      close = function() closed = true end,
    }
    function fake.request(self, method, url)
      local slot = self:start(method, url)
      for i, x in ipairs(pending_slots) do
        if x == slot then
          table.remove(pending_slots, i)
          break
        end
      end
      return self:answer(slot)
    end
    local cf, st = client_on(fake, { concurrency = 4 })
    local results = cf:concurrently({ 1 }, function()
      local walked = 0
      -- the walk's iterator called by hand, not by a generic for: PUC Lua
      -- 5.1 cannot yield from a for's iterator
      local next_entry = cf.impersonation_registry:each({ per_page = 1 })
      while true do
        local e, err = next_entry()
        if e == nil then break end
        if not e then return nil, err end
        walked = walked + 1
        local _, gerr = cf.impersonation_registry:get(e.id)
        if gerr then return nil, gerr end
      end
      return walked
    end)
    assert.are.same({ TOTAL }, { results[1][1], results[1][2] })
    assert.are.equal(0, #(st.flight.arrived or {}), "answers left unread after the walk")
    local ok, all, err = pcall(cf.impersonation_registry.all, cf.impersonation_registry, { per_page = 1 })
    assert.is_true(ok, tostring(all))
    assert.is_nil(err)
    assert.are.equal(TOTAL, #all)
  end)
end)
