-- A C host (spec/hosts/c_host/two_states.c) embeds Lua 5.4 and loads the module in
-- two lua_States on two threads at once; each runs create, update, delete
-- and get-gives-404 round trips of the registry, and a content policy's
-- create and batch delete, against the emulator with its own client.
local emulator_process = require("emulator.process")

local HOST = "build/c_host/two_states"

describe("a C host with two Lua states on two threads", function()
  local emu
  lazy_setup(function() emu = emulator_process.start() end)
  lazy_teardown(function() if emu then emu.stop() end end)

  it("runs round trips in both at once, with the right results", function()
    local f = io.open(HOST, "rb")
    if not f then
      if os.getenv("CI") then error(HOST .. " is not built (make test builds it)") end
      return pending(HOST .. " is not built: make test builds it")
    end
    f:close()
    -- the host is Lua 5.4: it loads the 5.4 build, whatever Lua runs this spec
    local cmd = ("LUA_PATH='./lua/?.lua;;' LUA_CPATH='./build/lua5.4/?.so;;' %s %s %s 40 2>&1")
      :format(HOST, emu.base_url, emu.token)
    local p = io.popen(cmd)
    local out = p:read("*a")
    local ok = p:close()
    assert.matches("thread a: 40 of 40 round trips\n", out, 1, true)
    assert.matches("thread b: 40 of 40 round trips\n", out, 1, true)
    assert.is_truthy(ok, out)
    -- per round and thread: a registry create, a content policy create, a
    -- batch, and three registry creates in flight at once
    assert.are.equal(480, emu.count("POST"))
  end)
end)
