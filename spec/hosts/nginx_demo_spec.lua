-- `make nginx-demo` (examples/nginx/demo.sh): nginx with the module, in
-- front of the local emulator, run with examples/nginx/emulator.conf. It
-- must show the registry listed and an entry created through nginx, print
-- no credential, and leave nothing behind however it ends: when it is done
-- at once (not at a terminal), when it has stayed up its idle time, and on
-- Ctrl-C. The configuration must keep README.md's locations.
local cjson = require("cjson")
local socket = require("socket")
local files = require("spec.support.files")
local process = require("spec.support.process")
local nginx_process = require("spec.support.nginx_process")

local CONF = "examples/nginx/emulator.conf"
local EMAIL = "demo.person@example.com"
-- what a user may keep exported for a real account; the demo must neither
-- use nor print it
local REAL_TOKEN = "real-account-token-must-not-show"
-- (make check-asan preloads the sanitizers into every process the specs
-- start: the demo's curl deadlocks under them, and what they check is the
-- core, which the demo does not load from that build)
local CLEAN_ENV = "env -u LD_PRELOAD -u ASAN_OPTIONS -u UBSAN_OPTIONS"
  .. " -u MAKEFLAGS -u MAKELEVEL -u MFLAGS -u IDLE -u PORT -u LUA -u CLOUDFLARE_EMAIL"
  .. " -u CLOUDFLARE_API_KEY -u CLOUDFLARE_BASE_URL CLOUDFLARE_API_TOKEN=" .. REAL_TOKEN
  .. " CLOUDFLARE_ACCOUNT_ID=realaccount"

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- nil when the demo can run here, else why not.
local function missing()
  local why = nginx_process.missing()
  if why then return why end
  if files.command_output("command -v curl") == "" and files.command_output("id -u") ~= "0" then
    return "curl is not installed, and installing it (as the demo does) needs root"
  end
end

-- ---------------------------------------------------------------------
-- The configuration beside README's

-- The block that opens with `header` (up to its matching brace), as its
-- directive lines: comments (" # ..." and whole-line ones), blank lines and
-- runs of spaces left out.
local function block(text, header, where)
  local start = text:find(header, 1, true)
  assert(start, where .. " has no `" .. header .. "`")
  local depth, i = 0, text:find("{", start, true)
  local stop
  while i <= #text do
    local c = text:sub(i, i)
    if c == "{" then depth = depth + 1
    elseif c == "}" then
      depth = depth - 1
      if depth == 0 then stop = i break end
    end
    i = i + 1
  end
  assert(stop, where .. ": `" .. header .. "` is not closed")
  local lines = {}
  for line in (text:sub(start, stop) .. "\n"):gmatch("(.-)\n") do
    line = line:gsub("%s+#%s.*$", ""):gsub("^%s+", ""):gsub("%s+$", ""):gsub("%s+", " ")
    if line ~= "" and not line:find("^#") then lines[#lines + 1] = line end
  end
  return lines
end

local function without(lines, prefixes)
  local out = {}
  for _, line in ipairs(lines) do
    local drop = false
    for _, p in ipairs(prefixes) do
      if line:sub(1, #p) == p then drop = true end
    end
    if not drop then out[#out + 1] = line end
  end
  return out
end

local function line_with(lines, prefix)
  for _, line in ipairs(lines) do
    if line:sub(1, #prefix) == prefix then return line end
  end
end

describe("examples/nginx/emulator.conf", function()
  local readme, conf = nginx_process.readme_text(), assert(files.read(CONF), CONF .. " is missing")

  it("has README's locations and upstream, differing only where the emulator is not the API", function()
    for _, header in ipairs({ "location = /_cloudflare_email_security_variables {", "location = /registry/count {" }) do
      assert.are.same(block(readme, header, "README.md"), block(conf, header, CONF))
    end
    assert.are.same(without(block(readme, "upstream cloudflare_api {", "README.md"), { "server " }),
                    without(block(conf, "upstream cloudflare_api {", CONF), { "server " }))

    local header = "location /_cloudflare_email_security {"
    local theirs, ours = block(readme, header, "README.md"), block(conf, header, CONF)
    -- plain HTTP to the emulator: no TLS directives, the same upstream and path
    assert.is_nil(line_with(ours, "proxy_ssl_"))
    assert.are.equal((line_with(theirs, "proxy_pass "):gsub("https://", "http://")), line_with(ours, "proxy_pass "))
    local differ = { "proxy_pass ", "proxy_set_header Host ", "proxy_ssl_" }
    assert.are.same(without(theirs, differ), without(ours, differ))
  end)

  it("names the emulator's address and token for the workers, and listens on loopback only", function()
    assert.matches("\nenv CLOUDFLARE_BASE_URL=http://127%.0%.0%.1:@EMULATOR_PORT@/client/v4;\n", conf)
    assert.matches("\nenv CLOUDFLARE_API_TOKEN=@TOKEN@;\n", conf)
    assert.matches("\n%s*server 127%.0%.0%.1:@EMULATOR_PORT@;", conf)
    local listens = {}
    for l in conf:gmatch("\n%s*listen%s+([^;]*);") do listens[#listens + 1] = l end
    assert.are.same({ "127.0.0.1:@PORT@" }, listens)
  end)
end)

-- ---------------------------------------------------------------------
-- Runs of the demo

-- Every process now: { pid, ppid, cmdline }.
local function processes()
  local out = {}
  for pid in files.command_output("ls /proc"):gmatch("%d+") do
    local cmdline, stat = files.read("/proc/" .. pid .. "/cmdline"), files.read("/proc/" .. pid .. "/stat")
    if cmdline and stat then
      out[#out + 1] = { pid = tonumber(pid), ppid = tonumber(stat:match("^.*%)%s+%S+%s+(%d+)")),
                        cmdline = cmdline:gsub("%z", " ") }
    end
  end
  return out
end

-- What a run printed about itself: its scratch directory and both ports.
local function run_facts(out)
  local facts = {
    dir = out:match("filled in under (/tmp/cf%-es%-nginx%-demo%.[%w]+)"),
    port = tonumber(out:match("\n  nginx: +http://127%.0%.0%.1:(%d+) ")),
    emulator_port = tonumber(out:match("\n  emulator: http://127%.0%.0%.1:(%d+)/client/v4")),
  }
  assert(facts.dir and facts.port and facts.emulator_port, "the demo did not say where it runs:\n" .. out)
  return facts
end

-- Nothing of the run is left: no process naming its directory (nginx's
-- master and `timeout` have it on their command lines, the emulator its
-- port file), nothing on its ports (a worker would hold nginx's), no
-- directory; and none of `pids`, taken while it ran.
local function assert_nothing_left(facts, pids)
  for _, p in ipairs(processes()) do
    assert.is_nil(p.cmdline:find(facts.dir, 1, true), "left running: " .. p.pid .. " " .. p.cmdline)
  end
  assert.is_false(process.port_open(facts.port), "something still listens on nginx's port " .. facts.port)
  assert.is_false(process.port_open(facts.emulator_port), "something still listens on the emulator's port")
  assert.is_false(files.exists(facts.dir .. "/nginx.conf"), facts.dir .. " was not removed")
  for what, pid in pairs(pids or {}) do
    assert.is_false(process.alive(pid), ("%s (pid %d) is still running"):format(what, pid))
  end
end

-- What the requests printed: the line after each `$ curl -s ...` line of
-- the command given, in order.
local function answers_to(out, command)
  local found, from = {}, 1
  while true do
    local _, stop = out:find("\n$ curl -s " .. command .. "\n", from, true)
    if not stop then break end
    found[#found + 1] = out:match("^([^\n]*)", stop + 1)
    from = stop
  end
  assert(#found > 0, "the demo did not run `curl -s " .. command .. "`:\n" .. out)
  return found
end

local function assert_demo_output(out, facts)
  local url = "http://127.0.0.1:" .. facts.port
  local lists = answers_to(out, url .. "/registry")
  local created = cjson.decode(answers_to(out, "-H 'Content-Type: application/json' -d '{\"name\":\"Demo Person\","
    .. "\"email\":\"" .. EMAIL .. "\",\"is_email_regex\":false}' " .. url .. "/registry")[1])
  -- empty, then the entry it created, as the API stored it
  assert.are.equal(2, #lists)
  assert.are.equal("[]", lists[1])
  assert.are.equal(EMAIL, created.email)
  assert.matches("^%x+%-%x+%-%x+%-%x+%-%x+$", created.id)
  local listed = cjson.decode(lists[2])
  assert.are.equal(1, #listed)
  assert.are.equal(created.id, listed[1].id)
  assert.are.equal(EMAIL, listed[1].email)
  assert.are.same({ "1" }, answers_to(out, url .. "/registry/count"))
  assert.is_nil(out:find(REAL_TOKEN, 1, true), "the environment's token was printed")
  assert.matches("\nstopped nginx and the emulator, removed " .. facts.dir:gsub("%p", "%%%0") .. "\n", out)
end

-- Waits up to `seconds` for the file to hold `pattern`; its text.
local function wait_for(path, pattern, seconds)
  local deadline = socket.gettime() + seconds
  repeat
    local text = files.read(path) or ""
    if text:find(pattern) then return text end
    socket.sleep(0.05)
  until socket.gettime() > deadline
  error(("%s did not show %q within %d s:\n%s"):format(path, pattern, seconds, files.read(path) or ""), 2)
end

-- Starts the demo script in the background, in a process group of its
-- own (setsid: a Ctrl-C can be sent to it alone), with the output, the
-- group's id and then the exit status in files. A command started with `&`
-- by a shell without job control (popen's sh) ignores SIGINT, and a bash
-- started so cannot trap it: env --default-signal gives it back, as a
-- terminal's shell has it.
local function start_demo(idle)
  local out, pgid, rc = os.tmpname(), os.tmpname(), os.tmpname()
  os.remove(rc)
  os.execute(("%s IDLE=%d setsid env --default-signal=INT bash -c %s </dev/null >%s 2>&1 &"):format(CLEAN_ENV, idle,
    q(("echo $$ > %s; bash examples/nginx/demo.sh; echo $? > %s"):format(q(pgid), q(rc))), q(out)))
  return { out = out, rc = rc, pgid = pgid }
end

-- However a test ends, failed half-way included: the run stopped (TERM to
-- its group, as when a terminal closes) and its files removed.
local function finish(run)
  if not files.exists(run.rc) then
    local pgid = tonumber(files.read(run.pgid) or "")
    if pgid then os.execute("kill -TERM -" .. pgid .. " 2>/dev/null") end
    local deadline = socket.gettime() + 10
    while not files.exists(run.rc) and socket.gettime() < deadline do socket.sleep(0.05) end
  end
  os.remove(run.out)
  os.remove(run.rc)
  os.remove(run.pgid)
end

-- While a run is up: its nginx master, a worker, the `timeout` around
-- nginx and the emulator, each found (so that "gone" later means something).
local function running_pids(facts)
  local pids = { master = tonumber(files.read(facts.dir .. "/nginx.pid") or "") }
  assert(pids.master, "no nginx.pid in " .. facts.dir)
  for _, p in ipairs(processes()) do
    if p.ppid == pids.master then pids.worker = p.pid end
    if p.cmdline:find(facts.dir .. "/emulator.port", 1, true) then pids.emulator = p.pid end
    if p.cmdline:find("^timeout ") and p.cmdline:find(facts.dir, 1, true) then pids.timeout = p.pid end
  end
  for _, what in ipairs({ "master", "worker", "emulator", "timeout" }) do
    assert(pids[what] and process.alive(pids[what]), "no " .. what .. " process found while the demo runs")
  end
  return pids
end

local function get(port, target)
  local c = assert(socket.connect("127.0.0.1", port))
  c:settimeout(10)
  assert(c:send("GET " .. target .. " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"))
  local answer = assert(c:receive("*a"))
  c:close()
  return tonumber(answer:match("^HTTP/%d%.%d (%d+)")), answer:match("\r\n\r\n(.*)$")
end

describe("make nginx-demo", function()
  local why_not
  lazy_setup(function()
    why_not = missing()
    if why_not and os.getenv("CI") then error(why_not) end
  end)

  it("not at a terminal: lists, creates and lists again through nginx, stops at once, leaves nothing", function()
    if why_not then return pending(why_not) end
    local out = files.command_output(("%s make --no-print-directory -s nginx-demo </dev/null 2>&1; echo \"exit $?\"")
      :format(CLEAN_ENV))
    assert.matches("\nexit 0$", out)
    local facts = run_facts(out)
    assert_demo_output(out, facts)
    assert.matches("\nIDLE=0 %(the default when not at a terminal%): stopping now%.", out)
    assert_nothing_left(facts)
  end)

  it("IDLE=2: stays up for requests by hand, stops 2 s after the last, and leaves nothing", function()
    if why_not then return pending(why_not) end
    local run = start_demo(2)
    finally(function() finish(run) end)
    local out = wait_for(run.out, "It stays up until 2 s pass", 30)
    local facts = run_facts(out)
    local pids = running_pids(facts)
    local token = assert(files.read(facts.dir .. "/nginx.conf"), "cannot read the configuration")
      :match("\nenv CLOUDFLARE_API_TOKEN=(%x+);")
    assert(token, "no token in the configuration")

    -- by hand, at the URL it gave: the entry it made
    local status, body = get(facts.port, "/registry/count")
    local asked = socket.gettime()
    assert.are.equal(200, status)
    assert.are.equal("1\n", body)

    wait_for(run.rc, "%d", 20)
    local waited = socket.gettime() - asked
    out = files.read(run.out)
    assert.are.equal("0", (files.read(run.rc):gsub("%s+$", "")), out)
    assert.is_true(waited >= 2, ("it stopped %.2f s after a request, not 2"):format(waited))
    assert.matches("\nno request for 2 s: stopping\n", out)
    assert_demo_output(out, facts)
    assert.is_nil(out:find(token, 1, true), "the emulator's token was printed")
    assert_nothing_left(facts, pids)
  end)

  it("Ctrl-C while it stays up (its way to end: exit 0) stops nginx and the emulator at once", function()
    if why_not then return pending(why_not) end
    local run = start_demo(600)
    finally(function() finish(run) end)
    local out = wait_for(run.out, "It stays up until 600 s pass", 30)
    local facts = run_facts(out)
    local pids = running_pids(facts)

    -- what a terminal does on Ctrl-C: SIGINT to the whole foreground group
    local pgid = assert(tonumber(files.read(run.pgid) or ""), "the demo's process group is not known")
    local sent = socket.gettime()
    os.execute("kill -INT -" .. pgid)
    wait_for(run.rc, "%d", 10)
    local took = socket.gettime() - sent
    out = files.read(run.out)
    assert.are.equal("0", (files.read(run.rc):gsub("%s+$", "")), out)
    assert.is_true(took < 8, ("it took %.1f s to stop"):format(took))
    assert.matches("\ninterrupted: stopping\n", out)
    assert_demo_output(out, facts)
    assert_nothing_left(facts, pids)
  end)
end)
