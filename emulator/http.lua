-- HTTP/1.1 on the wire, inside a connection's coroutine: reading one
-- request (line, headers, a Content-Length body; pipelined bytes stay for
-- the next), writing one reply (headers in the order set, chunked or cut
-- short when a fault says so), and the query string. A socket that would
-- block, or a pause, yields to the scheduler in server.lua:
-- coroutine.yield("read" | "write", sock) or ("sleep", until).

local socket = require("socket")
local json = require("emulator.json")

local null = json.null

local http = {}

local MAX_LINE = 16 * 1024
local MAX_HEADERS = 100
local MAX_BODY = 4 * 1024 * 1024

local REASONS = {
  [100] = "Continue", [200] = "OK", [201] = "Created", [204] = "No Content", [301] = "Moved Permanently",
  [302] = "Found", [304] = "Not Modified", [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden",
  [404] = "Not Found", [405] = "Method Not Allowed", [408] = "Request Timeout", [409] = "Conflict",
  [411] = "Length Required", [413] = "Payload Too Large", [422] = "Unprocessable Entity",
  [429] = "Too Many Requests", [431] = "Request Header Fields Too Large", [500] = "Internal Server Error",
  [502] = "Bad Gateway", [503] = "Service Unavailable", [504] = "Gateway Timeout", [520] = "Unknown Error",
  [521] = "Web Server Is Down", [522] = "Connection Timed Out", [524] = "A Timeout Occurred",
}

--- Waits ms milliseconds without holding up other connections.
function http.sleep_ms(ms)
  if ms and ms > 0 then coroutine.yield("sleep", socket.gettime() + ms / 1000) end
end
local sleep_ms = http.sleep_ms

local function ray_id()
  return string.format("%016x-EMU", math.random(0))
end

local function url_decode(s)
  s = s:gsub("+", " ")
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end
http.url_decode = url_decode

--- name -> the last value given, and name -> every value given in order
--- (a list parameter repeats its name: domain=a&domain=b).
function http.parse_query(q)
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
http.reader = new_reader

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

--- The answer as it goes on the wire, with the header order kept; faults
--- change it (set, chunk_size, body_delay_ms, truncate_to, reset, keep).
function http.reply(answer)
  local reply = { status = answer.status, body = answer.body or "", keep = true, names = {}, values = {} }
  function reply.set(name, value)
    local lower = name:lower()
    if not reply.values[lower] then reply.names[#reply.names + 1] = name end
    if value == null then value = nil end
    if type(value) == "number" then value = json.number(value) end
    reply.values[lower] = value
  end
  if answer.json ~= false then reply.set("Content-Type", "application/json") end
  reply.set("cf-ray", ray_id())
  for k, v in pairs(answer.headers or {}) do reply.set(k, v) end
  return reply
end

--- Writes one reply; false when the connection must close after it.
function http.write(sock, reply)
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

local TOKEN = "^[%w!#$%%&'*+%-.^_`|~]+$"

--- The next request off the connection: a table, false when the peer is
--- done, or nil and the status and message to refuse it with.
function http.read_request(reader)
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

return http
