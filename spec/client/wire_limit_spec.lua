-- The C transport's own limit on the wire (src/flight.c, session:limit):
-- requests started past it wait in the transport and go out, in the order
-- started, the moment one on the wire ends, while Lua is busy elsewhere
-- (a listing reading a page). What the server sees stays within the limit;
-- the pacer counts a request held back from when it went out.
local es = require("cloudflare.email_security")
local core = require("cloudflare.email_security.core")
local pacer = require("cloudflare.email_security.pacer")
local emulator_process = require("emulator.process")
local client_internals = require("cloudflare.email_security.client").internals
local socket = require("socket")
local files = require("spec.support.files")

local ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"
local PATH = "/accounts/" .. ACCOUNT .. "/email-security/settings/impersonation_registry"

local function registries(n)
  local out = {}
  for i = 1, n do out[i] = { name = "Person " .. i, email = ("p%04d@example.com"):format(i), is_email_regex = false } end
  return out
end

-- The page numbers of the list GETs the server saw, in the order they arrived.
local function pages_requested(emu)
  local out = {}
  for _, r in ipairs(emu.requests()) do
    if r.method == "GET" then out[#out + 1] = tonumber((r.query or ""):match("page=(%d+)")) end
  end
  return out
end

describe("the transport's limit on the wire", function()
  local emu
  lazy_setup(function() emu = emulator_process.start({ token = "t" }) end)
  lazy_teardown(function() if emu then emu.stop() end end)
  before_each(function()
    emu.reset()
    emu.reset_in_flight()
  end)
  after_each(function() emu.latency(0, 0) end)

  it("sends what waits past it, in the order started, while Lua does not look", function()
    emu.seed(ACCOUNT, registries(5))
    emu.latency(100, 0)
    local session = core.new({ user_agent = "spec", headers = { "Authorization: Bearer t" }, timeout_ms = 10000,
                               connect_timeout_ms = 5000, max_response_size = 1e6 })
    session:limit(1)
    local started_at = core.monotonic()
    local slots = {}
    for page = 1, 3 do
      slots[page] = assert(session:start("GET", ("%s%s?page=%d&per_page=2"):format(emu.base_url, PATH, page)))
    end
    -- Lua busy elsewhere (asking the emulator, on sockets of its own)
    -- until the server has answered all three, one after the other
    local deadline = socket.gettime() + 10
    repeat
      socket.sleep(0.05)
    until (#pages_requested(emu) == 3 and emu.in_flight().current == 0) or socket.gettime() > deadline
    local looked_at = core.monotonic()
    local sent = {}
    for _ = 1, 3 do
      local slot = assert(session:wait(5))
      for page, s in ipairs(slots) do
        if s == slot then sent[page] = session:sent_at(slot) end
      end
      local result, err = session:answer(slot)
      assert(result, tostring(err))
    end
    assert.is_nil(session:wait(0))
    -- one at a time, in the order started, each as the one before ended
    assert.are.equal(1, emu.in_flight().max)
    assert.are.same({ 1, 2, 3 }, pages_requested(emu))
    for page = 1, 3 do assert.is_number(sent[page], "page " .. page .. " went out") end
    assert.is_true(sent[1] - started_at < 0.05, ("page 1 went out %.3f s after its start"):format(sent[1] - started_at))
    for page = 2, 3 do
      local gap = sent[page] - sent[page - 1]
      assert.is_true(gap >= 0.09, ("page %d went out %.3f s after page %d"):format(page, gap, page - 1))
    end
    -- all of it before Lua looked: the transport's thread sent them
    assert.is_true(sent[3] < looked_at, "page 3 waited for Lua to look")
    session:close()
  end)

  it("answers read without a wait leave no reports that push out one a wait is still to give", function()
    -- (an answer is meant to be read after session:wait gave its slot;
    -- read before, its report must not pile up past the slots and push out
    -- the report of a request finished earlier and not yet given)
    emu.seed(ACCOUNT, registries(1))
    local session = core.new({ user_agent = "spec", headers = { "Authorization: Bearer t" }, timeout_ms = 10000,
                               connect_timeout_ms = 5000, max_response_size = 1e6 })
    local url = emu.base_url .. PATH .. "?per_page=1"
    local first = assert(session:start("GET", url))
    local deadline = socket.gettime() + 5
    repeat socket.sleep(0.01) until (#emu.requests() == 1 and emu.in_flight().current == 0)
      or socket.gettime() > deadline
    for _ = 1, 330 do
      local slot = assert(session:start("GET", url))
      local ok, result = pcall(session.answer, session, slot)
      while not ok and socket.gettime() < deadline + 10 do
        socket.sleep(0.001)
        ok, result = pcall(session.answer, session, slot)
      end
      assert(ok and result, tostring(result))
    end
    assert.are.equal(first, session:wait(5))
    assert(session:answer(first))
    assert.is_nil(session:wait(0))
    assert.are.equal(0, session:in_flight())
    session:close()
  end)

  it("a child forked while the requests' thread runs makes a flight of its own; the parent's goes on", function()
    -- fork and waitpid through a small module built here (Lua has neither)
    if not files.command_output("command -v cc 2>/dev/null"):find("cc", 1, true) then
      return pending("no C compiler (cc) to build spec/support/fork_for_spec.c")
    end
    local lua_pc = rawget(_G, "jit") and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"))
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    finally(function() os.execute("rm -rf " .. dir) end)
    local built = files.command_output(("cc -shared -fPIC $(pkg-config --cflags %s 2>/dev/null) -o %s/fork_for_spec.so"
      .. " spec/support/fork_for_spec.c 2>&1; echo \"exit=$?\""):format(lua_pc, dir))
    assert.matches("exit=0$", built)
    local fork = package.loadlib(dir .. "/fork_for_spec.so", "luaopen_fork_for_spec")()
    emu.seed(ACCOUNT, registries(30))
    local cf = es.new({ api_token = "t", account_id = ACCOUNT, base_url = emu.base_url, concurrency = 4 })
    local reg = cf.impersonation_registry
    assert.are.equal(30, #assert(reg:all({ per_page = 5 })))
    local pid = fork.fork()
    if pid == 0 then
      -- the child: a hang ends by SIGALRM; anything but 30 entries is 1
      fork.alarm(20)
      local ok, list = pcall(reg.all, reg, { per_page = 5 })
      fork.exit((ok and list and #list == 30) and 0 or 1)
    end
    assert.are.equal(0, fork.wait(pid), "the child's listing did not end with every entry")
    assert.are.equal(30, #assert(reg:all({ per_page = 5 })))
    cf:close()
  end)

  it("refuses a limit that is no count of slots, naming it", function()
    local session = core.new({ user_agent = "spec", timeout_ms = 1000, connect_timeout_ms = 1000,
                               max_response_size = 1e6 })
    for _, bad in ipairs({ 0, -1, 321, 1.5, 0 / 0, math.huge }) do
      local ok, err = pcall(session.limit, session, bad)
      assert.is_false(ok)
      assert.truthy(tostring(err):find("the limit must be a whole number from 1 to 320", 1, true), tostring(err))
    end
    session:close()
  end)

  it("a listing's pages held back go out as pages end; the server sees at most `concurrency`", function()
    local stored = emu.seed(ACCOUNT, registries(60))
    emu.latency(30, 0)
    local cf = es.new({ api_token = "t", account_id = ACCOUNT, base_url = emu.base_url, concurrency = 2 })
    local all = assert(cf.impersonation_registry:all({ per_page = 5 }))
    assert.are.equal(#stored, #all)
    for i, e in ipairs(all) do assert.are.equal(stored[i].id, e.id) end
    assert.are.equal(2, emu.in_flight().max)
    -- the listing handed the transport more than it let out: pages ahead
    -- held back (scheduler.lua's f.ahead)
    local flight = client_internals(cf).flight
    assert.are.equal(2, flight.ahead)
    cf:close()
  end)

  -- The list GETs' arrival times at the server (socket.gettime()'s clock).
  local function get_arrivals()
    local out = {}
    for _, r in ipairs(emu.requests()) do
      if r.method == "GET" then out[#out + 1] = r.at end
    end
    return out
  end

  it("a 429 takes back the pages held back: none reaches the server before its Retry-After", function()
    emu.seed(ACCOUNT, registries(30))
    -- every GET answered after 200 ms but the fourth (page 1, then two on
    -- the wire, then this), which meets the 429 at once: the page beside
    -- it is still on the wire, and would make room for one held back
    emu.faults({ { method = "GET", delay_ms = 200, times = 3 },
                 { method = "GET", status = 429, headers = { ["Retry-After"] = "1" } },
                 { method = "GET", delay_ms = 200, times = 100 } })
    local cf = es.new({ api_token = "t", account_id = ACCOUNT, base_url = emu.base_url, concurrency = 2,
                        max_retry_wait = 5 })
    local all = assert(cf.impersonation_registry:all({ per_page = 1 }))
    assert.are.equal(30, #all)
    local at = get_arrivals()
    for i = 5, #at do
      local after = at[i] - at[4]
      assert.is_false(after > 0.05 and after < 0.95, ("GET %d arrived %.3f s after the 429"):format(i, after))
    end
    cf:close()
  end)

  it("a listing that fails lets go of the pages held back: none goes out after it returns", function()
    emu.seed(ACCOUNT, registries(30))
    emu.latency(200, 0)
    emu.faults({ { method = "GET", times = 3 }, { method = "GET", status = 400,
      body = '{"success":false,"errors":[{"code":1000,"message":"bad"}],"messages":[],"result":null}',
      headers = { ["Content-Type"] = "application/json" } } })
    local cf = es.new({ api_token = "t", account_id = ACCOUNT, base_url = emu.base_url, concurrency = 2 })
    local all, err = cf.impersonation_registry:all({ per_page = 1 })
    local returned = socket.gettime()
    assert.is_nil(all)
    assert.are.equal(400, err.status)
    socket.sleep(0.6)
    for i, t in ipairs(get_arrivals()) do
      assert.is_true(t < returned + 0.05, ("GET %d arrived %.3f s after the listing failed"):format(i, t - returned))
    end
    cf:close()
  end)

  it("after Ctrl-C the pages held back never go out", function()
    emu.seed(ACCOUNT, registries(30))
    emu.latency(200, 0)
    local starts, interrupted_at = 0, nil
    -- the tool's Ctrl-C is a flag the scheduler reads (state.interrupted):
    -- raised here as the sixth request starts, when pages are held back
    local cf = es.new({ api_token = "t", account_id = ACCOUNT, base_url = emu.base_url, concurrency = 2,
                        log = function(line)
                          if line:find("> GET", 1, true) then
                            starts = starts + 1
                            if starts == 6 then interrupted_at = socket.gettime() end
                          end
                        end })
    client_internals(cf).interrupted = function() return interrupted_at ~= nil end
    local all, err = cf.impersonation_registry:all({ per_page = 1 })
    assert.is_nil(all)
    assert.truthy(tostring(err):find("interrupt", 1, true), tostring(err))
    socket.sleep(0.3)
    -- after the flag nothing more: the sixth was held back (the two before
    -- it were on the wire, the first pages' answers just read)
    local after = 0
    for _, t in ipairs(get_arrivals()) do
      if t > interrupted_at + 0.01 then after = after + 1 end
    end
    assert.are.equal(0, after, after .. " GETs arrived after Ctrl-C")
    cf:close()
  end)

  it("the pacer counts a page held back from when it went out", function()
    emu.seed(ACCOUNT, registries(10))
    emu.latency(100, 0)
    local cf = es.new({ api_token = "t", account_id = ACCOUNT, base_url = emu.base_url, concurrency = 2,
                        rate_limit = { requests = 100, per = 60 } })
    assert.are.equal(10, #assert(cf.impersonation_registry:all({ per_page = 2 })))
    -- page 1 alone, then pages 2 to 5 handed over at once: 2 and 3 went
    -- out then, 4 and 5 only as 2 and 3 ended, 100 ms later
    local starts = client_internals(cf).flight.pacer.starts
    assert.are.equal(5, #starts)
    local held = starts[4] - starts[2]
    assert.is_true(held >= 0.09, ("page 4 counted %.3f s after page 2"):format(held))
    assert.is_true(math.abs(starts[3] - starts[2]) < 0.03, "pages 2 and 3 went out together")
    cf:close()
  end)
end)

describe("the pacer's went_out", function()
  it("counts a request from when it went out, only where its place is still its own", function()
    local now = 0
    local p = pacer.new({ requests = 2, per = 1 }, function() return now end, 10)
    local first = p:started(0)
    p:started(0)
    -- both counted at 0: at 1 the oldest place is free again
    assert.are.equal(1, p:delay(0.5) + 0.5)
    -- the first went out only at 0.8: its place frees at 1.8
    p:went_out(first, 0, 0.8)
    assert.are.equal(0, p:delay(1.8))
    assert.is_true(math.abs(p:delay(1.0) - 0.8) < 1e-9)
    -- never earlier, and not a place taken again since
    p:went_out(first, 0.8, 0.5)
    assert.is_true(math.abs(p:delay(1.0) - 0.8) < 1e-9)
    local third = p:started(1.8)      -- the first's place
    assert.are.equal(first, third)
    p:went_out(first, 0, 5)
    assert.are.equal(1.8, p.starts[first])
    -- no limit: nothing counted, nothing to move
    local free = pacer.new(nil, function() return now end, 10)
    assert.is_nil(free:started(0))
    free:went_out(nil, 0, 1)
    assert.are.equal(0, free:delay(0))
  end)
end)
