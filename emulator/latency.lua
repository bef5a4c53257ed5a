-- A standing latency, so that a spec can see requests overlap and a
-- benchmark can model a slow API: every API request waits read_ms (GET,
-- HEAD) or write_ms (POST, PATCH, PUT, DELETE, any other method) before
-- anything else happens to it, faults included, without holding up other
-- connections (http.sleep_ms yields to the scheduler). Set by --latency
-- READ_MS[,WRITE_MS] (main.lua) and PUT /__emulator/latency; a reset goes
-- back to what --latency said (0 and 0 without it).

local sleep_ms = require("emulator.http").sleep_ms

local latency = {}

local MAX_MS = 60000
local READ_METHODS = { GET = true, HEAD = true }

local initial = { read_ms = 0, write_ms = 0 }
local current = { read_ms = 0, write_ms = 0 }

local function problem_with(name, v)
  if type(v) ~= "number" or v ~= v or v < 0 or v > MAX_MS then
    return ("latency %s must be a number of milliseconds, 0..%d"):format(name, MAX_MS)
  end
end

--- nil when t ({ read_ms, write_ms }, either optional, 0 when not given)
--- is a latency it can take, else the problem.
function latency.check(t)
  if type(t) ~= "table" then return "latency takes {read_ms: 0..60000, write_ms: 0..60000}" end
  for k in pairs(t) do
    if k ~= "read_ms" and k ~= "write_ms" then return "unknown latency field " .. tostring(k) end
  end
  for _, k in ipairs({ "read_ms", "write_ms" }) do
    if t[k] ~= nil then
      local problem = problem_with(k, t[k])
      if problem then return problem end
    end
  end
end

--- Sets both values (a missing one is 0); checked first with latency.check.
function latency.set(t)
  current = { read_ms = t.read_ms or 0, write_ms = t.write_ms or 0 }
end

--- What the server starts with and a reset goes back to (--latency).
function latency.set_initial(t)
  initial = { read_ms = t.read_ms or 0, write_ms = t.write_ms or 0 }
  latency.set(initial)
end

--- { read_ms = n, write_ms = n }
function latency.get()
  return { read_ms = current.read_ms, write_ms = current.write_ms }
end

function latency.reset() latency.set(initial) end

--- Waits as long as this method's latency says.
function latency.wait(method)
  sleep_ms(READ_METHODS[method] and current.read_ms or current.write_ms)
end

--- "READ_MS[,WRITE_MS]" (one value: both) as { read_ms, write_ms }, or
--- nil and the problem.
function latency.parse(text)
  local read, write = text:match("^([^,]+),([^,]+)$")
  if not read then read = text:match("^[^,]+$") write = read end
  local t = { read_ms = tonumber(read), write_ms = tonumber(write) }
  if not read or not t.read_ms or not t.write_ms or latency.check(t) then
    return nil, ("--latency takes READ_MS[,WRITE_MS], milliseconds 0..%d each, e.g. 50,150"):format(MAX_MS)
  end
  return t
end

return latency
