-- Writes the project's description of every Email Security settings
-- resource, lua/cloudflare/email_security/resources/<name>.lua, from
-- Cloudflare's OpenAPI file. The descriptions are committed; a spec runs
-- this again and fails when they differ, so a change upstream shows.
--
--   lua5.4 tools/gen_resources.lua [--inline] [OPENAPI_FILE [OUT_DIR]]
--
-- Defaults: ../shared/openapi/email-security.openapi.json, and the
-- repository's lua/cloudflare/email_security/resources. Needs lua-cjson.
--
-- Each file writes every distinct field node once, in a table F at its
-- top, and refers to it wherever the field is that same node (a body that
-- differs gets a node of its own): a change upstream to one field is then
-- one line of the diff. --inline writes each node where it is used
-- instead, as one nested table; the descriptions loaded are the same (a
-- spec compares them), and the engine copies every node it compiles, so
-- that a shared one is never written to.
--
-- Every part of the file that changes what a request must carry (its
-- parameters, wherever declared, its credentials, its server) either
-- reaches a description or stops the generator with a message naming the
-- operation and the part; so does an answer whose result is not the shape
-- the engine checks for. Last, each description is compiled as the module
-- will load it (schema/compile.lua): the files are written only when every
-- one loads, so a failed run leaves the committed ones as they were.
local cjson = require("cjson")

-- the engine's compile, from the repository this script is in
local root = (arg and arg[0] or ""):match("^(.-)/?tools/[^/]+$") or "."
package.path = (root == "" and "." or root) .. "/lua/?.lua;" .. package.path
local compile = require("cloudflare.email_security.schema.compile")

local args = { table.unpack(arg or {}) }
local INLINE = args[1] == "--inline"
if INLINE then table.remove(args, 1) end
local openapi_path = args[1] or os.getenv("EMAIL_SECURITY_OPENAPI") or "../shared/openapi/email-security.openapi.json"
local out_dir = args[2] or "lua/cloudflare/email_security/resources"
local PREFIX = "/accounts/{account_id}/email-security/settings/"

-- Every stop comes before the first file is written.
local function fail(message)
  io.stderr:write("gen_resources: ", message, " (nothing was written)\n")
  os.exit(1)
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then fail("cannot read " .. path) end
  local text = f:read("*a")
  f:close()
  return text
end

local doc = cjson.decode(read(openapi_path))
local null = cjson.null

local function resolve(node)
  local seen = 0
  while type(node) == "table" and node["$ref"] do
    local target = doc
    for part in node["$ref"]:gsub("^#/", ""):gmatch("[^/]+") do target = target[part] end
    if target == nil then fail("unresolved " .. node["$ref"]) end
    node = target
    seen = seen + 1
    if seen > 20 then fail("a $ref cycle") end
  end
  return node
end

local MONTHS = { January = 1, February = 2, March = 3, April = 4, May = 5, June = 6, July = 7,
                 August = 8, September = 9, October = 10, November = 11, December = 12 }

-- "End of life: July 1, 2026." -> "2026-07-01"
local function end_of_life(description)
  local month, day, year = (description or ""):match("End of life: (%a+) (%d+), (%d%d%d%d)")
  if not month or not MONTHS[month] then return nil end
  return ("%s-%02d-%02d"):format(year, MONTHS[month], tonumber(day))
end

-- The OpenAPI keywords a description keeps, and its own names for them.
-- Anything else that could change what a value may be is refused, so that
-- a new keyword upstream stops the generator instead of being dropped.
local KEEP = {
  type = "type", format = "format", nullable = "nullable", enum = "enum",
  minLength = "min_length", maxLength = "max_length", minimum = "minimum", maximum = "maximum",
  minItems = "min_items", maxItems = "max_items", uniqueItems = "unique_items",
  minProperties = "min_properties", readOnly = "read_only", deprecated = "deprecated",
}
local IGNORED = {
  description = true, example = true, examples = true, title = true, default = true,
  ["x-auditable"] = true, ["x-assembled-from"] = true,
}
local STRUCTURE = { properties = true, items = true, required = true, additionalProperties = true, allOf = true,
                    ["$ref"] = true }

local flatten

-- Merges node b over a (a later allOf part, or a property's own keys over
-- the schema it refers to): b's properties replace a's of the same name.
local function merge(a, b)
  local out = {}
  for k, v in pairs(a) do out[k] = v end
  for k, v in pairs(b) do
    if k == "properties" and a.properties then
      local props = {}
      for name, p in pairs(a.properties) do props[name] = p end
      for name, p in pairs(v) do props[name] = p end
      out.properties = props
    elseif k == "required" and a.required then
      local req, seen = {}, {}
      for _, list in ipairs({ a.required, v }) do
        for _, name in ipairs(list) do
          if not seen[name] then req[#req + 1], seen[name] = name, true end
        end
      end
      out.required = req
    else
      out[k] = v
    end
  end
  return out
end

-- An OpenAPI schema as one description node: refs followed, allOf merged.
function flatten(raw, where)
  raw = resolve(raw)
  local node = {}
  for _, part in ipairs(raw.allOf or {}) do node = merge(node, flatten(part, where)) end
  local own = {}
  for k, v in pairs(raw) do
    if k == "properties" then
      local props = {}
      for name, p in pairs(v) do props[name] = flatten(p, where .. "." .. name) end
      own.properties = props
    elseif k == "items" then
      own.items = flatten(v, where .. "[]")
    elseif k == "required" then
      own.required = v
    elseif k == "additionalProperties" then
      if v ~= false then fail(where .. ": additionalProperties other than false") end
      own.additional = false
    elseif k == "description" then
      own.end_of_life = end_of_life(v)
    elseif k == "x-assumed" then
      -- what no source states, assumed from the sibling resources
      own.assumed = v
    elseif k == "x-stainless-deprecation-message" then
      -- "Use `modified_at` instead."
      own.replaced_by = v:match("[Uu]se `([%w_]+)` instead")
    elseif KEEP[k] then
      own[KEEP[k]] = v
    elseif not IGNORED[k] and not STRUCTURE[k] then
      fail(where .. ": unknown schema keyword " .. k)
    end
  end
  node = merge(node, own)
  -- a null in an enum is JSON's way of saying nullable
  if node.enum then
    local list = {}
    for _, v in ipairs(node.enum) do
      if v == null then node.nullable = true else list[#list + 1] = v end
    end
    node.enum = list
  end
  if node.properties and not node.type then node.type = "object" end
  if node.type == nil then fail(where .. ": no type") end
  return node
end

-- Server-made fields may be marked required in an entity form; a client
-- never sends them, so they are never required of it.
local function drop_read_only_required(node)
  if node.required and node.properties then
    local req = {}
    for _, name in ipairs(node.required) do
      local p = node.properties[name]
      if not p then fail("required field " .. name .. " is not a property") end
      if not p.read_only then req[#req + 1] = name end
    end
    node.required = #req > 0 and req or nil
  end
  for _, p in pairs(node.properties or {}) do drop_read_only_required(p) end
  if node.items then drop_read_only_required(node.items) end
  return node
end

local function body_of(op, where)
  local rb = op.requestBody and resolve(op.requestBody)
  if not rb then return nil end
  local schema = rb.content and rb.content["application/json"] and rb.content["application/json"].schema
  if not schema then fail(where .. ": a request body that is not JSON") end
  return drop_read_only_required(flatten(schema, where))
end

-- The `result` of the operation's success answer, when it has one.
local function result_of(op, status, where)
  local r = op.responses and op.responses[status]
  r = r and resolve(r)
  local schema = r and r.content and r.content["application/json"] and r.content["application/json"].schema
  if not schema then return nil end
  local node = flatten(schema, where)
  return node.properties and node.properties.result
end

local function successes(op)
  local list = {}
  for code in pairs(op.responses or {}) do
    if code:find("^2%d%d$") then list[#list + 1] = tonumber(code) end
  end
  table.sort(list)
  return list
end

-- What a parameter may say besides its schema: anything else (style,
-- explode, deprecated...) would change what is sent or checked, and stops
-- the generator instead of being dropped. `required` is read apart.
local PARAMETER_KEYS = { name = true, ["in"] = true, schema = true, description = true, example = true,
                         examples = true, required = true }

-- An operation's parameters: its own, then those of its path item that
-- none of its own replaces (one with the same name and place: OpenAPI's
-- rule). Each is { p = resolved, on_path = declared on the path item }.
local function effective_parameters(item, op)
  local list, own = {}, {}
  for _, raw in ipairs(op.parameters or {}) do
    local p = resolve(raw)
    own[tostring(p["in"]) .. " " .. tostring(p.name)] = true
    list[#list + 1] = { p = p, on_path = false }
  end
  for _, raw in ipairs(item.parameters or {}) do
    local p = resolve(raw)
    if not own[tostring(p["in"]) .. " " .. tostring(p.name)] then list[#list + 1] = { p = p, on_path = true } end
  end
  return list
end

-- Checks every parameter of one operation (where: "things.get (GET
-- /path)"), and gives the list's query parameters as description nodes:
-- a parameter reaches the description (a list's query parameter, the
-- account and the entry's id in the path) or stops the generator.
-- path_params: the names the path holds.
local function parameters(call, params, where, path_params)
  local list = {}
  for _, entry in ipairs(params) do
    local p = entry.p
    local name, place = tostring(p.name), tostring(p["in"])
    local what = ("%s: %s parameter '%s'%s%s"):format(where, place, name, p.required == true and " (required)" or "",
                                                     entry.on_path and ", declared on the path item," or "")
    for k in pairs(p) do
      if not PARAMETER_KEYS[k] then fail(what .. ": unknown parameter keyword " .. k) end
    end
    if place == "path" then
      if not path_params[name] then fail(what .. " is not in the path") end
    elseif place == "query" then
      if call ~= "list" then fail(what .. " is not carried: only list takes query parameters") end
      if p.required == true then
        fail(what .. " is not carried: the engine takes every list parameter as optional")
      end
      local node = flatten(p.schema, where .. "?" .. name)
      node.name = name
      list[#list + 1] = node
    elseif place == "header" then
      fail(what .. " is not carried: the engine sends no header an operation asks for")
    else
      fail(what .. " is not carried: the engine sends no " .. place .. " parameter")
    end
  end
  return list
end

-- The credentials the client sends (config.lua): an API token as a bearer
-- token, or an email and a global API key in two headers. Each operation
-- must take both, as the client may hold either.
local SCHEMES = {
  api_token = { type = "http", scheme = "bearer" },
  api_email = { type = "apiKey", ["in"] = "header", name = "X-Auth-Email" },
  api_key = { type = "apiKey", ["in"] = "header", name = "X-Auth-Key" },
}
local CREDENTIALS = { { "api_token" }, { "api_email", "api_key" } }

local function check_security(op, where)
  local requirements = op.security or doc.security
  local function offered(names)
    for _, alternative in ipairs(requirements or {}) do
      local count, all = 0, true
      for scheme in pairs(alternative) do
        count = count + 1
        local known = false
        for _, n in ipairs(names) do known = known or n == scheme end
        all = all and known
      end
      if all and count == #names then return true end
    end
    return false
  end
  for _, names in ipairs(CREDENTIALS) do
    if not offered(names) then
      fail(("%s: its security does not take %s, which the client sends"):format(where, table.concat(names, " and ")))
    end
    for _, name in ipairs(names) do
      local scheme = doc.components and doc.components.securitySchemes and doc.components.securitySchemes[name]
      for k, v in pairs(SCHEMES[name]) do
        if type(scheme) ~= "table" or scheme[k] ~= v then
          fail(("%s: security scheme %s is not the %s the client sends"):format(where, name,
            SCHEMES[name].name or SCHEMES[name].scheme))
        end
      end
    end
  end
end

-- What an operation may hold besides what is read here: anything else
-- (servers, callbacks) would change where or how a request goes.
local HTTP_METHODS = { get = true, put = true, post = true, delete = true, options = true, head = true,
                       patch = true, trace = true }
local OPERATION_KEYS = { summary = true, description = true, operationId = true, tags = true, parameters = true,
                         requestBody = true, responses = true, security = true, deprecated = true,
                         externalDocs = true }
local PATH_ITEM_KEYS = { summary = true, description = true, parameters = true }
for method in pairs(HTTP_METHODS) do PATH_ITEM_KEYS[method] = true end

local function check_keys(t, known, where)
  for k in pairs(t) do
    if not known[k] and not tostring(k):find("^x%-") then
      fail(where .. ": " .. tostring(k) .. " is not carried by the engine")
    end
  end
end

-- A success answer's result against the shape the engine checks answers
-- for (compile.RESULTS): a file that says otherwise would have every
-- answer refused, or a wrong one taken.
local function check_result(call, op, where)
  local shape = compile.RESULTS[call]
  for _, code in ipairs(successes(op)) do
    local r = resolve(op.responses[tostring(code)])
    local schema = r.content and r.content["application/json"] and r.content["application/json"].schema
    if not schema then
      -- the one answer without a body the engine knows (resource.lua)
      if not (call == "verification" and code == 204) then
        fail(("%s: its %d answer has no JSON body, which the engine takes for an error"):format(where, code))
      end
    else
      local node = flatten(schema, where .. " " .. code)
      local result = node.properties and node.properties.result
      local function wrong(what)
        fail(("%s: the result of its %d answer is %s, where the engine takes %s"):format(where, code, what,
          shape.type .. (shape.items and " of " .. shape.items .. "s" or "")))
      end
      if not result then wrong("absent") end
      if result.type ~= shape.type then wrong("a " .. tostring(result.type)) end
      if shape.items and (not result.items or result.items.type ~= shape.items) then
        wrong("an array of " .. tostring(result.items and result.items.type) .. "s")
      end
      if shape.lists then
        local lists = {}
        for _, name in ipairs(shape.lists) do lists[name] = true end
        for name, p in pairs(result.properties or {}) do
          if not lists[name] then wrong("an object with a field " .. name .. " the engine does not check") end
          if p.type ~= "array" or not p.items or p.items.type ~= "object" then
            wrong("an object whose " .. name .. " is no array of objects")
          end
        end
      end
    end
  end
end

local function path_param(path)
  return path:match("{([%w_]+)}[^{]*$")
end

-- Which of the project's calls each (path suffix, method) is.
local CALLS = {
  { suffix = "", method = "get", call = "list" },
  { suffix = "", method = "post", call = "create", body = "create" },
  { suffix = "", method = "delete", call = "delete_many", body = "delete_many" },
  { suffix = "/batch", method = "post", call = "batch", body = "batch" },
  { suffix = "/{id}", method = "get", call = "get" },
  { suffix = "/{id}", method = "patch", call = "update", body = "update" },
  { suffix = "/{id}", method = "put", call = "replace", body = "replace" },
  { suffix = "/{id}", method = "delete", call = "delete" },
  { suffix = "/{id}/verification", method = "get", call = "verification" },
}

-- The client sends every request to config.DEFAULT_BASE_URL (or the
-- base_url a user gives): the file's server must be that one, or a change
-- of API version would pass unseen. Read from config.lua's text, its one
-- home, since config loads the C core and this script runs without it.
local function check_servers()
  local f = io.open((root == "" and "." or root) .. "/lua/cloudflare/email_security/config.lua", "rb")
  local config_text = f and f:read("*a") or ""
  if f then f:close() end
  local default = config_text:match('\nconfig%.DEFAULT_BASE_URL = "([^"]+)"')
  if not default then fail("cannot find config.DEFAULT_BASE_URL in lua/cloudflare/email_security/config.lua") end
  local servers = doc.servers
  if type(servers) ~= "table" or #servers ~= 1 or type(servers[1]) ~= "table" or servers[1].url ~= default
     or servers[1].variables ~= nil then
    local urls = {}
    for i, server in ipairs(type(servers) == "table" and servers or {}) do
      urls[i] = tostring(type(server) == "table" and server.url)
        .. (type(server) == "table" and server.variables ~= nil and " (with variables)" or "")
    end
    fail(("the file's servers are not the one the client sends to (%s): %s"):format(default,
      #urls > 0 and table.concat(urls, ", ") or "none"))
  end
end
check_servers()

local resources = {}
for path in pairs(doc.paths) do
  local name = path:sub(#PREFIX + 1):match("^([%w_]+)")
  if not path:find(PREFIX, 1, true) or not name then fail("a path outside " .. PREFIX .. ": " .. path) end
  resources[name] = resources[name] or { name = name, paths = {} }
  resources[name].paths[path] = doc.paths[path]
end

local function describe_resource(r)
  local collection = PREFIX .. r.name
  local d = { name = r.name, path = "/email-security/settings/" .. r.name, ops = {}, bodies = {} }
  for path, item in pairs(r.paths) do
    local suffix = path:sub(#collection + 1)
    local param = path_param(suffix)
    if param then
      if d.id and d.id.param ~= param then fail(r.name .. ": two id parameters") end
      d.id = d.id or { param = param }
      suffix = suffix:gsub("{" .. param .. "}", "{id}")
    end
    check_keys(item, PATH_ITEM_KEYS, path)
    -- the names the path holds, for its path parameters
    local path_params = {}
    for name in path:gmatch("{([^}]+)}") do path_params[name] = true end
    for method, op in pairs(item) do
      if HTTP_METHODS[method] then
        local call
        for _, c in ipairs(CALLS) do
          if c.suffix == suffix and c.method == method then call = c end
        end
        if not call then fail(("%s: %s %s is none of the project's calls"):format(r.name, method:upper(), path)) end
        local where = r.name .. "." .. call.call
        -- the operation, for what a request must carry
        local where_op = ("%s (%s %s)"):format(where, method:upper(), path)
        check_keys(op, OPERATION_KEYS, where_op)
        check_security(op, where_op)
        check_result(call.call, op, where_op)
        local params = parameters(call.call, effective_parameters(item, op), where_op, path_params)
        local entry = {
          method = method:upper(), suffix = suffix, operation_id = op.operationId,
          success = successes(op), permissions = op["x-api-token-group"],
          deprecated = op.deprecated or nil, assumed = op["x-assumed"],
        }
        if call.body then
          d.bodies[call.body] = body_of(op, where)
          if not d.bodies[call.body] then fail(where .. ": no request body") end
          entry.body = call.body
        end
        if call.call == "list" then d.list_params = params end
        if call.call == "get" then d.entry = result_of(op, "200", where) end
        if call.call == "verification" then d.verification = result_of(op, "200", where) end
        d.ops[call.call] = entry
      end
    end
  end
  if d.id then
    local id_schema
    for path, item in pairs(r.paths) do
      for _, raw in ipairs(item.parameters or {}) do
        local p = resolve(raw)
        if p.name == d.id.param and path:find("{" .. d.id.param .. "}", 1, true) then id_schema = p.schema end
      end
      for method, op in pairs(item) do
        if HTTP_METHODS[method] then
          for _, raw in ipairs(op.parameters or {}) do
            local p = resolve(raw)
            if p.name == d.id.param then id_schema = p.schema end
          end
        end
      end
    end
    if not id_schema then fail(r.name .. ": no schema for " .. d.id.param) end
    local node = flatten(id_schema, r.name .. "." .. d.id.param)
    d.id.type, d.id.format = node.type, node.format
  end
  return d
end

---------------------------------------------------------------------------
-- Writing Lua source: keys in a fixed order, so that the files are stable
---------------------------------------------------------------------------

local ORDER = {
  "name", "type", "format", "nullable", "enum", "min_length", "max_length", "minimum", "maximum",
  "items", "min_items", "max_items", "unique_items", "properties", "required", "additional",
  "min_properties", "read_only", "deprecated", "end_of_life", "replaced_by", "assumed",
  "method", "suffix", "body", "success", "operation_id", "permissions",
  "param", "path", "id", "ops", "entry", "bodies", "list_params", "verification",
}
local RANK = {}
for i, k in ipairs(ORDER) do RANK[k] = i end

local function is_list(t)
  return type(t) == "table" and (next(t) == nil or t[1] ~= nil)
end

local function literal(v)
  if type(v) == "string" then return ("%q"):format(v) end
  if math.type and math.type(v) == "float" and v == math.floor(v) and math.abs(v) < 2 ^ 53 then
    return ("%d"):format(v)
  end
  return tostring(v)
end

local function identifier(k)
  return k:find("^[%a_][%w_]*$") and k or ("[%q]"):format(k)
end

local emit

-- properties: a map in the OpenAPI file, a list ordered by name here, so
-- that request bodies are written in one stable order
local function properties_list(props)
  local names = {}
  for name in pairs(props) do names[#names + 1] = name end
  table.sort(names)
  local list = {}
  for i, name in ipairs(names) do
    local p = {}
    for k, v in pairs(props[name]) do p[k] = v end
    p.name = name
    list[i] = p
  end
  return list
end

-- The fields of one file, each distinct node once: `by_text` maps a node's
-- inline text to its reference (F.pattern), `defs` holds the definitions
-- in the order written, a node after the fields it holds. The first node
-- met of a name (the entry's, as the entry is written before the bodies)
-- is F.<name>; another node of that name is F.<name>_2, and so on.
local function new_fields()
  return { by_text = {}, defs = {}, taken = {} }
end

local function field_ref(fields, p)
  local text = emit(p, 0)
  local ref = fields.by_text[text]
  if ref then return ref end
  local base = tostring(p.name)
  local key, n = base, 1
  while fields.taken[key] do
    n = n + 1
    key = base .. "_" .. n
  end
  fields.taken[key] = true
  ref = key:find("^[%a_][%w_]*$") and "F." .. key or ("F[%q]"):format(key)
  -- its own fields first, so that each is defined before it is read
  local def = ref .. " = " .. emit(p, 0, fields)
  fields.by_text[text] = ref
  fields.defs[#fields.defs + 1] = def
  return ref
end

-- A list of fields (an object's properties, the list's parameters): with
-- `fields`, a reference to each node; without, the nodes themselves.
local function emit_fields(list, indent, fields)
  if not fields or #list == 0 then return emit(list, indent) end
  local pad = ("  "):rep(indent + 1)
  local parts = {}
  for i, p in ipairs(list) do parts[i] = field_ref(fields, p) end
  return "{\n" .. pad .. table.concat(parts, ",\n" .. pad) .. ",\n" .. ("  "):rep(indent) .. "}"
end

function emit(v, indent, fields)
  if type(v) ~= "table" then return literal(v) end
  local pad = ("  "):rep(indent + 1)
  if is_list(v) then
    if #v == 0 then return "{}" end
    local scalar = type(v[1]) ~= "table"
    local parts = {}
    for i, item in ipairs(v) do parts[i] = emit(item, indent + 1, fields) end
    if scalar then return "{ " .. table.concat(parts, ", ") .. " }" end
    return "{\n" .. pad .. table.concat(parts, ",\n" .. pad) .. ",\n" .. ("  "):rep(indent) .. "}"
  end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    local ra, rb = RANK[a] or 1000, RANK[b] or 1000
    if ra ~= rb then return ra < rb end
    return a < b
  end)
  local parts = {}
  for _, k in ipairs(keys) do
    local value = v[k]
    if k == "properties" then value = properties_list(value) end
    local field_list = k == "properties" or k == "list_params"
    parts[#parts + 1] = identifier(k) .. " = "
      .. (field_list and emit_fields(value, indent + 1, fields) or emit(value, indent + 1, fields))
  end
  return "{\n" .. pad .. table.concat(parts, ",\n" .. pad) .. ",\n" .. ("  "):rep(indent) .. "}"
end

local HEADER = [[
-- Generated by tools/gen_resources.lua from Cloudflare's OpenAPI file
-- (%s): do not edit. Run `make resources` to write it again.
]]

local FIELDS_HEADER = [[
-- Each field's node, once; the description below refers to it wherever
-- the field is this same node.
local F = {}
]]

-- One description as Lua source: its fields first (unless INLINE), then
-- the description that refers to them.
local function source(d)
  if INLINE then return "return " .. emit(d, 0) .. "\n" end
  local fields = new_fields()
  local body = emit(d, 0, fields)
  if #fields.defs == 0 then return "return " .. body .. "\n" end
  return FIELDS_HEADER .. table.concat(fields.defs, "\n") .. "\n\nreturn " .. body .. "\n"
end

local names = {}
for name in pairs(resources) do names[#names + 1] = name end
table.sort(names)
local source_name = openapi_path:match("[^/]+$")
local outputs = {}
for _, name in ipairs(names) do
  local text = HEADER:format(source_name) .. source(describe_resource(resources[name]))
  -- loaded from its own text and compiled, as the module will load the
  -- file: a description the engine refuses is never written
  local chunk, why = load(text, "=" .. name .. ".lua")
  if not chunk then fail(name .. ".lua would not load: " .. tostring(why)) end
  local ok, err = pcall(compile.resource, chunk())
  if not ok then fail(name .. ".lua would be refused by the engine: " .. tostring(err)) end
  outputs[#outputs + 1] = { name .. ".lua", text }
end
-- names.lua rather than init.lua: not every host's path has ?/init.lua
-- (nginx's lua_package_path is often written with ?.lua alone)
outputs[#outputs + 1] = { "names.lua", HEADER:format(source_name) .. "-- The resources, in alphabetical order.\nreturn "
  .. emit(names, 0) .. "\n" }
for _, out in ipairs(outputs) do
  local f, why = io.open(out_dir .. "/" .. out[1], "wb")
  if not f then fail("cannot write " .. tostring(why)) end
  f:write(out[2])
  f:close()
end
print(("gen_resources: %d resources written to %s"):format(#names, out_dir))
