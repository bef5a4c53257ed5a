#!/usr/bin/env lua5.4
-- A stateful emulator of Cloudflare's Email Security impersonation registry
-- API: a real HTTP/1.1 server on 127.0.0.1, for the specs and for trying the
-- client by hand. The client under test blocks inside libcurl, so this runs
-- as its own process; spec/support/emulator_process.lua starts and stops it.
--
--   lua5.4 spec/support/emulator.lua [--host 127.0.0.1] [--port 8787] [--port-file F]
--       [--token T] [--email E --key K] [--idle-exit SECONDS] [--max-log N] [--verbose]
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
  .. " [--email E --key K] [--idle-exit SECONDS] [--max-log N] [--verbose]"

local function die(message)
  io.stderr:write("emulator: ", message, "\n", USAGE, "\n")
  os.exit(2)
end

-- The kind of each option's value; "flag" takes none.
local OPTION_KINDS = { host = "string", port = "number", port_file = "string", token = "string",
                       email = "string", key = "string", idle_exit = "number", max_log = "number",
                       verbose = "flag", help = "flag" }

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

-- Integral floats become integers, so later checks and math.type agree
-- with what the client sent.
local function integers_in(t)
  for k, v in pairs(t) do
    if math.type(v) == "float" and v == math.floor(v) and math.abs(v) < 2 ^ 63 then t[k] = math.tointeger(v) end
  end
  return t
end

-- The raw body as a JSON object: the table, or nil and "malformed" (not
-- JSON at all) or "not_object" (valid JSON of another kind).
local function decode_object(raw)
  local ok, value = pcall(cjson.decode, raw)
  if not ok then return nil, "malformed" end
  -- cjson gives a table for arrays too; only `{` starts an object
  if type(value) ~= "table" or not raw:find("^%s*{") then return nil, "not_object" end
  return integers_in(value)
end

---------------------------------------------------------------------------
-- The registry: entries per account, in creation order
---------------------------------------------------------------------------

local PROVENANCES = { "A1S_INTERNAL", "SNOOPY-CASB_OFFICE_365", "SNOOPY-OFFICE_365", "SNOOPY-GOOGLE_DIRECTORY" }
local PROVENANCE = {}
for _, p in ipairs(PROVENANCES) do PROVENANCE[p] = true end
local PROVENANCE_RULE = "must be one of " .. table.concat(PROVENANCES, ", ")

-- The writable fields of the schema (email-security_ImpersonationRegistry).
local FIELDS = {
  name = { type = "string", max_length = 1024 },
  email = { type = "string" },
  is_email_regex = { type = "boolean" },
  comments = { type = "string", nullable = true },
  directory_id = { type = "integer", nullable = true },
  directory_node_id = { type = "integer", nullable = true },
  external_directory_node_id = { type = "string", nullable = true },
  provenance = { type = "string", enum = PROVENANCE, rule = PROVENANCE_RULE },
}
local READ_ONLY = { id = true, created_at = true, modified_at = true, last_modified = true }
local REQUIRED = { "name", "email", "is_email_regex" }
local ACCOUNT_ID = "^[%w_%-]+$"

local accounts = {}      -- account id -> list of entries in creation order
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

local function entries_of(acct)
  local list = accounts[acct]
  if not list then
    list = {}
    accounts[acct] = list
  end
  return list
end

local function find(acct, id)
  for i, e in ipairs(entries_of(acct)) do
    if e.id == id then return e, i end
  end
end

local function new_entry(fields)
  sequence = sequence + 1
  local stamp = now_rfc3339()
  local e = { id = uuid4(), comments = null, directory_id = null, directory_node_id = null,
              external_directory_node_id = null, provenance = "A1S_INTERNAL",
              created_at = stamp, modified_at = stamp, last_modified = stamp }
  for k, v in pairs(fields) do e[k] = v end
  e._seq = sequence
  return e
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

local function is_synced(e)
  return e.provenance ~= "A1S_INTERNAL" or (e.directory_id ~= nil and e.directory_id ~= null)
end

-- One field against the schema: nil when good, else "field: rule".
local function field_problem(name, v)
  if READ_ONLY[name] then return name .. ": read-only field" end
  local spec = FIELDS[name]
  if not spec then return name .. ": unknown field" end
  if v == null then
    if spec.nullable then return nil end
    return name .. ": must not be null"
  end
  if spec.type == "string" then
    if type(v) ~= "string" then return name .. ": must be a string" end
    local len = utf8.len(v)
    if not len then return name .. ": must be valid UTF-8" end
    if spec.max_length and len > spec.max_length then
      return ("%s: must be at most %d characters"):format(name, spec.max_length)
    end
    if spec.enum and not spec.enum[v] then return name .. ": " .. spec.rule end
  elseif spec.type == "boolean" then
    if type(v) ~= "boolean" then return name .. ": must be a boolean" end
  elseif spec.type == "integer" then
    if math.type(v) ~= "integer" then return name .. ": must be an integer" end
  end
end

-- The first problem of a whole body, or nil. Fields are looked at in name
-- order so that a body with several problems always gets the same message.
local function body_problem(fields, mode)
  local names = {}
  for name in pairs(fields) do
    if type(name) ~= "string" then return "body: must be a JSON object" end
    names[#names + 1] = name
  end
  table.sort(names)
  for _, name in ipairs(names) do
    local problem = field_problem(name, fields[name])
    if problem then return problem end
  end
  if mode == "create" then
    for _, name in ipairs(REQUIRED) do
      if fields[name] == nil then return name .. ": required" end
    end
  elseif #names == 0 then
    return "body: at least one field is required"
  end
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
local function entry_not_found() return envelope_error(404, 1003, "Impersonation registry entry not found") end
local function invalid(message) return envelope_error(422, 1002, message) end

-- The body of a POST or PATCH as an object, or the answer refusing it.
local function request_object(raw)
  local fields, why = decode_object(raw)
  if fields then return fields end
  if why == "not_object" then return nil, invalid("body: must be a JSON object") end
  return nil, envelope_error(400, 1001, "Malformed JSON in request body")
end

local function url_decode(s)
  s = s:gsub("+", " ")
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function parse_query(q)
  local out = {}
  for pair in q:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    out[url_decode(k)] = url_decode(v)
  end
  return out
end

---------------------------------------------------------------------------
-- The API's operations
---------------------------------------------------------------------------

local ORDERS = { name = true, email = true, created_at = true }

local function text_of(e, field)
  local v = e[field]
  if type(v) == "string" then return v end
  return ""
end

local function list_entries(acct, query)
  local page, per_page = query.page or "1", query.per_page or "20"
  if not page:find("^%d+$") or tonumber(page) < 1 then
    return invalid("page: must be an integer of at least 1")
  end
  if not per_page:find("^%d+$") or tonumber(per_page) < 1 or tonumber(per_page) > 1000 then
    return invalid("per_page: must be an integer from 1 to 1000")
  end
  page, per_page = tonumber(page), tonumber(per_page)
  local order, direction = query.order or "created_at", query.direction or "asc"
  if not ORDERS[order] then return invalid("order: must be one of name, email, created_at") end
  if direction ~= "asc" and direction ~= "desc" then return invalid("direction: must be one of asc, desc") end
  if query.provenance and not PROVENANCE[query.provenance] then
    return invalid("provenance: " .. PROVENANCE_RULE)
  end

  local needle = query.search and query.search:lower()
  local matching = {}
  for _, e in ipairs(entries_of(acct)) do
    if (not needle or text_of(e, "name"):lower():find(needle, 1, true)
        or text_of(e, "email"):lower():find(needle, 1, true))
       and (not query.provenance or e.provenance == query.provenance) then
      matching[#matching + 1] = e
    end
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

local function create_entry(acct, _, _, raw)
  local fields, refusal = request_object(raw)
  if not fields then return refusal end
  local problem = body_problem(fields, "create")
  if problem then return invalid(problem) end
  local e = new_entry(fields)
  table.insert(entries_of(acct), e)
  return envelope_ok(201, public(e))
end

local function get_entry(acct, id)
  local e = find(acct, id)
  if not e then return entry_not_found() end
  return envelope_ok(200, public(e))
end

local function update_entry(acct, id, _, raw)
  local e = find(acct, id)
  if not e then return entry_not_found() end
  local fields, refusal = request_object(raw)
  if not fields then return refusal end
  local problem = body_problem(fields, "update")
  if problem then return invalid(problem) end
  if is_synced(e) then return envelope_error(400, 1010, "Directory-synced entries can't be updated") end
  for k, v in pairs(fields) do e[k] = v end
  e.modified_at = now_rfc3339()
  e.last_modified = e.modified_at
  return envelope_ok(200, public(e))
end

local function delete_entry(acct, id)
  local e, index = find(acct, id)
  if not e then return entry_not_found() end
  table.remove(entries_of(acct), index)
  return envelope_ok(200, { id = e.id })
end

-- Paths under /client/v4 and the operation of each method on them.
local ROUTES = {
  { pattern = "^/client/v4/accounts/([^/]+)/email%-security/settings/impersonation_registry$",
    methods = { GET = function(acct, _, query) return list_entries(acct, query) end, POST = create_entry } },
  { pattern = "^/client/v4/accounts/([^/]+)/email%-security/settings/impersonation_registry/([^/]+)$",
    methods = { GET = get_entry, PATCH = update_entry, DELETE = delete_entry } },
}

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
      local operation = route.methods[method]
      if not operation then return not_allowed() end
      return operation(acct, id and url_decode(id), parse_query(query), raw)
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

  seed = { POST = function(_, raw)
    local body = decode_object(raw)
    if not body or type(body.account_id) ~= "string" or not body.account_id:find(ACCOUNT_ID)
       or #body.account_id > 32 then
      return control_error(400, "seed takes {account_id: 1..32 of [A-Za-z0-9_-], entries: [...]}")
    end
    local entries = body.entries or {}
    if type(entries) ~= "table" then return control_error(400, "entries must be a list") end
    for _, fields in ipairs(entries) do
      if type(fields) ~= "table" then return control_error(400, "each entry must be an object") end
    end
    local stored = list_of({})
    for _, fields in ipairs(entries) do
      local e = new_entry(integers_in(fields))
      table.insert(entries_of(body.account_id), e)
      stored[#stored + 1] = public(e)
    end
    return control_ok({ entries = stored })
  end },

  state = { GET = function(query)
    local acct = parse_query(query).account_id
    if not acct then return control_error(400, "state takes ?account_id=") end
    return control_ok({ entries = public_list(entries_of(acct)) })
  end },

  requests = { GET = function() return control_ok({ requests = list_of(requests) }) end },

  faults = { POST = function(_, raw)
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
  elseif not reply.values["content-length"] then
    -- a fault's own Content-Length stands, so a spec can make one lie
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
io.stdout:flush()

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
  if now - last_activity > opts.idle_exit then
    log("idle for %s s: exiting", tostring(opts.idle_exit))
    running = false
  end
end

for _, t in ipairs(tasks) do t.sock:close() end
if server then server:close() end
log("stopped")
