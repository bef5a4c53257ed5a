-- A plan (sync/plan.lua) shown: as lines a person reads (tostring(p),
-- the command line's plan and apply) and as one line of JSON (the
-- command line's plan --json). Both say the same things in the same
-- order; what the server sent (ids, values) can hold anything, and neither
-- form passes a terminal's control sequence through.

local array = require("cloudflare.email_security.array")
local core = require("cloudflare.email_security.core")
local errors = require("cloudflare.email_security.errors")
local json = require("cloudflare.email_security.schema.body").json
local keys = require("cloudflare.email_security.sync.keys")
local numbers = require("cloudflare.email_security.numbers")
local resource_internals = require("cloudflare.email_security.resource").internals

local null, printable = core.null, errors.printable
local concat, format, type = table.concat, string.format, type

local plan_text = {}

-- A value in a change: a list as the set plan compared.
local function show(v)
  if v == nil then return "(absent)" end
  if v == null then return "null" end
  if type(v) == "string" then return format("%q", printable(v)) end
  if type(v) == "table" then return keys.canonical(v) end
  if type(v) == "number" then return numbers.text(v) end
  return tostring(v)
end

local function plural(n, one, many) return format("%d %s", n, n == 1 and one or many) end

--- One line per change, then the counts.
function plan_text.lines(p)
  local out, name = {}, p.name
  -- a create says the fields it sets beyond its key, in the description's order
  local order, in_key = nil, {}
  for _, field in ipairs(p.key or {}) do in_key[field] = true end
  for _, item in ipairs(p.creates) do
    order = order or resource_internals(p.resource).entry.order
    local set = {}
    for _, field in ipairs(order) do
      local v = item.fields[field]
      if v ~= nil and not in_key[field] then set[#set + 1] = field .. ": " .. show(v) end
    end
    out[#out + 1] = format("+ %s create %s%s", name, printable(item.key),
                           #set > 0 and (" with " .. concat(set, "; ")) or "")
  end
  for _, item in ipairs(p.updates) do
    local parts = {}
    for _, ch in ipairs(item.changes) do
      parts[#parts + 1] = format("%s: %s -> %s", ch.field, show(ch.old), show(ch.new))
    end
    out[#out + 1] = format("~ %s update %s (%s): %s", name, printable(item.key), tostring(item.id),
                           concat(parts, "; "))
  end
  for _, item in ipairs(p.deletes) do
    out[#out + 1] = format("- %s delete %s (%s)", name, printable(item.key), tostring(item.id))
  end
  for _, item in ipairs(p.skipped) do
    out[#out + 1] = format("  %s skip %s%s: %s", name, printable(item.key),
                           item.id and (" (" .. tostring(item.id) .. ")") or "", item.reason)
  end
  local summary = format("%d to create, %d to update, %d to delete, %d unchanged",
    #p.creates, #p.updates, #p.deletes, p:unchanged_count())
  if #p.skipped > 0 then summary = summary .. ", " .. #p.skipped .. " skipped" end
  if #p.kept > 0 then summary = summary .. ", " .. plural(#p.kept, "not deleted", "not deleted") ..
    " (" .. p.kept[1].reason .. ")" end
  out[#out + 1] = summary
  local retired = {}
  for _, field in ipairs(array.sorted_keys(p.retired or {})) do
    retired[#retired + 1] = field .. " (" .. p.retired[field] .. ")"
  end
  if #retired > 0 then out[#out + 1] = "ignored, as the API no longer takes them: " .. concat(retired, ", ") end
  for i, line in ipairs(out) do out[i] = printable(line) end
  return out
end

--- The plan as text: its lines.
function plan_text.text(p)
  return concat(plan_text.lines(p), "\n")
end

--- The plan as one line of JSON: { creates, updates, deletes, skipped,
--- kept, unchanged (a count), ignored }; each value written by its
--- field's node, so that an empty list is [] and not {}. entry: the
--- resource's entry node.
function plan_text.json(p, entry)
  local function field_node(name) return entry.fields[name] end
  local function list_of(items, shape)
    local out = {}
    for i, item in ipairs(items) do out[i] = shape(item) end
    return "[" .. concat(out, ",") .. "]"
  end
  local function object(pairs_)
    local out = {}
    for i, kv in ipairs(pairs_) do out[i] = json(kv[1]) .. ":" .. kv[2] end
    return "{" .. concat(out, ",") .. "}"
  end
  local function id_item(i)
    return object({ { "key", json(i.key) }, { "id", json(i.id) }, i.reason and { "reason", json(i.reason) } or nil })
  end
  return object({
    { "creates", list_of(p.creates, function(i)
        return object({ { "key", json(i.key) }, { "fields", json(i.fields, entry) } })
      end) },
    { "updates", list_of(p.updates, function(i)
        return object({ { "key", json(i.key) }, { "id", json(i.id) }, { "changes", list_of(i.changes, function(ch)
          return object({ { "field", json(ch.field) }, { "old", json(ch.old, field_node(ch.field)) },
                          { "new", json(ch.new, field_node(ch.field)) } })
        end) } })
      end) },
    { "deletes", list_of(p.deletes, id_item) },
    { "skipped", list_of(p.skipped, id_item) },
    { "kept", list_of(p.kept, id_item) },
    { "unchanged", json(p:unchanged_count()) },
    { "ignored", list_of(array.sorted_keys(p.retired or {}), function(field)
        return object({ { "field", json(field) }, { "reason", json(p.retired[field]) } })
      end) },
  }) .. "\n"
end

return plan_text
