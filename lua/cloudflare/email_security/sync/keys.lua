-- How plan and apply tell entries apart and compare their values. Which
-- fields make an entry's natural key, which fold case, which entries are
-- left alone and which deletes need an option are facts of each resource,
-- kept in resources/overlay.lua; this applies them.

local core = require("cloudflare.email_security.core")
local array = require("cloudflare.email_security.array")
local numbers = require("cloudflare.email_security.numbers")
local overlay = require("cloudflare.email_security.resources.overlay")

local null, lower_text = core.null, core.lower_text
local concat, sort, type = table.concat, table.sort, type
local number_text = numbers.text

local keys = {}

local function present(v) return v ~= nil and v ~= null end

-- one rule per resource, made when first asked for
local usual = {}

--- The key of a resource: { fields = {...}, lower = {...}, skip, guard }
--- (see resources/overlay.lua), with override (a list of field names) in
--- place of the usual fields; nil for a resource the overlay does not
--- know.
function keys.of(name, override)
  local facts = overlay[name]
  if not facts then return nil end
  if override ~= nil then
    return { fields = override, lower = facts.lower or {}, skip = facts.skip, guard = facts.guard }
  end
  local rule = usual[name]
  if not rule then
    rule = { fields = facts.key, lower = facts.lower or {}, skip = facts.skip, guard = facts.guard }
    usual[name] = rule
  end
  return rule
end

--- Does `field` of entry e compare without regard to case?
function keys.folds(key, field, e)
  local rule = key.lower and key.lower[field]
  if rule == true then return true end
  -- only where the entry says plainly that it is no regular expression:
  -- an entry that does not say (a key given without the flag) is compared
  -- as written, so that it can never match a regular expression folded
  return type(rule) == "string" and type(e) == "table" and e[rule] == false
end

--- A key field's value as compared: lower-cased (beyond ASCII) where the
--- key says so for entry e. Text that is not UTF-8 stays as it is: the
--- checks refuse it in what is sent, and only exact bytes match it.
function keys.normal(key, field, v, e)
  if type(v) == "string" and keys.folds(key, field, e) then return lower_text(v) or v end
  return v
end

--- The key of an entry as one string (for matching) and as text (for a
--- person), or nil and the first key field it lacks.
function keys.value(key, e)
  local parts, text = {}, {}
  for i, field in ipairs(key.fields) do
    local v = e[field]
    if not present(v) then return nil, field end
    v = keys.normal(key, field, v, e)
    -- the type is part of the key: "true" and true are not the same
    parts[i] = type(v) .. ":" .. (type(v) == "number" and number_text(v) or tostring(v))
    text[i] = field .. "=" .. tostring(e[field])
  end
  return concat(parts, "\0"), concat(text, " ")
end

-- the compared values of one key, and its parts (reused: nothing between
-- their filling and their last use can run other code)
local scratch_values, scratch_parts = {}, {}

--- The same key as two table keys, for a map of many entries that makes
--- no text per entry: slot (the parts keys.value makes, but for the last
--- text field, and that field's place: a short text, shared by many
--- entries) and within it that field's compared text itself (the entry's
--- own string, unless it is lower-cased); with no text field, slot says
--- so and the second is keys.value's string. Two entries have the same
--- slot and text exactly when keys.value gives them the same key. nil and
--- the first key field it lacks, as keys.value.
function keys.slot(key, e)
  local fields, values, parts = key.fields, scratch_values, scratch_parts
  local main = 0
  for i = 1, #fields do
    local field = fields[i]
    local v = e[field]
    if not present(v) then return nil, field end
    v = keys.normal(key, field, v, e)
    values[i] = v
    if type(v) == "string" then main = i end
  end
  local last = values[main]
  local n = 0
  for i = 1, #fields do
    local v = values[i]
    values[i] = nil
    if i ~= main then
      n = n + 1
      parts[n] = type(v) .. ":" .. (type(v) == "number" and number_text(v) or tostring(v))
    end
  end
  n = n + 1
  parts[n] = "#" .. main
  local slot = concat(parts, "\0", 1, n)
  for i = 1, n do parts[i] = nil end
  if main > 0 then return slot, last end
  -- no text field: the whole key (the parts above, but the marker)
  return slot, (keys.value(key, e))
end

--- A value as a canonical text, for comparing lists as sets and tables by
--- content: values from an answer or checked against the description, so
--- that a table's first key says whether it is a list.
function keys.canonical(v)
  local kind = array.kind(v)
  if kind == "string" then return ("%q"):format(v) end
  if kind == "number" then return number_text(v) end
  if kind == "null" then return "null" end
  if type(v) ~= "table" then return tostring(v) end
  local parts = {}
  if kind ~= "object" then
    -- a list: as a set, its items sorted and each once
    local seen = {}
    for _, item in ipairs(v) do
      local text = keys.canonical(item)
      if not seen[text] then parts[#parts + 1], seen[text] = text, true end
    end
    sort(parts)
    return "[" .. concat(parts, ",") .. "]"
  end
  for k, item in pairs(v) do parts[#parts + 1] = tostring(k) .. "=" .. keys.canonical(item) end
  sort(parts)
  return "{" .. concat(parts, ",") .. "}"
end

return keys
