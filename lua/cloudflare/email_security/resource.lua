-- One resource's calls, built from its description (resources/<name>.lua,
-- generated from the OpenAPI file): the calls schema/compile.lua found it
-- to have, and no other (the impersonation registry has no batch, so
-- cf.impersonation_registry.batch is nil). Misuse of a call raises;
-- anything the description refuses comes back as `nil, err` with
-- err.kind == "invalid", and then nothing is sent.

local core = require("cloudflare.email_security.core")
local errors = require("cloudflare.email_security.errors")
local compile = require("cloudflare.email_security.schema.compile")
local validate = require("cloudflare.email_security.schema.validate")
local write_body = require("cloudflare.email_security.schema.body").write
local send = require("cloudflare.email_security.scheduler").call
local paging = require("cloudflare.email_security.paging")
local concurrent = require("cloudflare.email_security.concurrent")
local snapshot = require("cloudflare.email_security.snapshot")
local array = require("cloudflare.email_security.array")
local number_text = require("cloudflare.email_security.numbers").text

local escape, null = core.escape_segment, core.null
local concat, getmetatable, next, rawget, type = table.concat, getmetatable, next, rawget, type
local RESULTS = compile.RESULTS

local resource = {}

-- Raises at the caller's call site, the way Lua's own libraries do: a call
-- made with a dot, on another resource that lacks it, or on a closed client.
local function check_self(self, method)
  local mt = getmetatable(self)
  if type(mt) ~= "table" or not mt.__resource then
    error(("bad self to '%s' (call it as r:%s(...), not r.%s(...))"):format(method, method, method), 3)
  end
  if not self._desc.has[method] then
    error(("bad self to '%s' (%s has no %s)"):format(method, self._desc.name, method), 3)
  end
  if self._state.transport:is_closed() then
    error("attempt to use a closed cloudflare.email_security client", 3)
  end
end

local function check_arg(method, n, value, expected, optional)
  if type(value) ~= expected and not (optional and value == nil) then
    error(("bad argument #%d to '%s' (%s expected, got %s)"):format(n, method, expected, type(value)), 3)
  end
end

local Resource = {}

-- An op's suffix ("/{id}/verification") as the text before and after its
-- id, split once per op; false for an op whose path has no id. Every call
-- asks, so the search for "{id}" is made once per op, not once per call.
local splits = setmetatable({}, { __mode = "k" })
local function split_suffix(op)
  local s = splits[op]
  if s == nil then
    local at = op.suffix:find("{id}", 1, true)
    s = at and { op.suffix:sub(1, at - 1), op.suffix:sub(at + 4) } or false
    splits[op] = s
  end
  return s
end

-- The path of an op, or an invalid error when the id is not what the
-- description allows (the error then shows the path template, never the id).
function Resource:_path(op, method, id)
  local split = split_suffix(op)
  if not split then return self._collection .. op.suffix end
  local desc = self._desc
  local field, rule, message = validate.value(desc.id_node, id, desc.id.param)
  if field then
    return nil, errors.invalid(field, rule, message, method,
                               self._collection .. op.suffix:gsub("{id}", "{" .. desc.id.param .. "}"))
  end
  -- a uuid has nothing to escape
  return self._collection .. split[1] .. (desc.id.format == "uuid" and id or escape(id)) .. split[2]
end

-- The JSON body for an op from the caller's table, read once (snapshot),
-- checked, and written from that same copy; or nil and an invalid error.
function Resource:_body(op, path, value)
  local node = self._desc.bodies[op.body]
  local field, rule, message = validate.body(node, value, self._desc.name)
  if field then
    if rule == "min_properties" and op.body == "update" then
      message = message .. " (to clear a nullable field, give it es.null: nil is no value at all)"
    end
    return nil, errors.invalid(field, rule, message, op.method, path)
  end
  return write_body(node, value)
end

-- The ops whose answer can be large, asked for compressed (gzip): where
-- the answer is one entry, the header costs more than it saves.
local COMPRESSED = { list = true, batch = true, delete_many = true }

-- A request's options for the op called name (request.lua), made once per
-- op and kind: what the API needs of the token, for a 401 or 403 to say,
-- compressed (its answer is asked for gzip), and once (sent at most once:
-- a create, a batch with posts).
local plain_opts, once_opts = setmetatable({}, { __mode = "k" }), setmetatable({}, { __mode = "k" })
local function opts_for(name, op, once)
  local cache = once and once_opts or plain_opts
  local opts = cache[op]
  if not opts then
    opts = { permissions = op.permissions, compressed = COMPRESSED[name], once = once or nil }
    cache[op] = opts
  end
  return opts
end

-- The JSON kind of an answer's result (array.kind), and also "absent".
-- lua-cjson decodes {} and [] to one empty table: the C decoder says which
-- on the envelope's metatable (envelope.c); an empty table nothing says
-- more of is "empty", taken for either.
local function result_kind(v, envelope)
  -- every answer passes here: a non-empty table, the common result, is
  -- told apart without a call (as array.kind tells it)
  if type(v) == "table" then
    local k = next(v)
    if k ~= nil then return type(k) == "number" and "array" or "object" end
  end
  local kind = array.kind(v)
  if kind ~= "empty" or type(envelope) ~= "table" then return kind end
  -- the decoder gives an empty table for a null or absent result
  local raw = rawget(envelope, "result")
  if raw == nil then return "absent" end
  if raw == null then return "null" end
  local mt = getmetatable(envelope)
  return type(mt) == "table" and rawget(mt, "empty_result") or "empty"
end

local function is_kind(kind, want)
  return kind == want or kind == "empty"
end

local A_KIND = { object = "an object", array = "an array", null = "null", absent = "absent", string = "a string",
                 number = "a number", boolean = "a boolean" }

local function a_kind(kind)
  return A_KIND[kind] or kind
end

-- Whether the items of list (an array) are all of kind `want`, or what
-- is wrong: "item 3 is a string".
local function bad_item(list, want, where)
  for i = 1, #list do
    local v = list[i]
    -- the common item, an object, told apart without a call (a page holds
    -- a thousand)
    if not (want == "object" and type(v) == "table" and type(next(v)) == "string") then
      local kind = array.kind(v)
      if not is_kind(kind, want) then return ("%s %d is %s, not %s"):format(where, i, a_kind(kind), a_kind(want)) end
    end
  end
end

-- nil when an answer's result has the shape the call `name` returns
-- (compile.RESULTS), else what is wrong, in words.
local function misshapen(name, result, envelope)
  local shape = RESULTS[name]
  local kind = result_kind(result, envelope)
  if shape.nullable and (kind == "null" or kind == "absent") then return nil end
  if not is_kind(kind, shape.type) then
    return ("the answer's result is %s, where %s answers %s%s"):format(a_kind(kind), name, a_kind(shape.type),
      shape.items and " of " .. shape.items .. "s" or "")
  end
  if shape.items then
    local bad = bad_item(result, shape.items, "the answer's result item")
    if bad then return bad end
  end
  -- most shapes have no lists: no loop (and no empty table made) for them
  local lists = shape.lists
  if not lists then return nil end
  for _, field in ipairs(lists) do
    local list = result[field]
    if list ~= nil then
      local list_kind = array.kind(list)
      if not is_kind(list_kind, "array") then
        return ("the answer's result.%s is %s, where %s answers an array of objects"):format(field, a_kind(list_kind),
                                                                                           name)
      end
      local bad = bad_item(list, "object", "the answer's result." .. field .. " item")
      if bad then return bad end
    end
  end
end

-- result, err, envelope as a call returns them: an answer of a shape the
-- call does not return becomes an http error that keeps the envelope.
-- may_exist: the call (a create, a batch with posts) has happened all the
-- same.
local function checked(name, method, path, may_exist, result, err, envelope)
  if err then return nil, err, envelope end
  local wrong = misshapen(name, result, envelope)
  if wrong then
    return nil, errors.wrap(errors.new("http", wrong, { may_exist = may_exist or nil }), method, path), envelope
  end
  return result, nil, envelope
end

-- once: sent at most once (a create); gone: a DELETE, for which a 404
-- after a try that may have acted counts as done (see request.lua)
local function call(self, name, id, value, once, gone)
  local op = self._desc.ops[name]
  local path, err = self:_path(op, op.method, id)
  if not path then return nil, err end
  local body
  if op.body then
    body, err = self:_body(op, path, value)
    if not body then return nil, err end
  end
  return checked(name, op.method, path, once,
                 send(self._state, op.method, path, "", body, opts_for(name, op, once), gone and id or nil))
end

--- Creates an entry; answers the entry as stored.
function Resource:create(fields)
  check_self(self, "create")
  check_arg("create", 1, fields, "table")
  return call(self, "create", nil, snapshot(fields), true)
end

function Resource:get(id)
  check_self(self, "get")
  check_arg("get", 1, id, "string")
  return call(self, "get", id)
end

--- Changes only the given fields (es.null clears a nullable one).
function Resource:update(id, fields)
  check_self(self, "update")
  check_arg("update", 1, id, "string")
  check_arg("update", 2, fields, "table")
  return call(self, "update", id, snapshot(fields))
end

--- Sets every field of an entry (PUT): those not given go back to their
--- defaults, so give them all.
function Resource:replace(id, fields)
  check_self(self, "replace")
  check_arg("replace", 1, id, "string")
  check_arg("replace", 2, fields, "table")
  return call(self, "replace", id, snapshot(fields))
end

--- Answers { id = ... } for the entry that was removed. A 404 after a try
--- that may have acted is that try's work, and counts as done.
function Resource:delete(id)
  check_self(self, "delete")
  check_arg("delete", 1, id, "string")
  local result, err, envelope = call(self, "delete", id, nil, nil, true)
  -- an answer whose result is null still says which entry went
  if result and result.id == nil then result.id = id end
  return result, err, envelope
end

--- The TXT record to publish for a domain, and its status; on HTTP 204
--- (verified by other means, no record needed) { verified = true }.
function Resource:verification(id)
  check_self(self, "verification")
  check_arg("verification", 1, id, "string")
  local result, err, envelope = call(self, "verification", id)
  if err and err.kind == "http" and err.status == 204 then return { verified = true }, nil, nil end
  return result, err, envelope
end

-- Lists of ids: strings, or { id = ... } tables as answers hold them.
local function id_items(list)
  local out = {}
  for i = 1, #list do
    local v = list[i]
    if type(v) == "string" then v = { id = v } end
    out[i] = v
  end
  -- what is not 1..n stays, for the check to name
  for k, v in next, list do
    if out[k] == nil then out[k] = v end
  end
  return out
end

--- Removes several entries at once (the collection DELETE, which
--- Cloudflare marks deprecated: prefer batch{ deletes = ids }).
function Resource:delete_many(ids)
  check_self(self, "delete_many")
  check_arg("delete_many", 1, ids, "table")
  return call(self, "delete_many", nil, id_items(snapshot(ids)))
end

local BATCH_ARRAYS = { "posts", "patches", "puts", "deletes" }

--- { posts = {...}, patches = {...}, puts = {...}, deletes = { id, ... } }:
--- all applied by the API at once, or none. Absent lists are sent empty.
function Resource:batch(spec)
  check_self(self, "batch")
  check_arg("batch", 1, spec, "table")
  local op = self._desc.ops.batch
  local node = self._desc.bodies.batch
  local body = snapshot(spec)
  if type(body.deletes) == "table" then body.deletes = id_items(body.deletes) end
  local items = 0
  for _, name in ipairs(BATCH_ARRAYS) do
    if node.fields[name] then
      if body[name] == nil then body[name] = {} end
      if type(body[name]) == "table" then items = items + #body[name] end
    end
  end
  local path = self._collection .. op.suffix
  local json, err = self:_body(op, path, body)
  if not json then return nil, err end
  if items == 0 then
    return nil, errors.invalid("batch", "min_items", "has nothing to do: every list is empty", op.method, path)
  end
  -- posts create entries: such a batch is sent at most once, as a create
  local once = type(body.posts) == "table" and #body.posts > 0
  return checked("batch", op.method, path, once,
                 send(self._state, op.method, path, "", json, opts_for("batch", op, once)))
end

local function query_value(v)
  if type(v) == "number" then return number_text(v) end
  return escape(tostring(v))
end

-- "?a=1&b=2" in the description's parameter order, a list as one pair per
-- item, "" when there are none. params: checked, so numbers are integers
-- within 2^53, which numbers.text writes exactly: 2, never "2.0".
local function query_string(desc, params)
  local parts = {}
  for _, name in ipairs(desc.param_order) do
    local v = params[name]
    if type(v) == "table" then
      for i = 1, #v do parts[#parts + 1] = name .. "=" .. query_value(v[i]) end
    elseif v ~= nil then
      parts[#parts + 1] = name .. "=" .. query_value(v)
    end
  end
  return #parts > 0 and "?" .. concat(parts, "&") or ""
end

--- One page: the entries, and the envelope (result_info) as third value.
function Resource:list(params)
  check_self(self, "list")
  check_arg("list", 1, params, "table", true)
  params = params and snapshot(params) or {}
  local desc = self._desc
  local path = self._collection .. desc.ops.list.suffix
  local field, rule, message = validate.params(desc, params)
  if field then return nil, errors.invalid(field, rule, message, "GET", path) end
  return checked("list", "GET", path, false,
                 send(self._state, "GET", path, query_string(desc, params), nil, opts_for("list", desc.ops.list)))
end

-- The walk of every page (paging.lua), whose errors name the list's path;
-- with concurrency above 1, pages ahead are fetched as tasks, up to
-- `ahead` pages (in flight and waiting to be walked; default concurrency).
local function walk(self, params, ahead, by_page)
  local state = self._state
  local function list(query) return self:list(query) end
  local prefetch
  -- (a transport that sends one request at a time gains nothing by it)
  if state.config.concurrency > 1 and state.transport.start then
    prefetch = {
      window = ahead or state.config.concurrency,
      start = function(query) return concurrent.spawn_later(state, list, query) end,
      finish = function(task) return concurrent.join(state, task) end,
      cancel = concurrent.cancel,
      let_go = function() return concurrent.let_go(state) end,
    }
  end
  return paging(list, params or {}, "GET", self._collection .. self._desc.ops.list.suffix, prefetch, by_page)
end

--- Every entry of every page: `for entry, err in r:each{...}`. On a
--- failure the loop gets `false, err` once, then ends.
function Resource:each(params)
  check_self(self, "each")
  check_arg("each", 1, params, "table", true)
  return walk(self, params)
end

--- Every entry of every page as one list, or nil and the error: a loop
--- that cannot swallow the failure.
function Resource:all(params)
  check_self(self, "all")
  check_arg("all", 1, params, "table", true)
  local out = {}
  -- the list holds every page in the end: more pages ahead cost nothing
  -- it would not hold anyway, and keep requests going out while the ones
  -- already here are read
  local n = 0
  -- called by hand, not by a generic for: on Lua 5.1 a for's iterator
  -- cannot yield, and inside a task (apply's listing) the walk does; a
  -- page at a time, not an entry at a time
  local next_page = walk(self, params, 2 * self._state.config.concurrency, true)
  while true do
    local page, err = next_page()
    if page == nil then return out end
    if not page then return nil, err end
    for i = 1, #page do out[n + i] = page[i] end
    n = n + #page
  end
end

--- What it takes to make the entries equal to `desired` (a list of
--- entries, or es.read_entries(path)), changing nothing: see sync/plan.lua.
function Resource:plan(desired, opts)
  check_self(self, "plan")
  check_arg("plan", 1, desired, "table")
  check_arg("plan", 2, opts, "table", true)
  return require("cloudflare.email_security.sync.plan").make(self, desired, opts)
end

-- One metatable per description, holding only the calls it has (which
-- the compiler decided: desc.calls).
local metatables = setmetatable({}, { __mode = "k" })

local function metatable_for(desc)
  local mt = metatables[desc]
  if mt then return mt end
  local methods = {}
  for _, name in ipairs(desc.calls) do methods[name] = Resource[name] end
  methods._path, methods._body = Resource._path, Resource._body
  local line = ("cloudflare.email_security resource %s: %s (help(cf.%s) for its fields)")
    :format(desc.name, concat(desc.calls, " "), desc.name)
  mt = {
    __index = methods,
    __resource = true,
    -- one line at a prompt: what it is and what it can do
    __tostring = function() return line end,
  }
  metatables[desc] = mt
  return mt
end

--- state: the client's internals; description: a table from resources/.
function resource.new(state, description)
  local desc = compile.resource(description)
  return setmetatable({
    _state = state,
    _desc = desc,
    _collection = "/accounts/" .. escape(state.account_id) .. desc.path,
  }, metatable_for(desc))
end

--- The module's own view of a resource, for the files that work with one
--- from outside (sync/, help.lua, es.read_entries): its compiled
--- description (schema/compile.lua) and the path of its collection
--- ("/accounts/<id>/email-security/settings/<name>"), and its client's
--- internals (client.internals). nil when r is no resource. Callers of the
--- module have the methods, never these.
function resource.internals(r)
  local mt = getmetatable(r)
  if type(mt) ~= "table" or rawget(mt, "__resource") ~= true then return nil end
  return r._desc, r._collection, r._state
end

return resource
