#!/usr/bin/env lua5.4
-- A stateful emulator of Cloudflare's Email Security settings API, all eight
-- resources of it (driven by their generated descriptions in
-- lua/cloudflare/email_security/resources/): a real HTTP/1.1 server on
-- 127.0.0.1, for the specs and for trying the client by hand. The client
-- under test blocks inside libcurl, so this runs as its own process;
-- spec/support/emulator_process.lua starts and stops it.
--
--   lua5.4 spec/support/emulator.lua [--host 127.0.0.1] [--port 8787] [--port-file F]
--       [--token T] [--email E --key K] [--idle-exit SECONDS] [--max-log N] [--verbose]
--       [--parent PID]   (exits when that process is gone)
--
-- One process, one coroutine per connection and a select() loop, so that a
-- delayed answer on one connection never holds up another. Besides the API
-- under /client/v4, control routes under /__emulator/ reset state, seed
-- entries, show what reached the server and inject faults (see CONTROL and
-- FAULT_KINDS below).

local socket = require("socket")
local cjson = require("cjson")

local null = cjson.null

---------------------------------------------------------------------------
-- Options
---------------------------------------------------------------------------

local USAGE = "usage: lua5.4 emulator.lua [--host 127.0.0.1] [--port N] [--port-file FILE] [--token T]"
  .. " [--email E --key K] [--idle-exit SECONDS] [--max-log N] [--verbose] [--banner] [--parent PID]"

local function die(message)
  io.stderr:write("emulator: ", message, "\n", USAGE, "\n")
  os.exit(2)
end

-- The kind of each option's value; "flag" takes none.
local OPTION_KINDS = { host = "string", port = "number", port_file = "string", token = "string",
                       email = "string", key = "string", idle_exit = "number", max_log = "number",
                       verbose = "flag", help = "flag", banner = "flag", parent = "number" }

local opts = { host = "127.0.0.1", port = 8787, token = "test-token", email = "user@example.com",
               key = "test-key", idle_exit = 300, max_log = 20000 }
do
  local i = 1
  while i <= #arg do
    local name = arg[i]:match("^%-%-([%w%-]+)$")
    name = name and name:gsub("%-", "_")
    local kind = name and OPTION_KINDS[name]
    if not kind then die("unknown argument " .. arg[i]) end
    if kind == "flag" then
      opts[name] = true
      i = i + 1
    else
      local value = arg[i + 1]
      if value == nil then die("--" .. arg[i]:sub(3) .. " needs a value") end
      if kind == "number" then
        value = tonumber(value)
        if not value or value < 0 then die("--" .. arg[i]:sub(3) .. " needs a number >= 0") end
      end
      opts[name] = value
      i = i + 2
    end
  end
  if opts.help then
    io.stdout:write(USAGE, "\n")
    os.exit(0)
  end
  -- Its state and faults are open to anyone who can connect, so it must
  -- never be reachable from another machine.
  if opts.host ~= "127.0.0.1" then die("the emulator listens on 127.0.0.1 only, not " .. opts.host) end
  if opts.port ~= math.floor(opts.port) or opts.port > 65535 then die("--port must be 0..65535") end
  if opts.idle_exit <= 0 then die("--idle-exit must be above 0: the emulator never runs forever") end
end

local function log(...)
  if opts.verbose then io.stderr:write(string.format(...), "\n") end
end

---------------------------------------------------------------------------
-- JSON. lua-cjson 2.1 writes an empty table as {} and every decoded number
-- as a float, so answers are written here: lists stay lists when empty and
-- integral numbers print without a fraction.
---------------------------------------------------------------------------

-- Tables that must be written as JSON arrays even when empty.
local LIST = setmetatable({}, { __mode = "k" })
local function list_of(t)
  LIST[t] = true
  return t
end

local function is_list(t)
  if LIST[t] then return true end
  local n = #t
  if n == 0 then return false end
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 or k > n then return false end
  end
  return true
end

local encode

local function encode_number(v)
  if math.type(v) == "integer" then return string.format("%d", v) end
  if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return string.format("%d", math.tointeger(v)) end
  return cjson.encode(v)
end

function encode(v)
  local t = type(v)
  if v == nil or v == null then return "null" end
  if t == "number" then return encode_number(v) end
  if t ~= "table" then return cjson.encode(v) end
  local parts = {}
  if is_list(v) then
    for i = 1, #v do parts[i] = encode(v[i]) end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  for k, x in pairs(v) do parts[#parts + 1] = cjson.encode(tostring(k)) .. ":" .. encode(x) end
  -- sorted keys keep answers byte-for-byte repeatable between runs
  table.sort(parts)
  return "{" .. table.concat(parts, ",") .. "}"
end


-- Integral floats become integers, at any depth, so later checks and
-- math.type agree with what the client sent.
local function integers_in(t)
  for k, v in pairs(t) do
    if math.type(v) == "float" and v == math.floor(v) and math.abs(v) < 2 ^ 63 then
      t[k] = math.tointeger(v)
    elseif type(v) == "table" then
      integers_in(v)
    end
  end
  return t
end

-- The raw body as JSON of the kind wanted ("object", or "array" for a
-- body that is a list): the table, or nil and "malformed" (not JSON at
-- all) or "wrong_kind" (valid JSON of another kind).
local FIRST_CHAR = { object = "^%s*{", array = "^%s*%[" }
local function decode_json(raw, kind)
  local ok, value = pcall(cjson.decode, raw)
  if not ok then return nil, "malformed" end
  -- cjson gives a table for arrays and objects alike; the first byte tells them apart
  if type(value) ~= "table" or not raw:find(FIRST_CHAR[kind]) then return nil, "wrong_kind" end
  return integers_in(value)
end

local function decode_object(raw) return decode_json(raw, "object") end

---------------------------------------------------------------------------
-- The resources. Each one's routes, bodies, entries and list parameters
-- come from its generated description in
-- lua/cloudflare/email_security/resources/ (plain data). The checks below
-- are the emulator's own and never the module's schema code, so that a
-- mistake there cannot hide on both sides of the wire.
---------------------------------------------------------------------------

-- The repository's lua/ directory, found from this file's own path, so the
-- emulator runs from any current directory.
local HERE = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./"
local RESOURCE_DIR = HERE .. "../../lua/cloudflare/email_security/resources/"

local RESOURCES = {}     -- name -> description
for _, name in ipairs(dofile(RESOURCE_DIR .. "names.lua")) do
  RESOURCES[name] = dofile(RESOURCE_DIR .. name .. ".lua")
end
-- The resource of a control call that names none: the one the emulator
-- served alone at first, so older specs keep working unchanged.
local DEFAULT_RESOURCE = "impersonation_registry"

-- What the descriptions cannot say. The noun of a 404 where the derived
-- one ("Allow policy", "Domain") is not what the API says:
local NOUNS = { impersonation_registry = "Impersonation registry entry", url_ignore_patterns = "URL ignore pattern" }

local function noun_of(res)
  if NOUNS[res.name] then return NOUNS[res.name] end
  local words = res.name:gsub("_", " "):gsub("ies$", "y"):gsub("s$", "")
  return (words:gsub("^%l", string.upper))
end

-- Rules of the API beyond its schema, per resource: a function of the
-- stored entry that answers a refusal of any change to it, or nil. The
-- registry does not let a client change what a directory sync owns.
local function is_synced(e)
  return e.provenance ~= "A1S_INTERNAL" or (e.directory_id ~= nil and e.directory_id ~= null)
end
local CHANGE_RULES = {
  impersonation_registry = function(e)
    if is_synced(e) then return 400, 1010, "Directory-synced entries can't be updated" end
  end,
}

local ACCOUNT_ID = "^[%w_%-]+$"
local UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"
local DATE_TIME = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d"

local accounts = {}      -- resource name -> account id -> list of entries in creation order
local faults = {}        -- pending faults, first match wins
local requests = {}      -- the request log
local sequence = 0       -- creation order, the tie-break that keeps sorting stable

math.randomseed()

local function uuid4()
  local b = {}
  for i = 1, 16 do b[i] = math.random(0, 255) end
  b[7] = (b[7] & 0x0f) | 0x40     -- version 4
  b[9] = (b[9] & 0x3f) | 0x80     -- RFC 4122 variant
  local hex = string.format(string.rep("%02x", 16), table.unpack(b))
  return ("%s-%s-%s-%s-%s"):format(hex:sub(1, 8), hex:sub(9, 12), hex:sub(13, 16), hex:sub(17, 20), hex:sub(21, 32))
end

local function ray_id()
  return string.format("%016x-EMU", math.random(0))
end

-- Microseconds that never repeat or go back, so an update right after a
-- create still gets a later modified_at.
local last_stamp = 0
local function now_rfc3339()
  local us = math.floor(socket.gettime() * 1e6)
  if us <= last_stamp then us = last_stamp + 1 end
  last_stamp = us
  local sec = us // 1000000
  return os.date("!%Y-%m-%dT%H:%M:%S", sec) .. string.format(".%06dZ", us % 1000000)
end

local function entries_of(res, acct)
  local per_account = accounts[res.name]
  if not per_account then
    per_account = {}
    accounts[res.name] = per_account
  end
  local list = per_account[acct]
  if not list then
    list = {}
    per_account[acct] = list
  end
  return list
end

local function find(res, acct, id)
  for i, e in ipairs(entries_of(res, acct)) do
    if e.id == id then return e, i end
  end
end

-- Without the bookkeeping fields that start with "_".
local function public(e)
  local copy = {}
  for k, v in pairs(e) do
    if type(k) ~= "string" or k:sub(1, 1) ~= "_" then copy[k] = v end
  end
  return copy
end

local function public_list(entries)
  local out = list_of({})
  for i, e in ipairs(entries) do out[i] = public(e) end
  return out
end

local function property(node, name)
  for _, p in ipairs(node.properties or {}) do
    if p.name == name then return p end
  end
end

local function contains(list, v)
  for _, x in ipairs(list) do
    if x == v then return true end
  end
  return false
end

-- A decoded JSON array: keys 1..n only. An empty table passes as both an
-- array and an object, because cjson decodes [] and {} alike.
local function array_like(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n == #t
end

---------------------------------------------------------------------------
-- Checking a value against a schema node. Each problem is one string,
-- "where: rule", where `where` is the field's path (posts[2].pattern); the
-- first problem found is the answer, and fields are looked at in name
-- order so that a body with several problems always gets the same one.
---------------------------------------------------------------------------

local check

local function plural(n, word)
  if n == 1 then return "one " .. word end
  return n .. " " .. word .. "s"
end

local function object_problem(node, v, where)
  if type(v) ~= "table" or (next(v) ~= nil and array_like(v)) then return where .. ": must be a JSON object" end
  local names = {}
  for name in pairs(v) do
    if type(name) ~= "string" then return where .. ": must be a JSON object" end
    names[#names + 1] = name
  end
  table.sort(names)
  -- the top level names its fields bare, as the registry always has
  local prefix = where == "body" and "" or where .. "."
  for _, name in ipairs(names) do
    local p = property(node, name)
    if p and p.read_only then return prefix .. name .. ": read-only field" end
    if not p then return prefix .. name .. ": unknown field" end
    local problem = check(p, v[name], prefix .. name)
    if problem then return problem end
  end
  for _, name in ipairs(node.required or {}) do
    if v[name] == nil then return prefix .. name .. ": required" end
  end
  if node.min_properties and #names < node.min_properties then
    return where .. ": at least " .. plural(node.min_properties, "field") .. " is required"
  end
end

local function string_problem(node, v, where)
  if type(v) ~= "string" then return where .. ": must be a string" end
  local len = utf8.len(v)
  if not len then return where .. ": must be valid UTF-8" end
  -- lengths count UTF-8 characters, not bytes
  if node.min_length and len < node.min_length then
    return ("%s: must be at least %s"):format(where, plural(node.min_length, "character"))
  end
  if node.max_length and len > node.max_length then
    return ("%s: must be at most %s"):format(where, plural(node.max_length, "character"))
  end
  if node.enum and not contains(node.enum, v) then
    return where .. ": must be one of " .. table.concat(node.enum, ", ")
  end
  if node.format == "uuid" and not v:find(UUID) then return where .. ": must be a UUID" end
  if node.format == "date-time" and not v:find(DATE_TIME) then return where .. ": must be an RFC 3339 date-time" end
end

local function number_problem(node, v, where)
  if node.type == "integer" and math.type(v) ~= "integer" then return where .. ": must be an integer" end
  if type(v) ~= "number" then return where .. ": must be a number" end
  if node.minimum and v < node.minimum then return ("%s: must be at least %s"):format(where, node.minimum) end
  if node.maximum and v > node.maximum then return ("%s: must be at most %s"):format(where, node.maximum) end
  if node.enum and not contains(node.enum, v) then
    return where .. ": must be one of " .. table.concat(node.enum, ", ")
  end
end

local function array_problem(node, v, where)
  if type(v) ~= "table" or not array_like(v) then return where .. ": must be a list" end
  if node.min_items and #v < node.min_items then
    return ("%s: must have at least %s"):format(where, plural(node.min_items, "item"))
  end
  if node.max_items and #v > node.max_items then
    return ("%s: must have at most %s"):format(where, plural(node.max_items, "item"))
  end
  for i, x in ipairs(v) do
    local problem = node.items and check(node.items, x, ("%s[%d]"):format(where, i))
    if problem then return problem end
  end
end

local CHECKS = {
  object = object_problem,
  string = string_problem,
  integer = number_problem,
  number = number_problem,
  array = array_problem,
  boolean = function(_, v, where)
    if type(v) ~= "boolean" then return where .. ": must be a boolean" end
  end,
}

-- nil when v fits the node, else the problem.
function check(node, v, where)
  if v == null then
    if node.nullable then return nil end
    return where .. ": must not be null"
  end
  local by_type = CHECKS[node.type]
  if by_type then return by_type(node, v, where) end
end

---------------------------------------------------------------------------
-- Entries: fields the server makes, defaults, and values stored in the
-- shape their schema says (so that an empty list is written as [])
---------------------------------------------------------------------------

-- A plausible value for a field nobody gave: a fresh id, the time for a
-- time stamp, null where the schema allows it, else the first of an enum
-- or the type's own zero. `body_node`, when given, is the same field in
-- the request body, whose bounds the entry's node sometimes lacks.
local function default_of(node, stamp, body_node)
  if node.name == "id" and node.format == "uuid" then return uuid4() end
  if node.format == "date-time" and not node.nullable then return stamp end
  if node.nullable then return null end
  if node.enum then return node.enum[1] end
  local t = node.type
  if t == "boolean" then return false end
  if t == "integer" or t == "number" then return node.minimum or (body_node and body_node.minimum) or 0 end
  if t == "string" then return "" end
  if t == "array" then return list_of({}) end
  if t == "object" then
    local o = {}
    for _, p in ipairs(node.properties or {}) do o[p.name] = default_of(p, stamp) end
    return o
  end
  return null
end

-- v, with every array in it marked as one, as far as the node describes it.
local function shaped(node, v)
  if type(v) ~= "table" or not node then return v end
  if node.type == "array" then
    list_of(v)
    for _, x in ipairs(v) do shaped(node.items, x) end
  elseif node.type == "object" then
    for _, p in ipairs(node.properties or {}) do shaped(p, v[p.name]) end
  end
  return v
end

-- Stores one field; null where the entity cannot hold null (a create body
-- may allow it where the entry does not) stores the default instead.
-- `body_node`: the field's node in the request body, as for default_of.
local function store(res, e, name, v, stamp, body_node)
  local p = property(res.entry, name)
  if p and v == null and not p.nullable then v = default_of(p, stamp, body_node) end
  e[name] = shaped(p, v)
end

-- Deprecated fields that have a replacement (last_modified by modified_at,
-- is_sender by is_trusted_sender) hold the replacement's value unless the
-- client set them itself in this request.
local function follow_replacements(res, e, given)
  for _, p in ipairs(res.entry.properties) do
    local by = p.replaced_by
    if by and given[p.name] == nil and (given[by] ~= nil or by == "modified_at") and e[by] ~= nil then
      e[p.name] = e[by]
    end
  end
end

local function touch(res, e, given)
  if property(res.entry, "modified_at") then e.modified_at = now_rfc3339() end
  follow_replacements(res, e, given)
end

-- A new entry from fields already checked (or seeded as given, with any
-- "_" bookkeeping fields kept out of sight).
local function new_entry(res, fields)
  sequence = sequence + 1
  local stamp = now_rfc3339()
  local create = res.bodies.create or {}
  local e = {}
  for _, p in ipairs(res.entry.properties) do
    e[p.name] = default_of(p, stamp, property(create, p.name))
  end
  for k, v in pairs(fields) do store(res, e, k, v, stamp, property(create, k)) end
  -- as if modified_at had been set, so that last_modified starts equal to it
  local given = { modified_at = true }
  for k in pairs(fields) do given[k] = true end
  follow_replacements(res, e, given)
  e._seq = sequence
  return e
end

-- PATCH: the given fields change, the others stay.
local function merge(res, e, fields)
  local stamp = now_rfc3339()
  for k, v in pairs(fields) do
    if k ~= "id" then store(res, e, k, v, stamp) end
  end
  touch(res, e, fields)
end

-- PUT: every field the body node describes is set, to its default when
-- not given; the fields it does not describe (computed ones, and those a
-- replace cannot change, such as a domain's name) stay.
local function replace(res, e, node, fields)
  local stamp = now_rfc3339()
  for _, p in ipairs(node.properties) do
    if not p.read_only and p.name ~= "id" then
      local v = fields[p.name]
      if v == nil then v = default_of(property(res.entry, p.name) or p, stamp, p) end
      store(res, e, p.name, v, stamp, p)
    end
  end
  touch(res, e, fields)
end
---------------------------------------------------------------------------
-- Answers: { status, body, headers = {...}, json = false for a custom body }
---------------------------------------------------------------------------

local REASONS = {
  [100] = "Continue", [200] = "OK", [201] = "Created", [204] = "No Content", [301] = "Moved Permanently",
  [302] = "Found", [304] = "Not Modified", [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden",
  [404] = "Not Found", [405] = "Method Not Allowed", [408] = "Request Timeout", [409] = "Conflict",
  [411] = "Length Required", [413] = "Payload Too Large", [422] = "Unprocessable Entity",
  [429] = "Too Many Requests", [431] = "Request Header Fields Too Large", [500] = "Internal Server Error",
  [502] = "Bad Gateway", [503] = "Service Unavailable", [504] = "Gateway Timeout", [520] = "Unknown Error",
  [521] = "Web Server Is Down", [522] = "Connection Timed Out", [524] = "A Timeout Occurred",
}

local function envelope_ok(status, result, info)
  local body = '{"success":true,"errors":[],"messages":[],"result":' .. encode(result)
  if info then body = body .. ',"result_info":' .. encode(info) end
  return { status = status, body = body .. "}" }
end

local function envelope_error(status, code, message)
  return { status = status, body = '{"success":false,"errors":[' .. encode({ code = code, message = message })
    .. '],"messages":[],"result":null}' }
end

local function not_found_route() return envelope_error(404, 7003, "No route for the URI") end
local function not_allowed() return envelope_error(405, 7001, "Method not allowed") end
local function invalid(message) return envelope_error(422, 1002, message) end

-- 404 code 1003 for an id the account does not have; `where` names the
-- item of a batch or a list that held it.
local function entry_not_found(res, where)
  local message = noun_of(res) .. " not found"
  if where then message = message .. ": " .. where end
  return envelope_error(404, 1003, message)
end

-- The request body the op takes, decoded and checked against its node:
-- the value, or nil and the answer refusing it.
local function request_body(node, raw)
  local kind = node.type == "array" and "array" or "object"
  local value, why = decode_json(raw, kind)
  if not value then
    if why == "wrong_kind" then
      return nil, invalid(kind == "array" and "body: must be a list" or "body: must be a JSON object")
    end
    return nil, envelope_error(400, 1001, "Malformed JSON in request body")
  end
  local problem = check(node, value, "body")
  if problem then return nil, invalid(problem) end
  return value
end

local function url_decode(s)
  s = s:gsub("+", " ")
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- name -> the last value given, and name -> every value given in order
-- (a list parameter repeats its name: domain=a&domain=b).
local function parse_query(q)
  local last, all = {}, {}
  for pair in q:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    k, v = url_decode(k), url_decode(v)
    last[k] = v
    all[k] = all[k] or {}
    table.insert(all[k], v)
  end
  return last, all
end

---------------------------------------------------------------------------
-- Lists
---------------------------------------------------------------------------

-- Parameters with a meaning of their own; every other one is a filter.
local PAGING = { page = true, per_page = true, search = true, order = true, direction = true }

local function text_of(e, field)
  local v = e[field]
  if type(v) == "string" then return v end
  return ""
end

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

local function list_entries(res, acct, query, all)
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
  for _, e in ipairs(entries_of(res, acct)) do
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
  return envelope_ok(200, public_list(items), { page = page, per_page = per_page, count = #items,
                                                total_count = #matching })
end

---------------------------------------------------------------------------
-- The operations, by the names the descriptions give them. Each takes
-- (resource, op, account, id, query, every query value, raw body).
---------------------------------------------------------------------------

local OPERATIONS = {}

-- A refusal by the resource's own rules (CHANGE_RULES) as an answer, or nil.
local function change_refused(res, e)
  local rule = CHANGE_RULES[res.name]
  local status, code, message
  if rule then status, code, message = rule(e) end
  if status then return envelope_error(status, code, message) end
end

local function remove_entry(res, acct, e)
  local _, index = find(res, acct, e.id)
  if index then table.remove(entries_of(res, acct), index) end
end

function OPERATIONS.list(res, _, acct, _, query, all) return list_entries(res, acct, query, all) end

function OPERATIONS.create(res, op, acct, _, _, _, raw)
  local fields, refusal = request_body(res.bodies[op.body], raw)
  if not fields then return refusal end
  local e = new_entry(res, fields)
  table.insert(entries_of(res, acct), e)
  return envelope_ok(op.success[1], public(e))
end

function OPERATIONS.get(res, op, acct, id)
  local e = find(res, acct, id)
  if not e then return entry_not_found(res) end
  return envelope_ok(op.success[1], public(e))
end

-- PATCH and PUT: the entry must exist, then the body must pass, then the
-- resource's own rules.
local function change(apply)
  return function(res, op, acct, id, _, _, raw)
    local e = find(res, acct, id)
    if not e then return entry_not_found(res) end
    local node = res.bodies[op.body]
    local fields, refusal = request_body(node, raw)
    if not fields then return refusal end
    refusal = change_refused(res, e)
    if refusal then return refusal end
    apply(res, e, node, fields)
    return envelope_ok(op.success[1], public(e))
  end
end
OPERATIONS.update = change(function(res, e, _, fields) merge(res, e, fields) end)
OPERATIONS.replace = change(replace)

function OPERATIONS.delete(res, op, acct, id)
  local e = find(res, acct, id)
  if not e then return entry_not_found(res) end
  remove_entry(res, acct, e)
  return envelope_ok(op.success[1], { id = e.id })
end

-- The collection DELETE: a list of {id}, all of which must exist (each
-- once), else nothing is removed.
function OPERATIONS.delete_many(res, op, acct, _, _, _, raw)
  local items, refusal = request_body(res.bodies[op.body], raw)
  if not items then return refusal end
  local doomed, removed = {}, list_of({})
  for i, item in ipairs(items) do
    local e = not doomed[item.id] and find(res, acct, item.id)
    if not e then return entry_not_found(res, ("body[%d].id"):format(i)) end
    doomed[item.id] = e
  end
  for i, item in ipairs(items) do
    remove_entry(res, acct, doomed[item.id])
    removed[i] = { id = item.id }
  end
  return envelope_ok(op.success[1], removed)
end

-- The parts of a batch in the order they are applied, and what applying
-- one item does: `e` is the entry an item names by id (nil for posts),
-- `node` the part's schema node. Each returns the item's answer.
local BATCH_PARTS = {
  { name = "posts", apply = function(res, acct, _, item)
      local e = new_entry(res, item)
      table.insert(entries_of(res, acct), e)
      return public(e)
    end },
  { name = "patches", apply = function(res, _, e, item)
      merge(res, e, item)
      return public(e)
    end },
  { name = "puts", apply = function(res, _, e, item, node)
      replace(res, e, node.items, item)
      return public(e)
    end },
  { name = "deletes", apply = function(res, acct, e)
      remove_entry(res, acct, e)
      return { id = e.id }
    end },
}

-- All or nothing: every item is checked first, against the state it would
-- meet (an id deleted earlier in the batch is gone), and only a batch with
-- no refusal is applied.
function OPERATIONS.batch(res, op, acct, _, _, _, raw)
  local node = res.bodies[op.body]
  local body, refusal = request_body(node, raw)
  if not body then return refusal end
  local targets, deleted = {}, {}
  for _, part in ipairs(BATCH_PARTS) do
    targets[part.name] = {}
    if part.name ~= "posts" then
      for i, item in ipairs(body[part.name] or {}) do
        local e = not deleted[item.id] and find(res, acct, item.id)
        if not e then return entry_not_found(res, ("%s[%d].id"):format(part.name, i)) end
        if part.name == "deletes" then
          deleted[item.id] = true
        else
          refusal = change_refused(res, e)
          if refusal then return refusal end
        end
        targets[part.name][i] = e
      end
    end
  end
  local result = {}
  for _, part in ipairs(BATCH_PARTS) do
    local part_node = property(node, part.name)
    if part_node then
      local answers = list_of({})
      for i, item in ipairs(body[part.name]) do
        answers[i] = part.apply(res, acct, targets[part.name][i], item, part_node)
      end
      result[part.name] = answers
    end
  end
  return envelope_ok(op.success[1], result)
end

-- A domain's DNS TXT check: 200 with what to publish, or 204 (no body) for
-- one seeded as verified by other means (`_verified_otherwise = true`).
-- The record's name and value are made up, stable per domain.
function OPERATIONS.verification(res, op, acct, id)
  local e = find(res, acct, id)
  if not e then return entry_not_found(res) end
  if e._verified_otherwise then return { status = 204, body = "", json = false } end
  return envelope_ok(op.success[1], {
    status = (e.status ~= nil and e.status ~= null) and e.status or "pending",
    txt_record_name = "_cf-email-security." .. text_of(e, "domain"),
    txt_record_value = "cf-email-security-verification=" .. e.id:gsub("%-", ""),
    last_checked_at = now_rfc3339(),
  })
end

---------------------------------------------------------------------------
-- Routes under /client/v4, built from the descriptions: one per path, with
-- the op each method runs there
---------------------------------------------------------------------------

local function literal(s) return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")) end

local ROUTES = {}
do
  local by_pattern = {}
  for name, res in pairs(RESOURCES) do
    for op_name, op in pairs(res.ops) do
      if OPERATIONS[op_name] then
        local pattern = "^/client/v4/accounts/([^/]+)" .. literal(res.path)
          .. literal(op.suffix):gsub("{id}", "([^/]+)") .. "$"
        local route = by_pattern[pattern]
        if not route then
          route = { pattern = pattern, resource = res, suffix = op.suffix, methods = {} }
          by_pattern[pattern] = route
          ROUTES[#ROUTES + 1] = route
        end
        route.methods[op.method] = op_name
      else
        log("%s: no emulation of op %s", name, op_name)
      end
    end
  end
  -- paths without an id first: /batch must not be taken for an id
  table.sort(ROUTES, function(a, b)
    local x, y = a.suffix:find("{id}", 1, true) ~= nil, b.suffix:find("{id}", 1, true) ~= nil
    if x ~= y then return y end
    return a.pattern < b.pattern
  end)
end

-- The scheme a request used, and the refusal when it is missing or wrong.
local function authenticate(headers)
  local auth = headers["authorization"]
  local email, key = headers["x-auth-email"], headers["x-auth-key"]
  if auth then
    if auth == "Bearer " .. opts.token then return "bearer" end
    return "bearer", envelope_error(403, 10000, "Authentication error")
  end
  if email or key then
    if email == opts.email and key == opts.key then return "key" end
    return "key", envelope_error(403, 10000, "Authentication error")
  end
  return "none", envelope_error(401, 10000, "Authentication error")
end

local function api(method, path, query, headers, raw)
  for _, route in ipairs(ROUTES) do
    local acct, id = path:match(route.pattern)
    if acct then
      local _, refusal = authenticate(headers)
      if refusal then return refusal end
      acct = url_decode(acct)
      if #acct > 32 or not acct:find(ACCOUNT_ID) then return not_found_route() end
      local op_name = route.methods[method]
      if not op_name then return not_allowed() end
      local res = route.resource
      local last, all = parse_query(query)
      return OPERATIONS[op_name](res, res.ops[op_name], acct, id and url_decode(id), last, all, raw)
    end
  end
  return not_found_route()
end

---------------------------------------------------------------------------
-- FAULT_KINDS: what each fault field does, in one place. A fault is
-- consumed by the next API request it matches (`method` exactly, `path` as
-- a plain substring), `times` times. Each kind acts at one stage:
--   before  -- before the API handles the request: may wait (delay_ms),
--              drop the connection (close), or answer in its place (status)
--   after   -- the request has acted; its answer may be replaced
--   shape   -- how the answer goes on the wire: headers, encoding, framing,
--              pauses, cuts
-- A new kind is one more row here (and its fields in FAULT_FIELDS).
---------------------------------------------------------------------------

local running = true

-- The listening socket, closed for a while by the refuse_ms fault; the
-- scheduler below opens it again on the same port.
local server
local listen_again_at

local function pause_listening(ms)
  if server then
    server:close()
    server = nil
  end
  listen_again_at = socket.gettime() + ms / 1000
end

local function sleep_ms(ms)
  if ms and ms > 0 then coroutine.yield("sleep", socket.gettime() + ms / 1000) end
end

local function gzip(data)
  local file = os.tmpname()
  local pipe = assert(io.popen("gzip -c -n > '" .. file .. "'", "w"))
  pipe:write(data)
  pipe:close()
  local f = assert(io.open(file, "rb"))
  local packed = f:read("a")
  f:close()
  os.remove(file)
  return packed
end

-- The fault's own answer: its body goes out verbatim, with no
-- Content-Type unless the fault's headers give one.
local function custom_answer(f)
  return { status = f.status, body = f.body or "", json = false }
end

-- Fields that pick the requests a fault applies to. `reused = true`: only a
-- request that arrives on a connection which already served one (where
-- libcurl would send it again by itself if the connection died unanswered).
local MATCH_FIELDS = { method = "string", path = "string", times = "number", reused = "boolean" }

-- `type` is what the field must hold; `with` names the fields that only
-- modify this kind.
local FAULT_KINDS = {
  { field = "delay_ms", type = "number", stage = "before", run = function(f) sleep_ms(f.delay_ms) end },
  { field = "close", type = "boolean", stage = "before", run = function(_, ctx) ctx.drop = true end },
  -- stop listening for that long once this request is done with: new
  -- connections are refused (a client's reconnect meets a closed port)
  { field = "refuse_ms", type = "number", stage = "before", run = function(f, ctx) ctx.refuse_ms = f.refuse_ms end },
  { field = "status", type = "number", with = { body = "string" }, stage = "before", run = function(f, ctx)
      if not f.after then ctx.answer = custom_answer(f) end
    end },
  { field = "success_false", type = "boolean", with = { code = "number", message = "string" }, stage = "after",
    run = function(f, ctx)
      ctx.answer = envelope_error(200, f.code or 1000, f.message or "Emulated failure")
    end },
  { field = "after", type = "boolean", stage = "after", run = function(f, ctx)
      if f.status then ctx.answer = custom_answer(f) end
    end },
  { field = "headers", type = "table", stage = "shape", run = function(f, reply)
      for k, v in pairs(f.headers) do reply.set(k, v) end
    end },
  { field = "gzip", type = "boolean", stage = "shape", run = function(_, reply)
      reply.body = gzip(reply.body)
      reply.set("Content-Encoding", "gzip")
    end },
  { field = "chunked", type = "boolean", with = { chunk_size = "number" }, stage = "shape", run = function(f, reply)
      reply.chunk_size = f.chunk_size or 7
    end },
  { field = "body_delay_ms", type = "number", stage = "shape", run = function(f, reply)
      reply.body_delay_ms = f.body_delay_ms
    end },
  { field = "truncate_to", type = "number", stage = "shape", run = function(f, reply)
      reply.truncate_to = f.truncate_to
      reply.keep = false
    end },
  -- closing with SO_LINGER 0 sends a TCP reset instead of a FIN
  { field = "reset", type = "boolean", stage = "shape", run = function(_, reply)
      reply.reset = true
      reply.keep = false
    end },
  { field = "close_after", type = "boolean", stage = "shape", run = function(_, reply) reply.keep = false end },
}

-- Every field a fault may have and the Lua type it must be, so that a
-- misspelt field is refused instead of silently doing nothing.
local FAULT_FIELDS = {}
for k, t in pairs(MATCH_FIELDS) do FAULT_FIELDS[k] = t end
for _, kind in ipairs(FAULT_KINDS) do
  FAULT_FIELDS[kind.field] = kind.type
  for k, t in pairs(kind.with or {}) do FAULT_FIELDS[k] = t end
end

local function check_fault(f)
  if type(f) ~= "table" then return "each fault must be an object" end
  for k, v in pairs(f) do
    local want = FAULT_FIELDS[k]
    if not want then return "unknown fault field " .. tostring(k) end
    if type(v) ~= want then return ("fault field %s must be a %s"):format(k, want) end
  end
  integers_in(f)
  for _, k in ipairs({ "times", "status", "code", "chunk_size", "truncate_to" }) do
    if f[k] ~= nil and math.type(f[k]) ~= "integer" then return "fault field " .. k .. " must be an integer" end
  end
  if f.status and (f.status < 100 or f.status > 999) then return "fault field status must be 100..999" end
  if f.chunk_size and f.chunk_size < 1 then return "fault field chunk_size must be at least 1" end
  for k, v in pairs(f.headers or {}) do
    if type(k) ~= "string" or not k:find("^[%w%-_]+$") then return "fault header names must be tokens" end
    -- a list sends the header once per item, in order (a duplicated header)
    local items = type(v) == "table" and v or { v }
    if type(v) == "table" and #v == 0 then return "fault header " .. k .. " must not be an empty list" end
    for _, item in ipairs(items) do
      if item ~= null and type(item) ~= "string" and type(item) ~= "number" then
        return "fault header " .. k .. " must be a string, a number, null or a list of strings"
      end
      if type(item) == "string" and item:find("[\r\n]") then return "fault header " .. k .. " must be one line" end
    end
  end
end

local function run_faults(stage, f, target)
  if not f then return end
  for _, kind in ipairs(FAULT_KINDS) do
    if kind.stage == stage and f[kind.field] ~= nil and f[kind.field] ~= false then kind.run(f, target) end
  end
end

-- The first fault that matches this request, used up once. reused: the
-- request is not the first one on its connection.
local function take_fault(method, path, reused)
  for i, f in ipairs(faults) do
    if (f.method == nil or f.method == method) and (f.path == nil or path:find(f.path, 1, true))
       and (not f.reused or reused) then
      f.times = (f.times or 1) - 1
      if f.times <= 0 then table.remove(faults, i) end
      return f
    end
  end
end

---------------------------------------------------------------------------
-- CONTROL: /__emulator/{reset,seed,state,requests,faults,shutdown}; no
-- auth, JSON in and out, 400 for a body it cannot use
---------------------------------------------------------------------------

local function control_ok(value) return { status = 200, body = encode(value) } end
local function control_error(status, message) return { status = status, body = encode({ error = message }) } end

local CONTROL = {
  reset = { POST = function()
    accounts, faults, requests = {}, {}, {}
    return control_ok({ reset = true })
  end },

  -- `resource` (optional, default impersonation_registry) names the
  -- resource's entries; seeded fields are stored as given, with defaults
  -- and server-made fields filled in, "_" bookkeeping fields kept unseen.
  seed = { POST = function(_, raw)
    local body = decode_object(raw)
    if not body or type(body.account_id) ~= "string" or not body.account_id:find(ACCOUNT_ID)
       or #body.account_id > 32 then
      return control_error(400, "seed takes {account_id: 1..32 of [A-Za-z0-9_-], entries: [...], resource: name}")
    end
    local res = RESOURCES[body.resource or DEFAULT_RESOURCE]
    if not res then return control_error(400, "seed: no such resource " .. tostring(body.resource)) end
    local entries = body.entries or {}
    if type(entries) ~= "table" then return control_error(400, "entries must be a list") end
    for _, fields in ipairs(entries) do
      if type(fields) ~= "table" then return control_error(400, "each entry must be an object") end
    end
    local stored = list_of({})
    for _, fields in ipairs(entries) do
      local e = new_entry(res, fields)
      table.insert(entries_of(res, body.account_id), e)
      stored[#stored + 1] = public(e)
    end
    return control_ok({ entries = stored })
  end },

  state = { GET = function(query)
    local q = parse_query(query)
    if not q.account_id then return control_error(400, "state takes ?account_id=[&resource=]") end
    local res = RESOURCES[q.resource or DEFAULT_RESOURCE]
    if not res then return control_error(400, "state: no such resource " .. tostring(q.resource)) end
    return control_ok({ entries = public_list(entries_of(res, q.account_id)) })
  end },

  requests = { GET = function() return control_ok({ requests = list_of(requests) }) end },

  faults = { DELETE = function()
    -- pending faults gone, entries and the request log kept
    faults = {}
    return control_ok({ pending = 0 })
  end, POST = function(_, raw)
    local body = decode_object(raw)
    if not body or type(body.faults) ~= "table" then return control_error(400, "faults takes {faults: [...]}") end
    for _, f in ipairs(body.faults) do
      local problem = check_fault(f)
      if problem then return control_error(400, problem) end
    end
    for _, f in ipairs(body.faults) do faults[#faults + 1] = f end
    return control_ok({ pending = #faults })
  end },

  shutdown = { POST = function()
    local answer = control_ok({ stopping = true })
    -- only once the answer is out, so the caller knows it was heard
    answer.then_run = function() running = false end
    return answer
  end },
}

local function control(method, name, query, raw)
  local route = CONTROL[name]
  if not route then return control_error(404, "no such control route: " .. name) end
  local handler = route[method]
  if not handler then return control_error(405, "method not allowed on /__emulator/" .. name) end
  local ok, answer = pcall(handler, query, raw)
  if ok then return answer end
  log("control %s failed: %s", name, tostring(answer))
  return control_error(400, tostring(answer))
end

---------------------------------------------------------------------------
-- Connections: coroutines that yield to the scheduler when a socket would
-- block or when they sleep
---------------------------------------------------------------------------

local MAX_LINE = 16 * 1024
local MAX_HEADERS = 100
local MAX_BODY = 4 * 1024 * 1024

-- Buffered reads: bytes past one request stay for the next (pipelining).
local function new_reader(sock)
  local r = { sock = sock, buf = "" }

  -- More bytes into buf; nil and the error once the peer is gone.
  function r.fill()
    if r.eof then return nil, "closed" end
    local data, err, partial = sock:receive(8192)
    local got = data or partial or ""
    if #got > 0 then r.buf = r.buf .. got end
    if data then return true end
    if err == "timeout" then
      if #got == 0 then coroutine.yield("read", sock) end
      return true
    end
    r.eof = true
    if #got > 0 then return true end
    return nil, err
  end

  -- One line without its CRLF; nil, "too long" past `max` bytes.
  function r.line(max)
    local from = 1
    while true do
      local nl = r.buf:find("\n", from, true)
      if nl then
        local line = r.buf:sub(1, nl - 1):gsub("\r$", "")
        r.buf = r.buf:sub(nl + 1)
        return line
      end
      if #r.buf > max then return nil, "too long" end
      from = #r.buf + 1
      local ok, err = r.fill()
      if not ok then return nil, err end
    end
  end

  -- Exactly n bytes; collected in pieces so a big body is not copied over and over.
  function r.bytes(n)
    local parts, have = { r.buf:sub(1, n) }, math.min(#r.buf, n)
    r.buf = r.buf:sub(n + 1)
    while have < n do
      local data, err, partial = sock:receive(n - have)
      local got = data or partial or ""
      if #got > 0 then
        parts[#parts + 1] = got
        have = have + #got
      elseif err == "timeout" then
        coroutine.yield("read", sock)
      elseif err then
        return nil, err
      end
    end
    return table.concat(parts)
  end

  return r
end

local function send_all(sock, data)
  local i = 1
  while i <= #data do
    local last, err, partial = sock:send(data, i)
    if last then return true end
    if err ~= "timeout" then return nil, err end
    i = partial + 1
    coroutine.yield("write", sock)
  end
  return true
end

-- The answer as it goes on the wire, with the header order kept.
local function new_reply(answer)
  local reply = { status = answer.status, body = answer.body or "", keep = true, names = {}, values = {} }
  function reply.set(name, value)
    local lower = name:lower()
    if not reply.values[lower] then reply.names[#reply.names + 1] = name end
    if value == null then value = nil end
    if type(value) == "number" then value = encode_number(value) end
    reply.values[lower] = value
  end
  if answer.json ~= false then reply.set("Content-Type", "application/json") end
  reply.set("cf-ray", ray_id())
  for k, v in pairs(answer.headers or {}) do reply.set(k, v) end
  return reply
end

-- Writes one reply; false when the connection must close after it.
local function write_reply(sock, reply)
  local wire = reply.body
  if reply.chunk_size then
    local pieces = {}
    for i = 1, #wire, reply.chunk_size do
      local piece = wire:sub(i, i + reply.chunk_size - 1)
      pieces[#pieces + 1] = ("%x\r\n%s\r\n"):format(#piece, piece)
    end
    pieces[#pieces + 1] = "0\r\n\r\n"
    wire = table.concat(pieces)
    reply.set("Content-Length", null)
    if not reply.values["transfer-encoding"] then reply.set("Transfer-Encoding", "chunked") end
  elseif not reply.values["content-length"] and not (reply.status == 204 and wire == "") then
    -- a fault's own Content-Length stands, so a spec can make one lie; a
    -- 204 has none at all (RFC 9110 8.6)
    reply.set("Content-Length", #wire)
  end
  if not reply.keep then reply.set("Connection", "close") end

  local head = { ("HTTP/1.1 %d %s\r\n"):format(reply.status, REASONS[reply.status] or "Status") }
  for _, name in ipairs(reply.names) do
    local value = reply.values[name:lower()]
    if type(value) == "table" then
      for _, item in ipairs(value) do head[#head + 1] = name .. ": " .. tostring(item) .. "\r\n" end
    elseif value then
      head[#head + 1] = name .. ": " .. value .. "\r\n"
    end
  end
  head[#head + 1] = "\r\n"
  head = table.concat(head)
  -- the advertised length stays whole: the client must notice the cut
  if reply.truncate_to then wire = wire:sub(1, reply.truncate_to) end
  local sent
  if reply.body_delay_ms then
    sent = send_all(sock, head)
    if sent then
      sleep_ms(reply.body_delay_ms)
      sent = send_all(sock, wire)
    end
  else
    sent = send_all(sock, head .. wire)
  end
  if reply.reset then sock:setoption("linger", { on = true, timeout = 0 }) end
  return sent and reply.keep
end

local function redact(headers)
  local copy = {}
  for k, v in pairs(headers) do
    copy[k] = (k == "authorization" or k == "x-auth-key") and "<redacted>" or v
  end
  return copy
end

local function remember(entry)
  -- a soak of many calls must not grow the log without end: keep the newest half
  local n = #requests
  if n >= opts.max_log then
    local keep = n - n // 2
    table.move(requests, n - keep + 1, n, 1)
    for i = n, keep + 1, -1 do requests[i] = nil end
  end
  requests[#requests + 1] = entry
end

-- One request, start to end; false when the connection must close.
-- served: how many requests this connection answered before this one.
local function serve_request(sock, conn_id, req, served)
  local path, query = req.target:match("^([^?#]*)%??([^#]*)")
  local control_name = path:match("^/__emulator/([%w_]+)$")
  if control_name then
    local answer = control(req.method, control_name, query, req.body)
    local reply = new_reply(answer)
    reply.keep = req.keep
    local keep = write_reply(sock, reply)
    if answer.then_run then answer.then_run() end
    return keep
  end

  -- logged before any fault acts, so a spec sees every request that arrived
  remember({ method = req.method, path = path, query = query, headers = redact(req.headers),
             auth = (authenticate(req.headers)), body = req.body, connection = conn_id })
  local fault = take_fault(req.method, path, served > 0)
  local ctx = {}
  run_faults("before", fault, ctx)
  if ctx.refuse_ms then pause_listening(ctx.refuse_ms) end
  if ctx.drop then
    if fault.reset then sock:setoption("linger", { on = true, timeout = 0 }) end
    return false
  end
  if not ctx.answer then
    ctx.answer = api(req.method, path, query, req.headers, req.body)
    run_faults("after", fault, ctx)
  end
  local reply = new_reply(ctx.answer)
  reply.keep = req.keep
  run_faults("shape", fault, reply)
  return write_reply(sock, reply)
end

-- A request the server cannot read: answered, then the connection closes.
local function refuse(sock, status, message)
  local reply = new_reply(envelope_error(status, status, message))
  reply.keep = false
  write_reply(sock, reply)
  -- unread bytes at close() would make the kernel send a reset, which can
  -- destroy the answer before the client reads it: take what has arrived
  sock:shutdown("send")
  for _ = 1, 64 do
    local data, _, partial = sock:receive(8192)
    if not data and (partial or "") == "" then break end
  end
  return false
end

local TOKEN = "^[%w!#$%%&'*+%-.^_`|~]+$"

-- The next request off the connection: a table, false when the peer is
-- done, or nil and the answer to refuse it with.
local function read_request(reader)
  local line, err
  repeat
    line, err = reader.line(MAX_LINE)
    if not line then
      if err == "too long" then return nil, 400, "request line too long" end
      return false
    end
  until line ~= ""   -- empty lines before a request are allowed (RFC 9112 2.2)
  local method, target, version = line:match("^(%S+) (%S+) HTTP/(%d%.%d)$")
  if not method or not method:find("^%u+$") or not target:find("^/") then
    return nil, 400, "malformed request line"
  end
  if version ~= "1.1" and version ~= "1.0" then return nil, 400, "HTTP/1.0 or HTTP/1.1 only" end

  local headers = {}
  for count = 1, MAX_HEADERS + 1 do
    local h
    h, err = reader.line(MAX_LINE)
    if not h then
      if err == "too long" then return nil, 400, "header line too long" end
      return false
    end
    if h == "" then break end
    if count > MAX_HEADERS then return nil, 400, "too many header lines" end
    local name, value = h:match("^([^:%s]+):[ \t]*(.-)[ \t]*$")
    if not name or not name:find(TOKEN) then return nil, 400, "malformed header line" end
    name = name:lower()
    if headers[name] then
      if name == "content-length" and headers[name] ~= value then
        return nil, 400, "conflicting Content-Length"
      end
      if name ~= "content-length" then headers[name] = headers[name] .. ", " .. value end
    else
      headers[name] = value
    end
  end

  if headers["transfer-encoding"] then return nil, 411, "send request bodies with a Content-Length" end
  local length = headers["content-length"] or "0"
  if not length:find("^%d+$") then return nil, 400, "malformed Content-Length" end
  length = tonumber(length)
  if length > MAX_BODY then return nil, 413, "request body over " .. MAX_BODY .. " bytes" end
  local body = ""
  if length > 0 then
    if (headers["expect"] or ""):lower() == "100-continue" and version == "1.1" then
      if not send_all(reader.sock, "HTTP/1.1 100 Continue\r\n\r\n") then return false end
    end
    body = reader.bytes(length)
    if not body then return false end
  end
  local conn = (headers["connection"] or ""):lower()
  local keep = not conn:find("close", 1, true) and (version == "1.1" or conn:find("keep-alive", 1, true) ~= nil)
  return { method = method, target = target, version = version, headers = headers, body = body, keep = keep }
end

local function serve_connection(sock, conn_id)
  local reader = new_reader(sock)
  local served = 0
  while running do
    local req, status, message = read_request(reader)
    if req == false then return end
    if not req then return refuse(sock, status, message) end
    if not serve_request(sock, conn_id, req, served) then return end
    served = served + 1
  end
end

---------------------------------------------------------------------------
-- The scheduler
---------------------------------------------------------------------------

local bind_err
server, bind_err = socket.bind(opts.host, opts.port, 128)
if not server then die(("cannot listen on %s:%d: %s"):format(opts.host, opts.port, tostring(bind_err))) end
server:settimeout(0)
local _, port = server:getsockname()
if opts.port_file then
  -- written whole and renamed, so a reader never sees half a number
  local tmp = opts.port_file .. ".tmp"
  local f = assert(io.open(tmp, "w"))
  f:write(port, "\n")
  f:close()
  assert(os.rename(tmp, opts.port_file))
end
io.stdout:write("listening on http://127.0.0.1:", port, "\n")
-- --banner (make emulator): what a person needs to point a client at it
if opts.banner then
  io.stdout:write(("  base_url = \"http://127.0.0.1:%d/client/v4\", api_token = \"%s\",\n"
    .. "  account_id = any 1 to 32 of [A-Za-z0-9_-], e.g. \"023e105f4ecef8ad9ca31a8372d0c353\"\n"
    .. "  stops by itself after %s idle seconds (Ctrl-C stops it now); PORT=N picks the port;\n"
    .. "  DELETE /__emulator/faults clears pending faults, POST /__emulator/reset everything\n")
    :format(port, opts.token, tostring(opts.idle_exit)))
end
io.stdout:flush()

-- --parent: the process that started it (a REPL, a spec run). However
-- that one ends (os.exit, Ctrl-C, a crash), the emulator goes with it.
-- Linux's /proc tells; where there is none, only --idle-exit applies.
local function parent_gone()
  if not opts.parent then return false end
  local f = io.open("/proc/" .. string.format("%d", opts.parent) .. "/stat", "r")
  if not f then
    local self = io.open("/proc/self/stat", "r")
    if self then self:close() end
    return self ~= nil
  end
  local stat = f:read("*l") or ""
  f:close()
  -- "pid (name) S ...": a zombie (Z) has ended, its parent has not yet reaped it
  -- the name may itself hold ") ": the state follows the last one
  return stat:match(".*%) (%a)") == "Z"
end
local next_parent_check = 0

local tasks = {}           -- { id, sock, co, wait = "read"|"write"|"sleep", wake }
local connections = 0
local last_activity = socket.gettime()

local function step(task)
  local ok, wait, what = coroutine.resume(task.co)
  if not ok then log("connection %d: scheduler error: %s", task.id, tostring(wait)) end
  if not ok or coroutine.status(task.co) == "dead" then
    task.sock:close()
    task.done = true
    return
  end
  task.wait, task.wake = wait, wait == "sleep" and what or nil
end

local function accept_all()
  -- a request served below may close the listener (refuse_ms)
  while server do
    local client = server:accept()
    if not client then return end
    client:settimeout(0)
    client:setoption("tcp-nodelay", true)
    connections = connections + 1
    local id = connections
    local task = { id = id, sock = client }
    task.co = coroutine.create(function()
      -- a peer that vanishes mid-way, or a bug here, ends this connection only
      local ok, err = pcall(serve_connection, client, id)
      if not ok then log("connection %d failed: %s", id, tostring(err)) end
    end)
    log("connection %d opened", id)
    tasks[#tasks + 1] = task
    step(task)
  end
end

while running do
  local now = socket.gettime()
  if not server and now >= listen_again_at then
    server = socket.bind(opts.host, port, 128)
    if server then server:settimeout(0) else listen_again_at = now + 0.05 end
  end
  local readers, writers = { server }, {}
  local timeout = server and 1 or math.max(0, math.min(1, listen_again_at - now))
  for _, t in ipairs(tasks) do
    if t.wait == "read" then readers[#readers + 1] = t.sock
    elseif t.wait == "write" then writers[#writers + 1] = t.sock
    elseif t.wait == "sleep" then timeout = math.max(0, math.min(timeout, t.wake - now)) end
  end
  local readable, writable = socket.select(readers, writers, timeout)
  now = socket.gettime()
  if #readable > 0 or #writable > 0 then last_activity = now end

  if server and readable[server] then accept_all() end
  for _, t in ipairs(tasks) do
    if not t.done and ((t.wait == "read" and readable[t.sock]) or (t.wait == "write" and writable[t.sock])
                       or (t.wait == "sleep" and now >= t.wake)) then
      last_activity = now
      step(t)
    end
  end
  local alive = {}
  for _, t in ipairs(tasks) do
    if not t.done then alive[#alive + 1] = t end
  end
  tasks = alive
  if now >= next_parent_check then
    next_parent_check = now + 0.5
    if parent_gone() then
      log("the process that started it is gone: exiting")
      running = false
    end
  end
  if now - last_activity > opts.idle_exit then
    log("idle for %s s: exiting", tostring(opts.idle_exit))
    if opts.banner then io.stdout:write("stopped: idle for ", tostring(opts.idle_exit), " s\n") end
    running = false
  end
end

for _, t in ipairs(tasks) do t.sock:close() end
if server then server:close() end
log("stopped")
