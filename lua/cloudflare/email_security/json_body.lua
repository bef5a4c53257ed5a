-- Writes a validated request body as JSON. The body is a flat object of
-- strings, booleans, integers and null, written in the schema's field order
-- so that requests (and logs of them) are stable. lua-cjson escapes the
-- strings; integers are written here, because lua-cjson prints numbers with
-- 14 significant digits and would round a larger id.

local cjson = require("cjson")
local encode_string = cjson.new().encode
local null = cjson.null

local format = string.format
local math_type = math.type

local function encode_value(v)
  local t = type(v)
  if t == "string" then return encode_string(v) end
  if t == "boolean" then return v and "true" or "false" end
  if v == null then return "null" end
  if math_type and math_type(v) == "integer" then return format("%d", v) end
  return format("%.0f", v)
end

--- fields: validated by validate.body against the same schema.
return function(schema, fields)
  local parts = {}
  for _, spec in ipairs(schema.fields) do
    local v = fields[spec.name]
    if v ~= nil then
      parts[#parts + 1] = encode_string(spec.name) .. ":" .. encode_value(v)
    end
  end
  return "{" .. table.concat(parts, ",") .. "}"
end
