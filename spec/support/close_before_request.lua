-- Run by spec/client/lifetimes_spec.lua in a process of its own: many calls of
-- the C core's request, each while the collector holds objects whose
-- finalizers close the client being called. On 5.1 and LuaJIT the call's
-- own first allocation, before it marks itself in flight, can run such a
-- finalizer; the call must then end as "closed during the call", never
-- hand libcurl the closed handle. Prints one count per outcome.
--
--   lua close_before_request.lua URL ROUNDS     (URL: a closed port will do)
local core = require("cloudflare.email_security.core")

local newproxy = rawget(_G, "newproxy")
local url, rounds = arg[1], tonumber(arg[2])
local target

-- objects whose finalizers close whatever client is being called
local function garbage(n)
  for _ = 1, n do
    if newproxy then
      local u = newproxy(true)
      getmetatable(u).__gc = function() if target then target:close() end end
    else
      setmetatable({}, { __gc = function() if target then target:close() end end })
    end
  end
end

if rawget(_G, "jit") then jit.off() end
if not pcall(collectgarbage, "incremental", 0, 1) then
  collectgarbage("setpause", 0)
  collectgarbage("setstepmul", 1)
end
local outcomes = {}
-- every option the C core takes is given: config.lua holds the defaults
local OPTIONS = { user_agent = "close-before-request", timeout_ms = 60000, connect_timeout_ms = 10000,
                  max_response_size = 8388608 }
for round = 1, rounds do
  if round % 200 == 1 then garbage(50000) end
  local c = core.new(OPTIONS)
  target = c
  local result, err = c:request("GET", url)
  target = nil
  local key = result and "answered" or ("%s %s"):format(err.kind, tostring(err.curl_code))
  if err and err.message:find("closed during the call", 1, true) then key = "closed during the call" end
  outcomes[key] = (outcomes[key] or 0) + 1
  c:close()
end
for key, n in pairs(outcomes) do print(("%d\t%s"):format(n, key)) end
