-- The control routes, /__emulator/{reset,seed,state,requests,faults,
-- latency,in_flight,shutdown}: what the specs (through process.lua) use to
-- set up state, inject faults, slow the API down and see exactly what
-- reached the server and how much of it at once. No auth, JSON in and out,
-- 400 for a body it cannot use; never logged or counted as API requests.

local json = require("emulator.json")
local http = require("emulator.http")
local log = require("emulator.log")
local resources = require("emulator.resources")
local store = require("emulator.store")
local faults = require("emulator.faults")
local api = require("emulator.api")
local latency = require("emulator.latency")
local in_flight = require("emulator.in_flight")

local encode, list_of = json.encode, json.list_of

local control = {}

local function control_ok(value) return { status = 200, body = encode(value) } end
local function control_error(status, message) return { status = status, body = encode({ error = message }) } end

local ROUTES = {
  reset = { POST = function()
    store.reset()
    faults.clear()
    latency.reset()
    in_flight.reset()
    return control_ok({ reset = true })
  end },

  -- `resource` (optional, default impersonation_registry) names the
  -- resource's entries; seeded fields are stored as given, with defaults
  -- and server-made fields filled in, "_" bookkeeping fields kept unseen.
  seed = { POST = function(_, raw)
    local body = json.decode_object(raw)
    if not body or type(body.account_id) ~= "string" or not body.account_id:find(api.ACCOUNT_ID)
       or #body.account_id > 32 then
      return control_error(400, "seed takes {account_id: 1..32 of [A-Za-z0-9_-], entries: [...], resource: name}")
    end
    local res = resources.by_name[body.resource or resources.DEFAULT]
    if not res then return control_error(400, "seed: no such resource " .. tostring(body.resource)) end
    local entries = body.entries or {}
    if type(entries) ~= "table" then return control_error(400, "entries must be a list") end
    for _, fields in ipairs(entries) do
      if type(fields) ~= "table" then return control_error(400, "each entry must be an object") end
    end
    local stored = list_of({})
    for _, fields in ipairs(entries) do
      local e = store.new_entry(res, fields)
      store.add(res, body.account_id, e)
      stored[#stored + 1] = store.public(e)
    end
    return control_ok({ entries = stored })
  end },

  state = { GET = function(query)
    local q = http.parse_query(query)
    if not q.account_id then return control_error(400, "state takes ?account_id=[&resource=]") end
    local res = resources.by_name[q.resource or resources.DEFAULT]
    if not res then return control_error(400, "state: no such resource " .. tostring(q.resource)) end
    return control_ok({ entries = store.public_list(store.entries(res, q.account_id)) })
  end },

  requests = { GET = function() return control_ok({ requests = list_of(store.requests()) }) end },

  faults = { DELETE = function()
    -- pending faults gone, entries and the request log kept
    faults.clear()
    return control_ok({ pending = 0 })
  end, POST = function(_, raw)
    local body = json.decode_object(raw)
    if not body or type(body.faults) ~= "table" then return control_error(400, "faults takes {faults: [...]}") end
    for _, f in ipairs(body.faults) do
      local problem = faults.check(f)
      if problem then return control_error(400, problem) end
    end
    return control_ok({ pending = faults.add(body.faults) })
  end },

  -- {read_ms, write_ms}: how long every API request waits (GET; the
  -- other methods) before it is served; PUT replaces both (0 when not given)
  latency = { GET = function() return control_ok(latency.get()) end, PUT = function(_, raw)
    local body = json.decode_object(raw)
    local problem = latency.check(body)
    if problem then return control_error(400, problem) end
    latency.set(body)
    return control_ok(latency.get())
  end },

  -- {current, max}: API requests read whole and not yet answered, now and
  -- at most at once since the last reset; DELETE sets max back to current
  in_flight = { GET = function() return control_ok(in_flight.get()) end, DELETE = function()
    in_flight.reset()
    return control_ok(in_flight.get())
  end },

  shutdown = { POST = function()
    local answer = control_ok({ stopping = true })
    -- the server stops only once the answer is out, so the caller knows it was heard
    answer.stop = true
    return answer
  end },
}

--- The answer to a control call (`name` the route's last segment); with
--- `stop = true` the server stops once it has sent it.
function control.answer(method, name, query, raw)
  local route = ROUTES[name]
  if not route then return control_error(404, "no such control route: " .. name) end
  local handler = route[method]
  if not handler then return control_error(405, "method not allowed on /__emulator/" .. name) end
  local ok, answer = pcall(handler, query, raw)
  if ok then return answer end
  log.say("control %s failed: %s", name, tostring(answer))
  return control_error(400, tostring(answer))
end

return control
