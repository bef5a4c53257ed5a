-- The bench row for calls made inside nginx (`make bench` runs it after its
-- table): README.md's nginx.conf, its addresses changed to the bench's
-- canned API (HTTPS, a certificate made for the run), one worker, and a
-- handler that makes one update per request. ab keeps CONCURRENCY requests
-- in flight; the worker's CPU time comes from /proc. Beside it the same
-- calls through `proxy_pass $cf_es_url` (no upstream pool: a new
-- connection and TLS handshake per call), the cost of getting it wrong.
-- Reports; asserts nothing.
--
--   lua5.4 bench/nginx_bench.lua API_PORT CA_FILE       (from bench/run.lua)

local nginx_process = require("spec.support.nginx_process")
local files = require("spec.support.files")
local doc = require("bench.doc")

local API_PORT, CA = assert(tonumber(arg[1]), "API_PORT"), assert(arg[2], "CA_FILE")
local CALLS = tonumber(os.getenv("BENCH_NGINX_CALLS") or "5000")
local CONCURRENCY = tonumber(os.getenv("BENCH_NGINX_CONCURRENCY") or "50")
local ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"
local ID = "f174e90a-fafe-4643-bbbc-4a0ed4fc8415"
local TICKS = tonumber(files.command_output("getconf CLK_TCK")) or 100

local HANDLER = ([[
        location = /bench/update {
            content_by_lua_block {
                local es = require "cloudflare.email_security"
                local cf = package.loaded["bench.client"] or es.new()
                package.loaded["bench.client"] = cf
                local entry, err = cf.impersonation_registry:update("ID", { name = "John Doe", comments = es.null })
                if not entry then ngx.status = 502 ngx.say(tostring(err)) return end
                ngx.say(entry.id)
            }
        }
]]):gsub("ID", ID)

-- README's configuration for the bench (nginx_process.readme_conf): its
-- API, its CA, one worker, the handler above; pooled = false swaps the
-- upstream for a connection per call.
local function conf(pooled)
  local swap = nginx_process.swap
  local c = nginx_process.readme_conf("127.0.0.1:" .. API_PORT, CA)
  c = swap(c, "worker_processes auto;", "worker_processes 1;")
  c = swap(c, "listen 127.0.0.1:PORT;", "listen 127.0.0.1:PORT;\n" .. HANDLER)
  if not pooled then
    c = swap(c, "proxy_pass https://cloudflare_api$cf_es_uri;", "proxy_pass $cf_es_url;")
    -- the whole URL now decides where the call goes: the workers need the bench's base URL
    c = swap(c, "env CLOUDFLARE_ACCOUNT_ID;", "env CLOUDFLARE_ACCOUNT_ID;\nenv CLOUDFLARE_BASE_URL;")
  end
  return c
end

local function worker_ticks(master)
  local worker = files.command_output("pgrep -P " .. master):match("%d+")
  local stat = assert(files.read("/proc/" .. worker .. "/stat"), "no worker")
  local fields = {}
  for f in stat:gsub("^.-%) ", ""):gmatch("%S+") do fields[#fields + 1] = f end
  -- utime and stime, the 12th and 13th fields after the name
  return tonumber(fields[12]) + tonumber(fields[13])
end

local function measure(pooled)
  local server = nginx_process.start({ conf = conf(pooled), lifetime = 600, env = {
    CLOUDFLARE_API_TOKEN = "bench-token", CLOUDFLARE_ACCOUNT_ID = ACCOUNT,
    CLOUDFLARE_BASE_URL = "https://127.0.0.1:" .. API_PORT .. "/client/v4" } })
  local url = server.url .. "/bench/update"
  local check = (require("socket.http").request(url) or ""):gsub("%s+$", "")
  -- the canned API answers every update with the same entry: an id back means the call went through
  if not check:find("^%x+%-%x+%-%x+%-%x+%-%x+$") then
    local log = server.error_log()
    server.stop()
    error("the bench handler did not answer with the entry: " .. check .. "\n" .. log)
  end
  local master = files.read(server.dir .. "/nginx.pid"):match("%d+")
  -- warm-up, then the measured run
  files.command_output(("ab -q -k -c %d -n %d %s 2>&1"):format(CONCURRENCY, math.min(CALLS, 500), url))
  local before = worker_ticks(master)
  local out = files.command_output(("ab -q -k -c %d -n %d %s 2>&1"):format(CONCURRENCY, CALLS, url))
  local after = worker_ticks(master)
  server.stop()
  local rps = tonumber(out:match("Requests per second:%s+([%d%.]+)"))
  local failed = tonumber(out:match("Failed requests:%s+(%d+)")) or 0
  local non2xx = tonumber(out:match("Non%-2xx responses:%s+(%d+)")) or 0
  assert(rps, "ab printed no rate:\n" .. out)
  return { rps = rps, cpu_us = (after - before) / TICKS * 1e6 / CALLS, failed = failed + non2xx }
end

local pooled, fresh = measure(true), measure(false)
-- doc/performance.md's Markdown (bench/doc.lua); nginx's own LuaJIT runs
-- the module whatever Lua runs this, so the block has no Lua of its own
local nginx = files.command_output("nginx -v 2>&1"):match("nginx/(%S+)") or "?"
print("\n" .. doc.block("nginx", ("%s: README.md's nginx.conf, one worker, %d updates, %d in flight, the API over"
  .. " HTTPS."):format(doc.run_facts("nginx " .. nginx .. " and its LuaJIT"), CALLS, CONCURRENCY),
  doc.table({ "proxy location", "req/s", "worker CPU us/call", "failed" }, "lrrr", {
    { "upstream keepalive pool (README)", ("%.0f"):format(pooled.rps), ("%.1f"):format(pooled.cpu_us),
      ("%d"):format(pooled.failed) },
    { "`proxy_pass $cf_es_url` (a connection per call)", ("%.0f"):format(fresh.rps), ("%.1f"):format(fresh.cpu_us),
      ("%d"):format(fresh.failed) },
  })))
print(("the pool: %.1fx the requests per second at %.2fx the worker's CPU per call"):format(pooled.rps / fresh.rps,
  pooled.cpu_us / fresh.cpu_us))
