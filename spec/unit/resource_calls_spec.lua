-- The calls each resource has, as its description lists them, and what
-- each sends, through a transport that records requests and answers from a
-- script (the C decoder makes the answers, as for a real one).
local es = require("cloudflare.email_security")
local core = require("cloudflare.email_security.core")
local internals = require("cloudflare.email_security.client").internals

local ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"
local ID = "f174e90a-fafe-4643-bbbc-4a0ed4fc8415"
local ID2 = "0b6b9b1a-2a47-4c1e-9a59-3c1b2a7e0f11"
local OK = '{"success":true,"errors":[],"messages":[],"result":%s}'
local NOT_FOUND = '{"success":false,"errors":[{"code":1003,"message":"not found"}],"messages":[],"result":null}'
local BUSY = '{"success":false,"errors":[{"code":1,"message":"busy"}],"messages":[],"result":null}'

-- answers: a list of { status, body } given in turn (the last one again
-- when they run out).
local function scripted(answers)
  local sent, closed = {}, false
  local transport = {
    request = function(_, method, url, body, once)
      sent[#sent + 1] = { method = method, path = url:match("/accounts/[^/]+(/.*)$"), body = body, once = once }
      local a = answers[math.min(#sent, #answers)]
      return core.decode(a[1], a[2], { ["content-type"] = "application/json" })
    end,
    is_closed = function() return closed end,
    close = function() closed = true end,
  }
  local cf = es.new({ account_id = ACCOUNT, api_token = "t", base_url = "http://127.0.0.1:1/client/v4",
                      sleep = function() end })
  internals(cf).transport = transport
  return cf, sent
end

describe("resource calls", function()
  it("are the ones each description lists, and no others", function()
    local cf = scripted({ { 200, OK:format("{}") } })
    assert.is_nil(cf.impersonation_registry.batch, "the registry has no batch endpoint")
    assert.is_function(cf.allow_policies.batch)
    assert.is_nil(cf.allow_policies.replace)
    for _, call in ipairs({ "replace", "verification", "delete_many", "batch", "create", "each" }) do
      assert.is_function(cf.domains[call], call)
    end
    for _, name in ipairs(es.resources) do
      -- one line: the resource, its calls, where its fields are
      local text = tostring(cf[name])
      assert.are.equal("cloudflare.email_security resource " .. name .. ": ", text:sub(1, #name + 37))
      assert.truthy(text:find(" plan (help(cf." .. name .. ") for its fields)", 1, true), text)
    end
    assert.are.equal("cloudflare.email_security resource impersonation_registry: list each all create get update "
      .. "delete plan (help(cf.impersonation_registry) for its fields)", tostring(cf.impersonation_registry))
    assert.is_nil(cf.no_such_resource)
  end)

  it("raises at the caller for a call on a resource that lacks it, or on a closed client", function()
    local cf = scripted({ { 200, OK:format("{}") } })
    assert.has_error(function() cf.domains.replace(cf.allow_policies, ID, {}) end,
      "bad self to 'replace' (allow_policies has no replace)")
    cf:close()
    local line
    local ok, msg = pcall(function()
      line = debug.getinfo(1, "l").currentline + 1
      local r = cf.domains:get(ID)   -- the error must point here
      return r
    end)
    assert.is_false(ok)
    assert.matches("resource_calls_spec.lua:" .. line .. ": attempt to use a closed cloudflare.email_security client",
                   msg, 1, true)
  end)

  it("sends a batch with every list the endpoint has, ids as objects, empty ones as []", function()
    local cf, sent = scripted({ { 200, OK:format('{"deletes":[],"patches":[],"posts":[],"puts":[]}') } })
    assert(cf.allow_policies:batch({ deletes = { ID, { id = ID2 } } }))
    assert.are.same({ "POST", "/email-security/settings/allow_policies/batch" }, { sent[1].method, sent[1].path })
    assert.are.equal(('{"deletes":[{"id":"%s"},{"id":"%s"}],"patches":[],"posts":[],"puts":[]}'):format(ID, ID2),
                     sent[1].body)
    assert.is_falsy(sent[1].once, "a batch without posts may be sent again")
  end)

  it("sends a batch with posts at most once, and does not retry it", function()
    local cf, sent = scripted({ { 503, BUSY }, { 200, OK:format("{}") } })
    local done, err = cf.block_senders:batch({ posts = { { pattern = "x@example.com", pattern_type = "EMAIL",
                                                            is_regex = false } } })
    assert.is_nil(done)
    assert.are.same({ "api", 503, 1 }, { err.kind, err.status, err.attempts })
    assert.are.equal(1, #sent)
    assert.is_true(sent[1].once)
  end)

  it("retries a batch without posts like an update", function()
    local cf, sent = scripted({ { 503, BUSY }, { 200, OK:format('{"deletes":[{"id":"' .. ID .. '"}]}') } })
    local done = assert(cf.trusted_domains:batch({ deletes = { ID } }))
    assert.are.equal(ID, done.deletes[1].id)
    assert.are.equal(2, #sent)
  end)

  it("refuses an empty batch, and lists an endpoint does not take, sending nothing", function()
    local cf, sent = scripted({ { 200, OK:format("{}") } })
    local done, err = cf.allow_policies:batch({})
    assert.is_nil(done)
    assert.are.same({ "invalid", "batch", "min_items" }, { err.kind, err.field, err.rule })
    done, err = cf.sending_domain_restrictions:batch({ posts = { { domain = "example.com" } } })
    assert.is_nil(done)
    assert.are.same({ "invalid", "posts", "unknown" }, { err.kind, err.field, err.rule })
    assert.is_truthy(cf.sending_domain_restrictions:batch({ deletes = { ID } }))
    assert.are.equal(1, #sent)
    assert.are.equal(('{"deletes":[{"id":"%s"}]}'):format(ID), sent[1].body)
  end)

  it("takes a 404 after a try that may have deleted the entry as done", function()
    local cf, sent = scripted({ { 503, BUSY }, { 404, NOT_FOUND } })
    local gone, err, envelope = cf.url_ignore_patterns:delete(ID)
    assert.is_nil(err)
    assert.are.same({ id = ID }, gone)
    assert.is_nil(envelope, "not the 404's envelope")
    assert.are.equal(2, #sent)
  end)

  it("gives a delete whose result is null or absent its id, and refuses a get so answered", function()
    for _, body in ipairs({ OK:format("null"), '{"success":true,"errors":[],"messages":[]}' }) do
      local cf = scripted({ { 200, body } })
      assert.are.same({ id = ID }, assert(cf.allow_policies:delete(ID)))
      local got, err = cf.allow_policies:get(ID)
      assert.is_nil(got)
      assert.are.equal("http", err.kind)
    end
  end)

  it("keeps a 404 the api error it is after a refusal, or when it names no entry", function()
    local ROUTE = '{"success":false,"errors":[{"code":7003,"message":"No route"}],"messages":[],"result":null}'
    local CONFLICT = '{"success":false,"errors":[{"code":1,"message":"conflict"}],"messages":[],"result":null}'
    for _, script in ipairs({ { { 503, BUSY }, { 404, ROUTE } }, { { 409, CONFLICT }, { 404, NOT_FOUND } } }) do
      local cf = scripted(script)
      local gone, err = cf.url_ignore_patterns:delete(ID)
      assert.is_nil(gone)
      assert.are.same({ "api", 404, 2 }, { err.kind, err.status, err.attempts })
    end
  end)

  it("sends a batch with posts once after a 5xx, whatever x-should-retry says", function()
    local cf, sent = scripted({ { 500, BUSY }, { 200, OK:format("{}") } })
    internals(cf).transport.request = (function(inner)
      return function(...)
        local result, err, env = inner(...)
        if err then err.headers = { ["x-should-retry"] = "true" } end
        return result, err, env
      end
    end)(internals(cf).transport.request)
    local done, err = cf.block_senders:batch({ posts = { { pattern = "x@example.com", pattern_type = "EMAIL",
                                                            is_regex = false } } })
    assert.is_nil(done)
    assert.are.same({ 500, 1 }, { err.status, err.attempts })
    assert.are.equal(1, #sent)
  end)

  it("keeps a 404 on the first try the api error it is", function()
    local cf = scripted({ { 404, NOT_FOUND } })
    local gone, err = cf.url_ignore_patterns:delete(ID)
    assert.is_nil(gone)
    assert.are.same({ "api", 404, 1003 }, { err.kind, err.status, err.code })
  end)

  it("replaces a domain with PUT, and refuses its immutable name there", function()
    local cf, sent = scripted({ { 200, OK:format('{"id":"' .. ID .. '"}') } })
    local fields = { allowed_delivery_modes = { "API" }, lookback_hops = 2, ip_restrictions = {},
                     drop_dispositions = {}, regions = { "GLOBAL" } }
    assert(cf.domains:replace(ID, fields))
    assert.are.same({ "PUT", "/email-security/settings/domains/" .. ID }, { sent[1].method, sent[1].path })
    assert.are.equal('{"allowed_delivery_modes":["API"],"drop_dispositions":[],"ip_restrictions":[],'
      .. '"lookback_hops":2,"regions":["GLOBAL"]}', sent[1].body)
    fields.domain = "example.com"
    local done, err = cf.domains:replace(ID, fields)
    assert.is_nil(done)
    assert.are.same({ "invalid", "domain", "unknown" }, { err.kind, err.field, err.rule })
  end)

  it("gives a domain's verification, and { verified = true } for its 204", function()
    local info = '{"status":"pending","txt_record_name":"_cf.example.com","txt_record_value":"v","last_checked_at":null}'
    local cf, sent = scripted({ { 200, OK:format(info) }, { 204, "" } })
    local got = assert(cf.domains:verification(ID))
    assert.are.equal("_cf.example.com", got.txt_record_name)
    assert.are.equal("/email-security/settings/domains/" .. ID .. "/verification", sent[1].path)
    assert.are.same({ verified = true }, assert(cf.domains:verification(ID)))
  end)

  it("removes several domains with the collection DELETE", function()
    local cf, sent = scripted({ { 200, OK:format('[{"id":"' .. ID .. '"}]') } })
    assert(cf.domains:delete_many({ ID }))
    assert.are.same({ "DELETE", "/email-security/settings/domains" }, { sent[1].method, sent[1].path })
    assert.are.equal('[{"id":"' .. ID .. '"}]', sent[1].body)
    local done, err = cf.domains:delete_many({})
    assert.is_nil(done)
    assert.are.same({ "invalid", "min_items" }, { err.kind, err.rule })
  end)

  it("fails each and all, never ends them early, when every answer says it is page 1", function()
    -- 50 entries, 20 a page; the server pages right but echoes page 1
    local answers = {}
    for page = 1, 3 do
      local items = {}
      for i = (page - 1) * 20 + 1, math.min(page * 20, 50) do
        items[#items + 1] = ('{"id":"%08d-0000-4000-8000-000000000000","name":"n","email":"e@x.example",'
          .. '"is_email_regex":false}'):format(i)
      end
      answers[page] = { 200, ('{"success":true,"errors":[],"messages":[],"result":[%s],"result_info":'
        .. '{"page":1,"per_page":20,"count":%d,"total_count":50}}'):format(table.concat(items, ","), #items) }
    end
    local cf, sent = scripted(answers)
    local all, err = cf.impersonation_registry:all()
    assert.is_nil(all)
    assert.are.same({ "http", "GET", "/accounts/" .. ACCOUNT .. "/email-security/settings/impersonation_registry" },
                    { err.kind, err.method, err.path })
    assert.matches("asked for page 2, the answer says page 1", tostring(err), 1, true)
    assert.are.equal(2, #sent)
    cf = scripted(answers)
    local walked, failures = 0, {}
    for entry, e in cf.impersonation_registry:each() do
      if entry then walked = walked + 1 else failures[#failures + 1] = e end
    end
    assert.are.equal(20, walked)
    assert.are.equal(1, #failures)
  end)

  it("sends a list parameter given as a list once per item", function()
    local cf, sent = scripted({ { 200, OK:format("[]") } })
    assert(cf.domains:list({ domain = { "a.example", "b.example" }, per_page = 5 }))
    assert.are.equal("/email-security/settings/domains?per_page=5&domain=a.example&domain=b.example", sent[1].path)
  end)
end)
