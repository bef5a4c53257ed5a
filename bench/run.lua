-- `make bench`: the module beside the floor (bench/floor.c: libcurl and
-- lua-cjson's decode) and beside libcurl alone, against a loopback nginx
-- serving canned Cloudflare envelopes (bench/loopback_server.lua) over
-- HTTP/1.1, HTTPS with HTTP/1.1 and HTTPS with HTTP/2. Prints a table of
-- CPU per call, requests per second, peak memory and the ratios to the
-- floor; then creates, flat memory, and calls made inside nginx. Reports
-- targets; asserts nothing. The tables are doc/performance.md's Markdown
-- (bench/doc.lua): `make bench-doc` puts a run's there.
--
--   lua5.4 bench/run.lua            (BENCH_N calls per row, default 2000)

local loopback_server = require("bench.loopback_server")
local doc = require("bench.doc")

local N = tonumber(os.getenv("BENCH_N") or "2000")
local LIST_ROUNDS = tonumber(os.getenv("BENCH_LIST_ROUNDS") or "5")
local REPEAT = tonumber(os.getenv("BENCH_REPEAT") or "3")
local FLAT_CALLS = tonumber(os.getenv("BENCH_FLAT_CALLS") or "100000")
local LUA = os.getenv("LUA") or "lua5.4"
local FLOOR = os.getenv("BENCH_FLOOR") or "build/lua5.4/bench/floor"
local ID, PATH = loopback_server.ID, loopback_server.PATH

local read = require("spec.support.files").command_output

local server = loopback_server.start()
local stop = server.stop

local function parse(line)
  local t = {}
  for k, v in line:gmatch("([%w_]+)=([%d%.]+)") do t[k] = tonumber(v) end
  if not t.calls then error("no measurement in: " .. line, 0) end
  return t
end

local ENV = ("BENCH_CA=%s LUA_PATH='./lua/?.lua;./?.lua;;' LUA_CPATH=%q")
  :format(loopback_server.quote(server.ca), os.getenv("LUA_CPATH") or "./build/lua5.4/?.so;;")

local function module(args) return parse(read(ENV .. " " .. LUA .. " bench/module_bench.lua " .. args)) end
local function floor(args, decode, env)
  return parse(read(ENV .. (decode and " FLOOR_DECODE=1 " or " ") .. (env or "") .. FLOOR .. " " .. args))
end

-- The best of REPEAT runs of each, the runs taking turns, so that a noisy
-- neighbour does not decide a ratio: the highest rate and, apart, the
-- lowest CPU per call and peak memory.
local function best_of(runs)
  local best = {}
  for _ = 1, REPEAT do
    for name, run in pairs(runs) do
      local t, b = run(), best[name]
      if b then
        t.wall = math.min(t.wall, b.wall)
        t.cpu_us = math.min(t.cpu_us, b.cpu_us)
        t.peak_kib = math.min(t.peak_kib, b.peak_kib)
      end
      best[name] = t
    end
  end
  return best
end

-- whatever fails below, nginx is stopped (and a Ctrl-C stops it with the
-- rest of the process group: see loopback_server.lua)
local function run_all()
  local TRANSPORTS = { { "HTTP/1.1", server.http }, { "HTTPS, HTTP/1.1", server.https1 },
                       { "HTTPS, HTTP/2", server.https2 } }
  local update_body = '{"name":"John Doe","comments":null}'
  local create_body = '{"name":"Jane Roe","email":"jane@example.com","is_email_regex":false}'
  local rows, creates = {}, {}
  for _, transport in ipairs(TRANSPORTS) do
    local label, base = transport[1], transport[2]
    local origin = base:gsub("/client/v4$", "")
    local item = origin .. PATH .. "/" .. ID
    local list = origin .. PATH .. "?per_page=1000"
    for _, case in ipairs({
      { "update (PATCH)", "update " .. base .. " " .. N, ("%s PATCH %d '%s'"):format(item, N, update_body) },
      { "delete (DELETE)", "delete " .. base .. " " .. N, ("%s DELETE %d"):format(item, N) },
      { "get (GET)", "get " .. base .. " " .. N, ("%s GET %d"):format(item, N) },
      { "list page of 1000 (each)", ("list %s %d %d"):format(base, loopback_server.PAGES, LIST_ROUNDS),
        ("--list '%s' %d %d"):format(list, loopback_server.PAGES, LIST_ROUNDS) },
    }) do
      local best = best_of({
        module = function() return module(case[2]) end,
        floor = function() return floor(case[3], true) end,
        bytes = function() return floor(case[3], false) end,
      })
      rows[#rows + 1] = { label, case[1], best.module, best.floor, best.bytes }
    end
    -- A create must never be sent twice: the module hands its body to
    -- libcurl through a read callback that cannot rewind, so libcurl cannot
    -- resend it by itself. The floor three ways: the body as POSTFIELDS
    -- (which libcurl may resend), as the module sends it, and on a new
    -- connection per call (the other way to the same guarantee).
    local floor_create = ("%s POST %d '%s'"):format(origin .. PATH, N, create_body)
    local best = best_of({
      module = function() return module("create " .. base .. " " .. N) end,
      postfields = function() return floor(floor_create, true) end,
      once = function() return floor(floor_create, true, "FLOOR_ONCE=1 ") end,
      fresh = function() return floor(floor_create, true, "FLOOR_FRESH=1 ") end,
    })
    creates[#creates + 1] = { label, best }
  end
  local flat = parse(read(ENV .. " " .. LUA .. " bench/module_bench.lua flat " .. server.http .. " " .. FLAT_CALLS))
  -- one listing of 100 pages, on a server of its own that has them
  local long = loopback_server.start(100)
  local ok, walked = pcall(function()
    return parse(read(ENV .. " " .. LUA .. " bench/module_bench.lua flat_list " .. long.http .. " 100"))
  end)
  long.stop()
  if not ok then error(walked, 0) end
  flat.list = walked
  -- calls made inside nginx, with README's configuration, against the same API
  local inside_nginx = read(("LUA_PATH='./lua/?.lua;./?.lua;;' %s bench/nginx_bench.lua %d %s 2>&1")
    :format(LUA, server.https_port2, loopback_server.quote(server.ca)))
  return rows, creates, flat, inside_nginx
end
local ok, rows, creates, flat, inside_nginx = pcall(run_all)
stop()
if not ok then error(rows, 0) end

local function rate(t) return t.calls / t.wall end
local function mib(t) return ("%.1f MiB"):format(t.peak_kib / 1024) end
local function kib(n) return doc.count(n) .. " KiB" end

-- The tables in doc/performance.md's Markdown (bench/doc.lua), for
-- bench/write_doc.lua to put there.
local facts, key = doc.run_facts(), doc.lua_key()
local call_rows = {}
for _, r in ipairs(rows) do
  local m, f, b = r[3], r[4], r[5]
  call_rows[#call_rows + 1] = { r[1], r[2], ("%.1f"):format(m.cpu_us), ("%.1f"):format(f.cpu_us),
    ("%.1f"):format(b.cpu_us), ("%.3f"):format(m.cpu_us / f.cpu_us), ("%.0f"):format(rate(m)),
    ("%.0f"):format(rate(f)), mib(m), mib(f) }
end
print("\n" .. doc.block("calls " .. key, ("%s: %d calls per row (a list row: %d walks of %d pages of 1000 entries,"
  .. " per page), best of %d; one client, sequential, loopback nginx."):format(facts, N, LIST_ROUNDS,
  loopback_server.PAGES, REPEAT),
  doc.table({ "transport", "call", "module CPU us/call", "floor CPU us/call", "libcurl alone CPU us/call",
    "CPU ratio to floor", "module req/s", "floor req/s", "module peak RSS", "floor peak RSS" }, "llrrrrrrrr",
    call_rows)))

local create_rows = {}
for _, c in ipairs(creates) do
  local function fig(t) return ("%.1f us, %.0f req/s"):format(t.cpu_us, rate(t)) end
  local b = c[2]
  create_rows[#create_rows + 1] = { c[1], fig(b.module), fig(b.postfields), fig(b.once), fig(b.fresh) }
end
print("\n" .. doc.block("creates " .. key, ("%s: CPU per create and requests per second, %d creates per row,"
  .. " best of %d; the floors decode each answer."):format(facts, N, REPEAT),
  doc.table({ "transport", "module", "floor, body as POSTFIELDS (libcurl may resend it)",
    "floor, a read callback that cannot rewind (the module's way)", "floor, a new connection per create" },
    "lrrrr", create_rows)))

local l = flat.list
print("\n" .. doc.block("memory " .. key, ("%s: resident memory of one client, HTTP/1.1, after a full"
  .. " collection."):format(facts),
  doc.table({ "run", "RSS before", "RSS after", "change", "peak RSS" }, "lrrrr", {
    { ("%s updates, after 1,000 warm-up calls"):format(doc.count(flat.calls)), kib(flat.rss_before_kib),
      kib(flat.rss_after_kib), ("%+d KiB"):format(flat.rss_after_kib - flat.rss_before_kib),
      ("%.1f MiB"):format(flat.peak_kib / 1024) },
    { ("one listing of %d pages of 1000 (`each`), after 10 pages and at its end"):format(l.calls),
      kib(l.rss_before_kib), kib(l.rss_after_kib), ("%+d KiB"):format(l.rss_after_kib - l.rss_before_kib),
      ("%.1f MiB"):format(l.peak_kib / 1024) },
  })))
print("\ntargets (bench/instructions.sh holds the instruction counts they are set in): update within 1.15x the"
  .. " floor, delete and get within 1.10x, a list page within 1.05x; peak RSS <= 16 MiB; flat memory")
print(inside_nginx)
