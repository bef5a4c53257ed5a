-- Words about the resources for people: the REPL's help() and the
-- generated reference (tools/gen_reference.lua) both come from here, and
-- both from the descriptions the module itself runs on.

local names = require("cloudflare.email_security.resources.names")
local compile = require("cloudflare.email_security.schema.compile")

local help = {}

--- A schema node as words: "string, 1 to 256 characters, one of `A`, `B`".
function help.describe(n)
  local t = n.type
  if t == "array" then
    t = "list of " .. help.describe(n.items)
    if n.min_items and n.max_items then t = t .. (", %d to %d items"):format(n.min_items, n.max_items)
    elseif n.min_items then t = t .. (", at least %d item%s"):format(n.min_items, n.min_items == 1 and "" or "s")
    elseif n.max_items then t = t .. (", at most %d items"):format(n.max_items) end
    return t
  end
  if t == "object" then
    local fields = {}
    for _, p in ipairs(n.properties or {}) do fields[#fields + 1] = "`" .. p.name .. "`" end
    return "object (" .. table.concat(fields, ", ") .. ")"
  end
  local parts = { n.format and (t .. " (" .. n.format .. ")") or t }
  if n.min_length and n.max_length then parts[#parts + 1] = ("%d to %d characters"):format(n.min_length, n.max_length)
  elseif n.max_length then parts[#parts + 1] = ("at most %d characters"):format(n.max_length)
  elseif n.min_length then parts[#parts + 1] = ("at least %d characters"):format(n.min_length) end
  if n.minimum and n.maximum then parts[#parts + 1] = ("%s to %s"):format(n.minimum, n.maximum)
  elseif n.minimum then parts[#parts + 1] = ("at least %s"):format(n.minimum)
  elseif n.maximum then parts[#parts + 1] = ("at most %s"):format(n.maximum) end
  if n.enum then
    local values = {}
    for i, v in ipairs(n.enum) do values[i] = "`" .. tostring(v) .. "`" end
    parts[#parts + 1] = "one of " .. table.concat(values, ", ")
  end
  return table.concat(parts, ", ")
end

-- Each call as a person writes it, with its arguments.
local SIGNATURES = {
  list = "list(params)", each = "each(params)", all = "all(params)", create = "create(fields)", get = "get(id)",
  update = "update(id, fields)", replace = "replace(id, fields)", delete = "delete(id)",
  batch = "batch{ posts, patches, puts, deletes }", verification = "verification(id)",
  delete_many = "delete_many{ id, ... }", plan = "plan(desired, opts)",
}

local function description(name)
  return require("cloudflare.email_security.resources." .. name)
end

-- the calls the compiler found the description to have, in its order
local function calls_of(d)
  local out = {}
  for i, call in ipairs(compile.resource(d).calls) do out[i] = SIGNATURES[call] end
  return out
end

-- A resource's fields, a line each with its type, limits and what a call
-- may do with it; null_word: how the caller writes null.
local function field_lines(d, lines, null_word)
  lines[#lines + 1] = "fields:"
  local required = {}
  for _, r in ipairs(d.bodies.create and d.bodies.create.required or {}) do required[r] = true end
  -- the limits live in the bodies: a field as create (else update) takes it
  local written = {}
  for _, body in ipairs({ d.bodies.update or {}, d.bodies.create or {} }) do
    for _, p in ipairs(body.properties or {}) do written[p.name] = p end
  end
  for _, entry_field in ipairs(d.entry and d.entry.properties or {}) do
    local p = entry_field.read_only and entry_field or written[entry_field.name] or entry_field
    local note = p.read_only and "  (read-only)" or p.deprecated and "  (retired)"
      or required[p.name] and "  (required to create)" or ""
    -- null where the body says so: an update may refuse what a create takes
    local update = d.bodies.update and d.bodies.update.properties or {}
    local nullable = ""
    for _, u in ipairs(update) do
      if u.name == p.name and u.nullable then nullable = ", or " .. null_word .. " in an update" end
    end
    lines[#lines + 1] = ("  %-28s %s%s%s"):format(p.name, help.describe(p), nullable, note)
  end
  return lines
end

--- Text for the REPL's help(what): what is nil (an overview), a resource of
--- a client, or a resource's name.
function help.text(what)
  local name = what
  if type(what) == "table" then
    -- loaded here: the reference's generator reads help.describe without the C core
    local desc = require("cloudflare.email_security.resource").internals(what)
    if desc then name = desc.name end
  end
  if name == nil then
    local lines = { "Resources, each a field of a client (cf.allow_policies, ...):" }
    for _, n in ipairs(names) do
      lines[#lines + 1] = ("  %-28s %s"):format(n, table.concat(calls_of(description(n)), "  "))
    end
    lines[#lines + 1] = "help(cf.domains) shows a resource's fields; doc/resources.md has them all."
    lines[#lines + 1] = "es.null clears a nullable field in an update; an error prints as its one line."
    return table.concat(lines, "\n")
  end
  local ok, d = pcall(description, tostring(name))
  if not ok or type(d) ~= "table" or type(d.ops) ~= "table" then
    return "help: no resource " .. tostring(name) .. " (es.resources lists them)"
  end
  local lines = field_lines(d, { ("%s: %s"):format(d.name, table.concat(calls_of(d), "  ")) }, "null (es.null)")
  local params = {}
  for _, p in ipairs(d.list_params or {}) do params[#params + 1] = p.name end
  lines[#lines + 1] = "list parameters: " .. table.concat(params, ", ")
  return table.concat(lines, "\n")
end

--- A resource's fields as the command-line tool's --help gives them:
--- no Lua call, null written as the tool takes it (field=null).
function help.tool_text(name)
  return table.concat(field_lines(description(name), {}, "null"), "\n")
end

return help
