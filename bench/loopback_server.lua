-- The canned API the benches call: a loopback nginx serving fixed
-- Cloudflare envelopes for the impersonation registry, over plain HTTP,
-- HTTPS with HTTP/1.1 and HTTPS with HTTP/2 (three ports; a certificate
-- made for the run). An entry's path answers GET and PATCH with the entry,
-- DELETE with its id; the collection answers POST with the entry and GET
-- with one of ten pages of 1000 entries (?page=1..10). nginx does so little
-- per request that what is measured is the client.
--
-- With a delay (start{ read_ms = 50, write_ms = 150 }: bench/in_flight_bench.lua)
-- the same answers come from nginx's Lua module (libnginx-mod-http-lua),
-- each after ngx.sleep: read_ms for a GET, write_ms for a POST, PATCH, PUT
-- or DELETE, a sleep that holds no worker, so any number of requests can
-- wait at once. Then a GET of the collection without `page` is page 1,
-- and a page past the last is an empty page (as the API answers it, and
-- what ends an auto-paging client's walk). Without a delay the
-- configuration is the one the other benches have always had.
--
--   local server = require("bench.loopback_server").start()   (or start(100): 100 pages)
--   start{ pages = 100, read_ms = 50, write_ms = 150 }      (a delay in milliseconds)
--   server.http, server.https1, server.https2   base URLs, ".../client/v4"
--   server.ca, server.dir, server.https_port2   the certificate, the directory
--   server.stop()

local process = require("spec.support.process")

local server = {}

server.ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"
server.ID = "f174e90a-fafe-4643-bbbc-4a0ed4fc8415"
server.PATH = "/client/v4/accounts/" .. server.ACCOUNT .. "/email-security/settings/impersonation_registry"
server.PAGES = 10

local function sh(cmd)
  local r = os.execute(cmd)
  assert(r == true or r == 0, "failed: " .. cmd)
end

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

local read = require("spec.support.files").command_output

-- One entry as the API writes it, by hand and in a fixed order (cjson's
-- order follows the hash seed, which differs from run to run and would move
-- the instruction counts). The directory fields are null, as for every entry
-- made through the API.
local function entry(i)
  return ('{"id":"%08x-fafe-4643-bbbc-4a0ed4fc8415","name":"Person %d","email":"person%d@example.com",'
    .. '"is_email_regex":false,"comments":null,"directory_id":null,"directory_node_id":null,'
    .. '"external_directory_node_id":null,"provenance":"A1S_INTERNAL","created_at":"2026-01-01T00:00:00.000000Z",'
    .. '"modified_at":"2026-01-01T00:00:00.000000Z","last_modified":"2026-01-01T00:00:00.000000Z"}'):format(i, i, i)
end
server.entry = entry

local function envelope(result, info)
  return '{"success":true,"errors":[],"messages":[],"result":' .. result
    .. (info and (',"result_info":' .. info) or "") .. '}'
end

local CONF = [[
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
  ssl_certificate DIR/cert.pem;
  ssl_certificate_key DIR/key.pem;
  server {
    listen 127.0.0.1:HTTP_PORT;
    listen 127.0.0.1:HTTPS1_PORT ssl;
    listen 127.0.0.1:HTTPS2_PORT ssl http2;
    location = LIST_PATH {
      if ($request_method = POST) { return 201 'ENTRY'; }
      rewrite ^ /pages/page$arg_page.json last;
    }
    location /pages/ { internal; root DIR; }
    location LIST_PATH/ {
      if ($request_method = DELETE) { return 200 'DELETED'; }
      return 200 'ENTRY';
    }
  }
}
]]

-- The delayed variant: the same server, its answers written by Lua after a
-- sleep. The pages are still nginx's static files (ngx.exec to the
-- internal location); a body sent is read and dropped before the sleep,
-- as `return` drops it in the configuration above.
local DELAYED_LOCATIONS = [[
    location = LIST_PATH {
      content_by_lua_block {
        ngx.req.discard_body()
        if ngx.req.get_method() == "POST" then
          ngx.sleep(WRITE_S)
          ngx.status = 201
          ngx.print(ENTRY_Q)
          return
        end
        ngx.sleep(READ_S)
        local page = tonumber(ngx.var.arg_page) or 1
        if page >= 1 and page <= PAGES and page == math.floor(page) then
          return ngx.exec("/pages/page" .. page .. ".json")
        end
        return ngx.exec("/pages/empty.json")
      }
    }
    location /pages/ { internal; root DIR; }
    location LIST_PATH/ {
      content_by_lua_block {
        ngx.req.discard_body()
        local method = ngx.req.get_method()
        ngx.sleep(method == "GET" and READ_S or WRITE_S)
        ngx.print(method == "DELETE" and DELETED_Q or ENTRY_Q)
      }
    }
]]

--- s as one word for the shell
local function quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end
server.quote = quote

-- Three loopback ports, none the same (each is free when asked, not held).
local function three_ports()
  while true do
    local a, b, c = process.free_port(), process.free_port(), process.free_port()
    if a ~= b and b ~= c and a ~= c then return a, b, c end
  end
end

--- opts: how many pages of 1000 the list has (default server.PAGES), or a
--- table { pages = N, read_ms = ms, write_ms = ms } (a delay: see above;
--- 0 or nil for none).
function server.start(opts)
  if type(opts) ~= "table" then opts = { pages = opts } end
  local pages = opts.pages or server.PAGES
  local read_ms, write_ms = opts.read_ms or 0, opts.write_ms or 0
  local delayed = read_ms > 0 or write_ms > 0
  local dir = read("mktemp -d")
  local q = quote(dir)
  -- nginx's worker runs as another user: it must be able to read the pages
  sh(("chmod 755 %s && mkdir -p %s/pages %s/tmp"):format(q, q, q))
  -- for 127.0.0.1 (the clients) and api.cloudflare.com (README's nginx.conf, bench/nginx_bench.lua)
  sh(("openssl req -x509 -newkey rsa:2048 -nodes -keyout %s/key.pem -out %s/cert.pem -subj /CN=127.0.0.1"
    .. " -addext subjectAltName=IP:127.0.0.1,DNS:api.cloudflare.com -days 1 >/dev/null 2>&1"):format(q, q))
  for page = 1, pages do
    local items = {}
    for i = 1, 1000 do items[i] = entry((page - 1) * 1000 + i) end
    write(("%s/pages/page%d.json"):format(dir, page), envelope("[" .. table.concat(items, ",") .. "]",
      ('{"page":%d,"per_page":1000,"count":1000,"total_count":%d}'):format(page, pages * 1000)))
  end
  if delayed then
    -- what a page past the last answers (the page number is not echoed:
    -- the clients read an empty page as the end whatever it says)
    write(dir .. "/pages/empty.json", envelope("[]", ('{"per_page":1000,"count":0,"total_count":%d}')
      :format(pages * 1000)))
  end
  local one = entry(1):gsub("00000001%-", server.ID:sub(1, 9))
  local ports = {}
  ports.HTTP_PORT, ports.HTTPS1_PORT, ports.HTTPS2_PORT = three_ports()
  local conf = CONF
  if delayed then
    -- everything from the first location to the server's end is the Lua one
    local first = conf:find("    location = LIST_PATH", 1, true)
    local last = conf:find("  }\n}\n$")
    conf = "load_module /usr/lib/nginx/modules/ndk_http_module.so;\n"
      .. "load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;\n"
      .. conf:sub(1, first - 1) .. DELAYED_LOCATIONS .. conf:sub(last)
    -- the answers as Lua strings (%q), a sleep in seconds
    conf = conf:gsub("ENTRY_Q", (("%q"):format(envelope(one)):gsub("%%", "%%%%")))
      :gsub("DELETED_Q", (("%q"):format(envelope('{"id":"' .. server.ID .. '"}')):gsub("%%", "%%%%")))
      :gsub("READ_S", ("%.3f"):format(read_ms / 1000)):gsub("WRITE_S", ("%.3f"):format(write_ms / 1000))
      :gsub("PAGES", tostring(pages))
  end
  conf = conf:gsub("DIR", dir):gsub("LIST_PATH", server.PATH)
    :gsub("DELETED", envelope('{"id":"' .. server.ID .. '"}')):gsub("ENTRY", envelope(one))
  for name, port in pairs(ports) do conf = conf:gsub(name, port) end
  write(dir .. "/nginx.conf", conf)
  -- `timeout`: gone after half an hour even if whoever started it is not;
  -- --foreground keeps it (and nginx) in the caller's process group, so
  -- that a Ctrl-C or a TERM to make's group stops nginx too. The shell
  -- around it ignores those and removes the directory (its private key,
  -- its pages) once nginx is gone, however that came about, except when
  -- nginx could not start (status 1): its messages are then read below.
  sh(("(trap '' INT TERM HUP; timeout --foreground 1800 nginx -p %s -c %s/nginx.conf >%s/nginx.out 2>&1;"
    .. " [ $? = 1 ] || rm -rf %s) >/dev/null 2>&1 &"):format(q, q, q, q))
  local function stop()
    os.execute(("kill $(cat %s/nginx.pid 2>/dev/null) 2>/dev/null; sleep 0.2; rm -rf %s"):format(q, q))
  end
  for _, port in pairs(ports) do
    if not process.wait_for_port(port, 10) then
      local out = read("cat " .. q .. "/nginx.out " .. q .. "/error.log 2>/dev/null")
      stop()
      error("the bench's nginx did not start:\n" .. out, 0)
    end
  end
  local s = {
    dir = dir, ca = dir .. "/cert.pem", https_port2 = ports.HTTPS2_PORT,
    http = "http://127.0.0.1:" .. ports.HTTP_PORT .. "/client/v4",
    https1 = "https://127.0.0.1:" .. ports.HTTPS1_PORT .. "/client/v4",
    https2 = "https://127.0.0.1:" .. ports.HTTPS2_PORT .. "/client/v4",
  }
  s.stop = stop
  return s
end

return server
