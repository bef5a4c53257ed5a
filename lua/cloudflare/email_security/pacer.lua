-- Paces requests so that a bulk script does not meet a 429: at most
-- `requests` starts in any `per` seconds (a ring of the last start times),
-- and a pause when the API's RateLimit header says the budget is nearly
-- spent, never longer than max_wait (the client's max_retry_wait): a server
-- that says its budget comes back in a year gets asked again after that, and
-- its 429 then decides.

local Pacer = {}
Pacer.__index = Pacer

local pacer = {}

--- limit: { requests = N, per = seconds } or nil; clock: monotonic seconds;
--- max_wait: the longest hold a RateLimit header may cause. The client
--- gives its configuration's (config.lua holds the defaults).
function pacer.new(limit, clock, max_wait)
  return setmetatable({
    max_wait = max_wait,
    size = limit and limit.requests,
    per = limit and limit.per,
    starts = {},
    slot = 1,
    hold_until = 0,
    clock = clock,
  }, Pacer)
end

--- Seconds to wait before the next request may start. now (optional):
--- the time to count from, else the clock's.
function Pacer:delay(now)
  -- the common case, no limit and no hold, must not even read the clock
  if not self.size and self.hold_until == 0 then return 0 end
  now = now or self.clock()
  local wait = self.hold_until - now
  local oldest = self.size and self.starts[self.slot]
  if oldest then wait = math.max(wait, oldest + self.per - now) end
  return wait > 0 and wait or 0
end

--- A request starts now (or at `now`, as for delay). Returns where it is
--- counted (for went_out), or nil when nothing is counted.
function Pacer:started(now)
  if not self.size then return nil end
  local at = self.slot
  self.starts[at] = now or self.clock()
  self.slot = at % self.size + 1
  return at
end

--- A request counted at `at` when it started at `started` (what started
--- answered, and its time) went on the wire only `sent`: a transport that
--- holds a request back until there is room on the wire says when. It is
--- counted from then, so that what the API sees in any `per` seconds is
--- what is counted (unless the place was taken again meanwhile).
function Pacer:went_out(at, started, sent)
  if at and sent and self.starts[at] == started and sent > started then self.starts[at] = sent end
end

--- Reads `RateLimit: "name";r=REMAINING;t=RESET` (and the quota q of
--- `RateLimit-Policy`). With nothing left, wait for the reset; with under a
--- tenth of the quota left, spread what remains over the time to the reset.
function Pacer:observe(headers, now)
  local line = headers and headers.ratelimit
  if not line then return end
  local remaining = tonumber(line:match("[;,%s]r=(%d+)") or line:match("^r=(%d+)"))
  local reset = tonumber(line:match("[;,%s]t=(%d+)") or line:match("^t=(%d+)"))
  if not remaining or not reset then return end
  local quota = tonumber((headers["ratelimit-policy"] or ""):match("q=(%d+)"))
  now = now or self.clock()
  local hold
  if remaining <= 0 then
    hold = reset
  elseif quota and remaining < quota / 10 then
    hold = reset / (remaining + 1)
  end
  if hold then self.hold_until = now + math.min(hold, self.max_wait) end
end

return pacer
