-- Instructions per call, by callgrind: the figure that timing noise cannot
-- move. Each is two runs of N and 2N calls, so that start-up cancels out.
-- First the module's own code on a canned answer (bench/own_code.lua, no
-- network) and the C core's decode of a 1000-entry page
-- (bench/decode_page.lua); then the module beside the floor (bench/floor.c:
-- libcurl plus lua-cjson's decode) for whole calls over HTTP/1.1 to the
-- loopback nginx of bench/loopback_server.lua (nginx's own work is in its
-- own process and not counted), with the ratio and its target.
--
--   bash bench/instructions.sh      (N=2000 by default)

local loopback_server = require("bench.loopback_server")
local doc = require("bench.doc")

local N = tonumber(os.getenv("N") or "2000")
local LUA = os.getenv("LUA") or "lua5.4"
local FLOOR = os.getenv("BENCH_FLOOR") or "build/lua5.4/bench/floor"

-- cmd: { environment, command }
local function refs(cmd)
  local p = assert(io.popen(cmd[1] .. " valgrind --tool=callgrind --callgrind-out-file=/dev/null " .. cmd[2]
    .. " 2>&1"))
  local out = p:read("*a")
  local closed = p:close()
  local count = out:match("refs:%s*([%d,]+)")
  if not count or not closed then error("callgrind gave no count for: " .. cmd[2] .. "\n" .. out, 0) end
  return tonumber((count:gsub(",", "")))
end

-- instructions per unit: (count at 2n - count at n) / (n * units)
local function per_call(make, n, units)
  return (refs(make(2 * n)) - refs(make(n))) / (n * (units or 1))
end

local own = per_call(function(k) return { "", LUA .. " bench/own_code.lua " .. k } end, N)
local page = per_call(function(k) return { "", LUA .. " bench/decode_page.lua " .. k } end, 5)

local server = loopback_server.start()
local ok, err = pcall(function()
  local base = server.http
  local origin = base:gsub("/client/v4$", "")
  local item = origin .. loopback_server.PATH .. "/" .. loopback_server.ID
  local list = origin .. loopback_server.PATH .. "?per_page=1000"
  local function module(args) return { "", LUA .. " bench/module_bench.lua " .. args } end
  local function floor(args) return { "FLOOR_DECODE=1", FLOOR .. " " .. args } end
  local m = math.max(1, math.floor(N / 4))
  local pages = loopback_server.PAGES
  local cases = {
    { "update", 1.15, m, function(k) return module("update " .. base .. " " .. k) end,
      function(k) return floor(item .. " PATCH " .. k .. [[ '{"name":"John Doe","comments":null}']]) end },
    { "delete", 1.10, m, function(k) return module("delete " .. base .. " " .. k) end,
      function(k) return floor(item .. " DELETE " .. k) end },
    { "get", 1.10, m, function(k) return module("get " .. base .. " " .. k) end,
      function(k) return floor(item .. " GET " .. k) end },
    { "list page of 1000", 1.05, 1, function(k) return module(("list %s %d %d"):format(base, pages, k)) end,
      function(k) return floor(("--list '%s' %d %d"):format(list, pages, k)) end, pages },
  }
  local rows = {}
  for _, c in ipairs(cases) do
    local mod, flo = per_call(c[4], c[3], c[6]), per_call(c[5], c[3], c[6])
    rows[#rows + 1] = { c[1], doc.count(mod), doc.count(flo), ("%.3f"):format(mod / flo),
      ("%s, %.2f"):format(mod / flo <= c[2] and "met" or "missed", c[2]) }
  end
  -- doc/performance.md's Markdown (bench/doc.lua)
  print("\n" .. doc.block("instructions " .. doc.lua_key(), ("%s: instructions per whole call, HTTP/1.1 to the"
    .. " loopback nginx (callgrind, n against 2n calls)."):format(doc.run_facts()),
    doc.table({ "call", "module", "floor", "ratio", "target" }, "lrrrr", rows),
    ("Without the network: the module's own code for an update (`bench/own_code.lua`: checks, body, request loop,"
    .. " the decode of a 420-byte answer), %s instructions; checking and decoding one 1000-entry page"
    .. " (`bench/decode_page.lua`), %s."):format(doc.count(own), doc.count(page))))
end)
server.stop()
if not ok then error(err, 0) end
