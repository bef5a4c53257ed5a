-- bin/cloudflare-email-security given a file with many bad cells: every
-- one is named in one run (sync/entries.lua gathers them), and nothing is
-- sent, not even the listing a plan starts with.
local emulator_process = require("emulator.process")
local cli_tool = require("spec.support.cli_tool")

local ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"
local TOKEN = "cli-read-problems-token-61c0"
local q = cli_tool.quote

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

describe("the command-line tool, given a file with many bad cells", function()
  local emu, tool

  setup(function()
    emu = emulator_process.start({ token = TOKEN })
    tool = cli_tool.new(("env -u CLOUDFLARE_EMAIL -u CLOUDFLARE_API_KEY CLOUDFLARE_API_TOKEN=%s "
      .. "CLOUDFLARE_ACCOUNT_ID=%s CLOUDFLARE_BASE_URL=%s"):format(TOKEN, ACCOUNT, q(emu.base_url)))
  end)
  teardown(function()
    emu.stop()
    tool.cleanup()
  end)
  before_each(function() emu.reset() end)

  -- each problem as the message has it, on a line of its own on stderr,
  -- in the file's order
  local function named_in_order(err, problems)
    local at = 1
    for _, p in ipairs(problems) do
      local i = err:find(p, at, true)
      assert.truthy(i, "not named, or not in order: " .. p .. "\nstderr: " .. err)
      local line_start = err:sub(1, i):match(".*()\n") or 0
      assert.is_nil(err:sub(line_start + 1, i - 1):find(": ", 1, true), "not a line of its own: " .. p .. "\n" .. err)
      at = i + #p
    end
  end

  for _, case in ipairs({
    { "domains", "csv", "domain,lookback_hops,regions,require_tls_inbound\n"
        .. "a.example.com,two,GLOBAL,maybe\n"
        .. "b.example.com,30,XX,true\n",
      { ":2:15: lookback_hops: must be an integer, got 'two'", ":2:26: require_tls_inbound: must be true or false",
        ":3:15: lookback_hops: must be at most 20", ":3:18: regions[1]: must be one of GLOBAL" } },
    { "domains", "json", '[{"domain": "a.example.com", "lookback_hops": "two"}, 7, {"domain": "b", "regions": ["XX"]}]',
      { ": entry 1: lookback_hops: must be an integer, got string", ": entry 2 is not an object",
        ": entry 3: regions[1]: must be one of GLOBAL" } },
  }) do
    for _, action in ipairs({ "plan", "apply --yes" }) do
      it(("%s %s of a %s file names every problem and sends nothing"):format(case[1], action, case[2]), function()
        local path = tool.dir .. "/bad." .. case[2]
        write(path, case[3])
        local code, out, err = tool.run(("%s %s %s"):format(case[1], action, q(path)))
        assert.are.equal(1, code, out .. err)
        named_in_order(err, case[4])
        assert.truthy(err:find(path .. case[4][1], 1, true), err)
        assert.are.equal(0, #emu.requests())
        assert.are.equal(0, #emu.state(ACCOUNT, case[1]))
      end)
    end
  end
end)
