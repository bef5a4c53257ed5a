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
