-- `make bench-peers`: the module beside Cloudflare's official TypeScript SDK
-- on Node (bench/peers/sdk_bench.mjs, installed by bench/peers/install.sh),
-- the same calls against the same loopback nginx (bench/loopback_server.lua),
-- over HTTP/1.1 and HTTPS with HTTP/1.1 (Node's fetch speaks no HTTP/2).
-- Prints requests per second, CPU per call and peak memory of each, and the
-- module's advantage. Reports; asserts nothing.
--
--   lua5.4 bench/peers.lua      (BENCH_N calls per row, default 2000)

local loopback_server = require("bench.loopback_server")
local doc = require("bench.doc")

local N = tonumber(os.getenv("BENCH_N") or "2000")
local LIST_ROUNDS = tonumber(os.getenv("BENCH_LIST_ROUNDS") or "5")
local LUA = os.getenv("LUA") or "lua5.4"

local read = require("spec.support.files").command_output

local server = loopback_server.start()

local function parse(line, what)
  local t = {}
  for k, v in line:gmatch("([%w_]+)=([%d%.]+)") do t[k] = tonumber(v) end
  if not t.calls then
    server.stop()
    error(what .. " gave no measurement: " .. line, 0)
  end
  return t
end

-- the SDK reads these from the environment; none may change what it sends
local NODE = ("env -u CLOUDFLARE_BASE_URL -u CLOUDFLARE_LOG -u CLOUDFLARE_CUSTOM_HEADERS -u CLOUDFLARE_API_KEY"
  .. " -u CLOUDFLARE_EMAIL NODE_EXTRA_CA_CERTS=%s node bench/peers/sdk_bench.mjs ")
  :format(loopback_server.quote(server.ca))
local MODULE = ("BENCH_CA=%s LUA_PATH='./lua/?.lua;./?.lua;;' LUA_CPATH=%q %s bench/module_bench.lua ")
  :format(loopback_server.quote(server.ca), os.getenv("LUA_CPATH") or "./build/lua5.4/?.so;;", LUA)

local rows = {}
local ok, err = pcall(function()
  for _, transport in ipairs({ { "HTTP/1.1", server.http }, { "HTTPS, HTTP/1.1", server.https1 } }) do
    for _, call in ipairs({ "update", "delete", "get", "create", "list" }) do
      local args = call == "list" and ("list %s %d %d"):format(transport[2], loopback_server.PAGES, LIST_ROUNDS)
        or ("%s %s %d"):format(call, transport[2], N)
      local m = parse(read(MODULE .. args), "the module")
      local s = parse(read(NODE .. args .. " 2>&1"), "the SDK")
      rows[#rows + 1] = { transport[1], call == "list" and "list page of 1000" or call, m, s }
    end
  end
end)
server.stop()
if not ok then error(err, 0) end

local version = read("node -p \"require('./build/peers/node_modules/cloudflare/package.json').version\" 2>/dev/null")
-- doc/performance.md's Markdown (bench/doc.lua)
local cells = {}
for _, r in ipairs(rows) do
  local m, s = r[3], r[4]
  local mr, sr = m.calls / m.wall, s.calls / s.wall
  cells[#cells + 1] = { r[1], r[2], ("%.0f"):format(mr), ("%.0f"):format(sr), ("%.1f"):format(m.cpu_us),
    ("%.1f"):format(s.cpu_us), ("%.1f MiB"):format(m.peak_kib / 1024), ("%.1f MiB"):format(s.peak_kib / 1024),
    ("%.1fx the rate, 1/%.1f the CPU, 1/%.1f the memory"):format(mr / sr, s.cpu_us / m.cpu_us,
      s.peak_kib / m.peak_kib) }
end
print("\n" .. doc.block("peers " .. doc.lua_key(), ("%s: beside Cloudflare's TypeScript SDK %s on Node %s; %d calls"
  .. " per row (%d walks of %d pages for list), one client, sequential, loopback nginx."):format(doc.run_facts(),
  version, read("node --version"), N, LIST_ROUNDS, loopback_server.PAGES),
  doc.table({ "transport", "call", "module req/s", "SDK req/s", "module CPU us/call", "SDK CPU us/call",
    "module peak RSS", "SDK peak RSS", "module: rate, CPU, memory" }, "llrrrrrrl", cells)))
