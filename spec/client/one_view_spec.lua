-- What is checked is byte for byte what is sent: the module reads a
-- caller's fields or params table once, raw (as lua-cjson does: `next`, no
-- __index, no __pairs), into its own copy, and validates and sends that
-- copy. Integers are written exactly or refused, never rounded.
local es = require("cloudflare.email_security")
local emulator_process = require("emulator.process")

local ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"

describe("one view of the caller's table", function()
  local emu, cf, reg, id

  lazy_setup(function() emu = emulator_process.start() end)
  lazy_teardown(function() if emu then emu.stop() end end)
  before_each(function()
    emu.reset()
    id = emu.seed(ACCOUNT, { { name = "A", email = "a@example.com", is_email_regex = false } })[1].id
    cf = es.new({ account_id = ACCOUNT, api_token = emu.token, base_url = emu.base_url, max_retries = 0 })
    reg = cf.impersonation_registry
  end)
  after_each(function() cf:close() end)

  local function sent(method)
    local bodies = {}
    for _, r in ipairs(emu.requests()) do
      if r.method == method then bodies[#bodies + 1] = r end
    end
    return bodies
  end

  it("sends only the table's own fields, never what __index would add", function()
    local hidden = { name = ("x"):rep(5000), is_email_regex = "yes", directory_id = 1.5 }
    local updated, err = reg:update(id, setmetatable({ email = "b@example.com" }, { __index = hidden }))
    assert.is_nil(err)
    assert.are.equal("b@example.com", updated.email)
    assert.are.equal("A", updated.name)
    local patches = sent("PATCH")
    assert.are.equal(1, #patches)
    assert.are.equal('{"email":"b@example.com"}', patches[1].body)
  end)

  it("ignores __pairs: an update whose own fields are none is refused, sending nothing", function()
    local fake = setmetatable({}, { __pairs = function() return next, { name = "Through pairs" }, nil end })
    local updated, err = reg:update(id, fake)
    assert.is_nil(updated)
    assert.are.same({ "invalid", "min_properties" }, { err.kind, err.rule })
    assert.are.equal(0, #sent("PATCH"))
  end)

  it("sends list parameters from the table itself, never from __index", function()
    local params = setmetatable({}, { __index = { per_page = 5000, order = "bogus" } })
    local page, err = reg:list(params)
    assert.is_nil(err)
    assert.are.equal(1, #page)
    assert.are.equal("", sent("GET")[1].query)
  end)

  it("walks pages with the table's own parameters", function()
    local got = {}
    for entry, err in reg:each(setmetatable({ per_page = 1 }, { __index = { page = 7 } })) do
      assert(entry, err)
      got[#got + 1] = entry.id
    end
    assert.are.same({ id }, got)
    local gets = sent("GET")
    assert.are.equal(1, #gets)
    assert.are.equal("page=1&per_page=1", gets[1].query)
  end)

  it("refuses 1.5 for an integer field and never rounds it", function()
    local updated, err = reg:update(id, { directory_id = 1.5 })
    assert.is_nil(updated)
    assert.are.same({ "invalid", "directory_id", "type" }, { err.kind, err.field, err.rule })
    assert.are.equal(0, #sent("PATCH"))
  end)

  it("refuses integers beyond 2^53 in a body, which could never be read back", function()
    for _, v in ipairs({ 2 ^ 53 + 2, -(2 ^ 53) - 2, math.tointeger and math.tointeger(2 ^ 60) or 2 ^ 60 }) do
      local made, err = reg:create({ name = "Big", email = "big@example.com", is_email_regex = false,
                                     directory_id = v })
      assert.is_nil(made, tostring(v))
      local rule = v > 0 and "maximum" or "minimum"
      assert.are.same({ "invalid", "directory_id", rule }, { err.kind, err.field, err.rule })
    end
    assert.are.equal(0, #sent("POST"))
  end)

  it("writes 2^53 itself exactly, and reads it back", function()
    local big = math.tointeger and math.tointeger(2 ^ 53) or 2 ^ 53
    local made, err = reg:create({ name = "Edge", email = "edge@example.com", is_email_regex = false,
                                   directory_id = big })
    assert.is_nil(err)
    assert.are.equal(big, made.directory_id)
    assert.matches('"directory_id":9007199254740992', sent("POST")[1].body, 1, true)
  end)

  it("refuses a page number beyond 2^53 in a query", function()
    local page, err = reg:list({ page = math.tointeger and math.tointeger(2 ^ 60) or 2 ^ 60 })
    assert.is_nil(page)
    assert.are.same({ "invalid", "page" }, { err.kind, err.field })
    assert.are.equal(0, #sent("GET"))
  end)
end)
