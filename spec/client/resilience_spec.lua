-- Faults of the network and of the API, injected by the emulator: what is
-- retried, what never is, and what the caller sees.
local es = require("cloudflare.email_security")
local emulator_process = require("emulator.process")
local socket = require("socket")

local ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"
local HTML = "<html><head><title>%d: Cloudflare error</title></head><body>edge</body></html>"

describe("resilience against the emulator's faults", function()
  local emu, sleeps

  -- A client whose sleeps are recorded, not slept, unless real = true.
  local function client(opts, real)
    opts = opts or {}
    opts.account_id, opts.api_token, opts.base_url = ACCOUNT, emu.token, opts.base_url or emu.base_url
    if not real then opts.sleep = function(s) sleeps[#sleeps + 1] = s end end
    return es.new(opts)
  end

  local function entry(reg)
    return assert(reg:create({ name = "A", email = "a@example.com", is_email_regex = false }))
  end

  lazy_setup(function() emu = emulator_process.start() end)
  lazy_teardown(function() if emu then emu.stop() end end)
  before_each(function()
    emu.reset()
    sleeps = {}
  end)

  it("reconnects, unseen, when the server closed the kept-alive connection between calls", function()
    local cf = client({ max_retries = 0 })
    local reg = cf.impersonation_registry
    emu.fault({ method = "POST", close_after = true })
    local made = entry(reg)
    local got, err = reg:get(made.id)
    cf:close()
    assert.is_nil(err)
    assert.are.equal(made.id, got.id)
    local reqs = emu.requests()
    assert.are_not.equal(reqs[1].connection, reqs[2].connection, "the second call used a new connection")
  end)

  it("retries a read after a reset in the middle of the body", function()
    local cf = client()
    local made = entry(cf.impersonation_registry)
    emu.fault({ method = "GET", status = 200, body = string.rep(" ", 200) .. "{}", truncate_to = 50, reset = true })
    local got, err = cf.impersonation_registry:get(made.id)
    cf:close()
    assert.is_nil(err)
    assert.are.equal(made.id, got.id)
    assert.are.equal(2, emu.count("GET"))
  end)

  it("reports the reset as a transport error when retries are off", function()
    local cf = client({ max_retries = 0 })
    emu.fault({ method = "GET", status = 200, body = string.rep(" ", 200) .. "{}", truncate_to = 50, reset = true })
    local got, err = cf.impersonation_registry:list()
    cf:close()
    assert.is_nil(got)
    assert.are.equal("transport", err.kind)
    assert.are.equal(1, err.attempts)
  end)

  it("times out on headers slower than the timeout, then retries a read", function()
    local cf = client({ timeout = 0.3 })
    emu.fault({ method = "GET", delay_ms = 1500 })
    local page, err = cf.impersonation_registry:list()
    cf:close()
    assert.is_nil(err)
    assert.is_table(page)
    assert.are.equal(1, #sleeps)
  end)

  it("times out on a body slower than the timeout", function()
    local cf = client({ timeout = 0.3, max_retries = 0 })
    emu.fault({ method = "GET", body_delay_ms = 1500 })
    local page, err = cf.impersonation_registry:list()
    cf:close()
    assert.is_nil(page)
    assert.are.equal("timeout", err.kind)
  end)

  it("waits as long as Retry-After asks on a 429, then succeeds (real sleep)", function()
    local cf = client({}, true)
    emu.fault({ method = "GET", status = 429, headers = { ["Retry-After"] = "1", ["Content-Type"] = "application/json" },
                body = '{"success":false,"errors":[{"code":10013,"message":"Rate limited"}],"messages":[],"result":null}' })
    local t0 = socket.gettime()
    local page, err = cf.impersonation_registry:list()
    local waited = socket.gettime() - t0
    cf:close()
    assert.is_nil(err)
    assert.is_table(page)
    assert.is_true(waited >= 1, "waited " .. waited .. " s")
    assert.are.equal(2, emu.count("GET"))
  end)

  it("retries a 503 twice with backoff, then succeeds", function()
    local cf = client()
    local made = entry(cf.impersonation_registry)
    emu.fault({ method = "PATCH", times = 2, status = 503, headers = { ["Content-Type"] = "text/html" },
                body = HTML:format(503) })
    local updated, err = cf.impersonation_registry:update(made.id, { name = "B" })
    cf:close()
    assert.is_nil(err)
    assert.are.equal("B", updated.name)
    assert.are.equal(3, emu.count("PATCH"))
    assert.are.equal(2, #sleeps)
    assert.is_true(sleeps[1] >= 0.375 and sleeps[1] <= 0.5, tostring(sleeps[1]))
    assert.is_true(sleeps[2] >= 0.75 and sleeps[2] <= 1, tostring(sleeps[2]))
  end)

  it("gives up after max_retries and says how many attempts were made", function()
    local cf = client({ max_retries = 2 })
    emu.fault({ method = "DELETE", times = 5, status = 503, body = HTML:format(503) })
    local gone, err = cf.impersonation_registry:delete("f174e90a-fafe-4643-bbbc-4a0ed4fc8415")
    cf:close()
    assert.is_nil(gone)
    assert.are.same({ "http", 503, 3 }, { err.kind, err.status, err.attempts })
    assert.are.equal(3, emu.count("DELETE"))
  end)

  it("never retries a create that got a 500: exactly one entry exists", function()
    local cf = client()
    emu.fault({ method = "POST", after = true, status = 500, headers = { ["Content-Type"] = "text/html" },
                body = HTML:format(500) })
    local made, err = cf.impersonation_registry:create({ name = "Once", email = "once@example.com",
                                                         is_email_regex = false })
    cf:close()
    assert.is_nil(made)
    assert.are.same({ "http", 500, 1 }, { err.kind, err.status, err.attempts })
    assert.are.equal(1, emu.count("POST"))
    assert.are.equal(1, #emu.state(ACCOUNT), "the create happened once")
    assert.are.same({}, sleeps)
  end)

  it("never retries a create that timed out", function()
    local cf = client({ timeout = 0.3 })
    emu.fault({ method = "POST", delay_ms = 1000 })
    local made, err = cf.impersonation_registry:create({ name = "Slow", email = "s@example.com", is_email_regex = false })
    cf:close()
    assert.is_nil(made)
    assert.are.same({ "timeout", 1 }, { err.kind, err.attempts })
    assert.are.equal(1, emu.count("POST"))
  end)

  it("retries a create on 429, which did not act", function()
    local cf = client()
    emu.fault({ method = "POST", status = 429, headers = { ["Retry-After"] = "2" }, body = "" })
    local made, err = cf.impersonation_registry:create({ name = "Later", email = "l@example.com", is_email_regex = false })
    cf:close()
    assert.is_nil(err)
    assert.is_string(made.id)
    assert.are.same({ 2 }, sleeps)
    assert.are.equal(1, #emu.state(ACCOUNT))
  end)

  it("retries a create when the connection was refused", function()
    local s = assert(socket.bind("127.0.0.1", 0))
    local _, port = s:getsockname()
    s:close()
    local cf = client({ base_url = "http://127.0.0.1:" .. port .. "/client/v4" })
    local made, err = cf.impersonation_registry:create({ name = "X", email = "x@example.com", is_email_regex = false })
    cf:close()
    assert.is_nil(made)
    assert.are.same({ "transport", 3 }, { err.kind, err.attempts })
    assert.are.equal(2, #sleeps)
  end)

  for _, asked in ipairs({ { ["Retry-After"] = "3600" }, { ["retry-after-ms"] = "3600000" } }) do
    local name, value = next(asked)
    it("does not retry when " .. name .. " asks for longer than max_retry_wait, and says when", function()
      local cf = client({ max_retry_wait = 10 })
      emu.fault({ method = "GET", status = 503, headers = { [name] = value }, body = HTML:format(503) })
      local page, err = cf.impersonation_registry:list()
      cf:close()
      assert.is_nil(page)
      assert.are.same({ 503, 1, 3600 }, { err.status, err.attempts, err.retry_after })
      assert.matches("the API asks to retry after 3600 s", tostring(err), 1, true)
      assert.are.same({}, sleeps)
      assert.are.equal(1, emu.count("GET"))
    end)
  end

  it("obeys x-should-retry: false", function()
    local cf = client()
    emu.fault({ method = "GET", status = 503, headers = { ["x-should-retry"] = "false" }, body = HTML:format(503) })
    local page, err = cf.impersonation_registry:list()
    cf:close()
    assert.is_nil(page)
    assert.are.same({ 503, 1 }, { err.status, err.attempts })
  end)

  for _, status in ipairs({ 502, 520, 524 }) do
    it("reports an HTML " .. status .. " page as an http error with its title", function()
      local cf = client({ max_retries = 0 })
      emu.fault({ status = status, headers = { ["Content-Type"] = "text/html; charset=UTF-8" }, body = HTML:format(status) })
      local page, err = cf.impersonation_registry:list()
      cf:close()
      assert.is_nil(page)
      assert.are.same({ "http", status }, { err.kind, err.status })
      assert.are.equal(status .. ": Cloudflare error", err.excerpt)
    end)
  end

  it("reads a chunked body", function()
    local cf = client()
    emu.seed(ACCOUNT, { { name = "Chunky", email = "c@example.com", is_email_regex = false } })
    emu.fault({ method = "GET", chunked = true, chunk_size = 5 })
    local page, err = cf.impersonation_registry:list()
    cf:close()
    assert.is_nil(err)
    assert.are.equal("Chunky", page[1].name)
  end)

  it("asks for and reads a gzip-compressed body", function()
    local cf = client()
    emu.seed(ACCOUNT, { { name = "Zipped", email = "z@example.com", is_email_regex = false } })
    emu.fault({ method = "GET", gzip = true })
    local page, err = cf.impersonation_registry:list()
    cf:close()
    assert.is_nil(err)
    assert.are.equal("Zipped", page[1].name)
    assert.matches("gzip", emu.requests()[1].headers["accept-encoding"], 1, true)
  end)

  it("reads a gzip answer it did not ask for (a server may compress when the request names no coding)", function()
    local cf = client({ max_retries = 0 })
    local made = assert(cf.impersonation_registry:create({ name = "A", email = "a@example.com",
                                                           is_email_regex = false }))
    emu.fault({ method = "PATCH", gzip = true })
    emu.fault({ method = "POST", gzip = true })
    local updated, err = cf.impersonation_registry:update(made.id, { name = "Zipped" })
    assert.is_nil(err)
    assert.are.equal("Zipped", updated.name)
    local again
    again, err = cf.impersonation_registry:create({ name = "B", email = "b@example.com", is_email_regex = false })
    assert.is_nil(err)
    assert.are.equal("B", again.name)
    cf:close()
    local requests = emu.requests()
    assert.is_nil(requests[#requests].headers["accept-encoding"])
    assert.is_nil(requests[#requests - 1].headers["accept-encoding"])
  end)

  it("asks for gzip only where an answer can be large: a list page, a batch; not for one entry", function()
    local cf = client()
    local made = assert(cf.impersonation_registry:create({ name = "A", email = "a@example.com",
                                                           is_email_regex = false }))
    assert(cf.impersonation_registry:list())
    assert(cf.impersonation_registry:get(made.id))
    assert(cf.impersonation_registry:update(made.id, { name = "B" }))
    assert(cf.impersonation_registry:list())
    assert(cf.allow_policies:batch({ posts = { { pattern = "x@example.com", pattern_type = "EMAIL",
      is_regex = false, is_trusted_sender = false, is_exempt_recipient = false, is_acceptable_sender = true,
      verify_sender = true } } }))
    assert(cf.impersonation_registry:delete(made.id))
    cf:close()
    local asked = {}
    for _, r in ipairs(emu.requests()) do
      asked[#asked + 1] = r.method .. " " .. (r.headers["accept-encoding"] or "-")
    end
    assert.are.same({ "POST -", "GET gzip", "GET -", "PATCH -", "GET gzip", "POST gzip", "DELETE -" }, asked)
  end)

  local function served(body)
    local cf = client({ max_retries = 0 })
    emu.fault({ method = "GET", status = 200, headers = { ["Content-Type"] = "application/json" }, body = body })
    local page, err = cf.impersonation_registry:list()
    cf:close()
    return page, err
  end

  it("refuses invalid UTF-8 in an answer", function()
    local page, err = served('{"success":true,"errors":[],"messages":[],"result":[{"name":"\192\128"}]}')
    assert.is_nil(page)
    assert.matches("UTF%-8", err.message)
  end)

  it("refuses JSON nested deeper than any real answer", function()
    local page, err = served('{"success":true,"result":' .. ("["):rep(100000) .. ("]"):rep(100000) .. "}")
    assert.is_nil(page)
    assert.are.equal("http", err.kind)
  end)

  it("refuses an integer beyond 2^53 rather than round it", function()
    local page, err = served('{"success":true,"errors":[],"messages":[],"result":[{"directory_id":18014398509481985}]}')
    assert.is_nil(page)
    assert.matches("2^53", err.message, 1, true)
  end)

  describe("client-side rate limit", function()
    it("paces a burst so that no more than `requests` start in `per` seconds", function()
      local cf = client({ rate_limit = { requests = 3, per = 60 } })
      for _ = 1, 4 do assert(cf.impersonation_registry:list()) end
      cf:close()
      assert.are.equal(1, #sleeps, "the fourth call waited")
      assert.is_true(sleeps[1] > 59 and sleeps[1] <= 60, tostring(sleeps[1]))
    end)

    it("waits at most max_retry_wait when the RateLimit reset is far off", function()
      local cf = client({ max_retry_wait = 5 })
      emu.fault({ method = "GET", headers = { RateLimit = '"default";r=0;t=999999999' } })
      assert(cf.impersonation_registry:list())
      assert(cf.impersonation_registry:list())
      cf:close()
      assert.are.equal(1, #sleeps)
      assert.is_true(sleeps[1] > 4 and sleeps[1] <= 5, tostring(sleeps[1]))
    end)

    it("slows down when the API's RateLimit header says the budget is spent", function()
      local cf = client()
      emu.fault({ method = "GET", headers = { RateLimit = '"default";r=0;t=7', ["RateLimit-Policy"] = '"default";q=1200;w=300' } })
      assert(cf.impersonation_registry:list())
      assert(cf.impersonation_registry:list())
      cf:close()
      assert.are.equal(1, #sleeps)
      assert.is_true(sleeps[1] > 6 and sleeps[1] <= 7, tostring(sleeps[1]))
    end)
  end)
end)
