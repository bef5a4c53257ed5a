-- Run by spec/client/lifetimes_spec.lua in a process of its own (a small heap, so
-- that the collector's cycles end inside the calls): 50 clients, each with
-- a finalizer that closes it, each listing a large answer that is no
-- envelope while the collector steps on nearly every allocation. Prints one
-- line of counts; a use after free ends the process instead (a signal, or
-- AddressSanitizer's report under `make check-asan`).
--
--   lua close_in_finalizer.lua BASE_URL TOKEN
local es = require("cloudflare.email_security")

local base_url, token = arg[1], arg[2]

-- A table on 5.2+; a userdata on 5.1 and LuaJIT, where tables have no __gc.
local newproxy = rawget(_G, "newproxy")
local function finalizer(fn)
  if newproxy then
    local u = newproxy(true)
    getmetatable(u).__gc = fn
    return u
  end
  return setmetatable({}, { __gc = fn })
end

local counts = { raised = 0, value = 0, decoded = 0, deferred = 0, open = 0, other = 0 }
local current
local clients = {}
if not pcall(collectgarbage, "incremental", 10, 400) then     -- 5.1 to 5.3, LuaJIT
  collectgarbage("setpause", 10)
  collectgarbage("setstepmul", 400)
end
-- holds each finalizer's object until the request's log line lets go of it
local anchor = {}  -- luacheck: ignore (written, never read: it only keeps the object alive)
for _ = 1, 50 do
  -- the request's log line comes just before the transport starts: the
  -- finalizer's object becomes garbage there, and its finalizer runs at the
  -- end of the collector's next cycle, inside the call
  local cf = es.new({ account_id = "023e105f4ecef8ad9ca31a8372d0c353", api_token = token,
                      base_url = base_url, max_retries = 0,
                      log = function(line) if line:find(": > ", 1, true) then anchor.object = nil end end })
  local reg = cf.impersonation_registry
  local outcome = {}
  anchor.object = finalizer(function()
    outcome.inside = current == outcome
    cf:close()
  end)
  current = outcome
  local ok, result, err = pcall(reg.list, reg)
  current = nil
  clients[#clients + 1] = cf
  local kind = "other"
  if not ok then
    -- closed before the call reached its request: misuse, raised
    if tostring(result):find("closed cloudflare.email_security client", 1, true) then kind = "raised" end
  elseif result == nil and err.kind == "http" and err.message:find("not a Cloudflare envelope", 1, true) then
    -- the answer was decoded; a close from inside waited for the call's end
    kind = "decoded"
    if outcome.inside then counts.deferred = counts.deferred + 1 end
  elseif result == nil and err.kind == "transport" and err.message:find("closed during the call", 1, true) then
    kind = "value"
  end
  counts[kind] = counts[kind] + 1
end
if not pcall(collectgarbage, "incremental", 200, 100) then
  collectgarbage("setpause", 200)
  collectgarbage("setstepmul", 200)
end
collectgarbage()
collectgarbage()
for _, cf in ipairs(clients) do
  if not cf:is_closed() then counts.open = counts.open + 1 end
end
print(("raised=%d value=%d decoded=%d deferred=%d open=%d other=%d"):format(
  counts.raised, counts.value, counts.decoded, counts.deferred, counts.open, counts.other))
