-- One request and what each answer means for it (request.lua: no I/O, no
-- sleep), and the loop that sends it (scheduler.lua) through a stand-in
-- transport and a stand-in sleep.
local request = require("cloudflare.email_security.request")
local scheduler = require("cloudflare.email_security.scheduler")
local errors = require("cloudflare.email_security.errors")
local pacer = require("cloudflare.email_security.pacer")

local CFG = { max_retries = 2, max_retry_wait = 60, credential_source = "api_token" }
local PATH = "/accounts/a/email-security/settings/impersonation_registry/x"

local function api_error(status, code)
  return errors.new("api", "failed", { status = status, code = code })
end

describe("a request", function()
  it("is done with a success", function()
    local req = request.new("GET", PATH, "", nil, { permissions = {} })
    req[request.ATTEMPT] = 1
    local verdict, result, err = request.outcome(req, { id = "x" }, nil, nil, CFG)
    assert.are.same({ request.DONE, { id = "x" } }, { verdict, result })
    assert.is_nil(err)
  end)

  it("is tried again after a 5xx, when it is safe to repeat, and remembers it may have acted", function()
    local req = request.new("PATCH", PATH, "", "{}", {})
    req[request.ATTEMPT] = 1
    local verdict, delay = request.outcome(req, nil, api_error(503), nil, CFG)
    assert.are.equal(request.AGAIN, verdict)
    assert.is_true(delay > 0 and delay <= 0.5)
    assert.is_true(req[request.ACTED])
  end)

  it("sent at most once, is not tried again after a 5xx, and may exist", function()
    local req = request.new("POST", PATH, "", "{}", { once = true })
    req[request.ATTEMPT] = 1
    local verdict, result, err = request.outcome(req, nil, api_error(502), nil, CFG)
    assert.are.equal(request.DONE, verdict)
    assert.is_nil(result)
    assert.are.same({ 1, true, "POST", PATH }, { err.attempts, err.may_exist, err.method, err.path })
  end)

  it("takes a DELETE's 404 after a try that may have acted as done, but not a 404 for the route", function()
    local req = request.new("DELETE", PATH, "", nil, {}, "x")
    req[request.ATTEMPT], req[request.ACTED] = 2, true
    assert.are.same({ request.GONE, { id = "x" } }, { request.outcome(req, nil, api_error(404, 1003), nil, CFG) })
    local verdict, _, err = request.outcome(req, nil, api_error(404, 7003), nil, CFG)
    assert.are.same({ request.DONE, 404, true }, { verdict, err.status, err.acted_before })
  end)

  it("says whether a 404 is a gone entry, for the request and for plan:apply alike", function()
    assert.is_true(request.is_gone(api_error(404, 1003)))
    assert.is_false(request.is_gone(api_error(404, 7000)))
    assert.is_false(request.is_gone(api_error(404, 7003)))
    assert.is_false(request.is_gone(api_error(403, 10000)))
  end)
end)

describe("the request loop", function()
  -- answers: what each try returns, in turn
  local function state(answers)
    local sent, slept = {}, {}
    local st = {
      base_url = "http://127.0.0.1:1/client/v4",
      config = CFG,
      pacer = pacer.new(nil, function() return 0 end, 60),
      sleep = function(s) slept[#slept + 1] = s end,
      transport = {
        request = function(_, method, url, body, once, compressed)
          sent[#sent + 1] = { method, url, body, once, compressed }
          local a = answers[#sent]
          return a[1], a[2]
        end,
        is_closed = function() return false end,
        close = function() end,
      },
    }
    return st, sent, slept
  end

  it("sends, sleeps when the request says again, and returns what the request says is done", function()
    local st, sent, slept = state({ { nil, api_error(503) }, { { id = "x" } } })
    local result, err = scheduler.run_one(st, request.new("GET", PATH, "?a=1", nil, { compressed = true }))
    assert.is_nil(err)
    assert.are.same({ id = "x" }, result)
    assert.are.equal(2, #sent)
    assert.are.same({ "GET", st.base_url .. PATH .. "?a=1", nil, nil, true }, sent[2])
    assert.are.equal(1, #slept)
  end)

  it("makes each call a request of its own, a call made inside another call too", function()
    local st, sent = state({ { { id = "1" } }, { { id = "2" } }, { { id = "3" } } })
    assert.are.same({ id = "1" }, scheduler.call(st, "POST", PATH, "", "{}", { once = true }))
    -- a call made while another runs (a log function, a finalizer)
    local nested = false
    st.log = function()
      if nested then return end
      nested = true
      st.log = nil
      assert.are.same({ id = "2" }, scheduler.call(st, "GET", PATH, "", nil, {}))
    end
    assert.are.same({ id = "3" }, scheduler.call(st, "DELETE", PATH, "", nil, {}, "x"))
    assert.are.same({ "POST", true }, { sent[1][1], sent[1][4] })
    assert.are.same({ "GET", nil }, { sent[2][1], sent[2][4] })
    assert.are.same({ "DELETE", nil }, { sent[3][1], sent[3][4] })
  end)
end)
