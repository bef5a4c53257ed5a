-- The nginx transport without nginx: a stand-in `ngx` whose
-- location.capture records each subrequest and answers as nginx would.
-- spec/hosts/nginx_spec.lua runs the same code in a real nginx.
local es = require("cloudflare.email_security")
local internals = require("cloudflare.email_security.client").internals

local ACCOUNT = "acct1"
local ID = "8d5f2d52-6f3c-4c1e-9a59-3c1b2a7e0f11"
local OK_BODY = '{"success":true,"errors":[],"messages":[],"result":{"id":"' .. ID .. '","name":"A"}}'

local function fake_ngx(answer)
  local fake = { calls = {}, slept = {},
                 HTTP_GET = 2, HTTP_POST = 8, HTTP_PUT = 16, HTTP_DELETE = 32, HTTP_PATCH = 16384,
                 config = { subsystem = "http", nginx_version = 1022001 } }
  fake.location = {
    capture = function(uri, options)
      local vars = {}
      for k, v in pairs(options.vars) do vars[k] = v end   -- nginx copies them at once
      fake.calls[#fake.calls + 1] = { uri = uri, method = options.method, body = options.body, vars = vars }
      if type(answer) == "function" then return answer(#fake.calls) end
      return answer
    end,
  }
  fake.sleep = function(s) fake.slept[#fake.slept + 1] = s end
  return fake
end

describe("the nginx transport", function()
  local saved

  before_each(function() saved = rawget(_G, "ngx") end)
  after_each(function() rawset(_G, "ngx", saved) end)

  local function client(answer, opts)
    local fake = fake_ngx(answer)
    rawset(_G, "ngx", fake)
    local o = { account_id = ACCOUNT, api_token = "secret-token", base_url = "https://api.example.test/client/v4" }
    for k, v in pairs(opts or {}) do
      if v == false then o[k] = nil else o[k] = v end
    end
    return es.new(o), fake
  end

  it("is chosen inside nginx, and libcurl's outside", function()
    local cf = client({ status = 200, header = {}, body = OK_BODY })
    assert.are.equal("nginx", internals(cf).config.transport)
    rawset(_G, "ngx", nil)
    local plain = es.new({ account_id = ACCOUNT, api_token = "t" })
    assert.are.equal("curl", internals(plain).config.transport)
    plain:close()
  end)

  it("without light threads, runs cf:concurrently's calls one at a time", function()
    -- the fake nginx has no ngx.thread: the transport cannot start requests
    -- in flight, and the scheduler sends them one after another
    local cf, fake = client({ status = 200, header = { ["Content-Type"] = "application/json" }, body = OK_BODY })
    assert.is_false(internals(cf).transport.start)
    local results = cf:concurrently({ ID, ID, ID }, function(id) return cf.impersonation_registry:get(id) end)
    for i = 1, 3 do assert.are.equal(ID, results[i][1].id, tostring(results[i][2])) end
    assert.are.equal(3, #fake.calls)
  end)

  it("sends one subrequest with the URL, the credential and the body as variables", function()
    local cf, fake = client({ status = 200, header = { ["Content-Type"] = "application/json" }, body = OK_BODY })
    local result, err = cf.impersonation_registry:update(ID, { name = "A" })
    assert.is_nil(err)
    assert.are.equal("A", result.name)
    assert.are.equal(1, #fake.calls)
    local c = fake.calls[1]
    assert.are.equal("/_cloudflare_email_security", c.uri)
    assert.are.equal(fake.HTTP_PATCH, c.method)
    assert.are.equal('{"name":"A"}', c.body)
    local path = "/client/v4/accounts/acct1/email-security/settings/impersonation_registry/" .. ID
    assert.are.equal("https://api.example.test" .. path, c.vars.cf_es_url)
    assert.are.equal(path, c.vars.cf_es_uri)
    assert.are.equal("Bearer secret-token", c.vars.cf_es_authorization)
    assert.are.equal("", c.vars.cf_es_auth_email)
    assert.are.equal("application/json", c.vars.cf_es_content_type)
    assert.matches("; nginx/1%.22%.1%)$", c.vars.cf_es_user_agent)
  end)

  it("sends no Content-Type without a body, and the key credential as its two headers", function()
    local cf, fake = client({ status = 200, header = {}, body = OK_BODY },
                            { api_token = false, api_email = "me@example.com", api_key = "k3y" })
    assert(cf.impersonation_registry:delete(ID))
    local c = fake.calls[1]
    assert.are.equal(fake.HTTP_DELETE, c.method)
    assert.is_nil(c.body)
    assert.are.equal("", c.vars.cf_es_content_type)
    assert.are.equal("", c.vars.cf_es_authorization)
    assert.are.equal("me@example.com", c.vars.cf_es_auth_email)
    assert.are.equal("k3y", c.vars.cf_es_auth_key)
  end)

  it("uses the location given by nginx_location", function()
    local cf, fake = client({ status = 200, header = {}, body = OK_BODY }, { nginx_location = "/internal/cf" })
    assert(cf.impersonation_registry:get(ID))
    assert.are.equal("/internal/cf", fake.calls[1].uri)
  end)

  it("turns nginx's own bodiless 502 into a transport error, retried with ngx.sleep", function()
    local cf, fake = client({ status = 502, header = { ["Content-Type"] = "text/plain" }, body = "", truncated = true },
                            { max_retries = 2 })
    local result, err = cf.impersonation_registry:update(ID, { name = "A" })
    assert.is_nil(result)
    assert.are.same({ "transport", true, 502, 3 }, { err.kind, err.broken, err.nginx_status, err.attempts })
    assert.is_nil(err.status)
    assert.matches("no answer from the API through nginx", tostring(err), 1, true)
    assert.are.equal(2, #fake.slept, "two waits between three tries, through ngx.sleep")
  end)

  it("turns nginx's own 504 into a timeout; a create is not sent twice", function()
    local cf, fake = client({ status = 504, header = {}, body = "" })
    local _, err = cf.impersonation_registry:create({ name = "A", email = "a@example.com", is_email_regex = false })
    assert.are.equal("timeout", err.kind)
    assert.are.equal(1, #fake.calls)
  end)

  -- What capture gives when nginx finalizes the subrequest itself, before
  -- any answer from the API (measured with nginx 1.22 and lua-nginx-module):
  -- the status nginx chose, no body, truncated, and no header of the API's.
  local function nginx_own(status)
    return { status = status, header = { ["Content-Type"] = "application/json" }, body = "", truncated = true }
  end

  it("reports a body nginx refuses (its own 413) as refused here: not sent, not retried, no may-exist", function()
    local cf, fake = client(nginx_own(413), { max_retries = 2 })
    local calls = {
      function() return cf.allow_policies:batch({ deletes = { ID } }) end,
      function() return cf.allow_policies:batch({ posts = { { pattern = "a@example.com", pattern_type = "EMAIL",
        is_regex = false, is_trusted_sender = true, is_exempt_recipient = false, is_acceptable_sender = false,
        verify_sender = true } } }) end,
      function() return cf.impersonation_registry:create({ name = "A", email = "a@example.com",
        is_email_regex = false }) end,
      function() return cf.impersonation_registry:update(ID, { name = "A" }) end,
    }
    for i, f in ipairs(calls) do
      local result, err = f()
      assert.is_nil(result)
      assert.are.same({ "invalid", "transport", 413, 1 }, { err.kind, err.field, err.nginx_status, err.attempts },
                      tostring(err))
      assert.is_nil(err.status)
      assert.is_nil(err.may_exist)
      assert.matches("nginx refused", err.message, 1, true)
      assert.matches("client_max_body_size", err.message, 1, true)
      assert.is_nil(tostring(err):find("may have been created", 1, true))
      assert.are.equal(i, #fake.calls, "one subrequest per call: never tried again")
    end
    assert.are.same({}, fake.slept)
  end)

  it("reports any other answer nginx makes itself before proxying (a 4xx) the same way", function()
    for _, status in ipairs({ 400, 403, 404, 405, 414 }) do
      local cf, fake = client(nginx_own(status), { max_retries = 2 })
      local _, err = cf.impersonation_registry:get(ID)
      assert.are.same({ "invalid", "transport", status, 1 }, { err.kind, err.field, err.nginx_status, err.attempts })
      assert.matches(("nginx answered HTTP %d itself"):format(status), err.message, 1, true)
      assert.are.equal(1, #fake.calls)
    end
    -- 499: the visitor went away while nginx waited for the API, after
    -- sending: that one may have acted
    local cf = client(nginx_own(499), { max_retries = 0 })
    local _, err = cf.impersonation_registry:create({ name = "A", email = "a@example.com", is_email_regex = false })
    assert.are.same({ "transport", true }, { err.kind, err.may_exist })
  end)

  it("keeps the API's own 413 (a body, a cf-ray) an answer of the API", function()
    local cf = client({ status = 413, header = { ["CF-RAY"] = "abc-LHR", ["Content-Type"] = "application/json" },
      body = '{"success":false,"errors":[{"code":10000,"message":"too large"}],"messages":[],"result":null}' })
    local _, err = cf.impersonation_registry:get(ID)
    assert.are.same({ "api", 413, 10000 }, { err.kind, err.status, err.code })
  end)

  it("reads the API's own 502 (a body, a cf-ray) as an http error", function()
    local cf = client({ status = 502, header = { ["CF-RAY"] = "abc-LHR", ["Content-Type"] = "text/html" },
                        body = "<html>bad gateway</html>" }, { max_retries = 0 })
    local _, err = cf.impersonation_registry:get(ID)
    assert.are.same({ "http", 502, "abc-LHR" }, { err.kind, err.status, err.ray_id })
  end)

  it("passes retry headers to the policy: Retry-After is honoured", function()
    local cf, fake = client(function(n)
      if n == 1 then
        return { status = 429, header = { ["Retry-After"] = { "3", "9" }, ["Content-Type"] = "application/json" },
                 body = '{"success":false,"errors":[{"code":971,"message":"slow down"}],"messages":[],"result":null}' }
      end
      return { status = 200, header = {}, body = OK_BODY }
    end)
    assert(cf.impersonation_registry:get(ID))
    assert.are.same({ 3 }, fake.slept)
  end)

  -- capture's res.header keys each spelling apart and keeps no order
  -- between them: the spelling that sorts first counts (README.md, "Inside
  -- nginx"), whatever order pairs() meets them in. Tables of many sizes,
  -- the two spellings put in both orders, make pairs() meet them both ways.
  it("reads a header sent under two spellings as the spelling that sorts first, in every table order", function()
    local seen = {}
    for size = 0, 40 do
      for _, order in ipairs({ { "Retry-After", "retry-after" }, { "retry-after", "Retry-After" } }) do
        local header = { ["Content-Type"] = "application/json", ["CF-RAY"] = "abc-LHR" }
        for i = 1, size do header["X-Filler-" .. i] = "x" end
        local values = { ["Retry-After"] = { "3", "4" }, ["retry-after"] = "9" }
        for _, name in ipairs(order) do header[name] = values[name] end
        local cf = client({ status = 429, header = header,
          body = '{"success":false,"errors":[{"code":971,"message":"slow down"}],"messages":[],"result":null}' },
          { max_retries = 0 })
        local _, err = cf.impersonation_registry:get(ID)
        seen[err.headers["retry-after"]] = true
      end
    end
    assert.are.same({ ["3"] = true }, seen)
  end)

  -- nginx hands the bytes over as sent: the transport decodes them as
  -- libcurl does for the other (spec/hosts/transports_agree_spec.lua compares
  -- the two on the wire)
  it("decodes gzip content it did not ask for, and refuses a coding it does not decode", function()
    local file = os.tmpname()
    local pipe = assert(io.popen("gzip -c -n > " .. file, "w"))
    pipe:write(OK_BODY)
    pipe:close()
    local f = assert(io.open(file, "rb"))
    local packed = f:read("*a")
    f:close()
    os.remove(file)
    for _, coding in ipairs({ "gzip", "x-gzip", { "identity", "gzip" } }) do
      local cf = client({ status = 200, header = { ["Content-Encoding"] = coding }, body = packed })
      local result, err = cf.impersonation_registry:get(ID)
      assert.is_nil(err, err and tostring(err))
      assert.are.equal("A", result.name)
    end
    local cf = client({ status = 200, header = { ["Content-Encoding"] = "br" }, body = packed })
    local _, err = cf.impersonation_registry:get(ID)
    assert.are.same({ "http", 200 }, { err.kind, err.status })
    assert.matches("content coding br, which this client does not decode", err.message, 1, true)
    cf = client({ status = 200, header = { ["Content-Encoding"] = "gzip" }, body = packed }, { max_response_size = 64 })
    _, err = cf.impersonation_registry:get(ID)
    assert.matches("larger than max_response_size (64 bytes)", err.message, 1, true)
  end)

  it("refuses an answer larger than max_response_size", function()
    local cf = client({ status = 200, header = {}, body = OK_BODY }, { max_response_size = 10 })
    local _, err = cf.impersonation_registry:get(ID)
    assert.are.equal("http", err.kind)
    assert.matches("larger than max_response_size (10 bytes)", err.message, 1, true)
  end)

  it("reports a cut-short answer as a transport error", function()
    local cf = client({ status = 200, header = {}, body = '{"success":tr', truncated = true }, { max_retries = 0 })
    local _, err = cf.impersonation_registry:get(ID)
    assert.are.equal("transport", err.kind)
    assert.matches("cut short", err.message)
  end)

  it("explains a subrequest nginx refuses, naming the location, as an error value", function()
    local cf, fake = client(function() error("variable \"cf_es_url\" not found for writing") end)
    local result, err = cf.impersonation_registry:get(ID)
    assert.is_nil(result)
    assert.are.equal("invalid", err.kind)
    assert.are.equal("transport", err.field)
    assert.matches("subrequest to /_cloudflare_email_security failed", err.message, 1, true)
    assert.matches("cf_es_url", err.message, 1, true)
    assert.matches("Inside nginx", tostring(err), 1, true)
    assert.are.equal(1, #fake.calls)                  -- not retried: trying again cannot mend it
  end)

  it("answers with an error value, without a subrequest, in phases that cannot make one", function()
    for _, phase in ipairs({ "timer", "init_worker", "log", "header_filter" }) do
      local _, fake = client({ status = 200, header = {}, body = OK_BODY })
      fake.get_phase = function() return phase end
      local cf = es.new({ account_id = ACCOUNT, api_token = "secret-token" })   -- reads get_phase
      local result, err = cf.impersonation_registry:update(ID, { name = "A" })
      assert.is_nil(result)
      assert.are.equal("invalid", err.kind)
      assert.matches("in the " .. phase .. " phase", err.message, 1, true)
      assert.matches('transport = "curl"', err.message, 1, true)
      assert.are.equal(0, #fake.calls)
    end
    for _, phase in ipairs({ "rewrite", "access", "content" }) do
      local _, fake = client({ status = 200, header = {}, body = OK_BODY })
      fake.get_phase = function() return phase end
      local cf = es.new({ account_id = ACCOUNT, api_token = "secret-token" })
      assert.are.equal("A", assert(cf.impersonation_registry:get(ID)).name)
      assert.are.equal(1, #fake.calls)
    end
  end)

  it("keeps the credential out of the client's fields, and forgets it on close()", function()
    local cf, fake = client({ status = 200, header = {}, body = OK_BODY })
    assert(cf.impersonation_registry:get(ID))
    local seen = {}
    local function search(value, depth)
      if type(value) == "string" then
        assert.is_nil(value:find("secret-token", 1, true))
      elseif type(value) == "table" and not seen[value] and depth < 8 then
        seen[value] = true
        for k, v in pairs(value) do search(k, depth + 1); search(v, depth + 1) end
      end
    end
    search(internals(cf).transport, 0)
    -- the very table each subrequest reads its variables from
    local live = internals(cf).transport
    local real_capture, vars_table = live.capture, nil
    live.capture = function(uri, options) vars_table = options.vars; return real_capture(uri, options) end
    assert(cf.impersonation_registry:get(ID))
    assert.are.equal("Bearer secret-token", vars_table.cf_es_authorization)
    cf:close()
    assert.are.equal("", vars_table.cf_es_authorization)
    assert.are.equal(2, #fake.calls)
  end)

  it("works with an ngx that has no config table", function()
    local fake = fake_ngx({ status = 200, header = {}, body = OK_BODY })
    fake.config = nil
    rawset(_G, "ngx", fake)
    local cf = es.new({ account_id = ACCOUNT, api_token = "t" })
    assert.are.equal("nginx", internals(cf).config.transport)
    assert.are.equal("A", assert(cf.impersonation_registry:get(ID)).name)
  end)

  it("stops after close()", function()
    local cf = client({ status = 200, header = {}, body = OK_BODY })
    cf:close()
    assert.is_true(cf:is_closed())
    assert.has_error(function() cf.impersonation_registry:get(ID) end,
                     "attempt to use a closed cloudflare.email_security client")
  end)

  it("refuses options that only libcurl reads, and bad transport choices", function()
    rawset(_G, "ngx", fake_ngx({}))
    for _, name in ipairs({ "timeout", "connect_timeout" }) do
      local ok, why = pcall(es.new, { account_id = ACCOUNT, api_token = "t", [name] = 5 })
      assert.is_false(ok)
      assert.matches(name .. " has no effect inside nginx", why, 1, true)
    end
    local ok, why = pcall(es.new, { account_id = ACCOUNT, api_token = "t", nginx_location = "no-slash" })
    assert.is_false(ok)
    assert.matches("nginx_location must be", why, 1, true)
    ok, why = pcall(es.new, { account_id = ACCOUNT, api_token = "t", transport = "carrier pigeon" })
    assert.is_false(ok)
    assert.matches('transport must be "curl" or "nginx"', why, 1, true)
    -- libcurl stays available inside nginx when asked for by name
    local cf = es.new({ account_id = ACCOUNT, api_token = "t", transport = "curl", timeout = 5 })
    assert.are.equal("curl", internals(cf).config.transport)
    cf:close()
    rawset(_G, "ngx", nil)
    ok, why = pcall(es.new, { account_id = ACCOUNT, api_token = "t", transport = "nginx" })
    assert.is_false(ok)
    assert.matches("only inside nginx", why, 1, true)
    ok, why = pcall(es.new, { account_id = ACCOUNT, api_token = "t", nginx_location = "/x" })
    assert.is_false(ok)
    assert.matches("nginx_location is for transport", why, 1, true)
  end)
end)
