-- Every ```lua block of README.md, run as it is against the emulator
-- (fresh for each), from the top of the checkout: it must exit 0, use no
-- undefined name (luacheck), and print what its `print(...) -- "..."`
-- comments say it prints.
local emulator_process = require("emulator.process")
local files = require("spec.support.files")

local ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- The blocks: { line = where it starts, code = its text }.
local function lua_blocks(text)
  local blocks, current, n = {}, nil, 0
  for line in (text .. "\n"):gmatch("(.-)\n") do
    n = n + 1
    if current then
      if line:find("^```") then
        blocks[#blocks + 1] = current
        current = nil
      else
        current.code = current.code .. line .. "\n"
      end
    elseif line:find("^```lua%s*$") then
      current = { line = n, code = "" }
    end
  end
  return blocks
end

describe("the README's Lua code", function()
  local blocks = lua_blocks(assert(files.read("README.md")))

  it("has blocks to run", function()
    assert.is_true(#blocks >= 2)
  end)

  for _, block in ipairs(blocks) do
    it("runs as written: the block at README.md line " .. block.line, function()
      local base = os.tmpname()
      local path = base .. ".lua"
      local f = assert(io.open(path, "w"))
      f:write(block.code)
      f:close()
      local lint = files.command_output(("luacheck --no-color --codes --only 111 112 113 --std max %s 2>&1"):format(q(path)))
      assert.truthy(lint:find("0 warnings / 0 errors", 1, true), lint)

      local emu = emulator_process.start({ token = "readme-token" })
      local out = files.command_output(("env -u CLOUDFLARE_EMAIL -u CLOUDFLARE_API_KEY CLOUDFLARE_ACCOUNT_ID=%s "
        .. "CLOUDFLARE_API_TOKEN=%s CLOUDFLARE_BASE_URL=%s LUA_PATH=%s LUA_CPATH=%s %s %s 2>&1; echo \"exit=$?\"")
        :format(ACCOUNT, emu.token, q(emu.base_url), q("./lua/?.lua;" .. package.path), q(package.cpath),
                os.getenv("LUA") or "lua5.4", q(path)))
      emu.stop()
      os.remove(path)
      os.remove(base)
      assert.truthy(out:find("exit=0$"), out)
      for printed in block.code:gmatch('print%([^\n]*%-%- [^\n]-"([^"\n]+)"') do
        assert.truthy(out:find(printed, 1, true), ("README.md line %d says it prints %q; it printed:\n%s")
          :format(block.line, printed, out))
      end
    end)
  end
end)
