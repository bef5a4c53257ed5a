-- Errors a person can act on: a near-miss name gets a suggestion, an empty
-- update the es.null hint, a failure after several tries says so, a create
-- that may have happened says how to check, a 401 or 403 names the
-- credential in use (never its value) and what the call needs, and the line
-- names the call by resource and id (err.path keeps the whole path).
local es = require("cloudflare.email_security")
local emulator_process = require("emulator.process")

local ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"
local ID = "f174e90a-fafe-4643-bbbc-4a0ed4fc8415"
local SECRET = "actionable-errors-secret-0123456789"

describe("errors a person can act on", function()
  local emu, cf, reg

  lazy_setup(function() emu = emulator_process.start({ token = SECRET }) end)
  lazy_teardown(function() if emu then emu.stop() end end)
  before_each(function()
    emu.reset()
    cf = es.new({ account_id = ACCOUNT, api_token = SECRET, base_url = emu.base_url, sleep = function() end })
    reg = cf.impersonation_registry
  end)
  after_each(function() cf:close() end)

  it("suggests the field or parameter meant, else lists those there are", function()
    local _, err = reg:update(ID, { nmae = "x" })
    assert.are.same({ "nmae", "unknown" }, { err.field, err.rule })
    assert.matches("nmae: is not a field of impersonation_registry: did you mean `name`?", err.message, 1, true)
    _, err = reg:update(ID, { zzzzzzzz = 1 })
    assert.matches("(there are: comments, directory_id, directory_node_id, email,", err.message, 1, true)
    _, err = cf.allow_policies:list({ per_pge = 5 })
    assert.matches("did you mean `per_page`?", err.message, 1, true)
    assert.are.same({}, emu.requests())
  end)

  it("says how to clear a field when an update has none", function()
    local _, err = reg:update(ID, { comments = nil })
    assert.are.equal("min_properties", err.rule)
    assert.matches("give it es.null", tostring(err), 1, true)
  end)

  it("says a failure came after several tries", function()
    emu.fault({ method = "GET", times = 3, status = 503, body = "busy" })
    local _, err = reg:list()
    assert.are.equal(3, err.attempts)
    assert.matches("(after 3 tries)", tostring(err), 1, true)
    emu.reset()
    emu.fault({ method = "GET", status = 404, body = "" })
    _, err = reg:list()
    assert.is_nil(tostring(err):find("tries", 1, true), "one try says nothing of tries")
  end)

  it("says a create that met a failure after sending may have happened, and how to check", function()
    emu.fault({ method = "POST", after = true, status = 500, body = "oops" })
    local made, err = reg:create({ name = "A", email = "a@example.com", is_email_regex = false })
    assert.is_nil(made)
    assert.is_true(err.may_exist)
    assert.matches("it may have been created all the same: list or get", tostring(err), 1, true)
    emu.fault({ method = "POST", status = 422, body = '{"success":false,"errors":[{"code":1,"message":"no"}],'
      .. '"messages":[],"result":null}', headers = { ["Content-Type"] = "application/json" } })
    made, err = reg:create({ name = "A", email = "a@example.com", is_email_regex = false })
    assert.is_nil(made)
    assert.is_nil(err.may_exist, "a 422 refused it")
  end)

  it("names the credential in use and the permission the call needs on a 403, never the token", function()
    local wrong = es.new({ account_id = ACCOUNT, api_token = SECRET .. "-wrong", base_url = emu.base_url })
    local _, err = wrong.allow_policies:create({ pattern = "x@example.com", pattern_type = "EMAIL", is_regex = false,
                                                is_exempt_recipient = false, is_trusted_sender = false,
                                                is_acceptable_sender = false, verify_sender = false })
    wrong:close()
    local text = tostring(err)
    assert.are.equal(403, err.status)
    assert.matches("(credential: api_token; this call needs a token with Cloud Email Security: Write)", text, 1, true)
    assert.is_nil(text:find(SECRET, 1, true))
  end)

  it("gives every entry with all(), or nil and the error, never a loop that swallows it", function()
    for i = 1, 3 do assert(reg:create({ name = "P" .. i, email = i .. "@example.com", is_email_regex = false })) end
    local every = assert(reg:all({ per_page = 1 }))
    assert.are.same({ "P1", "P2", "P3" }, { every[1].name, every[2].name, every[3].name })
    emu.fault({ method = "GET", path = "impersonation_registry", status = 403, body = "" })
    local none, err = cf.impersonation_registry:all({ per_page = 1 })
    assert.is_nil(none)
    assert.are.equal(403, err.status)
  end)

  it("names the call by resource and id, keeping the whole path in err.path", function()
    local _, err = cf.allow_policies:get(ID)
    assert.matches("[GET allow_policies/" .. ID .. ", ray ", tostring(err), 1, true)
    assert.are.equal("/accounts/" .. ACCOUNT .. "/email-security/settings/allow_policies/" .. ID, err.path)
  end)
end)
