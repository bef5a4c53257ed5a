-- Soak: 100,000 calls through one client against the emulator, and the
-- resident memory of this process before and after. Run by `make soak`
-- (and CI); exits non-zero when memory grew by 1 MiB or more.
--   lua5.4 bench/soak.lua [calls]
local es = require("cloudflare.email_security")
local emulator_process = require("emulator.process")

local CALLS = tonumber(arg[1]) or 100000
local WARMUP = 2000

local function rss_kib()
  local f = assert(io.open("/proc/self/status"))
  local kib = tonumber(f:read("*a"):match("VmRSS:%s*(%d+)"))
  f:close()
  return kib
end

local emu = emulator_process.start({ idle_exit = 60 })
local cf = es.new({ account_id = "023e105f4ecef8ad9ca31a8372d0c353", api_token = emu.token,
                    base_url = emu.base_url, max_retries = 0 })
local reg = cf.impersonation_registry
local made = assert(reg:create({ name = "Soak", email = "soak@example.com", is_email_regex = false }))

local failures = 0
local function call(i)
  local r, err
  if i % 2 == 0 then
    r, err = reg:update(made.id, { comments = "call " .. i })
  else
    r, err = reg:get(made.id)
  end
  if not r then
    failures = failures + 1
    if failures < 5 then io.stderr:write(tostring(err), "\n") end
  end
end

for i = 1, WARMUP do call(i) end
collectgarbage()
collectgarbage()
local before = rss_kib()
local clock = os.clock()
for i = 1, CALLS do call(i) end
collectgarbage()
collectgarbage()
local after = rss_kib()
local cpu = os.clock() - clock
cf:close()
emu.stop()

local growth = after - before
print(("soak: %d calls (update/get alternating), %d failed, RSS %d KiB -> %d KiB (%+d KiB), %.1f us CPU per call")
  :format(CALLS, failures, before, after, growth, cpu / CALLS * 1e6))
os.exit((failures == 0 and growth < 1024) and 0 or 1)
