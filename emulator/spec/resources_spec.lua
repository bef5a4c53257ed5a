-- The emulator's eight resources, over real HTTP on loopback: for each, a
-- round trip, paging, a refused body, and its batch endpoint; then what
-- only domains have (PUT, verification, the collection DELETE). The
-- bodies here are written by hand, not made from the descriptions the
-- emulator reads, so that a mistake there shows up as a failure here.
local socket = require("socket")
local cjson = require("cjson")
local emulator_process = require("emulator.process")

local ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"
local UUID_V4 = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"
local STAMP = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%d%d%d%dZ$"
local UNKNOWN_ID = "f174e90a-fafe-4643-bbbc-4a0ed4fc8415"

local function collection(resource, acct)
  return "/client/v4/accounts/" .. (acct or ACCOUNT) .. "/email-security/settings/" .. resource
end
local function item(resource, id) return collection(resource) .. "/" .. id end

local function url_encode(s)
  return (s:gsub("[^%w%-_%.~]", function(c) return ("%%%02X"):format(c:byte()) end))
end

---------------------------------------------------------------------------
-- A raw HTTP/1.1 client: one request per connection, Content-Length bodies
---------------------------------------------------------------------------

local function call(emu, method, path, body)
  local c = assert(socket.connect("127.0.0.1", emu.port))
  c:settimeout(5)
  local lines = { method .. " " .. path .. " HTTP/1.1", "Host: 127.0.0.1", "Connection: close",
                  "Authorization: Bearer " .. emu.token }
  if body then lines[#lines + 1] = "Content-Length: " .. #body end
  assert(c:send(table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or "")))
  local line = assert(c:receive("*l"))
  local res = { status = tonumber(line:match("^HTTP/1%.1 (%d%d%d) ")), headers = {} }
  while true do
    local h = assert(c:receive("*l"))
    if h == "" then break end
    local k, v = h:match("^([^:]+):%s*(.*)$")
    res.headers[k:lower()] = v
  end
  local length = tonumber(res.headers["content-length"] or "0")
  res.body = length > 0 and assert(c:receive(length)) or ""
  c:close()
  local ok, value = pcall(cjson.decode, res.body)
  if ok then res.json = value end
  return res
end

local function json_call(emu, method, path, value)
  return call(emu, method, path, type(value) == "string" and value or cjson.encode(value))
end

local function assert_ok(res, status)
  assert.are.equal(status or 200, res.status, res.body)
  assert.is_true(res.json.success)
  assert.are.same({}, res.json.errors)
  assert.are.same({}, res.json.messages)
  return res.json.result
end

local function assert_error(res, status, code, message)
  assert.are.equal(status, res.status, res.body)
  assert.is_false(res.json.success)
  assert.are.equal(cjson.null, res.json.result)
  assert.are.equal(code, res.json.errors[1].code)
  if message then assert.are.equal(message, res.json.errors[1].message) end
end

local function ids_of(list)
  local out = {}
  for i, e in ipairs(list) do out[i] = e.id end
  return out
end

---------------------------------------------------------------------------
-- Per resource: a valid create body (`n` makes it distinct), the string
-- field that tells entries apart, a PUT item for its batch, one refused
-- create and the 404 message. `parts`: what its batch body holds.
---------------------------------------------------------------------------

local ALL_PARTS = { "posts", "patches", "puts", "deletes" }

local RESOURCES = {
  allow_policies = {
    key = "pattern", noun = "Allow policy", parts = ALL_PARTS,
    create = function(n)
      return { pattern = n .. "@example.com", pattern_type = "EMAIL", is_regex = false, is_exempt_recipient = false,
               is_trusted_sender = true, is_acceptable_sender = false, verify_sender = true }
    end,
    refused = { { pattern = "a@example.com", pattern_type = "PHONE", is_regex = false, is_exempt_recipient = false,
                  is_trusted_sender = true, is_acceptable_sender = false, verify_sender = true },
                "pattern_type: must be one of EMAIL, DOMAIN, IP, UNKNOWN" },
  },
  block_senders = {
    key = "pattern", noun = "Block sender", parts = ALL_PARTS,
    create = function(n) return { pattern = n .. "@spam.example", pattern_type = "EMAIL", is_regex = false } end,
    refused = { { pattern = "x@spam.example", pattern_type = "EMAIL", is_regex = "no" }, "is_regex: must be a boolean" },
  },
  content_policies = {
    key = "name", noun = "Content policy", parts = ALL_PARTS,
    create = function(n) return { name = "policy " .. n, enabled = true, pattern = "invoice", targets = { "SUBJECT" } } end,
    refused = { { name = "p", enabled = true, pattern = "x", targets = { "SUBJECT", "HEADER" } },
                "targets[2]: must be one of SUBJECT, BODY" },
  },
  domains = {
    key = "domain", noun = "Domain", parts = ALL_PARTS,
    create = function(n)
      return { domain = n .. ".example.com", allowed_delivery_modes = { "API" }, ip_restrictions = { "192.0.2.0/24" },
               drop_dispositions = { "SPAM" }, regions = { "GLOBAL" } }
    end,
    -- a PUT of a domain cannot change its name
    put = function(id)
      return { id = id, allowed_delivery_modes = { "BCC" }, lookback_hops = 3, ip_restrictions = { "198.51.100.0/24" },
               drop_dispositions = { "BULK" }, regions = { "US" } }
    end,
    refused = { { domain = "x.example.com", allowed_delivery_modes = { "API" }, ip_restrictions = { "192.0.2.0/24" },
                  drop_dispositions = { "SPAM" }, regions = { "GLOBAL" }, lookback_hops = 21 },
                "lookback_hops: must be at most 20" },
  },
  impersonation_registry = {
    key = "name", noun = "Impersonation registry entry",
    create = function(n) return { name = "Person " .. n, email = n .. "@example.com", is_email_regex = false } end,
    refused = { { name = 5, email = "a@example.com", is_email_regex = false }, "name: must be a string" },
  },
  sending_domain_restrictions = {
    key = "domain", noun = "Sending domain restriction", parts = { "deletes" },
    create = function(n) return { domain = n .. ".example.org", exclude = { "ok@" .. n .. ".example.org" } } end,
    refused = { { domain = "x.example.org", exclude = "everything" }, "exclude: must be a list" },
  },
  trusted_domains = {
    key = "pattern", noun = "Trusted domain", parts = ALL_PARTS,
    create = function(n) return { pattern = n .. ".trusted.example", is_regex = false, is_recent = true,
                                  is_similarity = false } end,
    refused = { { pattern = "x.trusted.example", is_regex = false, is_recent = true }, "is_similarity: required" },
  },
  url_ignore_patterns = {
    key = "pattern", noun = "URL ignore pattern", parts = ALL_PARTS,
    create = function(n) return { pattern = "https://" .. n .. ".example/*" } end,
    refused = { { pattern = "https://x.example/*", id = UNKNOWN_ID }, "id: unknown field" },
  },
}

local NAMES = {}
for name in pairs(RESOURCES) do NAMES[#NAMES + 1] = name end
table.sort(NAMES)

-- The PUT item of a batch: the resource's own, or a create body with the id.
local function put_item(sample, id, n)
  if sample.put then return sample.put(id) end
  local body = sample.create(n)
  body.id = id
  return body
end

---------------------------------------------------------------------------

describe("the emulator's resources", function()
  local emu

  lazy_setup(function() emu = emulator_process.start() end)
  lazy_teardown(function() if emu then emu.stop() end end)
  before_each(function() emu.reset() end)

  local function create(name, n)
    return assert_ok(json_call(emu, "POST", collection(name), RESOURCES[name].create(n)), 201)
  end

  for _, name in ipairs(NAMES) do
    local sample = RESOURCES[name]
    local key = sample.key

    describe(name, function()
      it("create 201, list, get, patch, delete, then 404", function()
        local e = create(name, "one")
        assert.matches(UUID_V4, e.id)
        assert.matches(STAMP, e.created_at)
        assert.are.equal(e.created_at, e.modified_at)
        if e.last_modified ~= nil then assert.are.equal(e.modified_at, e.last_modified) end
        assert.are.equal(sample.create("one")[key], e[key])

        local listed = call(emu, "GET", collection(name))
        assert.are.same({ e }, assert_ok(listed))
        assert.are.same({ count = 1, page = 1, per_page = 20, total_count = 1 }, listed.json.result_info)
        assert.are.same(e, assert_ok(call(emu, "GET", item(name, e.id))))

        local p = assert_ok(json_call(emu, "PATCH", item(name, e.id), { [key] = "changed" }))
        assert.are.equal("changed", p[key])
        assert.are.equal(e.created_at, p.created_at)
        assert.is_true(p.modified_at > e.modified_at)
        if p.last_modified ~= nil then assert.are.equal(p.modified_at, p.last_modified) end
        assert.are.same({ p }, emu.state(ACCOUNT, name))

        assert.are.same({ id = e.id }, assert_ok(call(emu, "DELETE", item(name, e.id))))
        assert.are.same({}, emu.state(ACCOUNT, name))
        assert_error(call(emu, "GET", item(name, e.id)), 404, 1003, sample.noun .. " not found")
        assert_error(json_call(emu, "PATCH", item(name, e.id), { [key] = "x" }), 404, 1003)
        assert_error(call(emu, "DELETE", item(name, e.id)), 404, 1003)
        assert_error(call(emu, "GET", item(name, "not-a-uuid")), 404, 1003)
      end)

      it("pages with page and per_page, and searches its own strings", function()
        local entries = {}
        for i = 1, 5 do entries[i] = sample.create(("n%02d"):format(i)) end
        local seeded = emu.seed(ACCOUNT, entries, name)
        local res = call(emu, "GET", collection(name) .. "?page=2&per_page=2")
        assert.are.same({ seeded[3].id, seeded[4].id }, ids_of(assert_ok(res)))
        assert.are.same({ count = 2, page = 2, per_page = 2, total_count = 5 }, res.json.result_info)
        res = call(emu, "GET", collection(name) .. "?page=3&per_page=2")
        assert.are.same({ count = 1, page = 3, per_page = 2, total_count = 5 }, res.json.result_info)
        assert_error(call(emu, "GET", collection(name) .. "?per_page=1001"), 422, 1002)
        if name ~= "url_ignore_patterns" then    -- the one resource with no search
          res = call(emu, "GET", collection(name) .. "?search=" .. url_encode(seeded[4][key]:upper()))
          assert.are.same({ seeded[4].id }, ids_of(assert_ok(res)))
        end
      end)

      it("refuses a body with 422 code 1002 naming the field, and changes nothing", function()
        assert_error(json_call(emu, "POST", collection(name), sample.refused[1]), 422, 1002, sample.refused[2])
        assert_error(json_call(emu, "POST", collection(name), { [key] = "x", bogus = 1 }), 422, 1002,
                     "bogus: unknown field")
        assert.are.same({}, emu.state(ACCOUNT, name))
        local e = create(name, "kept")
        assert_error(json_call(emu, "PATCH", item(name, e.id), { created_at = "2026-01-01T00:00:00Z" }), 422, 1002)
        assert_error(json_call(emu, "PATCH", item(name, e.id), { [key] = 7 }), 422, 1002, key .. ": must be a string")
        assert_error(call(emu, "PATCH", item(name, e.id), "{"), 400, 1001)
        assert.are.same({ e }, emu.state(ACCOUNT, name))
      end)

      if sample.parts then
        local has = {}
        for _, part in ipairs(sample.parts) do has[part] = true end

        it("applies a mixed batch", function()
          local a, b, c = create(name, "a"), create(name, "b"), create(name, "c")
          local body = { deletes = { { id = c.id } } }
          if has.posts then
            body.posts = { sample.create("new") }
            body.patches = { { id = a.id, [key] = "patched" } }
            body.puts = { put_item(sample, b.id, "put") }
          end
          local result = assert_ok(json_call(emu, "POST", collection(name) .. "/batch", body))
          assert.are.same({ { id = c.id } }, result.deletes)
          local state = emu.state(ACCOUNT, name)
          if has.posts then
            assert.are.equal(1, #result.posts)
            assert.matches(UUID_V4, result.posts[1].id)
            assert.are.equal("patched", result.patches[1][key])
            assert.are.equal(b.id, result.puts[1].id)
            assert.are.same({ a.id, b.id, result.posts[1].id }, ids_of(state))
            assert.are.same({ result.patches[1], result.puts[1], result.posts[1] }, state)
          else
            assert.is_nil(result.posts)
            assert.are.same({ a.id, b.id }, ids_of(state))
          end
        end)

        it("refuses a batch with an unknown id or a bad item, and applies none of it", function()
          local a = create(name, "a")
          local before = emu.state(ACCOUNT, name)
          local body = { deletes = { { id = a.id }, { id = UNKNOWN_ID } } }
          if has.posts then
            body.posts, body.patches, body.puts = { sample.create("new") }, {}, {}
          end
          assert_error(json_call(emu, "POST", collection(name) .. "/batch", body), 404, 1003,
                       sample.noun .. " not found: deletes[2].id")
          body.deletes = { { id = "not-a-uuid" } }
          assert_error(json_call(emu, "POST", collection(name) .. "/batch", body), 422, 1002,
                       "deletes[1].id: must be a UUID")
          if has.posts then
            body.deletes = { { id = a.id } }
            body.posts = { sample.create("new"), sample.refused[1] }
            local res = json_call(emu, "POST", collection(name) .. "/batch", body)
            assert_error(res, 422, 1002)
            assert.matches("^posts%[2%]%.", res.json.errors[1].message)
            body.posts = {}
            body.patches = nil
            assert_error(json_call(emu, "POST", collection(name) .. "/batch", body), 422, 1002, "patches: required")
          end
          assert.are.same(before, emu.state(ACCOUNT, name))
        end)
      end
    end)
  end

  describe("domains only", function()
    local function domain(n, extra)
      local body = RESOURCES.domains.create(n)
      for k, v in pairs(extra or {}) do body[k] = v end
      return assert_ok(json_call(emu, "POST", collection("domains"), body), 201)
    end

    it("fills the fields the server makes with plausible defaults", function()
      local d = domain("fresh")
      assert.are.same({ cjson.null, cjson.null, cjson.null }, { d.status, d.dmarc_status, d.folder })
      -- not given: the least the API takes, not a 0 it would refuse
      assert.are.equal(1, d.lookback_hops)
      assert.is_false(d.authorization.authorized)
      assert.are.equal(d.created_at, d.authorization.timestamp)
      assert.are.same({ 0, 0 }, { d.emails_processed.total_emails_processed,
                                  d.emails_processed.total_emails_processed_previous })
      -- an empty list stays a list on the wire
      local res = call(emu, "POST", collection("domains"), '{"domain":"e.example","allowed_delivery_modes":["API"],'
        .. '"ip_restrictions":[],"drop_dispositions":[],"regions":["US"]}')
      assert.are.equal(201, res.status)
      assert.matches('"ip_restrictions":[]', res.body, 1, true)
    end)

    it("PUT sets every field a replace may set, and keeps the domain's name", function()
      local d = domain("put", { folder = "Inbox", transport = "smtp://mx.example" })
      local r = assert_ok(json_call(emu, "PUT", item("domains", d.id), {
        allowed_delivery_modes = { "BCC" }, lookback_hops = 4, ip_restrictions = {}, drop_dispositions = { "BULK" },
        regions = { "AU" } }))
      assert.are.same({ "put.example.com", 4, { "BCC" }, { "AU" } },
                      { r.domain, r.lookback_hops, r.allowed_delivery_modes, r.regions })
      assert.are.equal(cjson.null, r.folder, "not given: back to its default")
      -- the entity's transport is a string that cannot be null
      assert.are.equal("", r.transport)
      assert.is_true(r.modified_at > d.modified_at)
      assert.are.same({ r }, emu.state(ACCOUNT, "domains"))

      assert_error(json_call(emu, "PUT", item("domains", d.id), { allowed_delivery_modes = { "BCC" },
        ip_restrictions = {}, drop_dispositions = {}, regions = { "AU" } }), 422, 1002, "lookback_hops: required")
      local full = RESOURCES.domains.put(nil)
      full.domain = "renamed.example"
      assert_error(json_call(emu, "PUT", item("domains", d.id), full), 422, 1002, "domain: unknown field")
      assert_error(json_call(emu, "PUT", item("domains", UNKNOWN_ID), RESOURCES.domains.put(nil)), 404, 1003)
      assert.are.same({ r }, emu.state(ACCOUNT, "domains"))
    end)

    it("verification: 200 with the TXT record to publish, 204 for one verified otherwise", function()
      local d = domain("verify")
      local v = assert_ok(call(emu, "GET", item("domains", d.id) .. "/verification"))
      assert.are.equal("pending", v.status)
      assert.is_string(v.txt_record_name)
      assert.is_string(v.txt_record_value)
      assert.matches(STAMP, v.last_checked_at)

      local seeded = emu.seed(ACCOUNT, { { domain = "other.example", allowed_delivery_modes = { "API" },
                                           _verified_otherwise = true } }, "domains")
      assert.is_nil(seeded[1]._verified_otherwise, "bookkeeping stays unseen")
      local res = call(emu, "GET", item("domains", seeded[1].id) .. "/verification")
      assert.are.equal(204, res.status)
      assert.are.equal("", res.body)
      assert.is_nil(res.headers["content-type"])
      assert_error(call(emu, "GET", item("domains", UNKNOWN_ID) .. "/verification"), 404, 1003)
    end)

    it("the collection DELETE removes a list of ids and answers them; an unknown one removes none", function()
      local a, b, c = domain("a"), domain("b"), domain("c")
      assert_error(json_call(emu, "DELETE", collection("domains"), { { id = a.id }, { id = UNKNOWN_ID } }), 404, 1003,
                   "Domain not found: body[2].id")
      assert_error(call(emu, "DELETE", collection("domains"), "[]"), 422, 1002, "body: must have at least one item")
      assert_error(call(emu, "DELETE", collection("domains"), '{"id":"x"}'), 422, 1002, "body: must be a list")
      assert.are.equal(3, #emu.state(ACCOUNT, "domains"))
      local removed = assert_ok(json_call(emu, "DELETE", collection("domains"), { { id = c.id }, { id = a.id } }))
      assert.are.same({ { id = c.id }, { id = a.id } }, removed)
      assert.are.same({ b.id }, ids_of(emu.state(ACCOUNT, "domains")))
    end)

    it("filters by list parameters: any of several domains, a delivery mode, a status", function()
      local a = domain("a")
      local b = domain("b", { allowed_delivery_modes = { "BCC", "JOURNAL" } })
      local c = emu.seed(ACCOUNT, { { domain = "c.example.com", status = "active" } }, "domains")[1]
      local function listed(query) return ids_of(assert_ok(call(emu, "GET", collection("domains") .. "?" .. query))) end
      assert.are.same({ a.id, c.id }, listed("domain=a.example.com&domain=c.example.com"))
      assert.are.same({ a.id }, listed("allowed_delivery_mode=API"))
      assert.are.same({ b.id }, listed("allowed_delivery_mode=JOURNAL"))
      assert.are.same({ c.id }, listed("status=active"))
      assert.are.same({ c.id, a.id }, listed("domain=a.example.com&domain=c.example.com&order=domain&direction=desc"))
      assert_error(call(emu, "GET", collection("domains") .. "?status=done"), 422, 1002,
                   "status: must be one of pending, active, failed, timeout")
    end)
  end)

  describe("across resources", function()
    it("keeps each resource's entries apart, and booleans filter as booleans", function()
      create("trusted_domains", "t")
      emu.seed(ACCOUNT, { { pattern = "old.example", is_regex = false, is_recent = false, is_similarity = true } },
               "trusted_domains")
      assert.are.equal(0, #emu.state(ACCOUNT))
      assert.are.equal(2, #emu.state(ACCOUNT, "trusted_domains"))
      local res = call(emu, "GET", collection("trusted_domains") .. "?is_recent=false")
      assert.are.same({ "old.example" }, { assert_ok(res)[1].pattern })
      assert.are.equal(1, res.json.result_info.total_count)
      assert_error(call(emu, "GET", collection("trusted_domains") .. "?is_recent=maybe"), 422, 1002,
                   "is_recent: must be true or false")
    end)

    it("a deprecated field follows its replacement unless set itself", function()
      local e = create("allow_policies", "dep")
      assert.are.same({ true, false, false }, { e.is_sender, e.is_spoof, e.is_recipient })
      local p = assert_ok(json_call(emu, "PATCH", item("allow_policies", e.id), { is_trusted_sender = false }))
      assert.is_false(p.is_sender)
      p = assert_ok(json_call(emu, "PATCH", item("allow_policies", e.id), { is_sender = true, is_regex = true }))
      assert.are.same({ true, false }, { p.is_sender, p.is_trusted_sender })
    end)

    it("answers 405 for a method a path does not take, and 7003 past the known paths", function()
      assert_error(call(emu, "GET", collection("allow_policies") .. "/batch"), 405, 7001)
      assert_error(call(emu, "DELETE", collection("allow_policies")), 405, 7001)
      assert_error(call(emu, "PUT", item("allow_policies", UNKNOWN_ID), "{}"), 405, 7001)
      assert_error(call(emu, "GET", collection("allow_policies") .. "/a/verification"), 404, 7003)
      assert_error(call(emu, "GET", collection("nothing_here")), 404, 7003)
    end)

    it("injects faults on any resource's paths", function()
      emu.fault({ path = "/domains/batch", status = 503, body = "down" })
      local res = call(emu, "POST", collection("domains") .. "/batch",
                       '{"posts":[],"patches":[],"puts":[],"deletes":[]}')
      assert.are.same({ 503, "down" }, { res.status, res.body })
      assert.are.equal(200, call(emu, "POST", collection("domains") .. "/batch",
                                 '{"posts":[],"patches":[],"puts":[],"deletes":[]}').status)
    end)

    it("seed and state refuse a resource they do not know", function()
      local ok, err = pcall(emu.seed, ACCOUNT, {}, "nope")
      assert.is_false(ok)
      assert.matches("no such resource", tostring(err))
      ok = pcall(emu.state, ACCOUNT, "nope")
      assert.is_false(ok)
    end)
  end)
end)
