-- Serves Cloudflare's OpenAPI file with Stoplight Prism (`prism mock
-- --errors`), which checks every request against the schema: a request that
-- breaks it is answered 422 and logged as a "Violation". Prism runs under
-- `timeout`, so it stops by itself even if a spec dies.
local socket = require("socket")
local files = require("spec.support.files")
local process = require("spec.support.process")

local prism = {}

local here = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./"
local ROOT = here .. "../../"

--- opts.spec: the OpenAPI file; opts.bin: the prism binary. Returns the
--- server, or nil and the reason it cannot run here.
function prism.start(opts)
  opts = opts or {}
  local spec = opts.spec or require("spec.support.openapi").PATH
  if not files.exists(spec) then return nil, spec .. " is absent" end
  local bin = opts.bin or os.getenv("PRISM_BIN") or (ROOT .. ".ci/node/node_modules/.bin/prism")
  if not files.exists(bin) then
    return nil, "Prism is not installed (" .. bin .. "): run spec/support/prism_install.sh"
  end

  local port = process.free_port()
  local log_file, pid_file = os.tmpname(), os.tmpname()
  os.execute(("timeout 600 %q mock --errors -h 127.0.0.1 -p %d %q > %q 2>&1 & echo $! > %q")
    :format(bin, port, spec, log_file, pid_file))
  local pid = tonumber(files.read(pid_file) or "")
  os.remove(pid_file)

  local server = { base_url = "http://127.0.0.1:" .. port }
  local stopped = false
  function server.log() return files.read(log_file) or "" end
  function server.stop()
    if stopped then return end
    stopped = true
    process.stop(pid)
    os.remove(log_file)
  end
  --- The log lines that report a request breaking the schema.
  function server.violations()
    local found = {}
    for line in server.log():gmatch("[^\n]+") do
      if line:find("Violation:", 1, true) then found[#found + 1] = line end
    end
    return found
  end
  --- How many requests Prism has received so far.
  function server.received()
    local n = 0
    for _ in server.log():gmatch("Request received") do n = n + 1 end
    return n
  end

  local deadline = socket.gettime() + 60
  while not server.log():find("Prism is listening", 1, true) do
    if socket.gettime() > deadline then
      local tail = server.log():sub(-500)
      server.stop()
      return nil, "Prism did not start within 60 s: " .. tail
    end
    socket.sleep(0.1)
  end
  return server
end

return prism
