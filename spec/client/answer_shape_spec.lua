-- An answer whose `result` has a shape other than the one the operation
-- returns (the OpenAPI file's) is an `http` error, for every call: never
-- an empty page, an empty entry or a batch that did nothing. lua-cjson
-- decodes `{}` and `[]` alike, so the envelope decoder says which it saw.
local es = require("cloudflare.email_security")
local core = require("cloudflare.email_security.core")
local emulator_process = require("emulator.process")
local internals = require("cloudflare.email_security.client").internals

local ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"
local ID = "f174e90a-fafe-4643-bbbc-4a0ed4fc8415"
local OK = '{"success":true,"errors":[],"messages":[],"result":%s}'
local LIST = '{"success":true,"errors":[],"messages":[],"result":%s,'
  .. '"result_info":{"page":1,"per_page":20,"count":0,"total_count":0}}'
local ENTRY = '{"id":"' .. ID .. '","name":"A","email":"a@example.com","is_email_regex":false}'

-- A client whose transport answers every request with `body` (status 200),
-- through the C decoder as a real transport does.
local function answering(body, status)
  local sent = {}
  local cf = es.new({ account_id = ACCOUNT, api_token = "t", base_url = "http://127.0.0.1:1/client/v4",
                      sleep = function() end, max_retries = 0 })
  internals(cf).transport = {
    request = function(_, method, url)
      sent[#sent + 1] = method .. " " .. url
      return core.decode(status or 200, body, { ["content-type"] = "application/json" })
    end,
    is_closed = function() return false end,
    close = function() end,
  }
  return cf, sent
end

local function assert_shape_error(what, result, err)
  assert.is_nil(result, what .. ": no result")
  assert.is_table(err, what .. ": an error")
  assert.are.equal("http", err.kind, what .. ": " .. tostring(err))
  assert.matches("result", err.message, 1, true)
end

describe("the shape of an answer's result", function()
  describe("for a list", function()
    for _, result in ipairs({ "{}", '{"a":1}', '{"1":{"id":"x"}}', "null", '"text"', "7", "true" }) do
      it("is an http error from list, each and all when it is " .. result, function()
        local reg = answering(LIST:format(result)).impersonation_registry
        assert_shape_error("list", reg:list())
        local got, err = reg:all()
        assert_shape_error("all", got, err)
        local seen = {}
        for entry, e in reg:each() do seen[#seen + 1] = { entry, e } end
        assert.are.equal(1, #seen, "each gives the failure once")
        assert.is_false(seen[1][1])
        assert.are.equal("http", seen[1][2].kind)
      end)
    end

    it("is an http error when the result is absent", function()
      local reg = answering('{"success":true,"errors":[],"messages":[]}').impersonation_registry
      assert_shape_error("list", reg:list())
      assert_shape_error("all", reg:all())
    end)

    it("is an http error when an item is no object", function()
      for _, items in ipairs({ "[[1,2]]", '["x"]', "[7]", "[null]", '[' .. ENTRY .. ',[{"id":"y"}]]' }) do
        local reg = answering(LIST:format(items)).impersonation_registry
        local got, err = reg:list()
        assert.is_nil(got, items)
        assert.are.equal("http", err.kind, items)
      end
    end)

    it("is an empty page for [], and the entries for an array of objects", function()
      local reg = answering(LIST:format("[]")).impersonation_registry
      local page, err = reg:list()
      assert.is_nil(err)
      assert.are.same({}, page)
      assert.are.same({}, assert(reg:all()))
      reg = answering(LIST:format("[" .. ENTRY .. "]")).impersonation_registry
      assert.are.equal(ID, assert(reg:list())[1].id)
    end)
  end)

  describe("for one entry (create, get, update, replace)", function()
    local calls = {
      create = function(cf) return cf.impersonation_registry:create({ name = "A", email = "a@example.com",
                                                                       is_email_regex = false }) end,
      get = function(cf) return cf.impersonation_registry:get(ID) end,
      update = function(cf) return cf.impersonation_registry:update(ID, { name = "B" }) end,
      replace = function(cf) return cf.domains:replace(ID, { allowed_delivery_modes = { "API" }, lookback_hops = 2,
        ip_restrictions = {}, drop_dispositions = {}, regions = { "GLOBAL" } }) end,
    }
    for _, name in ipairs({ "create", "get", "update", "replace" }) do
      it(name .. " is an http error unless the result is an object", function()
        for _, result in ipairs({ "[]", "[" .. ENTRY .. "]", "null", '"text"', "7" }) do
          local got, err = calls[name](answering(OK:format(result)))
          assert_shape_error(name .. " of " .. result, got, err)
        end
        local got, err = calls[name](answering('{"success":true,"errors":[],"messages":[]}'))
        assert_shape_error(name .. " of no result", got, err)
        assert.are.equal(ID, assert(calls[name](answering(OK:format(ENTRY)))).id)
        assert.is_table(assert(calls[name](answering(OK:format("{}")))), name .. " of {} is an (empty) object")
      end)
    end

    it("says a create so answered may have happened", function()
      local _, err = calls.create(answering(OK:format("[]")))
      assert.is_true(err.may_exist)
    end)
  end)

  it("delete takes an object or null, and refuses anything else", function()
    local cf = answering(OK:format("null"))
    assert.are.same({ id = ID }, assert(cf.allow_policies:delete(ID)))
    cf = answering(OK:format('{"id":"' .. ID .. '"}'))
    assert.are.same({ id = ID }, assert(cf.allow_policies:delete(ID)))
    for _, result in ipairs({ "[]", '[{"id":"' .. ID .. '"}]', '"gone"', "1" }) do
      assert_shape_error("delete of " .. result, answering(OK:format(result)).allow_policies:delete(ID))
    end
  end)

  it("a batch answers an object of lists of objects", function()
    local spec = { deletes = { ID } }
    assert.is_table(assert(answering(OK:format('{"deletes":[{"id":"' .. ID .. '"}]}')).trusted_domains:batch(spec)))
    assert.is_table(assert(answering(OK:format('{"deletes":[],"posts":[]}')).trusted_domains:batch(spec)))
    for _, result in ipairs({ "[]", '[{"id":"x"}]', "null", '"done"', '{"deletes":{"a":1}}', '{"deletes":"x"}',
                              '{"deletes":[1]}', '{"posts":[["x"]]}' }) do
      assert_shape_error("batch of " .. result, answering(OK:format(result)).trusted_domains:batch(spec))
    end
  end)

  it("a verification answers an object (or HTTP 204)", function()
    local info = '{"status":"pending","txt_record_name":"n","txt_record_value":"v","last_checked_at":null}'
    assert.are.equal("n", assert(answering(OK:format(info)).domains:verification(ID)).txt_record_name)
    assert.are.same({ verified = true }, assert(answering("", 204).domains:verification(ID)))
    for _, result in ipairs({ "[]", "null", '"pending"' }) do
      assert_shape_error("verification of " .. result, answering(OK:format(result)).domains:verification(ID))
    end
  end)

  it("delete_many answers a list of objects", function()
    assert.are.equal(ID, assert(answering(OK:format('[{"id":"' .. ID .. '"}]')).domains:delete_many({ ID }))[1].id)
    assert.are.same({}, assert(answering(OK:format("[]")).domains:delete_many({ ID })))
    for _, result in ipairs({ "{}", '{"id":"x"}', "null", '["x"]' }) do
      assert_shape_error("delete_many of " .. result, answering(OK:format(result)).domains:delete_many({ ID }))
    end
  end)

  it("keeps the envelope with the error, for a person to see what came back", function()
    local _, err, envelope = answering(LIST:format("{}")).impersonation_registry:list()
    assert.are.equal("http", err.kind)
    assert.are.equal("GET", err.method)
    assert.are.equal(1, envelope.result_info.page)
  end)

  describe("as the decoder reads it", function()
    it("tells an empty object from an empty array, whatever the key's escapes or repeats", function()
      local reg = answering(LIST:format("[]")).impersonation_registry
      assert.is_table(assert(reg:list()))
      local cases = {
        { '{"success":true,"errors":[],"messages":[],"res\\u0075lt":{}}', false },
        { '{"success":true,"errors":[],"messages":[],"r\\u0065sult":[]}', true },
        { '{"success":true,"errors":[],"messages":[],"result":{},"result":[]}', true },
        { '{"success":true,"errors":[],"messages":[],"result":[],"result":{}}', false },
        { '{"result" : [ ] ,"success":true,"errors":[],"messages":[]}', true },
        { '{"result":{"a":[]},"success":true,"errors":[],"messages":[],"result":{}}', false },
        { '{"nested":{"result":[]},"success":true,"errors":[],"messages":[],"result":{}}', false },
        { '{"resultx":[],"success":true,"errors":[],"messages":[],"result":{}}', false },
        -- integers and floats together take the decoder's second path
        { '{"n":1,"f":1.5,"success":true,"errors":[],"messages":[],"result":[]}', true },
        { '{"n":1,"f":1.5,"success":true,"errors":[],"messages":[],"result":{}}', false },
      }
      for _, case in ipairs(cases) do
        local page, err = answering(case[1]).impersonation_registry:list()
        if case[2] then
          assert.is_nil(err, case[1])
          assert.are.same({}, page, case[1])
        else
          assert.is_nil(page, case[1])
          assert.are.equal("http", err.kind, case[1])
        end
      end
    end)
  end)
end)

describe("the shape of an answer's result, through libcurl and the emulator", function()
  local emu
  lazy_setup(function() emu = emulator_process.start() end)
  lazy_teardown(function() if emu then emu.stop() end end)
  before_each(function() emu.reset() end)

  it("makes all() fail on a list page whose result is an object, not plan creates for what exists", function()
    local cf = es.new({ account_id = ACCOUNT, api_token = emu.token, base_url = emu.base_url, max_retries = 0 })
    emu.seed(ACCOUNT, { { name = "A", email = "a@example.com", is_email_regex = false } })
    emu.fault({ method = "GET", status = 200, headers = { ["content-type"] = "application/json" },
                body = '{"success":true,"errors":[],"messages":[],"result":{},'
                  .. '"result_info":{"page":1,"per_page":1000,"count":0,"total_count":0}}' })
    local got, err = cf.impersonation_registry:all({ per_page = 1000 })
    cf:close()
    assert.is_nil(got)
    assert.are.equal("http", err.kind)
    assert.matches("result", err.message, 1, true)
  end)
end)
