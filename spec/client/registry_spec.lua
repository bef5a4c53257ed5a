-- The impersonation registry end to end (every call, each error kind,
-- both credentials), against the stateful emulator on loopback.
local es = require("cloudflare.email_security")
local emulator_process = require("emulator.process")
local cjson = require("cjson")
local internals = require("cloudflare.email_security.client").internals

local ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"
local UNKNOWN_ID = "f174e90a-fafe-4643-bbbc-4a0ed4fc8415"

describe("impersonation registry against the emulator", function()
  local emu, cf, reg

  -- Retries are off here: these specs look at how each single failure is
  -- reported. unit/retry_spec.lua and resilience_spec.lua look at retries.
  local function client(opts)
    opts = opts or {}
    opts.max_retries = opts.max_retries or 0
    opts.account_id = opts.account_id or ACCOUNT
    opts.base_url = opts.base_url or emu.base_url
    if not (opts.api_email or opts.api_key) then
      opts.api_token = opts.api_token or emu.token
    end
    return es.new(opts)
  end

  local function api_requests()
    return emu.requests()
  end

  lazy_setup(function()
    emu = emulator_process.start()
  end)

  lazy_teardown(function()
    if emu then emu.stop() end
  end)

  before_each(function()
    emu.reset()
    cf = client()
    reg = cf.impersonation_registry
  end)

  after_each(function()
    cf:close()
  end)

  it("creates, lists, gets, updates and deletes an entry, then gets 404", function()
    local made, err, env = reg:create({ name = "Jane Roe", email = "jane@example.com",
                                        is_email_regex = false, comments = "board" })
    assert.is_nil(err)
    assert.is_true(env.success)
    assert.matches("^%x+%-%x+%-%x+%-%x+%-%x+$", made.id)
    assert.are.equal("Jane Roe", made.name)
    assert.are.equal("A1S_INTERNAL", made.provenance)

    local page, _, list_env = reg:list({ page = 1, per_page = 50, order = "name", direction = "asc" })
    assert.are.equal(1, #page)
    assert.are.equal(made.id, page[1].id)
    assert.are.equal(1, list_env.result_info.total_count)

    local one = assert(reg:get(made.id))
    assert.are.equal("jane@example.com", one.email)

    local updated = assert(reg:update(made.id, { name = "Jane Q. Roe", comments = es.null }))
    assert.are.equal("Jane Q. Roe", updated.name)
    assert.are.equal(es.null, updated.comments)
    assert.are.equal("jane@example.com", updated.email, "fields not given stay as they were")

    local stored = emu.state(ACCOUNT)
    assert.are.equal(1, #stored)
    assert.are.equal("Jane Q. Roe", stored[1].name)
    assert.are.equal(cjson.null, stored[1].comments)

    local gone = assert(reg:delete(made.id))
    assert.are.same({ id = made.id }, gone)
    assert.are.equal(0, #emu.state(ACCOUNT))

    local none, err404 = reg:get(made.id)
    assert.is_nil(none)
    assert.are.equal("api", err404.kind)
    assert.are.equal(404, err404.status)
    assert.are.equal("GET", err404.method)
    assert.matches(made.id, err404.path, 1, true)
    assert.is_string(err404.ray_id)
    assert.matches("HTTP 404", tostring(err404), 1, true)
  end)

  it("sends a PATCH with only the given fields, as JSON", function()
    local made = assert(reg:create({ name = "A", email = "a@example.com", is_email_regex = false }))
    assert(reg:update(made.id, { is_email_regex = true }))
    local reqs = api_requests()
    local last = reqs[#reqs]
    assert.are.equal("PATCH", last.method)
    assert.are.equal("/client/v4/accounts/" .. ACCOUNT
      .. "/email-security/settings/impersonation_registry/" .. made.id, last.path)
    assert.are.same({ is_email_regex = true }, cjson.decode(last.body))
    assert.matches("application/json", last.headers["content-type"], 1, true)
  end)

  it("sends strings with quotes, backslashes, line breaks and unicode faithfully", function()
    local name = 'O\'Brien "the \\ boss"\r\nline two é 😀'
    local made = assert(reg:create({ name = name, email = "ob@example.com", is_email_regex = false }))
    assert.are.equal(name, made.name)
    assert.are.equal(name, emu.state(ACCOUNT)[1].name)
  end)

  it("walks every page with each", function()
    local entries = {}
    for i = 1, 23 do
      entries[i] = { name = ("Person %02d"):format(i), email = ("p%02d@example.com"):format(i),
                     is_email_regex = false }
    end
    emu.seed(ACCOUNT, entries)
    local names, failures = {}, {}
    for entry, err in reg:each({ per_page = 5, order = "name" }) do
      if entry then names[#names + 1] = entry.name else failures[#failures + 1] = tostring(err) end
    end
    assert.are.same({}, failures)
    assert.are.equal(23, #names)
    assert.are.equal("Person 01", names[1])
    assert.are.equal("Person 23", names[23])
    local pages = 0
    for _, r in ipairs(api_requests()) do
      if r.method == "GET" then pages = pages + 1 end
    end
    assert.are.equal(5, pages, "five pages of five, no sixth request")
  end)

  it("reports a failure in the middle of paging once, then stops", function()
    local entries = {}
    for i = 1, 12 do
      entries[i] = { name = "P" .. i, email = "p" .. i .. "@example.com", is_email_regex = false }
    end
    emu.seed(ACCOUNT, entries)
    emu.fault({ method = "GET", path = "impersonation_registry", times = 1, delay_ms = 0 })
    emu.fault({ method = "GET", path = "impersonation_registry", status = 502,
                headers = { ["Content-Type"] = "text/html" }, body = "<html><title>502 Bad Gateway</title></html>" })
    -- one page at a time: the fault goes to the second GET to arrive, and
    -- pages fetched ahead at once may arrive in either order (a page ahead
    -- that fails: in_flight_spec.lua)
    local one_by_one = client({ concurrency = 1 }).impersonation_registry
    local seen, errs = 0, {}
    for entry, err in one_by_one:each({ per_page = 5 }) do
      if entry then seen = seen + 1 else errs[#errs + 1] = err end
    end
    assert.are.equal(5, seen)
    assert.are.equal(1, #errs)
    assert.are.equal("http", errs[1].kind)
    assert.are.equal(502, errs[1].status)
  end)

  describe("credentials", function()
    it("sends the token as a Bearer header, and no other credential", function()
      local c = client({ api_email = "e@example.com", api_key = "k", api_token = emu.token })
      assert(c.impersonation_registry:list())
      c:close()
      local r = api_requests()[1]
      assert.are.equal("bearer", r.auth)
      assert.is_nil(r.headers["x-auth-email"])
      assert.is_nil(r.headers["x-auth-key"])
    end)

    it("sends the email and key pair as X-Auth-Email and X-Auth-Key", function()
      local c = client({ api_email = emu.email, api_key = emu.key })
      assert(c.impersonation_registry:list())
      c:close()
      local r = api_requests()[1]
      assert.are.equal("key", r.auth)
      assert.are.equal(emu.email, r.headers["x-auth-email"])
      assert.is_nil(r.headers.authorization)
    end)

    it("names this library, Lua and libcurl in the User-Agent", function()
      assert(reg:list())
      local ua = api_requests()[1].headers["user-agent"]
      assert.matches("^cloudflare%-email%-security%-lua/" .. es.VERSION:gsub("%.", "%%."), ua)
      assert.matches("Lua", ua, 1, true)
      assert.matches("libcurl/", ua, 1, true)
    end)

    it("gets 403 code 10000 for a wrong token, without showing it", function()
      local c = client({ api_token = "wrong-secret-token" })
      local page, err = c.impersonation_registry:list()
      c:close()
      assert.is_nil(page)
      assert.are.same({ "api", 403, 10000 }, { err.kind, err.status, err.code })
      assert.is_nil(tostring(err):find("wrong-secret-token", 1, true))
    end)

    it("gets 401 code 10000 when no credential reaches the server", function()
      -- the module never sends a request without one, so ask the transport directly
      local transport = internals(cf).transport
      local core = require("cloudflare.email_security.core")
      local bare = core.new({ user_agent = "spec", timeout_ms = 60000, connect_timeout_ms = 10000,
                              max_response_size = 8388608 })
      local _, err = bare:request("GET", emu.base_url .. "/accounts/" .. ACCOUNT
        .. "/email-security/settings/impersonation_registry")
      bare:close()
      assert.is_userdata(transport)
      assert.are.same({ "api", 401, 10000 }, { err.kind, err.status, err.code })
    end)

    it("reads the account, token and base URL from the environment", function()
      -- env -i: nothing else of this environment; LD_PRELOAD and ASAN_OPTIONS
      -- kept for the sanitizer run, so that the child runs as the suite does
      -- (one CI run under ASan got no output at all from it without the
      -- latter, which leaves LeakSanitizer's check at exit on)
      local cmd = ("cd %q && env -i PATH=%q LD_PRELOAD=%q ASAN_OPTIONS=%q CLOUDFLARE_ACCOUNT_ID=%s"
        .. " CLOUDFLARE_API_TOKEN=%s CLOUDFLARE_BASE_URL=%s LUA_PATH='./lua/?.lua;;' LUA_CPATH=%q %s -e %q")
        :format(os.getenv("PWD") or ".", os.getenv("PATH"), os.getenv("LD_PRELOAD") or "",
                os.getenv("ASAN_OPTIONS") or "", ACCOUNT,
                emu.token, emu.base_url,
                package.cpath, os.getenv("LUA") or "lua5.4",
                "local es = require 'cloudflare.email_security';"
                .. "local r, e = es.new().impersonation_registry:list(); io.write(r and 'ok' or tostring(e));"
                .. "io.stdout:flush()")
      local p = io.popen(cmd)
      local out = p:read("*a")
      p:close()
      assert.are.equal("ok", out)
      assert.are.equal("bearer", api_requests()[1].auth)
    end)
  end)

  describe("errors the API gives", function()
    it("404 for an unknown id, on get, update and delete", function()
      for _, call in ipairs({
        function() return reg:get(UNKNOWN_ID) end,
        function() return reg:update(UNKNOWN_ID, { name = "x" }) end,
        function() return reg:delete(UNKNOWN_ID) end,
      }) do
        local result, err = call()
        assert.is_nil(result)
        assert.are.same({ "api", 404, 1003 }, { err.kind, err.status, err.code })
        assert.matches("not found", err.message)
      end
    end)

    it("422 for a body the schema refuses, when one reaches the server", function()
      -- the module refuses such a body itself, so send it through the bare transport
      local url = emu.base_url .. "/accounts/" .. ACCOUNT .. "/email-security/settings/impersonation_registry"
      local _, err = internals(cf).transport:request("POST", url, '{"name":"x","email":"x@y","is_email_regex":"yes"}')
      assert.are.same({ "api", 422, 1002 }, { err.kind, err.status, err.code })
      assert.matches("is_email_regex", err.message, 1, true)
    end)

    it("400 for malformed JSON", function()
      local url = emu.base_url .. "/accounts/" .. ACCOUNT .. "/email-security/settings/impersonation_registry"
      local _, err = internals(cf).transport:request("POST", url, '{"name":')
      assert.are.same({ "api", 400, 1001 }, { err.kind, err.status, err.code })
    end)

    it("refusal to update a directory-synced entry", function()
      local synced = emu.seed(ACCOUNT, { { name = "Synced", email = "s@example.com", is_email_regex = false,
                                           provenance = "SNOOPY-OFFICE_365", directory_id = 12 } })[1]
      local result, err = reg:update(synced.id, { name = "Changed" })
      assert.is_nil(result)
      assert.are.same({ "api", 400, 1010 }, { err.kind, err.status, err.code })
      assert.matches("Directory%-synced", err.message)
      assert.are.equal("Synced", emu.state(ACCOUNT)[1].name)
    end)

    it("HTTP 200 with success=false", function()
      local made = assert(reg:create({ name = "A", email = "a@example.com", is_email_regex = false }))
      emu.fault({ method = "PATCH", success_false = true, code = 1234, message = "Emulated refusal" })
      local result, err, env = reg:update(made.id, { name = "B" })
      assert.is_nil(result)
      assert.are.same({ "api", 200, 1234, "Emulated refusal" }, { err.kind, err.status, err.code, err.message })
      assert.is_false(env.success)
    end)

    it("an HTML 502 from the edge", function()
      emu.fault({ status = 502, headers = { ["Content-Type"] = "text/html" },
                  body = "<html><head><title>502 Bad Gateway</title></head><body>cloudflare</body></html>" })
      local result, err, env = reg:delete(UNKNOWN_ID)
      assert.is_nil(result)
      assert.is_nil(env)
      assert.are.same({ "http", 502, "502 Bad Gateway" }, { err.kind, err.status, err.excerpt })
      assert.are.equal("DELETE", err.method)
      assert.is_nil(tostring(err):find("\n"))
    end)

    it("a truncated JSON body", function()
      emu.fault({ status = 200, headers = { ["Content-Type"] = "application/json" },
                  body = '{"success":true,"errors":[],"messages":[],"result":{"id":"f174' })
      local result, err = reg:get(UNKNOWN_ID)
      assert.is_nil(result)
      assert.are.same({ "http", 200 }, { err.kind, err.status })
      assert.matches("not valid JSON", err.message)
    end)

    it("a connection cut in the middle of the body", function()
      local made = assert(reg:create({ name = "A", email = "a@example.com", is_email_regex = false }))
      emu.fault({ method = "GET", truncate_to = 20, status = 200,
                  headers = { ["Content-Type"] = "application/json" },
                  body = '{"success":true,"errors":[],"messages":[],"result":{"id":"' .. made.id .. '"}}' })
      local result, err = reg:get(made.id)
      assert.is_nil(result)
      assert.are.equal("transport", err.kind)
    end)

    it("a redirect, which is not followed", function()
      emu.fault({ status = 302, headers = { Location = "http://127.0.0.1:1/elsewhere" }, body = "" })
      local result, err = reg:get(UNKNOWN_ID)
      assert.is_nil(result)
      assert.are.same({ "http", 302 }, { err.kind, err.status })
      assert.are.equal(1, #api_requests(), "only the first request was made")
    end)

    it("a body larger than max_response_size", function()
      local c = client({ max_response_size = 512 })
      local entries = {}
      for i = 1, 20 do
        entries[i] = { name = "P" .. i, email = "p" .. i .. "@example.com", is_email_regex = false }
      end
      emu.seed(ACCOUNT, entries)
      local result, err = c.impersonation_registry:list({ per_page = 20 })
      c:close()
      assert.is_nil(result)
      assert.are.equal("http", err.kind)
      assert.matches("max_response_size (512 bytes)", err.message, 1, true)
    end)
  end)

  describe("errors of the network", function()
    it("connection refused", function()
      -- a port nobody listens on: bind one, note it, close it
      local socket = require("socket")
      local s = assert(socket.bind("127.0.0.1", 0))
      local _, port = s:getsockname()
      s:close()
      local c = client({ base_url = "http://127.0.0.1:" .. port .. "/client/v4" })
      local result, err = c.impersonation_registry:update(UNKNOWN_ID, { name = "x" })
      c:close()
      assert.is_nil(result)
      assert.are.equal("transport", err.kind)
      assert.are.equal("PATCH", err.method)
      assert.is_number(err.curl_code)
    end)

    it("a reply slower than the timeout", function()
      local c = client({ timeout = 0.3 })
      emu.fault({ delay_ms = 2000 })
      local socket = require("socket")
      local t0 = socket.gettime()
      local result, err = c.impersonation_registry:delete(UNKNOWN_ID)
      local elapsed = socket.gettime() - t0
      c:close()
      assert.is_nil(result)
      assert.are.equal("timeout", err.kind)
      assert.is_true(elapsed < 1.5, "gave up after " .. elapsed .. " s")
    end)
  end)

  describe("refused before sending", function()
    local cases = {
      { "update with an empty body", function() return reg:update(UNKNOWN_ID, {}) end, "fields" },
      { "update of a read-only field", function() return reg:update(UNKNOWN_ID, { id = UNKNOWN_ID }) end, "id" },
      { "update with a non-uuid id", function() return reg:update("42", { name = "x" }) end, "impersonation_registry_id" },
      { "delete with a path in the id", function() return reg:delete("../../../user") end, "impersonation_registry_id" },
      { "create without email", function() return reg:create({ name = "x", is_email_regex = false }) end, "email" },
      { "create with a bad provenance", function()
          return reg:create({ name = "x", email = "x@y", is_email_regex = false, provenance = "X" }) end, "provenance" },
      { "a name over 1024 characters", function() return reg:update(UNKNOWN_ID, { name = ("n"):rep(1025) }) end, "name" },
      { "per_page over 1000", function() return reg:list({ per_page = 1001 }) end, "per_page" },
      { "an unknown order", function() return reg:list({ order = "id" }) end, "order" },
    }
    for _, case in ipairs(cases) do
      it(case[1], function()
        local result, err = case[2]()
        assert.is_nil(result)
        assert.are.equal("invalid", err.kind)
        assert.are.equal(case[3], err.field)
        assert.matches(case[3], tostring(err), 1, true)
        assert.are.equal(0, #api_requests(), "no request reached the server")
      end)
    end
  end)

  describe("misuse of a call raises", function()
    it("a dot instead of a colon", function()
      assert.has_error(function() reg.update(UNKNOWN_ID, { name = "x" }) end,
        "bad self to 'update' (call it as r:update(...), not r.update(...))")
    end)
    it("an id that is not a string", function()
      assert.has_error(function() reg:get(42) end, "bad argument #1 to 'get' (string expected, got number)")
    end)
    it("fields that are not a table", function()
      assert.has_error(function() reg:update(UNKNOWN_ID, "name=x") end,
        "bad argument #2 to 'update' (table expected, got string)")
    end)
    it("new() without an account id names the option and the variable", function()
      -- in a process of its own without the variable, whatever this one has
      local p = io.popen(("env -u CLOUDFLARE_ACCOUNT_ID LUA_PATH='./lua/?.lua;;' LUA_CPATH=%q %s -e %q 2>&1")
        :format(package.cpath, os.getenv("LUA") or "lua5.4",
                "print(pcall(require('cloudflare.email_security').new, { api_token = 't' }))"))
      local out = p:read("*a")
      p:close()
      assert.matches("^false\t", out)
      assert.matches("account_id", out, 1, true)
      assert.matches("CLOUDFLARE_ACCOUNT_ID", out, 1, true)
    end)
  end)

  describe("closing", function()
    it("is harmless twice, and a later call raises", function()
      local c = client()
      c:close()
      c:close()
      assert.is_true(c:is_closed())
      assert.has_error(function() c.impersonation_registry:get(UNKNOWN_ID) end,
        "attempt to use a closed cloudflare.email_security client")
    end)

    it("happens at the end of a <close> block", function()
      if _VERSION ~= "Lua 5.4" then
        pending("to-be-closed variables are Lua 5.4's")
        return
      end
      local chunk = assert(load([[
        local es, opts = ...
        local kept
        do
          local c <close> = es.new(opts)
          kept = c
        end
        return kept:is_closed()
      ]]))
      assert.is_true(chunk(es, { account_id = ACCOUNT, api_token = "t", base_url = emu.base_url }))
    end)

    it("happens when the collector frees the client: its connection is closed", function()
      -- the sockets this process has open, by inode
      local pid = assert(io.open("/proc/self/stat")):read("*l"):match("^(%d+)")
      local function sockets()
        local p = io.popen("ls -l /proc/" .. pid .. "/fd")
        local set = {}
        for inode in p:read("*a"):gmatch("socket:%[(%d+)%]") do set[inode] = true end
        p:close()
        return set
      end
      collectgarbage()
      local before = sockets()
      local c = client()
      assert(c.impersonation_registry:list())   -- a kept-alive connection now
      local its = {}
      for inode in pairs(sockets()) do
        if not before[inode] then its[#its + 1] = inode end
      end
      assert.is_true(#its > 0, "the client holds a socket")
      c = nil  -- luacheck: ignore
      collectgarbage()
      collectgarbage()
      local now = sockets()
      for _, inode in ipairs(its) do
        assert.is_nil(now[inode], "the collected client's socket " .. inode .. " is still open")
      end
    end)
  end)

  it("reuses one connection across calls", function()
    local made = assert(reg:create({ name = "A", email = "a@example.com", is_email_regex = false }))
    assert(reg:update(made.id, { name = "B" }))
    assert(reg:get(made.id))
    assert(reg:delete(made.id))
    local conns = {}
    for _, r in ipairs(api_requests()) do
      if r.connection then conns[r.connection] = true end
    end
    local n = 0
    for _ in pairs(conns) do n = n + 1 end
    assert.are.equal(1, n, "all four calls went over one connection")
  end)
end)
