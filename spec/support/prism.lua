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

-- Prism validates nothing for an operation whose schemas hold an enum with
-- null in it (domains' DmarcStatus, ScannableFolder, DomainStatus,
-- SpfStatus): it quietly lets every body and query through. Each of those
-- enums also says `nullable: true`, which keeps null allowed, so a copy
-- without the null members means the same and is checked. Returns the
-- copy's path (removed at stop) and how many enums it changed.
function prism.strict_copy(spec)
  local text = assert(files.read(spec), "cannot read " .. spec)
  local changed = 0
  text = text:gsub('("enum"%s*:%s*)(%b[])', function(key, list)
    local without = list:gsub(",%s*null%s*%]", "]"):gsub("%[%s*null%s*,", "["):gsub(",%s*null%s*,", ",")
    if without ~= list then changed = changed + 1 end
    return key .. without
  end)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path, changed
end

--- opts.spec: the OpenAPI file; opts.bin: the prism binary. Returns the
--- server, or nil and the reason it cannot run here.
function prism.start(opts)
  opts = opts or {}
  local original = opts.spec or require("spec.support.openapi").PATH
  if not files.exists(original) then return nil, original .. " is absent" end
  local spec = prism.strict_copy(original)
  local bin = opts.bin or os.getenv("PRISM_BIN") or (ROOT .. ".ci/node/node_modules/.bin/prism")
  if not files.exists(bin) then
    os.remove(spec)
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
    os.remove(spec)
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
