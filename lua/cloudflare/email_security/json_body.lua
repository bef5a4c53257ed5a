-- Writes a validated request body as JSON. The body is a flat object of
-- strings, booleans, integers and null, written in the schema's field order
-- so that requests (and logs of them) are stable. Integers are written here,
-- because lua-cjson prints numbers with 14 significant digits and would
-- round a larger id; strings that need escaping go through lua-cjson.
-- This runs on every create and update, so the keys are encoded once per
-- schema and plain ASCII strings skip lua-cjson (and its buffer) entirely.

-- lua-cjson through the C core, which loads it once per Lua state under
-- its lock (lua-cjson sets a process-wide static as it loads)
local core = require("cloudflare.email_security.core")
local encode_string = core.json_encode
local null = core.null

local format, find, concat = string.format, string.find, table.concat
local math_type = math.type

local function encode_value(v)
  local t = type(v)
  if t == "string" then
    -- nothing to escape: no control byte, quote, backslash or non-ASCII
    if not find(v, '[%z\1-\31"\\\127-\255]') then return '"' .. v .. '"' end
    return encode_string(v)
  end
  if t == "boolean" then return v and "true" or "false" end
  if v == null then return "null" end
  if math_type and math_type(v) == "integer" then return format("%d", v) end
  return format("%.0f", v)
end

-- schema -> flat list name1, '"name1":', name2, ... of the writable fields
-- (read-only ones never reach a body), built once per schema
local keys_of = setmetatable({}, { __mode = "k" })

local function keys(schema)
  local list = keys_of[schema]
  if not list then
    list = {}
    for _, spec in ipairs(schema.fields) do
      if not spec.read_only then
        list[#list + 1] = spec.name
        list[#list + 1] = encode_string(spec.name) .. ":"
      end
    end
    keys_of[schema] = list
  end
  return list
end

--- fields: validated by validate.body against the same schema.
return function(schema, fields)
  local list = keys(schema)
  local parts, n = {}, 0
  for i = 1, #list, 2 do
    local v = fields[list[i]]
    if v ~= nil then
      n = n + 1
      parts[n] = list[i + 1] .. encode_value(v)
    end
  end
  return "{" .. concat(parts, ",") .. "}"
end
