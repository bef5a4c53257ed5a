-- Every operation of Cloudflare's OpenAPI file, through the module, against
-- Prism serving that file (`prism mock --errors` checks each request it
-- receives): zero violations. The requests are made from the descriptions
-- themselves (a valid example of each body), so an operation the file has
-- and the module lacks fails here, and what the schema refuses never
-- reaches Prism, for every resource.
local es = require("cloudflare.email_security")
local prism = require("spec.support.prism")
local openapi = require("spec.support.openapi")
local examples = require("spec.support.examples")
local internals = require("cloudflare.email_security.client").internals

local ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"
local ID = examples.ID
local example, list_params, batch_spec = examples.value, examples.list_params, examples.batch

local function described(name)
  return require("cloudflare.email_security.resources." .. name)
end

-- How each call of a resource is made, with valid arguments.
local CALLS = {
  list = function(r, d) return r:list(list_params(d)) end,
  create = function(r, d) return r:create(example(d.bodies.create)) end,
  get = function(r) return r:get(ID) end,
  update = function(r, d) return r:update(ID, example(d.bodies.update)) end,
  replace = function(r, d) return r:replace(ID, example(d.bodies.replace)) end,
  delete = function(r) return r:delete(ID) end,
  batch = function(r, d) return r:batch(batch_spec(d)) end,
  verification = function(r) return r:verification(ID) end,
  delete_many = function(r) return r:delete_many({ ID }) end,
}

describe("every operation against Cloudflare's OpenAPI schema (Prism)", function()
  local doc = openapi.load()
  local server, why = prism.start()
  if not server or not doc then
    it("needs Prism and the OpenAPI file", function() openapi.require_or_skip(why, pending) end)
    return
  end

  local cf
  local exercised = {}
  lazy_setup(function()
    cf = es.new({ account_id = ACCOUNT, api_token = "prism-token", base_url = server.base_url, max_retries = 0 })
  end)
  lazy_teardown(function()
    if cf then cf:close() end
    server.stop()
  end)

  for _, name in ipairs(es.resources) do
    local d = described(name)
    local ops = {}
    for op in pairs(d.ops) do ops[#ops + 1] = op end
    table.sort(ops)
    for _, op in ipairs(ops) do
      it(("accepts %s:%s (%s)"):format(name, op, d.ops[op].operation_id), function()
        local before = #server.violations()
        local result, err = CALLS[op](cf[name], d)
        assert.is_nil(err, tostring(err))
        assert.is_truthy(result)
        local after = server.violations()
        assert.are.equal(before, #after, table.concat(after, "\n"))
        exercised[d.ops[op].operation_id] = true
      end)
    end

    it("is a real check for " .. name .. ": Prism refuses a body that breaks the schema", function()
      -- past the module's own checks, straight through the transport
      local op = d.ops.create
      local body = d.bodies.create
      local first = body.required[1]
      local url = server.base_url .. "/accounts/" .. ACCOUNT .. d.path .. op.suffix
      local result, err = internals(cf).transport:request("POST", url, ('{"%s":{"not":"this"}}'):format(first))
      assert.is_nil(result)
      assert.are.equal(422, err and err.status, tostring(err and err.message))
    end)

    it("never sends what the schema refuses, for " .. name, function()
      local r = cf[name]
      local before = server.received()
      local cases = {
        { "a create missing its required fields", function() return r:create({}) end },
        { "an unknown field", function() return r:create({ no_such_field = 1 }) end },
        { "a read-only field", function() return r:update(ID, { created_at = "2026-01-01T00:00:00Z" }) end },
        { "an id that is not a uuid", function() return r:get("not-a-uuid") end },
        { "a per_page past 1000", function() return r:list({ per_page = 1001 }) end },
      }
      -- the domains' PATCH body alone has no minProperties
      if d.bodies.update.min_properties then
        cases[#cases + 1] = { "an empty update", function() return r:update(ID, {}) end }
      end
      if d.ops.batch then
        local many = {}
        for i = 1, 1001 do many[i] = ID end
        cases[#cases + 1] = { "1001 batch items", function() return r:batch({ deletes = many }) end }
        cases[#cases + 1] = { "an empty batch", function() return r:batch({}) end }
      end
      if name == "content_policies" then
        local ok = { enabled = true, name = "n", pattern = "p", targets = { "SUBJECT" } }
        local function with(k, v)
          local t = {}
          for key, value in pairs(ok) do t[key] = value end
          t[k] = v
          return t
        end
        cases[#cases + 1] = { "a target other than SUBJECT and BODY", function() return r:create(with("targets", { "HEADER" })) end }
        cases[#cases + 1] = { "a 257-character name", function() return r:create(with("name", ("n"):rep(257))) end }
        cases[#cases + 1] = { "a 2049-character pattern", function() return r:create(with("pattern", ("p"):rep(2049))) end }
        cases[#cases + 1] = { "a missing pattern", function() return r:create(with("pattern", nil)) end }
      end
      for _, case in ipairs(cases) do
        local result, err = case[2]()
        assert.is_nil(result, case[1])
        assert.are.equal("invalid", err and err.kind, case[1] .. ": " .. tostring(err))
      end
      assert.are.equal(before, server.received(), "no refused request reached Prism")
    end)
  end

  it("exercised every operation of the OpenAPI file", function()
    local missing = {}
    for _, item in pairs(doc.paths) do
      for method, op in pairs(item) do
        if method ~= "parameters" and not exercised[op.operationId] then missing[#missing + 1] = op.operationId end
      end
    end
    table.sort(missing)
    assert.are.same({}, missing)
  end)
end)
