-- Starts the emulator (emulator/main.lua) as a separate process and
-- drives its control routes. It cannot share the caller's process: the
-- client under test blocks inside libcurl, and a server in the same process
-- would never get to answer. Used by the specs, the examples (make demo,
-- make repl), bench/ and .ci/readme_commands.lua.
--
-- Plain Lua 5.1 code (no goto, no //, no utf8), so that every Lua the suite
-- runs under can load it; the emulator itself always runs on lua5.4.
--
--   local emu = require("emulator.process").start({ token = "t" })
--   emu.seed(account, { { name = "A", email = "a@example.com", is_email_regex = false } })
--   ... emu.base_url, emu.requests(), emu.fault({ status = 502, body = "..." }) ...
--   emu.stop()

local http = require("socket.http")
local ltn12 = require("ltn12")
local socket = require("socket")
local cjson = require("cjson")

local emulator_process = {}

-- The emulator is found next to this file, whatever the current directory.
local here = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./"
if not here:find("^/") then
  -- made absolute now, so a later change of directory does not lose it
  local pwd = os.getenv("PWD")
  local probe = pwd and io.open(pwd .. "/" .. here .. "main.lua", "r")
  if probe then
    probe:close()
    here = pwd .. "/" .. here:gsub("^%./", "")
  end
end
local SCRIPT = here .. "main.lua"

-- spec/support's process.lua (pids) and files.lua are the checkout's one
-- place for those; loaded by path when the checkout's top is not on
-- package.path.
local function support(name)
  local ok, loaded = pcall(require, "spec.support." .. name)
  return ok and loaded or dofile(here .. "../spec/support/" .. name .. ".lua")
end
local process, files = support("process"), support("files")

local CONTROL_TIMEOUT = 5     -- seconds; control calls are local and never delayed
local START_TIMEOUT = 10

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function url_encode(s)
  return (tostring(s):gsub("[^%w%-_%.~]", function(c) return ("%%%02X"):format(c:byte()) end))
end

-- One control call; raises, naming the route, when the emulator does not
-- answer or refuses.
local function call(root, method, route, body)
  local chunks = {}
  local ok, status = http.request({
    url = root .. "/__emulator/" .. route,
    method = method,
    headers = body and { ["content-type"] = "application/json", ["content-length"] = tostring(#body) } or nil,
    source = body and ltn12.source.string(body) or nil,
    sink = ltn12.sink.table(chunks),
    create = function()
      local s = socket.tcp()
      s:settimeout(CONTROL_TIMEOUT)
      return s
    end,
  })
  local text = table.concat(chunks)
  if not ok then
    error(("emulator at %s did not answer %s /__emulator/%s: %s"):format(root, method, route, tostring(status)), 3)
  end
  if status ~= 200 then
    error(("emulator refused %s /__emulator/%s: HTTP %s %s"):format(method, route, tostring(status), text), 3)
  end
  local decoded, value = pcall(cjson.decode, text)
  if not decoded then
    error(("emulator answered %s /__emulator/%s with something not JSON: %s"):format(method, route, text), 3)
  end
  return value
end

-- This process's id (Linux: /proc/self is the process that opens it), or nil.
local function own_pid()
  local f = io.open("/proc/self/stat", "r")
  if not f then return nil end
  local pid = (f:read("*l") or ""):match("^(%d+)")
  f:close()
  return pid
end

--- Starts one emulator. opts (all optional): token, email, key, idle_exit
--- (seconds without traffic before it exits by itself, default 120),
--- outlive (true: it does not exit with this process, only when idle),
--- log_file (its stderr, with --verbose; else it is discarded), latency
--- ({ read_ms = n, write_ms = n }: --latency, which a reset keeps).
function emulator_process.start(opts)
  opts = opts or {}
  local port_file, pid_file = os.tmpname(), os.tmpname()
  os.remove(port_file)
  local token = opts.token or "test-token"
  local email = opts.email or "user@example.com"
  local key = opts.key or "test-key"
  local idle_exit = tostring(opts.idle_exit or 120)
  local stderr = "2>/dev/null"
  local verbose = ""
  if opts.log_file then
    stderr = "2>>" .. shell_quote(opts.log_file)
    verbose = " --verbose"
  end
  -- The emulator is Lua 5.4's, whatever Lua starts it: a caller's Lua
  -- search paths (another version's modules) must not reach it.
  -- and it exits when this process is gone, however that ends
  local parent = not opts.outlive and own_pid()
  local latency = ""
  if opts.latency then
    latency = (" --latency %s,%s"):format(tostring(opts.latency.read_ms or 0), tostring(opts.latency.write_ms or 0))
  end
  local cmd = ("env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4"
    .. " lua5.4 %s --port 0 --port-file %s --idle-exit %s --token %s --email %s --key %s%s%s"
    .. "%s >/dev/null %s & echo $! > %s")
    :format(shell_quote(SCRIPT), shell_quote(port_file), shell_quote(idle_exit), shell_quote(token),
            shell_quote(email), shell_quote(key), verbose, parent and (" --parent " .. parent) or "",
            latency, stderr, shell_quote(pid_file))
  os.execute(cmd)
  local pid = tonumber(files.read(pid_file) or "")
  os.remove(pid_file)

  -- The emulator writes the port file whole (tmp + rename), so a number
  -- read here is the whole number. A process that died early fails fast.
  local port
  local deadline = socket.gettime() + START_TIMEOUT
  local next_check = socket.gettime() + 0.2
  repeat
    port = tonumber(files.read(port_file) or "")
    if not port then
      socket.sleep(0.02)
      if socket.gettime() > next_check then
        if not process.alive(pid) then break end
        next_check = socket.gettime() + 0.2
      end
    end
  until port or socket.gettime() > deadline
  -- read once: nothing is left in the temporary directory, however this ends
  if port then os.remove(port_file) end
  if not port then
    process.stop(pid)
    os.remove(port_file)
    os.remove(port_file .. ".tmp")
    error(("the emulator did not start within %d s (%s)%s"):format(START_TIMEOUT, SCRIPT,
          opts.log_file and ", see " .. opts.log_file or ""), 2)
  end

  local root = "http://127.0.0.1:" .. port
  local emu = {
    port = port,
    pid = pid,
    url = root,
    base_url = root .. "/client/v4",
    token = token,
    email = email,
    key = key,
  }
  local stopped = false

  --- Clears entries, pending faults and the request log; the latency back
  --- to what start() gave, the most in flight back to what is in flight now.
  function emu.reset() call(root, "POST", "reset", "{}") end

  --- Stores entries as given (defaults and id filled in); returns them as stored.
  --- resource: a name from resources/names.lua, default impersonation_registry.
  function emu.seed(account_id, entries, resource)
    local body = cjson.encode({ account_id = account_id, entries = entries or {}, resource = resource })
    -- cjson writes an empty list as {}, which the emulator also takes as none
    return call(root, "POST", "seed", body).entries
  end

  --- The account's entries of one resource (default impersonation_registry) in creation order.
  function emu.state(account_id, resource)
    local query = "state?account_id=" .. url_encode(account_id)
    if resource then query = query .. "&resource=" .. url_encode(resource) end
    return call(root, "GET", query).entries
  end

  --- Every API request so far, oldest first, credentials redacted.
  function emu.requests() return call(root, "GET", "requests").requests end

  --- How many of those used `method`.
  function emu.count(method)
    local n = 0
    for _, r in ipairs(emu.requests()) do
      if r.method == method then n = n + 1 end
    end
    return n
  end

  --- Drops the pending faults, keeping entries and the request log.
  function emu.clear_faults() call(root, "DELETE", "faults") end

  --- Appends faults; each is consumed by the next request it matches.
  function emu.faults(list)
    local body = #list == 0 and '{"faults":[]}' or cjson.encode({ faults = list })
    return call(root, "POST", "faults", body).pending
  end
  function emu.fault(f) return emu.faults({ f }) end

  --- Sets how long every API request waits before it is served, in ms:
  --- read_ms for GET, write_ms for the other methods (0 when nil);
  --- returns { read_ms, write_ms } as set.
  function emu.latency(read_ms, write_ms)
    return call(root, "PUT", "latency", cjson.encode({ read_ms = read_ms or 0, write_ms = write_ms or 0 }))
  end

  --- { current = n, max = m }: API requests read whole and not yet
  --- answered, now and at most at once since the last reset.
  function emu.in_flight() return call(root, "GET", "in_flight") end

  --- Sets the most in flight back to what is in flight now; returns
  --- { current, max }.
  function emu.reset_in_flight() return call(root, "DELETE", "in_flight") end

  --- Asks it to exit, makes sure it did, and removes the temp files; safe to call twice.
  function emu.stop()
    if stopped then return end
    stopped = true
    -- its answer to shutdown, then a refused port, say it is done: a pid
    -- can outlive its process (see process.alive)
    if pcall(call, root, "POST", "shutdown", "{}") then
      local until_t = socket.gettime() + 2
      while process.port_open(port) and socket.gettime() < until_t do socket.sleep(0.01) end
    end
    if process.port_open(port) or process.alive(pid) then process.stop(pid) end
    os.remove(port_file)
  end

  return emu
end

return emulator_process
