-- Checks ids, request bodies and list parameters against a resource's schema
-- facts before anything is sent. Each check returns nothing when the value is
-- good, else `field, rule, message` for errors.invalid.

local null = require("cloudflare.email_security.core").null

local byte, floor, huge = string.byte, math.floor, math.huge
local validate = {}

local UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"

--- The number of characters in a UTF-8 string, or nil when it is not valid
--- UTF-8 (overlong forms, surrogates and code points past U+10FFFF included).
function validate.utf8_length(s)
  if not s:find("[\128-\255]") then return #s end
  local i, n, count = 1, #s, 0
  while i <= n do
    local c = byte(s, i)
    local size, low, high = 1, 0x80, 0xBF
    if c >= 0x80 then
      if c >= 0xC2 and c <= 0xDF then size = 2
      elseif c >= 0xE0 and c <= 0xEF then
        size = 3
        if c == 0xE0 then low = 0xA0 elseif c == 0xED then high = 0x9F end
      elseif c >= 0xF0 and c <= 0xF4 then
        size = 4
        if c == 0xF0 then low = 0x90 elseif c == 0xF4 then high = 0x8F end
      else
        return nil
      end
      -- the first continuation byte carries the overlong/surrogate limits
      local c2 = byte(s, i + 1)
      if not c2 or c2 < low or c2 > high then return nil end
      for k = i + 2, i + size - 1 do
        local ck = byte(s, k)
        if not ck or ck < 0x80 or ck > 0xBF then return nil end
      end
    end
    i = i + size
    count = count + 1
  end
  return count
end

local function is_integer(v)
  return type(v) == "number" and v == v and v ~= huge and v ~= -huge and floor(v) == v
end

-- Past 2^53 a double (all lua-cjson has) is no longer exact: the API's
-- answer holding such a value could never be read back, so it is never sent.
local EXACT = 2 ^ 53

local function one_of(list, v)
  for i = 1, #list do
    if list[i] == v then return true end
  end
  return false
end

-- One value against one field (or parameter) description.
local function check_value(spec, v)
  if v == null then
    if spec.nullable then return end
    return "nullable", "must not be null"
  end
  local t = spec.type
  if t == "string" then
    if type(v) ~= "string" then return "type", "must be a string, got " .. type(v) end
    local len = #v
    -- one scan in the common case: plain ASCII without NUL needs no more
    if v:find("[%z\128-\255]") then
      if v:find("\0", 1, true) then return "nul", "must not contain a NUL byte" end
      len = validate.utf8_length(v)
      if not len then return "utf8", "must be valid UTF-8" end
    end
    if spec.max_length and len > spec.max_length then
      return "max_length", ("must be at most %d characters (got %d)"):format(spec.max_length, len)
    end
    if spec.enum and not one_of(spec.enum, v) then
      return "enum", "must be one of " .. table.concat(spec.enum, ", ")
    end
  elseif t == "boolean" then
    if type(v) ~= "boolean" then return "type", "must be a boolean, got " .. type(v) end
  elseif t == "integer" then
    if not is_integer(v) then
      return "type", "must be an integer, got " .. (type(v) == "number" and tostring(v) or type(v))
    end
    if v > EXACT then
      return "maximum", "must be at most 2^53 (9007199254740992): a larger integer cannot be read back exactly"
    end
    if v < -EXACT then
      return "minimum", "must be at least -2^53 (-9007199254740992): a larger integer cannot be read back exactly"
    end
    if spec.minimum and v < spec.minimum then
      return "minimum", ("must be at least %d"):format(spec.minimum)
    end
    if spec.maximum and v > spec.maximum then
      return "maximum", ("must be at most %d"):format(spec.maximum)
    end
  end
end

local function index_by_name(list)
  local by_name = {}
  for _, spec in ipairs(list) do by_name[spec.name] = spec end
  return by_name
end

-- Schema facts indexed by name, built once per schema table.
local indexes = setmetatable({}, { __mode = "k" })
local function indexed(schema)
  local ix = indexes[schema]
  if not ix then
    ix = { fields = index_by_name(schema.fields), params = index_by_name(schema.list_params or {}) }
    indexes[schema] = ix
  end
  return ix
end

function validate.id(schema, id)
  if schema.id_format == "uuid" and not id:find(UUID) then
    return schema.id_param, "format", "must be a uuid (8-4-4-4-12 hex digits)"
  end
end

--- mode: "create" or "update".
function validate.body(schema, fields, mode)
  local known = indexed(schema).fields
  local count = 0
  for name, v in pairs(fields) do
    count = count + 1
    local spec = type(name) == "string" and known[name]
    if not spec then
      return tostring(name), "unknown", "is not a field of " .. schema.name
    end
    if spec.read_only then
      return name, "read_only", "is read-only and cannot be sent"
    end
    local rule, message = check_value(spec, v)
    if rule then return name, rule, message end
  end
  if mode == "create" then
    for _, name in ipairs(schema.create_requires) do
      if fields[name] == nil then
        return name, "required", "is required to create an entry"
      end
    end
  elseif count < (schema.update_min_fields or 0) then
    return "fields", "min_properties", "an update needs at least one field"
  end
end

function validate.params(schema, params)
  local known = indexed(schema).params
  for name, v in pairs(params) do
    local spec = type(name) == "string" and known[name]
    if not spec then
      return tostring(name), "unknown", "is not a list parameter of " .. schema.name
    end
    if v == null then return name, "nullable", "must not be null" end
    local rule, message = check_value(spec, v)
    if rule then return name, rule, message end
  end
end

return validate
