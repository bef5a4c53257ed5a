-- One measurement of the module, in a process of its own so that its peak
-- memory is its own; bench/run.lua starts it and reads the one line it
-- prints (the same format as bench/floor.c).
--
--   module_bench.lua update|delete|get|create BASE_URL N
--   module_bench.lua list BASE_URL PAGES ROUNDS     (PAGES pages of 1000 through reg:each)
--   module_bench.lua flat BASE_URL N                RSS after 1,000 updates and after N, and its peak
--   module_bench.lua flat_list BASE_URL PAGES       RSS after 10 pages (or PAGES) of one listing and at its end
local es = require("cloudflare.email_security")
local core = require("cloudflare.email_security.core")

local mode, base_url, n, rounds = arg[1], arg[2], tonumber(arg[3]), tonumber(arg[4] or "1")
local ID = "f174e90a-fafe-4643-bbbc-4a0ed4fc8415"

local status_kib = require("bench.memory")

local cf = es.new({ account_id = "023e105f4ecef8ad9ca31a8372d0c353", api_token = "bench-token",
                    base_url = base_url, ca_bundle = os.getenv("BENCH_CA"), max_retries = 0 })
local reg = cf.impersonation_registry
local fields = { name = "John Doe", comments = es.null }

local function fail(err)
  io.stderr:write("module_bench: ", tostring(err), "\n")
  os.exit(1)
end

local calls = 0
local wall, cpu = core.monotonic(), os.clock()
local new_entry = { name = "Jane Roe", email = "jane@example.com", is_email_regex = false }
local ONE = {
  update = function() return reg:update(ID, fields) end,
  create = function() return reg:create(new_entry) end,
  get = function() return reg:get(ID) end,
  delete = function() return reg:delete(ID) end,
}
if ONE[mode] then
  local call = ONE[mode]
  for _ = 1, n do
    local r, err = call()
    if not r then fail(err) end
  end
  calls = n
elseif mode == "list" then
  local entries = 0
  for _ = 1, rounds do
    for entry, err in reg:each({ per_page = 1000 }) do
      if not entry then fail(err) end
      entries = entries + 1
    end
  end
  if entries ~= n * 1000 * rounds then fail("walked " .. entries .. " entries") end
  calls = n * rounds
elseif mode == "flat" then
  for _ = 1, 1000 do assert(reg:update(ID, fields)) end
  collectgarbage()
  local before = status_kib("VmRSS")
  for _ = 1, n do assert(reg:update(ID, fields)) end
  collectgarbage()
  print(("calls=%d rss_before_kib=%d rss_after_kib=%d peak_kib=%d"):format(n, before, status_kib("VmRSS"),
                                                                           status_kib("VmHWM")))
  os.exit(0)
elseif mode == "flat_list" then
  local entries, before = 0, nil
  for entry, err in reg:each({ per_page = 1000 }) do
    if not entry then fail(err) end
    entries = entries + 1
    if entries == math.min(10, n) * 1000 then
      collectgarbage()
      before = status_kib("VmRSS")
    end
  end
  if entries ~= n * 1000 then fail("walked " .. entries .. " entries") end
  collectgarbage()
  print(("calls=%d rss_before_kib=%d rss_after_kib=%d peak_kib=%d"):format(n, before, status_kib("VmRSS"),
                                                                           status_kib("VmHWM")))
  os.exit(0)
else
  fail("unknown mode " .. tostring(mode))
end
wall, cpu = core.monotonic() - wall, os.clock() - cpu
print(("calls=%d wall=%.6f cpu_us=%.3f peak_kib=%d"):format(calls, wall, cpu / calls * 1e6, status_kib("VmHWM")))
cf:close()
