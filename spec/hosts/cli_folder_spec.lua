-- The tool's export, plan and apply of a folder, for one account and many
-- (cli_folder.lua), run as a subprocess against the emulator.
local cjson = require("cjson")
local emulator_process = require("emulator.process")
local files = require("spec.support.files")
local cli_tool = require("spec.support.cli_tool")

local A = "023e105f4ecef8ad9ca31a8372d0c353"
local B = "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0"
local TOKEN = "cli-folder-token-77c1"
local q = cli_tool.quote
local _  -- the stdout a check does not read

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

local function sender(i)
  return { pattern = ("s%d@example.com"):format(i), pattern_type = "EMAIL", is_regex = false }
end

describe("the tool with a folder", function()
  local emu, tool, dir, run

  setup(function()
    emu = emulator_process.start({ token = TOKEN })
    tool = cli_tool.new(("env -u CLOUDFLARE_EMAIL -u CLOUDFLARE_API_KEY CLOUDFLARE_API_TOKEN=%s "
      .. "CLOUDFLARE_ACCOUNT_ID=%s CLOUDFLARE_BASE_URL=%s"):format(TOKEN, A, q(emu.base_url)))
    dir, run = tool.dir, tool.run
  end)
  teardown(function()
    emu.stop()
    tool.cleanup()
  end)
  before_each(function()
    emu.reset()
    os.execute("rm -rf " .. q(dir .. "/acct") .. " " .. q(dir .. "/plan.json"))
  end)

  it("export DIR names the account on stderr, writes clean files; plan DIR then exits 0", function()
    emu.seed(A, { sender(2), sender(1) }, "block_senders")
    emu.seed(A, { { name = "Synced", email = "s@example.com", is_email_regex = false, directory_id = 4 } })
    local code, out, err = run("export " .. q(dir .. "/acct"))
    assert.are.equal(0, code, err)
    assert.are.equal("", out)
    assert.truthy(err:find("account " .. A .. " at " .. emu.base_url, 1, true), err)
    assert.truthy(err:find("1 directory-synced entry left out", 1, true), err)
    local text = files.read(dir .. "/acct/block_senders.csv")
    assert.are.equal("pattern_type,pattern,is_regex,comments\nEMAIL,s1@example.com,false,null\n"
      .. "EMAIL,s2@example.com,false,null\n", text)
    code, out, err = run("plan " .. q(dir .. "/acct"))
    assert.are.equal(0, code, out .. err)
    assert.truthy(out:find("account " .. A .. " at ", 1, true), out)
    assert.truthy(out:find("block_senders (" .. dir .. "/acct/block_senders.csv):", 1, true), out)
  end)

  it("plan DIR exits 2 with changes; apply DIR asks, or takes --yes, and reports each account", function()
    os.execute("mkdir -p " .. q(dir .. "/acct"))
    write(dir .. "/acct/block_senders.csv", "pattern_type,pattern,is_regex\nEMAIL,s1@example.com,false\n")
    local code, out = run("plan " .. q(dir .. "/acct"))
    assert.are.equal(2, code)
    assert.truthy(out:find("+ block_senders create", 1, true), out)
    local err
    code, _, err = run("apply " .. q(dir .. "/acct"))
    assert.are.equal(1, code)
    assert.truthy(err:find("give --yes", 1, true), err)
    assert.are.equal(0, #emu.state(A, "block_senders"))
    code, out, err = run("apply -y " .. q(dir .. "/acct"))
    assert.are.equal(0, code, err)
    assert.truthy(out:find("account " .. A .. ": done (block_senders 1 created", 1, true), out)
    assert.are.equal(1, #emu.state(A, "block_senders"))
  end)

  it("many accounts: --account-id more than once and --accounts FILE, one plan each and one summary", function()
    os.execute("mkdir -p " .. q(dir .. "/acct"))
    write(dir .. "/acct/block_senders.csv", "pattern_type,pattern,is_regex\nEMAIL,s1@example.com,false\n")
    write(dir .. "/accounts", "# customers\n\n" .. B .. "   Bravo Ltd\n")
    local code, out, err = run(("--account-id %s --accounts %s plan %s"):format(A, q(dir .. "/accounts"),
                                                                               q(dir .. "/acct")))
    assert.are.equal(2, code, err)
    assert.truthy(out:find("account " .. A .. " at", 1, true), out)
    assert.truthy(out:find("account " .. B .. " (Bravo Ltd) at", 1, true), out)
    assert.truthy(out:find("all 2 accounts: 2 to create", 1, true), out)
    code, out = run(("--account-id %s --account-id %s apply --yes %s"):format(A, B, q(dir .. "/acct")))
    assert.are.equal(0, code, out)
    assert.are.equal(1, #emu.state(B, "block_senders"))
    -- mistakes in the list are usage errors, before any request
    local before = #emu.requests()
    code, _, err = run(("--account-id %s --account-id %s plan %s"):format(A, A, q(dir .. "/acct")))
    assert.are.equal(64, code)
    assert.truthy(err:find("account " .. A .. " is given twice", 1, true), err)
    write(dir .. "/accounts", "ok1\nnot/an/id\n")
    code, _, err = run(("--accounts %s plan %s"):format(q(dir .. "/accounts"), q(dir .. "/acct")))
    assert.are.equal(64, code)
    assert.truthy(err:find("line 2", 1, true), err)
    code, _, err = run(("--account-id %s --account-id %s block_senders list"):format(A, B))
    assert.are.equal(64, code)
    assert.truthy(err:find("works on one account", 1, true), err)
    assert.are.equal(before, #emu.requests())
  end)

  it("past a threshold: plan says apply will refuse; apply refuses before asking and sends nothing", function()
    local list = {}
    for i = 1, 10 do list[i] = sender(i) end
    emu.seed(A, list, "block_senders")
    os.execute("mkdir -p " .. q(dir .. "/acct"))
    write(dir .. "/acct/block_senders.csv", "pattern_type,pattern,is_regex\n")
    local code, out = run("plan " .. q(dir .. "/acct"))
    assert.are.equal(2, code)
    assert.truthy(out:find("apply refuses this without --force", 1, true), out)
    local before = #emu.requests()
    local err
    code, _, err = run("apply --yes " .. q(dir .. "/acct"))
    assert.are.equal(1, code)
    assert.truthy(err:find("past the safety thresholds in " .. A .. " block_senders", 1, true), err)
    for i = before + 1, #emu.requests() do assert.are.equal("GET", emu.requests()[i].method) end
    assert.are.equal(10, #emu.state(A, "block_senders"))
    code = run("apply --yes --force " .. q(dir .. "/acct"))
    assert.are.equal(0, code)
    assert.are.equal(0, #emu.state(A, "block_senders"))
  end)

  it("plan --out saves the plan; apply FILE applies it while nothing moved, and refuses after", function()
    os.execute("mkdir -p " .. q(dir .. "/acct"))
    write(dir .. "/acct/block_senders.csv", "pattern_type,pattern,is_regex\nEMAIL,s1@example.com,false\n")
    local code, _, err = run(("plan %s --out %s"):format(q(dir .. "/acct"), q(dir .. "/plan.json")))
    assert.are.equal(2, code, err)
    assert.truthy(err:find("saved to " .. dir .. "/plan.json", 1, true), err)
    local saved = files.read(dir .. "/plan.json")
    assert.is_nil(saved:find(TOKEN, 1, true))
    assert.are.equal("cloudflare-email-security plan", cjson.decode(saved).format)
    local out
    code, out, err = run("apply --yes " .. q(dir .. "/plan.json"))
    assert.are.equal(0, code, err)
    assert.truthy(out:find("block_senders 1 created", 1, true), out)
    -- saved again, then the account moves
    run(("plan %s --out %s"):format(q(dir .. "/acct"), q(dir .. "/plan.json")))
    emu.seed(A, { sender(5) }, "block_senders")
    code, _, err = run("apply --yes " .. q(dir .. "/plan.json"))
    assert.are.equal(1, code)
    assert.truthy(err:find("account " .. A .. ", block_senders changed since the plan was made", 1, true), err)
    assert.are.equal(2, #emu.state(A, "block_senders"))
    code, _, err = run(("--account-id %s apply --yes %s"):format(B, q(dir .. "/plan.json")))
    assert.are.equal(64, code)
    assert.truthy(err:find("a saved plan names its accounts", 1, true), err)
  end)

  -- only --force passes the thresholds of a saved plan, taken of the
  -- entries listed when it is applied: never the file's "force" nor its
  -- count of the entries it found; and each delete goes to the entry the
  -- plan shows
  it("apply FILE: past a threshold whatever the file says of force and existing; a delete only where shown",
     function()
    local list = {}
    for i = 1, 10 do list[i] = sender(i) end
    emu.seed(A, list, "block_senders")
    os.execute("mkdir -p " .. q(dir .. "/acct"))
    write(dir .. "/acct/block_senders.csv", "pattern_type,pattern,is_regex\nEMAIL,s1@example.com,false\n")
    local code, _, err = run(("plan %s --out %s"):format(q(dir .. "/acct"), q(dir .. "/plan.json")))
    assert.are.equal(2, code, err)
    local saved = files.read(dir .. "/plan.json")
    local function edited(change)
      local v = cjson.decode(saved)
      change(v, v.accounts[1].resources[1])
      write(dir .. "/edited.json", cjson.encode(v))
      return q(dir .. "/edited.json")
    end
    local before = #emu.requests()
    for _, change in ipairs({ function(v) v.force = true end, function(_, r) r.existing = 0 end }) do
      code, _, err = run("apply --yes " .. edited(change))
      assert.are.equal(1, code, err)
      assert.truthy(err:find("past the safety thresholds in " .. A .. " block_senders", 1, true), err)
    end
    -- a delete whose key is another entry's than its id's
    local other
    code, _, err = run("apply --yes --force " .. edited(function(_, r)
      local deletes = r.plan.deletes
      other = deletes[2].key.pattern
      deletes[1].key.pattern = other
    end))
    assert.are.equal(1, code, err)
    assert.truthy(err:find("deletes[1]: its key says pattern=" .. other .. " but entry ", 1, true), err)
    for i = before + 1, #emu.requests() do assert.are.equal("GET", emu.requests()[i].method) end
    assert.are.equal(10, #emu.state(A, "block_senders"))
    code, _, err = run("apply --yes --force " .. edited(function(_, r) r.existing = 0 end))
    assert.are.equal(0, code, err)
    assert.are.equal(1, #emu.state(A, "block_senders"))
  end)

  -- Cloudflare's dashboard's own files (spec/fixtures/dashboard/, made
  -- from the headers and examples its documentation gives), each as a
  -- folder's file: planned, applied, planned again (nothing), exported in
  -- the dashboard's columns and planned again (nothing)
  for _, fixture in ipairs({ "allow_policies", "allow_policies_2025", "allow_policies_area1", "block_senders",
                             "block_senders_2025", "block_senders_area1", "impersonation_registry",
                             "impersonation_registry_area1", "trusted_domains", "trusted_domains_area1" }) do
    it("the dashboard's file " .. fixture .. ".csv: plan, apply, export --format dashboard, plan", function()
      local resource = fixture:gsub("_2025$", ""):gsub("_area1$", "")
      local folder = q(dir .. "/acct")
      os.execute("mkdir -p " .. folder)
      local text = files.read("spec/fixtures/dashboard/" .. fixture .. ".csv")
      write(dir .. "/acct/" .. resource .. ".csv", text)
      local rows = 0
      for _ in text:gmatch("\n[^\n]") do rows = rows + 1 end
      local code, out, err = run("plan " .. folder)
      assert.are.equal(2, code, out .. err)
      assert.truthy(out:find(("%d to create, 0 to update, 0 to delete"):format(rows), 1, true), out)
      -- every format but the current blocked senders' lacks a column: it says what it took
      if fixture ~= "block_senders" then
        assert.truthy(err:find("read as the dashboard's " .. resource .. " file: ", 1, true), err)
      end
      code, out, err = run("apply --yes " .. folder)
      assert.are.equal(0, code, out .. err)
      assert.are.equal(rows, #emu.state(A, resource))
      code, out = run("plan " .. folder)
      assert.are.equal(0, code, out)
      code, _, err = run("export --format dashboard " .. folder)
      assert.are.equal(0, code, err)
      code, out = run("plan " .. folder)
      assert.are.equal(0, code, out)
    end)
  end

  it("warnings at plan time, with the file and line; --strict makes them errors and applies nothing", function()
    os.execute("mkdir -p " .. q(dir .. "/acct"))
    write(dir .. "/acct/allow_policies.csv", "pattern_type,pattern,is_regex,is_trusted_sender,is_exempt_recipient,"
      .. "is_acceptable_sender,verify_sender\nEMAIL,ok@example.com,false,false,false,true,true\n"
      .. "EMAIL,risky@example.com,false,false,false,true,false\n")
    local code, out = run("plan " .. q(dir .. "/acct"))
    assert.are.equal(2, code, out)
    assert.truthy(out:find("warning: " .. dir .. "/acct/allow_policies.csv line 3: ", 1, true), out)
    -- a create says what it sets beyond its key
    assert.truthy(out:find("+ allow_policies create pattern_type=EMAIL pattern=ok@example.com is_regex=false with "
      .. "is_acceptable_sender: true; is_exempt_recipient: false; is_trusted_sender: false; verify_sender: true\n",
      1, true), out)
    assert.truthy(out:find("verify_sender", 1, true), out)
    local err
    code, out, err = run("plan --strict " .. q(dir .. "/acct"))
    assert.are.equal(1, code, out .. err)
    assert.truthy(out:find("error: " .. dir .. "/acct/allow_policies.csv line 3: ", 1, true), out)
    code = run("apply --yes --strict " .. q(dir .. "/acct"))
    assert.are.equal(1, code)
    assert.are.equal(0, #emu.state(A, "allow_policies"))
    -- one resource's file, the same
    code, out = run("allow_policies plan " .. q(dir .. "/acct/allow_policies.csv"))
    assert.are.equal(2, code)
    assert.truthy(out:find("warning: " .. dir .. "/acct/allow_policies.csv line 3: ", 1, true), out)
    code = run("allow_policies apply --yes --strict " .. q(dir .. "/acct/allow_policies.csv"))
    assert.are.equal(1, code)
    assert.are.equal(0, #emu.state(A, "allow_policies"))
  end)

  it("one resource's plan says apply will refuse past a threshold, and apply refuses before asking", function()
    local list = {}
    for i = 1, 10 do list[i] = sender(i) end
    emu.seed(A, list, "block_senders")
    write(dir .. "/few.csv", "pattern_type,pattern,is_regex\nEMAIL,s1@example.com,false\n")
    local code, out = run("block_senders plan " .. q(dir .. "/few.csv"))
    assert.are.equal(2, code)
    assert.truthy(out:find("! would delete 9 of the 10 existing entries", 1, true), out)
    assert.truthy(out:find("apply refuses this without --force", 1, true), out)
    local before = #emu.requests()
    local err
    code, _, err = run("block_senders apply --yes " .. q(dir .. "/few.csv"))
    assert.are.equal(1, code)
    assert.truthy(err:find("threshold", 1, true) or err:find("would delete 9", 1, true), err)
    for i = before + 1, #emu.requests() do assert.are.equal("GET", emu.requests()[i].method) end
  end)

  it("a saved plan: no --no-purge or --delete-domains at apply (it is applied as made); no account from the "
    .. "environment needed", function()
    emu.seed(B, { sender(1) }, "block_senders")
    os.execute("mkdir -p " .. q(dir .. "/acct"))
    write(dir .. "/acct/block_senders.csv", "pattern_type,pattern,is_regex\nEMAIL,s2@example.com,false\n")
    local code, _, err = run(("--account-id %s plan %s --out %s"):format(B, q(dir .. "/acct"), q(dir .. "/plan.json")))
    assert.are.equal(2, code, err)
    local before = #emu.requests()
    code, _, err = run("apply --yes --no-purge " .. q(dir .. "/plan.json"))
    assert.are.equal(64, code)
    assert.truthy(err:find("--no-purge: a saved plan is applied as it was made", 1, true), err)
    assert.are.equal(before, #emu.requests())
    -- CLOUDFLARE_ACCOUNT_ID unset: the plan names its account
    local env = tool.env:gsub("CLOUDFLARE_ACCOUNT_ID=%S+", "")
    local out
    code, out, err = run("apply --yes " .. q(dir .. "/plan.json"), { env = "env -u CLOUDFLARE_ACCOUNT_ID " .. env })
    assert.are.equal(0, code, out .. err)
    assert.are.same({ "s2@example.com" }, { emu.state(B, "block_senders")[1].pattern })
  end)

  it("--accounts FILE that names no account is a usage error, never the environment's account", function()
    os.execute("mkdir -p " .. q(dir .. "/acct"))
    write(dir .. "/acct/block_senders.csv", "pattern_type,pattern,is_regex\nEMAIL,s1@example.com,false\n")
    write(dir .. "/accounts", "# nobody yet\n\n")
    local code, _, err = run(("--accounts %s apply --yes %s"):format(q(dir .. "/accounts"), q(dir .. "/acct")))
    assert.are.equal(64, code)
    assert.truthy(err:find("names no account", 1, true), err)
    assert.are.equal(0, #emu.state(A, "block_senders"))
  end)

  it("a file in the folder named after no resource is said, not silently left out", function()
    os.execute("mkdir -p " .. q(dir .. "/acct"))
    write(dir .. "/acct/block_senders.csv", "pattern_type,pattern,is_regex\n")
    write(dir .. "/acct/allow_policy.csv", "pattern\n")
    local code, _, err = run("plan " .. q(dir .. "/acct"))
    assert.are.equal(0, code, err)
    assert.truthy(err:find(dir .. "/acct/allow_policy.csv: not read: no resource is named so", 1, true), err)
  end)

  it("plan --json: one object, accounts and their resources as objects", function()
    os.execute("mkdir -p " .. q(dir .. "/acct"))
    write(dir .. "/acct/block_senders.csv", "pattern_type,pattern,is_regex\nEMAIL,s1@example.com,false\n")
    local code, out = run("plan --json " .. q(dir .. "/acct"))
    assert.are.equal(2, code)
    local v = cjson.decode(out)
    assert.are.equal(A, v.accounts[1].account_id)
    assert.are.equal("block_senders", v.accounts[1].resources[1].resource)
    assert.are.equal("s1@example.com", v.accounts[1].resources[1].plan.creates[1].fields.pattern)
    code = run("plan --csv " .. q(dir .. "/acct"))
    assert.are.equal(64, code)
  end)

  it("plan --json and plan --out write each change's key as an object of the key's fields", function()
    emu.seed(A, { sender(1) }, "block_senders")
    os.execute("mkdir -p " .. q(dir .. "/acct"))
    write(dir .. "/acct/block_senders.csv", "pattern_type,pattern,is_regex\nEMAIL,s2@example.com,false\n")
    local code, out = run(("plan --json %s --out %s"):format(q(dir .. "/acct"), q(dir .. "/plan.json")))
    assert.are.equal(2, code)
    for _, text in ipairs({ out, files.read(dir .. "/plan.json") }) do
      local plan = cjson.decode(text).accounts[1].resources[1].plan
      assert.are.same(sender(2), plan.creates[1].key)
      assert.are.same(sender(1), plan.deletes[1].key)
    end
    assert.are.equal(2, cjson.decode(files.read(dir .. "/plan.json")).version)
  end)

  -- (needs cli.lua's FOLDER_COMMANDS to give apply json)
  it("apply --json: stdout holds one JSON object, what was done and what was not, also when refused", function()
    emu.seed(A, { sender(1) }, "block_senders")
    os.execute("mkdir -p " .. q(dir .. "/acct"))
    write(dir .. "/acct/block_senders.csv", "pattern_type,pattern,is_regex\nEMAIL,s2@example.com,false\n")
    -- no terminal to ask on: refused (exit 1), and said on stdout too, for a script
    local code, out, err = run("apply --json " .. q(dir .. "/acct"))
    assert.are.equal(1, code, err)
    local v = cjson.decode(out)
    assert.are.equal("not applied: give --yes to apply without a terminal to ask on", v.error.message)
    assert.truthy(err:find("give --yes", 1, true), err)
    local r = v.accounts[1].resources[1]
    assert.are.same({ "not started", "not started" }, { v.accounts[1].state, r.state })
    assert.are.same({ { key = sender(2), id = cjson.null } }, r.remaining.creates)
    assert.are.equal(1, #emu.state(A, "block_senders"))
    -- with --yes: applied; the text plan and report are not on stdout
    code, out, err = run("apply --json --yes " .. q(dir .. "/acct"))
    assert.are.equal(0, code, err)
    assert.is_nil(out:find("\n.", 1))
    v = cjson.decode(out)
    assert.are.equal(cjson.null, v.error)
    r = v.accounts[1].resources[1]
    assert.are.same({ "done", "done" }, { v.accounts[1].state, r.state })
    assert.are.same({ { key = sender(2), id = emu.state(A, "block_senders")[1].id } }, r.created)
    assert.are.equal(sender(1).pattern, r.deleted[1].key.pattern)
    assert.are.same({ created = 1, updated = 0, deleted = 1, unchanged = 0, skipped = 0 }, v.counts)
    -- nothing left to do: still one object, exit 0
    code, out = run("apply --json --yes " .. q(dir .. "/acct"))
    assert.are.equal(0, code)
    assert.are.equal(1, cjson.decode(out).counts.unchanged)
    -- a saved plan, applied after its account moved: the error, and nothing done
    write(dir .. "/acct/block_senders.csv", "pattern_type,pattern,is_regex\nEMAIL,s3@example.com,false\n")
    run(("plan %s --out %s"):format(q(dir .. "/acct"), q(dir .. "/plan.json")))
    emu.seed(A, { sender(4) }, "block_senders")
    code, out = run("apply --json --yes " .. q(dir .. "/plan.json"))
    assert.are.equal(1, code)
    v = cjson.decode(out)
    assert.are.equal("stale", v.error.rule)
    assert.are.same({}, v.accounts[1].resources[1].created)
  end)

  -- (needs cli.lua's FOLDER_COMMANDS to give apply json)
  it("apply --json on a terminal asks on stderr, the plan shown there; stdout holds only the result", function()
    os.execute("mkdir -p " .. q(dir .. "/acct"))
    write(dir .. "/acct/block_senders.csv", "pattern_type,pattern,is_regex\nEMAIL,s2@example.com,false\n")
    local out_file = dir .. "/out.json"
    local _, shown = tool.on_terminal(tool.command("apply --json " .. q(dir .. "/acct")) .. " > " .. q(out_file))
    local plan_at = shown:find("+ block_senders create", 1, true)
    local ask_at = shown:find("Apply these changes?", 1, true)
    assert.truthy(plan_at and ask_at and plan_at < ask_at, shown)
    -- no answer (end of input) is not yes
    local v = cjson.decode(files.read(out_file))
    assert.are.equal("not applied: the answer was not yes", v.error.message)
    assert.are.equal(0, #emu.state(A, "block_senders"))
  end)

  it("apply --json writes an error object when the plan cannot be made or read", function()
    write(dir .. "/broken_plan.json", '{"format": "cloudflare-email-security plan", "version": 2, "accounts": 7}')
    local code, out, err = run("apply --yes --json " .. q(dir .. "/broken_plan.json"))
    assert.are.equal(1, code, out .. err)
    local v = cjson.decode(out)
    assert.truthy(v.error.message:find("broken_plan.json", 1, true), out)
    assert.truthy(err:find("broken_plan.json", 1, true), err)
    -- whatever a hand-edited file holds where a list or an object belongs: refused, no traceback
    for _, case in ipairs({ { '"accounts": [7]', "accounts[1] must be an object" },
                            { '"accounts": [{"account_id": 5}]', "accounts[1].account_id must be a text" },
                            { '"warnings": {"a": 1}', "warnings must be a list" },
                            { '"accounts": [{"account_id": "' .. A .. '", "base_url": "' .. emu.base_url
                                .. '", "resources": "no"}]', "accounts[1].resources must be a list" } }) do
      write(dir .. "/broken_plan.json", '{"format": "cloudflare-email-security plan", "version": 2, ' .. case[1] .. "}")
      code, out, err = run("apply --yes " .. q(dir .. "/broken_plan.json"))
      assert.are.equal(1, code, case[1])
      assert.are.equal("", out)
      assert.are.equal(dir .. "/broken_plan.json: " .. case[2] .. "\n", err)
    end
    -- a text is no version, and the message says which (quoted: not version 2)
    write(dir .. "/broken_plan.json", '{"format": "cloudflare-email-security plan", "version": "2", "accounts": []}')
    code, out, err = run("apply --yes " .. q(dir .. "/broken_plan.json"))
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.are.equal(dir .. '/broken_plan.json: a saved plan of version "2"; this tool reads versions 1 and 2: plan '
      .. "again\n", err)
    os.execute("mkdir -p " .. q(dir .. "/badfolder"))
    write(dir .. "/badfolder/block_senders.csv", "pattern,nmae\nx@example.com,y\n")
    code, out = run(("--account-id %s apply --yes --json %s"):format(A, q(dir .. "/badfolder")))
    assert.are.equal(1, code)
    assert.truthy(cjson.decode(out).error.message:find("nmae", 1, true), out)
    assert.are.equal(0, #emu.state(A, "block_senders"))
  end)
end)
