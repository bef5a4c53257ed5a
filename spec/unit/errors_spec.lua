local errors = require("cloudflare.email_security.errors")

describe("errors", function()
  it("prints an API error as one line with status, code, message, request and ray", function()
    local err = errors.wrap({ kind = "api", status = 404, code = 1003,
                              message = "Not found\nat all", ray_id = "abc-EMU",
                              errors = { {}, {} }, messages = {} }, "PATCH", "/accounts/a/x")
    local line = tostring(err)
    assert.are.equal("api error: HTTP 404, code 1003: Not found at all (+1 more) [PATCH /accounts/a/x, ray abc-EMU]", line)
    assert.is_nil(line:find("\n"))
    assert.is_true(errors.is_error(err))
  end)

  it("names the field of an invalid error", function()
    local err = errors.invalid("name", "max_length", "must be at most 1024 characters", "POST", "/p")
    assert.are.equal("invalid", err.kind)
    assert.are.equal("name", err.field)
    assert.are.equal("max_length", err.rule)
    assert.are.equal("invalid error: name: must be at most 1024 characters [POST /p]", tostring(err))
  end)

  it("does not take a plain table for an error", function()
    assert.is_false(errors.is_error({ kind = "api" }))
  end)
end)
