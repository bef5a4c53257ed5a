-- Request bodies as JSON, written from the description: fields in its
-- order, lists as arrays even when empty, integers exact, strings escaped
-- so that they decode to the same bytes.
local write = require("cloudflare.email_security.schema.body").write
local compile = require("cloudflare.email_security.schema.compile")
local cjson = require("cjson")

local function described(name)
  return compile.resource(require("cloudflare.email_security.resources." .. name))
end

describe("request bodies", function()
  local reg, domains = described("impersonation_registry"), described("domains")

  it("writes the fields in the description's order", function()
    assert.are.equal('{"comments":null,"email":"j@x","is_email_regex":false,"name":"J"}',
      write(reg.bodies.update, { comments = cjson.null, is_email_regex = false, email = "j@x", name = "J" }))
  end)

  it("escapes strings so that they decode to the same bytes", function()
    local tricky = 'quote " backslash \\ cr \r lf \n tab \t bell \7 slash / é 😀 \226\128\168'
    local decoded = cjson.decode(write(reg.bodies.update, { name = tricky }))
    assert.are.equal(tricky, decoded.name)
  end)

  it("writes integers exactly, where lua-cjson would round them", function()
    local text = write(reg.bodies.update, { directory_id = 123456789012345, directory_node_id = 2 ^ 53 })
    assert.matches('"directory_id":123456789012345', text, 1, true)
    assert.matches('"directory_node_id":9007199254740992', text, 1, true)
  end)

  it("writes lists as JSON arrays, an empty one as [], and nested objects in order", function()
    assert.are.equal('{"drop_dispositions":[],"regions":["GLOBAL","US"]}',
      write(domains.bodies.update, { regions = { "GLOBAL", "US" }, drop_dispositions = {} }))
    local batch = described("allow_policies").bodies.batch
    assert.are.equal('{"deletes":[{"id":"a"}],"patches":[{"comments":"c","id":"b"}],"posts":[],"puts":[]}',
      write(batch, { deletes = { { id = "a" } }, patches = { { id = "b", comments = "c" } }, posts = {}, puts = {} }))
  end)
end)
