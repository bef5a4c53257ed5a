-- A saved plan's keys, read back by plan.restore (sync/plan.lua): since
-- version 2 each change's key is an object of the key's fields, checked
-- field by field; version 1's text keys ("pattern_type=EMAIL pattern=x
-- is_regex=false") are still read, back into typed fields. No request is
-- sent: restore reads and checks only.
local es = require("cloudflare.email_security")
local plan = require("cloudflare.email_security.sync.plan")
local plan_text = require("cloudflare.email_security.sync.plan_text")
local resource_internals = require("cloudflare.email_security.resource").internals
local cjson = require("cjson")

local A = "023e105f4ecef8ad9ca31a8372d0c353"
local ID = "f174e90a-fafe-4643-bbbc-4a0ed4fc8415"
local ID2 = "0b7c3f5e-2d1a-4c8e-9f60-7a1d2e3b4c5d"
local KEY = { "pattern_type", "pattern", "is_regex" }

local function key(pattern) return { pattern_type = "EMAIL", pattern = pattern, is_regex = false } end

-- One resource's part of a saved plan (folder_plan's form), block_senders'.
local function saved(keys_of)
  keys_of = keys_of or {}
  return {
    key = KEY, existing = 2, listed = 3,
    plan = {
      creates = { { key = keys_of.create or key("new@example.com"),
                    fields = { pattern_type = "EMAIL", pattern = "new@example.com", is_regex = false } } },
      updates = { { key = keys_of.update or key("old@example.com"), id = ID,
                    changes = { { field = "comments", old = "a", new = "b" } } } },
      deletes = { { key = keys_of.delete or key("gone@example.com"), id = ID2 } },
      skipped = { { key = keys_of.skipped or { pattern_type = "EMAIL", is_regex = false }, id = ID,
                    reason = "has no pattern" } },
      kept = {},
      unchanged = 0,
      ignored = {},
    },
  }
end

describe("a saved plan's keys", function()
  local cf, r

  setup(function()
    cf = es.new({ api_token = "t", account_id = A, base_url = "http://127.0.0.1:9/client/v4" })
    r = cf.block_senders
  end)
  teardown(function() cf:close() end)

  it("are objects of the key's fields: read back as the text a person reads and as typed fields", function()
    local p = assert(plan.restore(r, saved()))
    assert.are.equal("pattern_type=EMAIL pattern=new@example.com is_regex=false", p.creates[1].key)
    assert.are.same(key("new@example.com"), p.creates[1].key_values)
    assert.are.equal("pattern_type=EMAIL pattern=old@example.com is_regex=false", p.updates[1].key)
    assert.are.equal("pattern_type=EMAIL pattern=gone@example.com is_regex=false", p.deletes[1].key)
    -- an entry the key cannot name keeps the fields it had, and its text says what it lacks
    assert.are.equal("(no pattern)", p.skipped[1].key)
    assert.are.same({ pattern_type = "EMAIL", is_regex = false }, p.skipped[1].key_values)
    -- and written again as they were read
    local entry = resource_internals(r).entry
    local again = cjson.decode(plan_text.json(p, entry))
    assert.are.same(key("new@example.com"), again.creates[1].key)
    assert.are.same(key("gone@example.com"), again.deletes[1].key)
    assert.are.same({ pattern_type = "EMAIL", is_regex = false }, again.skipped[1].key)
  end)

  it("refuses a key that is not exactly the key's fields, each of its type, saying where", function()
    local cases = {
      { { create = "pattern_type=EMAIL pattern=new@example.com is_regex=false" },
        "creates[1].key must be an object of the key's fields (pattern_type, pattern, is_regex)" },
      { { update = { pattern_type = "EMAIL", pattern = "old@example.com" } },
        "updates[1].key lacks is_regex (the key is pattern_type, pattern, is_regex)" },
      { { delete = { pattern_type = "EMAIL", pattern = "gone@example.com", is_regex = "false" } },
        "deletes[1].key.is_regex must be true or false" },
      { { delete = { pattern_type = "EMAIL", pattern = 7, is_regex = false } },
        "deletes[1].key.pattern must be text" },
      { { update = { pattern_type = "EMAIL", pattern = "old@example.com", is_regex = false, comments = "x" } },
        "updates[1].key.comments is not a field of the key (pattern_type, pattern, is_regex)" },
      { { delete = { "EMAIL", "gone@example.com", false } },
        "deletes[1].key must be an object of the key's fields" },
      { { skipped = { pattern_type = "EMAIL", is_regex = false, name = "x" } },
        "skipped[1].key.name is not a field of the key" },
      { { skipped = { pattern_type = "EMAIL", is_regex = cjson.null } },
        "skipped[1].key.is_regex must be true or false" },
      -- what is shown before apply is what the create sends
      { { create = key("other@example.com") }, "creates[1].key.pattern is not the pattern its fields create" },
    }
    for _, case in ipairs(cases) do
      local p, why = plan.restore(r, saved(case[1]))
      assert.is_nil(p, case[2])
      assert.truthy(why:find(case[2], 1, true), why)
    end
  end)

  it("refuses a key that names a field twice, or one that holds no single value", function()
    local s = saved()
    s.key = { "pattern", "pattern" }
    local p, why = plan.restore(r, s)
    assert.is_nil(p)
    assert.truthy(why:find("the key names pattern twice", 1, true), why)
    -- a list (sending domain restrictions' exclude) is no key's field
    s = { key = { "exclude" }, existing = 0, listed = 0, plan = { unchanged = 0 } }
    p, why = plan.restore(cf.sending_domain_restrictions, s)
    assert.is_nil(p)
    assert.truthy(why:find("the key names exclude, which is no single value", 1, true), why)
  end)

  -- JSON's {"a": {}} where a list belongs would read as an empty list
  -- (ipairs sees nothing in it): what it holds shown nowhere, sent never
  it("refuses an object where a list belongs, and a change with no new value", function()
    local cases = {
      { function(s) s.plan.creates = { a = {} } end, "creates must be a list" },
      { function(s) s.plan.deletes = { a = { key = key("x@example.com"), id = ID2 } } end, "deletes must be a list" },
      { function(s) s.plan.ignored = { a = 1 } end, "ignored must be a list" },
      { function(s) s.plan.skipped = { x = {} } end, "skipped must be a list" },
      { function(s) s.plan.updates[1].changes = { a = { field = "comments", new = "b" } } end,
        "updates[1].changes must be a list" },
      -- shown as "-> (absent)", and sent as no change of the field
      { function(s) s.plan.updates[1].changes[1].new = nil end, "updates[1].changes[1].new is missing" },
    }
    for _, case in ipairs(cases) do
      local s = saved()
      case[1](s)
      local p, why = plan.restore(r, s)
      assert.is_nil(p, case[2])
      assert.are.equal(case[2], why)
    end
    -- null is a value to send, and an empty list (or object) is no change
    local s = saved()
    s.plan.updates[1].changes[1].new = cjson.null
    s.plan.kept = {}
    assert.are.equal(cjson.null, assert(plan.restore(r, s)).updates[1].fields.comments)
  end)

  -- The listing a saved plan is applied against, walked again: each
  -- update and delete must be the entry its id names, as the plan shows
  -- it; and the count the thresholds are taken of is the listing's.
  describe("checked against the listing", function()
    local function listed(pattern, id, comments, extra)
      local e = { pattern_type = "EMAIL", pattern = pattern, is_regex = false, id = id, comments = comments }
      for k, v in pairs(extra or {}) do e[k] = v end
      return e
    end
    local function check(p, list)
      local c = p:saved_check()
      for _, e in ipairs(list) do c.add(e) end
      return c.result()
    end
    local OTHER = "5a4f3e2d-1c0b-4a9a-8b7c-6d5e4f3a2b1c"

    it("counts the entries the key names, and finds nothing wrong in the plan as made", function()
      local p = assert(plan.restore(r, saved()))
      local list = { listed("old@example.com", ID, "a"), listed("gone@example.com", ID2),
                     -- no pattern: skipped, not counted
                     { pattern_type = "EMAIL", is_regex = false, id = OTHER } }
      local existing, why = check(p, list)
      assert.is_nil(why)
      assert.are.equal(2, existing)
      -- the ids in either case, an old null as the field absent
      local s = saved()
      s.plan.updates[1].id = ID:upper()
      s.plan.updates[1].changes[1].old = cjson.null
      list[1].comments = nil
      assert.is_nil(select(2, check(assert(plan.restore(r, s)), list)))
    end)

    it("says which change names an entry that is not listed, of another key, or holds another old value", function()
      local p = assert(plan.restore(r, saved()))
      local cases = {
        { { listed("old@example.com", ID, "a") },
          "deletes[1]: entry " .. ID2 .. " is not listed (its key says pattern_type=EMAIL pattern=gone@example.com "
            .. "is_regex=false)" },
        { { listed("old@example.com", ID, "a"), listed("other@example.com", ID2) },
          "deletes[1]: its key says pattern=gone@example.com but entry " .. ID2 .. " has pattern=other@example.com" },
        { { listed("old@example.com", ID, "a"), listed("gone@example.com", ID2, nil, { is_regex = true }) },
          "deletes[1]: its key says is_regex=false but entry " .. ID2 .. " has is_regex=true" },
        { { listed("old@example.com", ID, "a"), listed(nil, ID2) },
          "deletes[1]: its key says pattern=gone@example.com but entry " .. ID2 .. " has no pattern" },
        -- patterns never fold: another case is another key
        { { listed("OLD@example.com", ID, "a"), listed("gone@example.com", ID2) },
          "updates[1]: its key says pattern=old@example.com but entry " .. ID .. " has pattern=OLD@example.com" },
        { { listed("old@example.com", ID, "z"), listed("gone@example.com", ID2) },
          'updates[1].changes[1]: it says comments was "a" but entry ' .. ID .. ' has "z"' },
        { { listed("old@example.com", ID), listed("gone@example.com", ID2) },
          'updates[1].changes[1]: it says comments was "a" but entry ' .. ID .. " has (absent)" },
      }
      for _, case in ipairs(cases) do
        local _, why = check(p, case[1])
        assert.are.equal(case[2], why)
      end
    end)

    it("compares keys as plan matches them: folded where the key folds", function()
      local s = { key = { "domain" }, existing = 1, listed = 1,
                  plan = { deletes = { { key = { domain = "Example.COM" }, id = ID2 } }, unchanged = 0 } }
      local p = assert(plan.restore(cf.sending_domain_restrictions, s))
      local existing, why = check(p, { { domain = "example.com", id = ID2 } })
      assert.is_nil(why)
      assert.are.equal(1, existing)
      why = select(2, check(p, { { domain = "example.org", id = ID2 } }))
      assert.are.equal("deletes[1]: its key says domain=Example.COM but entry " .. ID2 .. " has domain=example.org",
                       why)
    end)

    it("never counts nor changes an entry a directory keeps", function()
      local s = { key = { "email", "is_email_regex" }, existing = 0, listed = 2,
                  plan = { deletes = { { key = { email = "s@example.com", is_email_regex = false }, id = ID2 } },
                           unchanged = 0 } }
      local p = assert(plan.restore(cf.impersonation_registry, s))
      local existing, why = check(p, { { email = "s@example.com", is_email_regex = false, id = ID2, directory_id = 4 },
                                       { email = "t@example.com", is_email_regex = false, id = ID } })
      assert.are.equal(1, existing)
      assert.are.equal("deletes[1]: entry " .. ID2 .. " is directory-synced: a plan leaves it alone", why)
    end)
  end)

  describe("each change once", function()
    local function refused(s, want, resource, text_keys)
      local p, why = plan.restore(resource or r, s, text_keys)
      assert.is_nil(p, want)
      assert.are.equal(want, why)
    end

    it("refuses a key created twice, compared as apply matches keys (folded where the key folds)", function()
      local s = saved()
      s.plan.creates[2] = s.plan.creates[1]
      refused(s, "creates[2].key: the same key as creates[1] (pattern_type=EMAIL pattern=new@example.com "
        .. "is_regex=false): a plan creates each key once")
      -- saved by version 1 too
      s.plan.creates[1].key = "pattern_type=EMAIL pattern=new@example.com is_regex=false"
      s.plan.updates[1].key = "pattern_type=EMAIL pattern=old@example.com is_regex=false"
      s.plan.deletes[1].key = "pattern_type=EMAIL pattern=gone@example.com is_regex=false"
      s.plan.skipped = {}
      refused(s, "creates[2].key: the same key as creates[1] (pattern_type=EMAIL pattern=new@example.com "
        .. "is_regex=false): a plan creates each key once", r, true)
      -- a domain's case is no part of its key
      local function domain(d) return { key = { domain = d }, fields = { domain = d, exclude = {} } } end
      s = { key = { "domain" }, existing = 0, listed = 0,
            plan = { creates = { domain("example.com"), domain("other.example"), domain("Example.COM") },
                     unchanged = 0 } }
      refused(s, "creates[3].key: the same key as creates[1] (domain=Example.COM): a plan creates each key once",
              cf.sending_domain_restrictions)
      -- keys that differ are kept
      s.plan.creates[3] = domain("third.example")
      assert.are.equal(3, #assert(plan.restore(cf.sending_domain_restrictions, s)).creates)
    end)

    it("refuses an entry updated twice, updated and deleted, or deleted twice", function()
      local function update(id) return { key = key("old@example.com"), id = id,
                                         changes = { { field = "comments", old = "a", new = "b" } } } end
      local s = saved()
      s.plan.updates[2] = update(ID)
      refused(s, "updates[2].id: the same id as updates[1] (" .. ID .. "): a plan updates or deletes an entry once")
      s = saved()
      s.plan.deletes[1].id = ID
      refused(s, "deletes[1].id: the same id as updates[1] (" .. ID .. "): a plan updates or deletes an entry once")
      s = saved()
      s.plan.deletes[2] = { key = key("gone@example.com"), id = ID2 }
      refused(s, "deletes[2].id: the same id as deletes[1] (" .. ID2 .. "): a plan updates or deletes an entry "
        .. "once")
      -- a uuid's hex digits in either case are one id
      s = saved()
      s.plan.deletes[1].id = ID:upper()
      refused(s, "deletes[1].id: the same id as updates[1] (" .. ID:upper() .. "): a plan updates or deletes an "
        .. "entry once")
    end)

    it("refuses an update that changes one field twice", function()
      local s = saved()
      local changes = s.plan.updates[1].changes
      changes[2] = { field = "is_regex", old = false, new = true }
      changes[3] = { field = "comments", old = "a", new = "c" }
      refused(s, "updates[1].changes[3].field: the same field as updates[1].changes[1] (comments): an update "
        .. "changes each field once")
    end)
  end)

  describe("saved by version 1 (text keys)", function()
    local function v1(keys_of)
      local s = saved()
      for kind, text in pairs(keys_of) do
        local item = s.plan[kind == "skipped" and "skipped" or kind .. "s"][1]
        item.key = text
      end
      return s
    end
    local TEXT = {
      create = "pattern_type=EMAIL pattern=new@example.com is_regex=false",
      update = "pattern_type=EMAIL pattern=old x@example.com is_regex=false",
      delete = "pattern_type=EMAIL pattern=gone@example.com is_regex=true",
      skipped = "(no pattern)",
    }

    it("are read back into typed fields, the text kept as it was", function()
      local p = assert(plan.restore(r, v1(TEXT), true))
      assert.are.equal(TEXT.update, p.updates[1].key)
      assert.are.same({ pattern_type = "EMAIL", pattern = "old x@example.com", is_regex = false },
                      p.updates[1].key_values)
      assert.are.same({ pattern_type = "EMAIL", pattern = "gone@example.com", is_regex = true },
                      p.deletes[1].key_values)
      -- a skipped entry is never sent: its text stays, with no fields
      assert.are.equal("(no pattern)", p.skipped[1].key)
      assert.are.same({}, p.skipped[1].key_values)
      -- and the object form is not taken for version 1's
      local _, why = plan.restore(r, saved(), true)
      assert.truthy(why:find("creates[1].key must be text", 1, true), why)
    end)

    it("refuses a text that does not split into the key's fields, or splits more than one way", function()
      local cases = {
        { { delete = "pattern=gone@example.com" }, "deletes[1].key is not pattern_type=... pattern=... is_regex=..." },
        { { delete = "pattern_type=EMAIL pattern=gone@example.com is_regex=maybe" },
          "deletes[1].key.is_regex must be true or false (a plan saved by version 1): plan again" },
        { { update = "pattern_type=EMAIL pattern=a is_regex=false is_regex=false" },
          "updates[1].key can be read more than one way" },
      }
      for _, case in ipairs(cases) do
        local keys_of = {}
        for k, v in pairs(TEXT) do keys_of[k] = v end
        for k, v in pairs(case[1]) do keys_of[k] = v end
        local p, why = plan.restore(r, v1(keys_of), true)
        assert.is_nil(p, case[2])
        assert.truthy(why:find(case[2], 1, true), why)
      end
    end)
  end)
end)
