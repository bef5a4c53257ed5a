-- `make demo` (examples/update_and_delete.lua) says which API it talks to
-- and, when it falls back to the local emulator, which setting was missing;
-- its second part (examples/plan_and_apply.lua) plans and applies a CSV.
local emulator_process = require("emulator.process")
local files = require("spec.support.files")

local UNSET = "env -u CLOUDFLARE_ACCOUNT_ID -u CLOUDFLARE_API_TOKEN -u CLOUDFLARE_EMAIL -u CLOUDFLARE_API_KEY"
  .. " -u CLOUDFLARE_BASE_URL"

local function demo(env)
  return files.command_output(("%s %s LUA_PATH='./lua/?.lua;./?.lua;;' LUA_CPATH=%q %s examples/update_and_delete.lua 2>&1")
    :format(UNSET, env, package.cpath, os.getenv("LUA") or "lua5.4"))
end

describe("the demo", function()
  it("runs on the local emulator, leaving credentials in the environment alone", function()
    assert.matches("^using the local emulator at http://127%.0%.0%.1:%d+/client/v4\n", demo(""))
    local emu = emulator_process.start()
    -- a user's exported credentials (for wrangler, say): the demo does not use them
    local out = demo(("CLOUDFLARE_ACCOUNT_ID=acct CLOUDFLARE_API_TOKEN=%s CLOUDFLARE_BASE_URL=%s")
      :format(emu.token, emu.base_url))
    local requests = #emu.requests()
    emu.stop()
    assert.matches("^using the local emulator at http://127%.0%.0%.1:%d+/client/v4 %(the CLOUDFLARE_%* credentials "
      .. "in the environment are left alone: make demo%-real%-api uses them%)\n", out)
    assert.matches("\ncreated ", out)
    assert.are.equal(0, requests)
  end)

  it("DEMO_REAL_API=1: the environment's account and API, named before it acts, and only there", function()
    local emu = emulator_process.start()
    local out = demo(("DEMO_REAL_API=1 CLOUDFLARE_ACCOUNT_ID=acct CLOUDFLARE_API_TOKEN=%s CLOUDFLARE_BASE_URL=%s")
      :format(emu.token, emu.base_url))
    local posts = emu.count("POST")
    emu.stop()
    assert.matches("^account acct at " .. emu.base_url:gsub("%p", "%%%0") .. ": creating, updating and deleting one "
      .. "impersonation registry entry there\n", out)
    assert.matches("\ncreated ", out)
    assert.are.equal(1, posts)
    -- asked for the real API without what it needs: an error, not the emulator
    out = demo("DEMO_REAL_API=1 CLOUDFLARE_API_TOKEN=t")
    assert.matches("^DEMO_REAL_API=1 asks for the real API, but CLOUDFLARE_ACCOUNT_ID is not set: nothing was done",
                   out)
  end)

  it("second part: plans examples/partners.csv, applies it, and then has nothing left to do", function()
    local out = files.command_output(("%s LUA_PATH='./lua/?.lua;./?.lua;;' LUA_CPATH=%q %s examples/plan_and_apply.lua 2>&1")
      :format(UNSET, package.cpath, os.getenv("LUA") or "lua5.4"))
    assert.matches("^plan and apply examples/partners.csv against the local emulator at http://127", out)
    assert.matches("\n1 to create, 1 to update, 1 to delete, 1 unchanged\n", out)
    assert.matches("\napplied: 1 created, 1 updated, 1 deleted, 1 unchanged %(2 requests%)\n", out)
    assert.matches("\nplan again: 0 to create, 0 to update, 0 to delete, 3 unchanged$", out)
  end)
end)
