-- JSON in and out of the emulator. lua-cjson 2.1 writes an empty table as
-- {} and every decoded number as a float, so answers are written here:
-- lists stay lists when empty (list_of marks them), integral numbers print
-- without a fraction, and object keys are sorted so that an answer is byte
-- for byte the same between runs. Bodies are read with cjson, then every
-- integral float becomes an integer, as the client sent it.

local cjson = require("cjson")

local json = { null = cjson.null }
local null = cjson.null

-- Tables that must be written as JSON arrays even when empty.
local LIST = setmetatable({}, { __mode = "k" })

--- t, marked to be written as an array even when empty.
function json.list_of(t)
  LIST[t] = true
  return t
end

local function is_list(t)
  if LIST[t] then return true end
  local n = #t
  if n == 0 then return false end
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 or k > n then return false end
  end
  return true
end

--- A number as JSON: integral values without a fraction.
function json.number(v)
  if math.type(v) == "integer" then return string.format("%d", v) end
  if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return string.format("%d", math.tointeger(v)) end
  return cjson.encode(v)
end

function json.encode(v)
  local t = type(v)
  if v == nil or v == null then return "null" end
  if t == "number" then return json.number(v) end
  if t ~= "table" then return cjson.encode(v) end
  local parts = {}
  if is_list(v) then
    for i = 1, #v do parts[i] = json.encode(v[i]) end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  for k, x in pairs(v) do parts[#parts + 1] = cjson.encode(tostring(k)) .. ":" .. json.encode(x) end
  -- sorted keys keep answers byte-for-byte repeatable between runs
  table.sort(parts)
  return "{" .. table.concat(parts, ",") .. "}"
end

--- Integral floats become integers, at any depth, so later checks and
--- math.type agree with what the client sent.
function json.integers_in(t)
  for k, v in pairs(t) do
    if math.type(v) == "float" and v == math.floor(v) and math.abs(v) < 2 ^ 63 then
      t[k] = math.tointeger(v)
    elseif type(v) == "table" then
      json.integers_in(v)
    end
  end
  return t
end

-- The raw body as JSON of the kind wanted ("object", or "array" for a
-- body that is a list): the table, or nil and "malformed" (not JSON at
-- all) or "wrong_kind" (valid JSON of another kind).
local FIRST_CHAR = { object = "^%s*{", array = "^%s*%[" }
function json.decode(raw, kind)
  local ok, value = pcall(cjson.decode, raw)
  if not ok then return nil, "malformed" end
  -- cjson gives a table for arrays and objects alike; the first byte tells them apart
  if type(value) ~= "table" or not raw:find(FIRST_CHAR[kind]) then return nil, "wrong_kind" end
  return json.integers_in(value)
end

function json.decode_object(raw) return json.decode(raw, "object") end

return json
