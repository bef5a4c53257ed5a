-- Canned answers, byte for byte, for spec/hosts/transports_agree_spec.lua: the
-- same answer goes to the libcurl transport and to the nginx one, which
-- must make the same of it. A base URL names its answer by its first path
-- segment (http://127.0.0.1:PORT/gzip/client/v4 answers every request
-- with the answer "gzip"), so that both transports reach the same bytes by
-- the same URL.
--
-- The server is Lua 5.4's, whatever Lua runs the spec (the file reads as
-- Lua 5.1 too, for the names): canned.start() runs it as a script, one
-- connection at a time, each answered and then closed ("Connection:
-- close", so that no client sends a second request on it). It exits by
-- itself when nothing has come for `idle` seconds, and `timeout` ends it
-- after `lifetime` seconds whatever happens.

local canned = {}

local ENTRY_ID = "8d5f2d52-6f3c-4c1e-9a59-3c1b2a7e0f11"
canned.ENTRY_ID = ENTRY_ID

local ENTRY = '{"success":true,"errors":[],"messages":[],"result":{"id":"' .. ENTRY_ID
  .. '","name":"Alice","email":"alice@example.com","is_email_regex":false,"comments":null}}'
local NOT_FOUND = '{"success":false,"errors":[{"code":1003,"message":"Impersonation registry entry not found"}],'
  .. '"messages":[],"result":null}'
local REFUSED_200 = '{"success":false,"errors":[{"code":1000,"message":"Emulated failure"}],'
  .. '"messages":[],"result":null}'
local HTML_502 = "<!DOCTYPE html>\n<html><head><title>api.cloudflare.com | 502: Bad gateway</title></head>"
  .. "<body>Bad gateway</body></html>\n"
local CREATED = '{"success":true,"errors":[],"messages":[],"result":{"id":"' .. ENTRY_ID
  .. '","name":"Alice","email":"alice@example.com","is_email_regex":false,"comments":null,'
  .. '"created_at":"2026-01-01T00:00:00Z"}}'

-- gzip's own output: the gzip program, as the emulator uses it.
local function gzip(data)
  local file = os.tmpname()
  local pipe = assert(io.popen("gzip -c -n -9 > '" .. file .. "'", "w"))
  pipe:write(data)
  pipe:close()
  local f = assert(io.open(file, "rb"))
  local packed = f:read("a")
  f:close()
  os.remove(file)
  return packed
end

-- The deflate data inside a gzip member made with -n (a 10-byte header,
-- an 8-byte trailer).
local function raw_deflate(data)
  local g = gzip(data)
  assert(g:byte(4) == 0, "gzip -n wrote header fields")
  return g:sub(11, -9)
end

local function adler32(data)
  local a, b = 1, 0
  for i = 1, #data do
    a = (a + data:byte(i)) % 65521
    b = (b + a) % 65521
  end
  return b * 65536 + a
end

local function u32_big_endian(n)
  return string.char(math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
end

-- RFC 1950: what HTTP calls "deflate".
local function zlib(data)
  return "\120\156" .. raw_deflate(data) .. u32_big_endian(adler32(data))
end

local function chunked(body, size)
  local parts = {}
  for i = 1, #body, size do
    local piece = body:sub(i, i + size - 1)
    parts[#parts + 1] = ("%x\r\n%s\r\n"):format(#piece, piece)
  end
  return table.concat(parts) .. "0\r\n\r\n"
end

local REASONS = { [200] = "OK", [201] = "Created", [204] = "No Content", [404] = "Not Found",
                  [429] = "Too Many Requests", [502] = "Bad Gateway", [503] = "Service Unavailable" }

-- An answer on the wire. headers: a list of { name, value }, sent in that
-- order. o.length: the Content-Length to claim (default: the body's);
-- o.chunk: send the body chunked, in pieces of that size; o.raw_body: the
-- bytes after the header block, as they are.
local function answer(status, headers, body, o)
  o = o or {}
  local lines = { ("HTTP/1.1 %d %s"):format(status, REASONS[status] or "Other") }
  lines[#lines + 1] = "Connection: close"
  for _, h in ipairs(headers) do lines[#lines + 1] = h[1] .. ": " .. h[2] end
  local wire = body
  if o.chunk then
    lines[#lines + 1] = "Transfer-Encoding: chunked"
    wire = chunked(body, o.chunk)
  elseif status ~= 204 then
    lines[#lines + 1] = "Content-Length: " .. (o.length or #body)
  end
  return table.concat(lines, "\r\n") .. "\r\n\r\n" .. (o.raw_body or wire)
end

local JSON = { "Content-Type", "application/json" }
local RAY = { "CF-RAY", "8f1c2a3b4c5d6e7f-LHR" }

local function json(status, body, extra, o)
  local headers = { JSON, RAY }
  for _, h in ipairs(extra or {}) do headers[#headers + 1] = h end
  return answer(status, headers, body, o)
end

local function encoded(coding, body)
  return json(200, body, { { "Content-Encoding", coding } })
end

-- name -> a function that makes the answer's bytes. The spec names what
-- each must come to (spec/hosts/transports_agree_spec.lua).
canned.ANSWERS = {
  plain = function() return json(200, ENTRY) end,
  gzip = function() return encoded("gzip", gzip(ENTRY)) end,
  gzip_chunked = function() return json(200, gzip(ENTRY), { { "Content-Encoding", "gzip" } }, { chunk = 9 }) end,
  gzip_upper_case = function() return encoded("GZIP", gzip(ENTRY)) end,
  x_gzip = function() return encoded("x-gzip", gzip(ENTRY)) end,
  -- gzip named, zlib's format sent: libcurl takes both for "gzip"
  gzip_holding_zlib = function() return encoded("gzip", zlib(ENTRY)) end,
  deflate = function() return encoded("deflate", zlib(ENTRY)) end,
  -- no zlib header: sent by some servers, taken by libcurl
  deflate_raw = function() return encoded("deflate", raw_deflate(ENTRY)) end,
  identity = function() return encoded("identity", ENTRY) end,
  gzip_twice = function() return encoded("gzip, gzip", gzip(gzip(ENTRY))) end,
  gzip_two_header_lines = function()
    return json(200, gzip(gzip(ENTRY)), { { "Content-Encoding", "gzip" }, { "Content-Encoding", "gzip" } })
  end,
  gzip_api_error = function() return json(404, gzip(NOT_FOUND), { { "Content-Encoding", "gzip" } }) end,
  gzip_empty = function() return encoded("gzip", "") end,
  -- a small envelope padded with spaces: far larger decoded than sent
  gzip_large = function() return encoded("gzip", gzip(ENTRY:sub(1, -2) .. (" "):rep(200000) .. "}")) end,
  gzip_corrupt = function() return encoded("gzip", "\31\139\8\0\0\0\0\0\0\3" .. ("\255"):rep(40)) end,
  gzip_ends_early = function() local g = gzip(ENTRY) return encoded("gzip", g:sub(1, #g - 30)) end,
  gzip_then_more = function() return encoded("gzip", gzip(ENTRY) .. "trailing bytes") end,
  br = function() return encoded("br", "\11\3\128" .. ENTRY .. "\3") end,
  zstd = function() return encoded("zstd", "\40\181\47\253" .. ENTRY) end,
  compress = function() return encoded("compress", ENTRY) end,
  unknown_coding = function() return encoded("x-made-up", ENTRY) end,
  cut_short = function() return json(200, ENTRY:sub(1, 40), nil, { length = #ENTRY }) end,
  cut_short_gzip = function() local g = gzip(ENTRY) return json(200, g:sub(1, 20),
    { { "Content-Encoding", "gzip" } }, { length = #g }) end,
  created_cut_short = function() return json(201, CREATED:sub(1, 50), nil, { length = #CREATED }) end,
  html_502 = function() return answer(502, { { "Content-Type", "text/html" }, RAY }, HTML_502) end,
  success_false_200 = function() return json(200, REFUSED_200) end,
  not_found = function() return json(404, NOT_FOUND) end,
  empty_200 = function() return json(200, "") end,
  no_content_204 = function() return answer(204, { RAY }, "") end,
  not_json = function() return answer(200, { { "Content-Type", "text/plain" }, RAY }, "hello") end,
  retry_after_429 = function()
    return json(429, '{"success":false,"errors":[{"code":971,"message":"slow down"}],"messages":[],"result":null}',
                { { "Retry-After", "30" } })
  end,
  -- one header twice, one spelling: the first counts in both transports
  retry_after_twice = function()
    return json(429, '{"success":false,"errors":[{"code":971,"message":"slow down"}],"messages":[],"result":null}',
                { { "Retry-After", "30" }, { "Retry-After", "60" } })
  end,
  -- two spellings, the canonical one first
  retry_after_two_spellings = function()
    return json(429, '{"success":false,"errors":[{"code":971,"message":"slow down"}],"messages":[],"result":null}',
                { { "Retry-After", "30" }, { "retry-after", "60" } })
  end,
  -- two spellings, the other one first: libcurl takes the first to
  -- arrive, nginx cannot know which came first (README, "Inside nginx")
  retry_after_two_spellings_reversed = function()
    return json(429, '{"success":false,"errors":[{"code":971,"message":"slow down"}],"messages":[],"result":null}',
                { { "retry-after", "60" }, { "Retry-After", "30" } })
  end,
  should_not_retry_503 = function()
    return json(503, '{"success":false,"errors":[{"code":10000,"message":"busy"}],"messages":[],"result":null}',
                { { "x-should-retry", "false" } })
  end,
}

canned.NAMES = {}
for name in pairs(canned.ANSWERS) do canned.NAMES[#canned.NAMES + 1] = name end
table.sort(canned.NAMES)

-- The server side, run as a script.
local function serve(port, idle)
  local socket = require("socket")
  local server = assert(socket.bind("127.0.0.1", port))
  server:settimeout(0.2)
  local made = {}
  local last = socket.gettime()
  while socket.gettime() - last < idle do
    local c = server:accept()
    if c then
      last = socket.gettime()
      c:settimeout(5)
      local line = c:receive("*l")
      local length = 0
      while line do
        local header = c:receive("*l")
        if not header or header == "" then break end
        local n = header:match("^[Cc]ontent%-[Ll]ength:%s*(%d+)")
        if n then length = tonumber(n) end
      end
      if line and length > 0 then c:receive(length) end
      local name = line and line:match("^%u+ /([%w_]+)/")
      if name == "stop" then
        c:close()
        break
      end
      local make = canned.ANSWERS[name]
      if make then
        made[name] = made[name] or make()
        c:send(made[name])
      elseif line then
        c:send(answer(404, { { "Content-Type", "text/plain" } }, "no canned answer named " .. tostring(name)))
      end
      c:close()
    end
  end
  server:close()
end

--- Starts the server on a free loopback port: { port, base_url(name),
--- stop() }.
function canned.start(opts)
  opts = opts or {}
  local process = require("spec.support.process")
  local port = process.free_port()
  os.execute(("env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4 timeout %d lua5.4"
    .. " spec/support/nginx_canned_api.lua %d %d >/dev/null 2>&1 &")
    :format(opts.lifetime or 300, port, opts.idle or 60))
  assert(process.wait_for_port(port, 10), "the canned API did not start")
  local server = { port = port }
  function server.base_url(name) return ("http://127.0.0.1:%d/%s/client/v4"):format(port, name) end
  function server.stop()
    local socket = require("socket")
    local c = socket.connect("127.0.0.1", port)
    if c then
      c:send("GET /stop/ HTTP/1.0\r\n\r\n")
      c:close()
    end
  end
  return server
end

if arg and arg[0] and arg[0]:find("nginx_canned_api%.lua$") and tonumber(arg[1]) then
  serve(tonumber(arg[1]), tonumber(arg[2]) or 60)
end

return canned
