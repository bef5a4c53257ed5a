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
  it("names what was missing when it falls back to the emulator", function()
    assert.matches("^no credentials set: using the local emulator at http://127%.0%.0%.1:%d+/client/v4", demo(""))
    assert.matches("^CLOUDFLARE_ACCOUNT_ID is not set: using the local emulator", demo("CLOUDFLARE_API_TOKEN=t"))
    assert.matches("^no credential set %(CLOUDFLARE_API_TOKEN, or CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY%)",
                   demo("CLOUDFLARE_ACCOUNT_ID=acct"))
  end)

  it("says which API it talks to when the environment names one, and runs there", function()
    local emu = emulator_process.start()
    local out = demo(("CLOUDFLARE_ACCOUNT_ID=acct CLOUDFLARE_API_TOKEN=%s CLOUDFLARE_BASE_URL=%s")
      :format(emu.token, emu.base_url))
    local posts = emu.count("POST")
    emu.stop()
    assert.matches("^using " .. emu.base_url:gsub("%p", "%%%0") .. " with the credentials from the environment\n", out)
    assert.matches("\ncreated ", out)
    assert.are.equal(1, posts)
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
