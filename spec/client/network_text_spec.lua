-- What the network sends is read one way in both transports and never
-- reaches a terminal raw: duplicate headers keep their first value, header
-- names match in any C locale, and control characters from the server are
-- escaped in every log line and error string.
local es = require("cloudflare.email_security")
local emulator_process = require("emulator.process")
local files = require("spec.support.files")

local ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"
local ESC = "\27"

describe("text from the network", function()
  local emu, sleeps, lines

  local function client(opts)
    opts = opts or {}
    opts.account_id, opts.api_token, opts.base_url = ACCOUNT, emu.token, emu.base_url
    opts.sleep = function(s) sleeps[#sleeps + 1] = s end
    opts.log = function(line) lines[#lines + 1] = line end
    return es.new(opts)
  end

  lazy_setup(function() emu = emulator_process.start() end)
  lazy_teardown(function() if emu then emu.stop() end end)
  before_each(function()
    emu.reset()
    sleeps, lines = {}, {}
  end)

  it("keeps the first of duplicate headers, as the nginx transport does", function()
    local cf = client()
    emu.fault({ method = "GET", status = 503, body = "busy", headers = { ["Retry-After"] = { "1", "30" } } })
    assert(cf.impersonation_registry:list())
    cf:close()
    assert.are.same({ 1 }, sleeps)
  end)

  it("escapes control characters of a ray id and a server message in errors and log lines", function()
    local cf = client({ max_retries = 0 })
    emu.fault({ method = "GET", status = 400, headers = { ["cf-ray"] = "8f00" .. ESC .. "[31m-EMU" },
                body = '{"success":false,"errors":[{"code":1,"message":"bad\\u001b[2Jthing\\u0007 and \\u009b2J, \\u2028 \\u202e \\u2066 \\u200b \\ufeff."}],'
                  .. '"messages":[],"result":null}' })
    local page, err = cf.impersonation_registry:list()
    cf:close()
    assert.is_nil(page)
    local text = tostring(err)
    for _, s in ipairs({ text, err.ray_id, table.concat(lines, "\n") }) do
      assert.is_nil(s:gsub("\n", ""):find("[%z\1-\31\127]"), "a control character in: " .. s)
    end
    assert.matches("bad\\x1b[2Jthing\\x07 and \\u009b2J, \\u2028 \\u202e \\u2066 \\u200b \\ufeff.", text, 1, true)
    assert.is_nil(text:find("\194[\128-\159]"), "a C1 control character in: " .. text)
    assert.matches("8f00?[31m-EMU", err.ray_id, 1, true)
    assert.matches("ray 8f00?[31m-EMU", lines[#lines], 1, true)
  end)

  -- In a Turkish single-byte locale, C's tolower('I') is not 'i': a header
  -- named RATELIMIT would not be recognised by a locale-dependent match.
  it("matches header names whatever C locale the host process has set", function()
    local dir = files.command_output("mktemp -d")
    local made = os.execute(("localedef -i tr_TR -f ISO-8859-9 %s/tr_TR.ISO-8859-9 >/dev/null 2>&1"):format(dir))
    if not (made == true or made == 0) then
      os.execute("rm -rf " .. dir)
      if os.getenv("CI") then error("localedef could not build tr_TR.ISO-8859-9 (Debian package locales)") end
      return pending("needs localedef and Debian's locales package to build a Turkish locale")
    end
    local script = ([[
      assert(os.setlocale("tr_TR.ISO-8859-9"), "the locale did not load")
      local es = require("cloudflare.email_security")
      local waits = {}
      local cf = es.new({ account_id = %q, api_token = %q, base_url = %q,
                          sleep = function(s) waits[#waits + 1] = s end })
      assert(cf.impersonation_registry:list())
      assert(cf.impersonation_registry:list())
      cf:close()
      print("waits=" .. #waits)
    ]]):format(ACCOUNT, emu.token, emu.base_url)
    emu.fault({ method = "GET", headers = { RATELIMIT = "r=0;t=3" } })
    local out = files.command_output(("LOCPATH=%s LUA_PATH='./lua/?.lua;;' LUA_CPATH=%q %s -e %q 2>&1")
      :format(dir, package.cpath, os.getenv("LUA") or "lua5.4", script))
    os.execute("rm -rf " .. dir)
    assert.are.equal("waits=1", out, "the second call waits for the reset the header gave")
  end)
end)
