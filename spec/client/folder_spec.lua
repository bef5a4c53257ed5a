-- A whole account, and many, as a folder (sync/folder.lua,
-- sync/folder_plan.lua) against the emulator, which keeps each account's
-- entries apart: export then plan finds nothing to do (awkward values, in
-- every format); a folder planned and applied across resources and
-- accounts; thresholds said at plan time; a failure half-way through
-- several accounts reported exactly, then converged; a saved plan applied
-- only while nothing moved.
local es = require("cloudflare.email_security")
local emulator_process = require("emulator.process")
local examples = require("spec.support.examples")
local folder = require("cloudflare.email_security.sync.folder")
local folder_plan = require("cloudflare.email_security.sync.folder_plan")
local client = require("cloudflare.email_security.client")

local A = "023e105f4ecef8ad9ca31a8372d0c353"
local B = "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0"
local C = "c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0"

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end


local entry = examples.entry

-- The field of a resource's entries that holds free text.
local function text_field(name) return name == "content_policies" and "notes" or "comments" end

-- Text a file must carry through: a comma, quotes, a line break, ";",
-- leading spaces, a word that reads as another value.
local AWKWARD = { 'a, "quoted" one;\nsecond line', "  spaced  ", "null", "true", "a;b;c", "[x]", "" }

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("*a")
  f:close()
  return text
end

describe("a folder is an account", function()
  local emu, cf, dir

  local function fresh_dir()
    os.execute("rm -rf " .. q(dir) .. " && mkdir -p " .. q(dir))
    return dir
  end

  setup(function()
    emu = emulator_process.start({ token = "t" })
    cf = es.new({ api_token = "t", account_id = A, base_url = emu.base_url, max_retry_wait = 0.05 })
    dir = os.tmpname()
    os.remove(dir)
  end)
  teardown(function()
    cf:close()
    emu.stop()
    os.execute("rm -rf " .. q(dir))
  end)
  before_each(function() emu.reset() end)

  -- every resource, entries with awkward text, nulls and empty lists
  local function seed_awkward(account)
    for _, name in ipairs(es.resources) do
      local list = {}
      for i, text in ipairs(AWKWARD) do
        local e = entry(name, i)
        e[text_field(name)] = text
        list[#list + 1] = e
      end
      -- a null, where the field is nullable
      list[1][text_field(name)] = es.null
      if name == "domains" then list[2].ip_restrictions = {} end
      emu.seed(account, list, name)
    end
  end

  for _, format in ipairs({ "csv", "json", "dashboard" }) do
    it("export --format " .. format .. " then plan: no change, in every resource", function()
      seed_awkward(A)
      local said = {}
      local written = assert(folder.export(cf, fresh_dir(), { format = format,
        say = function(line) said[#said + 1] = line end }))
      assert.are.equal(#es.resources, #written)
      for _, w in ipairs(written) do
        local text = assert(read(w.path))
        assert.is_nil(text:find("\r", 1, true), w.path .. ": LF line ends only")
        -- no server-made field
        assert.is_nil(text:find("created_at", 1, true), w.path)
        assert.is_nil(text:find(emu.state(A, w.resource)[1].id, 1, true), w.path .. ": no id")
      end
      local source = assert(folder.read(dir))
      local fp = assert(folder_plan.make({ { client = cf } }, source))
      assert.are.equal(0, fp:changes(), tostring(fp))
      -- the same account exported again: the same files
      local first = {}
      for _, w in ipairs(written) do first[w.path] = read(w.path) end
      assert(folder.export(cf, dir, { format = format }))
      for path, text in pairs(first) do assert.are.equal(text, read(path), path) end
    end)
  end

  it("export: sorted by natural key, key fields first; directory-synced entries left out and counted", function()
    emu.seed(A, { entry("block_senders", 3), entry("block_senders", 1), entry("block_senders", 2) }, "block_senders")
    emu.seed(A, {
      { name = "Mine", email = "me@example.com", is_email_regex = false, provenance = "A1S_INTERNAL" },
      { name = "Synced", email = "synced@example.com", is_email_regex = false, provenance = "A1S_INTERNAL",
        directory_id = 7 },
    })
    local said = {}
    local written = assert(folder.export(cf, fresh_dir(), { say = function(l) said[#said + 1] = l end }))
    assert.are.equal(2, #written)
    local text = read(dir .. "/block_senders.csv")
    local header, rows = text:match("^([^\n]*)\n(.*)$")
    assert.truthy(header:find("^pattern_type,pattern,is_regex"), header)
    local order = {}
    for p in rows:gmatch("p(%d)%.example%.com") do order[#order + 1] = tonumber(p) end
    assert.are.same({ 1, 2, 3 }, order)
    local registry = read(dir .. "/impersonation_registry.csv")
    assert.truthy(registry:find("me@example.com", 1, true))
    assert.is_nil(registry:find("synced@", 1, true))
    assert.truthy(table.concat(said, "\n"):find("1 directory-synced entry left out", 1, true))
  end)

  it("plans every resource that has a file, and never touches one without", function()
    emu.seed(A, { entry("block_senders", 1) }, "block_senders")
    emu.seed(A, { entry("trusted_domains", 1), entry("trusted_domains", 2) }, "trusted_domains")
    fresh_dir()
    write(dir .. "/block_senders.json", "[]")
    local e = entry("url_ignore_patterns", 9)
    write(dir .. "/url_ignore_patterns.csv", "pattern\n" .. e.pattern .. "\n")
    local fp = assert(folder_plan.make({ { client = cf } }, assert(folder.read(dir))))
    local text = tostring(fp)
    assert.truthy(text:find("- block_senders delete", 1, true), text)
    assert.truthy(text:find("+ url_ignore_patterns create", 1, true), text)
    assert.is_nil(text:find("trusted_domains", 1, true), text)
    assert(fp:apply())
    assert.are.equal(0, #emu.state(A, "block_senders"))
    assert.are.equal(1, #emu.state(A, "url_ignore_patterns"))
    assert.are.equal(2, #emu.state(A, "trusted_domains"))
  end)

  it("es.read_folder and es.plan_folder: the same, from the module itself", function()
    emu.seed(A, { entry("block_senders", 1) }, "block_senders")
    fresh_dir()
    write(dir .. "/block_senders.json", "[]")
    local fp = assert(es.plan_folder(cf, assert(es.read_folder(dir))))
    assert.are.equal(1, fp:changes())
    assert.has_error(function() es.read_folder(nil) end, "bad argument #1 to 'read_folder' (string expected, got nil)")
    assert.has_error(function() es.plan_folder(cf, {}) end)
    os.execute("rm -rf " .. q(dir) .. " && mkdir -p " .. q(dir))
    local none, why = es.read_folder(dir)
    assert.is_nil(none)
    assert.truthy(why:find("holds no file named after a resource", 1, true), why)
  end)

  it("settings.json makes one resource additive only", function()
    emu.seed(A, { entry("block_senders", 1) }, "block_senders")
    emu.seed(A, { entry("url_ignore_patterns", 1) }, "url_ignore_patterns")
    fresh_dir()
    write(dir .. "/block_senders.json", "[]")
    write(dir .. "/url_ignore_patterns.json", "[]")
    write(dir .. "/settings.json", '{ "block_senders": { "purge": false } }')
    local fp = assert(folder_plan.make({ { client = cf } }, assert(folder.read(dir))))
    assert.are.equal(1, fp:changes())
    assert.truthy(tostring(fp):find("- url_ignore_patterns delete", 1, true))
    write(dir .. "/settings.json", '{ "block_senders": { "prune": false } }')
    local source, why = folder.read(dir)
    assert.is_nil(source)
    assert.truthy(why:find("settings.json: block_senders.prune is not a setting", 1, true), why)
  end)

  it("says at plan time which resource is past its thresholds; apply then sends nothing anywhere", function()
    local list = {}
    for i = 1, 10 do list[i] = entry("url_ignore_patterns", i) end
    emu.seed(A, list, "url_ignore_patterns")
    fresh_dir()
    write(dir .. "/url_ignore_patterns.json", "[]")
    write(dir .. "/block_senders.csv", "pattern_type,pattern,is_regex\nEMAIL,new@example.com,false\n")
    local fp = assert(folder_plan.make({ { client = cf } }, assert(folder.read(dir))))
    local text = tostring(fp)
    assert.truthy(text:find("! would delete 10 of the 10 existing entries", 1, true), text)
    assert.truthy(text:find("apply refuses this without --force", 1, true), text)
    assert.are.equal(1, #fp:refusals())
    local before = #emu.requests()
    local ok, err = fp:apply()
    assert.is_nil(ok)
    assert.are.equal("threshold", err.rule)
    assert.truthy(tostring(err):find(A .. ", url_ignore_patterns", 1, true), tostring(err))
    assert.are.equal(before, #emu.requests())
    assert.are.equal(0, #emu.state(A, "block_senders"))
    -- forced, it goes
    assert(assert(folder_plan.make({ { client = cf } }, assert(folder.read(dir)), { force = true })):apply())
    assert.are.equal(0, #emu.state(A, "url_ignore_patterns"))
  end)

  describe("many accounts", function()
    it("share the first client's connection, flight and pacer", function()
      local other = cf:account(B)
      assert.are.equal(B, other.account_id)
      local mine, theirs = client.internals(cf), client.internals(other)
      assert.are.equal(mine.transport, theirs.transport)
      assert.are.equal(mine.pacer, theirs.pacer)
      assert(other.block_senders:all())
      assert.are.equal(mine.flight, theirs.flight)
      assert.has_error(function() cf:account("not/an/id") end)
    end)

    it("keep to one request budget, and say when they wait for it", function()
      local paced = es.new({ api_token = "t", account_id = A, base_url = emu.base_url, rate_limit = { requests = 1,
                                                                                                     per = 1.5 } })
      local waits = {}
      client.internals(paced).on_wait = function(seconds) waits[#waits + 1] = seconds end
      local other = paced:account(B)
      assert(paced:concurrently({ 1 }, function() return paced.block_senders:list() end)[1][1])
      -- the other account's request waits for the budget the first one spent
      local results = other:concurrently({ 1 }, function() return other.block_senders:list() end)
      paced:close()
      assert(results[1][1], tostring(results[1][2]))
      assert.are.equal(1, #waits)
      assert.is_true(waits[1] >= 1 and waits[1] <= 1.5, tostring(waits[1]))
    end)

    it("one folder planned against each; applied in order; a failure half-way reported exactly, then converged",
      function()
        for _, id in ipairs({ A, B, C }) do emu.seed(id, { entry("block_senders", 1) }, "block_senders") end
        fresh_dir()
        local lines = { "pattern_type,pattern,is_regex" }
        for i = 2, 4 do lines[#lines + 1] = ("EMAIL,p%d.example.com,false"):format(i) end
        write(dir .. "/block_senders.csv", table.concat(lines, "\n") .. "\n")
        write(dir .. "/url_ignore_patterns.csv", "pattern\nu1.example.com\n")
        local accounts = { { client = cf, name = "Alpha" }, { client = cf:account(B) }, { client = cf:account(C) } }
        local fp = assert(folder_plan.make(accounts, assert(folder.read(dir))))
        local text = tostring(fp)
        for _, id in ipairs({ A, B, C }) do
          assert.truthy(text:find("account " .. id, 1, true), text)
        end
        assert.truthy(text:find("account " .. A .. " (Alpha) at " .. emu.base_url, 1, true), text)
        assert.truthy(text:find("all 3 accounts: 12 to create, 0 to update, 3 to delete", 1, true), text)
        -- B's url_ignore_patterns create fails after acting (a 500 once it is made)
        emu.fault({ method = "POST", path = "/accounts/" .. B .. "/email-security/settings/url_ignore_patterns",
                    status = 500, after = true, times = 5 })
        local ok, err = fp:apply()
        assert.is_nil(ok)
        local states = {}
        for _, e in ipairs(err.accounts) do states[#states + 1] = e.state end
        assert.are.same({ "done", "stopped", "not started" }, states)
        assert.are.same({ created = 3, updated = 0, deleted = 1 }, err.applied[B].block_senders)
        assert.are.same({ creates = 0, updates = 0, deletes = 0 }, err.remaining[B].url_ignore_patterns)
        assert.are.same({ creates = 1, updates = 0, deletes = 0 }, err.in_doubt[B].url_ignore_patterns)
        local report = tostring(err.report)
        assert.truthy(report:find("account " .. C .. ": not started", 1, true), report)
        assert.truthy(report:find("in doubt 1 creates", 1, true), report)
        assert.truthy(tostring(err):find(B, 1, true), tostring(err))
        assert.are.equal(1, #emu.state(C, "block_senders"))
        emu.clear_faults()
        -- planned again: what is left, with no duplicate
        local again = assert(folder_plan.make(accounts, assert(folder.read(dir))))
        assert.truthy(tostring(again):find(B .. ": 0 to create, 0 to update, 0 to delete", 1, true), tostring(again))
        assert(again:apply())
        for _, id in ipairs({ A, B, C }) do
          assert.are.equal(3, #emu.state(id, "block_senders"))
          assert.are.equal(1, #emu.state(id, "url_ignore_patterns"))
        end
        assert.are.equal(0, assert(folder_plan.make(accounts, assert(folder.read(dir)))):changes())
      end)
  end)

  describe("what a review found", function()
    it("a failure's err.remaining counts every resource not started, here and in later accounts", function()
      fresh_dir()
      write(dir .. "/block_senders.csv", "pattern_type,pattern,is_regex\nEMAIL,p1.example.com,false\n"
        .. "EMAIL,p2.example.com,false\n")
      write(dir .. "/url_ignore_patterns.csv", "pattern\nu1.example.com\n")
      local accounts = { { client = cf }, { client = cf:account(B) }, { client = cf:account(C) } }
      local fp = assert(folder_plan.make(accounts, assert(folder.read(dir))))
      emu.fault({ method = "POST", path = "/accounts/" .. B .. "/email-security/settings/block_senders/batch",
                  status = 400, times = 1 })
      local ok, err = fp:apply()
      assert.is_nil(ok)
      assert.are.same({ creates = 2, updates = 0, deletes = 0 }, err.remaining[B].block_senders)
      assert.are.same({ creates = 1, updates = 0, deletes = 0 }, err.remaining[B].url_ignore_patterns)
      assert.are.same({ creates = 2, updates = 0, deletes = 0 }, err.remaining[C].block_senders)
      assert.are.same({ creates = 1, updates = 0, deletes = 0 }, err.remaining[C].url_ignore_patterns)
      assert.is_nil(err.remaining[A])
      local _, times = tostring(err):gsub("plan and apply again to finish", "")
      assert.are.equal(1, times, tostring(err))
    end)

    it("export removes a resource's file in either format once the account has none", function()
      emu.seed(A, { entry("block_senders", 1) }, "block_senders")
      fresh_dir()
      assert(folder.export(cf, dir, { format = "json" }))
      assert.truthy(read(dir .. "/block_senders.json"))
      emu.reset()
      assert(folder.export(cf, dir, { format = "csv" }))
      assert.is_nil(read(dir .. "/block_senders.json"))
      assert.is_nil(read(dir .. "/block_senders.csv"))
    end)

    it("export writes every column a client sets, also one no entry has a value in", function()
      local e = entry("block_senders", 1)
      e.comments = es.null
      emu.seed(A, { e }, "block_senders")
      assert(folder.export(cf, fresh_dir()))
      assert.truthy(read(dir .. "/block_senders.csv"):find("^pattern_type,pattern,is_regex,comments\n"))
      -- another account whose entry has a comment: the folder clears it
      local other = entry("block_senders", 1)
      other.comments = "allow everything from here"
      emu.seed(B, { other }, "block_senders")
      local fp = assert(folder_plan.make({ { client = cf:account(B) } }, assert(folder.read(dir))))
      assert.truthy(tostring(fp):find('comments: "allow everything from here" -> null', 1, true), tostring(fp))
    end)

    it("a saved plan's counts are bounded by its fingerprint, its ids checked before anything is sent", function()
      emu.seed(A, { entry("block_senders", 1), entry("block_senders", 2) }, "block_senders")
      fresh_dir()
      write(dir .. "/block_senders.csv", "pattern_type,pattern,is_regex,comments\nEMAIL,p1.example.com,false,x\n")
      local saved = assert(folder_plan.make({ { client = cf } }, assert(folder.read(dir)))):save()
      local cjson = require("cjson")
      local function load(change)
        local v = cjson.decode(saved)
        change(v.accounts[1].resources[1])
        return folder_plan.load(cjson.encode(v), function() return cf end, "p.json")
      end
      local fp, why = load(function(r) r.plan.unchanged = 1e12 end)
      assert.is_nil(fp)
      assert.truthy(why:find("unchanged and existing cannot be more than the entries listed", 1, true), why)
      fp, why = load(function(r) r.listed = 1e9 end)
      assert.is_nil(fp)
      assert.truthy(why:find("the fingerprint says 2", 1, true), why)
      fp, why = load(function(r) r.fingerprint = cjson.null end)
      assert.is_nil(fp)
      assert.truthy(why:find("has no fingerprint", 1, true), why)
      local before = #emu.requests()
      fp, why = load(function(r) r.plan.deletes[1].id = "a/b?c" end)
      assert.is_nil(fp)
      assert.truthy(why:find("deletes[1].id", 1, true), why)
      fp, why = load(function(r) r.plan.updates[1] = nil; r.plan.creates = { { key = "k", fields = { pattern = "x" } } } end)
      assert.is_nil(fp)
      assert.truthy(why:find("creates[1]", 1, true), why)
      assert.are.equal(before, #emu.requests())
    end)

    it("a dashboard file is planned only as its own resource", function()
      fresh_dir()
      write(dir .. "/x.csv", "Blocked Sender, Blocked Sender Type, Is Regex, Notes\nother.example, DOMAIN, false,\n")
      local list = assert(es.read_entries(dir .. "/x.csv"))
      local p, err = cf.allow_policies:plan(list)
      assert.is_nil(p)
      assert.truthy(tostring(err):find("which is for block_senders, not allow_policies", 1, true), tostring(err))
      assert(cf.block_senders:plan(list))
      -- and nothing is written under a column with no name
      write(dir .. "/x.csv", "Blocked Sender, Blocked Sender Type, Is Regex, Notes,\n"
        .. "other.example, DOMAIN, false, , IMPORTANT\n")
      local none, why = es.read_entries(dir .. "/x.csv")
      assert.is_nil(none)
      assert.truthy(why:find("x.csv:2:", 1, true) and why:find("column with no name", 1, true), why)
    end)
  end)

  describe("a saved plan", function()
    local function accounts_of(plan_cf)
      return function(id) return id == plan_cf.account_id and plan_cf or plan_cf:account(id) end
    end

    it("is applied as saved, whatever the folder holds by then, and holds no credential", function()
      emu.seed(A, { entry("block_senders", 1) }, "block_senders")
      emu.seed(B, { entry("block_senders", 1) }, "block_senders")
      fresh_dir()
      write(dir .. "/block_senders.csv", "pattern_type,pattern,is_regex\nEMAIL,p7.example.com,false\n")
      local fp = assert(folder_plan.make({ { client = cf }, { client = cf:account(B) } }, assert(folder.read(dir))))
      local saved = fp:save()
      assert.is_nil(saved:find('"t"', 1, true))
      assert.is_nil(saved:lower():find("token", 1, true))
      -- the folder changes after the plan was saved: the saved plan is what goes
      write(dir .. "/block_senders.csv", "pattern_type,pattern,is_regex\nEMAIL,p8.example.com,false\n")
      local loaded = assert(folder_plan.load(saved, accounts_of(cf)))
      assert.are.equal(tostring(fp), tostring(loaded))
      assert(loaded:apply())
      for _, id in ipairs({ A, B }) do
        local state = emu.state(id, "block_senders")
        assert.are.equal(1, #state)
        assert.are.equal("p7.example.com", state[1].pattern)
      end
    end)

    it("sends nothing anywhere when an account moved since, and says which account and resource", function()
      emu.seed(A, { entry("block_senders", 1) }, "block_senders")
      emu.seed(B, { entry("block_senders", 1) }, "block_senders")
      emu.seed(B, { entry("url_ignore_patterns", 1) }, "url_ignore_patterns")
      fresh_dir()
      write(dir .. "/block_senders.csv", "pattern_type,pattern,is_regex\nEMAIL,p7.example.com,false\n")
      -- a resource with no planned change still counts
      write(dir .. "/url_ignore_patterns.csv", "pattern\np1.example.com\n")
      local fp = assert(folder_plan.make({ { client = cf }, { client = cf:account(B) } }, assert(folder.read(dir))))
      local saved = fp:save()
      -- someone changes B's URL ignore patterns (a comment) meanwhile
      assert(cf:account(B).url_ignore_patterns:update(emu.state(B, "url_ignore_patterns")[1].id,
                                                      { comments = "by hand" }))
      local writes = #emu.requests()
      local loaded = assert(folder_plan.load(saved, accounts_of(cf)))
      local ok, err = loaded:apply()
      assert.is_nil(ok)
      assert.are.equal("stale", err.rule)
      assert.truthy(tostring(err):find("account " .. B .. ", url_ignore_patterns changed since the plan", 1, true),
                    tostring(err))
      local requests = emu.requests()
      for i = writes + 1, #requests do assert.are.equal("GET", requests[i].method) end
      assert.are.equal("p1.example.com", emu.state(A, "block_senders")[1].pattern)
    end)

    it("refuses a file that is no saved plan, and one made against another API", function()
      local fp, why = folder_plan.load("[]", accounts_of(cf), "x.json")
      assert.is_nil(fp)
      assert.truthy(why:find("x.json: is not a plan saved by plan --out", 1, true))
      emu.seed(A, { entry("block_senders", 1) }, "block_senders")
      fresh_dir()
      write(dir .. "/block_senders.json", "[]")
      local saved = assert(folder_plan.make({ { client = cf } }, assert(folder.read(dir)))):save()
      local moved = require("cjson").decode(saved)
      moved.accounts[1].base_url = "https://api.example.com/client/v4"
      saved = require("cjson").encode(moved)
      fp, why = folder_plan.load(saved, accounts_of(cf), "p.json")
      assert.is_nil(fp)
      assert.truthy(why:find("p.json: the plan was made against https://api.example.com", 1, true), why)
    end)

    it("writes each change's key as an object of the key's fields (version 2), and checks it when read", function()
      emu.seed(A, { entry("block_senders", 1), entry("block_senders", 2) }, "block_senders")
      fresh_dir()
      write(dir .. "/block_senders.csv", "pattern_type,pattern,is_regex,comments\nEMAIL,p1.example.com,false,x\n"
        .. "EMAIL,p3.example.com,false,\n")
      local fp = assert(folder_plan.make({ { client = cf } }, assert(folder.read(dir))))
      local saved = fp:save()
      local cjson = require("cjson")
      local v = cjson.decode(saved)
      assert.are.equal(2, v.version)
      local res = v.accounts[1].resources[1]
      local function key(n) return { pattern_type = "EMAIL", pattern = ("p%d.example.com"):format(n), is_regex = false } end
      assert.are.same(key(3), res.plan.creates[1].key)
      assert.are.same(key(1), res.plan.updates[1].key)
      assert.are.same(key(2), res.plan.deletes[1].key)
      -- the resource's own "key" still names the key's fields
      assert.are.same({ "pattern_type", "pattern", "is_regex" }, res.key)
      -- and plan --json's form is the same
      assert.are.same(key(3), cjson.decode(fp:json()).accounts[1].resources[1].plan.creates[1].key)
      local function load(change)
        local copy = cjson.decode(saved)
        change(copy.accounts[1].resources[1].plan)
        return folder_plan.load(cjson.encode(copy), function() return cf end, "p.json")
      end
      local loaded, why = load(function(p) p.deletes[1].key.is_regex = "no" end)
      assert.is_nil(loaded)
      assert.are.equal("p.json: account " .. A .. ", block_senders: deletes[1].key.is_regex must be true or false", why)
      loaded, why = load(function(p) p.updates[1].key = "pattern_type=EMAIL pattern=p1.example.com is_regex=false" end)
      assert.is_nil(loaded)
      assert.truthy(why:find("updates[1].key must be an object of the key's fields", 1, true), why)
    end)

    it("still reads version 1, whose keys were text, and says which versions it reads", function()
      emu.seed(A, { entry("block_senders", 1), entry("block_senders", 2) }, "block_senders")
      fresh_dir()
      write(dir .. "/block_senders.csv", "pattern_type,pattern,is_regex,comments\nEMAIL,p1.example.com,false,x\n"
        .. "EMAIL,p3.example.com,false,\n")
      local fp = assert(folder_plan.make({ { client = cf } }, assert(folder.read(dir))))
      local cjson = require("cjson")
      -- the file version 1 wrote: the same, but each key the text a person reads
      local old = cjson.decode(fp:save())
      old.version = 1
      local p = fp.accounts[1].resources[1].plan
      local saved_plan = old.accounts[1].resources[1].plan
      for _, kind in ipairs({ "creates", "updates", "deletes" }) do
        for i, item in ipairs(saved_plan[kind]) do item.key = p[kind][i].key end
      end
      local loaded = assert(folder_plan.load(cjson.encode(old), function() return cf end, "old.json"))
      assert.are.equal(tostring(fp), tostring(loaded))
      local lp = loaded.accounts[1].resources[1].plan
      assert.are.same(p.deletes[1].key_values, lp.deletes[1].key_values)
      -- and applied as saved, its result's keys objects
      local report = assert(loaded:apply())
      local result = cjson.decode(loaded:apply_json(report))
      assert.are.same(p.creates[1].key_values, result.accounts[1].resources[1].created[1].key)
      old.version = 3
      local none, why = folder_plan.load(cjson.encode(old), function() return cf end, "new.json")
      assert.is_nil(none)
      assert.are.equal("new.json: a saved plan of version 3; this tool reads versions 1 and 2: plan again", why)
    end)

    it("refuses a change twice when it is read, saying where, and sends nothing", function()
      emu.seed(A, { entry("block_senders", 1), entry("block_senders", 2) }, "block_senders")
      fresh_dir()
      write(dir .. "/block_senders.csv", "pattern_type,pattern,is_regex,comments\nEMAIL,p1.example.com,false,x\n"
        .. "EMAIL,p3.example.com,false,\n")
      local saved = assert(folder_plan.make({ { client = cf } }, assert(folder.read(dir)))):save()
      local cjson = require("cjson")
      local function load(change)
        local copy = cjson.decode(saved)
        change(copy.accounts[1].resources[1].plan)
        return folder_plan.load(cjson.encode(copy), function() return cf end, "p.json")
      end
      local before, state = #emu.requests(), emu.state(A, "block_senders")
      local at = "p.json: account " .. A .. ", block_senders: "
      -- the same create twice would make two entries of one key, and every later plan refused
      local loaded, why = load(function(p) p.creates[2] = p.creates[1] end)
      assert.is_nil(loaded)
      assert.are.equal(at .. "creates[2].key: the same key as creates[1] (pattern_type=EMAIL pattern=p3.example.com "
        .. "is_regex=false): a plan creates each key once", why)
      local id
      loaded, why = load(function(p)
        id = p.updates[1].id
        p.deletes[1].id = id
      end)
      assert.is_nil(loaded)
      assert.are.equal(at .. "deletes[1].id: the same id as updates[1] (" .. id .. "): a plan updates or deletes "
        .. "an entry once", why)
      loaded, why = load(function(p) p.updates[2] = p.updates[1] end)
      assert.is_nil(loaded)
      assert.are.equal(at .. "updates[2].id: the same id as updates[1] (" .. id .. "): a plan updates or deletes "
        .. "an entry once", why)
      loaded, why = load(function(p) p.deletes[2] = p.deletes[1] end)
      assert.is_nil(loaded)
      assert.truthy(why:find("deletes[2].id: the same id as deletes[1] (", 1, true), why)
      loaded, why = load(function(p)
        local changes = p.updates[1].changes
        changes[2] = { field = changes[1].field, old = changes[1].old, new = "y" }
      end)
      assert.is_nil(loaded)
      assert.are.equal(at .. "updates[1].changes[2].field: the same field as updates[1].changes[1] (comments): "
        .. "an update changes each field once", why)
      assert.are.equal(before, #emu.requests())
      assert.are.same(state, emu.state(A, "block_senders"))
      -- and the plan as saved is read
      assert(load(function() end))
    end)
    -- The fingerprint says the listing is the one the plan was made
    -- against; not that the plan is the one made then. Each change is sent
    -- to its id and shown by its key: a hand-edited file could pair them
    -- otherwise (a delete shown as p2 that deletes p3).
    it("applies each update and delete only to an entry its id names as the plan shows it, or sends nothing",
       function()
      local list = {}
      for i = 1, 3 do
        list[i] = entry("block_senders", i)
        list[i].comments = "c" .. i
      end
      emu.seed(A, list, "block_senders")
      fresh_dir()
      -- p1's comment changes, p2 stays, p3 goes
      write(dir .. "/block_senders.csv", "pattern_type,pattern,is_regex,comments\nEMAIL,p1.example.com,false,x\n"
        .. "EMAIL,p2.example.com,false,c2\n")
      local saved = assert(folder_plan.make({ { client = cf } }, assert(folder.read(dir)))):save()
      local cjson = require("cjson")
      local state = emu.state(A, "block_senders")
      local id = {}
      for _, e in ipairs(state) do id[e.pattern] = e.id end
      local function edited(change)
        local copy = cjson.decode(saved)
        change(copy.accounts[1].resources[1].plan)
        return assert(folder_plan.load(cjson.encode(copy), function() return cf end, "p.json"))
      end
      local before = #emu.requests()
      local at = "plan: account " .. A .. ", block_senders: "
      local cases = {
        { function(p) p.deletes[1].key.pattern = "p2.example.com" end,
          "deletes[1]: its key says pattern=p2.example.com but entry " .. id["p3.example.com"]
            .. " has pattern=p3.example.com" },
        { function(p) p.updates[1].key.pattern = "p2.example.com" end,
          "updates[1]: its key says pattern=p2.example.com but entry " .. id["p1.example.com"]
            .. " has pattern=p1.example.com" },
        -- the value an update shows it replaces: the listing's the same,
        -- so only an edit makes it another
        { function(p) p.updates[1].changes[1].old = "c9" end,
          'updates[1].changes[1]: it says comments was "c9" but entry ' .. id["p1.example.com"] .. ' has "c1"' },
        { function(p) p.updates[1].changes[1].old = cjson.null end,
          'updates[1].changes[1]: it says comments was null but entry ' .. id["p1.example.com"] .. ' has "c1"' },
        { function(p) p.deletes[1].id = "0b7c3f5e-2d1a-4c8e-9f60-7a1d2e3b4c5d" end,
          "deletes[1]: entry 0b7c3f5e-2d1a-4c8e-9f60-7a1d2e3b4c5d is not listed (its key says pattern_type=EMAIL "
            .. "pattern=p3.example.com is_regex=false)" },
      }
      for _, case in ipairs(cases) do
        local loaded = edited(case[1])
        local ok, err = loaded:apply()
        assert.is_nil(ok, case[2])
        assert.are.equal("mismatch", err.rule)
        assert.are.equal(at .. case[2] .. ": nothing was sent anywhere. Plan again", err.message)
        -- and the tool's own check, before it asks, says the same
        assert.are.equal(err.message, edited(case[1]):moved().message)
      end
      for i = before + 1, #emu.requests() do assert.are.equal("GET", emu.requests()[i].method) end
      assert.are.same(state, emu.state(A, "block_senders"))
      -- a uuid's hex digits in either case are the one entry; as saved, it goes
      assert(edited(function(p) p.deletes[1].id = p.deletes[1].id:upper() end):apply())
      assert.are.same({ "p1.example.com", "p2.example.com" }, { emu.state(A, "block_senders")[1].pattern,
                                                                emu.state(A, "block_senders")[2].pattern })
      assert.are.equal("x", emu.state(A, "block_senders")[1].comments)
    end)

    it("never deletes an entry a directory keeps, whatever the file says", function()
      emu.seed(A, { entry("impersonation_registry", 1),
                    { name = "Synced", email = "synced@example.com", is_email_regex = false, directory_id = 4 } })
      fresh_dir()
      write(dir .. "/impersonation_registry.json", "[]")
      local saved = assert(folder_plan.make({ { client = cf } }, assert(folder.read(dir)))):save()
      local cjson = require("cjson")
      local copy = cjson.decode(saved)
      local p = copy.accounts[1].resources[1].plan
      assert.are.equal(1, #p.deletes)
      assert.are.equal(1, #p.skipped)
      p.deletes[1] = { key = p.skipped[1].key, id = p.skipped[1].id }
      p.skipped = {}
      local loaded = assert(folder_plan.load(cjson.encode(copy), function() return cf end, "p.json"))
      local ok, err = loaded:apply()
      assert.is_nil(ok)
      assert.are.equal("plan: account " .. A .. ", impersonation_registry: deletes[1]: entry " .. p.deletes[1].id
        .. " is directory-synced: a plan leaves it alone: nothing was sent anywhere. Plan again", err.message)
      assert.are.equal(2, #emu.state(A, "impersonation_registry"))
    end)

    -- Only the caller's force (the command line's --force) passes the
    -- thresholds, and they are taken of the entries listed when applied:
    -- neither the file's "force" nor its count (or its skipped entries)
    -- can turn them off.
    it("is refused past the thresholds whatever the file says of force and of the entries it found", function()
      local list = {}
      for i = 1, 12 do list[i] = entry("url_ignore_patterns", i) end
      emu.seed(A, list, "url_ignore_patterns")
      fresh_dir()
      write(dir .. "/url_ignore_patterns.csv", "pattern\np1.example.com\n")
      -- a resource before it, within its thresholds: nothing is sent there either
      write(dir .. "/block_senders.csv", "pattern_type,pattern,is_regex\nEMAIL,new@example.com,false\n")
      local fp = assert(folder_plan.make({ { client = cf } }, assert(folder.read(dir))))
      assert.are.equal(1, #fp:refusals())
      assert.are.same({ "block_senders", "url_ignore_patterns" }, { fp.accounts[1].resources[1].resource,
                                                                   fp.accounts[1].resources[2].resource })
      local saved = fp:save()
      local cjson = require("cjson")
      local function edited(change)
        local copy = cjson.decode(saved)
        change(copy, copy.accounts[1].resources[2])
        return assert(folder_plan.load(cjson.encode(copy), function() return cf end, "p.json"))
      end
      local fake_skipped = {}
      for i = 1, 11 do fake_skipped[i] = { key = {}, id = examples.ID, reason = "has no pattern" } end
      local before = #emu.requests()
      for _, change in ipairs({
        function(v) v.force = true end,
        function(_, r) r.existing = 0 end,
        function(v, r) v.force, r.existing, r.refused = true, 0, cjson.null end,
        function(_, r) r.existing, r.plan.skipped = 1, fake_skipped end,
      }) do
        local loaded = edited(change)
        assert.is_false(loaded.force)
        local ok, err = loaded:apply()
        assert.is_nil(ok)
        assert.are.equal("threshold", err.rule)
        assert.truthy(err.message:find("would delete 11 of the 12 existing entries", 1, true), err.message)
        -- the tool's own order: listed again (recounted), then asked
        loaded = edited(change)
        assert.is_nil(loaded:moved())
        assert.are.equal(12, loaded.accounts[1].resources[2].plan.existing)
        assert.are.equal(1, #loaded:refusals())
      end
      for i = before + 1, #emu.requests() do assert.are.equal("GET", emu.requests()[i].method) end
      assert.are.equal(12, #emu.state(A, "url_ignore_patterns"))
      assert.are.equal(0, #emu.state(A, "block_senders"))
      -- the caller's force goes
      assert(edited(function() end):apply({ force = true }))
      assert.are.equal(1, #emu.state(A, "url_ignore_patterns"))
    end)

    it("refuses a file that repeats an account or a resource, or holds a wrong name, file, key or version",
       function()
      emu.seed(A, { entry("block_senders", 1) }, "block_senders")
      fresh_dir()
      write(dir .. "/block_senders.csv", "pattern_type,pattern,is_regex\nEMAIL,p7.example.com,false\n")
      local saved = assert(folder_plan.make({ { client = cf } }, assert(folder.read(dir)))):save()
      local cjson = require("cjson")
      local function load(change)
        local copy = cjson.decode(saved)
        change(copy, copy.accounts[1], copy.accounts[1].resources[1])
        return folder_plan.load(cjson.encode(copy), function() return cf end, "p.json")
      end
      local cases = {
        { function(_, a) a.name = {} end, "p.json: accounts[1].name must be a text or null" },
        { function(_, a) a.name = true end, "p.json: accounts[1].name must be a text or null" },
        { function(_, a) a.name = { 1 } end, "p.json: accounts[1].name must be a text or null" },
        { function(_, _, r) r.file = nil end, "p.json: accounts[1].resources[1].file must be a text" },
        { function(_, _, r) r.file = { a = 1 } end, "p.json: accounts[1].resources[1].file must be a text" },
        { function(v) v.accounts[2] = v.accounts[1] end, "p.json: accounts[2].account_id: the same account as "
          .. "accounts[1] (" .. A .. "): a plan names each account once" },
        { function(_, a, r) a.resources[2] = r end, "p.json: accounts[1].resources[2].resource: the same resource "
          .. "as accounts[1].resources[1] (block_senders): a plan has each resource of an account once" },
        -- another key would name other entries, and count fewer
        { function(_, _, r) r.key = { "pattern" } end, "p.json: account " .. A .. ", block_senders: the plan's key "
          .. "is not block_senders's (pattern_type, pattern, is_regex): plan again" },
        { function(v) v.version = "2" end,
          'p.json: a saved plan of version "2"; this tool reads versions 1 and 2: plan again' },
        { function(v) v.version = nil end,
          "p.json: a saved plan of version (none); this tool reads versions 1 and 2: plan again" },
      }
      for _, case in ipairs(cases) do
        local fp, why = load(case[1])
        assert.is_nil(fp, case[2])
        assert.are.equal(case[2], why)
      end
      -- a name, or none, is read
      assert.are.equal("Acme", assert(load(function(_, a) a.name = "Acme" end)).accounts[1].name)
      assert.is_nil(assert(load(function(_, a) a.name = cjson.null end)).accounts[1].name)
    end)
  end)

  describe("what apply did, as JSON", function()
    local cjson = require("cjson")

    it("per account and resource, the shapes of one resource's apply; counts added up", function()
      emu.seed(A, { entry("block_senders", 1) }, "block_senders")
      fresh_dir()
      write(dir .. "/block_senders.csv", "pattern_type,pattern,is_regex\nEMAIL,p2.example.com,false\n")
      local fp = assert(folder_plan.make({ { client = cf, name = "Alpha" }, { client = cf:account(B) } },
                                         assert(folder.read(dir))))
      local report = assert(fp:apply())
      local v = cjson.decode(fp:apply_json(report))
      assert.are.equal(cjson.null, v.error)
      assert.are.same({ created = 2, updated = 0, deleted = 1, unchanged = 0, skipped = 0 }, v.counts)
      local a = v.accounts[1]
      assert.are.same({ A, "Alpha", emu.base_url, "done" }, { a.account_id, a.name, a.base_url, a.state })
      local r = a.resources[1]
      assert.are.same({ "block_senders", dir .. "/block_senders.csv", "done", cjson.null },
                      { r.resource, r.file, r.state, r.refused })
      assert.are.same({ { key = { pattern_type = "EMAIL", pattern = "p2.example.com", is_regex = false },
                          id = emu.state(A, "block_senders")[1].id } }, r.created)
      assert.are.same({ key = { pattern_type = "EMAIL", pattern = "p1.example.com", is_regex = false } },
                      { key = r.deleted[1].key })
      assert.are.equal(cjson.null, r.error)
      assert.are.equal(1, #r.plan.creates)
      assert.are.same({ creates = {}, updates = {}, deletes = {} }, r.remaining)
      assert.are.equal(B, v.accounts[2].account_id)
      assert.are.equal(cjson.null, v.accounts[2].name)
      assert.are.same({}, v.warnings)
    end)

    it("a failure half-way: each resource done, stopped or not started, with what is left and in doubt", function()
      fresh_dir()
      write(dir .. "/block_senders.csv", "pattern_type,pattern,is_regex\nEMAIL,p1.example.com,false\n")
      write(dir .. "/url_ignore_patterns.csv", "pattern\nu1.example.com\n")
      local accounts = { { client = cf }, { client = cf:account(B) }, { client = cf:account(C) } }
      local fp = assert(folder_plan.make(accounts, assert(folder.read(dir))))
      emu.fault({ method = "POST", path = "/accounts/" .. B .. "/email-security/settings/url_ignore_patterns",
                  status = 500, after = true, times = 5 })
      local ok, err = fp:apply()
      assert.is_nil(ok)
      local v = cjson.decode(fp:apply_json(err))
      assert.are.equal(tostring(err), v.error.message)
      local states = {}
      for _, a in ipairs(v.accounts) do
        local each = { a.state }
        for _, r in ipairs(a.resources) do each[#each + 1] = r.resource .. " " .. r.state end
        states[#states + 1] = table.concat(each, ", ")
      end
      assert.are.same({ "done, block_senders done, url_ignore_patterns done",
                        "stopped, block_senders done, url_ignore_patterns stopped",
                        "not started, block_senders not started, url_ignore_patterns not started" }, states)
      local stopped = v.accounts[2].resources[2]
      assert.are.same({ { key = { pattern = "u1.example.com" }, id = cjson.null } }, stopped.in_doubt.creates)
      assert.are.equal(tostring(err), stopped.error.message)
      assert.are.equal(cjson.null, v.accounts[2].resources[1].error)
      assert.are.same({ { key = { pattern = "u1.example.com" }, id = cjson.null } },
                      v.accounts[3].resources[2].remaining.creates)
      -- A's two, and B's block_senders: B's URL ignore pattern is in doubt
      assert.are.same({ created = 3, updated = 0, deleted = 0, unchanged = 0, skipped = 0 }, v.counts)
    end)

    it("refused, or nothing to do: nothing sent, every change not done, and why", function()
      fresh_dir()
      write(dir .. "/url_ignore_patterns.csv", "pattern\nu1.example.com\n")
      local fp = assert(folder_plan.make({ { client = cf } }, assert(folder.read(dir))))
      local v = cjson.decode(fp:apply_json("not applied: the answer was not yes"))
      assert.are.equal("not applied: the answer was not yes", v.error.message)
      assert.are.equal("not started", v.accounts[1].state)
      assert.are.equal("not started", v.accounts[1].resources[1].state)
      assert.are.equal(1, #v.accounts[1].resources[1].remaining.creates)
      assert(fp:apply())
      fp = assert(folder_plan.make({ { client = cf } }, assert(folder.read(dir))))
      v = cjson.decode(fp:apply_json(nil))
      assert.are.equal(cjson.null, v.error)
      assert.are.same({ "done", "done" }, { v.accounts[1].state, v.accounts[1].resources[1].state })
      assert.are.equal(1, v.counts.unchanged)
    end)
  end)
end)
