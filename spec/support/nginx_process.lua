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

-- The proxy locations without an upstream block (spec/support/nginx_direct.conf),
-- which let each call name its own server; README.md's whole nginx.conf
-- is run by nginx_process.start_readme.
local function direct_locations()
  return assert(files.read("spec/support/nginx_direct.conf"), "spec/support/nginx_direct.conf is missing")
end

--- README.md's nginx.conf, as it is.
function nginx_process.readme_text()
  local text = assert(files.read("README.md"), "README.md is missing")
  return assert(text:match("\n```nginx\n(.-)\n```\n"), "README.md has no ```nginx block")
end

local function swap(conf, from, to)
  local start, stop = conf:find(from, 1, true)
  assert(start, "README.md's nginx.conf no longer has: " .. from)
  return conf:sub(1, start - 1) .. to .. conf:sub(stop + 1)
end
nginx_process.swap = swap

--- README.md's nginx.conf for a run here, for nginx_process.start{ conf
--- = ... }: only what must differ changes. api: the API's "host:port";
--- ca: the file of the certificate it is to trust; the listening port
--- (PORT) and the code (the copy under ROOT) are the run's; the access
--- log goes beside the configuration (the default, /var/log/nginx, is
--- root's). locations (optional): nginx text added to the server block,
--- beside README's own locations, which stay as written (the spec's
--- handlers, spec/support/nginx_app.lua, load from ROOT/spec).
function nginx_process.readme_conf(api, ca, locations)
  local conf = nginx_process.readme_text()
  conf = swap(conf, "listen 8080;", "listen 127.0.0.1:PORT;\n" .. (locations or ""))
  conf = swap(conf, "server api.cloudflare.com:443;", "server " .. api .. ";")
  conf = swap(conf, "/etc/ssl/certs/ca-certificates.crt", ca)
  conf = swap(conf, 'lua_package_path "/usr/local/share/lua/5.1/?.lua;;";',
              'lua_package_path "ROOT/lua/?.lua;ROOT/?.lua;;";')
  conf = swap(conf, 'lua_package_cpath "/usr/local/lib/lua/5.1/?.so;;";',
              'lua_package_cpath "ROOT/build/luajit/?.so;;";\n    access_log DIR/logs/access.log;')
  return conf
end

--- opts: locations (nginx text inside the server block, beside the proxy
--- locations), http (nginx text for the http block: upstreams), or conf (a
--- whole configuration instead); files (name -> text, written beside it),
--- env (the environment nginx starts with), lifetime (seconds, default
--- 120). DIR, ROOT (the copy of the code) and PORT in the text are
--- replaced. Returns { port, url, dir, error_log(), stop() }.
function nginx_process.start(opts)
  local dir = files.command_output("mktemp -d")
  -- A worker started by root runs as nobody, which may not read the
  -- checkout (a clone under /root is 0700): what it loads is copied into
  -- a directory of its own that everyone may read.
  local root = dir .. "/code"
  assert(os.execute(("chmod 755 %s && mkdir -p %s/tmp %s/build/luajit/cloudflare/email_security %s/spec"
    .. " && cp -R lua %s/ && cp -R spec/support %s/spec/ && cp %s %s/build/luajit/cloudflare/email_security/"
    .. " && chmod -R a+rX %s"):format(dir, dir, root, root, root, root, nginx_process.CORE, root, root)))
  local port = process.free_port()
  local conf = opts.conf or ([[
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
  lua_package_path "ROOT/lua/?.lua;ROOT/?.lua;;";
  lua_package_cpath "ROOT/build/luajit/?.so;;";
HTTP_BLOCK
  server {
    listen 127.0.0.1:PORT;
PROXY
LOCATIONS
  }
}
]]):gsub("PROXY", (direct_locations():gsub("%%", "%%%%")))
    :gsub("LOCATIONS", ((opts.locations or ""):gsub("%%", "%%%%")))
    :gsub("HTTP_BLOCK", ((opts.http or ""):gsub("%%", "%%%%")))
  conf = conf:gsub("DIR", dir):gsub("ROOT", root):gsub("PORT", tostring(port))
  local f = assert(io.open(dir .. "/nginx.conf", "wb"))
  f:write(conf)
  f:close()
  for name, text in pairs(opts.files or {}) do
    f = assert(io.open(dir .. "/" .. name, "wb"))
    f:write(text)
    f:close()
  end
  os.execute(("mkdir -p %s/logs && chmod -R a+rX %s"):format(dir, dir))

  -- a whole configuration of the caller's (opts.conf) names no pid or
  -- error log of its own: they are given here
  local globals = opts.conf and (" -g 'daemon off; pid %s/nginx.pid; error_log %s/error.log info;'"):format(dir, dir)
    or ""
  local env = ""
  for k, v in pairs(opts.env or {}) do
    assert(tostring(k):find("^[%a_][%w_]*$"), "nginx_process: not a variable name: " .. tostring(k))
    env = env .. k .. "='" .. tostring(v):gsub("'", "'\\''") .. "' "
  end
  os.execute(("%s timeout %d nginx -p %s -c %s/nginx.conf%s >%s/stderr.log 2>&1 &")
    :format(env ~= "" and ("env " .. env) or "", opts.lifetime or 120, dir, dir, globals, dir))
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
