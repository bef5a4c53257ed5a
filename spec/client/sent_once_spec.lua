-- A create is sent at most once, whatever the connection does. libcurl
-- sends a request again by itself, body included, when a reused keep-alive
-- connection dies before any byte of the answer: for a POST that would be a
-- second entry behind the caller's back. The module hands a create's body
-- to libcurl in a way it cannot rewind, so libcurl cannot send it twice; the
-- create then fails as ambiguous, and is not retried. The emulator's
-- `reused` fault does just that to a connection: read the whole request
-- that arrives on a reused one, then close it without answering.
local es = require("cloudflare.email_security")
local emulator_process = require("emulator.process")
local socket = require("socket")

local ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"
local FIELDS = { name = "Once", email = "once@example.com", is_email_regex = false }

describe("a create on a connection that dies unanswered", function()
  local emu, sleeps

  local function client(opts)
    opts = opts or {}
    opts.account_id, opts.api_token, opts.base_url = ACCOUNT, emu.token, emu.base_url
    opts.sleep = function(s) sleeps[#sleeps + 1] = s end
    return es.new(opts)
  end

  lazy_setup(function() emu = emulator_process.start() end)
  lazy_teardown(function() if emu then emu.stop() end end)
  before_each(function()
    emu.reset()
    sleeps = {}
  end)

  for _, retries in ipairs({ 0, 2 }) do
    it(("reaches the server once and fails as ambiguous, unretried (max_retries = %d)"):format(retries), function()
      local cf = client({ max_retries = retries })
      local reg = cf.impersonation_registry
      assert(reg:list())                  -- leaves a kept-alive connection behind
      emu.fault({ method = "POST", reused = true, close = true })
      local made, err = reg:create(FIELDS)
      cf:close()
      assert.is_nil(made, "the caller must not see success for a create it cannot vouch for")
      assert.are.same({ "transport", 1 }, { err.kind, err.attempts })
      assert.matches("it may have acted", err.message, 1, true)
      assert.are.equal(1, emu.count("POST"), "POSTs that reached the server")
      assert.are.same({}, sleeps)
    end)
  end

  it("is not retried when the reconnect libcurl tries is then refused", function()
    local cf = client()
    local reg = cf.impersonation_registry
    assert(reg:list())
    -- the port stays closed for a moment after the POST: libcurl's own
    -- attempt to send again meets a refused connect, which must not be
    -- taken for "nothing was sent"
    emu.fault({ method = "POST", reused = true, close = true, refuse_ms = 300 })
    local made, err = reg:create(FIELDS)
    cf:close()
    socket.sleep(0.4)                   -- the emulator listens again
    assert.is_nil(made)
    assert.are.same({ "transport", 1, true }, { err.kind, err.attempts, err.sent })
    assert.are.same({}, sleeps)
    assert.are.equal(1, emu.count("POST"))
  end)

  it("is not sent again after a 201 whose body was cut, whatever x-should-retry says", function()
    local cf = client()
    emu.fault({ method = "POST", truncate_to = 10, headers = { ["x-should-retry"] = "true" } })
    local made, err = cf.impersonation_registry:create(FIELDS)
    cf:close()
    assert.is_nil(made)
    assert.are.same({ "transport", 201, 1 }, { err.kind, err.status, err.attempts })
    assert.are.equal(1, emu.count("POST"))
    assert.are.equal(1, #emu.state(ACCOUNT), "the create happened, once")
  end)

  it("says nothing was sent when libcurl refuses the request before sending it", function()
    local cf = client()
    local reg = cf.impersonation_registry
    assert(reg:list())                  -- a call that sent its request
    local page, err = reg:list({ search = ("x"):rep(8 * 1000 * 1000) })    -- a URL too long for libcurl
    cf:close()
    assert.is_nil(page)
    assert.are.same({ "transport", 43 }, { err.kind, err.curl_code })
    assert.is_nil(err.sent, "no request went out")
    assert.is_nil(err.status, "no status of an earlier call")
    assert.are.equal(1, emu.count("GET"))
  end)

  it("fails as ambiguous, sent once, when a new connection dies unanswered", function()
    local cf = client()
    emu.fault({ method = "POST", close = true })
    local made, err = cf.impersonation_registry:create(FIELDS)
    cf:close()
    assert.is_nil(made)
    assert.are.same({ "transport", 52, 1 }, { err.kind, err.curl_code, err.attempts })
    assert.are.equal(1, emu.count("POST"))
  end)

  it("goes out on a new connection, and succeeds, when the server closed the old one between calls", function()
    local cf = client({ max_retries = 0 })
    local reg = cf.impersonation_registry
    emu.fault({ method = "GET", close_after = true })
    assert(reg:list())
    local made, err = reg:create(FIELDS)
    cf:close()
    assert.is_nil(err)
    assert.are.equal("Once", made.name)
    local reqs = emu.requests()
    assert.are_not.equal(reqs[1].connection, reqs[2].connection)
    assert.are.equal(1, emu.count("POST"))
  end)

  it("still reuses the kept-alive connection, as every other call does", function()
    local cf = client()
    local reg = cf.impersonation_registry
    assert(reg:list())
    local made = assert(reg:create(FIELDS))
    assert(reg:get(made.id))
    cf:close()
    local reqs = emu.requests()
    assert.are.same({ reqs[1].connection, reqs[1].connection }, { reqs[2].connection, reqs[3].connection })
  end)

  it("lets an update on the same fault be sent again, and succeed", function()
    local cf = client({ max_retries = 0 })
    local reg = cf.impersonation_registry
    local made = assert(reg:create(FIELDS))
    assert(reg:get(made.id))
    emu.fault({ method = "PATCH", reused = true, close = true })
    local updated, err = reg:update(made.id, { name = "Twice" })
    cf:close()
    assert.is_nil(err)
    assert.are.equal("Twice", updated.name)
    assert.are.equal(2, emu.count("PATCH"), "libcurl sent the PATCH again on a new connection")
  end)
end)
