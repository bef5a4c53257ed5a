-- Helpers for the servers that specs and benchmarks start in the
-- background: a free loopback port, waiting for a port to answer, and
-- stopping a process and waiting until it is gone, so that no server
-- outlives the run. Lua 5.1 compatible.
local socket = require("socket")

local process = {}

--- Is the process with this pid still running? (false for nil) A process
--- that has exited but that no one has reaped yet (a zombie: a server
--- started by a shell that exited at once is the child of an init that may
--- never reap it) is not running, though `kill -0` still succeeds on it:
--- where /proc exists its state says so; elsewhere kill -0 is all there is.
function process.alive(pid)
  if not pid then return false end
  local stat = io.open("/proc/" .. pid .. "/stat", "rb")
  if stat then
    local text = stat:read("*a") or ""
    stat:close()
    -- "pid (name) S ...": the state follows the last ')' (a name may hold one)
    local state = text:match("^.*%)%s+(%S)")
    return state ~= nil and state ~= "Z" and state ~= "X"
  end
  local self = io.open("/proc/self/stat", "rb")
  if self then   -- /proc, but no such pid
    self:close()
    return false
  end
  local r = os.execute("kill -0 " .. pid .. " 2>/dev/null")
  return r == true or r == 0
end

--- Does anything accept connections on this loopback port?
function process.port_open(port)
  local c = socket.connect("127.0.0.1", port)
  if c then c:close() end
  return c ~= nil
end
local alive = process.alive

--- TERM, up to `grace` seconds (default 5) to exit, then KILL.
function process.stop(pid, grace)
  if not pid then return end
  os.execute("kill " .. pid .. " 2>/dev/null")
  local deadline = socket.gettime() + (grace or 5)
  while alive(pid) and socket.gettime() < deadline do socket.sleep(0.05) end
  if alive(pid) then os.execute("kill -9 " .. pid .. " 2>/dev/null") end
end

--- A loopback port that nothing listens on right now.
function process.free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return port
end

--- Waits up to `seconds` until something accepts on the loopback port.
function process.wait_for_port(port, seconds)
  local deadline = socket.gettime() + seconds
  repeat
    local c = socket.connect("127.0.0.1", port)
    if c then
      c:close()
      return true
    end
    socket.sleep(0.05)
  until socket.gettime() > deadline
  return false
end

return process
