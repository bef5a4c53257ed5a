-- Injected faults: the pending list, what a fault may hold, and what each
-- kind does. A fault is consumed by the next API request it matches
-- (`method` exactly, `path` as a plain substring, with `reused = true`
-- only a request that is not the first on its connection), `times` times.
-- FAULT_KINDS says what each field does, in one place; each kind acts at
-- one stage of serving a request (server.lua):
--   before  -- before the API handles the request: may wait (delay_ms),
--              drop the connection (close), stop listening (refuse_ms), or
--              answer in its place (status)
--   after   -- the request has acted; its answer may be replaced
--   shape   -- how the answer goes on the wire: headers, encoding, framing,
--              pauses, cuts
-- A new kind is one more row there (its modifier fields in `with`).

local json = require("emulator.json")
local http = require("emulator.http")
local answers = require("emulator.answers")

local null = json.null
local sleep_ms = http.sleep_ms

local faults = {}

local pending = {}       -- first match wins

local function gzip(data)
  local file = os.tmpname()
  local pipe = assert(io.popen("gzip -c -n > '" .. file .. "'", "w"))
  pipe:write(data)
  pipe:close()
  local f = assert(io.open(file, "rb"))
  local packed = f:read("a")
  f:close()
  os.remove(file)
  return packed
end

-- The fault's own answer: its body goes out verbatim, with no
-- Content-Type unless the fault's headers give one.
local function custom_answer(f)
  return { status = f.status, body = f.body or "", json = false }
end

-- Fields that pick the requests a fault applies to. `reused = true`: only a
-- request that arrives on a connection which already served one (where
-- libcurl would send it again by itself if the connection died unanswered).
local MATCH_FIELDS = { method = "string", path = "string", times = "number", reused = "boolean" }

-- `type` is what the field must hold; `with` names the fields that only
-- modify this kind. `run` gets the fault and, for before and after, the
-- request's context (drop, refuse_ms, answer), for shape the reply.
local FAULT_KINDS = {
  { field = "delay_ms", type = "number", stage = "before", run = function(f) sleep_ms(f.delay_ms) end },
  { field = "close", type = "boolean", stage = "before", run = function(_, ctx) ctx.drop = true end },
  -- stop listening for that long once this request is done with: new
  -- connections are refused (a client's reconnect meets a closed port)
  { field = "refuse_ms", type = "number", stage = "before", run = function(f, ctx) ctx.refuse_ms = f.refuse_ms end },
  { field = "status", type = "number", with = { body = "string" }, stage = "before", run = function(f, ctx)
      if not f.after then ctx.answer = custom_answer(f) end
    end },
  { field = "success_false", type = "boolean", with = { code = "number", message = "string" }, stage = "after",
    run = function(f, ctx)
      ctx.answer = answers.error(200, f.code or 1000, f.message or "Emulated failure")
    end },
  { field = "after", type = "boolean", stage = "after", run = function(f, ctx)
      if f.status then ctx.answer = custom_answer(f) end
    end },
  { field = "headers", type = "table", stage = "shape", run = function(f, reply)
      for k, v in pairs(f.headers) do reply.set(k, v) end
    end },
  { field = "gzip", type = "boolean", stage = "shape", run = function(_, reply)
      reply.body = gzip(reply.body)
      reply.set("Content-Encoding", "gzip")
    end },
  { field = "chunked", type = "boolean", with = { chunk_size = "number" }, stage = "shape", run = function(f, reply)
      reply.chunk_size = f.chunk_size or 7
    end },
  { field = "body_delay_ms", type = "number", stage = "shape", run = function(f, reply)
      reply.body_delay_ms = f.body_delay_ms
    end },
  { field = "truncate_to", type = "number", stage = "shape", run = function(f, reply)
      reply.truncate_to = f.truncate_to
      reply.keep = false
    end },
  -- closing with SO_LINGER 0 sends a TCP reset instead of a FIN
  { field = "reset", type = "boolean", stage = "shape", run = function(_, reply)
      reply.reset = true
      reply.keep = false
    end },
  { field = "close_after", type = "boolean", stage = "shape", run = function(_, reply) reply.keep = false end },
}

-- Every field a fault may have and the Lua type it must be, so that a
-- misspelt field is refused instead of silently doing nothing.
local FAULT_FIELDS = {}
for k, t in pairs(MATCH_FIELDS) do FAULT_FIELDS[k] = t end
for _, kind in ipairs(FAULT_KINDS) do
  FAULT_FIELDS[kind.field] = kind.type
  for k, t in pairs(kind.with or {}) do FAULT_FIELDS[k] = t end
end

--- nil when f is a fault this emulator can do (its numbers made integers),
--- else the problem.
function faults.check(f)
  if type(f) ~= "table" then return "each fault must be an object" end
  for k, v in pairs(f) do
    local want = FAULT_FIELDS[k]
    if not want then return "unknown fault field " .. tostring(k) end
    if type(v) ~= want then return ("fault field %s must be a %s"):format(k, want) end
  end
  json.integers_in(f)
  for _, k in ipairs({ "times", "status", "code", "chunk_size", "truncate_to" }) do
    if f[k] ~= nil and math.type(f[k]) ~= "integer" then return "fault field " .. k .. " must be an integer" end
  end
  if f.status and (f.status < 100 or f.status > 999) then return "fault field status must be 100..999" end
  if f.chunk_size and f.chunk_size < 1 then return "fault field chunk_size must be at least 1" end
  for k, v in pairs(f.headers or {}) do
    if type(k) ~= "string" or not k:find("^[%w%-_]+$") then return "fault header names must be tokens" end
    -- a list sends the header once per item, in order (a duplicated header)
    local items = type(v) == "table" and v or { v }
    if type(v) == "table" and #v == 0 then return "fault header " .. k .. " must not be an empty list" end
    for _, item in ipairs(items) do
      if item ~= null and type(item) ~= "string" and type(item) ~= "number" then
        return "fault header " .. k .. " must be a string, a number, null or a list of strings"
      end
      if type(item) == "string" and item:find("[\r\n]") then return "fault header " .. k .. " must be one line" end
    end
  end
end

--- Appends checked faults; returns how many are pending.
function faults.add(list)
  for _, f in ipairs(list) do pending[#pending + 1] = f end
  return #pending
end

--- Drops every pending fault.
function faults.clear() pending = {} end

--- Runs the kinds of this stage that fault f has on target (a context or
--- a reply); nothing when f is nil.
function faults.run(stage, f, target)
  if not f then return end
  for _, kind in ipairs(FAULT_KINDS) do
    if kind.stage == stage and f[kind.field] ~= nil and f[kind.field] ~= false then kind.run(f, target) end
  end
end

--- The first fault that matches this request, used up once. reused: the
--- request is not the first one on its connection.
function faults.take(method, path, reused)
  for i, f in ipairs(pending) do
    if (f.method == nil or f.method == method) and (f.path == nil or path:find(f.path, 1, true))
       and (not f.reused or reused) then
      f.times = (f.times or 1) - 1
      if f.times <= 0 then table.remove(pending, i) end
      return f
    end
  end
end

return faults
