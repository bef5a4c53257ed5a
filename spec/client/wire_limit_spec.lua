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
