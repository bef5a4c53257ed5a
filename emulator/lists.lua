-- A list operation's answer: pages by page/per_page, a search of the
-- entity's own strings without regard to case, order by order/direction,
-- and every other list parameter of the description as a filter (a list
-- parameter such as domain=a&domain=b matches any of its values).

local json = require("emulator.json")
local resources = require("emulator.resources")
local checks = require("emulator.checks")
local store = require("emulator.store")
local answers = require("emulator.answers")

local list_of = json.list_of
local property, check, contains = resources.property, checks.check, checks.contains
local text_of = store.text
local invalid = answers.invalid

local lists = {}

-- Parameters with a meaning of their own; every other one is a filter.
local PAGING = { page = true, per_page = true, search = true, order = true, direction = true }

-- The fields `search` looks in: the entity's own strings, not its ids and
-- time stamps (a search for "2026" would match every entry).
local function search_fields(res)
  local out = {}
  for _, p in ipairs(res.entry.properties) do
    if p.type == "string" and not p.read_only and not p.format then out[#out + 1] = p.name end
  end
  return out
end

-- A query value read as the parameter's type: the value, or nil and the
-- problem.
local function query_value(node, name, text)
  local v = text
  if node.type == "boolean" then
    if text ~= "true" and text ~= "false" then return nil, name .. ": must be true or false" end
    v = text == "true"
  elseif node.type == "integer" then
    v = text:find("^%-?%d+$") and math.tointeger(tonumber(text))
    if not v then return nil, name .. ": must be an integer" end
  end
  local problem = check(node, v, name)
  if problem then return nil, problem end
  return v
end

-- The filter a list parameter makes: a function of an entry, or nil and
-- the problem with its value. It compares with the entry's field of the
-- same name, or with the list field its plural names (allowed_delivery_mode
-- looks in allowed_delivery_modes); one the entity has no field for is
-- checked and otherwise ignored.
local function filter_of(res, param, texts)
  local wanted = {}
  for _, text in ipairs(texts) do
    local v, problem = query_value(param.type == "array" and param.items or param, param.name, text)
    if problem then return nil, problem end
    wanted[#wanted + 1] = v
  end
  local field = property(res.entry, param.name)
  local plural_field = not field and property(res.entry, param.name .. "s")
  if plural_field and plural_field.type == "array" then
    return function(e)
      for _, v in ipairs(wanted) do
        if type(e[plural_field.name]) == "table" and contains(e[plural_field.name], v) then return true end
      end
      return false
    end
  end
  if not field then return function() return true end end
  -- a list parameter (domain=a&domain=b) matches any of its values
  return function(e) return contains(wanted, e[field.name]) end
end

--- The answer to a list of the account's entries. query: name -> the last
--- value given; all: name -> every value given, in order.
function lists.answer(res, acct, query, all)
  local page, per_page = query.page or "1", query.per_page or "20"
  if not page:find("^%d+$") or tonumber(page) < 1 then
    return invalid("page: must be an integer of at least 1")
  end
  if not per_page:find("^%d+$") or tonumber(per_page) < 1 or tonumber(per_page) > 1000 then
    return invalid("per_page: must be an integer from 1 to 1000")
  end
  page, per_page = tonumber(page), tonumber(per_page)

  local order, direction, needle = "created_at", "asc", nil
  local filters = {}
  for _, param in ipairs(res.list_params) do
    local given = query[param.name]
    if given and not PAGING[param.name] then
      local filter, problem = filter_of(res, param, all[param.name])
      if problem then return invalid(problem) end
      filters[#filters + 1] = filter
    elseif given and param.name ~= "page" and param.name ~= "per_page" then
      local _, problem = query_value(param, param.name, given)
      if problem then return invalid(problem) end
      if param.name == "order" then order = given
      elseif param.name == "direction" then direction = given
      elseif param.name == "search" then needle = given:lower() end
    end
  end

  local fields = search_fields(res)
  local matching = {}
  for _, e in ipairs(store.entries(res, acct)) do
    local found = not needle
    for i = 1, #fields do
      if found then break end
      found = text_of(e, fields[i]):lower():find(needle, 1, true) ~= nil
    end
    for i = 1, #filters do
      if not found then break end
      found = filters[i](e)
    end
    if found then matching[#matching + 1] = e end
  end
  table.sort(matching, function(a, b)
    local x, y = a._seq, b._seq
    if order ~= "created_at" and text_of(a, order) ~= text_of(b, order) then
      x, y = text_of(a, order), text_of(b, order)
    end
    if direction == "desc" then return x > y end
    return x < y
  end)
  local items = list_of({})
  local first = (page - 1) * per_page + 1
  for i = first, math.min(first + per_page - 1, #matching) do items[#items + 1] = matching[i] end
  return answers.ok(200, store.public_list(items), { page = page, per_page = per_page, count = #items,
                                                     total_count = #matching })
end

return lists
