-- The two transports make the same of every answer: one set of canned
-- answers (spec/support/nginx_canned_api.lua, byte for byte on the wire)
-- goes once to libcurl (this process) and once through nginx (a real one,
-- with the proxy locations of spec/support/nginx_direct.conf), and each
-- call's outcome must be equal: the result, the error's kind, status,
-- code, message, headers, and what the retry policy makes of it. Each
-- answer also says what both must come to, so that two equal mistakes do
-- not pass.
local cjson = require("cjson")
local es = require("cloudflare.email_security")
local canned = require("spec.support.nginx_canned_api")
local nginx_process = require("spec.support.nginx_process")
local app = require("spec.support.nginx_app")

local ID = canned.ENTRY_ID
local NEW = { name = "Alice", email = "alice@example.com", is_email_regex = false }

local function entry(o)
  assert.is_nil(o.err, o.err and o.err.text)
  assert.are.equal("Alice", o.result and o.result.name)
end

local function failed(kind, status, code)
  return function(o)
    assert.is_nil(o.result)
    assert.are.same({ kind, status, code }, { o.err.kind, o.err.status, o.err.code }, o.err.text)
  end
end

local function refused_coding(coding)
  return function(o)
    failed("http", 200)(o)
    assert.matches(("content coding %s"):format(coding), o.err.message, 1, true)
  end
end

local function corrupt(o)
  failed("http", 200)(o)
  assert.matches("could not be decoded", o.err.message, 1, true)
end

-- name -> { check of the outcome, op (default get), opts (es.new options) }
local CASES = {
  plain = { entry },
  gzip = { entry },
  gzip_chunked = { entry },
  gzip_upper_case = { entry },
  x_gzip = { entry },
  gzip_holding_zlib = { entry },
  deflate = { entry },
  deflate_raw = { entry },
  identity = { entry },
  gzip_twice = { entry },
  gzip_two_header_lines = { entry },
  gzip_api_error = { failed("api", 404, 1003) },
  gzip_empty = { failed("http", 200) },
  gzip_large = { function(o)
    failed("http", 200)(o)
    assert.matches("larger than max_response_size (100000 bytes)", o.err.message, 1, true)
  end, opts = { max_response_size = 100000 } },
  gzip_corrupt = { corrupt },
  -- as libcurl does, what the stream held is the answer: here an envelope
  -- cut in the middle, which the envelope decoder refuses
  gzip_ends_early = { function(o)
    failed("http", 200)(o)
    assert.matches("not valid JSON", o.err.message, 1, true)
  end },
  gzip_then_more = { corrupt },
  br = { refused_coding("br") },
  zstd = { refused_coding("zstd") },
  compress = { refused_coding("compress") },
  unknown_coding = { refused_coding("x-made-up") },
  cut_short = { function(o)
    failed("transport", 200)(o)
    assert.is_true(o.err.retried)
  end },
  cut_short_gzip = { function(o)
    failed("transport", 200)(o)
    assert.is_true(o.err.retried)
  end },
  created_cut_short = { function(o)
    failed("transport", 201)(o)
    assert.is_true(o.err.may_exist)
  end, op = "create" },
  html_502 = { function(o)
    failed("http", 502)(o)
    assert.is_true(o.err.retried)
  end },
  success_false_200 = { failed("api", 200, 1000) },
  not_found = { failed("api", 404, 1003) },
  empty_200 = { failed("http", 200) },
  no_content_204 = { function(o)
    -- a get answered without an entry: no envelope to read
    assert.is_nil(o.result)
    assert.are.same({ "http", 204 }, { o.err.kind, o.err.status })
  end },
  not_json = { failed("http", 200) },
  retry_after_429 = { function(o)
    failed("api", 429, 971)(o)
    assert.are.equal("30", o.err.headers["retry-after"])
  end },
  retry_after_twice = { function(o)
    failed("api", 429, 971)(o)
    assert.are.equal("30", o.err.headers["retry-after"])
  end },
  retry_after_two_spellings = { function(o)
    failed("api", 429, 971)(o)
    assert.are.equal("30", o.err.headers["retry-after"])
  end },
  should_not_retry_503 = { function(o)
    failed("api", 503, 10000)(o)
    assert.are.equal("false", o.err.headers["x-should-retry"])
    assert.is_false(o.err.retried)
  end },
}

-- The answers where the two transports cannot agree, and what each does
-- instead (README.md, "Inside nginx").
local DIFFER = {
  -- nginx's capture keeps the two spellings apart and loses their order:
  -- it takes the one whose name sorts first (Retry-After), libcurl the
  -- first to arrive (retry-after)
  retry_after_two_spellings_reversed = function(curl, nginx)
    assert.are.equal("60", curl.err.headers["retry-after"])
    assert.are.equal("30", nginx.err.headers["retry-after"])
    curl.err.headers, nginx.err.headers = nil, nil
    curl.err.retry_after, nginx.err.retry_after = nil, nil
    curl.err.text, nginx.err.text = nil, nil
    assert.are.same(curl, nginx)
  end,
}

local function options(server, name, extra)
  local o = { account_id = "acct1", api_token = "canned-token", base_url = server.base_url(name),
              max_retries = 0, max_retry_wait = 2 }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

-- Through libcurl, here; then as JSON, as nginx's outcome comes.
local function through_curl(server, name, case)
  local cf = es.new(options(server, name, case.opts))
  local reg = cf.impersonation_registry
  local result, err
  if case.op == "create" then result, err = reg:create(NEW) else result, err = reg:get(ID) end
  cf:close()
  return cjson.decode(cjson.encode(app.outcome(result, err)))
end

local socket = require("socket")

local function through_nginx(nginx, server, name, case)
  local query = ("op=%s&id=%s&max_retries=0&base_url=%s"):format(case.op or "get", ID, server.base_url(name))
  for k, v in pairs(case.opts or {}) do query = query .. "&" .. k .. "=" .. tostring(v) end
  local body = case.op == "create" and cjson.encode(NEW) or nil
  local c = assert(socket.connect("127.0.0.1", nginx.port))
  c:settimeout(15)
  assert(c:send(("%s /call?%s HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n%s")
    :format(body and "POST" or "GET", query, body and #body or 0, body or "")))
  local answer = assert(c:receive("*a"))
  c:close()
  local status = tonumber(answer:match("^HTTP/%d%.%d (%d+)"))
  local text = answer:match("\r\n\r\n(.*)$")
  assert.are.equal(200, status, text .. "\nnginx's log:\n" .. nginx.error_log())
  local o = cjson.decode(text)
  o.pid = nil
  return o
end

describe("the libcurl and nginx transports", function()
  local server, nginx

  lazy_setup(function()
    local missing = nginx_process.missing()
    if missing then
      if os.getenv("CI") then error(missing) end
      return
    end
    server = canned.start()
    nginx = nginx_process.start({ locations = [[
    location = /call {
      set $es_token "canned-token";
      content_by_lua_block { require("spec.support.nginx_app").call() }
    }
]] })
  end)

  lazy_teardown(function()
    if nginx then nginx.stop() end
    if server then server.stop() end
  end)

  it("have a case for every canned answer", function()
    for _, name in ipairs(canned.NAMES) do
      assert.is_true(CASES[name] ~= nil or DIFFER[name] ~= nil, "no case for the canned answer " .. name)
    end
  end)

  for _, name in ipairs(canned.NAMES) do
    local case = CASES[name] or { op = "get" }
    it("make the same of the answer " .. name, function()
      if not nginx then return pending(nginx_process.missing() or "nginx did not start") end
      local curl = through_curl(server, name, case)
      local via_nginx = through_nginx(nginx, server, name, case)
      if DIFFER[name] then return DIFFER[name](curl, via_nginx) end
      -- no answer, or part of one: each transport says in its own words
      -- what happened to the connection (libcurl's, or nginx's flag)
      if curl.err and (curl.err.kind == "transport" or curl.err.kind == "timeout") then
        assert.are.equal(curl.err.kind, via_nginx.err and via_nginx.err.kind)
        for _, o in ipairs({ curl, via_nginx }) do
          o.err.text = o.err.text:gsub(": " .. o.err.message:gsub("%p", "%%%0"), ": <its words>")
          o.err.message, o.err.broken = nil, nil
        end
      end
      assert.are.same(curl, via_nginx)
      case[1](via_nginx)
    end)
  end
end)
