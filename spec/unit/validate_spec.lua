-- The checks made before sending, on the generated descriptions: the
-- impersonation registry's flat fields, and the nested bodies (lists, uuids,
-- ranges, retired fields) of the other resources.
local validate = require("cloudflare.email_security.schema.validate")
local compile = require("cloudflare.email_security.schema.compile")
local null = require("cjson").null

local function described(name)
  return compile.resource(require("cloudflare.email_security.resources." .. name))
end
local schema = described("impersonation_registry")

local function body(fields, mode)
  return validate.body(schema.bodies[mode or "update"], fields, "impersonation_registry")
end

-- field and rule of a refusal (the message is checked elsewhere)
local function fr(field, rule) return { field, rule } end

local function id(value)
  return validate.value(schema.id_node, value, schema.id.param)
end

describe("validate", function()
  describe("id", function()
    it("accepts a uuid in either case", function()
      assert.is_nil(id("f174e90a-fafe-4643-bbbc-4a0ed4fc8415"))
      assert.is_nil(id("F174E90A-FAFE-4643-BBBC-4A0ED4FC8415"))
    end)
    it("refuses anything else, naming the path parameter", function()
      for _, bad in ipairs({ "", "42", "f174e90a-fafe-4643-bbbc-4a0ed4fc841",
                             "f174e90a-fafe-4643-bbbc-4a0ed4fc8415/..", "../f174e90a",
                             "f174e90a fafe 4643 bbbc 4a0ed4fc8415",
                             -- what the check in C must refuse as the pattern did
                             "f174e90a-fafe-4643-bbbc-4a0ed4fc8415a", "f174e90afafe-4643-bbbc-4a0ed4fc8415-",
                             "g174e90a-fafe-4643-bbbc-4a0ed4fc8415", "f174e90a-fafe-4643-bbbc-4a0ed4fc841\0",
                             "f174e90a-fafe-4643-bbbc\0-4a0ed4fc8415", "f174e90a-fafe-4643-bbbc-4a0ed4fc841\255",
                             "\255174e90a-fafe-4643-bbbc-4a0ed4fc8415", "f174e90a-fafe-4643-bbbc_4a0ed4fc8415" }) do
        local field, rule = id(bad)
        assert.are.equal("impersonation_registry_id", field, bad)
        -- a NUL or a byte that is no UTF-8 is refused before the format is looked at
        assert.are.equal(bad:find("[%z\255]") and (bad:find("%z") and "nul" or "utf8") or "format", rule, bad)
      end
    end)
  end)

  describe("body", function()
    it("accepts each writable field with its type", function()
      assert.is_nil(body({ name = "John Doe", email = "j@example.com", is_email_regex = false,
                           comments = null, provenance = "A1S_INTERNAL", directory_id = 7,
                           directory_node_id = null, external_directory_node_id = "x" }))
    end)

    local cases = {
      { { name = 5 }, "name", "type" },
      { { name = true }, "name", "type" },
      { { name = {} }, "name", "type" },
      { { name = null }, "name", "nullable" },
      { { is_email_regex = "yes" }, "is_email_regex", "type" },
      { { directory_id = 1.5 }, "directory_id", "type" },
      { { directory_id = 0 / 0 }, "directory_id", "type" },
      { { directory_id = math.huge }, "directory_id", "type" },
      { { directory_id = "7" }, "directory_id", "type" },
      { { provenance = "MANUAL" }, "provenance", "enum" },
      { { id = "f174e90a-fafe-4643-bbbc-4a0ed4fc8415" }, "id", "read_only" },
      { { created_at = "2026-01-01T00:00:00Z" }, "created_at", "read_only" },
      { { modified_at = "2026-01-01T00:00:00Z" }, "modified_at", "read_only" },
      { { last_modified = "2026-01-01T00:00:00Z" }, "last_modified", "read_only" },
      { { nickname = "JD" }, "nickname", "unknown" },
      { { [1] = "x" }, "1", "unknown" },
      { { name = string.rep("a", 1025) }, "name", "max_length" },
      { { name = "a\0b" }, "name", "nul" },
      { { comments = "\255\254" }, "comments", "utf8" },
      { { comments = "\237\160\128" }, "comments", "utf8" },  -- a UTF-16 surrogate
      { { comments = "\192\175" }, "comments", "utf8" },      -- overlong '/'
      { {}, "fields", "min_properties" },
    }
    for _, case in ipairs(cases) do
      it(("refuses %s (%s)"):format(case[2], case[3]), function()
        local field, rule, message = body(case[1])
        assert.are.equal(case[2], field)
        assert.are.equal(case[3], rule)
        assert.is_string(message)
      end)
    end

    it("counts name length in characters, not bytes", function()
      assert.is_nil(body({ name = string.rep("é", 1024) }))          -- 2048 bytes
      local field, rule, message = body({ name = string.rep("é", 1025) })
      assert.are.same({ "name", "max_length" }, { field, rule })
      assert.matches("got 1025", message, 1, true)
    end)

    it("requires name, email and is_email_regex to create", function()
      assert.is_nil(body({ name = "a", email = "a@b", is_email_regex = true }, "create"))
      assert.are.equal("email", (body({ name = "a", is_email_regex = true }, "create")))
      assert.are.equal("is_email_regex", (body({ name = "a", email = "a@b" }, "create")))
      assert.are.equal("name", (body({}, "create")))
    end)

    it("refuses integers beyond 2^53, which could never be read back", function()
      assert.are.same({ "directory_id", "maximum" }, fr(body({ directory_id = 2 ^ 53 + 2 })))
      assert.are.same({ "directory_id", "minimum" }, fr(body({ directory_id = -(2 ^ 53) - 2 })))
      assert.is_nil(body({ directory_id = 2 ^ 53 }))
    end)
  end)

  describe("nested bodies", function()
    local domains, allow = described("domains"), described("allow_policies")
    local ID = "f174e90a-fafe-4643-bbbc-4a0ed4fc8415"
    local function domain(fields, mode) return validate.body(domains.bodies[mode or "update"], fields, "domains") end

    it("checks list items against their enum, and list lengths", function()
      assert.is_nil(domain({ regions = { "GLOBAL" } }))
      assert.are.same({ "regions[2]", "enum" }, fr(domain({ regions = { "GLOBAL", "MARS" } })))
      assert.are.same({ "regions", "type" }, fr(domain({ regions = "GLOBAL" })))
      assert.are.same({ "regions", "type" }, fr(domain({ regions = { x = "GLOBAL" } })))
      local many = {}
      for i = 1, 101 do many[i] = "192.0.2." .. i end
      assert.are.same({ "ip_restrictions", "max_items" },
                      fr(domain({ domain = "example.com", allowed_delivery_modes = { "API" }, ip_restrictions = many,
                                 drop_dispositions = {}, regions = { "GLOBAL" } }, "create")))
      assert.are.same({ "allowed_delivery_modes", "min_items" },
                      fr(domain({ domain = "example.com", allowed_delivery_modes = {}, ip_restrictions = {},
                                 drop_dispositions = {}, regions = { "GLOBAL" } }, "create")))
    end)

    it("checks formats and integer ranges", function()
      assert.is_nil(domain({ integration_id = ID, lookback_hops = 20 }))
      assert.are.same({ "integration_id", "format" }, fr(domain({ integration_id = "not-a-uuid" })))
      assert.are.same({ "lookback_hops", "maximum" }, fr(domain({ lookback_hops = 21 })))
      assert.are.same({ "lookback_hops", "minimum" }, fr(domain({ lookback_hops = 0 })))
      assert.are.same({ "lookback_hops", "type" }, fr(domain({ lookback_hops = 1.5 })))
    end)

    it("leaves out of replace the field that cannot change", function()
      assert.are.same({ "domain", "unknown" }, fr(domain({ domain = "example.com" }, "replace")))
    end)

    it("refuses retired fields past their end of life, naming what replaces them", function()
      local field, rule, message = validate.body(allow.bodies.update, { is_sender = true }, "allow_policies")
      assert.are.same({ "is_sender", "deprecated" }, { field, rule })
      assert.matches("use is_trusted_sender", message, 1, true)
    end)

    it("never requires a field the server makes, and lets a batch item name its id", function()
      local b = allow.bodies.batch
      assert.is_nil(validate.body(b, { posts = {}, puts = {}, deletes = { { id = ID } },
                                       patches = { { id = ID, comments = "checked" } } }, "allow_policies"))
      assert.are.same({ "patches[1].id", "required" },
                      fr(validate.body(b, { posts = {}, puts = {}, deletes = {}, patches = { { comments = "x" } } })))
      assert.are.same({ "deletes[1].id", "format" },
                      fr(validate.body(b, { posts = {}, puts = {}, patches = {}, deletes = { { id = "x" } } })))
      assert.are.same({ "posts[1].id", "read_only" },
                      fr(validate.body(b, { puts = {}, patches = {}, deletes = {}, posts = { { id = ID } } })))
    end)
  end)

  describe("list parameters", function()
    local function params(p) return validate.params(schema, p) end
    it("accepts the schema's parameters", function()
      assert.is_nil(params({ page = 2, per_page = 1000, search = "doe", order = "email",
                             direction = "desc", provenance = "SNOOPY-OFFICE_365" }))
      assert.is_nil(params({}))
    end)
    local cases = {
      { { per_page = 0 }, "per_page", "minimum" },
      { { per_page = 1001 }, "per_page", "maximum" },
      { { per_page = 2.5 }, "per_page", "type" },
      { { page = 0 }, "page", "minimum" },
      { { page = "1" }, "page", "type" },
      { { order = "id" }, "order", "enum" },
      { { direction = "up" }, "direction", "enum" },
      { { provenance = "x" }, "provenance", "enum" },
      { { limit = 10 }, "limit", "unknown" },
    }
    for _, case in ipairs(cases) do
      it(("refuses %s (%s)"):format(case[2], case[3]), function()
        local field, rule = params(case[1])
        assert.are.same({ case[2], case[3] }, { field, rule })
      end)
    end
  end)

  it("measures UTF-8 and rejects what is not", function()
    assert.are.equal(3, validate.utf8_length("abc"))
    assert.are.equal(4, validate.utf8_length("h\195\169\226\130\172\240\159\152\128"))
    assert.is_nil(validate.utf8_length("\244\144\128\128"))  -- past U+10FFFF
    assert.is_nil(validate.utf8_length("\226\130"))          -- cut short
    -- the C core's check (core.utf8_length): where the first bad byte is
    assert.are.same({ nil, 3 }, { validate.utf8_length("ab\192\128") })  -- overlong
    assert.are.same({ nil, 2 }, { validate.utf8_length("a\237\160\128") })  -- a surrogate
    assert.are.same({ 0 }, { validate.utf8_length("") })
  end)
end)
