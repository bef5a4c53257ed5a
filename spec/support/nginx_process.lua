-- Starts a real nginx with the Lua module (Debian's nginx and
-- libnginx-mod-http-lua) for a spec: one worker on a loopback port, the
-- repository's Lua modules and its LuaJIT build of the C core on the
-- package paths, the proxy locations of README.md's "Inside nginx" section,
-- and the spec's own locations. It stops with stop(), and by itself
-- after `lifetime` seconds if a run dies before that.

local files = require("spec.support.files")
local process = require("spec.support.process")

local nginx_process = {}

local MODULES = {
  "/usr/lib/nginx/modules/ndk_http_module.so",
  "/usr/lib/nginx/modules/ngx_http_lua_module.so",
}
nginx_process.CORE = "build/luajit/cloudflare/email_security/core.so"


--- nil when nginx, its Lua module and the LuaJIT core are all there, else
--- what is missing.
function nginx_process.missing()
  if files.command_output("command -v nginx") == "" then return "nginx is not installed" end
  for _, m in ipairs(MODULES) do
    if not files.exists(m) then return m .. " is missing (libnginx-mod-http-lua)" end
  end
  if not files.exists(nginx_process.CORE) then
    return nginx_process.CORE .. " is not built (make test builds it)"
  end
end

-- The proxy locations exactly as README.md's "Inside nginx" shows them, so
-- that the configuration users copy is the one the spec runs.
local function readme_locations()
  local text = assert(files.read("README.md"), "README.md is missing")
  return assert(text:match("\n```nginx\n(.-)\n```\n"), "README.md has no ```nginx block")
end

--- opts: locations (nginx text inside the server block, beside README's),
--- http (nginx text for the http block: upstreams), lifetime (seconds,
--- default 120). Returns { port, url, dir,
--- error_log(), stop() }.
function nginx_process.start(opts)
  local root = files.command_output("pwd")
  local dir = files.command_output("mktemp -d")
  -- a worker started by root runs as nobody: it must reach these files
  os.execute(("chmod 755 %s && mkdir -p %s/tmp"):format(dir, dir))
  local port = process.free_port()
  local conf = ([[
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
worker_processes 1;
daemon off;
error_log DIR/error.log info;
pid DIR/nginx.pid;
events { worker_connections 64; }
http {
  access_log off;
  default_type application/json;
  client_body_temp_path DIR/tmp/body;
  proxy_temp_path DIR/tmp/proxy;
  fastcgi_temp_path DIR/tmp/fastcgi;
  uwsgi_temp_path DIR/tmp/uwsgi;
  scgi_temp_path DIR/tmp/scgi;
  lua_package_path "ROOT/lua/?.lua;;";
  lua_package_cpath "ROOT/build/luajit/?.so;;";
HTTP_BLOCK
  server {
    listen 127.0.0.1:PORT;
PROXY
LOCATIONS
  }
}
]]):gsub("PROXY", (readme_locations():gsub("%%", "%%%%")))
    :gsub("LOCATIONS", (opts.locations:gsub("%%", "%%%%")))
    :gsub("HTTP_BLOCK", ((opts.http or ""):gsub("%%", "%%%%")))
    :gsub("DIR", dir):gsub("ROOT", root):gsub("PORT", tostring(port))
  local f = assert(io.open(dir .. "/nginx.conf", "wb"))
  f:write(conf)
  f:close()

  os.execute(("timeout %d nginx -p %s -c %s/nginx.conf >%s/stderr.log 2>&1 &")
    :format(opts.lifetime or 120, dir, dir, dir))
  local function error_log()
    return (files.read(dir .. "/error.log") or "") .. (files.read(dir .. "/stderr.log") or "")
  end
  local server = { port = port, url = "http://127.0.0.1:" .. port, dir = dir, error_log = error_log }
  function server.stop()
    process.stop(tonumber(files.read(dir .. "/nginx.pid") or ""))
    os.execute("rm -rf " .. dir)
  end
  if not process.wait_for_port(port, 10) then
    local log = error_log()
    server.stop()
    error("nginx did not start:\n" .. log, 2)
  end
  return server
end

return nginx_process
