-- The bench rows for bulk work, against the emulator (emulator/, in its
-- own process: its time is in the wall figure, not in the client's CPU):
-- one batch call that creates 1000 allow policies, and a plan of 10,000
-- desired allow policies against 10,000 existing ones (1,000 of them
-- changed, so the plan lists 10 pages, matches 10,000 keys and finds 1,000
-- updates), then its apply (one batch request). Each in a process of
-- its own, so that its peak memory is its own. Reports; asserts only that
-- the work was done.
--
--   lua5.4 bench/bulk_bench.lua            (from make bench)
--   lua5.4 bench/bulk_bench.lua run batch|plan BASE_URL   (one measurement)

local ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"
local PLAN_SIZE, CHANGED, BATCH_SIZE = 10000, 1000, 1000

local function policy(i, comment)
  return { pattern = ("sender%d@partner%d.example"):format(i, i % 97), pattern_type = "EMAIL", is_regex = false,
           is_trusted_sender = false, is_exempt_recipient = false, is_acceptable_sender = true,
           verify_sender = true, comments = comment or "partner" }
end

local status_kib = require("bench.memory")
local doc = require("bench.doc")

if arg[1] == "run" then
  local es = require("cloudflare.email_security")
  local core = require("cloudflare.email_security.core")
  local what, base_url = arg[2], arg[3]
  local cf = es.new({ account_id = ACCOUNT, api_token = "bench-token", base_url = base_url, max_retries = 0 })
  local r = cf.allow_policies
  local line
  if what == "batch" then
    local posts = {}
    for i = 1, BATCH_SIZE do posts[i] = policy(i) end
    local wall, cpu = core.monotonic(), os.clock()
    local result = assert(r:batch({ posts = posts }))
    wall, cpu = core.monotonic() - wall, os.clock() - cpu
    assert(#result.posts == BATCH_SIZE, "the batch did not create every entry")
    line = ("a batch call creating %s allow policies"):format(doc.count(BATCH_SIZE))
    print(("%s: wall %.3f s, client CPU %.3f s, peak RSS %.1f MiB"):format(line, wall, cpu, status_kib("VmHWM") / 1024))
  elseif what == "plan" then
    local desired = {}
    for i = 1, PLAN_SIZE do desired[i] = policy(i, i <= CHANGED and "changed" or nil) end
    local wall, cpu = core.monotonic(), os.clock()
    local plan = assert(r:plan(desired))
    local plan_wall, plan_cpu = core.monotonic() - wall, os.clock() - cpu
    assert(#plan.updates == CHANGED and #plan.creates == 0 and #plan.deletes == 0, "unexpected plan: "
      .. #plan.creates .. " creates, " .. #plan.updates .. " updates, " .. #plan.deletes .. " deletes")
    local plan_peak = status_kib("VmHWM") / 1024
    wall, cpu = core.monotonic(), os.clock()
    assert(plan:apply())
    wall, cpu = core.monotonic() - wall, os.clock() - cpu
    print(("a plan of %s against %s (%s changed): wall %.3f s, client CPU %.3f s, peak RSS %.1f MiB"):format(
      doc.count(PLAN_SIZE), doc.count(PLAN_SIZE), doc.count(CHANGED), plan_wall, plan_cpu, plan_peak))
    print(("its apply (%s updates, %s): wall %.3f s, client CPU %.3f s, peak RSS %.1f MiB"):format(
      doc.count(CHANGED), plan:requests() == 1 and "one batch request" or plan:requests() .. " requests",
      wall, cpu, status_kib("VmHWM") / 1024))
  else
    error("bulk_bench.lua run batch|plan BASE_URL")
  end
  cf:close()
  os.exit(0)
end

local LUA = os.getenv("LUA") or "lua5.4"
local emulator = require("emulator.process")

local function run(what, url)
  local p = assert(io.popen(("LUA_PATH='./lua/?.lua;./?.lua;;' LUA_CPATH=%q %s bench/bulk_bench.lua run %s %s 2>&1")
    :format(os.getenv("LUA_CPATH") or "./build/lua5.4/?.so;;", LUA, what, url)))
  local out = p:read("*a")
  local ok = p:close()
  if not ok then error("bulk_bench " .. what .. " failed:\n" .. out, 0) end
  return out
end

local emu = emulator.start({ token = "bench-token", idle_exit = 600 })
local ok, out = pcall(function()
  local text = run("batch", emu.base_url)
  emu.reset()
  local existing = {}
  for i = 1, PLAN_SIZE do existing[i] = policy(i) end
  emu.seed(ACCOUNT, existing, "allow_policies")
  return text .. run("plan", emu.base_url)
end)
emu.stop()
if not ok then error(out, 0) end
-- doc/performance.md's Markdown (bench/doc.lua): one row per line the runs printed
local rows = {}
for line in out:gmatch("[^\n]+") do
  local what, wall, cpu, peak = line:match("^(.-): wall ([%d.]+ s), client CPU ([%d.]+ s), peak RSS ([%d.]+ MiB)$")
  if not what then error("bulk_bench: a line that is no measurement: " .. line, 0) end
  rows[#rows + 1] = { what, wall, cpu, peak }
end
print("\n" .. doc.block("bulk " .. doc.lua_key(), ("%s: against the emulator on loopback, each in a process of its"
  .. " own; the emulator's time is in the wall figures only."):format(doc.run_facts()),
  doc.table({ "work", "wall", "client CPU", "peak RSS" }, "lrrr", rows)))
