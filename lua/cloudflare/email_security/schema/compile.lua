-- Turns a resource description (resources/<name>.lua, generated from the
-- OpenAPI file) into what the checks and the request writer use, once per
-- description. A description with anything this engine does not know (a
-- type, a format, a key) is refused here, when it is loaded, never
-- accepted silently: a check that is not understood is not made.

local compile = {}

local TYPES = { string = true, integer = true, number = true, boolean = true, array = true, object = true }

-- The formats a value is checked against, and what a good one looks like.
compile.FORMATS = {
  uuid = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$",
  ["date-time"] = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d",
}

-- What each call's answer holds as `result`, from the OpenAPI file's
-- success answers (tools/gen_resources.lua stops when the file says
-- otherwise); resource.lua refuses an answer of any other shape as an http
-- error. items: the kind of an array's items; lists: the fields of an
-- object that are arrays of objects when present; nullable: null (or no
-- result) is taken too (a delete that names nothing still removed the
-- entry it was sent for).
compile.RESULTS = {
  list = { type = "array", items = "object" },
  delete_many = { type = "array", items = "object" },
  create = { type = "object" },
  get = { type = "object" },
  update = { type = "object" },
  replace = { type = "object" },
  verification = { type = "object" },
  delete = { type = "object", nullable = true },
  batch = { type = "object", lists = { "deletes", "patches", "posts", "puts" } },
}

-- A resource's calls, in the order people meet them (a prompt's
-- tostring, help(), the command line), and the ops each one needs: a
-- resource has a call when its description has every op the call needs.
-- Plan needs all four that apply sends or lists with.
local CALLS = { "list", "each", "all", "create", "get", "update", "replace", "delete", "batch", "verification",
                "delete_many", "plan" }
local NEEDS = { each = { "list" }, all = { "list" }, plan = { "list", "create", "update", "delete" } }

local function calls_of(ops)
  local calls, has = {}, {}
  for _, call in ipairs(CALLS) do
    local all_there = true
    for _, op in ipairs(NEEDS[call] or { call }) do
      if not ops[op] then all_there = false end
    end
    if all_there then calls[#calls + 1], has[call] = call, true end
  end
  return calls, has
end

local KEYS = {
  name = "string", type = "string", format = "string", nullable = "boolean", enum = "table",
  min_length = "number", max_length = "number", minimum = "number", maximum = "number",
  items = "table", min_items = "number", max_items = "number", unique_items = "boolean",
  properties = "table", required = "table", additional = "boolean", min_properties = "number",
  read_only = "boolean", deprecated = "boolean", end_of_life = "string", replaced_by = "string",
  assumed = "string",
}

local node

-- shared by every object node with no required field, never written to
local NOTHING_REQUIRED = setmetatable({}, { __newindex = function() error("NOTHING_REQUIRED is shared", 2) end })

-- The keys a check is made of, by type: any other on a node of that type
-- would be a check the validator does not make, and is refused.
local COMMON = { name = true, type = true, nullable = true, read_only = true, deprecated = true,
                 end_of_life = true, replaced_by = true, assumed = true }
local BY_TYPE = {
  string = { format = true, enum = true, min_length = true, max_length = true },
  integer = { minimum = true, maximum = true },
  number = { minimum = true, maximum = true },
  boolean = {},
  array = { items = true, min_items = true, max_items = true, unique_items = true },
  object = { properties = true, required = true, additional = true, min_properties = true },
}

-- where: a path in the description, for the error.
local function check_keys(raw, where)
  if not TYPES[raw.type] then error(where .. ": unknown type '" .. tostring(raw.type) .. "'", 0) end
  for k, v in pairs(raw) do
    local want = KEYS[k]
    if not want then error(where .. ": unknown description key '" .. tostring(k) .. "'", 0) end
    if type(v) ~= want then error(where .. "." .. k .. ": must be a " .. want, 0) end
    if not COMMON[k] and not BY_TYPE[raw.type][k] then
      error(where .. ": '" .. k .. "' on a " .. raw.type .. " is a check this engine does not make", 0)
    end
  end
  if raw.format and not compile.FORMATS[raw.format] then
    error(where .. ": unknown format '" .. raw.format .. "'", 0)
  end
end

--- One schema node: a copy with what the checks need precomputed. For an
--- object, `fields` maps each name to its node, `order` lists the names in
--- the order a body writes them and `position` gives each name's place in
--- it; `required` is always a list, empty when nothing is.
function node(raw, where)
  check_keys(raw, where)
  local n = {}
  for k, v in pairs(raw) do n[k] = v end
  if raw.enum then
    n.enum_set = {}
    for _, v in ipairs(raw.enum) do n.enum_set[v] = true end
  end
  if raw.type == "array" then
    if not raw.items then error(where .. ": an array without items", 0) end
    n.items = node(raw.items, where .. "[]")
  elseif raw.type == "object" then
    n.fields, n.order, n.position = {}, {}, {}
    for i, p in ipairs(raw.properties or {}) do
      if type(p.name) ~= "string" then error(where .. ": property " .. i .. " has no name", 0) end
      n.fields[p.name] = node(p, where .. "." .. p.name)
      n.order[i] = p.name
      n.position[p.name] = i
    end
    n.properties = nil
    n.required = n.required or NOTHING_REQUIRED
    for _, name in ipairs(raw.required or {}) do
      if not n.fields[name] then error(where .. ": required '" .. name .. "' is not a property", 0) end
    end
  end
  return n
end
compile.node = node

local cache = setmetatable({}, { __mode = "k" })

--- The compiled form of a description (called `desc` where the module
--- uses it): { name, path, id, id_node, ops, calls, has, entry, bodies =
--- { create = node, ... }, params = { name = node }, param_order }.
--- calls: the resource's calls in order ("list", "each", ..., "plan");
--- has: the same as a set.
function compile.resource(d)
  local done = cache[d]
  if done then return done end
  local where = "resource " .. tostring(d.name)
  if type(d.name) ~= "string" or type(d.path) ~= "string" or type(d.ops) ~= "table" then
    error(where .. ": a description needs name, path and ops", 0)
  end
  local desc = { name = d.name, path = d.path, id = d.id, ops = d.ops, bodies = {}, params = {}, param_order = {} }
  desc.calls, desc.has = calls_of(d.ops)
  if d.id then
    desc.id_node = node({ type = d.id.type or "string", format = d.id.format }, where .. " id")
  end
  for op_name, op in pairs(d.ops) do
    if op.body and not (d.bodies and d.bodies[op.body]) then
      error(where .. "." .. op_name .. ": no body '" .. op.body .. "'", 0)
    end
    if op.suffix:find("{id}", 1, true) and not d.id then
      error(where .. "." .. op_name .. ": an entry path without an id", 0)
    end
  end
  for body_name, raw in pairs(d.bodies or {}) do desc.bodies[body_name] = node(raw, where .. "." .. body_name) end
  if d.entry then desc.entry = node(d.entry, where .. ".entry") end
  if d.verification then desc.verification = node(d.verification, where .. ".verification") end
  for i, p in ipairs(d.list_params or {}) do
    desc.params[p.name] = node(p, where .. "?" .. tostring(p.name))
    desc.param_order[i] = p.name
  end
  cache[d] = desc
  return desc
end

return compile
