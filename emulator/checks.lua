-- The emulator's own checks of a value against a schema node of a
-- description: types, enums, required, read-only and unknown fields,
-- lengths in UTF-8 characters, ranges, list lengths, UUIDs and date-times.
--
-- Written here on purpose, never taken from the module's schema/ code
-- (compile.lua, validate.lua): the emulator is the oracle the client specs
-- are judged by, so a mistake in the module's checks must meet an
-- independent check on the other side of the wire instead of passing on
-- both. Only the descriptions (data) are shared.
--
-- Each problem is one string, "where: rule", where `where` is the field's
-- path (posts[2].pattern); the first problem found is the answer, and
-- fields are looked at in name order so that a body with several problems
-- always gets the same one.

local json = require("emulator.json")
local resources = require("emulator.resources")

local null = json.null
local property = resources.property

local checks = {}

local UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"
local DATE_TIME = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d"

--- Is v one of the list's values?
function checks.contains(list, v)
  for _, x in ipairs(list) do
    if x == v then return true end
  end
  return false
end
local contains = checks.contains

-- A decoded JSON array: keys 1..n only. An empty table passes as both an
-- array and an object, because cjson decodes [] and {} alike.
local function array_like(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n == #t
end

local check

local function plural(n, word)
  if n == 1 then return "one " .. word end
  return n .. " " .. word .. "s"
end

local function object_problem(node, v, where)
  if type(v) ~= "table" or (next(v) ~= nil and array_like(v)) then return where .. ": must be a JSON object" end
  local names = {}
  for name in pairs(v) do
    if type(name) ~= "string" then return where .. ": must be a JSON object" end
    names[#names + 1] = name
  end
  table.sort(names)
  -- the top level names its fields bare, as the registry always has
  local prefix = where == "body" and "" or where .. "."
  for _, name in ipairs(names) do
    local p = property(node, name)
    if p and p.read_only then return prefix .. name .. ": read-only field" end
    if not p then return prefix .. name .. ": unknown field" end
    local problem = check(p, v[name], prefix .. name)
    if problem then return problem end
  end
  for _, name in ipairs(node.required or {}) do
    if v[name] == nil then return prefix .. name .. ": required" end
  end
  if node.min_properties and #names < node.min_properties then
    return where .. ": at least " .. plural(node.min_properties, "field") .. " is required"
  end
end

local function string_problem(node, v, where)
  if type(v) ~= "string" then return where .. ": must be a string" end
  local len = utf8.len(v)
  if not len then return where .. ": must be valid UTF-8" end
  -- lengths count UTF-8 characters, not bytes
  if node.min_length and len < node.min_length then
    return ("%s: must be at least %s"):format(where, plural(node.min_length, "character"))
  end
  if node.max_length and len > node.max_length then
    return ("%s: must be at most %s"):format(where, plural(node.max_length, "character"))
  end
  if node.enum and not contains(node.enum, v) then
    return where .. ": must be one of " .. table.concat(node.enum, ", ")
  end
  if node.format == "uuid" and not v:find(UUID) then return where .. ": must be a UUID" end
  if node.format == "date-time" and not v:find(DATE_TIME) then return where .. ": must be an RFC 3339 date-time" end
end

local function number_problem(node, v, where)
  if node.type == "integer" and math.type(v) ~= "integer" then return where .. ": must be an integer" end
  if type(v) ~= "number" then return where .. ": must be a number" end
  if node.minimum and v < node.minimum then return ("%s: must be at least %s"):format(where, node.minimum) end
  if node.maximum and v > node.maximum then return ("%s: must be at most %s"):format(where, node.maximum) end
  if node.enum and not contains(node.enum, v) then
    return where .. ": must be one of " .. table.concat(node.enum, ", ")
  end
end

local function array_problem(node, v, where)
  if type(v) ~= "table" or not array_like(v) then return where .. ": must be a list" end
  if node.min_items and #v < node.min_items then
    return ("%s: must have at least %s"):format(where, plural(node.min_items, "item"))
  end
  if node.max_items and #v > node.max_items then
    return ("%s: must have at most %s"):format(where, plural(node.max_items, "item"))
  end
  for i, x in ipairs(v) do
    local problem = node.items and check(node.items, x, ("%s[%d]"):format(where, i))
    if problem then return problem end
  end
end

local CHECKS = {
  object = object_problem,
  string = string_problem,
  integer = number_problem,
  number = number_problem,
  array = array_problem,
  boolean = function(_, v, where)
    if type(v) ~= "boolean" then return where .. ": must be a boolean" end
  end,
}

--- nil when v fits the node, else the problem.
function check(node, v, where)
  if v == null then
    if node.nullable then return nil end
    return where .. ": must not be null"
  end
  local by_type = CHECKS[node.type]
  if by_type then return by_type(node, v, where) end
end
checks.check = check

return checks
