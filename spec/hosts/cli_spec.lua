-- bin/cloudflare-email-security driven as a subprocess against the
-- emulator: help, exit codes, the table, JSON and CSV outputs, a CSV
-- round trip, plan and apply, and errors as one line on stderr.
local cjson = require("cjson")
local es = require("cloudflare.email_security")
local emulator_process = require("emulator.process")
local files = require("spec.support.files")
local cli_tool = require("spec.support.cli_tool")

local ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"
local TOKEN = "cli-secret-token-4f9a"
local LUA = cli_tool.LUA
local q, execute = cli_tool.quote, cli_tool.execute

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

local POLICY = "pattern_type=EMAIL is_regex=false is_exempt_recipient=false is_trusted_sender=true "
  .. "is_acceptable_sender=false verify_sender=true"

describe("the command-line tool", function()
  local emu, env, dir, tool
  local command, run, start_in_background, on_terminal

  setup(function()
    emu = emulator_process.start({ token = TOKEN })
    env = ("env -u CLOUDFLARE_EMAIL -u CLOUDFLARE_API_KEY CLOUDFLARE_API_TOKEN=%s CLOUDFLARE_ACCOUNT_ID=%s "
      .. "CLOUDFLARE_BASE_URL=%s"):format(TOKEN, ACCOUNT, q(emu.base_url))
    tool = cli_tool.new(env)
    dir = tool.dir
    command, run, start_in_background, on_terminal = tool.command, tool.run, tool.start_in_background,
      tool.on_terminal
  end)
  teardown(function()
    emu.stop()
    tool.cleanup()
  end)
  before_each(function() emu.reset() end)

  -- Two files of URL ignore patterns: ten (prefix1.example.com ...), and
  -- the first of them alone, which deletes past the thresholds.
  local function ten_and_one(prefix)
    local lines = { "pattern" }
    for i = 1, 10 do lines[#lines + 1] = ("%s%d.example.com"):format(prefix, i) end
    local all, few = dir .. "/" .. prefix .. "_all.csv", dir .. "/" .. prefix .. "_few.csv"
    write(all, table.concat(lines, "\n") .. "\n")
    write(few, "pattern\n" .. prefix .. "1.example.com\n")
    return all, few
  end

  it("--help lists the resources, the credentials' variables and the exit codes", function()
    local code, out = run("--help")
    assert.are.equal(0, code)
    for _, name in ipairs(es.resources) do assert.truthy(out:find(name, 1, true), name) end
    assert.truthy(out:find("CLOUDFLARE_API_TOKEN", 1, true))
    assert.truthy(out:find("2 plan found changes", 1, true))
    code, out = run("allow_policies --help")
    assert.are.equal(0, code)
    assert.truthy(out:find("pattern_type%s+string, one of `EMAIL`"))
    assert.truthy(out:find("match entries by pattern_type, pattern, is_regex", 1, true))
    code, out = run("domains apply --help")
    assert.are.equal(0, code)
    assert.truthy(out:find("--delete-domains", 1, true))
    assert.truthy(out:find("--no-purge", 1, true))
  end)

  describe("runs from anywhere, without LUA_PATH", function()
    local root = files.command_output("pwd")
    -- the tool's own Lua: make's variables for it
    local make_vars = LUA == "luajit" and "LUA_VERSION=5.1 LUA=luajit LUA_PC=luajit BUILD=build/luajit"
      or ("LUA_VERSION=%s LUA=%s"):format(LUA:match("%d+%.%d+$") or "5.4", LUA)

    -- Lua's search paths without the working directory's and /usr/local's
    -- (where `make install` may have put another copy of the module): only
    -- what the launcher adds can find it; Debian's lua-cjson and
    -- lua-argparse are still found where Debian put them
    local function system_only(path)
      local kept = {}
      for entry in path:gmatch("[^;]+") do
        if not entry:find("^%./") and not entry:find("/usr/local/", 1, true) and not entry:find(root, 1, true) then
          kept[#kept + 1] = entry
        end
      end
      return table.concat(kept, ";")
    end

    local function list_from(launcher)
      local out = dir .. "/out"
      local code = execute(("cd / && env -u LUA_PATH_5_4 -u LUA_CPATH_5_4 LUA_PATH=%s LUA_CPATH=%s %s %s %s "
        .. "--json allow_policies list > %s 2>&1"):format(q(system_only(package.path)), q(system_only(package.cpath)),
        env, LUA, q(launcher), out))
      return code, files.read(out) or ""
    end

    it("in a checkout: the modules and the core beside it", function()
      local code, out = list_from(root .. "/bin/cloudflare-email-security")
      assert.are.equal(0, code, out)
      assert.are.equal("[]", (out:gsub("%s+$", "")))
    end)

    it("after make install PREFIX=...: where it was installed", function()
      local prefix = dir .. "/prefix with space"
      local log = dir .. "/install.log"
      assert.are.equal(0, execute(("make -s install-files %s PREFIX=%s > %s 2>&1")
        :format(make_vars, q(prefix), log)), files.read(log))
      local code, out = list_from(prefix .. "/bin/cloudflare-email-security")
      assert.are.equal(0, code, out)
      assert.are.equal("[]", (out:gsub("%s+$", "")))
    end)
  end)

  it("usage errors exit 64; there is no way to give a credential on the command line", function()
    local code, _, err = run("allow_policies lst")
    assert.are.equal(64, code)
    assert.truthy(err:find("Did you mean 'list'", 1, true))
    code, _, err = run("--api-token x allow_policies list")
    assert.are.equal(64, code)
    assert.truthy(err:find("unknown option '--api-token'", 1, true))
    code = run("--json --csv allow_policies list")
    assert.are.equal(64, code)
    -- an argument quoted back in the usage error never drives the terminal
    code, _, err = run("allow_policies delete " .. q("--\27]0;owned\7\27[31mred"))
    assert.are.equal(64, code)
    assert.is_nil(err:find("[\27\7]"), err)
    assert.truthy(err:find("\\x1b]0;owned", 1, true), err)
  end)

  it("without credentials, says which variable to set, exit 1", function()
    local code, out, err = run("allow_policies list", { env = "env -u CLOUDFLARE_API_TOKEN -u CLOUDFLARE_EMAIL "
      .. "-u CLOUDFLARE_API_KEY CLOUDFLARE_ACCOUNT_ID=" .. ACCOUNT })
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.truthy(err:find("CLOUDFLARE_API_TOKEN", 1, true))
  end)

  it("creates, gets, lists as a table, JSON and CSV, updates and deletes", function()
    local code, out, err = run("allow_policies create pattern=ceo@example.com " .. POLICY .. " 'comments=a, b'")
    assert.are.equal(0, code, err)
    -- the account and the API the change went to, on stderr
    assert.are.equal(("account %s at %s\n"):format(ACCOUNT, emu.base_url), err)
    -- the key's fields first, then the id
    assert.truthy(out:find("^pattern_type%s+EMAIL\npattern%s+ceo@example.com\nis_regex%s+false\nid%s"), out)
    local id = out:match("\nid%s+(%S+)")
    assert.truthy(id, out)
    assert.truthy(out:find("\ncomments%s+a, b\n"))
    code, out = run("allow_policies get " .. id)
    assert.are.equal(0, code)
    assert.truthy(out:find("pattern%s+ceo@example.com"))
    run("allow_policies create pattern=x.example.com pattern_type=DOMAIN is_regex=false is_exempt_recipient=false "
      .. "is_trusted_sender=false is_acceptable_sender=true verify_sender=false")
    code, out = run("allow_policies list")
    assert.are.equal(0, code)
    local lines = {}
    for line in out:gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.are.equal(3, #lines)
    -- aligned: every column starts where its header does
    local at = lines[1]:find("pattern_type", 1, true)
    assert.are.equal("EMAIL", lines[2]:sub(at, at + 4))
    assert.are.equal("DOMAIN", lines[3]:sub(at, at + 5))
    code, out = run("--json allow_policies list --pattern-type DOMAIN")
    assert.are.equal(0, code)
    local listed = cjson.decode(out)
    assert.are.equal(1, #listed)
    assert.are.equal("x.example.com", listed[1].pattern)
    code, out = run("allow_policies update " .. id .. " comments=null --json")
    assert.are.equal(0, code)
    assert.are.equal(cjson.null, cjson.decode(out).comments)
    code, out = run("allow_policies delete " .. id .. " " .. listed[1].id)
    assert.are.equal(0, code)
    assert.are.equal("deleted " .. id .. "\ndeleted " .. listed[1].id .. "\n", out)
    assert.are.equal(0, #emu.state(ACCOUNT, "allow_policies"))
  end)

  it("errors are one line on stderr, exit 1, and never show the token", function()
    local code, out, err = run("allow_policies get f174e90a-fafe-4643-bbbc-4a0ed4fc8415")
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.truthy(err:find("^api error: HTTP 404"), err)
    assert.are.equal(1, select(2, err:gsub("\n", "")))
    local _
    code, _, err = run("allow_policies create pattern=x nmae=y")
    assert.are.equal(1, code)
    assert.truthy(err:find("^invalid error: nmae: is not a field of allow_policies"), err)
    for _, text in ipairs({ out, err }) do assert.is_nil(text:find(TOKEN, 1, true)) end
  end)

  it("list --csv reads back unchanged, and plans no change", function()
    emu.seed(ACCOUNT, {
      { domain = "a.example.com", exclude = { "x.a.example.com", "y.a.example.com" }, comments = 'say "hi", twice' },
      { domain = "b.example.com", exclude = {}, comments = es.null },
    }, "sending_domain_restrictions")
    local code, out = run("--csv sending_domain_restrictions list")
    assert.are.equal(0, code)
    local path = dir .. "/restrictions.csv"
    write(path, out)
    local back = assert(es.read_entries(path, "sending_domain_restrictions"))
    code, out = run("--json sending_domain_restrictions list")
    assert.are.equal(0, code)
    local listed = cjson.decode(out)
    assert.are.equal(#listed, #back)
    for i, e in ipairs(back) do
      for field, value in pairs(e) do
        local want = listed[i][field]
        if type(want) == "table" and #want == 0 then want = {} end
        assert.are.same(want, value, field)
      end
    end
    code, out = run("sending_domain_restrictions plan " .. q(path))
    assert.are.equal(0, code)
    assert.are.equal("0 to create, 0 to update, 0 to delete, 2 unchanged\n", out)
  end)

  it("plan exits 2 with changes; apply asks, or takes --yes, then plan exits 0", function()
    local path = dir .. "/patterns.csv"
    write(path, "pattern,comments\na.example.com,first\nb.example.com,\n")
    local code, out = run("url_ignore_patterns plan " .. q(path))
    assert.are.equal(2, code)
    -- a create says what it sets beyond its key
    assert.truthy(out:find('+ url_ignore_patterns create pattern=a.example.com with comments: "first"\n', 1, true), out)
    assert.truthy(out:find("+ url_ignore_patterns create pattern=b.example.com\n", 1, true), out)
    assert.truthy(out:find("2 to create, 0 to update, 0 to delete, 0 unchanged", 1, true))
    code, out = run("--json url_ignore_patterns plan " .. q(path))
    assert.are.equal(2, code)
    assert.are.equal(2, #cjson.decode(out).creates)
    -- no terminal to ask on, no --yes: nothing is sent
    local _, err
    code, _, err = run("url_ignore_patterns apply " .. q(path))
    assert.are.equal(1, code)
    assert.truthy(err:find("--yes", 1, true))
    assert.are.equal(0, #emu.state(ACCOUNT, "url_ignore_patterns"))
    code, out, err = run("url_ignore_patterns apply --yes " .. q(path))
    assert.are.equal(0, code, err)
    -- no progress on stderr when it is not a terminal: the account alone
    assert.are.equal(("account %s at %s\n"):format(ACCOUNT, emu.base_url), err)
    -- (how many requests that took is apply's business, not the tool's)
    assert.truthy(out:find("2 created, 0 updated, 0 deleted, 0 unchanged (", 1, true), out)
    code = run("url_ignore_patterns plan " .. q(path))
    assert.are.equal(0, code)
  end)

  it("apply passes --force and --no-purge on, and refuses past the thresholds", function()
    local all, few = ten_and_one("p")
    assert.are.equal(0, (run("url_ignore_patterns apply --yes " .. q(all))))
    local code, _, err = run("url_ignore_patterns apply --yes " .. q(few))
    assert.are.equal(1, code)
    assert.truthy(err:find("would delete 9 of the 10 existing entries", 1, true), err)
    local out
    code, out = run("url_ignore_patterns apply --yes --no-purge " .. q(few))
    assert.are.equal(0, code)
    assert.truthy(out:find("nothing to do", 1, true))
    code = run("url_ignore_patterns apply --yes --force " .. q(few))
    assert.are.equal(0, code)
    assert.are.equal(1, #emu.state(ACCOUNT, "url_ignore_patterns"))
  end)

  it("a bad file is named with its line and column", function()
    local path = dir .. "/bad.csv"
    write(path, "domain,lookback_hops\nd.example.com,x\n")
    local code, _, err = run("domains plan " .. q(path))
    assert.are.equal(1, code)
    assert.are.equal(path .. ":2:15: lookback_hops: must be an integer, got 'x'\n", err)
  end)

  it("every resource's list --csv and list --json read back with plan as no change", function()
    local examples = require("spec.support.examples")
    for _, name in ipairs(es.resources) do
      local list = {}
      for i = 1, 2 do
        local e = examples.required(require("cloudflare.email_security.resources." .. name).bodies.create)
        for _, field in ipairs({ "pattern", "email", "domain", "name" }) do
          if e[field] then e[field] = ("k%d.example.com"):format(i) end
        end
        list[i] = e
      end
      emu.seed(ACCOUNT, list, name)
      for _, format in ipairs({ "csv", "json" }) do
        local code, out = run("--" .. format .. " " .. name .. " list")
        assert.are.equal(0, code)
        local path = dir .. "/" .. name .. "." .. format
        write(path, out)
        local err
        code, out, err = run(name .. " plan " .. q(path))
        assert.are.equal(0, code, name .. " " .. format .. ": " .. out .. err)
        assert.truthy(out:find("0 to create, 0 to update, 0 to delete, 2 unchanged", 1, true), out)
      end
    end
  end)

  it("plan --json writes empty lists as [] and lists what it keeps", function()
    emu.seed(ACCOUNT, { { domain = "d1.example.com", exclude = { "x.example.com" } },
                        { domain = "d9.example.com", exclude = {} } }, "sending_domain_restrictions")
    local path = dir .. "/empty.json"
    write(path, '[{"domain": "d1.example.com", "exclude": []}, {"domain": "d2.example.com", "exclude": []}]')
    local code, out = run("--json sending_domain_restrictions plan --no-purge " .. q(path))
    assert.are.equal(2, code)
    local plan = cjson.decode(out)
    assert.truthy(out:find('"fields":{"domain":"d2.example.com","exclude":[]}', 1, true), out)
    assert.truthy(out:find('"new":[]', 1, true), out)
    assert.are.equal(1, #plan.kept)
  end)

  it("prints no control character the server sent, and aligns by characters", function()
    emu.seed(ACCOUNT, { { domain = "d1.example.com", exclude = { "\27]0;owned\7" }, comments = "Zürich" },
                        { domain = "d2.example.com", exclude = { "x" }, comments = "plain" } },
             "sending_domain_restrictions")
    local code, out = run("sending_domain_restrictions list")
    assert.are.equal(0, code)
    assert.is_nil(out:find("[%z\1-\9\11-\31\127]"), out)
    local lines = {}
    for line in out:gmatch("[^\n]+") do lines[#lines + 1] = line end
    local utf8_len = require("cloudflare.email_security.schema.validate").utf8_length
    local at = utf8_len(lines[1]:sub(1, lines[1]:find("domain", 1, true) - 1))
    for i = 2, 3 do
      local before = lines[i]:sub(1, lines[i]:find("d%d%.example%.com") - 1)
      assert.are.equal(at, utf8_len(before))
    end
  end)

  it("plan --json names the retired fields it ignored; a file's control characters never reach stderr", function()
    run("allow_policies create pattern=x@example.com " .. POLICY)
    local path = dir .. "/spoof.csv"
    write(path, "pattern_type,pattern,is_regex,is_spoof\nEMAIL,x@example.com,false,true\n")
    local code, out = run("--json allow_policies plan " .. q(path))
    assert.are.equal(0, code, out)
    assert.truthy(out:find('"ignored":[{"field":"is_spoof","reason":"retired: use is_acceptable_sender"}]', 1, true),
                  out)
    write(path, "pattern,is_regex\nx,\27]0;owned\7\n")
    local _, err
    code, _, err = run("trusted_domains plan " .. q(path))
    assert.are.equal(1, code)
    assert.is_nil(err:find("[\27\7]"), err)
    assert.truthy(err:find("\\x1b]0;owned\\x07", 1, true), err)
  end)

  it("create names every missing required field at once, and create --help lists the fields", function()
    local before = #emu.requests()
    local code, _, err = run("allow_policies create pattern=x@example.com comments=hi")
    assert.are.equal(64, code)
    assert.truthy(err:find("6 required fields are missing: is_acceptable_sender, is_exempt_recipient, is_regex, "
      .. "is_trusted_sender, pattern_type, verify_sender (create --help lists the fields)", 1, true), err)
    assert.are.equal(before, #emu.requests())
    local out
    code, out = run("allow_policies create --help")
    assert.are.equal(0, code)
    assert.truthy(out:find("Fields:", 1, true), out)
    assert.truthy(out:find("pattern_type%s+required; string, one of `EMAIL`"), out)
    code, out = run("allow_policies update --help")
    assert.are.equal(0, code)
    assert.truthy(out:find("comments ", 1, true), out)
  end)

  it("--max-retries, --max-retry-wait, --timeout and --rate-limit set the client's options", function()
    emu.fault({ method = "GET", path = "/url_ignore_patterns", status = 503, times = 1 })
    local code, _, err = run("--max-retries 0 url_ignore_patterns list")
    assert.are.equal(1, code)
    assert.truthy(err:find("HTTP 503", 1, true), err)
    emu.fault({ method = "GET", path = "/url_ignore_patterns", status = 503, times = 1 })
    code = run("--max-retries 1 --max-retry-wait 0.1 url_ignore_patterns list")
    assert.are.equal(0, code)
    for _, bad in ipairs({ "--max-retries 101", "--max-retry-wait -1", "--timeout 0", "--rate-limit 10",
                           "--rate-limit 0/5", "--rate-limit a/b" }) do
      local refused, _, why = run(bad .. " url_ignore_patterns list")
      assert.are.equal(64, refused, bad .. ": " .. why)
    end
    code = run("--rate-limit 600/300 --timeout 5 url_ignore_patterns list")
    assert.are.equal(0, code)
  end)

  it("plan - reads standard input with --format; --format reads any file name as it says", function()
    write(dir .. "/in.txt", "pattern\na.example.com\n")
    local code, out = run("url_ignore_patterns plan - --format csv", { stdin = dir .. "/in.txt" })
    assert.are.equal(2, code, out)
    assert.truthy(out:find("1 to create", 1, true), out)
    code, out = run("url_ignore_patterns plan --format csv " .. q(dir .. "/in.txt"))
    assert.are.equal(2, code, out)
    write(dir .. "/in.txt", '[{"pattern":"a.example.com"}]')
    code, out = run("url_ignore_patterns apply --yes --format json -", { stdin = dir .. "/in.txt" })
    assert.are.equal(0, code, out)
    assert.are.equal(1, #emu.state(ACCOUNT, "url_ignore_patterns"))
    local refused, _, err = run("url_ignore_patterns plan -", { stdin = dir .. "/in.txt" })
    assert.are.equal(64, refused)
    assert.truthy(err:find("give --format csv or --format json", 1, true), err)
    code = run("url_ignore_patterns plan --format yaml -", { stdin = dir .. "/in.txt" })
    assert.are.equal(64, code)
  end)

  it("delete A B C carries on past a failed id, reports each, and exits 1 if any failed", function()
    local seeded = emu.seed(ACCOUNT, { { pattern = "a.example.com" }, { pattern = "b.example.com" } },
                            "url_ignore_patterns")
    local missing = "f174e90a-fafe-4643-bbbc-4a0ed4fc8415"
    local code, out, err = run("--json url_ignore_patterns delete " .. seeded[1].id .. " " .. missing .. " "
      .. seeded[2].id)
    assert.are.equal(1, code)
    assert.are.same({ { id = seeded[1].id }, { id = seeded[2].id } }, cjson.decode(out))
    assert.truthy(err:find("not deleted " .. missing .. ": api error: HTTP 404", 1, true), err)
    assert.truthy(err:find("1 of 3 not deleted", 1, true), err)
    assert.are.equal(0, #emu.state(ACCOUNT, "url_ignore_patterns"))
  end)

  it("apply piped to tee: the plan has left stdout before the question is asked", function()
    local path = dir .. "/ask.csv"
    write(path, "pattern\na.example.com\n")
    -- stdin a terminal to ask on, stdout and stderr one pipe: its order is the order written
    local _, shown = on_terminal(command("url_ignore_patterns apply " .. q(path)) .. " 2>&1 | cat")
    local plan_at = shown:find("1 to create", 1, true)
    local ask_at = shown:find("Apply these changes?", 1, true)
    assert.truthy(plan_at and ask_at, shown)
    assert.is_true(plan_at < ask_at, shown)
    -- no answer (end of input) is not yes
    assert.truthy(shown:find("not applied", 1, true), shown)
    assert.are.equal(0, #emu.state(ACCOUNT, "url_ignore_patterns"))
  end)

  -- what a server could send to drive a terminal: a title change, a
  -- colour, the C1 CSI, a direction override, an isolate, a line
  -- separator and the Arabic letter mark
  local HOSTILE = "\27]0;owned\7 \27[31mred \194\155 \226\128\174 \226\129\166 \226\128\168 \216\156 end"

  it("--csv on a terminal escapes what would drive it; to a pipe it is byte for byte and reads back", function()
    emu.seed(ACCOUNT, { { domain = "d1.example.com", exclude = { "\27[31m" }, comments = HOSTILE } },
             "sending_domain_restrictions")
    local code, shown = on_terminal(command("--csv sending_domain_restrictions list"))
    assert.are.equal(0, code, shown)
    local lines = shown:gsub("\r*\n", "\n")
    assert.is_nil(lines:find("[%z\1-\9\11-\31\127]"), shown)
    assert.is_nil(lines:find("\194[\128-\159]"), shown)
    assert.is_nil(lines:find("\226\128[\168-\174]"), shown)
    assert.is_nil(lines:find("\226\129\166", 1, true), shown)
    assert.is_nil(lines:find("\216\156", 1, true), shown)
    assert.truthy(lines:find("\\x1b]0;owned\\x07 \\x1b[31mred \\u009b \\u202e \\u2066 \\u2028 \\u061c end", 1, true),
                  shown)
    local out
    code, out = run("--csv sending_domain_restrictions list")
    assert.are.equal(0, code)
    assert.truthy(out:find(HOSTILE, 1, true), out)
    local path = dir .. "/hostile.csv"
    write(path, out)
    code, out = run("sending_domain_restrictions plan " .. q(path))
    assert.are.equal(0, code, out)
    assert.truthy(out:find("0 to create, 0 to update, 0 to delete, 1 unchanged", 1, true), out)
  end)

  it("--json and plan --json write C1 controls and direction marks as \\u escapes, losing nothing", function()
    emu.seed(ACCOUNT, { { domain = "d1.example.com", exclude = {}, comments = HOSTILE } },
             "sending_domain_restrictions")
    local function assert_escaped(out)
      assert.is_nil(out:find("[%z\1-\9\11-\31\127]"), out)
      assert.is_nil(out:find("\194[\128-\159]"), out)
      assert.is_nil(out:find("\226\128[\168-\174]"), out)
      assert.is_nil(out:find("\226\129\166", 1, true), out)
      assert.is_nil(out:find("\216\156", 1, true), out)
      assert.truthy(out:find("\\u009b \\u202e \\u2066 \\u2028 \\u061c end", 1, true), out)
    end
    local code, out = run("--json sending_domain_restrictions list")
    assert.are.equal(0, code)
    assert_escaped(out)
    assert.are.equal(HOSTILE, cjson.decode(out)[1].comments)
    local path = dir .. "/hostile.json"
    write(path, '[{"domain":"d2.example.com","exclude":[],"comments":' .. cjson.encode(HOSTILE) .. '}]')
    code, out = run("--json sending_domain_restrictions plan --no-purge " .. q(path))
    assert.are.equal(2, code, out)
    assert_escaped(out)
    assert.are.equal(HOSTILE, cjson.decode(out).creates[1].fields.comments)
  end)

  it("a malformed field=value or a parameter not of its type is a usage error (64), before any credential", function()
    local no_credentials = "env -u CLOUDFLARE_API_TOKEN -u CLOUDFLARE_EMAIL -u CLOUDFLARE_API_KEY "
      .. "CLOUDFLARE_ACCOUNT_ID=" .. ACCOUNT
    for _, case in ipairs({
      { "url_ignore_patterns create pattern", "'pattern' is not field=value" },
      { "url_ignore_patterns create =x", "'=x' is not field=value" },
      { "domains list --per-page abc", "--per-page: must be an integer, got 'abc'" },
      { "domains create lookback_hops=two", "lookback_hops: must be an integer, got 'two'" },
      { "url_ignore_patterns create pattern=a.example.com comments=x comments=y", "comments is given twice" },
    }) do
      local code, out, err = run(case[1], { env = no_credentials })
      assert.are.equal(64, code, case[1] .. ": " .. err)
      assert.are.equal("", out)
      assert.truthy(err:find(case[2], 1, true), err)
      assert.is_nil(err:find("CLOUDFLARE_API_TOKEN", 1, true), err)
    end
  end)

  it("--json writes an empty list in a field the description does not know as []", function()
    local id = emu.seed(ACCOUNT, { { domain = "d1.example.com" } }, "sending_domain_restrictions")[1].id
    emu.fault({ method = "GET", path = "/sending_domain_restrictions/" .. id, status = 200,
                headers = { ["Content-Type"] = "application/json" },
                body = '{"success":true,"errors":[],"messages":[],"result":{"id":"' .. id
                  .. '","domain":"d1.example.com","exclude":[],"tags":[]}}' })
    local code, out = run("--json sending_domain_restrictions get " .. id)
    assert.are.equal(0, code, out)
    assert.truthy(out:find('"exclude":[]', 1, true), out)
    assert.truthy(out:find('"tags":[]', 1, true), out)
  end)

  it("a global flag the command does not use is refused, naming the flag and the command (64)", function()
    local path = dir .. "/flags.csv"
    write(path, "pattern\na.example.com\n")
    local id = "f174e90a-fafe-4643-bbbc-4a0ed4fc8415"
    for _, case in ipairs({
      { "-o yaml url_ignore_patterns apply --yes " .. q(path), "-o yaml", "url_ignore_patterns apply" },
      { "url_ignore_patterns apply --yes --csv " .. q(path), "--csv", "url_ignore_patterns apply" },
      { "--csv url_ignore_patterns plan " .. q(path), "--csv", "url_ignore_patterns plan" },
      { "--csv url_ignore_patterns delete " .. id, "--csv", "url_ignore_patterns delete" },
      { "--csv domains verification " .. id, "--csv", "domains verification" },
    }) do
      local code, out, err = run(case[1])
      assert.are.equal(64, code, case[1] .. ": " .. out .. err)
      assert.are.equal("", out)
      assert.truthy(err:find(case[2], 1, true) and err:find(case[3], 1, true), err)
    end
    assert.are.equal(0, #emu.requests())
    assert.are.equal(0, #emu.state(ACCOUNT, "url_ignore_patterns"))
  end)

  it("Ctrl-C during an apply starts nothing more, lets what is in flight finish, and says what was done", function()
    local socket = require("socket")
    local path = dir .. "/many.csv"
    local lines = { "email,is_email_regex,name" }
    for i = 1, 40 do lines[#lines + 1] = ("p%d@example.com,false,P"):format(i) end
    write(path, table.concat(lines, "\n") .. "\n")
    emu.latency(0, 200)
    local err = dir .. "/err"
    local pid, exit_code = start_in_background("--concurrency 4 impersonation_registry apply --yes " .. q(path))
    -- a listing, then two rounds of four creates at 200 ms each
    socket.sleep(0.5)
    os.execute("kill -INT " .. pid)
    local code = exit_code(10)
    emu.latency(0, 0)
    local stderr = files.read(err) or ""
    -- 130: what a shell reports for a command Ctrl-C ended
    assert.are.equal(130, code, stderr)
    assert.truthy(stderr:find("stopped by an interrupt (Ctrl-C) before it was sent", 1, true), stderr)
    local created = tonumber(stderr:match("(%d+) created"))
    local not_done = tonumber(stderr:match("(%d+) creates, 0 updates, 0 deletes not done"))
    assert(created and not_done, stderr)
    -- what was in flight finished, and counts; nothing is in doubt
    assert.is_nil(stderr:find("in doubt", 1, true), stderr)
    assert.are.equal(40, created + not_done)
    assert.is_true(created > 0 and created < 40, stderr)
    assert.are.equal(created, #emu.state(ACCOUNT))
    local posts = 0
    for _, r in ipairs(emu.requests()) do
      if r.method == "POST" then posts = posts + 1 end
    end
    assert.are.equal(created, posts)
  end)

  it("Ctrl-C during a retry's wait (a 503 with Retry-After: 15) ends get and list at once: exit 130", function()
    local socket = require("socket")
    local err = dir .. "/err"
    local seen, expected, stderrs = {}, {}, {}
    for _, args in ipairs({ "impersonation_registry get 00000000-0000-4000-8000-000000000000",
                            "impersonation_registry list" }) do
      emu.reset()
      emu.fault({ method = "GET", status = 503, body = "{}", headers = { ["Retry-After"] = "15" } })
      local pid, exit_code = start_in_background(args)
      -- by then its GET has had the 503, and it sleeps until the next try
      socket.sleep(1)
      os.execute("kill -INT " .. pid)
      local code = exit_code(5)
      if not code then
        -- still asleep: not left running after the case
        os.execute("kill -9 " .. pid)
        exit_code(2)
      end
      local stderr = files.read(err) or ""
      seen[#seen + 1] = { args, exit_within_5_s = code, interrupted = stderr:find("stopped by an interrupt", 1, true) ~= nil,
                          requests = #emu.requests() }
      -- exit 130, saying so, after the one try before the interrupt
      expected[#expected + 1] = { args, exit_within_5_s = 130, interrupted = true, requests = 1 }
      stderrs[#stderrs + 1] = args .. ": " .. stderr
    end
    assert.are.same(expected, seen, table.concat(stderrs, "\n"))
  end)

  it("--version names the tool's, Lua's and libcurl's versions, before any credential (0)", function()
    local code, out, err = run("--version", { env = "env -u CLOUDFLARE_API_TOKEN -u CLOUDFLARE_ACCOUNT_ID" })
    assert.are.equal(0, code, err)
    local lua = type(rawget(_G, "jit")) == "table" and rawget(_G, "jit").version or _VERSION
    assert.are.equal(("cloudflare-email-security %s (%s, libcurl %s)\n")
      :format(es.VERSION, lua, require("cloudflare.email_security.core").libcurl_version), out)
    assert.are.equal(0, #emu.requests())
  end)

  it("-y is --yes; -v (--debug) logs each request and answer on stderr, never the token", function()
    local path = dir .. "/short.csv"
    write(path, "pattern\nshort.example.com\n")
    local code, out, err = run("url_ignore_patterns apply -y " .. q(path))
    assert.are.equal(0, code, err)
    assert.truthy(out:find("1 created", 1, true), out)
    code, out, err = run("-v url_ignore_patterns list")
    assert.are.equal(0, code, err)
    assert.truthy(out:find("short.example.com", 1, true), out)
    assert.truthy(err:find("cloudflare.email_security: > GET /accounts/" .. ACCOUNT
      .. "/email-security/settings/url_ignore_patterns", 1, true), err)
    assert.truthy(err:find("cloudflare.email_security: < GET ", 1, true), err)
    assert.is_nil(err:find(TOKEN, 1, true))
    -- after the command too, as gh and kubectl take it
    code, out, err = run("url_ignore_patterns list --debug")
    assert.are.equal(0, code, err)
    assert.truthy(out:find("short.example.com", 1, true), out)
    assert.truthy(err:find("cloudflare.email_security: > GET ", 1, true), err)
  end)

  it("completion bash|zsh|fish prints a completion script that knows the resources and commands", function()
    for _, shell in ipairs({ "bash", "zsh", "fish" }) do
      local code, out, err = run("completion " .. shell, { env = "env -u CLOUDFLARE_API_TOKEN" })
      assert.are.equal(0, code, shell .. ": " .. err)
      assert.truthy(out:find("cloudflare-email-security", 1, true), shell)
      assert.truthy(out:find("impersonation_registry", 1, true), shell)
      assert.truthy(out:find("apply", 1, true), shell)
    end
    local code = run("completion tcsh", { env = "env -u CLOUDFLARE_API_TOKEN" })
    assert.are.equal(64, code)
  end)

  it("names the account and the API above a plan, a change and an API error; --account-id chooses another", function()
    local path = dir .. "/named.csv"
    write(path, "pattern\nnamed.example.com\n")
    local line = ("account %s at %s\n"):format(ACCOUNT, emu.base_url)
    local code, out, err = run("url_ignore_patterns plan " .. q(path))
    local _
    assert.are.equal(2, code, err)
    assert.are.equal(line, err)
    assert.truthy(out:find("1 to create", 1, true), out)
    -- reading needs no such line; a refusal that sent nothing has none either
    code, _, err = run("url_ignore_patterns list")
    assert.are.equal(0, code, err)
    assert.are.equal("", err)
    code, _, err = run("url_ignore_patterns create nmae=x")
    assert.are.equal(1, code)
    assert.is_nil(err:find("account ", 1, true), err)
    -- another account, given on the command line (not a secret); the token still from the environment
    code, _, err = run("--account-id other_account url_ignore_patterns apply -y " .. q(path))
    assert.are.equal(0, code, err)
    assert.are.equal(("account other_account at %s\n"):format(emu.base_url), err)
    assert.are.equal(1, #emu.state("other_account", "url_ignore_patterns"))
    assert.are.equal(0, #emu.state(ACCOUNT, "url_ignore_patterns"))
    -- an error from the API names it too
    emu.fault({ method = "POST", status = 403, code = 10000, message = "Authentication error" })
    write(path, "pattern\nother.example.com\n")
    code, _, err = run("url_ignore_patterns apply -y --no-purge " .. q(path))
    assert.are.equal(1, code)
    assert.are.equal(line, err:sub(1, #line), err)
    assert.truthy(err:find("403", 1, true), err)
    -- a bad id is a usage error, before any credential
    code, _, err = run("--account-id 'no spaces' url_ignore_patterns list")
    assert.are.equal(64, code)
    assert.truthy(err:find("--account-id", 1, true), err)
  end)

  it("the tool's own options may stand before the resource or after the action (-o, --json, --account-id, =)", function()
    local path = dir .. "/anywhere.csv"
    write(path, "pattern\nanywhere.example.com\n")
    assert.are.equal(0, (run("url_ignore_patterns apply " .. q(path) .. " -y --account-id other_account --max-retries=2")))
    assert.are.equal(1, #emu.state("other_account", "url_ignore_patterns"))
    local before_code, before = run("--json --account-id other_account url_ignore_patterns list")
    assert.are.equal(0, before_code)
    for _, args in ipairs({ "url_ignore_patterns list --json --account-id other_account",
                            "url_ignore_patterns list -o json --account-id=other_account",
                            "-ojson url_ignore_patterns list --account-id other_account" }) do
      local code, out, err = run(args)
      assert.are.equal(0, code, args .. ": " .. err)
      assert.are.equal(before, out, args)
    end
    assert.are.equal("anywhere.example.com", cjson.decode(before)[1].pattern)
    -- after "--", nothing is taken for an option
    local code, _, err = run("url_ignore_patterns delete -- --json")
    assert.are.equal(1, code)
    assert.truthy(err:find("--json", 1, true), err)
  end)

  it("a usage error shows the usage of the command it is about: get A B shows get's", function()
    local code, out, err = run("allow_policies get A B")
    assert.are.equal(64, code)
    assert.are.equal("", out)
    assert.truthy(err:find("Usage: cloudflare-email-security allow_policies get ", 1, true), err)
    assert.truthy(err:find("too many arguments", 1, true), err)
    -- a refusal after parsing too
    code, out, err = run("allow_policies get A --concurrency 4")
    assert.are.equal(64, code)
    assert.are.equal("", out)
    assert.truthy(err:find("Usage: cloudflare-email-security allow_policies get ", 1, true), err)
    assert.truthy(err:find("--concurrency: allow_policies get sends one request at a time", 1, true), err)
    assert.are.equal(0, #emu.requests())
  end)

  it("an output a command does not write is refused, naming what it writes (64, nothing sent)", function()
    local path = dir .. "/o.csv"
    write(path, "pattern\na.example.com\n")
    for _, case in ipairs({
      { "url_ignore_patterns plan -o yaml " .. q(path), "-o yaml: url_ignore_patterns plan writes table or json" },
      { "-o csv url_ignore_patterns apply -y " .. q(path), "-o csv: url_ignore_patterns apply writes table or json" },
      { "url_ignore_patterns delete -o wide x", "-o wide: url_ignore_patterns delete writes table or json" },
      { "export " .. q(dir .. "/x") .. " -o json", "-o json: export writes files" },
      { "url_ignore_patterns list -o yaml --csv", "-o yaml and --csv: give one of them" },
      { "url_ignore_patterns list -o xml", "-o: table, wide, json, yaml or csv, got 'xml'" },
      { "plan " .. q(dir) .. " --no-headers", "unknown option '--no-headers'" },
    }) do
      local code, out, err = run(case[1])
      assert.are.equal(64, code, case[1] .. ": " .. out .. err)
      assert.truthy(err:find(case[2], 1, true), case[1] .. ": " .. err)
    end
    assert.are.equal(0, #emu.requests())
  end)

  it("--help shows the tool's commands and fields, not the Lua calls; each command's names the options", function()
    local code, out = run("allow_policies --help")
    assert.are.equal(0, code)
    assert.is_nil(out:find("(params)", 1, true), out)
    assert.is_nil(out:find("es.null", 1, true), out)
    assert.truthy(out:find("\n   list ", 1, true), out)
    assert.truthy(out:find("or null in an update", 1, true), out)
    code, out = run("allow_policies get --help")
    assert.are.equal(0, code)
    assert.truthy(out:find("The tool's own options (-o, --json", 1, true), out)
  end)

  it("says what to do in the tool's own words: --force, not force = true", function()
    local all, few = ten_and_one("w")
    assert.are.equal(0, (run("url_ignore_patterns apply --yes " .. q(all))))
    for _, action in ipairs({ "plan", "apply --yes" }) do
      local _, out, err = run("url_ignore_patterns " .. action .. " " .. q(few))
      assert.truthy((out .. err):find("--force", 1, true), out .. err)
      assert.is_nil((out .. err):find("force = true", 1, true), out .. err)
    end
  end)

  it("a plan is in colour on a terminal, unless NO_COLOR or --no-color; never on a pipe", function()
    local path = dir .. "/colour.csv"
    write(path, "pattern\ncolour.example.com\n")
    local code, shown = on_terminal(command("url_ignore_patterns plan " .. q(path)))
    assert.are.equal(2, code, shown)
    assert.truthy(shown:find("\27[32m+ url_ignore_patterns create", 1, true), shown)
    for _, how in ipairs({ { "url_ignore_patterns plan --no-color " .. q(path) },
                           { "url_ignore_patterns plan " .. q(path), env .. " NO_COLOR=1" } }) do
      code, shown = on_terminal(command(how[1], { env = how[2] }))
      assert.are.equal(2, code, shown)
      assert.truthy(shown:find("+ url_ignore_patterns create", 1, true), shown)
      assert.is_nil(shown:find("\27[", 1, true), shown)
    end
    local out
    code, out = run("url_ignore_patterns plan " .. q(path))
    assert.are.equal(2, code)
    assert.is_nil(out:find("\27", 1, true), out)
  end)

  it("stdout goes a line at a time: in a log of 2>&1, -v's lines fall between the plan's, never inside one", function()
    local lines = { "pattern" }
    -- a plan of several stdio buffers, so that a buffer would end inside a line
    for i = 1, 400 do lines[#lines + 1] = ("line-at-a-time-%03d.example.com"):format(i) end
    local path, log = dir .. "/lines.csv", dir .. "/lines.log"
    write(path, table.concat(lines, "\n") .. "\n")
    local code = execute(command("-v url_ignore_patterns apply -y " .. q(path)) .. " > " .. q(log) .. " 2>&1")
    assert.are.equal(0, code)
    local creates = 0
    for line in (files.read(log) or ""):gmatch("[^\n]+") do
      if line:find("line-at-a-time-", 1, true) and not line:find("^cloudflare") then
        assert.truthy(line:find("^%+ url_ignore_patterns create pattern=line%-at%-a%-time%-%d%d%d%.example%.com$"), line)
        creates = creates + 1
      end
    end
    assert.are.equal(400, creates)
  end)

  describe("output", function()
    local function seed_two()
      local made = emu.seed(ACCOUNT, {
        { pattern = "ceo@example.com", pattern_type = "EMAIL", is_regex = false, is_trusted_sender = true,
          is_exempt_recipient = false, is_acceptable_sender = false, verify_sender = true, comments = cjson.null },
        { pattern = "partner.example", pattern_type = "DOMAIN", is_regex = false, is_trusted_sender = false,
          is_exempt_recipient = false, is_acceptable_sender = true, verify_sender = true,
          comments = "a partner with a long comment that a narrow terminal cannot show whole" },
      }, "allow_policies")
      return made
    end

    it("a table puts the key's fields first, shows null as empty, and leaves out the timestamps", function()
      seed_two()
      local code, out = run("allow_policies list --order pattern")
      assert.are.equal(0, code)
      local header = out:match("^[^\n]+")
      assert.truthy(header:find("^pattern_type%s+pattern%s+is_regex%s+id%s+comments%s"), header)
      assert.is_nil(header:find("created_at", 1, true), header)
      assert.is_nil(out:find("null", 1, true), out)
      code, out = run("allow_policies list -o wide")
      assert.are.equal(0, code)
      assert.truthy(out:find("created_at", 1, true), out)
      assert.truthy(out:find("a partner with a long comment that a narrow terminal cannot show whole", 1, true))
    end)

    it("on a terminal a table fits its width, never cutting the key or the id; -o wide cuts nothing", function()
      local made = seed_two()
      local narrow = env .. " COLUMNS=120 LINES=50 PAGER=cat"
      local code, shown = on_terminal(command("allow_policies list", { env = narrow }))
      assert.are.equal(0, code, shown)
      local lines = 0
      for line in shown:gmatch("[^\r\n]+") do
        lines = lines + 1
        assert.truthy(require("cloudflare.email_security.schema.validate").utf8_length(line) <= 120, line)
      end
      assert.are.equal(3, lines, shown)
      assert.truthy(shown:find("\226\128\166", 1, true), shown)
      for _, e in ipairs(made) do
        assert.truthy(shown:find(e.id, 1, true), shown)
        assert.truthy(shown:find(e.pattern, 1, true), shown)
      end
      -- narrower than the key and the id: they stay whole, and the line runs over
      code, shown = on_terminal(command("allow_policies list", { env = env .. " COLUMNS=40 LINES=50 PAGER=cat" }))
      assert.are.equal(0, code, shown)
      for _, e in ipairs(made) do assert.truthy(shown:find(e.id, 1, true), shown) end
      code, shown = on_terminal(command("allow_policies list -o wide", { env = narrow }))
      assert.are.equal(0, code, shown)
      assert.truthy(shown:find("cannot show whole", 1, true), shown)
    end)

    it("a list longer than the terminal goes through $PAGER there, and never off a terminal", function()
      seed_two()
      local paged = env .. " LINES=2 COLUMNS=200 PAGER='sed s/^/paged:/'"
      local code, shown = on_terminal(command("allow_policies list", { env = paged }))
      assert.are.equal(0, code, shown)
      assert.truthy(shown:find("paged:pattern_type", 1, true), shown)
      code, shown = on_terminal(command("allow_policies list", { env = env .. " LINES=50 COLUMNS=200 PAGER='sed s/^/paged:/'" }))
      assert.are.equal(0, code, shown)
      assert.is_nil(shown:find("paged:", 1, true), shown)
      local out
      code, out = run("allow_policies list", { env = paged })
      assert.are.equal(0, code)
      assert.is_nil(out:find("paged:", 1, true), out)
    end)

    it("-o json is indented on a terminal and one line on a pipe; -o yaml; --fields in every format; --no-headers", function()
      seed_two()
      local code, shown = on_terminal(command("allow_policies list -o json --order pattern --fields pattern,comments",
                                              { env = env .. " PAGER=cat" }))
      assert.are.equal(0, code, shown)
      assert.truthy(shown:find('[\r\n]+  {\r?\n    "pattern": "ceo@example.com",\r?\n    "comments": null\r?\n  }'), shown)
      local out
      code, out = run("allow_policies list --json --order pattern --fields pattern,comments")
      assert.are.equal(0, code)
      assert.are.equal('[{"pattern":"ceo@example.com","comments":null},{"pattern":"partner.example","comments":'
        .. '"a partner with a long comment that a narrow terminal cannot show whole"}]\n', out)
      code, out = run("allow_policies list -o yaml --order pattern --fields pattern,is_regex")
      assert.are.equal(0, code)
      assert.are.equal('- pattern: ceo@example.com\n  is_regex: false\n- pattern: partner.example\n  is_regex: false\n', out)
      code, out = run("allow_policies list -o csv --no-headers --order pattern --fields pattern,pattern_type")
      assert.are.equal(0, code)
      assert.are.equal("ceo@example.com,EMAIL\r\npartner.example,DOMAIN\r\n", out)
      code, out = run("allow_policies list --no-headers --order pattern --fields pattern,pattern_type")
      assert.are.equal(0, code)
      assert.truthy(out:find("^ceo@example.com%s+EMAIL\npartner.example%s+DOMAIN\n$"), out)
      local before = #emu.requests()
      local err, _
      code, _, err = run("allow_policies list --fields patern")
      assert.are.equal(64, code)
      assert.truthy(err:find("--fields: unknown field 'patern'", 1, true), err)
      assert.truthy(err:find("pattern", 1, true), err)
      assert.are.equal(before, #emu.requests())
    end)

    it("a domain's nested values are summed up in a table and whole in JSON and YAML", function()
      local made = emu.seed(ACCOUNT, { { domain = "nested.example", allowed_delivery_modes = { "DIRECT" },
        authorization = { authorized = true, timestamp = "2026-01-02T03:04:05Z", status_message = "ok" },
        emails_processed = { timestamp = "2026-01-02T03:04:05Z", total_emails_processed = 12,
                             total_emails_processed_previous = 7 } } }, "domains")
      local code, out = run("domains get " .. made[1].id)
      assert.are.equal(0, code, out)
      assert.truthy(out:find("\nauthorization%s+authorized=true, status_message=ok", 1), out)
      assert.truthy(out:find("total_emails_processed=12", 1, true), out)
      code, out = run("domains get " .. made[1].id .. " --json")
      assert.are.equal(0, code)
      local whole = cjson.decode(out)
      assert.are.equal("2026-01-02T03:04:05Z", whole.authorization.timestamp)
      assert.are.equal(7, whole.emails_processed.total_emails_processed_previous)
      code, out = run("domains get " .. made[1].id .. " -o yaml --fields authorization")
      assert.are.equal(0, code)
      assert.truthy(out:find("^authorization:\n  authorized: true\n"), out)
      assert.truthy(out:find('\n  timestamp: "2026%-01%-02T03:04:05Z"\n'), out)
    end)
  end)

  it("apply -o json writes one result object whose keys are objects, also when it stops half-way (exit 1)", function()
    local path = dir .. "/result.csv"
    write(path, "pattern\nr1.example.com\nr2.example.com\n")
    local code, out, err = run("url_ignore_patterns apply -y -o json " .. q(path))
    assert.are.equal(0, code, err)
    local result = cjson.decode(out)
    assert.are.equal(cjson.null, result.error)
    assert.are.equal(2, result.counts.created)
    assert.are.same({ pattern = "r1.example.com" }, result.created[1].key)
    assert.are.equal(emu.state(ACCOUNT, "url_ignore_patterns")[1].id, result.created[1].id)
    assert.is_nil(err:find("+ url_ignore_patterns", 1, true), err)
    -- plan -o json: its keys are objects too
    write(path, "pattern\nr1.example.com\nr3.example.com\n")
    code, out = run("url_ignore_patterns plan --json --no-purge " .. q(path))
    assert.are.equal(2, code)
    assert.are.same({ pattern = "r3.example.com" }, cjson.decode(out).creates[1].key)
    -- a 500 after acting: the result says it is in doubt, and stdout is still the one object
    emu.fault({ method = "POST", status = 500, after = true })
    code, out, err = run("url_ignore_patterns apply -y -o json --no-purge " .. q(path))
    assert.are.equal(1, code, err)
    result = cjson.decode(out)
    assert.truthy(result.error.message:find("500", 1, true), out)
    assert.are.equal(0, result.counts.created)
    assert.are.same({ pattern = "r3.example.com" }, result.in_doubt.creates[1].key)
    assert.truthy(err:find("500", 1, true), err)
  end)

  it("a value that looks like a library option reaches the plan and the server as it is", function()
    local path = dir .. "/verbatim.csv"
    write(path, "pattern,pattern_type,is_regex,is_trusted_sender,is_exempt_recipient,is_acceptable_sender,"
      .. "verify_sender,comments\n"
      .. 'rate_limit@example.com,EMAIL,false,true,false,false,true,"ticket 7: force = true, purge = false"\n')
    local code, out, err = run("allow_policies apply -y " .. q(path))
    assert.are.equal(0, code, err)
    assert.truthy(out:find('pattern=rate_limit@example.com is_regex', 1, true), out)
    assert.truthy(out:find('comments: "ticket 7: force = true, purge = false"', 1, true), out)
    local held = emu.state(ACCOUNT, "allow_policies")[1]
    assert.are.equal("rate_limit@example.com", held.pattern)
    assert.are.equal("ticket 7: force = true, purge = false", held.comments)
  end)

  it("apply -o json writes an error object when no plan could be made; --no-headers only where there is one", function()
    local path = dir .. "/unplannable.csv"
    write(path, "pattern,nmae\nx.example.com,y\n")
    local code, out, err = run("url_ignore_patterns apply -y -o json " .. q(path))
    assert.are.equal(1, code)
    local result = cjson.decode(out)
    assert.truthy(result.error.message:find("nmae", 1, true), out)
    assert.truthy(err:find("nmae", 1, true), err)
    for _, case in ipairs({ "url_ignore_patterns list --no-headers -o json", "url_ignore_patterns list --no-headers -o yaml",
                            "url_ignore_patterns get x --no-headers" }) do
      code, out, err = run(case)
      assert.are.equal(64, code, case)
      assert.are.equal("", out)
      assert.truthy(err:find("--no-headers: ", 1, true), err)
    end
    local _
    code, _, err = run("url_ignore_patterns list --no-headers -o csv")
    assert.are.equal(0, code, err)
    assert.are.equal(0, #emu.state(ACCOUNT, "url_ignore_patterns"))
  end)
end)
