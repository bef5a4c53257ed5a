-- Writes a checked request body as JSON, driven by its schema node: objects
-- with their fields in the description's order (stable requests, and
-- stable logs of them), lists as JSON arrays even when empty (lua-cjson
-- would write an empty table as {}), integers exactly (lua-cjson prints 14
-- significant digits and would round a larger one), strings that need
-- escaping through lua-cjson. Plain ASCII strings skip lua-cjson entirely.

-- lua-cjson through the C core, which loads it once per Lua state under
-- its lock (lua-cjson sets a process-wide static as it loads)
local core = require("cloudflare.email_security.core")
local encode_string, text_flags = core.json_encode, core.text_flags
local null = core.null

local format, concat, next, type = string.format, table.concat, next, type
local math_type = math.type

-- "name": for every field name, encoded once
local keys = setmetatable({}, { __mode = "k" })
local function key_of(name)
  local k = keys[name]
  if not k then
    k = encode_string(name) .. ":"
    keys[name] = k
  end
  return k
end

local write

local function scalar(v)
  local t = type(v)
  if t == "string" then
    -- nothing to escape: no control byte, quote, backslash or non-ASCII
    -- (asked in C: the Lua pattern cost about 240 instructions a byte)
    local _, _, needs_escape = text_flags(v)
    if not needs_escape then return '"' .. v .. '"' end
    return encode_string(v)
  end
  if t == "boolean" then return v and "true" or "false" end
  if v == null then return "null" end
  if math_type and math_type(v) == "integer" then return format("%d", v) end
  -- checked: a finite number; an integral one within 2^53 is exact here
  if v == math.floor(v) then return format("%.0f", v) end
  return format("%.17g", v)
end

-- An object's given fields in the description's order: the names are
-- put in place one by one (insertion by position), so that the work
-- follows the fields given, not the fields the schema has.
local function ordered_names(n, v)
  local position, names, count = n.position, {}, 0
  for name in next, v do
    local at = position[name]
    local i = count
    while i > 0 and position[names[i]] > at do
      names[i + 1] = names[i]
      i = i - 1
    end
    names[i + 1] = name
    count = count + 1
  end
  return names, count
end

function write(n, v)
  if v == null then return "null" end
  local t = n.type
  if t == "object" then
    local names, count = ordered_names(n, v)
    local fields = n.fields
    for i = 1, count do
      local name = names[i]
      names[i] = key_of(name) .. write(fields[name], v[name])
    end
    return "{" .. concat(names, ",", 1, count) .. "}"
  end
  if t == "array" then
    local parts = {}
    for i = 1, #v do parts[i] = write(n.items, v[i]) end
    return "[" .. concat(parts, ",") .. "]"
  end
  return scalar(v)
end

--- n: a compiled schema node; v: a value validate.body accepted against it
--- (so every key of an object is one of its fields).
return write
