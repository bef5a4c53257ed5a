local validate = require("cloudflare.email_security.validate")
local schema = require("cloudflare.email_security.schema.impersonation_registry")
local null = require("cjson").null

local function body(fields, mode)
  return validate.body(schema, fields, mode or "update")
end

describe("validate", function()
  describe("id", function()
    it("accepts a uuid in either case", function()
      assert.is_nil(validate.id(schema, "f174e90a-fafe-4643-bbbc-4a0ed4fc8415"))
      assert.is_nil(validate.id(schema, "F174E90A-FAFE-4643-BBBC-4A0ED4FC8415"))
    end)
    it("refuses anything else, naming the path parameter", function()
      for _, bad in ipairs({ "", "42", "f174e90a-fafe-4643-bbbc-4a0ed4fc841",
                             "f174e90a-fafe-4643-bbbc-4a0ed4fc8415/..", "../f174e90a",
                             "f174e90a fafe 4643 bbbc 4a0ed4fc8415" }) do
        local field, rule = validate.id(schema, bad)
        assert.are.equal("impersonation_registry_id", field, bad)
        assert.are.equal("format", rule)
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
  end)
end)
