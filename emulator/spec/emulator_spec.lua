-- The emulator itself, over real HTTP on loopback. The client specs trust
-- what it answers, so this pins its answers, its state, its control routes
-- and each fault kind, with a small raw HTTP client that hides nothing
-- (status, headers, framing, cut connections).
local socket = require("socket")
local cjson = require("cjson")
local emulator_process = require("emulator.process")
local process = require("spec.support.process")

local ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"
local UUID_V4 = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"
local STAMP = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%d%d%d%dZ$"
local ENTRY_KEYS = { "comments", "created_at", "directory_id", "directory_node_id", "email",
                     "external_directory_node_id", "id", "is_email_regex", "last_modified", "modified_at",
                     "name", "provenance" }

local function collection(acct) return "/client/v4/accounts/" .. (acct or ACCOUNT)
  .. "/email-security/settings/impersonation_registry" end
local function item(id, acct) return collection(acct) .. "/" .. id end

local function keys_of(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

---------------------------------------------------------------------------
-- A raw HTTP/1.1 client: one request per call unless a connection is given
---------------------------------------------------------------------------

local function connect(emu)
  local c = assert(socket.connect("127.0.0.1", emu.port))
  c:settimeout(5)
  return c
end

local function send(c, method, path, headers, body)
  local lines = { method .. " " .. path .. " HTTP/1.1", "Host: 127.0.0.1" }
  for k, v in pairs(headers or {}) do lines[#lines + 1] = k .. ": " .. v end
  if body then lines[#lines + 1] = "Content-Length: " .. #body end
  assert(c:send(table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or "")))
end

local function read_chunked(c)
  local parts = {}
  while true do
    local size_line = assert(c:receive("*l"))
    local size = tonumber(size_line, 16)
    if size == 0 then
      assert(c:receive("*l"))
      return table.concat(parts)
    end
    parts[#parts + 1] = assert(c:receive(size))
    assert(c:receive("*l"))
  end
end

-- { status, headers (lower-case names), body, json (decoded when it is
-- JSON), cut (the error when the body stopped short) }, or nil and the
-- error when no status line came.
local function receive(c)
  local line, err = c:receive("*l")
  if not line then return nil, err end
  local res = { status = tonumber(line:match("^HTTP/1%.1 (%d%d%d) ")), headers = {} }
  while true do
    local h = assert(c:receive("*l"))
    if h == "" then break end
    local k, v = h:match("^([^:]+):%s*(.*)$")
    res.headers[k:lower()] = v
  end
  if res.headers["transfer-encoding"] == "chunked" then
    res.body = read_chunked(c)
  else
    local length = tonumber(res.headers["content-length"] or "0")
    local body, cut, partial = c:receive(length)
    res.body, res.cut = body or partial, cut
  end
  local ok, value = pcall(cjson.decode, res.body)
  if ok then res.json = value end
  return res
end

-- One request on its own connection, closed after.
local function call(emu, method, path, headers, body)
  local c = connect(emu)
  local h = { Connection = "close" }
  for k, v in pairs(headers or {}) do h[k] = v end
  send(c, method, path, h, body)
  local res, err = receive(c)
  c:close()
  return res, err
end

local function bearer(emu) return { Authorization = "Bearer " .. emu.token } end

local function api(emu, method, path, body)
  return assert(call(emu, method, path, bearer(emu), body))
end

local function assert_error(res, status, code, message)
  assert.are.equal(status, res.status)
  assert.is_false(res.json.success)
  assert.are.equal(cjson.null, res.json.result)
  assert.are.same({}, res.json.messages)
  assert.are.equal(1, #res.json.errors)
  assert.are.equal(code, res.json.errors[1].code)
  if message then assert.are.equal(message, res.json.errors[1].message) end
end

local function new_entry_body(name, email)
  return cjson.encode({ name = name or "John Doe", email = email or "john.doe@example.com", is_email_regex = false })
end

---------------------------------------------------------------------------

describe("the emulator", function()
  local emu

  lazy_setup(function() emu = emulator_process.start() end)
  lazy_teardown(function() if emu then emu.stop() end end)
  before_each(function() emu.reset() end)

  describe("every API answer", function()
    it("is JSON with a cf-ray id and the Cloudflare envelope", function()
      local res = api(emu, "GET", collection())
      assert.are.equal(200, res.status)
      assert.are.equal("application/json", res.headers["content-type"])
      assert.matches("^" .. ("[0-9a-f]"):rep(16) .. "%-EMU$", res.headers["cf-ray"])
      assert.is_true(res.json.success)
      assert.are.same({}, res.json.errors)
      assert.are.same({}, res.json.messages)
      -- an empty page is a list, not an object
      assert.matches('"result":[]', res.body, 1, true)
    end)

    it("404 code 7003 for a path that is not a route", function()
      for _, path in ipairs({ "/client/v4/nope", "/accounts/" .. ACCOUNT .. "/email-security/settings/impersonation_registry",
                              collection() .. "/a/b", "/" }) do
        assert_error(api(emu, "GET", path), 404, 7003, "No route for the URI")
      end
    end)

    it("404 code 7003 for an account id that cannot be one", function()
      assert_error(api(emu, "GET", collection(("a"):rep(33))), 404, 7003)
      assert_error(api(emu, "GET", collection("a.b")), 404, 7003)
      assert.are.equal(200, api(emu, "GET", collection(("a"):rep(32))).status)
      assert.are.equal(200, api(emu, "GET", collection("A-z_9")).status)
    end)

    it("405 code 7001 for a method a known path does not take", function()
      assert_error(api(emu, "PUT", collection(), "{}"), 405, 7001, "Method not allowed")
      assert_error(api(emu, "DELETE", collection()), 405, 7001)
      assert_error(api(emu, "POST", item("f174e90a-fafe-4643-bbbc-4a0ed4fc8415"), "{}"), 405, 7001)
    end)
  end)

  describe("authentication", function()
    it("401 code 10000 with no credential at all", function()
      assert_error(assert(call(emu, "GET", collection())), 401, 10000, "Authentication error")
    end)

    it("403 code 10000 for a wrong token, a wrong key, or half a key pair", function()
      assert_error(assert(call(emu, "GET", collection(), { Authorization = "Bearer nope" })), 403, 10000,
                   "Authentication error")
      assert_error(assert(call(emu, "GET", collection(), { ["X-Auth-Email"] = emu.email, ["X-Auth-Key"] = "nope" })),
                   403, 10000)
      assert_error(assert(call(emu, "GET", collection(), { ["X-Auth-Email"] = emu.email })), 403, 10000)
      assert_error(assert(call(emu, "GET", collection(), { Authorization = emu.token })), 403, 10000)
    end)

    it("is checked before the route's method and the body", function()
      assert_error(assert(call(emu, "PUT", collection(), nil, "{")), 401, 10000)
      assert_error(assert(call(emu, "POST", collection(), { Authorization = "Bearer x" }, "{")), 403, 10000)
    end)

    it("takes a bearer token or the email and key pair, and records which", function()
      assert.are.equal(200, assert(call(emu, "GET", collection(), bearer(emu))).status)
      assert.are.equal(200, assert(call(emu, "GET", collection(),
                                        { ["X-Auth-Email"] = emu.email, ["X-Auth-Key"] = emu.key })).status)
      assert.are.equal(401, assert(call(emu, "GET", collection())).status)
      local reqs = emu.requests()
      assert.are.same({ "bearer", "key", "none" }, { reqs[1].auth, reqs[2].auth, reqs[3].auth })
    end)

    it("honours --token, --email and --key", function()
      local other = emulator_process.start({ token = "tok-2", email = "e@x.io", key = "k-2" })
      local ok, err = pcall(function()
        assert.are.equal(403, assert(call(other, "GET", collection(), { Authorization = "Bearer test-token" })).status)
        assert.are.equal(200, assert(call(other, "GET", collection(), { Authorization = "Bearer tok-2" })).status)
        assert.are.equal(200, assert(call(other, "GET", collection(),
                                          { ["X-Auth-Email"] = "e@x.io", ["X-Auth-Key"] = "k-2" })).status)
      end)
      other.stop()
      assert(ok, err)
    end)
  end)

  describe("entries", function()
    it("create 201, get, list, patch, delete, then 404", function()
      local created = api(emu, "POST", collection(), new_entry_body())
      assert.are.equal(201, created.status)
      local e = created.json.result
      assert.are.same(ENTRY_KEYS, keys_of(e))
      assert.matches(UUID_V4, e.id)
      assert.are.same({ "John Doe", "john.doe@example.com", false, cjson.null, cjson.null, cjson.null, cjson.null,
                        "A1S_INTERNAL" },
                      { e.name, e.email, e.is_email_regex, e.comments, e.directory_id, e.directory_node_id,
                        e.external_directory_node_id, e.provenance })
      assert.matches(STAMP, e.created_at)
      assert.are.equal(e.created_at, e.modified_at)
      assert.are.equal(e.created_at, e.last_modified)

      local got = api(emu, "GET", item(e.id))
      assert.are.equal(200, got.status)
      assert.are.same(e, got.json.result)

      local listed = api(emu, "GET", collection())
      assert.are.same({ e }, listed.json.result)
      assert.are.same({ count = 1, page = 1, per_page = 20, total_count = 1 }, listed.json.result_info)

      local patched = api(emu, "PATCH", item(e.id), '{"comments":"CEO","directory_node_id":null}')
      assert.are.equal(200, patched.status)
      local p = patched.json.result
      assert.are.equal("CEO", p.comments)
      assert.are.equal("John Doe", p.name, "fields not given stay")
      assert.are.equal(e.created_at, p.created_at)
      assert.matches(STAMP, p.modified_at)
      assert.is_true(p.modified_at > e.modified_at)
      assert.are.equal(p.modified_at, p.last_modified)
      assert.are.same(p, emu.state(ACCOUNT)[1])

      local deleted = api(emu, "DELETE", item(e.id))
      assert.are.equal(200, deleted.status)
      assert.are.same({ id = e.id }, deleted.json.result)
      assert.are.same({}, emu.state(ACCOUNT))

      for _, method in ipairs({ "GET", "PATCH", "DELETE" }) do
        assert_error(api(emu, method, item(e.id), method == "PATCH" and '{"name":"x"}' or nil), 404, 1003,
                     "Impersonation registry entry not found")
      end
    end)

    it("404 code 1003 for an id that is not a uuid", function()
      assert_error(api(emu, "GET", item("not-a-uuid")), 404, 1003)
      assert_error(api(emu, "DELETE", item("%20")), 404, 1003)
    end)

    it("keeps each account's entries apart", function()
      assert.are.equal(201, api(emu, "POST", collection("acct-a"), new_entry_body("A")).status)
      local b = api(emu, "POST", collection("acct-b"), new_entry_body("B")).json.result
      assert.are.equal(1, #emu.state("acct-a"))
      assert.are.equal(0, api(emu, "GET", collection()).json.result_info.total_count)
      assert_error(api(emu, "GET", item(b.id, "acct-a")), 404, 1003)
    end)

    it("accepts every writable field, and null where the schema allows it", function()
      local res = api(emu, "POST", collection(), cjson.encode({
        name = "N", email = ".*@example%.com", is_email_regex = true, comments = cjson.null, directory_id = cjson.null,
        directory_node_id = 7, external_directory_node_id = "ext", provenance = "A1S_INTERNAL" }))
      assert.are.equal(201, res.status)
      assert.are.same({ true, 7, "ext" }, { res.json.result.is_email_regex, res.json.result.directory_node_id,
                                          res.json.result.external_directory_node_id })
      assert.matches('"directory_node_id":7[,}]', res.body)
    end)

    it("counts the 1024-character limit on name in UTF-8 characters, not bytes", function()
      local res = api(emu, "POST", collection(), new_entry_body(("é"):rep(1024)))
      assert.are.equal(201, res.status)
      assert.are.equal(("é"):rep(1024), res.json.result.name)
      assert_error(api(emu, "POST", collection(), new_entry_body(("é"):rep(1025))), 422, 1002,
                   "name: must be at most 1024 characters")
    end)
  end)

  describe("validation", function()
    local CREATE_REFUSALS = {
      { '{"email":"a@b.c","is_email_regex":false}', "name: required" },
      { '{"name":"A","is_email_regex":false}', "email: required" },
      { '{"name":"A","email":"a@b.c"}', "is_email_regex: required" },
      { '{"name":null,"email":"a@b.c","is_email_regex":false}', "name: must not be null" },
      { '{"name":5,"email":"a@b.c","is_email_regex":false}', "name: must be a string" },
      { '{"name":"A","email":"a@b.c","is_email_regex":"yes"}', "is_email_regex: must be a boolean" },
      { '{"name":"A","email":"a@b.c","is_email_regex":false,"directory_id":1.5}', "directory_id: must be an integer" },
      { '{"name":"A","email":"a@b.c","is_email_regex":false,"comments":[]}', "comments: must be a string" },
      { '{"name":"A","email":"a@b.c","is_email_regex":false,"provenance":"LDAP"}',
        "provenance: must be one of A1S_INTERNAL, SNOOPY-CASB_OFFICE_365, SNOOPY-OFFICE_365, SNOOPY-GOOGLE_DIRECTORY" },
      { '{"name":"A","email":"a@b.c","is_email_regex":false,"foo":1}', "foo: unknown field" },
      { '{"name":"A","email":"a@b.c","is_email_regex":false,"id":"f174e90a-fafe-4643-bbbc-4a0ed4fc8415"}',
        "id: read-only field" },
      { '{"name":"A","email":"a@b.c","is_email_regex":false,"created_at":"2026-01-01T00:00:00Z"}',
        "created_at: read-only field" },
      { '["name"]', "body: must be a JSON object" },
    }
    for _, case in ipairs(CREATE_REFUSALS) do
      it("refuses a create with 422 code 1002: " .. case[2], function()
        assert_error(api(emu, "POST", collection(), case[1]), 422, 1002, case[2])
        assert.are.same({}, emu.state(ACCOUNT), "nothing was stored")
      end)
    end

    it("refuses an update with 422 code 1002 and leaves the entry as it was", function()
      local e = api(emu, "POST", collection(), new_entry_body()).json.result
      assert_error(api(emu, "PATCH", item(e.id), "{}"), 422, 1002, "body: at least one field is required")
      assert_error(api(emu, "PATCH", item(e.id), '{"modified_at":"x"}'), 422, 1002, "modified_at: read-only field")
      assert_error(api(emu, "PATCH", item(e.id), '{"is_email_regex":null}'), 422, 1002,
                   "is_email_regex: must not be null")
      assert_error(api(emu, "PATCH", item(e.id), cjson.encode({ name = ("n"):rep(1025) })), 422, 1002,
                   "name: must be at most 1024 characters")
      assert.are.same(e, emu.state(ACCOUNT)[1])
    end)

    it("400 code 1001 for malformed JSON, on create and on update", function()
      assert_error(api(emu, "POST", collection(), '{"name":'), 400, 1001, "Malformed JSON in request body")
      assert_error(api(emu, "POST", collection(), ""), 400, 1001)
      local e = api(emu, "POST", collection(), new_entry_body()).json.result
      assert_error(api(emu, "PATCH", item(e.id), "{'name':'x'}"), 400, 1001)
    end)

    it("refuses to update a directory-synced entry with 400 code 1010", function()
      local seeded = emu.seed(ACCOUNT, {
        { name = "Synced", email = "s@example.com", is_email_regex = false, provenance = "SNOOPY-OFFICE_365" },
        { name = "Dir", email = "d@example.com", is_email_regex = false, directory_id = 12 },
        { name = "Mine", email = "m@example.com", is_email_regex = false },
      })
      for i = 1, 2 do
        assert_error(api(emu, "PATCH", item(seeded[i].id), '{"name":"Changed"}'), 400, 1010,
                     "Directory-synced entries can't be updated")
      end
      assert.are.equal(200, api(emu, "PATCH", item(seeded[3].id), '{"name":"Changed"}').status)
      local names = {}
      for _, e in ipairs(emu.state(ACCOUNT)) do names[#names + 1] = e.name end
      assert.are.same({ "Synced", "Dir", "Changed" }, names)
    end)
  end)

  describe("lists", function()
    local function seed(n)
      local entries = {}
      for i = 1, n do
        entries[i] = { name = ("Person %02d"):format(i), email = ("p%02d@example.com"):format(i), is_email_regex = false }
      end
      return emu.seed(ACCOUNT, entries)
    end

    local function names(res)
      local out = {}
      for i, e in ipairs(res.json.result) do out[i] = e.name end
      return out
    end

    it("pages in creation order with page, per_page, count and total_count", function()
      seed(45)
      local first = api(emu, "GET", collection())
      assert.are.same({ count = 20, page = 1, per_page = 20, total_count = 45 }, first.json.result_info)
      assert.are.equal("Person 01", first.json.result[1].name)
      local last = api(emu, "GET", collection() .. "?page=3&per_page=20")
      assert.are.same({ count = 5, page = 3, per_page = 20, total_count = 45 }, last.json.result_info)
      assert.are.same({ "Person 41", "Person 42", "Person 43", "Person 44", "Person 45" }, names(last))
      local beyond = api(emu, "GET", collection() .. "?page=4")
      assert.are.same({}, beyond.json.result)
      assert.are.same({ count = 0, page = 4, per_page = 20, total_count = 45 }, beyond.json.result_info)
      assert.are.equal(45, #api(emu, "GET", collection() .. "?per_page=1000").json.result)
      assert.are.equal(1, #api(emu, "GET", collection() .. "?per_page=1").json.result)
    end)

    it("422 code 1002 naming the parameter for a value out of bounds", function()
      for query, name in pairs({ ["per_page=1001"] = "per_page", ["per_page=0"] = "per_page", ["per_page=x"] = "per_page",
                                 ["page=0"] = "page", ["page=-1"] = "page", ["page=1.5"] = "page",
                                 ["order=id"] = "order", ["direction=up"] = "direction",
                                 ["provenance=LDAP"] = "provenance" }) do
        local res = api(emu, "GET", collection() .. "?" .. query)
        assert_error(res, 422, 1002)
        assert.matches("^" .. name .. ": ", res.json.errors[1].message, nil, false)
      end
    end)

    it("searches name and email without regard to case, percent-decoded, + as space", function()
      seed(12)
      emu.seed(ACCOUNT, { { name = "Ada Lovelace", email = "ADA@EXAMPLE.ORG", is_email_regex = false } })
      assert.are.same({ "Person 10", "Person 11", "Person 12" }, names(api(emu, "GET", collection() .. "?search=PERSON+1")))
      assert.are.same({ "Person 10", "Person 11", "Person 12" },
                      names(api(emu, "GET", collection() .. "?search=person%201")))
      local res = api(emu, "GET", collection() .. "?search=example.org")
      assert.are.same({ "Ada Lovelace" }, names(res))
      assert.are.equal(1, res.json.result_info.total_count)
    end)

    it("orders by name or email either way, filters by provenance, ignores unknown parameters", function()
      emu.seed(ACCOUNT, {
        { name = "b", email = "z@x", is_email_regex = false },
        { name = "a", email = "y@x", is_email_regex = false, provenance = "SNOOPY-GOOGLE_DIRECTORY" },
        { name = "c", email = "x@x", is_email_regex = false },
      })
      assert.are.same({ "a", "b", "c" }, names(api(emu, "GET", collection() .. "?order=name")))
      assert.are.same({ "c", "b", "a" }, names(api(emu, "GET", collection() .. "?order=name&direction=desc")))
      assert.are.same({ "c", "a", "b" }, names(api(emu, "GET", collection() .. "?order=email")))
      assert.are.same({ "c", "a", "b" }, names(api(emu, "GET", collection() .. "?direction=desc")))
      assert.are.same({ "a" }, names(api(emu, "GET", collection() .. "?provenance=SNOOPY-GOOGLE_DIRECTORY")))
      assert.are.same({ "b", "a", "c" }, names(api(emu, "GET", collection() .. "?colour=blue&order=created_at")))
    end)
  end)

  describe("HTTP", function()
    it("keeps a connection alive for several requests", function()
      local c = connect(emu)
      send(c, "GET", collection(), bearer(emu))
      assert.are.equal(200, assert(receive(c)).status)
      send(c, "POST", collection(), bearer(emu), new_entry_body())
      assert.are.equal(201, assert(receive(c)).status)
      c:close()
      local reqs = emu.requests()
      assert.are.equal(reqs[1].connection, reqs[2].connection)
    end)

    it("closes after an answer when asked to", function()
      local c = connect(emu)
      send(c, "GET", collection(), { Authorization = "Bearer " .. emu.token, Connection = "close" })
      local res = assert(receive(c))
      assert.are.equal("close", res.headers["connection"])
      assert.are.equal("closed", select(2, c:receive("*l")))
      c:close()
    end)

    it("answers a malformed request with 400 and closes", function()
      for _, head in ipairs({ "NONSENSE\r\n\r\n", "GET / HTTP/1.1\r\nno colon here\r\n\r\n",
                              "GET " .. collection() .. " HTTP/1.1\r\nContent-Length: ten\r\n\r\n" }) do
        local c = connect(emu)
        assert(c:send(head))
        local res = assert(receive(c))
        assert.are.equal(400, res.status)
        assert.are.equal("closed", select(2, c:receive("*l")))
        c:close()
      end
    end)

    it("refuses a chunked request body with 411", function()
      local c = connect(emu)
      assert(c:send("POST " .. collection() .. " HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"))
      assert.are.equal(411, assert(receive(c)).status)
      c:close()
    end)

    it("survives a client that leaves in the middle of a request", function()
      local c = connect(emu)
      assert(c:send("POST " .. collection() .. " HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"na"))
      c:close()
      assert.are.equal(200, api(emu, "GET", collection()).status)
    end)
  end)

  describe("faults", function()
    it("delay_ms holds one answer back without holding up another connection", function()
      emu.fault({ path = "/accounts/slow/", delay_ms = 1500 })
      local slow = connect(emu)
      local t0 = socket.gettime()
      send(slow, "GET", collection("slow"), bearer(emu))
      socket.sleep(0.1)   -- the slow request is in and waiting
      local t1 = socket.gettime()
      local quick = api(emu, "GET", collection("fast"))
      local quick_time = socket.gettime() - t1
      assert.are.equal(200, quick.status)
      assert.is_true(quick_time < 0.5, "the other connection took " .. quick_time .. " s")
      local res = assert(receive(slow))
      local slow_time = socket.gettime() - t0
      slow:close()
      assert.are.equal(200, res.status)
      assert.is_true(slow_time >= 1.45, "the delayed answer came after " .. slow_time .. " s")
    end)

    it("status, headers and body replace the answer, verbatim, `times` times", function()
      local html = "<html><head><title>502 Bad Gateway</title></head><body>cloudflare</body></html>"
      emu.fault({ method = "GET", times = 2, status = 502, headers = { ["Content-Type"] = "text/html" }, body = html })
      for _ = 1, 2 do
        local res = api(emu, "GET", collection())
        assert.are.equal(502, res.status)
        assert.are.equal("text/html", res.headers["content-type"])
        assert.are.equal(html, res.body)
        assert.are.equal(tostring(#html), res.headers["content-length"])
        assert.matches("%-EMU$", res.headers["cf-ray"])
      end
      assert.are.equal(200, api(emu, "GET", collection()).status, "used up after two")
    end)

    it("matches only its method and path", function()
      emu.fault({ method = "DELETE", status = 503 })
      emu.fault({ path = "/accounts/other/", status = 504 })
      assert.are.equal(200, api(emu, "GET", collection()).status)
      assert.are.equal(504, api(emu, "GET", collection("other")).status)
      assert.are.equal(503, api(emu, "DELETE", item("x")).status)
      assert.are.equal(404, api(emu, "DELETE", item("x")).status)
    end)

    it("headers alone are added to the real answer; null removes one", function()
      emu.fault({ headers = { ["Retry-After"] = "3", ["cf-ray"] = cjson.null } })
      local res = api(emu, "GET", collection())
      assert.are.equal(200, res.status)
      assert.are.equal("3", res.headers["retry-after"])
      assert.is_nil(res.headers["cf-ray"])
      assert.is_true(res.json.success)
    end)

    it("truncate_to advertises the whole length, sends that many bytes, and closes", function()
      local body = '{"success":true,"errors":[],"messages":[],"result":{"id":"x"}}'
      emu.fault({ status = 200, headers = { ["Content-Type"] = "application/json" }, body = body, truncate_to = 20 })
      local res = api(emu, "GET", collection())
      assert.are.equal(tostring(#body), res.headers["content-length"])
      assert.are.equal(body:sub(1, 20), res.body)
      assert.are.equal("closed", res.cut)
    end)

    it("truncate_to cuts the real answer too", function()
      emu.fault({ truncate_to = 5 })
      local res = api(emu, "GET", collection())
      assert.are.equal(200, res.status)
      assert.are.equal('{"suc', res.body)
      assert.are.equal("closed", res.cut)
    end)

    it("reused = true waits for a request that is not the first on its connection", function()
      emu.fault({ method = "GET", reused = true, close = true })
      local c = connect(emu)
      send(c, "GET", collection(), bearer(emu))
      assert.are.equal(200, assert(receive(c)).status, "the first request on a connection passes")
      send(c, "GET", collection(), bearer(emu))
      local res, err = receive(c)
      c:close()
      assert.is_nil(res)
      assert.are.equal("closed", err)
      assert.are.equal(200, api(emu, "GET", collection()).status, "the fault was used up")
      local reqs = emu.requests()
      assert.are.same({ 3, reqs[1].connection }, { #reqs, reqs[2].connection })
    end)

    it("refuse_ms closes the port for that long once the request is done with", function()
      emu.fault({ method = "GET", close = true, refuse_ms = 400 })
      assert.is_nil(call(emu, "GET", collection(), bearer(emu)))
      local refused = socket.connect("127.0.0.1", emu.port)
      assert.is_nil(refused, "a new connection is refused meanwhile")
      socket.sleep(0.6)
      assert.are.equal(200, api(emu, "GET", collection()).status, "and taken again after")
    end)

    it("a header given as a list goes out once per item, in order", function()
      emu.fault({ method = "GET", headers = { ["Retry-After"] = { "1", "30" } } })
      local c = connect(emu)
      send(c, "GET", collection(), { Authorization = "Bearer " .. emu.token, Connection = "close" })
      local wire = assert(c:receive("*a"))
      c:close()
      local values = {}
      for v in wire:gmatch("\r\nRetry%-After: ([^\r]*)") do values[#values + 1] = v end
      assert.are.same({ "1", "30" }, values)
    end)

    it("close drops the connection without a byte, after the request was logged", function()
      emu.fault({ method = "POST", close = true })
      local res, err = call(emu, "POST", collection(), bearer(emu), new_entry_body())
      assert.is_nil(res)
      assert.are.equal("closed", err)
      assert.are.equal(1, #emu.requests())
      assert.are.same({}, emu.state(ACCOUNT), "the request never acted")
    end)

    it("success_false answers HTTP 200 with success false, after the request acted", function()
      emu.fault({ method = "POST", success_false = true, code = 1234, message = "Emulated refusal" })
      emu.fault({ method = "GET", success_false = true })
      local res = api(emu, "POST", collection(), new_entry_body())
      assert_error(res, 200, 1234, "Emulated refusal")
      assert.are.equal(1, #emu.state(ACCOUNT))
      assert_error(api(emu, "GET", collection()), 200, 1000, "Emulated failure")
    end)

    it("after = true lets the request act, then answers as the fault says", function()
      emu.fault({ method = "POST", after = true, status = 500, body = "oops" })
      local res = api(emu, "POST", collection(), new_entry_body())
      assert.are.same({ 500, "oops" }, { res.status, res.body })
      assert.are.equal(1, #emu.state(ACCOUNT))
    end)

    it("body_delay_ms sends the head at once and the body later", function()
      emu.fault({ body_delay_ms = 800 })
      local c = connect(emu)
      local t0 = socket.gettime()
      send(c, "GET", collection(), bearer(emu))
      assert.matches("^HTTP/1%.1 200", assert(c:receive("*l")))
      local head_time = socket.gettime() - t0
      repeat local h = assert(c:receive("*l")) until h == ""
      assert(c:receive(10))
      local body_time = socket.gettime() - t0
      c:close()
      assert.is_true(head_time < 0.4, "head after " .. head_time .. " s")
      assert.is_true(body_time >= 0.75, "body after " .. body_time .. " s")
    end)

    it("chunked and gzip change the framing and encoding of the real answer", function()
      emu.fault({ chunked = true, chunk_size = 5 })
      local res = api(emu, "GET", collection())
      assert.are.equal("chunked", res.headers["transfer-encoding"])
      assert.is_nil(res.headers["content-length"])
      assert.is_true(res.json.success)
      emu.fault({ gzip = true })
      res = api(emu, "GET", collection())
      assert.are.equal("gzip", res.headers["content-encoding"])
      assert.are.equal("\31\139", res.body:sub(1, 2))
    end)

    it("close_after closes the connection after a whole answer", function()
      emu.fault({ close_after = true })
      local c = connect(emu)
      send(c, "GET", collection(), bearer(emu))
      local res = assert(receive(c))
      assert.are.equal(200, res.status)
      assert.is_nil(res.cut)
      assert.are.equal("closed", select(2, c:receive("*l")))
      c:close()
    end)

    it("outlives a client that gives up while its answer is delayed", function()
      emu.fault({ delay_ms = 300, method = "POST" })
      local c = connect(emu)
      send(c, "POST", collection(), bearer(emu), new_entry_body())
      c:close()
      socket.sleep(0.5)
      assert.are.equal(200, api(emu, "GET", collection()).status)
      assert.are.equal(1, #emu.state(ACCOUNT), "the request acted even though nobody heard the answer")
    end)

    it("refuses a fault it does not know, so a typo cannot pass unnoticed", function()
      local ok, err = pcall(emu.fault, { stauts = 500 })
      assert.is_false(ok)
      assert.matches("unknown fault field stauts", tostring(err), 1, true)
      assert.are.equal(200, api(emu, "GET", collection()).status)
    end)
  end)

  describe("control routes", function()
    it("the request log has every API request, bodies byte for byte, credentials redacted", function()
      local body = '{"name":"Zoë \\"Z\\"","email":"z@example.com",\r\n "is_email_regex":false}'
      call(emu, "POST", collection(), bearer(emu), body)
      call(emu, "GET", collection() .. "?search=a%20b", { ["X-Auth-Email"] = emu.email, ["X-Auth-Key"] = emu.key })
      call(emu, "GET", "/client/v4/elsewhere")
      emu.state(ACCOUNT)    -- control requests are not logged
      local reqs = emu.requests()
      assert.are.equal(3, #reqs)
      assert.are.same({ "POST", collection(), "", body, "bearer", "<redacted>" },
                      { reqs[1].method, reqs[1].path, reqs[1].query, reqs[1].body, reqs[1].auth,
                        reqs[1].headers.authorization })
      assert.are.same({ "search=a%20b", "key", emu.email, "<redacted>" },
                      { reqs[2].query, reqs[2].auth, reqs[2].headers["x-auth-email"], reqs[2].headers["x-auth-key"] })
      assert.are.same({ "/client/v4/elsewhere", "none" }, { reqs[3].path, reqs[3].auth })
      local raw = cjson.encode(reqs)
      assert.is_nil(raw:find(emu.token, 1, true))
      assert.is_nil(raw:find(emu.key, 1, true))
    end)

    it("seed fills ids, timestamps and defaults, and keeps what it is given", function()
      local stored = emu.seed(ACCOUNT, {
        { name = "A", email = "a@x", is_email_regex = false },
        { id = "f174e90a-fafe-4643-bbbc-4a0ed4fc8415", name = "B", email = "b@x", is_email_regex = true,
          provenance = "SNOOPY-CASB_OFFICE_365", directory_id = 3 },
      })
      assert.are.equal(2, #stored)
      assert.matches(UUID_V4, stored[1].id)
      assert.matches(STAMP, stored[1].created_at)
      assert.are.same({ "A1S_INTERNAL", cjson.null, cjson.null }, { stored[1].provenance, stored[1].comments,
                                                                   stored[1].directory_id })
      assert.are.same({ "f174e90a-fafe-4643-bbbc-4a0ed4fc8415", "SNOOPY-CASB_OFFICE_365", 3 },
                      { stored[2].id, stored[2].provenance, stored[2].directory_id })
      assert.are.same(stored, emu.state(ACCOUNT))
      assert.are.equal("B", api(emu, "GET", item(stored[2].id)).json.result.name)
    end)

    it("DELETE faults clears pending faults and keeps entries and the request log", function()
      emu.seed(ACCOUNT, { { name = "Kept", email = "k@example.com", is_email_regex = false } })
      emu.fault({ method = "GET", status = 503, body = "busy", times = 5 })
      emu.clear_faults()
      local res = api(emu, "GET", collection())
      assert.are.equal(200, res.status)
      assert.are.equal("Kept", res.json.result[1].name)
      assert.are.equal(1, #emu.requests())
    end)

    it("reset clears entries, pending faults and the request log", function()
      emu.seed(ACCOUNT, { { name = "A", email = "a@x", is_email_regex = false } })
      emu.fault({ status = 500 })
      api(emu, "GET", item("x"))
      emu.fault({ status = 500 })
      emu.reset()
      assert.are.same({}, emu.state(ACCOUNT))
      assert.are.same({}, emu.requests())
      assert.are.equal(200, api(emu, "GET", collection()).status, "the fault went too")
    end)

    it("refuses a control body it cannot use, with a clear error", function()
      local ok, err = pcall(emu.seed, "bad account!", {})
      assert.is_false(ok)
      assert.matches("seed", tostring(err))
      local res = assert(call(emu, "POST", "/__emulator/faults", nil, "{"))
      assert.are.equal(400, res.status)
      assert.are.equal(404, assert(call(emu, "GET", "/__emulator/nothing")).status)
    end)
  end)
end)

describe("the emulator process", function()
  local script = "emulator/main.lua"

  it("prints one line when ready, and exits by itself when idle", function()
    local t0 = socket.gettime()
    local p = assert(io.popen("lua5.4 " .. script .. " --port 0 --idle-exit 1 2>&1"))
    local line = p:read("*l")
    local rest = p:read("*a")
    p:close()
    assert.matches("^listening on http://127%.0%.0%.1:%d+$", line)
    assert.are.equal("", rest)
    local took = socket.gettime() - t0
    assert.is_true(took >= 1 and took < 5, "exited after " .. took .. " s")
  end)

  it("with --banner (make emulator) says how to point a client at it, and when it stops", function()
    local p = assert(io.popen("lua5.4 " .. script .. " --port 0 --idle-exit 1 --banner 2>&1"))
    local out = p:read("*a")
    p:close()
    local port = out:match("^listening on http://127%.0%.0%.1:(%d+)\n")
    assert.is_truthy(port, out)
    assert.matches('base_url = "http://127.0.0.1:' .. port .. '/client/v4", api_token = "test-token"', out, 1, true)
    assert.matches("account_id = any 1 to 32 of", out, 1, true)
    assert.matches("PORT=N picks the port", out, 1, true)
    -- a line to paste, which the tool and es.new() read
    assert.matches("\nexport CLOUDFLARE_BASE_URL=http://127.0.0.1:" .. port .. "/client/v4 CLOUDFLARE_API_TOKEN=test-token "
      .. "CLOUDFLARE_ACCOUNT_ID=023e105f4ecef8ad9ca31a8372d0c353\n", out, 1, true)
    assert.matches("stopped: idle for 1 s\n$", out)
  end)

  it("refuses to listen anywhere but 127.0.0.1", function()
    local p = assert(io.popen("lua5.4 " .. script .. " --host 0.0.0.0 --port 0 --idle-exit 1 2>&1; echo \"rc=$?\""))
    local out = p:read("*a")
    p:close()
    assert.matches("127.0.0.1 only", out, 1, true)
    assert.matches("rc=2", out, 1, true)
    assert.is_nil(out:find("listening", 1, true))
  end)

  it("a process that exited is not alive, reaped or not (kill -0 still succeeds on a zombie)", function()
    local pid_file = os.tmpname()
    -- the shell exits at once: the sleep's parent is now an init that may never reap it
    os.execute("sleep 0.05 >/dev/null 2>&1 & echo $! > " .. pid_file)
    local f = assert(io.open(pid_file))
    local pid = tonumber(f:read("*a"))
    f:close()
    os.remove(pid_file)
    assert.is_true(process.alive(pid))
    socket.sleep(0.5)
    assert.is_false(process.alive(pid))
  end)

  it("starts, answers, and stops for good; stop() twice is harmless", function()
    local emu = emulator_process.start({ idle_exit = 30 })
    assert.are.equal("http://127.0.0.1:" .. emu.port .. "/client/v4", emu.base_url)
    assert.are.same({}, emu.requests())
    emu.stop()
    emu.stop()
    assert.is_false(process.alive(emu.pid), "the process is gone (exited, if not yet reaped)")
    assert.is_nil(socket.connect("127.0.0.1", emu.port))
    local ok, err = pcall(emu.requests)
    assert.is_false(ok)
    assert.matches("did not answer", tostring(err), 1, true)
  end)
end)
