-- When a failed request may be sent again, and how long to wait first.
--
-- A request is retried only when that is safe. Reads, updates, replaces,
-- deletes and batches without posts set state rather than add it, so they
-- are retried on broken connections, timeouts, 408, 409, 429 and 5xx. A
-- create (or a batch with posts) is retried only when it certainly did not
-- act: the connection was never made, or the API said 429 (it refuses
-- before doing anything). After a timeout, a reset once the
-- request was sent, or a 5xx, the entry may exist, and a second create would
-- duplicate it. The API's `x-should-retry` header overrides all of this.

local retry = {}

local RETRY_STATUS = { [408] = true, [409] = true, [429] = true }

-- libcurl codes where the request never left this machine: resolving the
-- host or proxy failed, the connection or the TLS handshake failed.
local NOT_SENT = { [5] = true, [6] = true, [7] = true, [35] = true }

-- libcurl codes of a connection that broke: worth a second try when the
-- request is safe to repeat. Certificate and usage errors are not here:
-- trying again cannot mend them.
local BROKEN = { [5] = true, [6] = true, [7] = true, [16] = true, [18] = true, [35] = true,
                 [52] = true, [55] = true, [56] = true, [92] = true }

-- The request certainly did nothing: it never reached the server, or the
-- API refused it before acting (429). err.sent: libcurl had sent the
-- request before the failure (on a reused connection that died, before a
-- refused reconnect), so a refused connect then proves nothing.
-- err.not_sent: the request loop never started it (the client was closed,
-- or Ctrl-C came, before its turn).
local function did_not_act(err)
  return err.status == 429 or err.not_sent == true
    or (err.kind == "transport" and NOT_SENT[err.curl_code] == true and not err.status and not err.sent)
end

--- Whether this failed try may have acted on the server (the next try of a
--- create then is no longer safe, even after a refused connect). An API
--- answer of 4xx refused the request: it did not act.
function retry.may_have_acted(err)
  if err.kind == "invalid" or did_not_act(err) then return false end
  local status = err.status
  return not (status and status >= 400 and status < 500 and err.kind ~= "transport" and err.kind ~= "timeout")
end

--- once: the request must never reach the server twice (a create, a
--- batch with posts); acted: an earlier try of the same call may have acted.
function retry.retryable(once, err, acted)
  if err.kind == "invalid" then return false end
  local flag = err.headers and err.headers["x-should-retry"]
  if flag == "false" then return false end
  local status = err.status
  if once then
    -- the API's word counts for a create only on an answer that refused
    -- it (4xx), and only while no earlier try can have acted: a 201 whose
    -- body was cut has created the entry, and a 5xx may have (a batch is
    -- applied whole), whatever its headers say
    if acted then return false end
    return did_not_act(err) or (flag == "true" and status ~= nil and status >= 400 and status < 500)
  end
  if flag == "true" then return true end
  if err.kind == "timeout" then return true end
  -- err.broken: the nginx transport's "no answer" (it has no curl code)
  if err.kind == "transport" then
    return BROKEN[err.curl_code] == true or err.broken == true or err.not_sent == true
  end
  return status ~= nil and (RETRY_STATUS[status] == true or status >= 500)
end

local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6,
                 Jul = 7, Aug = 8, Sep = 9, Oct = 10, Nov = 11, Dec = 12 }

-- Days since 1970-01-01 of a proleptic Gregorian date (no time zone
-- involved, unlike os.time, which reads its table as local time).
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

--- Seconds since the epoch of an HTTP date ("Wed, 21 Oct 2015 07:28:00 GMT").
function retry.parse_http_date(s)
  local d, mon, y, hh, mm, ss = s:match("^%a+, (%d%d?) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT$")
  if not d or not MONTHS[mon] then return nil end
  return days_from_civil(tonumber(y), MONTHS[mon], tonumber(d)) * 86400
    + tonumber(hh) * 3600 + tonumber(mm) * 60 + tonumber(ss)
end

--- Seconds to wait before attempt `attempt + 1`: what the API asks for
--- (retry-after-ms, then Retry-After in seconds or as a date), else
--- exponential backoff from 0.5 s to 8 s with up to 25% jitter, at most
--- max_wait. When the API asks for more than max_wait: nil and the seconds
--- it asked for (the call then fails, saying so, rather than wait that long
--- or try again early). now: seconds since the epoch; random: math.random.
function retry.delay(err, attempt, max_wait, now, random)
  local h = err.headers or {}
  local asked = tonumber(h["retry-after-ms"])
  if asked then
    asked = asked / 1000
  elseif h["retry-after"] then
    asked = tonumber(h["retry-after"])
    if not asked then
      local at = retry.parse_http_date(h["retry-after"])
      asked = at and math.max(0, at - now)
    end
  end
  if asked and asked >= 0 and asked == asked then
    if asked > max_wait then return nil, asked end
    return asked
  end
  local backoff = math.min(0.5 * 2 ^ (attempt - 1), 8)
  return math.min(backoff * (1 - 0.25 * random()), max_wait)
end

return retry
