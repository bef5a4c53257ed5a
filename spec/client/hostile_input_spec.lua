-- Hostile input gets a clear error and nothing reaches the server; hostile
-- strings that are allowed arrive byte for byte; no credential shows up in
-- any error, string form or log line.
local es = require("cloudflare.email_security")
local emulator_process = require("emulator.process")

local ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"
local ID = "f174e90a-fafe-4643-bbbc-4a0ed4fc8415"
local SECRET = "hostile-spec-secret-token-0123456789"

describe("hostile input", function()
  local emu, cf, reg, lines

  lazy_setup(function() emu = emulator_process.start({ token = SECRET }) end)
  lazy_teardown(function() if emu then emu.stop() end end)
  before_each(function()
    emu.reset()
    lines = {}
    cf = es.new({ account_id = ACCOUNT, api_token = SECRET, base_url = emu.base_url, max_retries = 0,
                  log = function(line) lines[#lines + 1] = line end })
    reg = cf.impersonation_registry
  end)
  after_each(function() cf:close() end)

  local bad_ids = {
    "a/b", "../" .. ID, ID .. "/..", "..", "%2F", ID .. "%2F", ID .. "?x=1", ID .. "#frag", "f174e90a fafe",
    ID .. "\r\nX-Injected: 1", ID .. "\n", ID .. "\0", ("a"):rep(10000), "",
  }
  for i, id in ipairs(bad_ids) do
    it(("refuses hostile id #%d on every call, sending nothing"):format(i), function()
      for _, call in ipairs({
        function() return reg:get(id) end,
        function() return reg:update(id, { name = "x" }) end,
        function() return reg:delete(id) end,
      }) do
        local result, err = call()
        assert.is_nil(result)
        assert.are.same({ "invalid", "impersonation_registry_id" }, { err.kind, err.field })
        assert.is_true(#tostring(err) < 400, "the error line stays short")
        assert.is_nil(tostring(err):find("[\r\n%z]"), "the error line stays one line")
      end
      assert.are.same({}, emu.requests())
    end)
  end

  it("refuses hostile account ids at new()", function()
    for _, acct in ipairs({ "a/b", "..", "%2F", "a?b", "a#b", "a b", "a\r\nb", "a\0b", ("a"):rep(10000) }) do
      local ok, msg = pcall(es.new, { account_id = acct, api_token = SECRET, base_url = emu.base_url })
      assert.is_false(ok)
      assert.matches("account_id", msg, 1, true)
    end
  end)

  local bad_fields = {
    { "a NUL in a string", { name = "a\0b" }, "name" },
    { "NaN", { directory_id = 0 / 0 }, "directory_id" },
    { "infinity", { directory_id = math.huge }, "directory_id" },
    { "minus infinity", { directory_node_id = -math.huge }, "directory_node_id" },
    { "a table where a string is due", { email = { "x" } }, "email" },
    { "a function", { comments = print }, "comments" },
    { "a boolean where a string is due", { name = true }, "name" },
  }
  for _, case in ipairs(bad_fields) do
    it("refuses " .. case[1] .. ", sending nothing", function()
      local result, err = reg:update(ID, case[2])
      assert.is_nil(result)
      assert.are.same({ "invalid", case[3] }, { err.kind, err.field })
      assert.are.same({}, emu.requests())
    end)
  end

  it("refuses a cyclic table without looping", function()
    local cyclic = {}
    cyclic.self = cyclic
    local result, err = reg:update(ID, { name = cyclic })
    assert.is_nil(result)
    assert.are.same({ "invalid", "name" }, { err.kind, err.field })
    result, err = reg:update(ID, cyclic)
    assert.is_nil(result)
    assert.are.same({ "invalid", "self" }, { err.kind, err.field })
    assert.are.same({}, emu.requests())
  end)

  it("refuses a credential with CR or LF at new(), without echoing it", function()
    for _, bad in ipairs({ "s3cr3t\r\nX-Evil: 1", "s3cr3t\n", "s3cr3t\r" }) do
      local ok, msg = pcall(es.new, { account_id = ACCOUNT, api_token = bad, base_url = emu.base_url })
      assert.is_false(ok)
      assert.matches("line break", msg, 1, true)
      assert.is_nil(msg:find("s3cr3t", 1, true))
    end
    local ok = pcall(es.new, { account_id = ACCOUNT, api_email = "a@b\r\n", api_key = "k", base_url = emu.base_url })
    assert.is_false(ok)
  end)

  it("sends quotes, backslashes, CR/LF and unicode faithfully", function()
    local tricky = {
      name = 'She said "hi" \\ then left\r\n\tback',
      email = "üñîçødé@example.com",
      comments = "emoji 😀, RTL \216\167, U+2028 \226\128\168, bell \7",
      is_email_regex = false,
    }
    local made = assert(reg:create(tricky))
    local stored = emu.state(ACCOUNT)[1]
    for k, v in pairs(tricky) do
      assert.are.equal(v, made[k], k)
      assert.are.equal(v, stored[k], k)
    end
  end)

  it("shows no credential in any error, string form or log line", function()
    local _, e1 = reg:get(ID)                                  -- 404
    local wrong = es.new({ account_id = ACCOUNT, api_token = SECRET .. "x", base_url = emu.base_url,
                           log = function(line) lines[#lines + 1] = line end })
    local _, e2 = wrong.impersonation_registry:list()          -- 403
    wrong:close()
    emu.fault({ status = 502, body = "<title>" .. SECRET .. "-is-not-echoed-from-requests</title>" })
    local _, e3 = reg:list()                                    -- http
    local _, e4 = reg:update("nope", { name = "x" })            -- invalid
    local errs = { e1, e2, e4 }
    local function scan(value, seen)
      seen = seen or {}
      if type(value) == "string" then
        assert.is_nil(value:find(SECRET, 1, true), "credential found in: " .. value)
      elseif type(value) == "table" and not seen[value] then
        seen[value] = true
        for k, v in pairs(value) do scan(k, seen) scan(v, seen) end
      end
    end
    for _, e in ipairs(errs) do
      scan(e)
      scan(tostring(e))
    end
    assert.are.equal("http", e3.kind)
    assert.is_true(#lines >= 6, "a line per request and per response")
    for _, line in ipairs(lines) do scan(line) end
    scan(tostring(cf))
  end)

  it("logs one line per request and per response when CLOUDFLARE_LOG=debug", function()
    local cmd = ("cd %q && env CLOUDFLARE_LOG=debug CLOUDFLARE_ACCOUNT_ID=%s CLOUDFLARE_API_TOKEN=%s"
      .. " CLOUDFLARE_BASE_URL=%s LUA_PATH='./lua/?.lua;;' LUA_CPATH=%q %s -e %q 2>&1")
      :format(os.getenv("PWD") or ".", ACCOUNT, SECRET, emu.base_url, package.cpath,
              os.getenv("LUA") or "lua5.4", "local es = require 'cloudflare.email_security'; local c = es.new();"
              .. " c.impersonation_registry:list(); c.impersonation_registry:get('" .. ID .. "')")
    local p = io.popen(cmd)
    local out = p:read("*a")
    p:close()
    local n = 0
    for line in out:gmatch("[^\n]+") do
      n = n + 1
      assert.matches("^cloudflare%.email_security: [<>] ", line)
    end
    assert.are.equal(4, n, out)
    assert.matches("< GET .- api 404 code 1003 in [%d.]+ ms ray %S+%-EMU\n", out)
    -- a success line: ok and the time, as the README says
    assert.matches("< GET [^\n]- ok in [%d.]+ ms\n", out)
    assert.is_nil(out:find(SECRET, 1, true))
  end)
end)
