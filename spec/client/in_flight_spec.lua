-- Requests in flight at once (issue 24), against the emulator: listings
-- that fetch the pages after the first ahead and still walk them in page
-- order with every check; cf:concurrently; apply of single changes
-- `concurrency` at a time, faults and all; the rate limit and a 429's hold
-- across everything in flight; a client closed or dropped with requests in
-- flight; and how many pages a walk holds ahead.
--
-- Counts come from the server (its most in flight at once, its request
-- log) rather than from wall time; where time matters (the pacer, a 429's
-- hold) the times are the client's own log lines, on core.monotonic().
local es = require("cloudflare.email_security")
local core = require("cloudflare.email_security.core")
local emulator_process = require("emulator.process")
local client_internals = require("cloudflare.email_security.client").internals
local cjson = require("cjson")
local socket = require("socket")

local ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"
local START = "cloudflare.email_security: > "
local MISSING_ID = "00000000-0000-4000-8000-000000000000"

local function registry(i, prefix)
  return { name = "Person " .. i, email = ("%s%04d@example.com"):format(prefix or "p", i), is_email_regex = false }
end

local function registries(from, to, prefix)
  local out = {}
  for i = from, to do out[#out + 1] = registry(i, prefix) end
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

local function count(emu, method)
  local n = 0
  for _, r in ipairs(emu.requests()) do
    if r.method == method then n = n + 1 end
  end
  return n
end

local function ids_of(list)
  local out = {}
  for i, e in ipairs(list) do out[i] = e.id end
  return out
end

-- A list page the emulator answers in place of the real one: status 200,
-- JSON, `entries`, and a result_info without `page` (so that whichever
-- page it lands on, only what it is meant to contradict does).
local function page_fault(entries, info)
  local body = cjson.encode({ success = true, errors = {}, messages = {}, result = entries, result_info = info })
  return { method = "GET", status = 200, body = body, headers = { ["Content-Type"] = "application/json" } }
end

-- n entries shaped like the registry's, with ids no other page holds.
local function made_up_entries(n)
  local out = {}
  for i = 1, n do
    out[i] = { id = ("ffffffff-0000-4000-8000-%012d"):format(i), name = "Made up " .. i,
               email = ("madeup%d@example.com"):format(i), is_email_regex = false,
               created_at = "2024-01-01T00:00:00Z", last_modified = "2024-01-01T00:00:00Z" }
  end
  return out
end

-- Faults that match the next n requests of `method` and do nothing: the
-- fault after them goes to the (n+1)th to arrive.
local function pass(method, n) return { method = method, times = n } end

describe("requests in flight", function()
  local emu
  local clients = {}

  -- A client of the emulator; closed after each case.
  local function client(opts)
    local o = { api_token = "t", account_id = ACCOUNT, base_url = emu.base_url, max_retry_wait = 0.05 }
    for k, v in pairs(opts or {}) do o[k] = v end
    local cf = es.new(o)
    clients[#clients + 1] = cf
    return cf
  end

  -- A log function that keeps (time, line) for every line.
  local function recorder()
    local lines = {}
    return lines, function(line) lines[#lines + 1] = { t = core.monotonic(), line = line } end
  end

  local function start_times(lines)
    local out = {}
    for _, l in ipairs(lines) do
      if l.line:sub(1, #START) == START then out[#out + 1] = l.t end
    end
    return out
  end

  -- Waits until the server is quiet: nothing in flight and no request
  -- arriving for a while. A client closed with requests in flight may have
  -- sent them (they sit in the kernel's buffers): they must not reach the
  -- next case, its request log and its faults.
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

  lazy_setup(function() emu = emulator_process.start({ token = "t" }) end)
  lazy_teardown(function() if emu then emu.stop() end end)
  before_each(function() emu.reset() end)
  after_each(function()
    for _, cf in ipairs(clients) do cf:close() end
    clients = {}
    emu.latency(0, 0)
    settle()
  end)

  describe("a listing", function()
    for _, concurrency in ipairs({ 1, 4, 8 }) do
      it(("with concurrency %d: every entry once, in the server's order; each page asked for once, at most %d "
          .. "at a time"):format(concurrency, concurrency), function()
        local stored = emu.seed(ACCOUNT, registries(1, 60))
        emu.latency(30, 0)
        emu.reset_in_flight()
        local cf = client({ concurrency = concurrency })
        local all = assert(cf.impersonation_registry:all({ per_page = 5 }))
        assert.are.same(ids_of(stored), ids_of(all))
        local asked = pages_requested(emu)
        table.sort(asked)
        assert.are.same({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 }, asked)
        local max = emu.in_flight().max
        if concurrency == 1 then
          assert.are.equal(1, max)
        else
          assert.is_true(max > 1, "pages were fetched one at a time: " .. max)
          assert.is_true(max <= concurrency, max .. " in flight with concurrency " .. concurrency)
        end
      end)
    end

    it("run inside cf:concurrently, several at once, keeps the client's concurrency in all", function()
      -- each listing fetches its pages ahead as tasks of its own, inside
      -- the task of cf:concurrently: only the scheduler's limit holds them
      local stored = emu.seed(ACCOUNT, registries(1, 60))
      emu.latency(20, 0)
      emu.reset_in_flight()
      local cf = client({ concurrency = 3 })
      local results = cf:concurrently({ 1, 2, 3, 4, 5 }, function()
        return cf.impersonation_registry:all({ per_page = 5 })
      end)
      for i = 1, 5 do
        assert.is_nil(results[i][2])
        assert.are.same(ids_of(stored), ids_of(results[i][1]))
      end
      assert.are.equal(5 * 12, count(emu, "GET"))
      local max = emu.in_flight().max
      assert.is_true(max > 1 and max <= 3, max .. " in flight with concurrency 3")
    end)

    describe("whose total_count changes while it is walked", function()
      it("another client's create between pages: listing_moved, and no entry after the error", function()
        emu.seed(ACCOUNT, registries(1, 60))
        emu.latency(10, 0)
        local cf = client({ concurrency = 4 })
        local other = client({ concurrency = 1 })
        local walk = cf.impersonation_registry:each({ per_page = 5 })
        local walked = 0
        for _ = 1, 7 do
          assert.is_truthy(walk())
          walked = walked + 1
        end
        assert(other.impersonation_registry:create(registry(61, "other")))
        local err
        while true do
          local e, e_err = walk()
          if e == nil then break end
          if e == false then
            err = e_err
            break
          end
          walked = walked + 1
        end
        assert.is_table(err, "the walk ended without an error after " .. walked .. " entries")
        assert.is_true(err.listing_moved)
        assert.are.equal("http", err.kind)
        assert.truthy(tostring(err):find("entries came or went during the walk", 1, true), tostring(err))
        assert.truthy(tostring(err):find("the listing is not whole", 1, true), tostring(err))
        assert.is_true(walked < 61)
        assert.is_nil(walk(), "the walk ended")
      end)

      it("a page ahead answered with another total_count: all fails with listing_moved", function()
        emu.seed(ACCOUNT, registries(1, 60))
        -- page 1 first, then pages 2..5 at once: the third GET to arrive is one of them
        emu.faults({ pass("GET", 2), page_fault(made_up_entries(5), { per_page = 5, count = 5, total_count = 61 }) })
        local cf = client({ concurrency = 4 })
        local all, err = cf.impersonation_registry:all({ per_page = 5 })
        assert.is_nil(all)
        assert.is_true(err.listing_moved)
        assert.truthy(tostring(err):find("page 1 said total_count 60", 1, true), tostring(err))
        assert.truthy(tostring(err):find("says 61", 1, true), tostring(err))
      end)

      -- 2500 entries: three pages of 1000, the plan's page size
      local function seed_many()
        local stored = emu.seed(ACCOUNT, registries(1, 2500))
        local desired = {}
        for i, e in ipairs(stored) do desired[i] = { name = e.name, email = e.email, is_email_regex = false } end
        return desired
      end

      -- A log function that adds an entry on the server as page 2 is sent,
      -- `times` times.
      local function mover(times)
        local made = 0
        return function(line)
          if made < times and line:sub(1, #START) == START and line:find("page=2&", 1, true) then
            made = made + 1
            emu.seed(ACCOUNT, { registry(made, "moved") })
          end
        end, function() return made end
      end

      it("plan lists again and converges when it moved once", function()
        local desired = seed_many()
        local log = mover(1)
        local cf = client({ concurrency = 8, log = log })
        table.insert(desired, registry(1, "moved"))
        local p = assert(cf.impersonation_registry:plan(desired))
        assert.are.equal(0, p:changes())
        assert.are.equal(2501, #p.unchanged)
        local firsts = 0
        for _, page in ipairs(pages_requested(emu)) do
          if page == 1 then firsts = firsts + 1 end
        end
        assert.are.equal(2, firsts, "listed twice")
      end)

      it("plan reports it when it moved on each of its three tries", function()
        seed_many()
        local log, made = mover(10)
        local cf = client({ concurrency = 8, log = log })
        local p, err = cf.impersonation_registry:plan({})
        assert.is_nil(p)
        assert.is_true(err.listing_moved)
        assert.truthy(tostring(err):find("3 times in a row", 1, true), tostring(err))
        assert.are.equal(3, made())
        local firsts = 0
        for _, page in ipairs(pages_requested(emu)) do
          if page == 1 then firsts = firsts + 1 end
        end
        assert.are.equal(3, firsts)
      end)
    end)

    it("a page ahead that meets a 500 once is asked again: every entry, in order", function()
      local stored = emu.seed(ACCOUNT, registries(1, 60))
      emu.faults({ pass("GET", 2), { method = "GET", status = 500, body = "oops" } })
      local cf = client({ concurrency = 4 })
      local all = assert(cf.impersonation_registry:all({ per_page = 5 }))
      assert.are.same(ids_of(stored), ids_of(all))
      local asked = pages_requested(emu)
      assert.are.equal(13, #asked, "12 pages and one of them again")
      local twice = {}
      for _, page in ipairs(asked) do twice[page] = (twice[page] or 0) + 1 end
      local again = 0
      for page = 1, 12 do
        assert.is_truthy(twice[page], "page " .. page)
        if twice[page] == 2 then again = again + 1 end
      end
      assert.are.equal(1, again)
      assert.are.equal(0, emu.faults({}), "the 500 was met")
    end)

    it("a short page ahead while total_count says more is an error, never a shorter list", function()
      emu.seed(ACCOUNT, registries(1, 60))
      emu.faults({ pass("GET", 2), page_fault(made_up_entries(2), { per_page = 5, count = 2, total_count = 60 }) })
      local cf = client({ concurrency = 4 })
      local all, err = cf.impersonation_registry:all({ per_page = 5 })
      assert.is_nil(all)
      assert.are.equal("http", err.kind)
      assert.is_nil(err.listing_moved)
      assert.truthy(tostring(err):find("holds 2 entries of per_page 5, but total_count 60 says", 1, true),
                    tostring(err))
      assert.truthy(tostring(err):find("the listing is not whole", 1, true), tostring(err))

      -- each: the entries of the pages before it, then the error, then the
      -- end (a client of its own: the one above may still hold pages of
      -- the walk that failed, see "a walk let go")
      cf = client({ concurrency = 4 })
      settle()
      emu.reset()
      emu.seed(ACCOUNT, registries(1, 60))
      emu.faults({ pass("GET", 2), page_fault(made_up_entries(2), { per_page = 5, count = 2, total_count = 60 }) })
      local walked, failed = 0, nil
      local walk = cf.impersonation_registry:each({ per_page = 5 })
      while true do
        local e, e_err = walk()
        if e == nil then break end
        if e == false then
          failed = e_err
          break
        end
        assert.is_nil(e.id:find("^ffffffff"), "an entry of the short page was handed out")
        walked = walked + 1
      end
      assert.is_table(failed)
      assert.are.equal(0, walked % 5)
      assert.is_true(walked >= 5 and walked < 60, walked)
      assert.is_nil(walk())
    end)

    it("holds at most `concurrency` pages ahead of the one walked", function()
      emu.seed(ACCOUNT, registries(1, 100))
      -- the second page to arrive is slow: a walk that fetched on without
      -- bound would fetch every page while it waits for that one
      emu.faults({ pass("GET", 1), { method = "GET", delay_ms = 400 } })
      -- the most pages a walk holds ahead of the one it walks: the
      -- client's concurrency (issue 24)
      local AHEAD = 3
      local cf = client({ concurrency = 3 })
      local walk = cf.impersonation_registry:each({ per_page = 5 })
      local most_ahead = 0
      for i = 1, 100 do
        assert.is_truthy(walk())
        if i % 5 == 1 then
          local page = math.floor((i - 1) / 5) + 1
          local asked = #pages_requested(emu)
          assert.is_true(asked <= page + AHEAD, ("holding page %d, %d pages asked for (at most %d ahead)")
            :format(page, asked, AHEAD))
          if asked - page > most_ahead then most_ahead = asked - page end
        end
      end
      assert.is_nil(walk())
      local asked = pages_requested(emu)
      table.sort(asked)
      local want = {}
      for page = 1, 20 do want[page] = page end
      assert.are.same(want, asked)
      assert.is_true(most_ahead >= 1, "no page was fetched ahead")
    end)
  end)

  -- A walk's pages ahead go out as soon as the first page says how many
  -- there are (up to `concurrency`); a walk the caller lets go (a `for`
  -- left with break) leaves nothing queued that the next bulk call of the
  -- client would send first.
  it("a walk let go leaves no pages to be sent by the next bulk call", function()
    local stored = emu.seed(ACCOUNT, registries(1, 60))
    local lines, log = recorder()
    local cf = client({ concurrency = 4, log = log })
    local function sent()
      local n = 0
      for _, l in ipairs(lines) do
        if l.line:find("cloudflare.email_security: > GET", 1, true) then n = n + 1 end
      end
      return n
    end
    for _ in cf.impersonation_registry:each({ per_page = 5 }) do break end -- luacheck: ignore 512
    local walked = sent()
    assert.is_true(walked >= 1 and walked <= 5, walked .. " GETs for one page and 4 ahead at most")
    local results = cf:concurrently({ stored[1].id }, function(id) return cf.impersonation_registry:get(id) end)
    assert.are.equal(stored[1].id, results[1][1].id)
    -- the get, and nothing the walk left
    assert.are.equal(walked + 1, sent())
  end)

  describe("cf:concurrently", function()
    it("40 updates: results in the list's order, at most `concurrency` at once; one failure as it is alone",
      function()
      local stored = emu.seed(ACCOUNT, registries(1, 40))
      local ids = ids_of(stored)
      ids[7] = MISSING_ID
      emu.latency(0, 30)
      emu.reset_in_flight()
      local cf = client({ concurrency = 6 })
      local results = cf:concurrently(ids, function(id, i)
        return cf.impersonation_registry:update(id, { comments = "changed " .. i })
      end)
      assert.are.equal(40, #results)
      assert.are.equal(40, results.started)
      for i = 1, 40 do
        assert.are.equal(3, results[i].n)
        if i ~= 7 then
          assert.is_nil(results[i][2])
          assert.are.equal(ids[i], results[i][1].id)
          assert.are.equal("changed " .. i, results[i][1].comments)
        end
      end
      local max = emu.in_flight().max
      assert.is_true(max > 1 and max <= 6, max .. " in flight with concurrency 6")
      assert.are.equal(40, count(emu, "PATCH"))

      local err = results[7][2]
      assert.is_nil(results[7][1])
      local _, alone = cf.impersonation_registry:update(MISSING_ID, { comments = "changed 7" })
      for _, field in ipairs({ "kind", "status", "code", "message", "method", "path", "attempts" }) do
        assert.are.equal(alone[field], err[field], field)
      end
      local function without_ray(e) return (tostring(e):gsub("ray [%w%-]+", "ray")) end
      assert.are.equal(without_ray(alone), without_ray(err))
      assert.are.equal(404, err.status)
    end)

    it("stop_on_error: after the first failure nothing more starts", function()
      local stored = emu.seed(ACCOUNT, registries(1, 20))
      local ids = ids_of(stored)
      ids[1] = MISSING_ID
      emu.latency(0, 20)
      local cf = client({ concurrency = 2 })
      local results = cf:concurrently(ids, function(id)
        return cf.impersonation_registry:update(id, { comments = "x" })
      end, { stop_on_error = true })
      assert.is_true(results.started < #ids, "started " .. results.started)
      assert.is_true(results.started <= 4, "started " .. results.started)
      assert.are.equal(results.started, #results)
      assert.are.equal(404, results[1][2].status)
      assert.are.equal(results.started, count(emu, "PATCH"))
      -- without it, every item is tried
      local all = cf:concurrently(ids, function(id)
        return cf.impersonation_registry:update(id, { comments = "y" })
      end, { stop_on_error = false })
      assert.are.equal(20, all.started)
    end)

    it("an empty list makes no request; a function that returns nothing gives n = 0", function()
      local cf = client()
      local results = cf:concurrently({}, function() error("never called") end)
      assert.are.same({ started = 0 }, results)
      results = cf:concurrently({ "a", "b" }, function() end)
      assert.are.same({ { n = 0 }, { n = 0 }, started = 2 }, results)
      assert.are.equal(0, #emu.requests())
    end)

    it("raises on bad arguments, naming them", function()
      local cf = client()
      local fn = function() end
      local cases = {
        { { "ids", fn }, "bad argument #1 to 'concurrently' (table expected, got string)" },
        { { {}, "fn" }, "bad argument #2 to 'concurrently' (function expected, got string)" },
        { { {}, fn, 1 }, "bad argument #3 to 'concurrently' (table expected, got number)" },
        { { {}, fn, { stop_on_eror = true } }, "unknown option 'stop_on_eror'" },
        { { {}, fn, { stop_on_error = "yes" } }, "stop_on_error must be true or false" },
      }
      for _, case in ipairs(cases) do
        local ok, message = pcall(function() cf:concurrently(case[1][1], case[1][2], case[1][3]) end)
        assert.is_false(ok)
        assert.truthy(tostring(message):find(case[2], 1, true), tostring(message))
        -- at the caller's line
        assert.truthy(tostring(message):find("in_flight_spec.lua:%d+:"), tostring(message))
      end
      assert.are.equal(0, #emu.requests())
    end)

    it("an error raised by fn is raised by concurrently, after what is in flight ends", function()
      local stored = emu.seed(ACCOUNT, registries(1, 4))
      emu.latency(0, 50)
      local cf = client({ concurrency = 4 })
      local ok, message = pcall(cf.concurrently, cf, ids_of(stored), function(id, i)
        if i == 2 then error("item two refused") end
        return cf.impersonation_registry:update(id, { comments = "z" })
      end)
      assert.is_false(ok)
      assert.truthy(tostring(message):find("item two refused", 1, true), tostring(message))
      assert.are.equal(0, emu.in_flight().current)
      assert.is_false(cf:is_closed())
      -- and the client goes on working
      assert(cf.impersonation_registry:get(stored[1].id))
    end)
  end)

  describe("apply without a batch endpoint", function()
    it("1000 creates meeting a 429, a 500 after acting and a cut connection: an exact report, then it converges, "
       .. "no create sent twice", function()
      local desired = registries(1, 1000)
      -- over 1000 requests in all: rate_limit = false, or the default
      -- budget for bulk work (1000 per 5 minutes) would hold the last ones
      local cf = client({ concurrency = 8, max_retry_wait = 2, rate_limit = false })
      emu.faults({
        pass("POST", 200),
        -- refused before acting: sent again after a second
        { method = "POST", status = 429, headers = { ["Retry-After"] = "1" } },
        pass("POST", 300),
        -- acted, then the answer is a 500
        { method = "POST", after = true, status = 500, body = "oops" },
        -- acted, then the connection is reset with the answer cut
        { method = "POST", truncate_to = 0, reset = true },
      })
      local p = assert(cf.impersonation_registry:plan(desired))
      assert.are.equal(1000, #p.creates)
      local summary, err = p:apply()
      assert.is_nil(summary)
      local failed = err.failed_requests or 1
      assert.is_true(failed == 1 or failed == 2, tostring(failed))
      assert.is_true(err.may_exist)
      assert.are.same({ creates = failed, updates = 0, deletes = 0 }, err.in_doubt)
      assert.are.equal(1000, err.applied.created + err.in_doubt.creates + err.remaining.creates)
      assert.are.same({ 0, 0 }, { err.applied.updated, err.applied.deleted })
      assert.are.same({ 0, 0 }, { err.remaining.updates, err.remaining.deletes })
      assert.truthy(tostring(err):find(("%d created"):format(err.applied.created), 1, true), tostring(err))
      assert.truthy(tostring(err):find(("%d creates, 0 updates, 0 deletes in doubt"):format(failed), 1, true),
                    tostring(err))
      assert.truthy(tostring(err):find(("%d creates, 0 updates, 0 deletes not done"):format(err.remaining.creates),
                                       1, true), tostring(err))
      -- every failure acted: what is in doubt is on the server
      local state = emu.state(ACCOUNT)
      assert.are.equal(err.applied.created + err.in_doubt.creates, #state)
      -- one POST per create started, and the 429's again
      assert.are.equal(err.applied.created + err.in_doubt.creates + 1, count(emu, "POST"))
      assert.is_true(err.remaining.creates > 0, "nothing more started after the failure")

      -- plan and apply again until nothing is left (twice when the cut
      -- connection came after the first apply had stopped)
      local rounds = 1
      while true do
        p = assert(cf.impersonation_registry:plan(desired))
        if p:changes() == 0 then break end
        assert.are.equal(0, #p.updates + #p.deletes)
        rounds = rounds + 1
        assert.is_true(rounds <= 3, "did not converge")
        summary, err = p:apply()
        if not summary then
          assert.are.equal(#p.creates, err.applied.created + err.in_doubt.creates + err.remaining.creates)
        end
      end
      assert.are.equal(0, emu.faults({}), "every fault was met")

      state = emu.state(ACCOUNT)
      assert.are.equal(1000, #state)
      local seen = {}
      for _, e in ipairs(state) do
        assert.is_nil(seen[e.email], "duplicate " .. e.email)
        seen[e.email] = true
      end
      -- every create reached the server once; only the one refused with 429 twice
      local posted, total = {}, 0
      for _, r in ipairs(emu.requests()) do
        if r.method == "POST" then
          local email = cjson.decode(r.body).email
          posted[email] = (posted[email] or 0) + 1
          total = total + 1
        end
      end
      local twice = 0
      for i = 1, 1000 do
        local n = posted[desired[i].email]
        assert.is_truthy(n, desired[i].email .. " never sent")
        assert.is_true(n <= 2, desired[i].email .. " sent " .. n .. " times")
        if n == 2 then twice = twice + 1 end
      end
      assert.are.equal(1, twice)
      assert.are.equal(1001, total)
    end)
  end)

  describe("pacing with many in flight", function()
    it("rate_limit { requests = 5, per = 0.5 } holds with 8 in flight", function()
      local stored = emu.seed(ACCOUNT, registries(1, 1))
      local lines, log = recorder()
      local cf = client({ concurrency = 8, rate_limit = { requests = 5, per = 0.5 }, log = log })
      local list = {}
      for i = 1, 20 do list[i] = stored[1].id end
      local results = cf:concurrently(list, function(id) return cf.impersonation_registry:get(id) end)
      for i = 1, 20 do assert.are.equal(stored[1].id, results[i][1].id) end
      local starts = start_times(lines)
      assert.are.equal(20, #starts)
      -- no 0.5 s holds a sixth start: start i+5 is at least 0.5 s after start i
      for i = 1, #starts - 5 do
        local gap = starts[i + 5] - starts[i]
        assert.is_true(gap >= 0.5 - 0.005, ("starts %d and %d are %.3f s apart"):format(i, i + 5, gap))
      end
      -- and the five the limit lets through go together, not one by one
      assert.is_true(starts[5] - starts[1] < 0.25, ("%.3f s for the first five"):format(starts[5] - starts[1]))
    end)

    it("with no rate_limit given, bulk work keeps to the default budget; single calls do not wait", function()
      local config = require("cloudflare.email_security.config")
      local default = config.DEFAULT_BULK_RATE_LIMIT
      -- the budget made small, so that it shows in a second
      config.DEFAULT_BULK_RATE_LIMIT = { requests = 3, per = 0.4 }
      local ok, why = pcall(function()
        local stored = emu.seed(ACCOUNT, registries(1, 1))
        local lines, log = recorder()
        local cf = client({ concurrency = 8, log = log })
        local list = {}
        for i = 1, 9 do list[i] = stored[1].id end
        local results = cf:concurrently(list, function(id) return cf.impersonation_registry:get(id) end)
        for i = 1, 9 do assert.are.equal(stored[1].id, results[i][1].id) end
        local starts = start_times(lines)
        assert.are.equal(9, #starts)
        for i = 1, #starts - 3 do
          local gap = starts[i + 3] - starts[i]
          assert.is_true(gap >= 0.4 - 0.005, ("starts %d and %d are %.3f s apart"):format(i, i + 3, gap))
        end
        -- one call after another is not held by it
        local t0 = core.monotonic()
        for _ = 1, 9 do assert(cf.impersonation_registry:get(stored[1].id)) end
        assert.is_true(core.monotonic() - t0 < 0.4, "9 single calls waited for the bulk budget")
        -- rate_limit = false: bulk work is not paced either
        local lines2, log2 = recorder()
        local free = client({ concurrency = 8, log = log2, rate_limit = false })
        free:concurrently(list, function(id) return free.impersonation_registry:get(id) end)
        local s2 = start_times(lines2)
        assert.is_true(s2[9] - s2[1] < 0.3, ("%.3f s for 9 starts with no limit"):format(s2[9] - s2[1]))
      end)
      config.DEFAULT_BULK_RATE_LIMIT = default
      assert(ok, why)
    end)

    it("a 429 with Retry-After holds every new start until then", function()
      local stored = emu.seed(ACCOUNT, registries(1, 1))
      emu.latency(50, 0)
      emu.faults({ pass("GET", 2), { method = "GET", status = 429, headers = { ["Retry-After"] = "1" } } })
      local lines, log = recorder()
      local cf = client({ concurrency = 4, max_retry_wait = 5, log = log })
      local list = {}
      for i = 1, 12 do list[i] = stored[1].id end
      local results = cf:concurrently(list, function(id) return cf.impersonation_registry:get(id) end)
      for i = 1, 12 do assert.are.equal(stored[1].id, results[i][1].id, tostring(results[i][2])) end
      assert.are.equal(13, count(emu, "GET"))
      local at
      for _, l in ipairs(lines) do
        if l.line:find("cloudflare.email_security: < ", 1, true) == 1 and l.line:find(" 429 in ", 1, true) then
          assert.is_nil(at, "one 429")
          at = l.t
        end
      end
      assert.is_number(at, "the 429 was logged")
      local after, next_start = 0, nil
      for _, t in ipairs(start_times(lines)) do
        if t > at then
          after = after + 1
          next_start = next_start or t
        end
      end
      assert.is_true(after > 0)
      assert.is_true(next_start - at >= 0.9, ("a request started %.3f s after the 429"):format(next_start - at))
    end)

    it("a Retry-After past max_retry_wait fails that call at once and holds nothing", function()
      local stored = emu.seed(ACCOUNT, registries(1, 1))
      emu.latency(20, 0)
      emu.faults({ pass("GET", 2), { method = "GET", status = 429, headers = { ["Retry-After"] = "30" } } })
      local cf = client({ concurrency = 4, max_retry_wait = 0.5 })
      local list = {}
      for i = 1, 12 do list[i] = stored[1].id end
      local t0 = core.monotonic()
      local results = cf:concurrently(list, function(id) return cf.impersonation_registry:get(id) end)
      local took = core.monotonic() - t0
      local failed = 0
      for i = 1, 12 do
        local err = results[i][2]
        if err then
          failed = failed + 1
          assert.are.equal(429, err.status)
          assert.are.equal(30, err.retry_after)
        end
      end
      assert.are.equal(1, failed)
      assert.are.equal(12, count(emu, "GET"))
      assert.is_true(took < 5, ("took %.3f s"):format(took))
    end)
  end)

  -- PENDING: a known bug, reported with issue 24. With nothing in flight,
  -- the scheduler sleeps until the first retry is due, and then (f.slept)
  -- starts the first retry in its list whether or not that one is due, and
  -- lets it past the pacer: a request answered 429 goes again before its
  -- Retry-After, and a retry goes past the client's rate limit. The same
  -- calls one at a time (concurrency 1) keep both. Turn into `it` once that
  -- is mended.
  describe("retries after an idle wait", function()
    it("a request answered 429 is not sent again before its Retry-After, whatever else is due", function()
      local stored = emu.seed(ACCOUNT, registries(1, 2))
      -- the first to arrive gets the 429, the other a 500 (retried after
      -- its backoff, under half a second)
      emu.faults({ { method = "GET", status = 429, headers = { ["Retry-After"] = "1" } },
                   { method = "GET", status = 500 } })
      local lines, log = recorder()
      local cf = client({ concurrency = 2, max_retry_wait = 2, log = log })
      cf:concurrently(ids_of(stored), function(id) return cf.impersonation_registry:get(id) end)
      local at
      for _, l in ipairs(lines) do
        if l.line:find(" 429 in ", 1, true) and l.line:sub(1, 29) == "cloudflare.email_security: < " then at = l.t end
      end
      local starts = start_times(lines)
      assert.are.equal(4, #starts)
      -- today: the 429's request goes again after about 0.45 s
      for i = 3, 4 do
        assert.is_true(starts[i] - at >= 0.95, ("a start %.3f s after the 429"):format(starts[i] - at))
      end
    end)

    it("a retry keeps the rate limit", function()
      local stored = emu.seed(ACCOUNT, registries(1, 1))
      emu.fault({ method = "GET", status = 500 })
      local lines, log = recorder()
      local cf = client({ concurrency = 2, rate_limit = { requests = 2, per = 1 }, log = log })
      cf:concurrently({ stored[1].id, stored[1].id }, function(id) return cf.impersonation_registry:get(id) end)
      local starts = start_times(lines)
      assert.are.equal(3, #starts)
      -- today: the third start is 0.05 s after the first
      assert.is_true(starts[3] - starts[1] >= 0.995, ("%.3f s"):format(starts[3] - starts[1]))
    end)
  end)

  describe("a client closed or dropped with requests in flight", function()
    it("closed by fn: the others end with transport errors, a create with may_exist; later calls raise", function()
      -- four creates go at once; the first answer closes the client
      emu.latency(0, 150)
      local cf = client({ concurrency = 4 })
      local closed = false
      local results = cf:concurrently(registries(1, 4), function(entry)
        local result, err = cf.impersonation_registry:create(entry)
        if not closed then
          closed = true
          cf:close()
        end
        return result, err
      end)
      assert.is_true(cf:is_closed())
      local created, cut = 0, 0
      for i = 1, 4 do
        local result, err = results[i][1], results[i][2]
        if result then
          created = created + 1
        else
          cut = cut + 1
          assert.are.equal("transport", err.kind)
          assert.is_true(err.may_exist)
          assert.is_true(err.sent)
          assert.truthy(tostring(err):find("closed with this request in flight", 1, true), tostring(err))
        end
      end
      assert.are.same({ 1, 3 }, { created, cut })
      -- later calls raise
      assert.has_error(function() cf.impersonation_registry:get(MISSING_ID) end,
                       "attempt to use a closed cloudflare.email_security client")
      local ok, message = pcall(function() return cf.impersonation_registry:all() end)
      assert.is_false(ok)
      assert.truthy(tostring(message):find("closed", 1, true), tostring(message))
      ok, message = pcall(function() return cf:concurrently({ 1 }, function() end) end)
      assert.is_false(ok)
      assert.truthy(tostring(message):find("attempt to use a closed", 1, true), tostring(message))
      -- what reached the server was created: may_exist was right
      settle()
      assert.are.equal(4, count(emu, "POST"))
      assert.are.equal(4, #emu.state(ACCOUNT))
    end)

    it("closed by fn with items not yet started: their calls raise, and concurrently passes that on", function()
      emu.latency(0, 100)
      local cf = client({ concurrency = 2 })
      local closed = false
      local ok, message = pcall(cf.concurrently, cf, registries(1, 6), function(entry)
        local result, err = cf.impersonation_registry:create(entry)
        if not closed then
          closed = true
          cf:close()
        end
        return result, err
      end)
      assert.is_false(ok)
      assert.truthy(tostring(message):find("attempt to use a closed", 1, true), tostring(message))
      assert.is_true(count(emu, "POST") <= 2)
    end)

    it("a listing closed between pages: the page in hand, then an error; nothing crashes", function()
      emu.seed(ACCOUNT, registries(1, 60))
      emu.latency(30, 0)
      local cf = client({ concurrency = 4 })
      local walk = cf.impersonation_registry:each({ per_page = 5 })
      for _ = 1, 6 do assert.is_truthy(walk()) end
      cf:close()
      local walked, err = 6, nil -- luacheck: ignore 311
      while true do
        local ok, e, e_err = pcall(walk)
        if not ok then
          err = e
          break
        end
        if not e then
          err = e_err
          break
        end
        walked = walked + 1
      end
      assert.are.equal(10, walked, "the rest of page 2, which had arrived")
      assert.truthy(tostring(err):find("closed", 1, true), tostring(err))
    end)

    it("a client dropped with pages in flight is collected without a crash", function()
      emu.seed(ACCOUNT, registries(1, 60))
      -- page 1 and one more answer at once; the others are held
      emu.faults({ pass("GET", 2), { method = "GET", delay_ms = 500, times = 10 } })
      local weak = setmetatable({}, { __mode = "v" })
      local in_flight = 0
      do
        local cf = es.new({ api_token = "t", account_id = ACCOUNT, base_url = emu.base_url, concurrency = 4 })
        local walk = cf.impersonation_registry:each({ per_page = 5 })
        -- on until the client has requests out that it has not read
        for _ = 1, 60 do
          assert.is_truthy(walk())
          local flight = client_internals(cf).flight
          in_flight = flight and flight.running or 0
          if in_flight > 0 then break end
        end
        weak.cf, weak.walk = cf, walk
      end
      assert.is_true(in_flight > 0, "pages were in flight when the client was dropped")
      collectgarbage()
      collectgarbage()
      assert.is_nil(weak.walk)
      assert.is_nil(weak.cf)
      -- the process and the server go on
      local cf = client()
      assert.are.equal(60, #assert(cf.impersonation_registry:all()))
    end)
  end)
end)
