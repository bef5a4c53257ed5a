local json_body = require("cloudflare.email_security.json_body")
local schema = require("cloudflare.email_security.schema.impersonation_registry")
local cjson = require("cjson")

describe("json_body", function()
  it("writes the fields in the schema's order", function()
    assert.are.equal('{"name":"J","email":"j@x","is_email_regex":false,"comments":null}',
      json_body(schema, { comments = cjson.null, is_email_regex = false, email = "j@x", name = "J" }))
  end)

  it("escapes strings so that they decode to the same bytes", function()
    local tricky = 'quote " backslash \\ cr \r lf \n tab \t bell \7 slash / é 😀 \226\128\168'
    local decoded = cjson.decode(json_body(schema, { name = tricky }))
    assert.are.equal(tricky, decoded.name)
  end)

  it("writes integers exactly, where lua-cjson would round them", function()
    local text = json_body(schema, { directory_id = 123456789012345, directory_node_id = 2 ^ 53 })
    assert.matches('"directory_id":123456789012345', text, 1, true)
    assert.matches('"directory_node_id":9007199254740992', text, 1, true)
    if math.type then  -- Lua 5.3+: 64-bit integers
      text = json_body(schema, { directory_id = math.tointeger(123456789012345678) })
      assert.matches('"directory_id":123456789012345678', text, 1, true)
    end
  end)
end)
