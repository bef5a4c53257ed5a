-- What is retried, what never is, and how long to wait between tries
-- (retry.lua); the client-side rate limit is pacer_spec.lua's.
local retry = require("cloudflare.email_security.retry")

local function err(t)
  t.headers = t.headers or {}
  return t
end

-- retry.retryable(once, err, acted): once is true for a request that must
-- never reach the server twice (a create, a batch with posts), false for
-- reads, updates, replaces, deletes and other batches.
describe("retry.retryable", function()
  it("retries what sets state on broken connections, timeouts, 408, 409, 429, 5xx", function()
    for _, acted in ipairs({ false, true }) do
      local m = acted and "after a try that acted" or "first try"
      assert.is_true(retry.retryable(false, err({ kind = "transport", curl_code = 7 }), acted), m)
      assert.is_true(retry.retryable(false, err({ kind = "transport", curl_code = 56 }), acted), m)
      assert.is_true(retry.retryable(false, err({ kind = "transport", curl_code = 52 }), acted), m)
      assert.is_true(retry.retryable(false, err({ kind = "timeout", curl_code = 28 }), acted), m)
      for _, status in ipairs({ 408, 409, 429, 500, 502, 503, 520, 524 }) do
        assert.is_true(retry.retryable(false, err({ kind = "api", status = status }), acted), m .. " " .. status)
      end
      assert.is_true(retry.retryable(false, err({ kind = "http", status = 502 }), acted), m)
    end
  end)

  it("does not retry client errors, invalid input or certificate failures", function()
    for _, status in ipairs({ 400, 401, 403, 404, 422 }) do
      assert.is_false(retry.retryable(false, err({ kind = "api", status = status })), status)
    end
    assert.is_false(retry.retryable(false, err({ kind = "invalid" })))
    assert.is_false(retry.retryable(false, err({ kind = "transport", curl_code = 60 })))
    assert.is_false(retry.retryable(false, err({ kind = "http", status = 200 })))
  end)

  it("retries a create only when it certainly did not act", function()
    assert.is_true(retry.retryable(true, err({ kind = "transport", curl_code = 7 })), "refused")
    assert.is_true(retry.retryable(true, err({ kind = "transport", curl_code = 6 })), "no DNS")
    assert.is_true(retry.retryable(true, err({ kind = "api", status = 429 })), "429")
    assert.is_false(retry.retryable(true, err({ kind = "timeout", curl_code = 28 })), "timeout")
    assert.is_false(retry.retryable(true, err({ kind = "transport", curl_code = 56 })), "reset after sending")
    assert.is_false(retry.retryable(true, err({ kind = "transport", curl_code = 52 })), "empty reply")
    assert.is_false(retry.retryable(true, err({ kind = "api", status = 500 })), "500")
    assert.is_false(retry.retryable(true, err({ kind = "http", status = 502 })), "502")
  end)

  it("takes a refused connect for 'nothing sent' only when no earlier try may have acted", function()
    local refused = err({ kind = "transport", curl_code = 7 })
    assert.is_true(retry.retryable(true, refused, false), "first try, or only tries that did not act")
    assert.is_false(retry.retryable(true, refused, true), "an earlier try may have created the entry")
    assert.is_true(retry.retryable(false, refused, true), "an update may be sent again anyway")
  end)

  it("takes x-should-retry: true for a create only on a 4xx refusal, and only before any try acted", function()
    local flagged = { ["x-should-retry"] = "true" }
    assert.is_true(retry.retryable(true, err({ kind = "api", status = 400, headers = flagged }), false))
    assert.is_false(retry.retryable(true, err({ kind = "api", status = 400, headers = flagged }), true))
    assert.is_false(retry.retryable(true, err({ kind = "api", status = 500, headers = flagged }), false),
                    "a 5xx may have acted: a batch is applied whole")
    assert.is_false(retry.retryable(true, err({ kind = "transport", curl_code = 18, status = 201,
                                                  headers = flagged }), false), "a 201 cut short has acted")
    assert.is_false(retry.retryable(true, err({ kind = "http", status = 200, headers = flagged }), false))
  end)

  it("obeys x-should-retry either way", function()
    assert.is_false(retry.retryable(false, err({ kind = "api", status = 503, headers = { ["x-should-retry"] = "false" } })))
    assert.is_true(retry.retryable(true, err({ kind = "api", status = 400, headers = { ["x-should-retry"] = "true" } })))
    assert.is_true(retry.retryable(false, err({ kind = "api", status = 400, headers = { ["x-should-retry"] = "true" } })))
  end)
end)

describe("retry.may_have_acted", function()
  it("says a 4xx refusal did not act, and a 5xx, a timeout or a reset after sending may have", function()
    assert.is_false(retry.may_have_acted(err({ kind = "api", status = 409 })))
    assert.is_false(retry.may_have_acted(err({ kind = "api", status = 429 })))
    assert.is_false(retry.may_have_acted(err({ kind = "transport", curl_code = 7 })))
    assert.is_true(retry.may_have_acted(err({ kind = "api", status = 503 })))
    assert.is_true(retry.may_have_acted(err({ kind = "timeout", curl_code = 28 })))
    assert.is_true(retry.may_have_acted(err({ kind = "transport", curl_code = 56 })))
    assert.is_true(retry.may_have_acted(err({ kind = "transport", curl_code = 7, sent = true })))
  end)
end)

describe("retry.delay", function()
  local function fixed(x) return function() return x end end

  it("honours retry-after-ms, then Retry-After in seconds", function()
    assert.are.equal(0.25, retry.delay(err({ headers = { ["retry-after-ms"] = "250", ["retry-after"] = "9" } }),
                                       1, 60, 0, fixed(0)))
    assert.are.equal(3, retry.delay(err({ headers = { ["retry-after"] = "3" } }), 1, 60, 0, fixed(0)))
  end)

  it("honours Retry-After as an HTTP date", function()
    local now = retry.parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT")
    assert.are.equal(1445412480, now)
    local e = err({ headers = { ["retry-after"] = "Wed, 21 Oct 2015 07:28:05 GMT" } })
    assert.are.equal(5, retry.delay(e, 1, 60, now, fixed(0)))
    e = err({ headers = { ["retry-after"] = "Wed, 21 Oct 2015 07:27:00 GMT" } })
    assert.are.equal(0, retry.delay(e, 1, 60, now, fixed(0)), "a date in the past means now")
  end)

  it("gives no wait, but what was asked, when the API asks for more than max_retry_wait", function()
    assert.are.same({ nil, 3600 }, { retry.delay(err({ headers = { ["retry-after"] = "3600" } }), 1, 10, 0, fixed(0)) })
    assert.are.same({ nil, 1e9 }, { retry.delay(err({ headers = { ["retry-after-ms"] = "1e12" } }), 1, 10, 0, fixed(0)) })
    local now = retry.parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT")
    local e = err({ headers = { ["retry-after"] = "Wed, 21 Oct 2015 08:28:00 GMT" } })
    assert.are.same({ nil, 3600 }, { retry.delay(e, 1, 10, now, fixed(0)) })
    assert.are.equal(10, retry.delay(err({ headers = { ["retry-after"] = "10" } }), 1, 10, 0, fixed(0)), "exactly the cap")
  end)

  it("never gives a wait longer than max_retry_wait for its own backoff", function()
    assert.are.equal(0.2, retry.delay(err({}), 5, 0.2, 0, fixed(0)))
  end)

  it("backs off exponentially from 0.5 s to 8 s, with up to 25% jitter", function()
    local plain = {}
    for attempt = 1, 7 do plain[attempt] = retry.delay(err({}), attempt, 60, 0, fixed(0)) end
    assert.are.same({ 0.5, 1, 2, 4, 8, 8, 8 }, plain)
    assert.are.equal(0.375, retry.delay(err({}), 1, 60, 0, fixed(1)))
    assert.are.equal(6, retry.delay(err({}), 9, 60, 0, fixed(1)))
  end)
end)
