-- `make check-threads`: the two-thread C host (two_states.c) under helgrind,
-- against the emulator. Fails on any race or lock-order error helgrind
-- reports outside spec/hosts/c_host/helgrind.supp (which names, and explains,
-- the only two it lets pass), or on a wrong round trip.
--   lua5.4 spec/hosts/c_host/check_threads.lua [ROUNDS]
package.path = "./?.lua;" .. package.path
local emulator_process = require("emulator.process")

local rounds = tonumber(arg[1]) or 10
local emu = emulator_process.start()
local log = os.tmpname()
-- A deadlock (what a global lock could bring) fails the check after ten
-- minutes instead of hanging CI; a normal run takes well under one.
local cmd = ("LUA_PATH='./lua/?.lua;;' LUA_CPATH='./build/lua5.4/?.so;;' timeout 600 valgrind --tool=helgrind"
  .. " --error-exitcode=99 --num-callers=30 --suppressions=spec/hosts/c_host/helgrind.supp"
  .. " build/c_host/two_states %s %s %d > %s 2>&1"):format(emu.base_url, emu.token, rounds, log)
local ok = os.execute(cmd)
emu.stop()
local f = assert(io.open(log, "rb"))
local out = f:read("a")
f:close()
os.remove(log)

local races = select(2, out:gsub("Possible data race", ""))
local summary = out:match("ERROR SUMMARY: [^\n]*") or "no helgrind summary"
local done = 0
for a, b in out:gmatch("thread %a: (%d+) of (%d+) round trips\n") do
  if a == b and tonumber(a) == rounds then done = done + 1 end
end
if ok ~= true or races > 0 or done ~= 2 then
  io.stderr:write(out, "\nhelgrind: ", summary, "\n")
  os.exit(1)
end
print(("helgrind: two threads, %d round trips each, %s"):format(rounds, summary))
