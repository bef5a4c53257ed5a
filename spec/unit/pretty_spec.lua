-- What the REPL prints (pretty.lua): entries as readable text, a list a
-- line per entry, and nothing a terminal would obey (C0 and C1 controls,
-- direction overrides) from what the server sent.
local pretty = require("cloudflare.email_security.pretty")
local es = require("cloudflare.email_security")

local function printed(...)
  local out = {}
  local real = io.stdout
  -- pretty.print writes to io.stdout: catch it
  local fake = { write = function(self, ...) for _, s in ipairs({ ... }) do out[#out + 1] = s end return self end }
  io.stdout = fake -- luacheck: ignore 122
  local ok, err = pcall(pretty.print, ...)
  io.stdout = real -- luacheck: ignore 122
  assert(ok, err)
  return table.concat(out)
end

describe("the REPL's printer", function()
  it("escapes control characters, C1 controls and direction overrides in strings", function()
    local text = pretty.render({ comments = "\194\155" .. "2J", name = "\226\128\174evil", other = "\27[31m" })
    assert.is_nil(text:find("[\27\194\226]"), text)
    assert.truthy(text:find('"\\u009b2J"', 1, true), text)
    assert.truthy(text:find('"\\u202eevil"', 1, true), text)
  end)

  it("prints a list a line per entry and a safe paging line", function()
    local text = printed({ { id = "\27[2Jx", name = "A", targets = { "SUBJECT" } }, { id = "y", pattern = "p" } }, nil,
                         { success = true, result_info = { page = "\27]0;t\7", count = 2, total_count = 2 } })
    assert.is_nil(text:find("[\27\7]"), text)
    assert.truthy(text:find('[1] \\x1b[2Jx  name="A"\n', 1, true), text)
    assert.truthy(text:find('[2] y  pattern="p"\n', 1, true), text)
    assert.truthy(text:find("-- page \\x1b]0;t\\x07, 2 entries of 2", 1, true), text)
  end)

  it("prints a table with a __len of its own by the items it holds", function()
    local t = setmetatable({ "US" }, { __len = function() return 5 end })
    assert.are.equal('[\n  "US"\n]', require("cloudflare.email_security.pretty").render(t))
  end)

  it("prints a client and an error as their one line", function()
    local cf = es.new({ account_id = "acct", api_token = "t", base_url = "http://127.0.0.1:9/client/v4" })
    assert.are.equal("cloudflare.email_security client (account acct, open)\n", printed(cf))
    local _, err = cf.impersonation_registry:get("nope")
    assert.are.equal("nil\t" .. tostring(err) .. "\n", printed(nil, err))
    -- an api error's envelope is not printed after its line
    assert.are.equal("nil\t" .. tostring(err) .. "\n", printed(nil, err, { success = false, errors = { {
      code = 1003, message = "Not found" } }, messages = {}, result = es.null }))
    cf:close()
  end)
end)
