-- plan and apply against the emulator, for every resource that has them:
-- create, update, delete and a re-run that changes nothing; then the
-- safety rules (thresholds, purge off, domains kept, duplicates,
-- directory-synced entries skipped), resuming after faults, and how many
-- requests a batch apply takes.
local es = require("cloudflare.email_security")
local emulator_process = require("emulator.process")
local examples = require("spec.support.examples")

local ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"


-- A field every resource's entries have that is not part of the key, and
-- a value to change it to.
local CHANGE = {
  allow_policies = { comments = "changed" }, block_senders = { comments = "changed" },
  content_policies = { notes = "changed" }, domains = { lookback_hops = 3 },
  impersonation_registry = { comments = "changed" }, sending_domain_restrictions = { comments = "changed" },
  trusted_domains = { comments = "changed" }, url_ignore_patterns = { comments = "changed" },
}

local entry = examples.entry

local function entries(name, from, to)
  local out = {}
  for i = from, to do out[#out + 1] = entry(name, i) end
  return out
end

local function count(emu, method, path_part)
  local n = 0
  for _, r in ipairs(emu.requests()) do
    if r.method == method and (not path_part or r.path:find(path_part, 1, true)) then n = n + 1 end
  end
  return n
end

-- What tells entry i from the others, whichever resource it is of.
local function ident(e) return e.pattern or e.email or e.domain or e.name end

local function keys_of(state, field)
  local out = {}
  for _, e in ipairs(state) do out[#out + 1] = tostring(e[field]) end
  table.sort(out)
  return out
end

describe("plan and apply", function()
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

  for _, name in ipairs(es.resources) do
    it(name .. ": creates, updates, deletes, then has nothing to do", function()
      local r = cf[name]
      emu.seed(ACCOUNT, entries(name, 1, 3), name)
      local desired = entries(name, 2, 5)
      for k, v in pairs(CHANGE[name]) do desired[1][k] = v end
      -- domains are deleted only when asked by name
      local p = assert(r:plan(desired, name == "domains" and { delete_domains = true } or nil))
      assert.are.equal(2, #p.creates)
      assert.are.equal(1, #p.updates)
      assert.are.equal(1, #p.deletes)
      assert.are.equal(1, #p.unchanged)
      local field, value = next(CHANGE[name])
      assert.are.same({ { field = field, old = p.updates[1].changes[1].old, new = value } }, p.updates[1].changes)
      assert.are_not.equal(value, p.updates[1].changes[1].old)
      assert.truthy(tostring(p):find("2 to create, 1 to update, 1 to delete, 1 unchanged", 1, true))
      -- plan changed nothing
      assert.are.equal(3, #emu.state(ACCOUNT, name))
      local summary = assert(p:apply())
      assert.are.same({ 2, 1, 1 }, { summary.created, summary.updated, summary.deleted })
      local state = emu.state(ACCOUNT, name)
      local want, have = {}, {}
      for _, e in ipairs(desired) do want[#want + 1] = ident(e) end
      for _, e in ipairs(state) do have[#have + 1] = ident(e) end
      table.sort(want)
      table.sort(have)
      assert.are.same(want, have)
      for _, e in ipairs(state) do
        if ident(e) == ident(desired[1]) then assert.are.equal(value, e[field]) end
      end
      local again = assert(r:plan(desired, name == "domains" and { delete_domains = true } or nil))
      assert.are.equal(0, again:changes())
      assert.are.equal(4, #again.unchanged)
    end)
  end

  it("compares list fields as sets and key fields by their case where the key says so", function()
    emu.seed(ACCOUNT, { { name = "Pol", enabled = true, pattern = "x", targets = { "SUBJECT", "BODY" } } },
             "content_policies")
    local p = assert(cf.content_policies:plan({
      { name = "Pol", enabled = true, pattern = "x", targets = { "BODY", "SUBJECT", "BODY" } },
    }))
    assert.are.equal(0, p:changes())
    emu.seed(ACCOUNT, { { name = "CEO", email = "ceo@example.com", is_email_regex = false, provenance = "A1S_INTERNAL" } })
    p = assert(cf.impersonation_registry:plan({ { name = "CEO", email = "CEO@Example.com", is_email_regex = false } }))
    assert.are.equal(0, p:changes())
  end)

  it("compares only the fields the desired entries give, or those opts.fields names", function()
    emu.seed(ACCOUNT, { { pattern = "a.example.com", comments = "kept" } }, "url_ignore_patterns")
    local r = cf.url_ignore_patterns
    assert.are.equal(0, assert(r:plan({ { pattern = "a.example.com" } })):changes())
    local p = assert(r:plan({ { pattern = "a.example.com", comments = "new" } }, { fields = { "pattern" } }))
    assert.are.equal(0, p:changes())
    p = assert(r:plan({ { pattern = "a.example.com", comments = es.null } }))
    assert.are.equal(1, #p.updates)
    assert.are.equal(es.null, p.updates[1].fields.comments)
    -- read-only fields in the desired entries (a listing written back) are never compared
    local listed = assert(r:all())
    listed[1].created_at = "2000-01-01T00:00:00Z"
    assert.are.equal(0, assert(r:plan(listed)):changes())
  end)

  describe("is safe by default", function()
    it("refuses past 30% of deletes or updates of at least 10 entries, sending nothing, unless forced", function()
      emu.seed(ACCOUNT, entries("url_ignore_patterns", 1, 10), "url_ignore_patterns")
      local r = cf.url_ignore_patterns
      local p = assert(r:plan(entries("url_ignore_patterns", 1, 6)))
      assert.are.equal(4, #p.deletes)
      local before = #emu.requests()
      local summary, err = p:apply()
      assert.is_nil(summary)
      assert.are.equal("invalid", err.kind)
      assert.are.equal("threshold", err.rule)
      assert.truthy(tostring(err):find("would delete 4 of the 10 existing entries (40%, more than 30%)", 1, true))
      assert.truthy(tostring(err):find("force", 1, true))
      assert.are.equal(before, #emu.requests())
      -- three deletes are within the limit
      assert.is_truthy(assert(r:plan(entries("url_ignore_patterns", 1, 7))):apply())
      -- updates count the same way, and force lets them through
      emu.reset()
      emu.seed(ACCOUNT, entries("url_ignore_patterns", 1, 10), "url_ignore_patterns")
      local desired = entries("url_ignore_patterns", 1, 10)
      for i = 1, 4 do desired[i].comments = "x" end
      p = assert(r:plan(desired))
      assert.are.equal(4, #p.updates)
      summary, err = p:apply()
      assert.is_nil(summary)
      assert.are.equal("threshold", err.rule)
      assert.truthy(tostring(err):find("would update 4 of the 10", 1, true))
      assert.are.equal(4, assert(p:apply({ force = true })).updated)
      local changed = 0
      for _, e in ipairs(emu.state(ACCOUNT, "url_ignore_patterns")) do
        if e.comments == "x" then changed = changed + 1 end
      end
      assert.are.equal(4, changed)
    end)

    it("below 10 entries, any share may go", function()
      emu.seed(ACCOUNT, entries("trusted_domains", 1, 9), "trusted_domains")
      local p = assert(cf.trusted_domains:plan({}))
      assert.are.equal(9, #p.deletes)
      assert.is_truthy(assert(p:apply()))
      assert.are.equal(0, #emu.state(ACCOUNT, "trusted_domains"))
    end)

    it("never deletes with purge = false, and domains only with delete_domains", function()
      emu.seed(ACCOUNT, entries("block_senders", 1, 3), "block_senders")
      local p = assert(cf.block_senders:plan(entries("block_senders", 1, 1), { purge = false }))
      assert.are.equal(0, #p.deletes)
      assert.are.equal(2, #p.kept)
      assert.truthy(tostring(p):find("2 not deleted (purge off)", 1, true))
      emu.seed(ACCOUNT, entries("domains", 1, 2), "domains")
      p = assert(cf.domains:plan(entries("domains", 1, 1)))
      assert.are.equal(0, #p.deletes)
      assert.truthy(tostring(p):find("1 not deleted (needs delete_domains)", 1, true))
      p = assert(cf.domains:plan(entries("domains", 1, 1), { delete_domains = true }))
      assert.are.equal(1, #p.deletes)
    end)

    it("names duplicate keys, in the desired list or on the server, before anything is sent", function()
      local r = cf.allow_policies
      local a = entry("allow_policies", 1)
      local b = entry("allow_policies", 1)
      local before = #emu.requests()
      local p, err = r:plan({ a, entry("allow_policies", 2), b })
      assert.is_nil(p)
      assert.are.equal("duplicate", err.rule)
      assert.are.equal("desired[3]", err.field)
      assert.truthy(tostring(err):find("as desired[1]", 1, true))
      assert.are.equal(before, #emu.requests())
      local seeded = emu.seed(ACCOUNT, { a, b }, "allow_policies")
      p, err = r:plan({ a })
      assert.is_nil(p)
      assert.truthy(tostring(err):find(seeded[1].id, 1, true))
      assert.truthy(tostring(err):find(seeded[2].id, 1, true))
    end)

    it("checks every desired entry against the description first, naming field and file line", function()
      local path = os.tmpname() .. ".csv"
      local f = assert(io.open(path, "w"))
      f:write("pattern,comments,nmae\np1.example.com,c,x\n")
      f:close()
      local p, err = cf.url_ignore_patterns:plan(assert(es.read_entries(path)))
      os.remove(path)
      assert.is_nil(p)
      assert.are.equal("desired[1].nmae", err.field)
      assert.truthy(tostring(err):find("is not a field of url_ignore_patterns (there are: comments, pattern)", 1, true))
      assert.truthy(tostring(err):find(path .. " line 2", 1, true))
      -- a create lacking a required field is refused at plan time
      p, err = cf.allow_policies:plan({ { pattern = "x", pattern_type = "EMAIL", is_regex = false } })
      assert.is_nil(p)
      assert.are.equal("required", err.rule)
      -- a key field missing
      p, err = cf.allow_policies:plan({ { pattern = "x", pattern_type = "EMAIL" } })
      assert.is_nil(p)
      assert.are.equal("desired[1].is_regex", err.field)
      assert.are.equal(0, count(emu, "POST"))
    end)

    it("leaves directory-synced impersonation entries alone, and lists them as skipped", function()
      emu.seed(ACCOUNT, {
        { name = "Synced", email = "synced@example.com", is_email_regex = false, provenance = "SNOOPY-OFFICE_365",
          directory_id = 7 },
        { name = "Hand", email = "hand@example.com", is_email_regex = false, provenance = "A1S_INTERNAL" },
      })
      local p = assert(cf.impersonation_registry:plan({
        { name = "Renamed", email = "synced@example.com", is_email_regex = false },
      }))
      assert.are.equal(0, #p.updates)
      assert.are.equal(1, #p.deletes)
      assert.are.equal("hand@example.com", p.deletes[1].entry.email)
      assert.are.equal(1, #p.skipped)
      assert.truthy(tostring(p):find("skip email=synced@example.com", 1, true))
      assert.is_truthy(assert(p:apply()))
      local state = emu.state(ACCOUNT)
      assert.are.equal(1, #state)
      assert.are.equal("Synced", state[1].name)
    end)
  end)

  describe("sends few requests", function()
    it("2,500 creates take 3 batch requests after a listing, and the listing 1,000 a page", function()
      local p = assert(cf.block_senders:plan(entries("block_senders", 1, 2500)))
      -- the listing that checks the creates' keys are still absent, then the batches
      assert.are.equal(4, p:requests())
      local seen = {}
      local summary = assert(p:apply({ progress = function(done, total) seen[#seen + 1] = done .. "/" .. total end }))
      -- the batches are in flight together: progress counts them as they end
      assert.are.equal(3, #seen)
      assert.are.equal("2500/2500", seen[3])
      assert.are.equal(4, summary.requests)
      assert.are.equal(3, count(emu, "POST", "/batch"))
      assert.are.equal(0, count(emu, "POST", "block_senders?"))
      assert.are.equal(2500, #emu.state(ACCOUNT, "block_senders"))
      local before = count(emu, "GET")
      assert.are.equal(0, assert(cf.block_senders:plan(entries("block_senders", 1, 2500))):changes())
      assert.are.equal(3, count(emu, "GET") - before)
    end)

    it("without a batch endpoint, one request per change", function()
      local p = assert(cf.impersonation_registry:plan(entries("impersonation_registry", 1, 4)))
      assert.are.equal(5, p:requests())
      assert.are.equal(5, assert(p:apply()).requests)
      assert.are.equal(4, count(emu, "POST"))
    end)

    it("sending domain restrictions: creates and updates one each, deletes in a batch", function()
      emu.seed(ACCOUNT, entries("sending_domain_restrictions", 1, 3), "sending_domain_restrictions")
      local p = assert(cf.sending_domain_restrictions:plan(entries("sending_domain_restrictions", 3, 4)))
      assert.are.equal(1, #p.creates)
      assert.are.equal(2, #p.deletes)
      assert.are.equal(3, p:requests())
      assert.are.equal(3, assert(p:apply()).requests)
      assert.are.equal(1, count(emu, "POST", "/batch"))
    end)
  end)

  describe("loses nothing on failure and converges", function()
    it("a batch that fails half-way: the error says what was done; plan and apply again finish it", function()
      -- one request at a time, so that what was sent before the failure is known
      local one = es.new({ api_token = "t", account_id = ACCOUNT, base_url = emu.base_url, max_retry_wait = 0.05,
                          concurrency = 1 })
      local desired = entries("allow_policies", 1, 2500)
      local p = assert(one.allow_policies:plan(desired))
      -- once the first batch is in, the second is applied and its answer lost
      local summary, err = p:apply({ progress = function(done)
        if done == 1000 then emu.fault({ method = "POST", path = "/batch", status = 502, after = true }) end
      end })
      assert.is_nil(summary)
      assert.are.same({ created = 1000, updated = 0, deleted = 0 }, err.applied)
      -- the second batch may have acted (a 502 after it did): in doubt, not "not done"
      assert.are.same({ creates = 1000, updates = 0, deletes = 0 }, err.in_doubt)
      assert.are.same({ creates = 500, updates = 0, deletes = 0 }, err.remaining)
      assert.truthy(tostring(err):find("1000 creates, 0 updates, 0 deletes in doubt", 1, true))
      assert.is_true(err.may_exist)
      assert.truthy(tostring(err):find("1000 created", 1, true))
      assert.truthy(tostring(err):find("plan and apply again to finish", 1, true))
      -- a create is never sent twice: two batches, not three
      assert.are.equal(2, count(emu, "POST", "/batch"))
      p = assert(one.allow_policies:plan(desired))
      assert.are.equal(500, #p.creates)
      assert.is_truthy(assert(p:apply()))
      local state = emu.state(ACCOUNT, "allow_policies")
      assert.are.equal(2500, #state)
      local seen = {}
      for _, e in ipairs(state) do
        assert.is_nil(seen[e.pattern])
        seen[e.pattern] = true
      end
      assert.are.equal(0, assert(one.allow_policies:plan(desired)):changes())
    end)

    it("one request per change: a lost connection stops it; a second run makes no duplicate", function()
      -- one request at a time, so that what was sent before the failure is known
      local one = es.new({ api_token = "t", account_id = ACCOUNT, base_url = emu.base_url, max_retry_wait = 0.05,
                          concurrency = 1 })
      local desired = entries("impersonation_registry", 1, 5)
      emu.faults({ { method = "POST", path = "impersonation_registry", close = true, times = 1 },
                   { method = "POST", path = "impersonation_registry", status = 500, after = true, times = 1 } })
      -- the first create's connection is cut before the API sees it
      local summary, err = assert(one.impersonation_registry:plan(desired)):apply()
      assert.is_nil(summary)
      assert.are.equal(0, err.applied.created)
      summary, err = assert(one.impersonation_registry:plan(desired)):apply()
      -- the first create is made, its answer lost: never sent again
      assert.is_nil(summary)
      assert.is_true(err.may_exist)
      assert.are.equal(1, #emu.state(ACCOUNT))
      summary = assert(assert(one.impersonation_registry:plan(desired)):apply())
      assert.are.equal(4, summary.created)
      assert.are.equal(5, #emu.state(ACCOUNT))
    end)

    it("a delete whose entry is already gone counts as done, one by one or in a batch", function()
      local seeded = emu.seed(ACCOUNT, entries("impersonation_registry", 1, 3))
      local p = assert(cf.impersonation_registry:plan(entries("impersonation_registry", 1, 1)))
      assert.is_truthy(cf.impersonation_registry:delete(seeded[2].id))
      local summary = assert(p:apply())
      assert.are.equal(2, summary.deleted)
      assert.are.equal(1, #emu.state(ACCOUNT))

      seeded = emu.seed(ACCOUNT, entries("trusted_domains", 1, 4), "trusted_domains")
      p = assert(cf.trusted_domains:plan(entries("trusted_domains", 1, 1)))
      assert.is_truthy(cf.trusted_domains:delete(seeded[3].id))
      summary = assert(p:apply())
      assert.are.equal(3, summary.deleted)
      assert.are.same({ "p1.example.com" }, keys_of(emu.state(ACCOUNT, "trusted_domains"), "pattern"))
    end)

    it("a plan is applied once", function()
      local p = assert(cf.url_ignore_patterns:plan(entries("url_ignore_patterns", 1, 1)))
      assert.is_truthy(assert(p:apply()))
      local summary, err = p:apply()
      assert.is_nil(summary)
      assert.are.equal("applied", err.rule)
    end)
  end)

  describe("takes only what it can check", function()
    it("a desired list that is not a list is refused, never read as an empty one", function()
      emu.seed(ACCOUNT, entries("url_ignore_patterns", 1, 3), "url_ignore_patterns")
      local r = cf.url_ignore_patterns
      local p, err = r:plan({ pattern = "p1.example.com" })
      assert.is_nil(p)
      assert.are.equal("desired", err.field)
      assert.truthy(tostring(err):find("must be a list of entries", 1, true))
      p, err = r:plan({ [1] = entry("url_ignore_patterns", 1), [3] = entry("url_ignore_patterns", 3) })
      assert.is_nil(p)
      assert.are.equal("desired", err.field)
    end)

    it("options of the wrong type are refused, naming the option", function()
      local r = cf.url_ignore_patterns
      local cases = {
        { { purge = "false" }, "purge" }, { { force = 1 }, "force" },
        { { thresholds = { min_existing = "10" } }, "thresholds.min_existing" },
        { { thresholds = { delete = 2 } }, "thresholds.delete" }, { { thresholds = { deletes = 0.1 } }, "thresholds.deletes" },
        { { key = { "id" } }, "key[1]" }, { { key = { "patern" } }, "key[1]" }, { { fields = { "nope" } }, "fields[1]" },
      }
      for _, case in ipairs(cases) do
        local p, err = r:plan({}, case[1])
        assert.is_nil(p)
        assert.are.equal(case[2], err.field)
      end
      assert.are.equal(0, count(emu, "GET"))
    end)

    it("fields the API makes or has retired are never compared: a listing written back plans no change", function()
      for _, name in ipairs(es.resources) do
        emu.seed(ACCOUNT, entries(name, 1, 2), name)
        local listed = assert(cf[name]:all())
        local p = assert(cf[name]:plan(listed, name == "domains" and { delete_domains = true } or nil))
        assert.are.equal(0, p:changes(), name .. ": " .. tostring(p))
      end
      local p = assert(cf.allow_policies:plan(assert(cf.allow_policies:all())))
      assert.truthy(tostring(p):find("ignored, as the API no longer takes them: is_recipient (retired: use "
        .. "is_exempt_recipient)", 1, true))
    end)

    it("a whole number and the same float make the same key (JSON files decode to floats)", function()
      emu.seed(ACCOUNT, { entry("domains", 1) }, "domains")
      local desired = entry("domains", 1)
      desired.lookback_hops = 1.0
      local p = assert(cf.domains:plan({ desired }, { key = { "domain", "lookback_hops" } }))
      assert.are.equal(0, p:changes())
    end)

    it("lists compare as sets of their items, whatever the items hold", function()
      emu.seed(ACCOUNT, { { domain = "d.example.com", exclude = { "a.example.com", "b.example.com" } } },
               "sending_domain_restrictions")
      local p = assert(cf.sending_domain_restrictions:plan({
        { domain = "d.example.com", exclude = { "a.example.com,string:b.example.com" } } }))
      assert.are.equal(1, #p.updates)
    end)

    it("a directory's entry in the desired list is never created", function()
      local p = assert(cf.impersonation_registry:plan({
        { name = "Synced", email = "s@example.com", is_email_regex = false, provenance = "SNOOPY-OFFICE_365",
          directory_id = 7 },
      }))
      assert.are.equal(0, #p.creates)
      assert.are.equal(1, #p.skipped)
      assert.truthy(p.skipped[1].reason:find("in the desired list: left to the directory", 1, true))
    end)

    it("reports progress after each request, with that request counted", function()
      local seen = {}
      assert(assert(cf.impersonation_registry:plan(entries("impersonation_registry", 1, 3))):apply({
        progress = function(done, total) seen[#seen + 1] = done .. "/" .. total end }))
      assert.are.same({ "1/3", "2/3", "3/3" }, seen)
    end)

    it("counts every request it sends, the listing after a batch's 404 too", function()
      local seeded = emu.seed(ACCOUNT, entries("url_ignore_patterns", 1, 3), "url_ignore_patterns")
      local p = assert(cf.url_ignore_patterns:plan({ entry("url_ignore_patterns", 1), entry("url_ignore_patterns", 9) }))
      assert.is_truthy(cf.url_ignore_patterns:delete(seeded[2].id))
      local before = #emu.requests()
      local summary = assert(p:apply())
      assert.are.equal(#emu.requests() - before, summary.requests)
      assert.are.equal(4, summary.requests)
      assert.are.same({ "p1.example.com", "p9.example.com" }, keys_of(emu.state(ACCOUNT, "url_ignore_patterns"),
                                                                          "pattern"))
    end)

    it("never lets a control sequence from the server reach the plan's text", function()
      emu.seed(ACCOUNT, { { domain = "d.example.com", exclude = { "\27[31mred" } } }, "sending_domain_restrictions")
      local p = assert(cf.sending_domain_restrictions:plan({ { domain = "d.example.com", exclude = { "a" } } }))
      local text = tostring(p)
      assert.is_nil(text:find("\27", 1, true))
      -- escaped: as \27 (Lua's %q) or \x1b (Lua 5.1's %q leaves it, errors.printable escapes it)
      assert.truthy(text:find('"\\27[31mred"', 1, true) or text:find('"\\x1b[31mred"', 1, true), text)
    end)
  end)

  describe("what a second review proved", function()
    it("refuses a list field as a key, which would match nothing and replace everything", function()
      local p, err = cf.content_policies:plan({}, { key = { "targets" } })
      assert.is_nil(p)
      assert.are.equal("key[1]", err.field)
      assert.truthy(tostring(err):find("targets is a list", 1, true))
    end)

    it("checks apply's own force and thresholds, and lets them win over the plan's", function()
      emu.seed(ACCOUNT, entries("url_ignore_patterns", 1, 10), "url_ignore_patterns")
      local p = assert(cf.url_ignore_patterns:plan(entries("url_ignore_patterns", 1, 1), { thresholds = {} }))
      for _, case in ipairs({ { { force = "no" }, "force" }, { { thresholds = 5 }, "thresholds" },
                              { { thresholds = { delete = {} } }, "thresholds.delete" } }) do
        local summary, err = p:apply(case[1])
        assert.is_nil(summary)
        assert.are.equal(case[2], err.field)
      end
      assert.are.equal(10, #emu.state(ACCOUNT, "url_ignore_patterns"))
      local summary = assert(p:apply({ thresholds = { delete = 1 } }))
      assert.are.equal(9, summary.deleted)
    end)

    it("a directory's entry in the desired list neither changes nor keeps a hand-made entry of its key", function()
      emu.seed(ACCOUNT, { { name = "Hand", email = "u@example.com", is_email_regex = false, provenance = "A1S_INTERNAL" } })
      local p = assert(cf.impersonation_registry:plan({
        { name = "Synced", email = "u@example.com", is_email_regex = false, provenance = "SNOOPY-OFFICE_365",
          directory_id = 7 } }))
      assert.are.equal(0, #p.updates)
      assert.are.equal(1, #p.deletes)
      assert.are.equal(1, #p.skipped)
      -- a listing holding a hand-made and a directory entry of one key reads back as no change
      emu.reset()
      emu.seed(ACCOUNT, {
        { name = "Hand", email = "u@example.com", is_email_regex = false, provenance = "A1S_INTERNAL" },
        { name = "Synced", email = "u@example.com", is_email_regex = false, provenance = "SNOOPY-OFFICE_365",
          directory_id = 7 } })
      assert.are.equal(0, assert(cf.impersonation_registry:plan(assert(cf.impersonation_registry:all()))):changes())
    end)

    it("refuses opts.fields naming a field it would never compare, or none", function()
      for _, fields in ipairs({ { "is_spoof" }, { "created_at" }, {} }) do
        local p, err = cf.allow_policies:plan({}, { fields = fields })
        assert.is_nil(p)
        assert.truthy(err.field == "fields" or err.field == "fields[1]", tostring(err))
      end
      local p, err = cf.allow_policies:plan({ { pattern = "x", pattern_type = "EMAIL", is_regex = false,
                                                 is_spoof = "maybe" } })
      assert.is_nil(p)
      assert.are.equal("desired[1].is_spoof", err.field)
    end)
  end)

  describe("as JSON, keys are objects of the key's fields", function()
    local plan_text = require("cloudflare.email_security.sync.plan_text")
    local cjson = require("cjson")
    local function entry_node(r) return require("cloudflare.email_security.resource").internals(r).entry end
    local function sender(pattern, extra)
      local e = { pattern_type = "EMAIL", pattern = pattern, is_regex = false }
      for k, v in pairs(extra or {}) do e[k] = v end
      return e
    end
    local function key(pattern) return { pattern_type = "EMAIL", pattern = pattern, is_regex = false } end

    it("in every change of a plan, typed as the fields are, while the text a person reads stays", function()
      emu.seed(ACCOUNT, { sender("old@example.com", { comments = "a" }), sender("gone@example.com") },
               "block_senders")
      local desired = { sender("old@example.com", { comments = "b" }), sender("new@example.com") }
      local p = assert(cf.block_senders:plan(desired))
      local v = cjson.decode(plan_text.json(p, entry_node(cf.block_senders)))
      assert.are.same(key("new@example.com"), v.creates[1].key)
      assert.are.same(key("old@example.com"), v.updates[1].key)
      assert.are.same(key("gone@example.com"), v.deletes[1].key)
      -- false, not "false": written by the field's node
      assert.truthy(plan_text.json(p, entry_node(cf.block_senders)):find(
        '"key":{"pattern_type":"EMAIL","pattern":"gone@example.com","is_regex":false}', 1, true))
      assert.truthy(tostring(p):find("- block_senders delete pattern_type=EMAIL pattern=gone@example.com "
        .. "is_regex=false (", 1, true), tostring(p))
      -- what purge = false keeps
      p = assert(cf.block_senders:plan(desired, { purge = false }))
      v = cjson.decode(plan_text.json(p, entry_node(cf.block_senders)))
      assert.are.same({ key = key("gone@example.com"), id = p.kept[1].id, reason = "purge off" }, v.kept[1])
    end)

    it("a skipped entry's too: a directory's, and one the key cannot name, with the fields it has", function()
      emu.seed(ACCOUNT, { { name = "Synced", email = "Synced@example.com", is_email_regex = false,
                            directory_id = 7 } })
      local p = assert(cf.impersonation_registry:plan({}))
      local v = cjson.decode(plan_text.json(p, entry_node(cf.impersonation_registry)))
      assert.are.same({ email = "Synced@example.com", is_email_regex = false }, v.skipped[1].key)
      emu.fault({ method = "GET", path = "block_senders", status = 200,
        headers = { ["Content-Type"] = "application/json" },
        body = '{"success":true,"errors":[],"messages":[],"result":[{"id":"nopattern-1","pattern_type":"EMAIL",'
          .. '"is_regex":false}],"result_info":{"page":1,"per_page":1000,"count":1,"total_count":1}}' })
      p = assert(cf.block_senders:plan({}))
      assert.truthy(tostring(p):find("skip (no pattern) (nopattern-1): has no pattern", 1, true), tostring(p))
      v = cjson.decode(plan_text.json(p, entry_node(cf.block_senders)))
      assert.are.same({ key = { pattern_type = "EMAIL", is_regex = false }, id = "nopattern-1",
                        reason = "has no pattern" }, v.skipped[1])
    end)

    it("apply's result: each change done, a create with its new id, in batches or one by one", function()
      for _, name in ipairs({ "block_senders", "url_ignore_patterns", "impersonation_registry" }) do
        local r = cf[name]
        emu.seed(ACCOUNT, { entry(name, 1), entry(name, 2) }, name)
        local desired = { entry(name, 2), entry(name, 3) }
        for k, value in pairs(CHANGE[name]) do desired[1][k] = value end
        local p = assert(r:plan(desired))
        local summary = assert(p:apply())
        local v = cjson.decode(plan_text.apply_json(p, summary, entry_node(r)))
        assert.are.equal(cjson.null, v.error)
        assert.are.same({ created = 1, updated = 1, deleted = 1, unchanged = 0, skipped = 0 }, v.counts)
        local made
        for _, e in ipairs(emu.state(ACCOUNT, name)) do
          if ident(e) == ident(desired[2]) then made = e end
        end
        assert.are.same({ { key = p.creates[1].key_values, id = made.id } }, v.created, name)
        assert.are.same({ { key = p.updates[1].key_values, id = p.updates[1].id } }, v.updated)
        assert.are.same({ { key = p.deletes[1].key_values, id = p.deletes[1].id } }, v.deleted)
        assert.are.same({ creates = {}, updates = {}, deletes = {} }, v.remaining)
        assert.are.same({ creates = {}, updates = {}, deletes = {} }, v.in_doubt)
        assert.are.equal(1, #v.plan.creates)
        emu.reset()
      end
    end)

    it("apply's result: two creates of one key, each with the id of the entry it made, none twice", function()
      -- plan refuses a key twice in the desired list, and a saved plan read
      -- back does too; a plan changed in Lua after it was made may hold one
      for _, name in ipairs({ "block_senders", "impersonation_registry" }) do
        local r = cf[name]
        local desired = { entry(name, 1), entry(name, 2) }
        desired[1].comments, desired[2].comments = "first", "other"
        local p = assert(r:plan(desired))
        local again = {}
        for k, value in pairs(p.creates[1].fields) do again[k] = value end
        again.comments = "second"
        p.creates[3] = { key = p.creates[1].key, key_values = p.creates[1].key_values, fields = again }
        local summary = assert(p:apply())
        assert.are.equal(3, summary.created)
        local v = cjson.decode(plan_text.apply_json(p, summary, entry_node(r)))
        local comments_of, seen = {}, {}
        for _, e in ipairs(emu.state(ACCOUNT, name)) do comments_of[e.id] = e.comments end
        assert.are.equal(3, #v.created, name)
        for i, c in ipairs(v.created) do
          assert.are.same(p.creates[i].key_values, c.key)
          assert.is_nil(seen[c.id], name .. ": " .. tostring(c.id) .. " given twice")
          seen[c.id] = true
          assert.are.equal(p.creates[i].fields.comments, comments_of[c.id], name .. ": created[" .. i .. "]")
        end
        emu.reset()
      end
    end)

    it("apply's result after a failure half-way: done, in doubt and not done, change by change", function()
      local one = es.new({ api_token = "t", account_id = ACCOUNT, base_url = emu.base_url, max_retry_wait = 0.05,
                          concurrency = 1 })
      local r = one.impersonation_registry
      local p = assert(r:plan(entries("impersonation_registry", 1, 4)))
      -- the second create acts, and its answer is lost: in doubt; the two
      -- after it are never sent
      local summary, err = p:apply({ progress = function(done)
        if done == 1 then emu.fault({ method = "POST", path = "impersonation_registry", status = 500, after = true }) end
      end })
      one:close()
      assert.is_nil(summary)
      local v = cjson.decode(plan_text.apply_json(p, err, entry_node(r)))
      assert.are.same({ created = 1, updated = 0, deleted = 0, unchanged = 0, skipped = 0 }, v.counts)
      assert.are.same({ email = "user1@example.com", is_email_regex = false }, v.created[1].key)
      assert.are.equal(emu.state(ACCOUNT)[1].id, v.created[1].id)
      assert.are.same({ { key = p.creates[2].key_values, id = cjson.null } }, v.in_doubt.creates)
      assert.are.same({ { key = p.creates[3].key_values, id = cjson.null },
                        { key = p.creates[4].key_values, id = cjson.null } }, v.remaining.creates)
      assert.are.equal(tostring(err), v.error.message)
      assert.are.equal(500, v.error.status)
      -- the same facts as the error's counts
      assert.are.same({ created = 1, updated = 0, deleted = 0 }, err.applied)
      assert.are.same({ creates = 1, updates = 0, deletes = 0 }, err.in_doubt)
      assert.are.same({ creates = 2, updates = 0, deletes = 0 }, err.remaining)
    end)

    it("apply's result when it is refused before anything is sent: everything not done, and why", function()
      local list = {}
      for i = 1, 10 do list[i] = entry("url_ignore_patterns", i) end
      emu.seed(ACCOUNT, list, "url_ignore_patterns")
      local p = assert(cf.url_ignore_patterns:plan({}))
      local summary, err = p:apply()
      assert.is_nil(summary)
      local v = cjson.decode(plan_text.apply_json(p, err, entry_node(cf.url_ignore_patterns)))
      assert.are.same({ message = tostring(err), kind = "invalid", rule = "threshold", status = cjson.null }, v.error)
      assert.are.equal(0, v.counts.deleted)
      assert.are.equal(10, #v.remaining.deletes)
      assert.are.same({}, v.deleted)
      -- a message of the tool's, and no apply at all (nothing to do)
      v = cjson.decode(plan_text.apply_json(p, "not applied: the answer was not yes", entry_node(cf.url_ignore_patterns)))
      assert.are.same({ message = "not applied: the answer was not yes", kind = cjson.null, rule = cjson.null,
                        status = cjson.null }, v.error)
      p = assert(cf.url_ignore_patterns:plan(list))
      v = cjson.decode(plan_text.apply_json(p, nil, entry_node(cf.url_ignore_patterns)))
      assert.are.equal(cjson.null, v.error)
      assert.are.same({ created = 0, updated = 0, deleted = 0, unchanged = 10, skipped = 0 }, v.counts)
    end)

    it("a batch's delete whose entry went first is listed as deleted", function()
      local seeded = emu.seed(ACCOUNT, entries("trusted_domains", 1, 3), "trusted_domains")
      local p = assert(cf.trusted_domains:plan(entries("trusted_domains", 1, 1)))
      assert.is_truthy(cf.trusted_domains:delete(seeded[3].id))
      local summary = assert(p:apply())
      assert.are.equal(2, summary.deleted)
      local v = cjson.decode(plan_text.apply_json(p, summary, entry_node(cf.trusted_domains)))
      local ids = {}
      for i, d in ipairs(v.deleted) do ids[i] = d.id end
      table.sort(ids)
      local want = { seeded[2].id, seeded[3].id }
      table.sort(want)
      assert.are.same(want, ids)
    end)
  end)
end)
