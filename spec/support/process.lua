-- Stopping a background process that a spec started, and waiting until it
-- is gone, so that no server outlives the run. Lua 5.1 compatible.
local socket = require("socket")

local process = {}

local function alive(pid)
  local r = os.execute("kill -0 " .. pid .. " 2>/dev/null")
  return r == true or r == 0
end

--- TERM, up to `grace` seconds (default 5) to exit, then KILL.
function process.stop(pid, grace)
  if not pid then return end
  os.execute("kill " .. pid .. " 2>/dev/null")
  local deadline = socket.gettime() + (grace or 5)
  while alive(pid) and socket.gettime() < deadline do socket.sleep(0.05) end
  if alive(pid) then os.execute("kill -9 " .. pid .. " 2>/dev/null") end
end

return process
