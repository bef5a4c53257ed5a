-- The C envelope decoder on its own, with no I/O: bytes in, result or error out.
local core = require("cloudflare.email_security.core")
local cjson = require("cjson")

local function decode(status, body, headers)
  return core.decode(status, body, headers or { ["content-type"] = "application/json" })
end

describe("core.decode", function()
  it("gives the result and the whole envelope on success", function()
    local result, err, env = decode(200,
      '{"success":true,"errors":[],"messages":[{"code":1,"message":"hi"}],"result":{"id":"x","directory_id":42},' ..
      '"result_info":{"page":1,"per_page":20,"count":1,"total_count":1}}')
    assert.is_nil(err)
    assert.are.equal("x", result.id)
    assert.are.equal(42, result.directory_id)
    if math.type then assert.are.equal("integer", math.type(result.directory_id)) end
    assert.are.equal("hi", env.messages[1].message)
    assert.are.equal(20, env.result_info.per_page)
  end)

  it("keeps JSON null as cjson.null", function()
    local result = decode(200, '{"success":true,"errors":[],"messages":[],"result":{"comments":null}}')
    assert.are.equal(cjson.null, result.comments)
  end)

  it("takes HTTP 200 with success=false for an api error", function()
    local result, err, env = decode(200,
      '{"success":false,"errors":[{"code":1000,"message":"Nope"},{"code":1001,"message":"x"}],"messages":[],"result":null}',
      { ["content-type"] = "application/json", ["cf-ray"] = "8f00aa-EMU" })
    assert.is_nil(result)
    assert.are.equal("api", err.kind)
    assert.are.equal(200, err.status)
    assert.are.equal(1000, err.code)
    assert.are.equal("Nope", err.message)
    assert.are.equal(2, #err.errors)
    assert.are.equal("8f00aa-EMU", err.ray_id)
    assert.is_false(env.success)
  end)

  it("takes an error status with an envelope for an api error", function()
    local _, err = decode(403, '{"success":false,"errors":[{"code":10000,"message":"Authentication error"}],"messages":[],"result":null}')
    assert.are.same({ "api", 403, 10000, "Authentication error" }, { err.kind, err.status, err.code, err.message })
  end)

  it("takes an HTML page for an http error with a short, safe excerpt", function()
    local page = "<html><head><title>502 Bad Gateway</title></head><body><h1>cloudflare</h1>" ..
                 string.rep("x", 5000) .. "</body></html>"
    local result, err, env = decode(502, page, { ["content-type"] = "text/html" })
    assert.is_nil(result)
    assert.is_nil(env)
    assert.are.equal("http", err.kind)
    assert.are.equal(502, err.status)
    assert.are.equal("502 Bad Gateway", err.excerpt)
    assert.matches("text/html", err.message, 1, true)
  end)

  it("keeps an excerpt to one printable line", function()
    local _, err = decode(520, "line one\r\n\27[31mred\0\255 " .. string.rep("y", 400), { ["content-type"] = "text/plain" })
    assert.are.equal("http", err.kind)
    assert.is_nil(err.excerpt:find("[%c\128-\255]"))
    assert.is_true(#err.excerpt <= 160)
  end)

  it("takes an empty body for an http error", function()
    local _, err = decode(204, "")
    assert.are.same({ "http", 204 }, { err.kind, err.status })
    assert.matches("empty", err.message)
  end)

  it("takes a truncated JSON body for an http error", function()
    local _, err = decode(200, '{"success":true,"errors":[],"result":{"id":"ab')
    assert.are.equal("http", err.kind)
    assert.matches("not valid JSON", err.message)
  end)

  it("takes JSON that is no envelope for an http error", function()
    local _, err = decode(200, '{"ok":true}')
    assert.matches("not a Cloudflare envelope", err.message)
    _, err = decode(200, "[1,2]")
    assert.are.equal("http", err.kind)
  end)

  it("refuses JSON nested deeper than any real answer", function()
    local deep = '{"success":true,"result":' .. string.rep("[", 200) .. string.rep("]", 200) .. "}"
    local _, err = decode(200, deep)
    assert.are.equal("http", err.kind)
  end)

  it("leaves the host's cjson settings alone", function()
    local before = cjson.decode_max_depth()
    decode(200, '{"success":true,"result":{}}')
    assert.are.equal(before, cjson.decode_max_depth())
  end)
end)

describe("core.escape_segment", function()
  it("keeps unreserved characters and percent-encodes the rest", function()
    assert.are.equal("aZ09-._~", core.escape_segment("aZ09-._~"))
    assert.are.equal("%2F..%2F%3F%23%20%0D%0A%00%25", core.escape_segment("/../?# \r\n\0%"))
  end)
end)

describe("core.decode refuses what cjson would let through", function()
  it("invalid UTF-8", function()
    local _, err = core.decode(200, '{"success":true,"result":{"name":"\255\254"}}')
    assert.are.equal("http", err.kind)
    assert.matches("not valid UTF%-8", err.message)
    _, err = core.decode(200, '{"success":true,"result":{"name":"\237\160\128"}}')
    assert.matches("not valid UTF%-8", err.message)
  end)

  -- The scan reads plain text 16 bytes at a time, then 8, then one: each
  -- kind of bad sequence, at every offset of a long string, meets each path.
  it("invalid UTF-8 of every kind, wherever it falls in a long string", function()
    local bad = {
      ["overlong"] = "\192\175", ["overlong of three"] = "\224\128\175", ["surrogate"] = "\237\160\128",
      ["past U+10FFFF"] = "\244\144\128\128", ["bad third byte"] = "\226\130A",
      ["bad fourth byte"] = "\240\159\152A", ["lone continuation"] = "\128", ["never in UTF-8"] = "\255",
      ["lead byte C1"] = "\193\191", ["lead byte F5"] = "\245\128\128\128",
    }
    local checked = 0
    for what, seq in pairs(bad) do
      for offset = 0, 40 do
        local text = ("a"):rep(offset) .. seq .. ("b"):rep(40 - offset)
        local _, err = core.decode(200, '{"success":true,"result":{"name":"' .. text .. '"}}')
        assert.is_table(err, what .. " at " .. offset)
        assert.matches("not valid UTF%-8", err.message, nil, what .. " at " .. offset)
        -- cut off in the middle: the sequence ends the answer
        _, err = core.decode(200, '{"success":true,"result":{"name":"' .. ("a"):rep(offset) .. seq:sub(1, 1))
        assert.matches("not valid UTF%-8", err.message, nil, what .. " cut at " .. offset)
        checked = checked + 1
      end
    end
    assert.are.equal(410, checked)
  end)

  it("valid UTF-8 wherever it falls in a long string, and bytes past 0x7F outside strings", function()
    for _, seq in ipairs({ "\195\169", "\226\130\172", "\240\159\152\128", "\244\143\191\191", "\127" }) do
      for offset = 0, 40 do
        local text = ("a"):rep(offset) .. seq .. ("b"):rep(40 - offset)
        local result, err = core.decode(200, '{"success":true,"result":{"name":"' .. text .. '"}}')
        assert.is_nil(err, offset .. ": " .. tostring(err and err.message))
        assert.are.equal(text, result.name)
      end
    end
    -- outside a string: checked as UTF-8 first, then not JSON either way
    local _, err = core.decode(200, '{"success":true,"result":{},"x":\255}')
    assert.matches("not valid UTF%-8", err.message)
    _, err = core.decode(200, '{"success":true,"result":{},"x":\195\169}')
    assert.is_nil(err.message:find("UTF-8", 1, true), err.message)
  end)

  it("keeps valid UTF-8 as it is", function()
    local result = core.decode(200, '{"success":true,"result":{"name":"Jos\195\169 \240\159\152\128"}}')
    assert.are.equal("Jos\195\169 \240\159\152\128", result.name)
  end)

  it("an integer past 2^53, which a double would round", function()
    local _, err = core.decode(200, '{"success":true,"result":{"directory_id":9007199254740993}}')
    assert.are.equal("http", err.kind)
    assert.matches("beyond 2^53", err.message, 1, true)
    _, err = core.decode(200, '{"success":true,"result":{"directory_id":-123456789012345678901}}')
    assert.matches("beyond 2^53", err.message, 1, true)
  end)

  it("but not 2^53 itself, big floats, or digits inside strings", function()
    local result, err = core.decode(200, '{"success":true,"result":{"a":9007199254740992,"b":1.5e300,' ..
      '"c":12345678901234567890.5,"d":"12345678901234567890","e":"\\"99999999999999999999"}}')
    assert.is_nil(err)
    assert.are.equal(9007199254740992, result.a)
    assert.are.equal("12345678901234567890", result.d)
  end)
end)
