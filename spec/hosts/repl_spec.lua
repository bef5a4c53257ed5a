-- Lua 5.4's own interactive prompt, driven through a pseudo-terminal
-- (tmux): `make repl` gives a ready client, results print as readable text,
-- errors as their one line.
local socket = require("socket")

local function run(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("*a")
  p:close()
  return out
end

-- `make repl` in a new tmux session; env: the environment's assignments
-- before it (an env command's words). Waits for the first prompt.
local function start_repl(session, env)
  local cmd = env .. " make --no-print-directory -s repl LUA_VERSION=5.4 LUA=lua5.4 LUA_PC=lua5.4"
  os.execute(("tmux new-session -d -s %s -x 200 -y 60 %q"):format(session, cmd))
  local deadline = socket.gettime() + 60
  while socket.gettime() < deadline
    and not run(("tmux capture-pane -p -J -S -500 -t %s"):format(session)):find("\n> ", 1, true) do
    socket.sleep(0.1)
  end
end

-- Ends the REPL as a user does (Ctrl-D), then its session.
local function stop_repl(session)
  os.execute(("tmux send-keys -t %s C-d"):format(session))
  socket.sleep(0.5)
  os.execute(("tmux kill-session -t %s 2>/dev/null"):format(session))
end

describe("the REPL (Lua 5.4, in a pseudo-terminal)", function()
  local session = "es-repl-" .. tostring(os.time()) .. "-" .. math.random(1000, 9999)
  local available = run("command -v tmux") ~= "" and run("command -v lua5.4") ~= ""

  local function screen()
    return run(("tmux capture-pane -p -J -S -500 -t %s"):format(session))
  end

  -- Types a line, then waits until the screen shows `want` (a plain string).
  local function type_line(line, want)
    os.execute(("tmux send-keys -t %s -l %q"):format(session, line))
    os.execute(("tmux send-keys -t %s Enter"):format(session))
    local deadline = socket.gettime() + 15
    while socket.gettime() < deadline do
      local text = screen()
      if text:find(want, 1, true) then return text end
      socket.sleep(0.1)
    end
    error("the prompt never showed " .. want .. "; screen:\n" .. screen())
  end

  lazy_setup(function()
    if not available then return end
    -- no credentials in the session's environment: the REPL starts the emulator
    start_repl(session, "env -u CLOUDFLARE_API_TOKEN -u CLOUDFLARE_ACCOUNT_ID -u CLOUDFLARE_EMAIL -u CLOUDFLARE_API_KEY")
  end)

  lazy_teardown(function()
    if not available then return end
    stop_repl(session)
  end)

  it("opens with a ready client and prints an entry as readable text", function()
    if not available then
      if os.getenv("CI") then error("tmux and lua5.4 are needed") end
      return pending("tmux or lua5.4 is not installed")
    end
    assert.matches("cf: a client of the local emulator", screen(), 1, true)
    type_line('x = reg:create{ name = "Jane Roe", email = "jane@example.com", is_email_regex = false }', "\n> ")
    local text = type_line("reg:get(x.id)", '"name": "Jane Roe"')
    assert.matches('"email": "jane@example.com"', text, 1, true)
    assert.matches('"comments": null', text, 1, true)
    assert.is_nil(text:find("table: 0x", 1, true))
  end)

  it("prints a list a line per entry, with its paging; an entry alone in full", function()
    if not available then return pending("tmux or lua5.4 is not installed") end
    type_line('y = reg:create{ name = "Max Mustermann", email = "max@example.com", is_email_regex = false }', "\n> ")
    local text = type_line("reg:list()", "-- page 1, 2 entries of 2")
    assert.matches('\n%[1%] [%x%-]+  name="Jane Roe"  email="jane@example.com"  is_email_regex=false\n', text)
    assert.matches('\n%[2%] [%x%-]+  name="Max Mustermann"  email="max@example.com"  is_email_regex=false\n', text)
    assert.is_nil(text:find("table: 0x", 1, true))
    type_line("z = reg:all()", "\n> ")
    text = type_line("z[2]", '"provenance":')
    assert.matches('"name": "Max Mustermann"', text, 1, true)
  end)

  it("prints cf and a resource as one line each", function()
    if not available then return pending("tmux or lua5.4 is not installed") end
    local text = type_line("cf", "cloudflare.email_security client (account 023e105f4ecef8ad9ca31a8372d0c353, open)")
    assert.is_nil(text:find("_state", 1, true))
    text = type_line("cf.domains", "cloudflare.email_security resource domains: list each all create get update "
      .. "replace delete batch verification delete_many plan (help(cf.domains) for its fields)")
    assert.is_nil(text:find("_collection", 1, true))
  end)

  it("has help() for the resources, and help(resource) for one's fields", function()
    if not available then return pending("tmux or lua5.4 is not installed") end
    local text = type_line("help()", "help(cf.domains) shows")
    assert.matches("content_policies", text, 1, true)
    assert.matches("batch{ posts, patches, puts, deletes }", text, 1, true)
    text = type_line("help(cf.domains)", "list parameters:")
    assert.matches("lookback_hops%s+integer, 1 to 20\n", text)
    assert.matches("integration_id%s+string %(uuid%), or null %(es.null%) in an update", text)
    assert.matches("verification(id)", text, 1, true)
  end)

  it("prints an error as its one line", function()
    if not available then return pending("tmux or lua5.4 is not installed") end
    local text = type_line('reg:get("nope")', "invalid error: impersonation_registry_id: must be a uuid")
    -- the terminal turns the tab between the two results into spaces
    assert.matches("\nnil%s+invalid error: [^\n]+%]\n", text)
  end)

  it("applies a plan against its own emulator without asking, as its banner says", function()
    if not available then return pending("tmux or lua5.4 is not installed") end
    assert.matches("p:apply() on a plan against it does not ask", screen(), 1, true)
    type_line('p = reg:plan({ { name = "Ann Lee", email = "ann@example.com", is_email_regex = false } }, '
      .. "{ purge = false })", "\n> ")
    local text = type_line("p:apply()", "1 created, 0 updated, 0 deleted")
    assert.is_nil(text:find("Apply these changes?", 1, true))
  end)

  -- However the prompt ends, its emulator goes too.
  for _, ending in ipairs({ { "os.exit()", "os.exit()" }, { "Ctrl-C", "C-c" }, { "Ctrl-D", "C-d" } }) do
    it("leaves no emulator behind when the prompt ends with " .. ending[1], function()
      if not available then return pending("tmux or lua5.4 is not installed") end
      local other = session .. "-end"
      local cmd = ("env -u CLOUDFLARE_API_TOKEN -u CLOUDFLARE_ACCOUNT_ID -u CLOUDFLARE_EMAIL -u CLOUDFLARE_API_KEY"
        .. " make --no-print-directory -s repl LUA_VERSION=5.4 LUA=lua5.4 LUA_PC=lua5.4; sleep 30")
      os.execute(("tmux new-session -d -s %s -x 200 -y 60 %q"):format(other, cmd))
      local port
      local deadline = socket.gettime() + 60
      while socket.gettime() < deadline and not port do
        port = tonumber(run(("tmux capture-pane -p -J -t %s"):format(other)):match("emulator at http://127%.0%.0%.1:(%d+)"))
        if not port then socket.sleep(0.1) end
      end
      assert.truthy(port, "the REPL did not start")
      assert.truthy(socket.connect("127.0.0.1", port), "the emulator is not listening")
      if ending[2] == "os.exit()" then
        os.execute(("tmux send-keys -t %s -l %q"):format(other, "os.exit()"))
        os.execute(("tmux send-keys -t %s Enter"):format(other))
      else
        os.execute(("tmux send-keys -t %s %s"):format(other, ending[2]))
      end
      local gone = false
      deadline = socket.gettime() + 5
      while socket.gettime() < deadline and not gone do
        local c = socket.connect("127.0.0.1", port)
        if c then c:close() socket.sleep(0.1) else gone = true end
      end
      os.execute(("tmux kill-session -t %s 2>/dev/null"):format(other))
      assert.is_true(gone, "the emulator still listens after " .. ending[1])
    end)
  end
end)

-- With the environment's credentials the REPL works on a real account, and
-- a plan's apply asks first, as the tool's does. The credentials here are
-- an emulator's that the spec starts, not one the REPL started: for the
-- REPL it is an account like any other.
describe("the REPL with the environment's credentials (Lua 5.4, in a pseudo-terminal)", function()
  local ACCOUNT = "7c5dae5552338874e5053f2534d2767a"
  local TOKEN = "repl-real-token-8d1e"
  local session = "es-repl-real-" .. tostring(os.time()) .. "-" .. math.random(1000, 9999)
  local available = run("command -v tmux") ~= "" and run("command -v lua5.4") ~= ""
  local emu, dir

  local function screen()
    return run(("tmux capture-pane -p -J -S -2000 -t %s"):format(session))
  end

  local function count(text, want)
    local n, at = 0, 1
    while true do
      local i = text:find(want, at, true)
      if not i then return n end
      n, at = n + 1, i + 1
    end
  end

  -- Types a line, then waits until the screen shows `want` (a plain
  -- string) once more than it did before: a question asked again is a
  -- new one.
  local function type_line(line, want)
    local before = count(screen(), want)
    os.execute(("tmux send-keys -t %s -l %q"):format(session, line))
    os.execute(("tmux send-keys -t %s Enter"):format(session))
    local deadline = socket.gettime() + 15
    while socket.gettime() < deadline do
      local text = screen()
      if count(text, want) > before then return text end
      socket.sleep(0.1)
    end
    error("the prompt never showed " .. want .. " again; screen:\n" .. screen())
  end

  lazy_setup(function()
    if not available then return end
    emu = require("emulator.process").start({ token = TOKEN })
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    start_repl(session, ("env -u CLOUDFLARE_EMAIL -u CLOUDFLARE_API_KEY CLOUDFLARE_API_TOKEN=%s"
      .. " CLOUDFLARE_ACCOUNT_ID=%s CLOUDFLARE_BASE_URL=%s"):format(TOKEN, ACCOUNT, emu.base_url))
  end)

  lazy_teardown(function()
    if not available then return end
    stop_repl(session)
    os.execute("rm -rf " .. dir)
    emu.stop()
  end)

  it("asks before a plan's apply sends: anything but yes applies nothing, yes applies", function()
    if not available then return pending("tmux or lua5.4 is not installed") end
    local text = screen()
    assert.matches("cf: a client for account " .. ACCOUNT .. " at " .. emu.base_url .. " (from the environment)",
                   text, 1, true)
    assert.matches("p:apply() on a plan asks before it sends anything (p:apply{ yes = true } does not)", text, 1, true)
    type_line('p = reg:plan({ { name = "Jane Roe", email = "jane@example.com", is_email_regex = false } })', "\n> ")
    text = type_line("p:apply()", "Apply these changes? Type yes to go on: ")
    assert.matches("\naccount " .. ACCOUNT .. " at " .. emu.base_url .. "\n"
      .. "impersonation_registry: 1 change (1 to create, 0 to update, 0 to delete)\n"
      .. "Apply these changes? Type yes to go on: ", text, 1, true)
    -- no: an error value, not an exception, and nothing sent
    text = type_line("no", "invalid error: not applied: the answer was not yes")
    assert.matches("\nnil%s+invalid error: not applied: the answer was not yes %(p:apply{ yes = true } applies "
      .. "without asking%)\n", text)
    assert.are.equal(0, #emu.state(ACCOUNT, "impersonation_registry"))
    type_line("reg:list()", "-- page 1, 0 entries of 0")
    -- asked again; yes
    type_line("p:apply()", "Apply these changes? Type yes to go on: ")
    type_line("yes", "1 created, 0 updated, 0 deleted")
    assert.are.same({ "jane@example.com" }, { emu.state(ACCOUNT, "impersonation_registry")[1].email })
    type_line("reg:list()", "-- page 1, 1 entries of 1")
  end)

  it("asks also for a client made through require, as the README's examples do", function()
    if not available then return pending("tmux or lua5.4 is not installed") end
    type_line('r2 = require("cloudflare.email_security").new().url_ignore_patterns', "\n> ")
    type_line('u = r2:plan({ { pattern = "required.example.com" } }, { purge = false })', "\n> ")
    type_line("u:apply()", "Apply these changes? Type yes to go on: ")
    type_line("no", "invalid error: not applied: the answer was not yes")
    assert.are.equal(0, #emu.state(ACCOUNT, "url_ignore_patterns"))
  end)

  it("applies without asking with yes = true, and when there is nothing to send", function()
    if not available then return pending("tmux or lua5.4 is not installed") end
    local asked = count(screen(), "Apply these changes?")
    type_line('q = reg:plan({ { name = "Max Mustermann", email = "max@example.com", is_email_regex = false } }, '
      .. "{ purge = false })", "\n> ")
    type_line("q:apply{ yes = true }", "1 created, 0 updated, 0 deleted")
    assert.are.equal(2, #emu.state(ACCOUNT, "impersonation_registry"))
    type_line('q = reg:plan({ { name = "Max Mustermann", email = "max@example.com", is_email_regex = false } }, '
      .. "{ purge = false })", "\n> ")
    type_line("q:apply()", "0 created, 0 updated, 0 deleted")
    assert.are.equal(asked, count(screen(), "Apply these changes?"))
  end)

  it("asks before a folder plan's apply sends, naming each account", function()
    if not available then return pending("tmux or lua5.4 is not installed") end
    local f = assert(io.open(dir .. "/block_senders.csv", "w"))
    f:write("pattern_type,pattern,is_regex\nEMAIL,s1@example.com,false\n")
    f:close()
    type_line(("fp = es.plan_folder(cf, es.read_folder(%q))"):format(dir), "\n> ")
    local text = type_line("fp:apply()", "Apply these changes? Type yes to go on: ")
    assert.matches("\naccount " .. ACCOUNT .. " at " .. emu.base_url .. "\n1 change in 1 account\n"
      .. "Apply these changes? Type yes to go on: ", text, 1, true)
    type_line("nope", "invalid error: not applied: the answer was not yes")
    assert.are.equal(0, #emu.state(ACCOUNT, "block_senders"))
    type_line("fp:apply()", "Apply these changes? Type yes to go on: ")
    type_line("yes", "\n> ")
    assert.are.same({ "s1@example.com" }, { emu.state(ACCOUNT, "block_senders")[1].pattern })
  end)

  it("asks before a folder plan's inner plan applies on its own; the folder's apply asks once for all", function()
    if not available then return pending("tmux or lua5.4 is not installed") end
    local inner = dir .. "/inner"
    assert(os.execute("mkdir -p " .. inner))
    local f = assert(io.open(inner .. "/url_ignore_patterns.csv", "w"))
    f:write("pattern\ninner.example.com/x\n")
    f:close()
    type_line(("fi = es.plan_folder(cf, es.read_folder(%q))"):format(inner), "\n> ")
    -- the review's bypass: the plan a folder plan holds, applied by itself
    local text = type_line("fi.accounts[1].resources[1].plan:apply()", "Apply these changes? Type yes to go on: ")
    assert.matches("\naccount " .. ACCOUNT .. " at " .. emu.base_url .. "\n"
      .. "url_ignore_patterns: 1 change (1 to create, 0 to update, 0 to delete)\n"
      .. "Apply these changes? Type yes to go on: ", text, 1, true)
    type_line("no", "invalid error: not applied: the answer was not yes")
    assert.are.equal(0, #emu.state(ACCOUNT, "url_ignore_patterns"))
    -- the folder's apply: one question, none again for the plan inside
    local asked = count(screen(), "Apply these changes?")
    type_line("fi:apply()", "Apply these changes? Type yes to go on: ")
    type_line("yes", "\n> ")
    assert.are.same({ "inner.example.com/x" }, { emu.state(ACCOUNT, "url_ignore_patterns")[1].pattern })
    assert.are.equal(asked + 1, count(screen(), "Apply these changes?"))
    -- the inner plan, applied with its folder, is applied: refused without a question
    type_line("fi.accounts[1].resources[1].plan:apply()", "this plan was applied already")
    assert.are.equal(asked + 1, count(screen(), "Apply these changes?"))
  end)
end)
