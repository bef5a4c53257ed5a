-- One generic resource (create, get, update, delete, list, each) driven by
-- a schema table, so that each settings resource is data, not code. Misuse
-- of a call raises; anything the schema refuses comes back as
-- `nil, err` with err.kind == "invalid", and then nothing is sent.

local core = require("cloudflare.email_security.core")
local errors = require("cloudflare.email_security.errors")
local validate = require("cloudflare.email_security.validate")
local json_body = require("cloudflare.email_security.json_body")
local policy = require("cloudflare.email_security.policy")
local paging = require("cloudflare.email_security.paging")
local snapshot = require("cloudflare.email_security.snapshot")

local escape = core.escape_segment
local concat = table.concat

local Resource = {}
Resource.__index = Resource

local resource = {}

--- state: the client's internals; schema: a table from schema/.
function resource.new(state, schema)
  return setmetatable({
    _state = state,
    _schema = schema,
    _collection = "/accounts/" .. escape(state.account_id) .. schema.path,
  }, Resource)
end

-- Raises at the caller's call site, the way Lua's own libraries do.
local function check_self(self, method)
  if getmetatable(self) ~= Resource then
    error(("bad self to '%s' (call it as reg:%s(...), not reg.%s(...))")
      :format(method, method, method), 3)
  end
end

local function check_arg(method, n, value, expected, optional)
  if type(value) ~= expected and not (optional and value == nil) then
    error(("bad argument #%d to '%s' (%s expected, got %s)")
      :format(n, method, expected, type(value)), 3)
  end
end

-- The entry's path, or an invalid error when the id is not what the
-- schema allows (the error then shows the path template, never the id).
function Resource:_entry_path(method, id)
  local field, rule, message = validate.id(self._schema, id)
  if field then
    return nil, errors.invalid(field, rule, message, method,
                               self._collection .. "/{" .. self._schema.id_param .. "}")
  end
  -- a uuid has nothing to escape
  return self._collection .. "/" .. (self._schema.id_format == "uuid" and id or escape(id))
end

-- fields: the module's own copy (snapshot), which is both checked and sent.
function Resource:_body(method, path, fields, mode)
  local field, rule, message = validate.body(self._schema, fields, mode)
  if field then return nil, errors.invalid(field, rule, message, method, path) end
  return json_body(self._schema, fields)
end

--- Creates an entry; answers the entry as stored (HTTP 201).
function Resource:create(fields)
  check_self(self, "create")
  check_arg("create", 1, fields, "table")
  local body, err = self:_body("POST", self._collection, snapshot(fields), "create")
  if not body then return nil, err end
  return policy.call(self._state, "POST", self._collection, "", body, true)
end

function Resource:get(id)
  check_self(self, "get")
  check_arg("get", 1, id, "string")
  local path, err = self:_entry_path("GET", id)
  if not path then return nil, err end
  return policy.call(self._state, "GET", path, "")
end

--- Changes only the given fields (es.null clears a nullable one).
function Resource:update(id, fields)
  check_self(self, "update")
  check_arg("update", 1, id, "string")
  check_arg("update", 2, fields, "table")
  local path, err = self:_entry_path("PATCH", id)
  if not path then return nil, err end
  local body
  body, err = self:_body("PATCH", path, snapshot(fields), "update")
  if not body then return nil, err end
  return policy.call(self._state, "PATCH", path, "", body)
end

--- Answers { id = ... } for the entry that was removed.
function Resource:delete(id)
  check_self(self, "delete")
  check_arg("delete", 1, id, "string")
  local path, err = self:_entry_path("DELETE", id)
  if not path then return nil, err end
  return policy.call(self._state, "DELETE", path, "")
end

-- "?a=1&b=2" in the schema's parameter order, "" when there are none.
-- params: validated, so numbers are integers within 2^53, which %.0f
-- writes exactly.
local function query_string(schema, params)
  local parts = {}
  for _, spec in ipairs(schema.list_params) do
    local v = params[spec.name]
    if v ~= nil then
      if type(v) == "number" then v = ("%.0f"):format(v) end  -- 2, never "2.0"
      parts[#parts + 1] = spec.name .. "=" .. escape(tostring(v))
    end
  end
  return #parts > 0 and "?" .. concat(parts, "&") or ""
end

--- One page: the entries, and the envelope (result_info) as third value.
function Resource:list(params)
  check_self(self, "list")
  check_arg("list", 1, params, "table", true)
  params = params and snapshot(params) or {}
  local path = self._collection
  local field, rule, message = validate.params(self._schema, params)
  if field then return nil, errors.invalid(field, rule, message, "GET", path) end
  local result, err, envelope = policy.call(self._state, "GET", path,
                                            query_string(self._schema, params))
  if result and type(result) ~= "table" then
    return nil, errors.wrap({ kind = "http", message = "the list result is not an array",
                              errors = {}, messages = {} }, "GET", path), envelope
  end
  return result, err, envelope
end

--- Every entry of every page: `for entry, err in reg:each{...}`. On a
--- failure the loop gets `false, err` once, then ends.
function Resource:each(params)
  check_self(self, "each")
  check_arg("each", 1, params, "table", true)
  return paging(function(query) return self:list(query) end, params or {})
end

function Resource:__tostring()
  return "cloudflare.email_security resource " .. self._schema.name
end

resource.metatable = Resource
return resource
