-- Valid arguments for a resource's calls, made from its description (the
-- generated lua/cloudflare/email_security/resources/<name>.lua): a value
-- for every writable, current field of a body, the list parameters, a batch
-- with every list the endpoint takes. Used where a spec must exercise every
-- call of every resource without a hand-written table for each.
local examples = {}

examples.ID = "f174e90a-fafe-4643-bbbc-4a0ed4fc8415"

--- A valid value for a schema node; name: the field's, to pick a
--- plausible string (a domain, an IP range).
function examples.value(node, name)
  if node.enum then return node.enum[1] end
  local t = node.type
  if t == "object" then
    local out = {}
    for _, p in ipairs(node.properties or {}) do
      if not p.read_only and not p.deprecated then out[p.name] = examples.value(p, p.name) end
    end
    return out
  end
  if t == "array" then
    local list = {}
    for i = 1, math.max(1, node.min_items or 1) do list[i] = examples.value(node.items, name) end
    return list
  end
  if t == "boolean" then return false end
  if t == "integer" then return node.minimum or 1 end
  if node.format == "uuid" then return examples.ID end
  if name == "ip_restrictions" then return "192.0.2.0/24" end
  local s = (name and name:find("domain")) and "example.com" or "example-" .. tostring(name)
  if node.max_length and #s > node.max_length then s = s:sub(1, node.max_length) end
  return s
end

--- A body with only the fields the node requires (for an entry that is
--- plain: no directory link, say, which would make it read-only).
function examples.required(node)
  local out = {}
  for _, name in ipairs(node.required or {}) do
    for _, p in ipairs(node.properties) do
      if p.name == name then out[name] = examples.value(p, name) end
    end
  end
  return out
end

--- The list parameters, each with a valid value.
function examples.list_params(d)
  local params = {}
  for _, p in ipairs(d.list_params or {}) do
    if p.name == "page" then params.page = 1
    elseif p.name == "per_page" then params.per_page = 5
    else params[p.name] = examples.value(p, p.name) end
  end
  return params
end

--- A batch with one item in every list the endpoint takes; id: the entry
--- the patch, put and delete name.
function examples.batch(d, id)
  id = id or examples.ID
  local fields = {}
  for _, p in ipairs(d.bodies.batch.properties) do fields[p.name] = p end
  local spec = {}
  if fields.posts then spec.posts = { examples.value(d.bodies.create, "post") } end
  if fields.patches then
    local name, value = next(examples.value(d.bodies.update, "patch"))
    spec.patches = { { id = id, [name] = value } }
  end
  if fields.puts then
    local put = examples.value(fields.puts.items, "put")
    put.id = id
    spec.puts = { put }
  end
  spec.deletes = { id }
  return spec
end

--- Entry i of a resource (its generated description): the fields a create
--- needs, with key fields that differ from entry to entry.
function examples.entry(name, i)
  local e = examples.required(require("cloudflare.email_security.resources." .. name).bodies.create)
  if e.pattern then e.pattern = ("p%d.example.com"):format(i) end
  if e.email then e.email = ("user%d@example.com"):format(i) end
  if e.domain then e.domain = ("d%d.example.com"):format(i) end
  if e.name then e.name = ("entry %d"):format(i) end
  return e
end

return examples
