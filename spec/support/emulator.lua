#!/usr/bin/env lua5.4
-- A stateful emulator of Cloudflare's Email Security impersonation registry
-- API: a real HTTP/1.1 server on 127.0.0.1, for the specs and for trying the
-- client by hand. One process, one coroutine per connection, so that a
-- delayed answer on one connection never holds up another.
--
--   lua5.4 spec/support/emulator.lua [--port 8787] [--port-file F]
--       [--token T] [--email E --key K] [--idle-exit SECONDS] [--max-log N] [--verbose]
--
-- Besides the API under /client/v4, control routes under /__emulator/ let a
-- spec reset state, seed entries, read what reached the server, and inject
-- faults (see CONTROL below).

local socket = require("socket")
local cjson = require("cjson")

local null = cjson.null

---------------------------------------------------------------------------
-- Options
---------------------------------------------------------------------------

local opts = { host = "127.0.0.1", port = 8787, token = "test-token", email = "user@example.com",
               key = "test-key", idle_exit = 300, max_log = 20000 }
do
  local i = 1
  while i <= #arg do
    local name = arg[i]:match("^%-%-([%w%-]+)$")
    if not name then error("unexpected argument " .. arg[i]) end
    name = name:gsub("%-", "_")
    if name == "verbose" then
      opts.verbose = true
      i = i + 1
    else
      opts[name] = arg[i + 1]
      i = i + 2
    end
  end
  opts.port, opts.idle_exit, opts.max_log = tonumber(opts.port), tonumber(opts.idle_exit), tonumber(opts.max_log)
  -- never reachable from outside this machine
  if opts.host ~= "127.0.0.1" and opts.host ~= "localhost" then
    error("the emulator listens on 127.0.0.1 only")
  end
end

local function log(...)
  if opts.verbose then io.stderr:write(string.format(...), "\n") end
end

---------------------------------------------------------------------------
-- JSON: lua-cjson 2.1 writes an empty table as {}, so lists are written here
---------------------------------------------------------------------------

local encode

local function encode_list(list)
  local parts = {}
  for i = 1, #list do parts[i] = encode(list[i]) end
  return "[" .. table.concat(parts, ",") .. "]"
end

-- A table marked as a list is written as one even when empty.
local LIST = setmetatable({}, { __mode = "k" })
local function list_of(t) LIST[t] = true return t end

function encode(v)
  if type(v) == "table" and (LIST[v] or #v > 0) then return encode_list(v) end
  if type(v) == "table" then
    local parts = {}
    for k, x in pairs(v) do parts[#parts + 1] = cjson.encode(tostring(k)) .. ":" .. encode(x) end
    table.sort(parts)
    return "{" .. table.concat(parts, ",") .. "}"
  end
  if math.type(v) == "float" and v == math.floor(v) and math.abs(v) < 2 ^ 53 then
    return string.format("%d", v)
  end
  return cjson.encode(v)
end

---------------------------------------------------------------------------
-- The registry: entries per account, in creation order
---------------------------------------------------------------------------

local PROVENANCE = { A1S_INTERNAL = true, ["SNOOPY-CASB_OFFICE_365"] = true,
                     ["SNOOPY-OFFICE_365"] = true, ["SNOOPY-GOOGLE_DIRECTORY"] = true }
local FIELDS = {
  name = { type = "string", max_length = 1024 },
  email = { type = "string" },
  is_email_regex = { type = "boolean" },
  comments = { type = "string", nullable = true },
  directory_id = { type = "integer", nullable = true },
  directory_node_id = { type = "integer", nullable = true },
  external_directory_node_id = { type = "string", nullable = true },
  provenance = { type = "string", enum = PROVENANCE },
}
local READ_ONLY = { id = true, created_at = true, modified_at = true, last_modified = true }
local REQUIRED = { "name", "email", "is_email_regex" }

local accounts = {}      -- account id -> { entries = {...} }
local faults = {}
local requests = {}
local sequence = 0       -- creation order, for a stable sort

math.randomseed(os.time() + math.floor(socket.gettime() * 1e6) % 1e6)

local function uuid4()
  local b = {}
  for i = 1, 16 do b[i] = math.random(0, 255) end
  b[7] = (b[7] & 0x0f) | 0x40
  b[9] = (b[9] & 0x3f) | 0x80
  local hex = string.format(string.rep("%02x", 16), table.unpack(b))
  return ("%s-%s-%s-%s-%s"):format(hex:sub(1, 8), hex:sub(9, 12), hex:sub(13, 16),
                                   hex:sub(17, 20), hex:sub(21, 32))
end

local function ray_id()
  return string.format("%08x%08x-EMU", math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
end

local function now_rfc3339()
  local t = socket.gettime()
  local sec = math.floor(t)
  return os.date("!%Y-%m-%dT%H:%M:%S", sec) .. string.format(".%06dZ", math.floor((t - sec) * 1e6))
end

local function account(id)
  local a = accounts[id]
  if not a then
    a = { entries = {} }
    accounts[id] = a
  end
  return a
end

local function find(acct, id)
  for i, e in ipairs(account(acct).entries) do
    if e.id == id then return e, i end
  end
end

local function new_entry(fields)
  sequence = sequence + 1
  local stamp = now_rfc3339()
  local e = {
    id = uuid4(), name = fields.name, email = fields.email, is_email_regex = fields.is_email_regex,
    comments = null, directory_id = null, directory_node_id = null, external_directory_node_id = null,
    provenance = "A1S_INTERNAL", created_at = stamp, modified_at = stamp, last_modified = stamp,
  }
  for k, v in pairs(fields) do e[k] = v end
  e._seq = sequence
  return e
end

local function public(e)
  local copy = {}
  for k, v in pairs(e) do
    if k:sub(1, 1) ~= "_" then copy[k] = v end
  end
  return copy
end

local function public_list(entries)
  local out = list_of({})
  for i, e in ipairs(entries) do out[i] = public(e) end
  return out
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
    if spec.enum and not spec.enum[v] then
      return name .. ": must be one of A1S_INTERNAL, SNOOPY-CASB_OFFICE_365, SNOOPY-OFFICE_365,"
        .. " SNOOPY-GOOGLE_DIRECTORY"
    end
  elseif spec.type == "boolean" then
    if type(v) ~= "boolean" then return name .. ": must be a boolean" end
  elseif spec.type == "integer" then
    if math.type(v) == "float" and v == math.floor(v) then v = math.tointeger(v) end
    if math.type(v) ~= "integer" then return name .. ": must be an integer" end
  end
end

-- Problems with a whole body, or nil; integral floats become integers.
local function body_problem(fields, mode)
  for name, v in pairs(fields) do
    if type(name) ~= "string" then return "body: must be an object" end
    local problem = field_problem(name, v)
    if problem then return problem end
    if math.type(v) == "float" then fields[name] = math.tointeger(v) end
  end
  if mode == "create" then
    for _, name in ipairs(REQUIRED) do
      if fields[name] == nil then return name .. ": required" end
    end
  elseif next(fields) == nil then
    return "body: at least one field is required"
  end
end

local function is_synced(e)
  return e.provenance ~= "A1S_INTERNAL" or e.directory_id ~= null
end

---------------------------------------------------------------------------
-- Answers
---------------------------------------------------------------------------

local REASONS = { [200] = "OK", [201] = "Created", [400] = "Bad Request", [401] = "Unauthorized",
                  [403] = "Forbidden", [404] = "Not Found", [405] = "Method Not Allowed",
                  [411] = "Length Required", [413] = "Payload Too Large",
                  [422] = "Unprocessable Entity", [429] = "Too Many Requests",
                  [500] = "Internal Server Error", [502] = "Bad Gateway", [503] = "Service Unavailable",
                  [408] = "Request Timeout", [409] = "Conflict", [520] = "Unknown Error",
                  [524] = "A Timeout Occurred", [302] = "Found" }

local function envelope_ok(status, result, info)
  local body = '{"success":true,"errors":[],"messages":[],"result":' .. encode(result)
  if info then body = body .. ',"result_info":' .. encode(info) end
  return { status = status, body = body .. "}" }
end

local function envelope_error(status, code, message)
  return { status = status, body = '{"success":false,"errors":[' .. encode({ code = code, message = message })
    .. '],"messages":[],"result":null}' }
end

local function decode_body(raw)
  if not raw:find("^%s*{") then return nil end
  local ok, value = pcall(cjson.decode, raw)
  if ok and type(value) == "table" then return value end
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

local ORDERS = { name = true, email = true, created_at = true }

local function list_entries(acct, query)
  local page, per_page = tonumber(query.page or "1"), tonumber(query.per_page or "20")
  if not page or page < 1 or page ~= math.floor(page) then
    return envelope_error(422, 1002, "page: must be an integer of at least 1")
  end
  if not per_page or per_page < 1 or per_page > 1000 or per_page ~= math.floor(per_page) then
    return envelope_error(422, 1002, "per_page: must be an integer from 1 to 1000")
  end
  local order, direction = query.order or "created_at", query.direction or "asc"
  if not ORDERS[order] then return envelope_error(422, 1002, "order: must be one of name, email, created_at") end
  if direction ~= "asc" and direction ~= "desc" then
    return envelope_error(422, 1002, "direction: must be one of asc, desc")
  end
  if query.provenance and not PROVENANCE[query.provenance] then
    return envelope_error(422, 1002, "provenance: must be a known provenance")
  end
  local needle = query.search and query.search:lower()
  local matching = {}
  for _, e in ipairs(account(acct).entries) do
    if (not needle or e.name:lower():find(needle, 1, true) or e.email:lower():find(needle, 1, true))
       and (not query.provenance or e.provenance == query.provenance) then
      matching[#matching + 1] = e
    end
  end
  table.sort(matching, function(a, b)
    local x, y = a[order], b[order]
    if order == "created_at" or x == y then x, y = a._seq, b._seq end
    if direction == "desc" then return x > y end
    return x < y
  end)
  local items = {}
  for i = (page - 1) * per_page + 1, math.min(page * per_page, #matching) do
    items[#items + 1] = matching[i]
  end
  return envelope_ok(200, public_list(items), { page = math.tointeger(page), per_page = math.tointeger(per_page),
                                                count = #items, total_count = #matching })
end

local function api(method, acct, id, query, raw)
  if not acct:find("^[%w_%-]+$") or #acct > 32 then
    return envelope_error(404, 7003, "No route for the URI")
  end
  if id == nil then
    if method == "GET" then return list_entries(acct, query) end
    if method ~= "POST" then return envelope_error(405, 7001, "Method not allowed") end
    local fields = decode_body(raw)
    if not fields then return envelope_error(400, 1001, "Malformed JSON in request body") end
    local problem = body_problem(fields, "create")
    if problem then return envelope_error(422, 1002, problem) end
    local e = new_entry(fields)
    table.insert(account(acct).entries, e)
    return envelope_ok(201, public(e))
  end

  local e, index = find(acct, id)
  if method ~= "GET" and method ~= "PATCH" and method ~= "DELETE" then
    return envelope_error(405, 7001, "Method not allowed")
  end
  if not e then return envelope_error(404, 1003, "Impersonation registry entry not found") end
  if method == "GET" then return envelope_ok(200, public(e)) end
  if method == "DELETE" then
    table.remove(account(acct).entries, index)
    return envelope_ok(200, { id = e.id })
  end
  local fields = decode_body(raw)
  if not fields then return envelope_error(400, 1001, "Malformed JSON in request body") end
  local problem = body_problem(fields, "update")
  if problem then return envelope_error(422, 1002, problem) end
  if is_synced(e) then return envelope_error(400, 1010, "Directory-synced entries can't be updated") end
  for k, v in pairs(fields) do e[k] = v end
  e.modified_at = now_rfc3339()
  e.last_modified = e.modified_at
  return envelope_ok(200, public(e))
end

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

---------------------------------------------------------------------------
-- CONTROL: /__emulator/{reset,seed,state,requests,faults,shutdown}
---------------------------------------------------------------------------

local running = true

local function control(method, name, query, raw)
  local function ok(value) return { status = 200, body = encode(value) } end
  if name == "reset" and method == "POST" then
    accounts, faults, requests = {}, {}, {}
    return ok({ reset = true })
  elseif name == "seed" and method == "POST" then
    local body = decode_body(raw)
    if not body or type(body.account_id) ~= "string" then
      return { status = 400, body = '{"error":"seed takes {account_id, entries}"}' }
    end
    local stored = list_of({})
    for _, fields in ipairs(body.entries or {}) do
      for k, v in pairs(fields) do
        if math.type(v) == "float" and v == math.floor(v) then fields[k] = math.tointeger(v) end
      end
      local e = new_entry(fields)
      table.insert(account(body.account_id).entries, e)
      stored[#stored + 1] = public(e)
    end
    return ok({ entries = stored })
  elseif name == "state" and method == "GET" then
    local acct = parse_query(query).account_id or ""
    return ok({ entries = public_list(account(acct).entries) })
  elseif name == "requests" and method == "GET" then
    return ok({ requests = list_of(requests) })
  elseif name == "faults" and method == "POST" then
    local body = decode_body(raw)
    if not body or type(body.faults) ~= "table" then
      return { status = 400, body = '{"error":"faults takes {faults: [...]}"}' }
    end
    for _, f in ipairs(body.faults) do
      f.times = f.times or 1
      faults[#faults + 1] = f
    end
    return ok({ pending = #faults })
  elseif name == "shutdown" and method == "POST" then
    running = false
    return ok({ stopping = true })
  end
  return { status = 404, body = '{"error":"no such control route"}' }
end

-- The first fault that matches this request, used up once.
local function take_fault(method, path)
  for i, f in ipairs(faults) do
    if (f.method == nil or f.method == method)
       and (f.path == nil or path:find(f.path, 1, true)) then
      f.times = f.times - 1
      if f.times <= 0 then table.remove(faults, i) end
      return f
    end
  end
end

---------------------------------------------------------------------------
-- Connections: coroutines that yield to the scheduler when a socket would
-- block or when they sleep
---------------------------------------------------------------------------

local function receive(sock, pattern)
  local got = ""
  while true do
    local data, err, partial = sock:receive(pattern, got)
    if data then return data end
    if err ~= "timeout" then return nil, err end
    got = partial
    coroutine.yield("read", sock)
  end
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

local function sleep_ms(ms)
  if ms and ms > 0 then coroutine.yield("sleep", socket.gettime() + ms / 1000) end
end

local function redact(headers)
  local copy = {}
  for k, v in pairs(headers) do
    copy[k] = (k == "authorization" or k == "x-auth-key") and "<redacted>" or v
  end
  return copy
end

local function gzip(data)
  local file = os.tmpname()
  local pipe = assert(io.popen("gzip -c -n > " .. file, "w"))
  pipe:write(data)
  pipe:close()
  local f = assert(io.open(file, "rb"))
  local packed = f:read("a")
  f:close()
  os.remove(file)
  return packed
end

-- Writes one answer, shaped by the fault if there is one; returns false
-- when the connection must close after it. Fault fields used here:
-- status/headers/body (a custom answer), gzip, chunked (chunk_size),
-- body_delay_ms, truncate_to (then close), reset (close with a TCP reset
-- instead), close_after.
local function respond(sock, answer, fault)
  fault = fault or {}
  local headers = { ["Content-Type"] = "application/json", ["cf-ray"] = ray_id() }
  if fault.status then headers["Content-Type"] = nil end
  for k, v in pairs(fault.headers or {}) do headers[k] = v end
  local body = answer.body or ""
  if fault.gzip then
    body = gzip(body)
    headers["Content-Encoding"] = "gzip"
  end
  if fault.chunked then
    headers["Transfer-Encoding"] = "chunked"
  else
    headers["Content-Length"] = tostring(#body)
  end
  local head = { ("HTTP/1.1 %d %s\r\n"):format(answer.status, REASONS[answer.status] or "Status") }
  for k, v in pairs(headers) do head[#head + 1] = k .. ": " .. v .. "\r\n" end
  head[#head + 1] = "\r\n"
  if not send_all(sock, table.concat(head)) then return false end
  sleep_ms(fault.body_delay_ms)
  if fault.truncate_to then
    send_all(sock, body:sub(1, fault.truncate_to))
    if fault.reset then sock:setoption("linger", { on = true, timeout = 0 }) end
    return false
  end
  if fault.chunked then
    local size = fault.chunk_size or 7
    for i = 1, #body, size do
      local piece = body:sub(i, i + size - 1)
      if not send_all(sock, ("%x\r\n%s\r\n"):format(#piece, piece)) then return false end
    end
    if not send_all(sock, "0\r\n\r\n") then return false end
  elseif not send_all(sock, body) then
    return false
  end
  return not fault.close_after
end

local API_ROUTE = "^/client/v4/accounts/([^/]+)/email%-security/settings/impersonation_registry/?([^/]*)$"

local function serve_request(sock, conn_id, method, target, headers, raw)
  local path, query = target:match("^([^?]*)%??(.*)$")
  local control_name = path:match("^/__emulator/(%w+)$")
  if control_name then return respond(sock, control(method, control_name, query, raw)) end

  -- a soak of many calls must not grow the log without end: keep the newest half
  local n = #requests
  if n >= opts.max_log then
    local keep = n - n // 2
    table.move(requests, n - keep + 1, n, 1)
    for i = n, keep + 1, -1 do requests[i] = nil end
  end
  requests[#requests + 1] = { method = method, path = path, query = query, headers = redact(headers),
                              auth = (authenticate(headers)), body = raw, connection = conn_id }
  -- A fault with `after` lets the request act (a create is stored) and
  -- only then answers as the fault says.
  local fault = take_fault(method, path)
  if fault then
    sleep_ms(fault.delay_ms)
    if fault.close then return false end
    if fault.status and not fault.after then
      return respond(sock, { status = fault.status, body = fault.body }, fault)
    end
  end

  local answer
  local acct, id = path:match(API_ROUTE)
  if not acct then
    answer = envelope_error(404, 7003, "No route for the URI")
  else
    local _, refusal = authenticate(headers)
    answer = refusal or api(method, url_decode(acct), id ~= "" and url_decode(id) or nil,
                            parse_query(query), raw)
  end
  if fault and fault.success_false then
    answer = envelope_error(200, fault.code or 1000, fault.message or "Emulated failure")
  elseif fault and fault.after and fault.status then
    answer = { status = fault.status, body = fault.body }
  end
  return respond(sock, answer, fault)
end

local MAX_BODY = 4 * 1024 * 1024

local function serve_connection(sock, conn_id)
  while true do
    local line = receive(sock, "*l")
    if not line then return end
    if line ~= "" then
      local method, target, version = line:match("^(%u+) (%S+) HTTP/(1%.[01])$")
      if not method then
        respond(sock, { status = 400, body = '{"error":"bad request line"}' })
        return
      end
      local headers = {}
      for _ = 1, 200 do
        local h = receive(sock, "*l")
        if not h then return end
        if h == "" then break end
        local name, value = h:match("^([^:]+):%s*(.-)%s*$")
        if name then headers[name:lower()] = value end
      end
      if headers["transfer-encoding"] then
        respond(sock, { status = 411, body = '{"error":"send a Content-Length"}' })
        return
      end
      local length = tonumber(headers["content-length"] or "0")
      if not length or length > MAX_BODY then
        respond(sock, { status = 413, body = '{"error":"body too large"}' })
        return
      end
      local raw = ""
      if length > 0 then
        raw = receive(sock, length)
        if not raw then return end
      end
      local keep = serve_request(sock, conn_id, method, target, headers, raw)
      local conn_header = (headers["connection"] or ""):lower()
      if not keep or conn_header == "close" or (version == "1.0" and conn_header ~= "keep-alive") then
        return
      end
    end
  end
end

---------------------------------------------------------------------------
-- The scheduler
---------------------------------------------------------------------------

local server = assert(socket.bind(opts.host, opts.port))
server:settimeout(0)
local _, port = server:getsockname()
if opts.port_file then
  local f = assert(io.open(opts.port_file .. ".tmp", "w"))
  f:write(port, "\n")
  f:close()
  assert(os.rename(opts.port_file .. ".tmp", opts.port_file))
end
io.stdout:write("listening on http://127.0.0.1:", port, "\n")
io.stdout:flush()

local tasks = {}           -- { co, sock, wait = "read"|"write"|"sleep", wake = time }
local connections = 0
local last_activity = socket.gettime()

local function step(task, ...)
  local ok, wait, what = coroutine.resume(task.co, ...)
  if not ok then log("connection %d failed: %s", task.id, tostring(wait)) end
  if not ok or coroutine.status(task.co) == "dead" then
    task.sock:close()
    task.done = true
    return
  end
  task.wait = wait
  if wait == "sleep" then task.wake = what else task.wake = nil end
end

while running do
  local readers, writers = { server }, {}
  local now = socket.gettime()
  local timeout = 1
  for _, t in ipairs(tasks) do
    if t.wait == "read" then readers[#readers + 1] = t.sock
    elseif t.wait == "write" then writers[#writers + 1] = t.sock
    elseif t.wait == "sleep" then timeout = math.max(0, math.min(timeout, t.wake - now)) end
  end
  local readable, writable = socket.select(readers, writers, timeout)
  now = socket.gettime()

  if readable[server] then
    local client = server:accept()
    if client then
      client:settimeout(0)
      client:setoption("tcp-nodelay", true)
      connections = connections + 1
      local id = connections
      local task = { id = id, sock = client, co = coroutine.create(function() serve_connection(client, id) end) }
      tasks[#tasks + 1] = task
      step(task)
    end
  end
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
  if #readable > 0 then last_activity = now end
  if now - last_activity > opts.idle_exit then
    log("idle for %d s: exiting", opts.idle_exit)
    running = false
  end
end

for _, t in ipairs(tasks) do t.sock:close() end
server:close()
