-- A plan (sync/plan.lua) shown: as lines a person reads (tostring(p),
-- the command line's plan and apply) and as one line of JSON (the
-- command line's plan --json); and what its apply did, as JSON (apply
-- --json). The lines and the plan's JSON say the same things in the same
-- order; what the server sent (ids, values) can hold anything, and no
-- form passes a terminal's control sequence through.
--
-- In every JSON form a change's key is an object of the key's fields and
-- their values, each written as its field is ({"pattern":"x",
-- "pattern_type":"EMAIL","is_regex":false}): a script reads the fields,
-- and never parses the text a person reads ("pattern_type=EMAIL
-- pattern=x is_regex=false"), which cannot tell a space in a value from
-- the one between fields. An entry on the server the key cannot name
-- (skipped: "has no pattern") has the key fields it has.

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

-- The key's fields as an object node (the order the key gives them, each
-- its field's node), for body.json to write a change's key_values by.
local function key_node(p, entry)
  local n = { type = "object", fields = {}, position = {}, order = {} }
  for i, field in ipairs(p.key or {}) do
    n.fields[field], n.position[field], n.order[i] = entry.fields[field], i, field
  end
  return n
end

local function list_of(items, shape)
  local out = {}
  for i, item in ipairs(items) do out[i] = shape(item) end
  return "[" .. concat(out, ",") .. "]"
end

-- {"a":1,"b":2} of { { "a", its JSON text }, ... }, in that order (a
-- member left out is nil, and only ever the last).
local function object(pairs_)
  local out = {}
  for i, kv in ipairs(pairs_) do out[i] = json(kv[1]) .. ":" .. kv[2] end
  return "{" .. concat(out, ",") .. "}"
end

--- The plan as one line of JSON: { creates, updates, deletes, skipped,
--- kept, unchanged (a count), ignored }; each change's key an object of
--- the key's fields (see the top of this file); each value written by its
--- field's node, so that an empty list is [] and not {}. entry: the
--- resource's entry node.
function plan_text.json(p, entry)
  return plan_text.json_object(p, entry) .. "\n"
end

--- The same, without the line's end: to stand in a larger object.
function plan_text.json_object(p, entry)
  local function field_node(name) return entry.fields[name] end
  local knode = key_node(p, entry)
  local function key_of(i) return { "key", json(i.key_values, knode) } end
  local function id_item(i)
    return object({ key_of(i), { "id", json(i.id) }, i.reason and { "reason", json(i.reason) } or nil })
  end
  return object({
    { "creates", list_of(p.creates, function(i)
        return object({ key_of(i), { "fields", json(i.fields, entry) } })
      end) },
    { "updates", list_of(p.updates, function(i)
        return object({ key_of(i), { "id", json(i.id) }, { "changes", list_of(i.changes, function(ch)
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
  })
end

-- Is result what stopped an apply or refused it (an error, or the tool's
-- message), rather than its summary?
local function failed(result)
  return type(result) == "string" or errors.is_error(result)
end

local KINDS = { "creates", "updates", "deletes" }

--- What stopped an apply or refused it, as JSON: { message (the line the
--- tool says), kind, rule, status } (null where the error has none: a
--- message has none of them); "null" for a result that is no failure.
function plan_text.error_json(result)
  if not failed(result) then return "null" end
  local e = type(result) == "table" and result or {}
  return object({ { "message", json(type(result) == "string" and result or tostring(result)) },
                  { "kind", json(e.kind) }, { "rule", json(e.rule) }, { "status", json(e.status) } })
end

--- The counts of applying p: { created, updated, deleted } as apply
--- marked them done (see plan_text.apply_object), unchanged, skipped.
function plan_text.apply_counts(p)
  local outcome = p.outcome or {}
  local c = { created = 0, updated = 0, deleted = 0, unchanged = p:unchanged_count(), skipped = #p.skipped }
  for kind, count in pairs({ creates = "created", updates = "updated", deletes = "deleted" }) do
    for _, item in ipairs(p[kind]) do
      if outcome[item] == "done" then c[count] = c[count] + 1 end
    end
  end
  return c
end

--- Those counts as a JSON object, in that order.
function plan_text.counts_json(c)
  return object({ { "created", json(c.created) }, { "updated", json(c.updated) }, { "deleted", json(c.deleted) },
                  { "unchanged", json(c.unchanged) }, { "skipped", json(c.skipped) } })
end

--- What applying plan p did, as an object (see plan_text.apply_json),
--- without the line's end; head: members to put first, { { name, JSON
--- text }, ... } (a folder's resource, file and state).
function plan_text.apply_object(p, result, entry, head)
  local knode = key_node(p, entry)
  -- each change as apply left it (sync/apply.lua records it on the plan):
  -- done, in doubt, or not done (never sent, or refused before anything was)
  local outcome, new_ids = p.outcome or {}, p.new_ids or {}
  local done, doubt, left = {}, {}, {}
  for _, kind in ipairs(KINDS) do
    done[kind], doubt[kind], left[kind] = {}, {}, {}
    for _, item in ipairs(p[kind]) do
      local state = outcome[item]
      local into = (state == "done" and done) or (state == "in doubt" and doubt) or left
      into[kind][#into[kind] + 1] = item
    end
  end
  -- a create's id is the new entry's, once made (null where the answer
  -- gave none, and for one not made)
  local function changed(kind, list, made)
    return list_of(list, function(item)
      local id = item.id
      if kind == "creates" then id = made and new_ids[item] or nil end
      return object({ { "key", json(item.key_values, knode) }, { "id", json(id) } })
    end)
  end
  local function by_kind(of)
    return object({ { "creates", changed("creates", of.creates) }, { "updates", changed("updates", of.updates) },
                    { "deletes", changed("deletes", of.deletes) } })
  end
  local out = {}
  for i, kv in ipairs(head or {}) do out[i] = kv end
  for _, kv in ipairs({
    { "error", plan_text.error_json(result) },
    { "counts", plan_text.counts_json(plan_text.apply_counts(p)) },
    { "created", changed("creates", done.creates, true) },
    { "updated", changed("updates", done.updates, true) },
    { "deleted", changed("deletes", done.deletes, true) },
    { "in_doubt", by_kind(doubt) },
    { "remaining", by_kind(left) },
    { "plan", plan_text.json_object(p, entry) },
  }) do out[#out + 1] = kv end
  return object(out)
end

--- What applying plan p did, as one line of JSON (the tool's apply
--- --json): { error, counts = { created, updated, deleted, unchanged,
--- skipped }, created, updated, deleted (each change done: { key, id },
--- a create's id the new entry's), in_doubt and remaining ({ creates,
--- updates, deletes }: what a failed request may have done, and what was
--- not done), plan (plan_text.json's) }. result: p:apply()'s summary; or
--- the error that stopped it half-way, or refused it before anything was
--- sent (an error, or a message), as { message, kind, rule, status };
--- nil: apply was not called (nothing to do). entry: the resource's entry
--- node.
function plan_text.apply_json(p, result, entry)
  return plan_text.apply_object(p, result, entry) .. "\n"
end

return plan_text
