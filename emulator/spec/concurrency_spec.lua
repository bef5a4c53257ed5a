-- The emulator serves connections at once, and says how many requests it
-- had in flight at once: the client opens up to 64 HTTP/1.1 connections
-- at a time, and its specs and benchmarks need the server's own count and
-- a latency that makes requests overlap (PUT /__emulator/latency,
-- --latency). Raw luasocket connections, so nothing between the spec and
-- the server queues or serialises anything.
local socket = require("socket")
local cjson = require("cjson")
local emulator_process = require("emulator.process")

local function collection(acct)
  return "/client/v4/accounts/" .. acct .. "/email-security/settings/impersonation_registry"
end

---------------------------------------------------------------------------
-- A raw HTTP/1.1 client that sends first and reads later, so that many
-- requests are out at once
---------------------------------------------------------------------------

local function connect(emu)
  local c = assert(socket.connect("127.0.0.1", emu.port))
  c:settimeout(10)
  return c
end

local function send(c, emu, method, path, body, headers)
  local lines = { method .. " " .. path .. " HTTP/1.1", "Host: 127.0.0.1", "Authorization: Bearer " .. emu.token }
  for k, v in pairs(headers or {}) do lines[#lines + 1] = k .. ": " .. v end
  if body then lines[#lines + 1] = "Content-Length: " .. #body end
  assert(c:send(table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or "")))
end

-- { status, headers, body, json }, or nil and the error when no answer came.
local function receive(c)
  local line, err = c:receive("*l")
  if not line then return nil, err end
  local res = { status = tonumber(line:match("^HTTP/1%.1 (%d%d%d) ")), headers = {} }
  while true do
    local h = assert(c:receive("*l"))
    if h == "" then break end
    local k, v = h:match("^([^:]+):%s*(.*)$")
    res.headers[k:lower()] = v
  end
  res.body = assert(c:receive(tonumber(res.headers["content-length"] or "0")))
  local ok, value = pcall(cjson.decode, res.body)
  if ok then res.json = value end
  return res
end

-- A control call of its own (on a connection of its own).
local function control(emu, method, route, body)
  local c = connect(emu)
  send(c, emu, method, "/__emulator/" .. route, body, { Connection = "close" })
  local res = assert(receive(c))
  c:close()
  return res
end

-- n accounts, each seeded with one entry of its own, so an answer shows
-- which request it belongs to.
local function seed_accounts(emu, n)
  local accounts = {}
  for i = 1, n do
    accounts[i] = ("acct-%02d"):format(i)
    emu.seed(accounts[i], { { name = "Person " .. i, email = ("p%02d@example.com"):format(i), is_email_regex = false } })
  end
  return accounts
end

-- n connections, all open before any request goes; then one GET of a list
-- on each; then every answer read. The wall time and the answers.
local function list_at_once(emu, accounts)
  local conns = {}
  for i = 1, #accounts do conns[i] = connect(emu) end
  local t0 = socket.gettime()
  for i, c in ipairs(conns) do send(c, emu, "GET", collection(accounts[i])) end
  local answers = {}
  for i, c in ipairs(conns) do
    answers[i] = assert(receive(c))
    c:close()
  end
  return socket.gettime() - t0, answers
end

local function assert_answers(accounts, answers)
  for i, res in ipairs(answers) do
    assert.are.equal(200, res.status, res.body)
    assert.is_true(res.json.success)
    assert.are.equal(1, #res.json.result, "one entry for " .. accounts[i])
    assert.are.equal("Person " .. i, res.json.result[1].name, "the answer of " .. accounts[i])
    assert.are.same({ count = 1, page = 1, per_page = 20, total_count = 1 }, res.json.result_info)
  end
end

describe("the emulator under concurrent requests", function()
  local emu

  lazy_setup(function() emu = emulator_process.start() end)
  lazy_teardown(function() if emu then emu.stop() end end)
  before_each(function() emu.reset() end)

  for _, n in ipairs({ 16, 64 }) do
    it(("serves %d connections at once: %d in flight, in far less than %d latencies"):format(n, n, n), function()
      local accounts = seed_accounts(emu, n)
      emu.latency(200, 0)
      local took, answers = list_at_once(emu, accounts)
      assert_answers(accounts, answers)
      assert.are.same({ current = 0, max = n }, emu.in_flight())
      assert.is_true(took >= 0.2, "the latency was applied: " .. took .. " s")
      assert.is_true(took < n * 0.2 / 2, n .. " answers took " .. took .. " s")
      assert.are.equal(n, #emu.requests())
    end)
  end

  it("goes on serving others while one request is paused by a delay_ms fault", function()
    local accounts = seed_accounts(emu, 9)
    emu.latency(200, 0)
    emu.fault({ path = "/accounts/acct-01/", delay_ms = 1500 })
    local t0 = socket.gettime()
    local slow = connect(emu)
    send(slow, emu, "GET", collection(accounts[1]))
    local others = {}
    for i = 2, 9 do others[i - 1] = accounts[i] end
    local took, answers = list_at_once(emu, others)
    for i, res in ipairs(answers) do
      assert.are.equal(200, res.status)
      assert.are.equal("Person " .. (i + 1), res.json.result[1].name)
    end
    assert.is_true(took < 1, "the others took " .. took .. " s")
    assert.are.same({ current = 1, max = 9 }, emu.in_flight(), "the paused one is still in flight")
    local res = assert(receive(slow))
    slow:close()
    assert.are.equal("Person 1", res.json.result[1].name)
    local slow_time = socket.gettime() - t0
    assert.is_true(slow_time >= 1.65, "latency and delay add up: " .. slow_time .. " s")
    assert.are.same({ current = 0, max = 9 }, emu.in_flight())
  end)

  describe("GET /__emulator/in_flight", function()
    it("counts API requests only, and DELETE sets max back to current", function()
      assert.are.same({ current = 0, max = 0 }, emu.in_flight())
      emu.latency(600, 0)
      local conns = {}
      for i = 1, 3 do
        conns[i] = connect(emu)
        send(conns[i], emu, "GET", collection("a" .. i))
      end
      socket.sleep(0.2)
      -- control requests meanwhile are neither delayed nor counted
      local t0 = socket.gettime()
      assert.are.same({ current = 3, max = 3 }, emu.in_flight())
      assert.are.same({ current = 3, max = 3 }, cjson.decode(control(emu, "GET", "in_flight").body))
      assert.is_true(socket.gettime() - t0 < 0.3, "control routes wait for no latency")
      receive(conns[1])
      conns[1]:close()
      local after_one = emu.in_flight()
      assert.is_true(after_one.current <= 2 and after_one.max == 3, cjson.encode(after_one))
      for i = 2, 3 do
        assert.are.equal(200, assert(receive(conns[i])).status)
        conns[i]:close()
      end
      assert.are.same({ current = 0, max = 3 }, emu.in_flight())
      assert.are.same({ current = 0, max = 0 }, emu.reset_in_flight())
      assert.are.same({ current = 0, max = 0 }, emu.in_flight())
    end)

    it("DELETE keeps what is still in flight, and reset does the same", function()
      emu.latency(500, 0)
      local conns = {}
      for i = 1, 2 do
        conns[i] = connect(emu)
        send(conns[i], emu, "GET", collection("a" .. i))
      end
      socket.sleep(0.2)
      local extra = connect(emu)
      send(extra, emu, "GET", collection("b"))
      socket.sleep(0.1)
      assert.are.same({ current = 3, max = 3 }, emu.in_flight())
      receive(conns[1])
      conns[1]:close()
      -- the first two end together; the third is still out
      receive(conns[2])
      conns[2]:close()
      assert.are.same({ current = 1, max = 3 }, emu.in_flight())
      assert.are.same({ current = 1, max = 1 }, emu.reset_in_flight())
      emu.reset()
      assert.are.same({ current = 1, max = 1 }, emu.in_flight(), "reset keeps what is in flight")
      assert.are.equal(200, assert(receive(extra)).status)
      extra:close()
      assert.are.same({ current = 0, max = 1 }, emu.in_flight())
      emu.reset()
      assert.are.same({ current = 0, max = 0 }, emu.in_flight())
    end)

    it("a request ends its flight when its connection is dropped or its client gave up", function()
      emu.fault({ close = true })
      local c = connect(emu)
      send(c, emu, "GET", collection("a"))
      assert.is_nil(receive(c))
      c:close()
      assert.are.same({ current = 0, max = 1 }, emu.in_flight())

      emu.latency(300, 300)
      c = connect(emu)
      send(c, emu, "POST", collection("a"), '{"name":"A","email":"a@example.com","is_email_regex":false}')
      socket.sleep(0.1)
      c:close()
      assert.are.equal(1, emu.in_flight().current, "counted until the server finds out, after its latency")
      socket.sleep(0.4)
      assert.are.same({ current = 0, max = 1 }, emu.in_flight())
      assert.are.equal(1, #emu.state("a"), "it acted even though nobody heard the answer")
    end)

    it("takes no other method", function()
      assert.are.equal(405, control(emu, "POST", "in_flight", "{}").status)
      assert.are.equal(405, control(emu, "PUT", "in_flight", "{}").status)
    end)
  end)

  describe("PUT /__emulator/latency", function()
    it("answers and GET tells the values; read_ms for GET, write_ms for the other methods", function()
      assert.are.same({ read_ms = 0, write_ms = 400 }, emu.latency(0, 400))
      assert.are.same({ read_ms = 0, write_ms = 400 }, cjson.decode(control(emu, "GET", "latency").body))
      local c = connect(emu)
      local t0 = socket.gettime()
      send(c, emu, "GET", collection("a"))
      assert.are.equal(200, assert(receive(c)).status)
      local read_time = socket.gettime() - t0
      t0 = socket.gettime()
      send(c, emu, "POST", collection("a"), '{"name":"A","email":"a@example.com","is_email_regex":false}')
      assert.are.equal(201, assert(receive(c)).status)
      local write_time = socket.gettime() - t0
      t0 = socket.gettime()
      send(c, emu, "DELETE", collection("a") .. "/nope")
      assert.are.equal(404, assert(receive(c)).status)
      local delete_time = socket.gettime() - t0
      c:close()
      assert.is_true(read_time < 0.3, "GET took " .. read_time .. " s")
      assert.is_true(write_time >= 0.39, "POST took " .. write_time .. " s")
      assert.is_true(delete_time >= 0.39, "DELETE took " .. delete_time .. " s")
    end)

    it("a field not given is 0, and reset goes back to 0 and 0", function()
      local res = control(emu, "PUT", "latency", '{"write_ms":150}')
      assert.are.equal(200, res.status)
      assert.are.same({ read_ms = 0, write_ms = 150 }, res.json)
      emu.latency(10, 20)
      emu.reset()
      assert.are.same({ read_ms = 0, write_ms = 0 }, control(emu, "GET", "latency").json)
    end)

    it("refuses with 400 what is not {read_ms, write_ms} in 0..60000, and keeps the values it had", function()
      emu.latency(25, 35)
      for body, message in pairs({
        ['{"read_ms":-1}'] = "latency read_ms must be a number of milliseconds, 0..60000",
        ['{"read_ms":60001}'] = "latency read_ms must be a number of milliseconds, 0..60000",
        ['{"write_ms":"50"}'] = "latency write_ms must be a number of milliseconds, 0..60000",
        ['{"read_ms":null}'] = "latency read_ms must be a number of milliseconds, 0..60000",
        ['{"read_ms":1,"wrte_ms":2}'] = "unknown latency field wrte_ms",
        ['[50,150]'] = "latency takes {read_ms: 0..60000, write_ms: 0..60000}",
        ['{"read_ms":'] = "latency takes {read_ms: 0..60000, write_ms: 0..60000}",
      }) do
        local res = control(emu, "PUT", "latency", body)
        assert.are.equal(400, res.status, body)
        assert.are.same({ error = message }, res.json, body)
      end
      assert.are.same({ read_ms = 25, write_ms = 35 }, control(emu, "GET", "latency").json)
      assert.are.same({ read_ms = 60000, write_ms = 0 }, emu.latency(60000, 0), "60000 is allowed")
      assert.are.equal(405, control(emu, "POST", "latency", "{}").status)
    end)
  end)
end)

describe("the emulator's --latency", function()
  it("READ_MS,WRITE_MS is where it starts, and what a reset goes back to", function()
    local emu = emulator_process.start({ latency = { read_ms = 250, write_ms = 50 } })
    local ok, err = pcall(function()
      assert.are.same({ read_ms = 250, write_ms = 50 }, control(emu, "GET", "latency").json)
      emu.latency(0, 0)
      emu.reset()
      assert.are.same({ read_ms = 250, write_ms = 50 }, control(emu, "GET", "latency").json)
      local c = connect(emu)
      local t0 = socket.gettime()
      send(c, emu, "GET", collection("a"))
      assert.are.equal(200, assert(receive(c)).status)
      c:close()
      local took = socket.gettime() - t0
      assert.is_true(took >= 0.24, "GET took " .. took .. " s")
    end)
    emu.stop()
    assert(ok, err)
  end)

  local function run(args)
    local p = assert(io.popen("lua5.4 emulator/main.lua --port 0 --idle-exit 1 " .. args .. " 2>&1; echo \"rc=$?\""))
    local out = p:read("*a")
    p:close()
    return out
  end

  it("one value is both", function()
    local latency = require("emulator.latency")
    assert.are.same({ read_ms = 40, write_ms = 40 }, latency.parse("40"))
    assert.are.same({ read_ms = 0, write_ms = 60000 }, latency.parse("0,60000"))
    local out = run("--latency 40")
    -- started, then idle for a second: it took the value
    assert.matches("^listening on", out)
    assert.matches("rc=0", out, 1, true)
  end)

  it("refuses anything but READ_MS[,WRITE_MS] in 0..60000, with exit status 2", function()
    for _, value in ipairs({ "abc", "60001", "-1", "1,2,3", "1,", ",1", "50,x", "''" }) do
      local out = run("--latency " .. value)
      assert.matches("--latency takes READ_MS[,WRITE_MS], milliseconds 0..60000 each", out, 1, true)
      assert.matches("rc=2", out, 1, true)
      assert.is_nil(out:find("listening", 1, true), value)
    end
  end)
end)
