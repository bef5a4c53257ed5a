-- `make bench`: the module beside the floor (bench/floor.c: libcurl alone),
-- against a loopback nginx serving canned Cloudflare envelopes over plain
-- HTTP and over HTTPS with HTTP/2 and a certificate made for the run.
-- Prints a table of requests per second, CPU per call, peak memory and the
-- module/floor ratios. Reports targets; asserts nothing.
--
--   lua5.4 bench/run.lua            (BENCH_N calls per row, default 2000)

local cjson = require("cjson")
local process = require("spec.support.process")
local free_port = process.free_port

local N = tonumber(os.getenv("BENCH_N") or "2000")
local LIST_ROUNDS = tonumber(os.getenv("BENCH_LIST_ROUNDS") or "5")
local REPEAT = tonumber(os.getenv("BENCH_REPEAT") or "3")
local FLAT_CALLS = tonumber(os.getenv("BENCH_FLAT_CALLS") or "100000")
local LUA = os.getenv("LUA") or "lua5.4"
local FLOOR = os.getenv("BENCH_FLOOR") or "build/bench/floor"
local ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"
local ID = "f174e90a-fafe-4643-bbbc-4a0ed4fc8415"
local PATH = "/client/v4/accounts/" .. ACCOUNT .. "/email-security/settings/impersonation_registry"

local function sh(cmd)
  local r = os.execute(cmd)
  assert(r == true or r == 0, "failed: " .. cmd)
end

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

local function read(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  p:close()
  return out
end

local function entry(i)
  return { id = ("%08x-fafe-4643-bbbc-4a0ed4fc8415"):format(i), name = "Person " .. i,
           email = ("person%d@example.com"):format(i), is_email_regex = false, comments = cjson.null,
           directory_id = cjson.null, directory_node_id = cjson.null, external_directory_node_id = cjson.null,
           provenance = "A1S_INTERNAL", created_at = "2026-01-01T00:00:00.000000Z",
           modified_at = "2026-01-01T00:00:00.000000Z", last_modified = "2026-01-01T00:00:00.000000Z" }
end

-- A directory with a certificate, ten pages of 1000 entries, and nginx's
-- configuration; nginx answers the PATCH and DELETE with fixed envelopes.
local dir = read("mktemp -d"):gsub("%s+$", "")
-- nginx's worker runs as another user: it must be able to read the pages
sh(("chmod 755 %s && mkdir -p %s/pages %s/tmp"):format(dir, dir, dir))
-- for 127.0.0.1 (the module's rows) and api.cloudflare.com (README's nginx.conf, bench/nginx_bench.lua)
sh(("openssl req -x509 -newkey rsa:2048 -nodes -keyout %s/key.pem -out %s/cert.pem -subj /CN=127.0.0.1"
  .. " -addext subjectAltName=IP:127.0.0.1,DNS:api.cloudflare.com -days 1 >/dev/null 2>&1"):format(dir, dir))
for page = 1, 10 do
  local items = {}
  for i = 1, 1000 do items[i] = entry((page - 1) * 1000 + i) end
  write(("%s/pages/page%d.json"):format(dir, page), cjson.encode({
    success = true, errors = setmetatable({}, nil), messages = {}, result = items,
    result_info = { page = page, per_page = 1000, count = 1000, total_count = 10000 } })
    :gsub('"errors":{}', '"errors":[]'):gsub('"messages":{}', '"messages":[]'))
end
local one = cjson.encode(entry(1)):gsub("%$", "")
local updated = '{"success":true,"errors":[],"messages":[],"result":' .. one .. '}'
local deleted = '{"success":true,"errors":[],"messages":[],"result":{"id":"' .. ID .. '"}}'
local http_port, https_port = free_port(), free_port()
write(dir .. "/nginx.conf", ([[
worker_processes 1;
daemon off;
error_log DIR/error.log warn;
pid DIR/nginx.pid;
events { worker_connections 256; }
http {
  access_log off;
  default_type application/json;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  client_body_temp_path DIR/tmp/body;
  proxy_temp_path DIR/tmp/proxy;
  fastcgi_temp_path DIR/tmp/fastcgi;
  uwsgi_temp_path DIR/tmp/uwsgi;
  scgi_temp_path DIR/tmp/scgi;
  server {
    listen 127.0.0.1:HTTP_PORT;
    listen 127.0.0.1:HTTPS_PORT ssl http2;
    ssl_certificate DIR/cert.pem;
    ssl_certificate_key DIR/key.pem;
    location = LIST_PATH {
      if ($request_method = POST) { return 201 'CREATED'; }
      rewrite ^ /pages/page$arg_page.json last;
    }
    location /pages/ { internal; root DIR; }
    location LIST_PATH/ {
      if ($request_method = DELETE) { return 200 'DELETED'; }
      return 200 'UPDATED';
    }
  }
}
]]):gsub("DIR", dir):gsub("HTTPS_PORT", https_port):gsub("HTTP_PORT", http_port)
   :gsub("LIST_PATH", PATH):gsub("DELETED", deleted):gsub("UPDATED", updated):gsub("CREATED", updated))
sh(("timeout 1800 nginx -p %s -c %s/nginx.conf >/dev/null 2>&1 & echo $! > %s/launcher.pid"):format(dir, dir, dir))
assert(process.wait_for_port(http_port, 10), "nginx did not start")

local function stop()
  sh(("kill $(cat %s/nginx.pid 2>/dev/null) 2>/dev/null; sleep 0.2; rm -rf %s || true"):format(dir, dir))
end

local function parse(line)
  local t = {}
  for k, v in line:gmatch("([%w_]+)=([%d%.]+)") do t[k] = tonumber(v) end
  if not t.calls then
    stop()
    error("no measurement in: " .. line)
  end
  return t
end

local ENV = ("BENCH_CA=%s/cert.pem LUA_PATH='./lua/?.lua;./?.lua;;' LUA_CPATH=%q")
  :format(dir, os.getenv("LUA_CPATH") or "./build/lua5.4/?.so;;")

local function module(args) return parse(read(ENV .. " " .. LUA .. " bench/module_bench.lua " .. args)) end
local function floor(args) return parse(read(ENV .. " " .. FLOOR .. " " .. args)) end

local body = '{"name":"John Doe","comments":null}'
local create_body = '{"name":"Jane Roe","email":"jane@example.com","is_email_regex":false}'
local rows, creates = {}, {}
for _, scheme in ipairs({ { "http", "http://127.0.0.1:" .. http_port, "HTTP/1.1" },
                          { "https", "https://127.0.0.1:" .. https_port, "HTTPS, HTTP/2" } }) do
  local base = scheme[2] .. "/client/v4"
  local item = scheme[2] .. PATH .. "/" .. ID
  local list = scheme[2] .. PATH .. "?per_page=1000"
  -- A create must never be sent twice: the module hands its body to
  -- libcurl through a read callback that cannot rewind, so libcurl cannot
  -- resend it by itself. The floor with decode, three ways: the body as
  -- POSTFIELDS (which libcurl may resend), as the module sends it, and on
  -- a new connection per call (the other way to the same guarantee).
  local floor_create = ("%s POST %d '%s'"):format(scheme[2] .. PATH, N, create_body)
  local function floor_with(env)
    return parse(read(ENV .. " FLOOR_DECODE=1 " .. env .. FLOOR .. " " .. floor_create))
  end
  creates[#creates + 1] = { scheme[3], postfields = floor_with(""), once = floor_with("FLOOR_ONCE=1 "),
                            fresh = floor_with("FLOOR_FRESH=1 ") }
  for _, case in ipairs({
    { "create (POST)", "create " .. base .. " " .. N, floor_create, true },
    { "update (PATCH)", "update " .. base .. " " .. N, ("%s PATCH %d '%s'"):format(item, N, body), true },
    { "delete (DELETE)", "delete " .. base .. " " .. N, ("%s DELETE %d"):format(item, N), true },
    { "list 10 x 1000 (each)", ("list %s 10 %d"):format(base, LIST_ROUNDS),
      ("--list '%s' 10 %d"):format(list, LIST_ROUNDS) },
  }) do
    -- floor and module take turns, REPEAT times each; the best run of each
    -- counts, which keeps a noisy neighbour from deciding a ratio
    local best = {}
    local runs = {
      { "m", function() return module(case[2]) end },
      { "f", function() return floor(case[3]) end },
      -- context: the floor that also decodes each answer, work no client can skip
      { "fd", case[4] and function() return parse(read(ENV .. " FLOOR_DECODE=1 " .. FLOOR .. " " .. case[3])) end },
    }
    for _ = 1, REPEAT do
      for _, run in ipairs(runs) do
        if run[2] then
          local t = run[2]()
          local b = best[run[1]]
          if not b or t.calls / t.wall > b.calls / b.wall then b = t end
          if best[run[1]] and best[run[1]].cpu_us < b.cpu_us then b.cpu_us = best[run[1]].cpu_us end
          best[run[1]] = b
        end
      end
    end
    local m, f, fd = best.m, best.f, best.fd
    rows[#rows + 1] = { scheme[3], case[1], m, f, fd }
  end
end
local flat = read(ENV .. " " .. LUA .. " bench/module_bench.lua flat http://127.0.0.1:" .. http_port
  .. "/client/v4 " .. FLAT_CALLS)
-- calls made inside nginx, with README's configuration, against the same API
local inside_nginx = read(("LUA_PATH='./lua/?.lua;./?.lua;;' %s bench/nginx_bench.lua %d %s/cert.pem 2>&1")
  :format(LUA, https_port, dir))
stop()

print(("\n%d calls per update/delete row, %d walks of 10 pages x 1000 entries per list row, best of %d;"
  .. " one client, sequential, loopback nginx, %s"):format(N, LIST_ROUNDS, REPEAT, read("uname -m"):gsub("%s+$", "")))
print("| transport | call | module req/s | floor req/s | throughput ratio | module CPU us/call | floor CPU us/call"
  .. " | CPU ratio | module peak RSS | floor peak RSS | floor+decode CPU us/call |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for _, r in ipairs(rows) do
  local m, f, fd = r[3], r[4], r[5]
  local mrps, frps = m.calls / m.wall, f.calls / f.wall
  print(("| %s | %s | %.0f | %.0f | %.3f | %.1f | %.1f | %.3f | %.1f MiB | %.1f MiB | %s |"):format(
    r[1], r[2], mrps, frps, mrps / frps, m.cpu_us, f.cpu_us, m.cpu_us / f.cpu_us,
    m.peak_kib / 1024, f.peak_kib / 1024, fd and ("%.1f"):format(fd.cpu_us) or "(in floor)"))
end
print("\nWhat sending a create at most once costs (floor + decode, one libcurl handle, CPU us per create, req/s):")
for _, c in ipairs(creates) do
  local function fig(t) return ("%.1f us, %.0f req/s"):format(t.cpu_us, t.calls / t.wall) end
  print(("%s: body as POSTFIELDS (libcurl may resend it) %s; through a read callback that cannot rewind"
    .. " (the module's way) %s; a new connection per create %s"):format(c[1], fig(c.postfields), fig(c.once),
    fig(c.fresh)))
end
local fl = parse(flat)
print(("\nmemory across %d updates (after 1,000 warm-up calls): RSS %d KiB -> %d KiB (%+d KiB)")
  :format(fl.calls, fl.rss_before_kib, fl.rss_after_kib, fl.rss_after_kib - fl.rss_before_kib))
print("targets: throughput ratio >= 0.9, CPU ratio <= 1.3 (update, delete), list within 1.2,"
  .. " peak RSS <= 16 MiB, flat memory")
io.write(inside_nginx)
