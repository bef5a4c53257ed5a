-- `make bench`'s rows for a slow API (issue 24): a loopback nginx
-- (bench/loopback_server.lua, canned answers) that adds READ_MS to each
-- GET and WRITE_MS to each write, and at 1, 4, 8 and 16 requests in
-- flight:
--   (a) a listing of PAGES pages of 1,000 entries (per_page=1000);
--   (b) creates and updates of the impersonation registry, which has no
--       batch endpoint: one request per change.
-- Beside the module, libcurl alone (bench/libcurl_in_flight.c: the multi
-- interface, N transfers in flight, N HTTP/1.1 connections, or one HTTP/2
-- connection over HTTPS) and Cloudflare's TypeScript SDK
-- (bench/peers/sdk_bench.mjs) when bench/peers/install.sh has installed it.
-- Every measurement runs in a process of its own (its peak memory its
-- own); each cell is the median of REPEAT runs, the clients taking turns.
-- Reports against the targets; asserts only that the work was done.
--
-- The module gets `concurrency = N` (es.new). A module that refuses the
-- option has its rows above 1 in flight printed as n/a, and its row at 1
-- measured without it (a module without the option sends one request at a
-- time).
--
-- Wall time: a write costs WRITE_MS whoever sends it, so 1,000 changes at 1
-- in flight take 150 s per client and run. The changes are measured on
-- ROUNDS rounds of N (ROUNDS x N changes, at most CHANGES) and scaled to
-- 1,000, which the table says; BENCH_IF_ROUNDS=1000 measures 1,000 at
-- every N (about 50 minutes).
--
--   lua5.4 bench/in_flight_bench.lua         (after make; from the repository's root)
--   lua5.4 bench/in_flight_bench.lua run all|each|creates|updates BASE_URL N COUNT   (one measurement)
--
-- Environment: BENCH_IF_IN_FLIGHT (default "1,4,8,16"), BENCH_IF_PAGES
-- (100), BENCH_IF_ROUNDS (5), BENCH_IF_CHANGES (1000), BENCH_IF_REPEAT (3),
-- BENCH_IF_SDK_AT (in flight counts the SDK is measured at, default "1,8";
-- "" for none), BENCH_IN_FLIGHT (the C program, default
-- build/bench/libcurl_in_flight, built by make when missing),
-- BENCH_IF_VERBOSE (set: each run's figures on standard error).

local ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"
local READ_MS, WRITE_MS = 50, 150

local status_kib = require("bench.memory")

-- One measurement, in its own process: prints one line,
--   calls=%d wall=%.6f cpu_us=%.3f peak_kib=%d [rss_before_kib=%d] [sequential=1]
-- or `refused=1` when es.new refuses the option concurrency (N above 1).
if arg[1] == "run" then
  local es = require("cloudflare.email_security")
  local core = require("cloudflare.email_security.core")
  local what, base_url, n, count = arg[2], arg[3], tonumber(arg[4]), tonumber(arg[5])
  local function fail(err)
    io.stderr:write("in_flight_bench ", what, ": ", tostring(err), "\n")
    os.exit(1)
  end
  local opts = { account_id = ACCOUNT, api_token = "bench-token", base_url = base_url, max_retries = 0,
                 concurrency = n }
  local ok, cf = pcall(es.new, opts)
  local sequential = false
  if not ok then
    if not tostring(cf):find("unknown option 'concurrency'", 1, true) then fail(cf) end
    if n > 1 then
      print("refused=1")
      os.exit(0)
    end
    opts.concurrency, sequential = nil, true
    cf = es.new(opts)
  end
  local reg = cf.impersonation_registry
  local extra = sequential and " sequential=1" or ""
  collectgarbage()
  local before = status_kib("VmRSS")
  local wall, cpu
  if what == "all" then
    wall, cpu = core.monotonic(), os.clock()
    local list, err = reg:all({ per_page = 1000 })
    wall, cpu = core.monotonic() - wall, os.clock() - cpu
    if not list then fail(err) end
    if #list ~= count * 1000 then fail(("all returned %d entries, not %d"):format(#list, count * 1000)) end
  elseif what == "each" then
    local entries = 0
    wall, cpu = core.monotonic(), os.clock()
    for e, err in reg:each({ per_page = 1000 }) do
      if not e then fail(err) end
      entries = entries + 1
    end
    wall, cpu = core.monotonic() - wall, os.clock() - cpu
    if entries ~= count * 1000 then fail(("each walked %d entries, not %d"):format(entries, count * 1000)) end
    extra = extra .. " rss_before_kib=" .. before
  elseif what == "creates" or what == "updates" then
    -- the server lists one page of 1,000 entries, person1..person1000
    -- (bench/loopback_server.lua): creates are entries it does not hold,
    -- updates rename entries it holds
    local desired = {}
    for i = 1, count do
      desired[i] = what == "creates"
        and { email = ("new%d@example.com"):format(i), is_email_regex = false, name = ("New %d"):format(i) }
        or { email = ("person%d@example.com"):format(i), is_email_regex = false,
             name = ("Person %d renamed"):format(i) }
    end
    local p, err = reg:plan(desired, { purge = false })
    if not p then fail(err) end
    if #p[what] ~= count or #p.creates + #p.updates + #p.deletes ~= count then
      fail(("the plan holds %d creates, %d updates, %d deletes; %d %s expected"):format(#p.creates, #p.updates,
        #p.deletes, count, what))
    end
    if what == "creates" then
      -- apply lists the registry again before its creates: that listing
      -- timed apart, for the driver to count it once when it scales
      local t = core.monotonic()
      local _, list_err = reg:list({ per_page = 1000 })
      if list_err then fail(list_err) end
      extra = extra .. (" relist_wall=%.6f"):format(core.monotonic() - t)
    end
    wall, cpu = core.monotonic(), os.clock()
    local summary
    summary, err = p:apply({ force = true })
    wall, cpu = core.monotonic() - wall, os.clock() - cpu
    if not summary then fail(err) end
    local done = what == "creates" and summary.created or summary.updated
    if done ~= count then fail(("apply did %d %s, not %d"):format(done, what, count)) end
  else
    fail("in_flight_bench.lua run all|each|creates|updates BASE_URL N COUNT")
  end
  print(("calls=%d wall=%.6f cpu_us=%.3f peak_kib=%d%s"):format(count, wall, cpu / count * 1e6,
    status_kib("VmHWM"), extra))
  cf:close()
  os.exit(0)
end

io.stdout:setvbuf("line")
local loopback_server = require("bench.loopback_server")
local doc = require("bench.doc")
local files = require("spec.support.files")
local read, quote = files.command_output, loopback_server.quote

local function list_of(text)
  local out = {}
  for v in (text or ""):gmatch("%d+") do out[#out + 1] = tonumber(v) end
  return out
end

local IN_FLIGHT = list_of(os.getenv("BENCH_IF_IN_FLIGHT") or "1,4,8,16")
local PAGES = tonumber(os.getenv("BENCH_IF_PAGES") or "100")
local ROUNDS = tonumber(os.getenv("BENCH_IF_ROUNDS") or "5")
local CHANGES = tonumber(os.getenv("BENCH_IF_CHANGES") or "1000")
local REPEAT = tonumber(os.getenv("BENCH_IF_REPEAT") or "3")
local SDK_AT = {}
for _, n in ipairs(list_of(os.getenv("BENCH_IF_SDK_AT") or "1,8")) do SDK_AT[n] = true end
local LUA = os.getenv("LUA") or "lua5.4"
local LUA_CPATH = os.getenv("LUA_CPATH") or "./build/lua5.4/?.so;;"
local CURL = os.getenv("BENCH_IN_FLIGHT") or "build/bench/libcurl_in_flight"
local TARGET_N = 8
local VERBOSE = os.getenv("BENCH_IF_VERBOSE") ~= nil   -- each run's figures on stderr

if not os.getenv("BENCH_IN_FLIGHT") then
  -- run alone: the C program through the Makefile's rule (make says nothing when it is up to date)
  local ok = os.execute("make -s --no-print-directory " .. CURL .. " >&2")
  if not (ok == true or ok == 0) then error("in_flight_bench: could not build " .. CURL, 0) end
end

local function changes_at(n) return math.min(CHANGES, ROUNDS * n) end

-- The SDK when bench/peers/install.sh has put it in build/peers, and Node.
local sdk_version = read("node -p \"require('./build/peers/node_modules/cloudflare/package.json').version\""
  .. " 2>/dev/null")
local node_version = sdk_version ~= "" and read("node --version 2>/dev/null") or ""
local sdk_installed = sdk_version:match("^%d") ~= nil
local have_sdk = sdk_installed and next(SDK_AT) ~= nil

local function parse(out, what)
  local t = {}
  for k, v in out:gmatch("([%w_]+)=([%d%.]+)") do t[k] = tonumber(v) end
  if not (t.calls or t.refused) then error(what .. " gave no measurement:\n" .. out, 0) end
  return t
end

-- a command's output and whether it exited 0
local function run_command(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("*a")
  local ok = p:close()
  return out, ok
end

local function measure(cmd, what)
  local out, ok = run_command(cmd)
  if not ok then error(what .. " failed:\n" .. out, 0) end
  return parse(out, what)
end

local list_server = loopback_server.start({ pages = PAGES, read_ms = READ_MS, write_ms = WRITE_MS })
-- plan and apply list the registry (and apply lists it again before its
-- creates): a server of its own with one page of 1,000 entries, which the
-- creates are not among and the updates are
local ok_start, plan_server = pcall(loopback_server.start, { pages = 1, read_ms = READ_MS, write_ms = WRITE_MS })
if not ok_start then
  list_server.stop()
  error(plan_server, 0)
end

local CHILD_ENV = ("LUA_PATH='./lua/?.lua;./?.lua;;' LUA_CPATH=%s "):format(quote(LUA_CPATH))
-- one untimed get first: Node loads its fetch at the first request (some
-- 100 ms), which 1,000 changes would pay once, not once per change measured
local NODE = ("env -u CLOUDFLARE_BASE_URL -u CLOUDFLARE_LOG -u CLOUDFLARE_CUSTOM_HEADERS -u CLOUDFLARE_API_KEY"
  .. " -u CLOUDFLARE_EMAIL SDK_BENCH_WARMUP=1 node bench/peers/sdk_bench.mjs ")

local function origin(base) return (base:gsub("/client/v4$", "")) end

-- Each case: a name, the in-flight counts it runs at, and how to run it
-- at n. The module's cases may answer `refused`.
local CASES = {
  { name = "curl_list", at = function() return true end, run = function(n)
      return measure(("%s list %s %d %d"):format(CURL, quote(origin(list_server.http) .. loopback_server.PATH
        .. "?per_page=1000"), PAGES, n), "libcurl_in_flight list")
    end },
  { name = "curl_list_h2", at = function(n) return n > 1 end, run = function(n)
      return measure(("BENCH_CA=%s BENCH_HTTP2=1 %s list %s %d %d"):format(quote(list_server.ca), CURL,
        quote(origin(list_server.https2) .. loopback_server.PATH .. "?per_page=1000"), PAGES, n),
        "libcurl_in_flight list (HTTP/2)")
    end },
  { name = "module_all", module = true, at = function() return true end, run = function(n)
      return measure(("%s%s bench/in_flight_bench.lua run all %s %d %d"):format(CHILD_ENV, LUA,
        quote(list_server.http), n, PAGES), "the module's all")
    end },
  { name = "module_each", module = true, at = function() return true end, run = function(n)
      return measure(("%s%s bench/in_flight_bench.lua run each %s %d %d"):format(CHILD_ENV, LUA,
        quote(list_server.http), n, PAGES), "the module's each")
    end },
  { name = "sdk_list", at = function(n) return have_sdk and SDK_AT[n] end, run = function(n)
      -- at 1 the SDK's own auto-paging; above, pages through a Promise pool
      local args = n == 1 and ("autolist %s %d"):format(quote(list_server.http), PAGES)
        or ("poollist %s %d %d"):format(quote(list_server.http), PAGES, n)
      return measure(NODE .. args, "the SDK's listing")
    end },
  { name = "curl_creates", at = function() return true end, run = function(n)
      return measure(("%s POST %s %d %d"):format(CURL, quote(origin(plan_server.http) .. loopback_server.PATH),
        changes_at(n), n), "libcurl_in_flight POST")
    end },
  { name = "module_creates", module = true, at = function() return true end, run = function(n)
      return measure(("%s%s bench/in_flight_bench.lua run creates %s %d %d"):format(CHILD_ENV, LUA,
        quote(plan_server.http), n, changes_at(n)), "the module's creates")
    end },
  { name = "sdk_creates", at = function(n) return have_sdk and SDK_AT[n] end, run = function(n)
      return measure(NODE .. ("creates %s %d %d"):format(quote(plan_server.http), changes_at(n), n),
        "the SDK's creates")
    end },
  { name = "curl_updates", at = function() return true end, run = function(n)
      return measure(("%s PATCH %s %d %d"):format(CURL, quote(origin(plan_server.http) .. loopback_server.PATH),
        changes_at(n), n), "libcurl_in_flight PATCH")
    end },
  { name = "module_updates", module = true, at = function() return true end, run = function(n)
      return measure(("%s%s bench/in_flight_bench.lua run updates %s %d %d"):format(CHILD_ENV, LUA,
        quote(plan_server.http), n, changes_at(n)), "the module's updates")
    end },
  { name = "sdk_updates", at = function(n) return have_sdk and SDK_AT[n] end, run = function(n)
      return measure(NODE .. ("updates %s %d %d"):format(quote(plan_server.http), changes_at(n), n),
        "the SDK's updates")
    end },
}

-- results[case][n] = { run, run, ... }; refused: the module has no option
-- concurrency; sequential: its row at 1 was measured without it
local results, refused, sequential, failed, failures = {}, false, false, {}, {}
local started = os.time()

local function run_all()
  for round = 1, REPEAT do
    for _, n in ipairs(IN_FLIGHT) do
      for _, case in ipairs(CASES) do
        results[case.name] = results[case.name] or {}
        local cell = results[case.name]
        cell[n] = cell[n] or {}
        local skip = not case.at(n) or (case.module and refused and n > 1) or failed[case.name .. n]
        if not skip then
          local ok, t = pcall(case.run, n)
          if VERBOSE then
            io.stderr:write(("%s at %d: %s\n"):format(case.name, n, ok and (t.refused and "refused"
              or ("wall=%.3f peak_kib=%d"):format(t.wall, t.peak_kib)) or tostring(t)))
          end
          if not ok then
            failed[case.name .. n] = true
            failures[#failures + 1] = ("%s at %d in flight: %s"):format(case.name, n, tostring(t))
          elseif t.refused then
            refused = true
          else
            if t.sequential then sequential = true end
            cell[n][#cell[n] + 1] = t
          end
        end
      end
    end
    io.stderr:write(("in_flight_bench: round %d of %d done, %d s\n"):format(round, REPEAT, os.time() - started))
  end
end
local ok, err = pcall(run_all)
list_server.stop()
plan_server.stop()
if not ok then error(err, 0) end

-- The median of a cell's runs (of one field), or nil for none.
local function median(case, n, field)
  local runs = results[case] and results[case][n]
  if not runs or #runs == 0 then return nil end
  local v = {}
  for _, t in ipairs(runs) do v[#v + 1] = t[field or "wall"] end
  if #v == 0 then return nil end
  table.sort(v)
  local m = math.floor(#v / 2)
  return #v % 2 == 1 and v[m + 1] or (v[m] + v[m + 1]) / 2
end

local function is_module(case) return case:match("^module_") ~= nil end

-- what a cell shows when it has no figure
local function missing(case, n)
  if failed[case .. n] then return "failed" end
  if is_module(case) and refused and n > 1 then return "n/a (no concurrency option yet)" end
  if case:match("^sdk_") and not sdk_installed then return "not installed" end
  return "—"
end

local function seconds(case, n, scale)
  local w = median(case, n)
  if not w then return missing(case, n) end
  return ("%.2f s"):format(w * (scale or 1))
end

local function ratio(a, b, n)
  local x, y = median(a, n), median(b, n)
  if not (x and y) then return x and "—" or missing(a, n) end
  return ("%.2fx"):format(x / y)
end

local function mib(kib) return ("%.1f MiB"):format(kib / 1024) end

-- one page in memory: what a walk at 1 in flight adds above the process
-- before it (it holds one page at a time, its bytes and its entries)
local peak_1, before_1 = median("module_each", 1, "peak_kib"), median("module_each", 1, "rss_before_kib")
local page_kib = peak_1 and before_1 and math.max(1, peak_1 - before_1)

local function star(n) return (n == 1 and sequential) and " †" or "" end

local list_rows = {}
for _, n in ipairs(IN_FLIGHT) do
  local peak = median("module_each", n, "peak_kib")
  local above
  if peak and peak_1 and n > 1 then
    -- a tenth of a MiB either way is noise: no "-0.0"
    local d = math.abs(peak - peak_1) < 103 and 0 or peak - peak_1
    above = ("%+.1f MiB (%.1f pages)"):format(d / 1024, d / page_kib)
  elseif peak and n == 1 and page_kib then
    above = ("a page: %s"):format(mib(page_kib))
  else
    above = peak and "—" or missing("module_each", n)
  end
  local sdk = seconds("sdk_list", n)
  if median("sdk_list", n) then sdk = sdk .. (n == 1 and " (auto-paging)" or " (Promise pool)") end
  list_rows[#list_rows + 1] = { tostring(n), seconds("curl_list", n), seconds("curl_list_h2", n),
    seconds("module_all", n) .. star(n), ratio("module_all", "curl_list", n), seconds("module_each", n) .. star(n),
    peak and mib(peak) or missing("module_each", n), above, sdk }
end

-- Seconds for 1,000 changes, scaled from the changes measured at n; the
-- module's creates count the listing apply makes before them once (timed
-- apart in the same process: relist_wall).
local function scaled(case, n)
  local w = median(case, n)
  if not w then return nil end
  local fixed = math.min(w, median(case, n, "relist_wall") or 0)
  return fixed + (w - fixed) * 1000 / changes_at(n)
end
local function per_1000(case, n)
  local v = scaled(case, n)
  return v and ("%.1f s"):format(v) or missing(case, n)
end
local function scaled_ratio(a, b, n)
  local x, y = scaled(a, n), scaled(b, n)
  if not (x and y) then return x and "—" or missing(a, n) end
  return ("%.2fx"):format(x / y)
end

local change_rows = {}
for _, n in ipairs(IN_FLIGHT) do
  local sdk = "—"
  if median("sdk_creates", n) or median("sdk_updates", n) then
    sdk = per_1000("sdk_creates", n) .. " / " .. per_1000("sdk_updates", n)
      .. (n == 1 and " (await in a loop)" or " (Promise pool)")
  elseif not sdk_installed and SDK_AT[n] then
    sdk = "not installed"
  end
  change_rows[#change_rows + 1] = { tostring(n), doc.count(changes_at(n)), per_1000("curl_creates", n),
    per_1000("module_creates", n) .. star(n), scaled_ratio("module_creates", "curl_creates", n),
    per_1000("curl_updates", n), per_1000("module_updates", n) .. star(n),
    scaled_ratio("module_updates", "curl_updates", n), sdk }
end

local facts = doc.run_facts()
local sdk_words = not sdk_installed and "Cloudflare's TypeScript SDK (not installed: bash bench/peers/install.sh)"
  or not have_sdk and "not Cloudflare's TypeScript SDK (BENCH_IF_SDK_AT is empty)"
  or ("Cloudflare's TypeScript SDK %s on Node %s"):format(sdk_version, node_version)
local caption = ("%s: a loopback nginx with canned answers (bench/loopback_server.lua) that waits %d ms before"
  .. " each GET and %d ms before each write, in nginx's Lua (ngx.sleep); wall time, the median of %d run%s, each"
  .. " in a process of its own. The module over HTTP/1.1 with `concurrency = N`, beside"
  .. " libcurl alone (bench/libcurl_in_flight.c: the multi interface, N transfers in flight, N HTTP/1.1"
  .. " connections or one HTTP/2 connection over HTTPS, the bytes only counted) and %s."):format(facts, READ_MS,
  WRITE_MS, REPEAT, REPEAT == 1 and "" or "s", sdk_words)
local list_table = doc.table({ "in flight", "libcurl alone, HTTP/1.1", "libcurl alone, HTTPS, HTTP/2",
  "module `all`", "module `all` / libcurl", "module `each`", "`each` peak RSS", "`each` above 1 in flight",
  "TS SDK" }, "rrrrrrrrr", list_rows)
local change_table = doc.table({ "in flight", "changes measured", "libcurl alone, creates (POST)",
  "module, creates (plan, apply)", "module / libcurl", "libcurl alone, updates (PATCH)",
  "module, updates (plan, apply)", "module / libcurl", "TS SDK, creates / updates" }, "rrrrrrrrr", change_rows)
local notes = {
  ("The listing: %d pages of 1,000 entries (`per_page = 1000`); the module's `all` returns all %s entries,"
    .. " `each` walks them (its peak RSS, and how far it is above the walk at 1 in flight: a page being what"
    .. " that walk adds to the process before it). The TS SDK at 1 is its own auto-paging (`for await` over"
    .. " `list`, one request more than the pages: it stops at an empty page); above 1, page 1 and then the"
    .. " others through a pool of N Promises."):format(PAGES, doc.count(PAGES * 1000)),
  "",
  ("The changes: seconds for 1,000 changes, scaled from those measured at each N (%d round%s of N, at most %s)."
    .. " The module's are the apply of `plan(desired, { purge = false })` (`apply{ force = true }`) against a"
    .. " registry of 1,000 entries (a server of its own, one page): 1,000 new entries, then 1,000 renamed;"
    .. " a create's apply first lists the registry again (a %d ms read, in its time, which the scaling"
    .. " counts once, timed apart). libcurl sends the same requests, nothing else. The TS SDK (one untimed"
    .. " request first): `await create` / `await edit` in a loop at 1, a pool of N Promises above. The registry"
    .. " has no batch endpoint. The server's answers are canned: a create answers one fixed entry and the"
    .. " listing does not change, which no client here checks."):format(ROUNDS, ROUNDS == 1 and "" or "s",
    doc.count(CHANGES), READ_MS),
}
if sequential then
  notes[#notes + 1] = ""
  notes[#notes + 1] = "† es.new refused the option `concurrency`: the row at 1 is the module without it (one"
    .. " request at a time)."
end
print("\n" .. doc.block("in_flight " .. doc.lua_key(), caption, list_table .. "\n\n" .. change_table,
  table.concat(notes, "\n")))

local function verdict(a, b, limit, value)
  value = value or median
  local x, y = value(a, TARGET_N), value(b, TARGET_N)
  if not (x and y) then return missing(a, TARGET_N) end
  return ("%.2fx, %s"):format(x / y, x / y <= limit and "met" or "NOT met")
end
local memory
do
  local peak = median("module_each", TARGET_N, "peak_kib")
  if peak and page_kib then
    local pages = math.abs(peak - peak_1) < 103 and 0 or (peak - peak_1) / page_kib
    memory = ("%.1f pages, %s"):format(pages, pages <= TARGET_N and "met" or "NOT met")
  else
    memory = missing("module_each", TARGET_N)
  end
end
print(("\ntargets at %d in flight: the listing (`all`) within 1.15x libcurl alone: %s; 1,000 creates within"
  .. " 1.15x: %s; 1,000 updates within 1.15x: %s; `each` at most %d pages above 1 in flight: %s")
  :format(TARGET_N, verdict("module_all", "curl_list", 1.15), verdict("module_creates", "curl_creates", 1.15, scaled),
    verdict("module_updates", "curl_updates", 1.15, scaled), TARGET_N, memory))
print(("in_flight_bench: %d s of wall time"):format(os.time() - started))
if #failures > 0 then
  io.stderr:write("in_flight_bench: runs that failed:\n", table.concat(failures, "\n"), "\n")
  os.exit(1)
end
