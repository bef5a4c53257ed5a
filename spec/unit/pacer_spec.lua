-- The client-side rate limit (pacer.lua): at most `requests` starts per
-- window, and a pause when the API's RateLimit headers say the quota is
-- spent or nearly so, never longer than max_wait. A stand-in clock.
local pacer = require("cloudflare.email_security.pacer")

describe("pacer", function()
  local now
  local function clock() return now end

  before_each(function() now = 100 end)

  it("lets `requests` starts through per window, then waits for the oldest to age out", function()
    local p = pacer.new({ requests = 3, per = 10 }, clock)
    for _ = 1, 3 do
      assert.are.equal(0, p:delay())
      p:started()
      now = now + 1
    end
    assert.are.equal(7, p:delay(), "the first start, at 100, frees its slot at 110")
    now = 110
    assert.are.equal(0, p:delay())
  end)

  it("does nothing without a limit", function()
    local p = pacer.new(nil, clock)
    for _ = 1, 1000 do p:started() end
    assert.are.equal(0, p:delay())
  end)

  it("waits for the reset when the RateLimit header says nothing is left", function()
    local p = pacer.new(nil, clock, 60)
    p:observe({ ratelimit = '"default";r=0;t=30' })
    assert.are.equal(30, p:delay())
  end)

  it("never holds longer than max_wait, whatever reset the header gives", function()
    local p = pacer.new(nil, clock, 60)
    p:observe({ ratelimit = '"default";r=0;t=999999999' })
    assert.are.equal(60, p:delay())
    p = pacer.new(nil, clock, 60)
    p:observe({ ratelimit = '"default";r=1;t=999999999', ["ratelimit-policy"] = '"default";q=1200;w=300' })
    assert.are.equal(60, p:delay())
  end)

  it("slows down when under a tenth of the quota is left", function()
    local p = pacer.new(nil, clock, 60)
    p:observe({ ratelimit = '"default";r=9;t=30', ["ratelimit-policy"] = '"default";q=1200;w=300' })
    assert.are.equal(3, p:delay())
    p = pacer.new(nil, clock, 60)
    p:observe({ ratelimit = '"default";r=500;t=30', ["ratelimit-policy"] = '"default";q=1200;w=300' })
    assert.are.equal(0, p:delay(), "plenty left")
  end)
end)
