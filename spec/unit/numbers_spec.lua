-- Numbers in answers are exact. An integer token (no fraction, no exponent)
-- becomes a Lua integer on 5.3 and later and is refused beyond 2^53; every
-- other number is exactly what lua-cjson's own decode gives (a float); a
-- number outside JSON's grammar is refused. Checked against cjson.decode on
-- many generated tokens.
local core = require("cloudflare.email_security.core")
local cjson = require("cjson").new()
cjson.decode_invalid_numbers(false)
cjson.decode_max_depth(64)

local has_integers = math.type ~= nil

-- beside: another number in the same answer ("0.5" or "8"), since answers
-- with and without a float token take different paths
local function envelope(token, beside)
  return ('{"success":true,"errors":[],"messages":[],"result":{"v":%s,"list":[%s,%s,7]}}')
    :format(token, beside or "8", token)
end

local function decode(body)
  return core.decode(200, body, { ["content-type"] = "application/json" })
end

local function is_integer_token(token)
  return token:find("^%-?%d+$") ~= nil
end

-- Same value and, where Lua has them, the same subtype; -0.0 keeps its sign.
local function same_float(a, b)
  if a ~= b then return false end
  if a == 0 then return 1 / a == 1 / b end
  return not has_integers or math.type(a) == math.type(b)
end

local function tokens()
  local list = {
    "0", "-0", "1", "-1", "42", "9007199254740992", "-9007199254740992", "9007199254740991",
    "1000000000000000", "123456789012345",
    "0.1", "0.30000000000000004", "0.9876543210987654", "1.0", "-1.0", "1.00", "1e2", "1E2", "1e+2",
    "1e-2", "-0.0", "0e0", "-0e-0", "1.5e300", "1e308", "4.9e-324", "2.2250738585072014e-308",
    "9007199254740993.0", "9.007199254740993e15", "9007199254740992.5", "1e999", "-1e999",
    "12345678901234567890.0", "1.7976931348623157e308", "5e-325", "123.456e-7",
  }
  -- a fixed seed: the same tokens on every run and every Lua
  local seed = 12345
  local function rand(n)
    seed = (seed * 1103515245 + 12345) % 2147483648
    return seed % n
  end
  for _ = 1, 400 do
    local digits = {}
    for i = 1, 1 + rand(16) do digits[i] = tostring(i == 1 and 1 + rand(9) or rand(10)) end
    local int = table.concat(digits)
    local sign = rand(2) == 0 and "" or "-"
    local kind = rand(4)
    if kind == 0 then
      list[#list + 1] = sign .. int
    elseif kind == 1 then
      list[#list + 1] = sign .. int .. "." .. tostring(rand(1000000))
    elseif kind == 2 then
      list[#list + 1] = sign .. int .. (rand(2) == 0 and "e" or "E") .. ({ "", "+", "-" })[1 + rand(3)]
        .. tostring(rand(330))
    else
      list[#list + 1] = sign .. "0." .. ("0"):rep(rand(20)) .. int
    end
  end
  return list
end

describe("numbers in answers", function()
  it("decode as cjson.decode gives for floats, and as exact integers for integer tokens", function()
    local checked = 0
    for _, token in ipairs(tokens()) do
      for _, beside in ipairs({ "8", "0.5" }) do
        local body = envelope(token, beside)
        local result, err = decode(body)
        local int = is_integer_token(token)
        local digits = token:gsub("^%-", ""):gsub("^0+(%d)", "%1")
        local beyond = int and (#digits > 16 or (#digits == 16 and digits > "9007199254740992"))
        if beyond then
          assert.is_nil(result, token)
          assert.matches("2^53", err.message, 1, true)
        else
          assert.is_nil(err, token .. ": " .. tostring(err and err.message))
          local expected = cjson.decode(body).result
          if int and has_integers then
            assert.are.equal("integer", math.type(result.v), token)
            assert.are.equal(tonumber(token), result.v, token)
            assert.are.equal("integer", math.type(result.list[2]), token)
          else
            assert.is_true(same_float(expected.v, result.v), token .. " beside " .. beside .. ": "
                           .. tostring(result.v) .. " where cjson gives " .. tostring(expected.v))
            assert.is_true(same_float(expected.list[2], result.list[2]), token)
          end
          if has_integers then
            assert.are.equal(beside == "8" and "integer" or "float", math.type(result.list[1]), beside)
            assert.are.equal("integer", math.type(result.list[3]), "7 beside " .. token)
          end
          assert.are.equal(tonumber(beside), result.list[1])
          checked = checked + 1
        end
      end
    end
    assert.is_true(checked > 600, "checked " .. checked)
  end)

  it("never makes a float-spelled integral value into an integer", function()
    for _, token in ipairs({ "9007199254740993.0", "9.007199254740993e15", "1.0", "2e0", "-0.0" }) do
      local result = assert(decode(envelope(token)))
      if has_integers then assert.are.equal("float", math.type(result.v), token) end
    end
  end)

  it("keeps integers and floats apart in one answer, duplicate keys as cjson has them", function()
    local result = assert(decode('{"success":true,"result":{"i":42,"f":1.0,"g":9007199254740993.0,'
      .. '"arr":[1,2.0,3,[4,5e0]],"d":1,"d":2.0,"e":2.0,"e":3,"s":"12","n":null}}'))
    local expected = cjson.decode('{"g":9007199254740993.0}').g
    assert.are.equal(42, result.i)
    assert.are.equal(expected, result.g)
    assert.are.equal("12", result.s)
    assert.are.equal(cjson.null, result.n)
    if has_integers then
      assert.are.same({ "integer", "float", "float" }, { math.type(result.i), math.type(result.f), math.type(result.g) })
      assert.are.same({ "integer", "float", "integer", "integer", "float" },
                      { math.type(result.arr[1]), math.type(result.arr[2]), math.type(result.arr[3]),
                        math.type(result.arr[4][1]), math.type(result.arr[4][2]) })
      assert.are.same({ "float", "integer" }, { math.type(result.d), math.type(result.e) })
    end
    assert.are.same({ 2, 3 }, { result.d, result.e })
  end)

  -- The walk that makes integer tokens Lua integers visits only the places
  -- where the scan saw one: these answers put integers in some places and
  -- not others, and every place must come out right all the same.
  describe("where the integers are", function()
    if not has_integers then
      pending("Lua " .. _VERSION .. " has no integer subtype")
      return
    end
    local function types(list)
      local out = {}
      for i, v in ipairs(list) do out[i] = type(v) == "number" and math.type(v) or type(v) end
      return out
    end

    it("in some entries of a list, with floats in others", function()
      local result, _, answer = decode('{"success":true,"result":[{"v":1.5},{"v":2.0},{"v":3},{"v":4.0},'
        .. '{"v":5},{"v":6.5}],"result_info":{"page":1,"count":6}}')
      local v = {}
      for i, e in ipairs(result) do v[i] = e.v end
      assert.are.same({ "float", "float", "integer", "float", "integer", "float" }, types(v))
      assert.are.same({ "integer", "integer" }, types({ answer.result_info.page, answer.result_info.count }))
    end)

    it("as items of a list, and in lists of lists", function()
      local result = decode('{"success":true,"result":[[1,2.0],0.5,[3],7]}')
      assert.are.same({ "integer", "float" }, types(result[1]))
      assert.are.same({ "table", "float", "table", "integer" }, types(result))
      assert.are.equal("integer", math.type(result[3][1]))
    end)

    it("in an envelope key of its own, and under a key written with an escape", function()
      local _, _, answer = decode('{"success":true,"result":{"f":1.5},"n":5,"\\u0072esult_info":{"page":2}}')
      assert.are.equal("integer", math.type(answer.n))
      assert.are.equal("integer", math.type(answer.result_info.page))
      assert.are.equal("float", math.type(answer.result.f))
    end)

    it("under a key given twice, as an array and then as an object (cjson keeps the last)", function()
      local result = decode('{"success":true,"result":[1,2.5],"result":{"a":3,"b":4.5}}')
      assert.are.same({ "integer", "float" }, { math.type(result.a), math.type(result.b) })
      result = decode('{"success":true,"result":{"a":3.5},"result":[0.5,2]}')
      assert.are.same({ "float", "integer" }, types(result))
    end)

    it("under more envelope keys than the places can hold", function()
      local keys = {}
      for i = 1, 12 do keys[i] = ('"k%d":{"i":%d,"f":0.5}'):format(i, i) end
      local _, _, answer = decode('{"success":true,"result":{},' .. table.concat(keys, ",") .. '}')
      for i = 1, 12 do
        assert.are.same({ "integer", "float" }, { math.type(answer["k" .. i].i), math.type(answer["k" .. i].f) })
      end
    end)
  end)

  it("refuses numbers outside JSON's grammar, which cjson would take", function()
    for _, token in ipairs({ "1.", "-.5", "1.e5", "-", "01", "-01", "1e", "1e+", "--1", "0x10", "1.5.5", "1e5e5" }) do
      local result, err = decode(envelope(token))
      assert.is_nil(result, token)
      assert.are.equal("http", err.kind, token)
    end
  end)

  it("looks at digits inside strings as text, not numbers", function()
    local result = assert(decode('{"success":true,"result":{"s":"99999999999999999999 1e5 -0 \\"1.\\"","t":"\\\\"}}'))
    assert.are.equal('99999999999999999999 1e5 -0 "1."', result.s)
    assert.are.equal("\\", result.t)
  end)
end)
