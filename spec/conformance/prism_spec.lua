-- The module against Cloudflare's own schema: Prism serves the OpenAPI file
-- and checks every request it receives. All five operations must pass, and
-- what the schema forbids must never reach it.
local es = require("cloudflare.email_security")
local prism = require("spec.support.prism")
local openapi = require("spec.support.openapi")
local internals = require("cloudflare.email_security.client").internals

local ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"
local ID = "f174e90a-fafe-4643-bbbc-4a0ed4fc8415"

describe("conformance with Cloudflare's OpenAPI schema (Prism)", function()
  local server, why = prism.start()
  if not server then
    it("needs Prism and the OpenAPI file", function() openapi.require_or_skip(why, pending) end)
    return
  end

  local cf, reg
  lazy_setup(function()
    cf = es.new({ account_id = ACCOUNT, api_token = "prism-token", base_url = server.base_url })
    reg = cf.impersonation_registry
  end)
  lazy_teardown(function()
    if cf then cf:close() end
    server.stop()
  end)

  local function accepted(label, result, err, envelope)
    assert.is_nil(err, label .. ": " .. tostring(err))
    assert.is_table(result, label)
    assert.is_true(envelope.success, label)
    assert.are.same({}, server.violations(), label)
  end

  it("accepts create (201)", function()
    local result, err, envelope = reg:create({ name = "Jane Roe", email = "jane@example.com",
                                               is_email_regex = false, comments = "from the spec",
                                               provenance = "A1S_INTERNAL" })
    accepted("create", result, err, envelope)
    assert.is_string(result.id)
  end)

  it("accepts list with every parameter", function()
    local result, err, envelope = reg:list({ page = 2, per_page = 1000, search = "roe", order = "name",
                                             direction = "desc", provenance = "SNOOPY-OFFICE_365" })
    accepted("list", result, err, envelope)
    assert.is_table(envelope.result_info)
  end)

  it("accepts get", function()
    accepted("get", reg:get(ID))
  end)

  it("accepts update, with a field cleared to null", function()
    accepted("update", reg:update(ID, { name = "John Doe", comments = es.null, directory_id = es.null }))
  end)

  it("accepts delete", function()
    local result, err, envelope = reg:delete(ID)
    accepted("delete", result, err, envelope)
    assert.are.equal(ID, result.id)
  end)

  it("accepts the email and key credential", function()
    local keyed = es.new({ account_id = ACCOUNT, api_email = "me@example.com", api_key = "k",
                           base_url = server.base_url })
    accepted("delete with a key", keyed.impersonation_registry:delete(ID))
    keyed:close()
  end)

  it("walks pages with each, and says so when the pages contradict each other", function()
    -- Prism answers every page with the file's example: one entry, while
    -- its total_count says 2000. The requests conform; the listing is not
    -- whole, and each says so rather than end as if it were.
    local n, failure = 0, nil
    for entry, err in reg:each({ per_page = 20 }) do
      if not entry then failure = err break end
      n = n + 1
    end
    -- the first page's own answer contradicts itself: not handed out
    assert.are.equal(0, n)
    assert.are.equal("http", failure and failure.kind, tostring(failure))
    assert.truthy(failure.message:find("the listing is not whole", 1, true), failure.message)
    assert.are.same({}, server.violations())
  end)

  it("never sends what the schema forbids", function()
    local before = server.received()
    local refused = {
      { reg:update(ID, {}) },
      { reg:update(ID, { is_email_regex = "yes" }) },
      { reg:update("not-a-uuid", { name = "x" }) },
      { reg:update(ID, { name = ("x"):rep(1025) }) },
      { reg:update(ID, { id = ID }) },
      { reg:create({ name = "x" }) },
      { reg:create({ name = "x", email = "x@y", is_email_regex = false, provenance = "MANUAL" }) },
      { reg:list({ per_page = 5000 }) },
      { reg:list({ direction = "sideways" }) },
      { reg:delete("42") },
    }
    for i, r in ipairs(refused) do
      assert.is_nil(r[1], "case " .. i)
      assert.are.equal("invalid", r[2].kind, "case " .. i)
    end
    assert.are.equal(before, server.received(), "no refused request reached Prism")
  end)

  it("is a real check: Prism flags a request that breaks the schema", function()
    -- past the module's own checks, straight through the transport
    local url = server.base_url .. "/accounts/" .. ACCOUNT
      .. "/email-security/settings/impersonation_registry/" .. ID
    local result, err = internals(cf).transport:request("PATCH", url, '{"is_email_regex":"yes"}')
    assert.is_nil(result)
    assert.are.equal(422, err.status)
    assert.is_true(#server.violations() > 0)
  end)
end)
