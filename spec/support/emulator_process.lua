-- Starts the emulator as a separate process (the client under test blocks
-- inside libcurl, so the server cannot share its process) and drives its
-- control routes. Used by the specs and by examples/update_and_delete.lua.
-- Plain Lua 5.1 code, so that any Lua under test can load it; the emulator
-- itself always runs on lua5.4.

local http = require("socket.http")
local ltn12 = require("ltn12")
local socket = require("socket")
local cjson = require("cjson")
local process = require("spec.support.process")

local emulator_process = {}

local here = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./"
local SCRIPT = here .. "emulator.lua"

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("*a")
  f:close()
  return text
end

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- One control call; raises when the emulator does not answer.
local function call(base, method, route, body)
  local chunks = {}
  local ok, status = http.request({
    url = base .. "/__emulator/" .. route,
    method = method,
    headers = body and { ["content-type"] = "application/json", ["content-length"] = #body } or nil,
    source = body and ltn12.source.string(body) or nil,
    sink = ltn12.sink.table(chunks),
    create = function()
      local s = socket.tcp()
      s:settimeout(10)
      return s
    end,
  })
  if not ok or status ~= 200 then
    error(("emulator control %s %s failed: %s"):format(method, route, tostring(status)), 3)
  end
  return cjson.decode(table.concat(chunks))
end

--- opts: token, email, key, idle_exit (seconds, default 120).
function emulator_process.start(opts)
  opts = opts or {}
  local port_file, pid_file = os.tmpname(), os.tmpname()
  os.remove(port_file)
  local token = opts.token or "test-token"
  local email = opts.email or "user@example.com"
  local key = opts.key or "test-key"
  local cmd = ("lua5.4 %s --port 0 --port-file %s --idle-exit %d --token %s --email %s --key %s"
    .. " >/dev/null 2>&1 & echo $! > %s")
    :format(shell_quote(SCRIPT), shell_quote(port_file), opts.idle_exit or 120, shell_quote(token),
            shell_quote(email), shell_quote(key), shell_quote(pid_file))
  os.execute(cmd)

  local port
  local deadline = socket.gettime() + 10
  repeat
    port = tonumber(read_file(port_file) or "")
    if not port then socket.sleep(0.02) end
  until port or socket.gettime() > deadline
  local pid = tonumber(read_file(pid_file) or "")
  os.remove(pid_file)
  if not port then
    process.stop(pid)
    os.remove(port_file)
    error("the emulator did not start within 10 s (" .. SCRIPT .. ")", 2)
  end

  local root = "http://127.0.0.1:" .. port
  local emu = {
    port = port,
    pid = pid,
    base_url = root .. "/client/v4",
    token = token,
    email = email,
    key = key,
  }
  local stopped = false

  function emu.reset() call(root, "POST", "reset", "{}") end
  function emu.seed(account_id, entries)
    return call(root, "POST", "seed", cjson.encode({ account_id = account_id, entries = entries })).entries
  end
  function emu.state(account_id)
    return call(root, "GET", "state?account_id=" .. account_id).entries
  end
  function emu.requests() return call(root, "GET", "requests").requests end
  function emu.faults(list) call(root, "POST", "faults", cjson.encode({ faults = list })) end
  function emu.fault(f) emu.faults({ f }) end
  function emu.stop()
    if stopped then return end
    stopped = true
    pcall(call, root, "POST", "shutdown", "{}")
    process.stop(pid)
    os.remove(port_file)
  end
  return emu
end

return emulator_process
