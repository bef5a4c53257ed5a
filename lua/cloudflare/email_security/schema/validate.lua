-- Checks a value the caller wants to send against a compiled schema node
-- (schema/compile.lua), before anything is sent: strings, integers,
-- booleans, arrays and objects, recursively, with nullability, enums,
-- formats, lengths, ranges, item counts, required fields, unknown, read-
-- only and retired fields. The value is the module's own raw copy of the
-- caller's table (snapshot.lua). Each check returns nothing when the value
-- is good, else `field, rule, message` for errors.invalid, where field
-- names the place ("posts[2].pattern").

local core = require("cloudflare.email_security.core")
local null, is_uuid, text_flags, utf8_length = core.null, core.is_uuid, core.text_flags, core.utf8_length
local compile = require("cloudflare.email_security.schema.compile")
local array_length = require("cloudflare.email_security.array").length
local number_text = require("cloudflare.email_security.numbers").text

local floor, huge, next, type = math.floor, math.huge, next, type
local FORMATS = compile.FORMATS
local validate = {}

--- The number of characters in a UTF-8 string; nil and the 1-based offset
--- of the first byte that is not UTF-8 (overlong forms, surrogates and code
--- points past U+10FFFF included), when it is not. In C: the same check the
--- answer's scan makes (src/json_scan.c).
validate.utf8_length = utf8_length

-- Past 2^53 a double (all lua-cjson has) is no longer exact: the API's
-- answer holding such a value could never be read back, so it is never sent.
local EXACT = 2 ^ 53

local function is_integral(v)
  return v == v and v ~= huge and v ~= -huge and floor(v) == v
end

local function join(path, name)
  if path == nil then return name end
  return path .. "." .. name
end

local check

local function check_string(n, v)
  if type(v) ~= "string" then return "type", "must be a string, got " .. type(v) end
  local len = #v
  -- one scan, in C: plain ASCII without NUL needs no more
  local has_nul, has_high = text_flags(v)
  if has_nul then return "nul", "must not contain a NUL byte" end
  if has_high then
    len = utf8_length(v)
    if not len then return "utf8", "must be valid UTF-8" end
  end
  if n.min_length and len < n.min_length then
    return "min_length", ("must be at least %d characters (got %d)"):format(n.min_length, len)
  end
  if n.max_length and len > n.max_length then
    return "max_length", ("must be at most %d characters (got %d)"):format(n.max_length, len)
  end
  if n.enum_set and not n.enum_set[v] then
    return "enum", "must be one of " .. table.concat(n.enum, ", ")
  end
  -- a uuid, which every call with an id checks, in C; the other formats by pattern
  local format = n.format
  if format and not (format == "uuid" and is_uuid(v)) and not (format ~= "uuid" and v:find(FORMATS[format])) then
    return "format", n.format == "uuid" and "must be a uuid (8-4-4-4-12 hex digits)"
      or "must be a " .. n.format
  end
end

local function check_number(n, v, integer)
  local finite = type(v) == "number" and v == v and v ~= huge and v ~= -huge
  if not finite or (integer and not is_integral(v)) then
    return "type", ("must be %s, got %s"):format(integer and "an integer" or "a finite number",
                                                  type(v) == "number" and number_text(v) or type(v))
  end
  if integer and v > EXACT then
    return "maximum", "must be at most 2^53 (9007199254740992): a larger integer cannot be read back exactly"
  end
  if integer and v < -EXACT then
    return "minimum", "must be at least -2^53 (-9007199254740992): a larger integer cannot be read back exactly"
  end
  if n.minimum and v < n.minimum then return "minimum", ("must be at least %s"):format(n.minimum) end
  if n.maximum and v > n.maximum then return "maximum", ("must be at most %s"):format(n.maximum) end
end

local function check_array(n, v, path)
  -- a body that is itself a list (the collection DELETE) has no field name
  path = path or "list"
  if type(v) ~= "table" then return path, "type", "must be a list (a Lua array), got " .. type(v) end
  local count = array_length(v)
  if not count then return path, "type", "must be a list: keys 1 to n and no others" end
  if n.min_items and count < n.min_items then
    return path, "min_items", ("must have at least %d item%s (got %d)"):format(n.min_items,
      n.min_items == 1 and "" or "s", count)
  end
  if n.max_items and count > n.max_items then
    return path, "max_items", ("must have at most %d items (got %d)"):format(n.max_items, count)
  end
  for i = 1, count do
    local field, rule, message = check(n.items, v[i], ("%s[%d]"):format(path, i))
    if field then return field, rule, message end
  end
  if n.unique_items then
    local seen = {}
    for i = 1, count do
      if seen[v[i]] then return ("%s[%d]"):format(path, i), "unique_items", "repeats an earlier item" end
      seen[v[i]] = true
    end
  end
end

-- Edit distance of two short names, or limit + 1 once it is past limit.
local function distance(a, b, limit)
  if math.abs(#a - #b) > limit then return limit + 1 end
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur, best = { [0] = i }, i
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
      if cur[j] < best then best = cur[j] end
    end
    if best > limit then return limit + 1 end
    prev = cur
  end
  return prev[#b]
end

--- What to say of an unknown name among names: "did you mean `x`?" for a
--- near miss, else the names there are.
function validate.suggest(name, names)
  local best, best_d = nil, 3
  for _, n in ipairs(names) do
    local d = distance(name:lower(), n:lower(), 2)
    if d < best_d then best, best_d = n, d end
  end
  if best then return ": did you mean `" .. best .. "`?" end
  return " (there are: " .. table.concat(names, ", ") .. ")"
end

-- The fields of an object a caller may write, for suggestions.
local function writable(n)
  local out = {}
  for _, name in ipairs(n.order) do
    local f = n.fields[name]
    if not f.read_only and not f.deprecated then out[#out + 1] = name end
  end
  return out
end

-- Fields a caller may not send: made by the server, or retired.
local function refused_on_write(f, today)
  if f.read_only then return "read_only", "is read-only and cannot be sent" end
  if f.deprecated and f.end_of_life and f.end_of_life <= today then
    return "deprecated", ("is past its end of life (%s)%s"):format(f.end_of_life,
      f.replaced_by and (": use " .. f.replaced_by) or "")
  end
end

--- An object against its node. what: the name of what the fields belong
--- to, for the message of an unknown field.
local function check_object(n, v, path, what)
  if type(v) ~= "table" then return path, "type", "must be a table of fields, got " .. type(v) end
  local fields, count, today = n.fields, 0, nil
  for name, value in next, v do
    count = count + 1
    local f = type(name) == "string" and fields[name]
    if not f then
      return join(path, tostring(name)), "unknown", "is not a field of " .. (what or path or "this body")
        .. validate.suggest(tostring(name), writable(n))
    end
    if f.read_only or f.deprecated then
      today = today or os.date("!%Y-%m-%d")
      local rule, message = refused_on_write(f, today)
      if rule then return join(path, name), rule, message end
    end
    local field, rule, message = check(f, value, join(path, name))
    if field then return field, rule, message end
  end
  local required = n.required
  for i = 1, #required do
    if v[required[i]] == nil then return join(path, required[i]), "required", "is required" end
  end
  if n.min_properties and count < n.min_properties then
    return path or "fields", "min_properties", ("needs at least %d field%s"):format(n.min_properties,
      n.min_properties == 1 and "" or "s")
  end
end

--- Any value against its node; path names it in errors.
function check(n, v, path, what)
  if v == null then
    if n.nullable then return end
    return path, "nullable", "must not be null"
  end
  local t = n.type
  if t == "object" then return check_object(n, v, path, what) end
  if t == "array" then return check_array(n, v, path) end
  local rule, message
  if t == "string" then rule, message = check_string(n, v)
  elseif t == "boolean" then
    if type(v) ~= "boolean" then rule, message = "type", "must be a boolean, got " .. type(v) end
  elseif t == "integer" then rule, message = check_number(n, v, true)
  elseif t == "number" then rule, message = check_number(n, v, false)
  end
  if rule then return path, rule, message end
end

--- A request body: fields is the module's copy of the caller's table;
--- what names the resource, for the message of an unknown field.
function validate.body(n, fields, what)
  return check(n, fields, nil, what)
end

--- One value at a path: for ids and the items of calls that take a list.
validate.value = check

--- List parameters against the params of desc, a compiled description.
function validate.params(desc, params)
  for name, v in next, params do
    local p = type(name) == "string" and desc.params[name]
    if not p then
      return tostring(name), "unknown", "is not a list parameter of " .. desc.name
        .. validate.suggest(tostring(name), desc.param_order)
    end
    if v == null then return name, "nullable", "must not be null" end
    local field, rule, message = check(p, v, name)
    if field then return field, rule, message end
  end
end

return validate
