-- Every input in spec/fuzz/corpus (the fuzzer's seeds, and any input that
-- once made it fail) goes through the decoder the way the fuzz target feeds
-- it, and must give exactly one of a result and an error.
local core = require("cloudflare.email_security.core")

-- Same layout as spec/fuzz/decode_fuzz.c: 2 bytes status, then two
-- length-prefixed strings (content type, cf-ray), then the body.
local function parse(data)
  local status, pos = 200, #data + 1
  if #data >= 2 then
    status, pos = data:byte(1) * 256 + data:byte(2), 3
  end
  local fields = {}
  for i = 1, 2 do
    local n = data:byte(pos) or 0
    fields[i] = data:sub(pos + 1, pos + n)
    pos = math.min(pos + 1 + n, #data + 1)
  end
  return status, data:sub(pos), { ["content-type"] = fields[1], ["cf-ray"] = fields[2] }
end

describe("the fuzz corpus", function()
  local dir = "spec/fuzz/corpus"
  local p = io.popen("ls " .. dir)
  local names = {}
  for name in p:lines() do names[#names + 1] = name end
  p:close()

  it("is there", function()
    assert.is_true(#names >= 4)
  end)

  for _, name in ipairs(names) do
    it("decodes " .. name .. " to exactly one of a result and an error", function()
      local f = assert(io.open(dir .. "/" .. name, "rb"))
      local data = f:read("*a")
      f:close()
      local result, err = core.decode(parse(data))
      assert.is_true((result == nil) ~= (err == nil))
      if err then assert.is_string(err.kind) end
    end)
  end
end)
