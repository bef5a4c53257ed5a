-- plan and apply against the emulator, for what a review found: an
-- option name plan or apply does not know, entries changed after they
-- were read, regular expressions and case, a file that must converge, a
-- stale plan or a listing that moves, and the report after a failure.
local es = require("cloudflare.email_security")
local emulator_process = require("emulator.process")

local ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"

local function registry(email, regex)
  return { name = "N", email = email, is_email_regex = regex or false }
end

local function policy(pattern, extra)
  local e = { pattern_type = "EMAIL", pattern = pattern, is_regex = false, is_acceptable_sender = true,
              is_exempt_recipient = false, is_trusted_sender = false, verify_sender = false, comments = "c" }
  for k, v in pairs(extra or {}) do e[k] = v end
  return e
end

-- A file of ours with that ending, holding text.
local function temp_file(ending, text)
  local path = os.tmpname() .. ending
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

local function count(emu, method, path_part)
  local n = 0
  for _, r in ipairs(emu.requests()) do
    if r.method == method and (not path_part or r.path:find(path_part, 1, true)) then n = n + 1 end
  end
  return n
end

describe("plan and apply, as a review found them", function()
  local emu, cf

  setup(function()
    emu = emulator_process.start({ token = "t" })
    cf = es.new({ api_token = "t", account_id = ACCOUNT, base_url = emu.base_url, max_retry_wait = 0.05 })
  end)
  teardown(function()
    cf:close()
    emu.stop()
  end)
  before_each(function() emu.reset() end)

  describe("an option name it does not know is an error, and nothing is sent", function()
    local CASES = {
      { opts = { no_purge = true }, field = "no_purge", says = "did you mean `purge = false`?" },
      { opts = { purg = false }, field = "purg", says = "did you mean `purge`?" },
      { opts = { keys = { "email" } }, field = "keys", says = "did you mean `key`?" },
      -- an option of another resource's plan
      { opts = { delete_domains = true }, field = "delete_domains", says = "there are: key, fields, purge" },
    }
    for _, case in ipairs(CASES) do
      it("plan{ " .. case.field .. " = ... }", function()
        emu.seed(ACCOUNT, { registry("a@example.com"), registry("b@example.com") })
        local before = #emu.requests()
        local p, err = cf.impersonation_registry:plan({ registry("a@example.com") }, case.opts)
        assert.is_nil(p)
        assert.are.equal("invalid", err.kind)
        assert.are.equal("unknown", err.rule)
        assert.are.equal(case.field, err.field)
        assert.truthy(err.message:find(case.says, 1, true), err.message)
        assert.are.equal(before, #emu.requests())
        assert.are.equal(2, #emu.state(ACCOUNT))
      end)
    end

    it("apply{ forse = true } sends nothing and leaves the plan to apply", function()
      emu.seed(ACCOUNT, { registry("a@example.com") })
      local p = assert(cf.impersonation_registry:plan({}))
      local before = #emu.requests()
      local summary, err = p:apply({ forse = true })
      assert.is_nil(summary)
      assert.are.equal("unknown", err.rule)
      assert.are.equal("forse", err.field)
      assert.truthy(err.message:find("did you mean `force`?", 1, true), err.message)
      assert.are.equal(before, #emu.requests())
      assert.is_truthy(assert(p:apply()))
      assert.are.equal(0, #emu.state(ACCOUNT))
    end)
  end)

  describe("what the caller holds is what is planned", function()
    it("entries read without a resource, then changed in Lua", function()
      local path = temp_file(".csv", "pattern_type,pattern,is_regex,is_acceptable_sender,is_exempt_recipient,"
        .. "is_trusted_sender,verify_sender,comments\n"
        .. "EMAIL,a@example.com,false,true,false,false,false,c\n"
        .. "EMAIL,b@example.com,false,true,false,false,false,c\n")
      emu.seed(ACCOUNT, { policy("a@example.com"), policy("b@example.com") }, "allow_policies")
      local desired = assert(es.read_entries(path))
      desired[1].comments = "changed in Lua"
      desired[2].verify_sender = true
      local p = assert(cf.allow_policies:plan(desired))
      assert.are.equal(2, #p.updates, tostring(p))
      local by_pattern = {}
      for _, u in ipairs(p.updates) do by_pattern[u.key:match("pattern=(%S+)")] = u.fields end
      assert.are.same({ comments = "changed in Lua" }, by_pattern["a@example.com"])
      assert.are.same({ verify_sender = true }, by_pattern["b@example.com"])
      -- a field taken out is no longer compared; one added is
      desired = assert(es.read_entries(path))
      desired[1].comments = nil
      desired[2].comments = "added"
      desired[2].verify_sender = nil
      p = assert(cf.allow_policies:plan(desired))
      assert.are.equal(1, #p.updates, tostring(p))
      assert.are.same({ comments = "added" }, p.updates[1].fields)
      os.remove(path)
    end)
  end)

  describe("case", function()
    it("a regular expression is never case-folded: \\D is not \\d", function()
      emu.seed(ACCOUNT, { registry("^ceo\\d+@corp\\.example$", true) })
      local p = assert(cf.impersonation_registry:plan({ registry("^ceo\\D+@corp\\.example$", true) }))
      assert.are.equal(1, #p.creates, tostring(p))
      assert.are.equal(1, #p.deletes, tostring(p))
      -- both in one file are two entries, not a duplicate
      p = assert(cf.impersonation_registry:plan({ registry("^ceo\\d+@corp\\.example$", true),
                                                  registry("^ceo\\D+@corp\\.example$", true),
                                                  registry("^\\W\\w\\S\\s\\B\\b\\P{L}\\p{L}$", true),
                                                  registry("^\\w\\W\\s\\S\\b\\B\\p{L}\\P{L}$", true) }))
      assert.are.equal(3, #p.creates, tostring(p))
      assert.are.equal(1, #p.unchanged, tostring(p))
    end)

    it("a regular expression is not folded under a key that leaves out is_email_regex either", function()
      emu.seed(ACCOUNT, { registry("^ceo\\d+@corp\\.example$", true) })
      -- the desired entry does not say whether it is a regular expression:
      -- compared as written, it matches nothing, and a create needs the flag
      local p, err = cf.impersonation_registry:plan({ { name = "N", email = "^ceo\\D+@corp\\.example$" } },
                                                    { key = { "email" }, purge = false })
      assert.is_nil(p, p and tostring(p))
      assert.are.equal("required", err.rule)
      assert.are.equal("desired[1].is_email_regex", err.field)
    end)

    it("a plain address folds, beyond ASCII too", function()
      emu.seed(ACCOUNT, { registry("ceo@bücher.example"), registry("CFO@Corp.Example") })
      local p = assert(cf.impersonation_registry:plan({ registry("CEO@BÜCHER.example"), registry("cfo@corp.example") }))
      assert.are.equal(0, p:changes(), tostring(p))
    end)

    for _, name in ipairs({ "sending_domain_restrictions", "domains" }) do
      it(name .. ": a domain is one domain whatever its case, beyond ASCII too", function()
        local seed = name == "domains"
          and { domain = "bücher.example", allowed_delivery_modes = { "DIRECT" }, ip_restrictions = {},
                drop_dispositions = {}, regions = { "GLOBAL" } }
          or { domain = "bücher.example" }
        emu.seed(ACCOUNT, { seed }, name)
        local listed = assert(cf[name]:all())
        listed[1].domain = "BÜCHER.example"
        local p = assert(cf[name]:plan(listed))
        assert.are.equal(0, p:changes(), tostring(p))
        -- two spellings of one domain in a file are a duplicate
        local _, err = cf[name]:plan({ { domain = "BÜCHER.example" }, { domain = "bu\204\136cher.example" } })
        assert.are.equal("duplicate", err.rule)
      end)
    end

    it("what is compared as written keeps its case (allow policies' patterns)", function()
      emu.seed(ACCOUNT, { policy("CEO@corp.example") }, "allow_policies")
      local p = assert(cf.allow_policies:plan({ policy("ceo@corp.example") }))
      assert.are.equal(1, #p.creates)
      assert.are.equal(1, #p.deletes)
    end)
  end)

  describe("a file that plans converges", function()
    local domain = { domain = "d.example", allowed_delivery_modes = { "DIRECT" }, ip_restrictions = {},
                     drop_dispositions = {}, regions = { "GLOBAL" } }
    for _, field in ipairs({ "transport", "lookback_hops" }) do
      it("a domain's " .. field .. " null, which a create takes and the stored entry cannot hold, is refused", function()
        local e = {}
        for k, v in pairs(domain) do e[k] = v end
        e[field] = es.null
        local p, err = cf.domains:plan({ e })
        assert.is_nil(p)
        assert.are.equal("desired[1]." .. field, err.field)
        assert.are.equal("nullable", err.rule)
        assert.truthy(err.message:find("leave the field out", 1, true), err.message)
        assert.are.equal(0, count(emu, "GET"))
        -- left out, it applies once and then plans no change
        e[field] = nil
        assert.is_truthy(assert(assert(cf.domains:plan({ e })):apply()))
        assert.are.equal(0, assert(cf.domains:plan({ e })):changes())
      end)
    end
  end)

  describe("a stale plan or a moving listing makes no duplicate", function()
    it("an entry created by someone else between plan and apply is not created again", function()
      local p = assert(cf.impersonation_registry:plan({ registry("a@example.com"), registry("b@example.com") }))
      assert.are.equal(2, #p.creates)
      emu.seed(ACCOUNT, { registry("b@example.com") })
      local summary, err = p:apply()
      assert.is_nil(summary)
      assert.are.equal("stale", err.rule)
      assert.truthy(tostring(err):find("email=b@example.com", 1, true), tostring(err))
      assert.truthy(tostring(err):find("nothing was sent", 1, true), tostring(err))
      assert.are.equal(0, count(emu, "POST"))
      assert.are.equal(1, #emu.state(ACCOUNT))
      -- planned again, it creates only what is missing
      assert.are.equal(1, assert(assert(cf.impersonation_registry:plan({ registry("a@example.com"),
        registry("b@example.com") })):apply()).created)
    end)

    it("the same through batches", function()
      local p = assert(cf.allow_policies:plan({ policy("a@example.com") }))
      emu.seed(ACCOUNT, { policy("a@example.com") }, "allow_policies")
      local _, err = p:apply()
      assert.are.equal("stale", err.rule)
      assert.are.equal(0, count(emu, "POST", "/batch"))
      assert.are.equal(1, #emu.state(ACCOUNT, "allow_policies"))
    end)

    it("a listing whose total_count changes between pages is listed again", function()
      local seeded = {}
      for i = 1, 1001 do seeded[i] = registry(("u%04d@example.com"):format(i)) end
      emu.seed(ACCOUNT, seeded)
      -- page 2 answers as if an entry of page 1 went between the pages:
      -- the last entry moved up into page 1, already walked
      emu.faults({
        { method = "GET", path = "impersonation_registry", delay_ms = 0 },
        { method = "GET", path = "impersonation_registry", status = 200, headers = { ["Content-Type"] =
          "application/json" }, body = '{"success":true,"errors":[],"messages":[],"result":[],'
          .. '"result_info":{"page":2,"per_page":1000,"count":0,"total_count":1000}}' },
      })
      local p = assert(cf.impersonation_registry:plan(seeded))
      assert.are.equal(0, p:changes(), tostring(p))
      assert.are.equal(1001, #p.unchanged)
    end)
  end)

  describe("the report after a failure is exact", function()
    it("a create that may have acted is in doubt, not 'not done'", function()
      -- one request at a time, so that what was sent before the failure is known
      local one = es.new({ api_token = "t", account_id = ACCOUNT, base_url = emu.base_url, max_retry_wait = 0.05,
                          concurrency = 1 })
      emu.fault({ method = "POST", path = "impersonation_registry", status = 500, after = true })
      local desired = { registry("a@example.com"), registry("b@example.com"), registry("c@example.com") }
      local _, err = assert(one.impersonation_registry:plan(desired)):apply()
      assert.are.same({ created = 0, updated = 0, deleted = 0 }, err.applied)
      assert.are.same({ creates = 1, updates = 0, deletes = 0 }, err.in_doubt)
      assert.are.same({ creates = 2, updates = 0, deletes = 0 }, err.remaining)
      assert.truthy(tostring(err):find("1 creates, 0 updates, 0 deletes in doubt", 1, true), tostring(err))
      assert.truthy(tostring(err):find("2 creates, 0 updates, 0 deletes not done", 1, true), tostring(err))
      assert.are.equal(1, #emu.state(ACCOUNT))
    end)

    it("a refused request did nothing: not done, nothing in doubt", function()
      emu.seed(ACCOUNT, { registry("a@example.com") })
      emu.fault({ method = "PATCH", path = "impersonation_registry", status = 400, code = 1000,
                  message = "refused" })
      local changed = registry("a@example.com")
      changed.comments = "renamed"
      local _, err = assert(cf.impersonation_registry:plan({ changed, registry("b@example.com") })):apply()
      assert.are.same({ created = 1, updated = 0, deleted = 0 }, err.applied)
      assert.are.same({ creates = 0, updates = 0, deletes = 0 }, err.in_doubt)
      assert.are.same({ creates = 0, updates = 1, deletes = 0 }, err.remaining)
      assert.is_nil(tostring(err):find("in doubt", 1, true))
    end)

    it("an update that may have acted is in doubt", function()
      emu.seed(ACCOUNT, { registry("a@example.com") })
      emu.faults({ { method = "PATCH", path = "impersonation_registry", status = 502, after = true, times = 9 } })
      local changed = registry("a@example.com")
      changed.comments = "renamed"
      local _, err = assert(cf.impersonation_registry:plan({ changed })):apply()
      assert.are.same({ creates = 0, updates = 1, deletes = 0 }, err.in_doubt)
      assert.are.same({ creates = 0, updates = 0, deletes = 0 }, err.remaining)
    end)
  end)

  describe("a request whose earlier try may have acted is in doubt, whatever its last try met", function()
    it("a batch of patches: 500 after acting, then 429s", function()
      emu.seed(ACCOUNT, { policy("a@example.com"), policy("b@example.com") }, "allow_policies")
      local p = assert(cf.allow_policies:plan({ policy("a@example.com", { comments = "new" }),
                                                policy("b@example.com", { comments = "new" }) }, { force = true }))
      emu.faults({ { method = "POST", path = "/batch", status = 500, after = true, body = "{}" },
                   { method = "POST", path = "/batch", status = 429, body = "{}", times = 2 } })
      local _, err = p:apply()
      assert.are.same({ creates = 0, updates = 2, deletes = 0 }, err.in_doubt)
      assert.are.same({ creates = 0, updates = 0, deletes = 0 }, err.remaining)
    end)

    it("a single update: 500 after acting, then 429s", function()
      emu.seed(ACCOUNT, { registry("a@example.com") })
      local changed = registry("a@example.com")
      changed.comments = "new"
      local p = assert(cf.impersonation_registry:plan({ changed }))
      emu.faults({ { method = "PATCH", status = 500, after = true, body = "{}" },
                   { method = "PATCH", status = 429, body = "{}", times = 2 } })
      local _, err = p:apply()
      assert.are.same({ creates = 0, updates = 1, deletes = 0 }, err.in_doubt)
      assert.are.same({ creates = 0, updates = 0, deletes = 0 }, err.remaining)
    end)

    it("a batch that met a 404 after a try that acted, and whose listing then failed", function()
      local seeded = emu.seed(ACCOUNT, { policy("a@example.com"), policy("b@example.com"), policy("c@example.com"),
                                         policy("d@example.com") }, "allow_policies")
      assert(seeded)
      local p = assert(cf.allow_policies:plan({ policy("a@example.com", { comments = "new" }),
                                                policy("b@example.com", { comments = "new" }) }, { force = true }))
      emu.faults({ { method = "POST", path = "/batch", status = 500, after = true, body = "{}" },
                   { method = "GET", path = "allow_policies", status = 500, body = "{}", times = 9 } })
      local _, err = p:apply()
      assert.are.same({ creates = 0, updates = 2, deletes = 2 }, err.in_doubt)
      assert.are.same({ creates = 0, updates = 0, deletes = 0 }, err.remaining)
    end)
  end)

  it("a JSON file that starts with a byte order mark is read", function()
    local path = temp_file(".json", '\239\187\191[{"name": "N", "email": "a@example.com", "is_email_regex": false}]')
    local list = assert(es.read_entries(path))
    assert.are.equal("a@example.com", list[1].email)
    os.remove(path)
  end)
end)
