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
    local cmd = ("env -u CLOUDFLARE_API_TOKEN -u CLOUDFLARE_ACCOUNT_ID -u CLOUDFLARE_EMAIL -u CLOUDFLARE_API_KEY"
      .. " make --no-print-directory -s repl LUA_VERSION=5.4 LUA=lua5.4 LUA_PC=lua5.4")
    os.execute(("tmux new-session -d -s %s -x 200 -y 60 %q"):format(session, cmd))
    local deadline = socket.gettime() + 60
    while socket.gettime() < deadline and not screen():find("\n> ", 1, true) do socket.sleep(0.1) end
  end)

  lazy_teardown(function()
    if not available then return end
    os.execute(("tmux send-keys -t %s C-d"):format(session))
    socket.sleep(0.5)
    os.execute(("tmux kill-session -t %s 2>/dev/null"):format(session))
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
