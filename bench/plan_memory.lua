-- The memory a plan of a large file takes: a 100,000-entry CSV file read
-- with es.read_entries and planned against 100,000 entries on the server
-- (a loopback nginx serving them, as the API writes them, in 100 pages of
-- 1000: the emulator sorts its 100,000 entries again for every page, which
-- would make the bench take minutes), 1% of them changed (a new comment),
-- so that the plan lists every page, matches 100,000 keys and finds 1,000
-- updates. The reading and planning run in a process of their own, which
-- holds nothing else: its peak RSS is theirs (and the Lua's and the
-- module's, which the RSS at its start shows). `account`: the same for
-- each of the eight resources in turn, in one process, every plan kept
-- until the last is made, as a plan of a folder of files holds them.
-- Reports; asserts only that the work was done.
--
--   lua5.4 bench/plan_memory.lua [one|account]     (no argument: both)
--   lua5.4 bench/plan_memory.lua run one|account BASE_URL DIR   (one measurement)

local ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"
local SIZE = tonumber(os.getenv("BENCH_PLAN_ENTRIES") or "100000")
local EVERY = 100                 -- one entry in EVERY has a new comment in the file

local ORDER = { "allow_policies", "block_senders", "content_policies", "domains", "impersonation_registry",
                "sending_domain_restrictions", "trusted_domains", "url_ignore_patterns" }

local MONTHS = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" }
-- a comment as people write them, a comma in most (so the cell is quoted)
local function comment(i, changed)
  if changed then return ("Reviewed again %d %s 2025, owner: mail-team (SEC-%d)"):format(i % 28 + 1, MONTHS[i % 12 + 1],
                                                                                         40000 + i) end
  if i % 5 == 0 then return nil end
  return ("Partner %d, onboarded %s 2024 (ticket SEC-%d)"):format(i % 997, MONTHS[i % 12 + 1], 10000 + i)
end

local PATTERN_TYPES = { "EMAIL", "EMAIL", "EMAIL", "DOMAIN", "DOMAIN", "IP" }
-- a sender pattern, unique per i: an address, a domain or an address range
local function sender(i)
  local t = PATTERN_TYPES[i % #PATTERN_TYPES + 1]
  if t == "EMAIL" then return t, ("billing.%d@partner%d.example.com"):format(i, i % 997) end
  if t == "DOMAIN" then return t, ("mail%d.partner%d.example.net"):format(i, i % 997) end
  return t, ("10.%d.%d.%d"):format(math.floor(i / 65536) % 256, math.floor(i / 256) % 256, i % 256)
end

-- Per resource: the CSV's columns and entry i (changed: as the file has it).
local RESOURCES = {
  allow_policies = { "pattern_type", "pattern", "is_regex", "is_trusted_sender", "is_exempt_recipient",
                     "is_acceptable_sender", "verify_sender", "comments", entry = function(i, changed)
    local t, pattern = sender(i)
    return { pattern_type = t, pattern = pattern, is_regex = false, is_trusted_sender = i % 3 == 0,
             is_exempt_recipient = i % 7 == 0, is_acceptable_sender = i % 3 ~= 0, verify_sender = true,
             comments = comment(i, changed) }
  end },
  block_senders = { "pattern_type", "pattern", "is_regex", "comments", entry = function(i, changed)
    local t, pattern = sender(i)
    return { pattern_type = t, pattern = "spam." .. pattern, is_regex = false, comments = comment(i, changed) }
  end },
  content_policies = { "name", "pattern", "enabled", "targets", "notes", entry = function(i, changed)
    return { name = ("Invoice fraud rule %d"):format(i), pattern = ("(?i)invoice\\s+#?%d\\b"):format(i),
             enabled = i % 4 ~= 0, targets = i % 2 == 0 and { "SUBJECT", "BODY" } or { "BODY" },
             notes = comment(i, changed) }
  end },
  domains = { "domain", "allowed_delivery_modes", "drop_dispositions", "ip_restrictions", "regions", "folder",
              "lookback_hops", "require_tls_inbound", entry = function(i, changed)
    return { domain = ("dept%d.customer%d.example.org"):format(i, i % 997),
             allowed_delivery_modes = i % 2 == 0 and { "DIRECT", "BCC" } or { "DIRECT" },
             drop_dispositions = { "MALICIOUS", "SPOOF" }, ip_restrictions = {}, regions = { "GLOBAL" },
             folder = "Inbox", lookback_hops = changed and 3 or 2, require_tls_inbound = i % 3 == 0 }
  end },
  impersonation_registry = { "name", "email", "is_email_regex", "comments", entry = function(i, changed)
    return { name = ("Executive %d"):format(i), email = ("exec.%d@corp%d.example.com"):format(i, i % 97),
             is_email_regex = false, comments = comment(i, changed) }
  end },
  sending_domain_restrictions = { "domain", "exclude", "comments", entry = function(i, changed)
    return { domain = ("send%d.corp%d.example.com"):format(i, i % 97),
             exclude = i % 2 == 0 and { ("relay%d.corp.example.com"):format(i % 50) } or {},
             comments = comment(i, changed) }
  end },
  trusted_domains = { "pattern", "is_regex", "is_recent", "is_similarity", "comments", entry = function(i, changed)
    return { pattern = ("trusted%d.vendor%d.example.com"):format(i, i % 997), is_regex = false,
             is_recent = i % 2 == 0, is_similarity = i % 2 == 1, comments = comment(i, changed) }
  end },
  url_ignore_patterns = { "pattern", "comments", entry = function(i, changed)
    return { pattern = ("https://links%d.example.com/track/%d"):format(i % 997, i), comments = comment(i, changed) }
  end },
}

local function resources_of(mode)
  if mode == "one" then return { "allow_policies" } end
  if mode == "account" then return ORDER end
  error("usage: lua5.4 bench/plan_memory.lua [one|account]", 0)
end

local status_kib = require("bench.memory")
local doc = require("bench.doc")
local function mib(kib) return kib / 1024 end

if arg[1] == "run" then
  local es = require("cloudflare.email_security")
  local core = require("cloudflare.email_security.core")
  local mode, base_url, dir = arg[2], arg[3], arg[4]
  local cf = es.new({ account_id = ACCOUNT, api_token = "bench-token", base_url = base_url, max_retries = 0 })
  local start_kib = status_kib("VmRSS")
  -- as a program would: read, plan, keep the plan; no collection asked for
  local plans, wall, cpu = {}, core.monotonic(), os.clock()
  for _, name in ipairs(resources_of(mode)) do
    local desired = assert(es.read_entries(dir .. "/" .. name .. ".csv", name))
    local p = assert(cf[name]:plan(desired))
    local want = math.floor(SIZE / EVERY)
    assert(#p.updates == want and #p.creates == 0 and #p.deletes == 0, ("%s: unexpected plan: %d creates, %d "
      .. "updates, %d deletes"):format(name, #p.creates, #p.updates, #p.deletes))
    plans[#plans + 1] = p
  end
  wall, cpu = core.monotonic() - wall, os.clock() - cpu
  local peak = status_kib("VmHWM")
  collectgarbage()
  local kept = collectgarbage("count")
  local what = mode == "one"
    and ("a plan of a %s-entry file (allow policies) against %s, %d%% changed"):format(doc.count(SIZE),
      doc.count(SIZE), 100 / EVERY)
    or ("a whole account: %d such plans (every resource), all kept"):format(#plans)
  print(("%s: wall %.2f s, client CPU %.2f s, peak RSS %.1f MiB, above its start %.1f MiB, plans kept %.1f MiB")
    :format(what, wall, cpu, mib(peak), mib(peak - start_kib), mib(kept)))
  cf:close()
  os.exit(0)
end

local modes = arg[1] and { arg[1] } or { "one", "account" }
for _, mode in ipairs(modes) do resources_of(mode) end

-- (make bench sets no LUA_PATH: the files and pages are written with the module's own writer)
package.path = "./lua/?.lua;" .. package.path
local LUA = os.getenv("LUA") or "lua5.4"
local process = require("spec.support.process")
local read = require("spec.support.files").command_output
local entries = require("cloudflare.email_security.sync.entries")
local compile = require("cloudflare.email_security.schema.compile")
local null = require("cloudflare.email_security").null

local function sh(cmd)
  local r = os.execute(cmd)
  assert(r == true or r == 0, "failed: " .. cmd)
end
local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

-- JSON for the pages, by hand: an entry's fields in its description's
-- order, a table always a list (every table an entry here holds is one)
local function json(v)
  if v == null then return "null" end
  local t = type(v)
  if t == "string" then return '"' .. v:gsub('[%c"\\]', function(c)
    return c == '"' and '\\"' or c == "\\" and "\\\\" or ("\\u%04x"):format(c:byte())
  end) .. '"' end
  if t ~= "table" then return tostring(v) end
  local items = {}
  for i, item in ipairs(v) do items[i] = json(item) end
  return "[" .. table.concat(items, ",") .. "]"
end

-- Entry i as the API sends it: every field, those the file leaves out as
-- the server has them (null, false, the first of an enum), an id and time
-- stamps of its own.
local STAMP = "2025-06-01T08:30:00.000000Z"
local function stored(desc, fields, i)
  local parts = {}
  for _, name in ipairs(desc.entry.order) do
    local node, v = desc.entry.fields[name], fields[name]
    if name == "id" then v = ("%08x-5e1f-4c3b-9a7d-%012x"):format(i, i * 7919)
    elseif v == nil and node.format == "date-time" then v = STAMP
    elseif v == nil and node.enum then v = node.enum[1]
    elseif v == nil and node.type == "boolean" then v = false
    elseif v == nil and node.type == "array" then v = {}
    elseif v == nil then v = null end
    parts[#parts + 1] = '"' .. name .. '":' .. json(v)
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

local dir = read("mktemp -d")
local q = "'" .. dir .. "'"
-- nginx (once started) and the directory, whatever fails
local function stop()
  os.execute(("kill $(cat %s/nginx.pid 2>/dev/null) 2>/dev/null; sleep 0.2; rm -rf %s"):format(q, q))
end

local function measure()
  -- nginx's worker runs as another user: it must be able to read the pages
  sh(("chmod 755 %s && mkdir -p %s/pages %s/tmp"):format(q, q, q))

  -- The server's entries as pages of 1000, then the file: the same
  -- entries, one in EVERY with a new comment.
  local made, locations = {}, {}
  for _, mode in ipairs(modes) do
    for _, name in ipairs(resources_of(mode)) do
      if not made[name] then
        made[name] = true
        local r, desc = RESOURCES[name], compile.resource(require("cloudflare.email_security.resources." .. name))
        sh(("mkdir -p %s/pages/%s"):format(q, name))
        for page = 1, math.ceil(SIZE / 1000) do
          local items = {}
          for i = (page - 1) * 1000 + 1, math.min(SIZE, page * 1000) do
            items[#items + 1] = stored(desc, r.entry(i), i)
          end
          write(("%s/pages/%s/page%d.json"):format(dir, name, page), '{"success":true,"errors":[],"messages":[],'
            .. '"result":[' .. table.concat(items, ",") .. '],"result_info":' .. ('{"page":%d,"per_page":1000,'
            .. '"count":%d,"total_count":%d}'):format(page, #items, SIZE) .. "}")
        end
        local desired = {}
        for i = 1, SIZE do desired[i] = r.entry(i, i % EVERY == 0) end
        write(dir .. "/" .. name .. ".csv", entries.csv(desired, r))
        locations[#locations + 1] = ("    location = /client/v4/accounts/%s/email-security/settings/%s {\n"
          .. "      rewrite ^ /pages/%s/page$arg_page.json last;\n    }"):format(ACCOUNT, name, name)
      end
    end
  end

  -- A loopback nginx serving those pages as they are (as
  -- bench/loopback_server.lua serves its own): what is measured is the client.
  local port = process.free_port()
  write(dir .. "/nginx.conf", ([[
worker_processes 1;
daemon off;
error_log DIR/error.log warn;
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
  server {
    listen 127.0.0.1:PORT;
LOCATIONS
    location /pages/ { internal; root DIR; }
  }
}
]]):gsub("LOCATIONS", (table.concat(locations, "\n"):gsub("%%", "%%%%"))):gsub("DIR", dir):gsub("PORT", port))
  -- gone after half an hour even if this process is not; in this process
  -- group, so that a Ctrl-C stops it too; the directory removed once it is gone
  sh(("(trap '' INT TERM HUP; timeout --foreground 1800 nginx -p %s -c %s/nginx.conf >%s/nginx.out 2>&1;"
    .. " [ $? = 1 ] || rm -rf %s) >/dev/null 2>&1 &"):format(q, q, q, q))
  if not process.wait_for_port(port, 10) then
    error("the bench's nginx did not start:\n"
      .. read("cat " .. q .. "/nginx.out " .. q .. "/error.log 2>/dev/null"), 0)
  end

  local text = ""
  for _, mode in ipairs(modes) do
    local base_url = "http://127.0.0.1:" .. port .. "/client/v4"
    local p = assert(io.popen(("LUA_PATH='./lua/?.lua;./?.lua;;' LUA_CPATH=%q %s bench/plan_memory.lua run "
      .. "%s %s %s 2>&1"):format(os.getenv("LUA_CPATH") or "./build/lua5.4/?.so;;", LUA, mode, base_url, q)))
    local out = p:read("*a")
    if not p:close() then error("plan_memory " .. mode .. " failed:\n" .. out, 0) end
    text = text .. out
  end
  return text
end

local ok, out = pcall(measure)
stop()
if not ok then error(out, 0) end
-- doc/performance.md's Markdown (bench/doc.lua): one row per line the runs printed
local rows = {}
for line in out:gmatch("[^\n]+") do
  local what, wall, cpu, peak, above, heap = line:match("^(.-): wall ([%d.]+ s), client CPU ([%d.]+ s), peak RSS "
    .. "([%d.]+ MiB), above its start ([%d.]+ MiB), plans kept ([%d.]+ MiB)$")
  if not what then error("plan_memory: a line that is no measurement: " .. line, 0) end
  rows[#rows + 1] = { what, wall, cpu, peak, above, heap }
end
print(doc.block("plan_memory " .. doc.lua_key(), ("%s: CSV files read with es.read_entries and planned "
  .. "against a loopback nginx serving the entries as pages of 1000, in a process of their own; `plans kept`: "
  .. "the Lua heap the plans hold once made."):format(doc.run_facts()),
  doc.table({ "work", "wall", "client CPU", "peak RSS", "above the process's start", "plans kept" }, "lrrrrr",
  rows)))
