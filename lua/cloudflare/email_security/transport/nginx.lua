-- The nginx transport (the interface: transport.lua), for code running inside nginx (lua-nginx-module, as in
-- OpenResty or Debian's libnginx-mod-http-lua). libcurl would block the
-- whole worker while it waits; here each request is an nginx subrequest
-- (ngx.location.capture) to an internal proxy location the user declares
-- (README, "Inside nginx"), so the worker goes on serving other requests
-- and only the calling request waits. Answers go through the same C
-- decoder as libcurl's, their gzip or deflate content through the C core's
-- zlib as libcurl's (nginx hands the bytes over as they were sent).
--
-- The URL and the credential reach that location as nginx variables, set
-- for the subrequest alone (capture's `vars`); they are declared with `set`
-- in a location of their own, because a `set` in the proxy location would
-- run again inside the subrequest and clear them.

local core = require("cloudflare.email_security.core")
local errors = require("cloudflare.email_security.errors")

local nginx_transport = {}

-- The options only this transport reads (transport.lua).
nginx_transport.OPTIONS = { "nginx_location" }

-- The variables the proxy location reads. A variable left empty makes
-- proxy_set_header send no such header.
nginx_transport.VARIABLES = {
  "cf_es_url", "cf_es_uri", "cf_es_authorization", "cf_es_auth_email", "cf_es_auth_key",
  "cf_es_user_agent", "cf_es_content_type",
}

-- The response headers the retry and pacing policy reads: the C core's
-- own list, so that both transports report the same ones.
local WANTED = {}
for _, name in ipairs(core.response_headers) do WANTED[name] = true end

--- Is this code running in an nginx HTTP request context with subrequests?
function nginx_transport.available()
  local ngx = rawget(_G, "ngx")
  return type(ngx) == "table" and type(ngx.location) == "table"
    and type(ngx.location.capture) == "function"
    and (type(ngx.config) ~= "table" or ngx.config.subsystem == nil
         or ngx.config.subsystem == "http")
end

nginx_transport.UNAVAILABLE = "transport \"nginx\" works only inside nginx's Lua (ngx.location.capture)"

--- What a client of this transport is told of an option another reads.
function nginx_transport.foreign(option)
  return option .. " has no effect inside nginx: set it on the proxy location"
    .. " (README, \"Inside nginx\"), or pass transport = \"curl\""
end

--- The HTTP part of the User-Agent: nginx's version.
function nginx_transport.agent()
  -- ngx.config.nginx_version is a number: 1022001 for 1.22.1
  local ngx_config = rawget(_G, "ngx").config
  local n = type(ngx_config) == "table" and tonumber(ngx_config.nginx_version) or 0
  return ("nginx/%d.%d.%d"):format(math.floor(n / 1e6), math.floor(n / 1e3) % 1e3, n % 1e3)
end

--- The sleep between retries: ngx.sleep yields to nginx's event loop.
function nginx_transport.sleep()
  return rawget(_G, "ngx").sleep
end

local function new_error(kind, status, message, ray_id)
  return errors.new(kind, message, { status = status, ray_id = ray_id })
end

-- capture's res.header: one key per spelling of a name as it arrived, a
-- header sent twice under one spelling a list of its values in order. Which
-- of two spellings ("Retry-After", "retry-after") came first is lost there:
-- the spelling that sorts first in byte order counts ("Retry-After" before
-- "retry-after"), whatever the order of pairs(), so that one answer always
-- reads the same (README, "Inside nginx"; libcurl takes the first to arrive).
-- Returns lower-cased name -> the spellings found, sorted, for the names
-- read here (the policy's and Content-Encoding).
local function spellings(raw)
  local by_name = {}
  for name in pairs(raw) do
    local lower = name:lower()
    if WANTED[lower] or lower == "content-encoding" then
      local list = by_name[lower]
      if not list then
        list = {}
        by_name[lower] = list
      end
      list[#list + 1] = name
    end
  end
  for _, list in pairs(by_name) do
    if #list > 1 then table.sort(list) end
  end
  return by_name
end

-- Lower-cased names; of a header sent twice the first value counts, and
-- bytes outside printable ASCII become '?': both as in the libcurl
-- transport (src/http.c).
local function wanted_headers(raw, by_name)
  local out
  for lower, list in pairs(by_name) do
    if WANTED[lower] then
      local value = raw[list[1]]
      if type(value) == "table" then value = value[1] end
      out = out or {}
      out[lower] = tostring(value):sub(1, 127):gsub("[^\32-\126]", "?")
    end
  end
  return out
end

-- The answer's Content-Encoding, every line of it (libcurl stacks the
-- codings of all its lines), or nil.
local function content_encoding(raw, by_name)
  local list = by_name["content-encoding"]
  if not list then return nil end
  local parts = {}
  for _, name in ipairs(list) do
    local value = raw[name]
    if type(value) == "table" then
      for _, v in ipairs(value) do parts[#parts + 1] = tostring(v) end
    else
      parts[#parts + 1] = tostring(value)
    end
  end
  return table.concat(parts, ", ")
end

local Transport = {}
Transport.__index = Transport

-- The credential's variables, kept out of the transport's fields so that
-- code holding a client cannot read them there, and emptied by close().
local secret_vars = setmetatable({}, { __mode = "k" })

-- Where ngx.location.capture works (lua-nginx-module's documentation).
-- Elsewhere (timers, init_worker, log, header and body filters) it raises;
-- a call there gets an error value that says what to use instead.
local CAPTURE_PHASES = { rewrite = true, access = true, content = true }

local function refused(message)
  local err = new_error("invalid", nil, message)
  err.field = "transport"
  return err
end

--- request(method, url, body) -> as transport.lua says. once needs nothing
--- here: nginx never sends a POST twice by itself (with
--- `proxy_next_upstream off`, as README's location has it, it sends no
--- request twice), even on a kept-alive upstream connection that dies.
--- compressed neither: the proxy location decides what it asks for, and a
--- gzip or deflate answer is decoded all the same.
function Transport:request(method, url, body)
  if self.closed then
    error("attempt to use a closed cloudflare.email_security client", 2)
  end
  local phase = self.get_phase and self.get_phase()
  if phase and not CAPTURE_PHASES[phase] then
    return nil, refused(("transport: nginx subrequests cannot be made in the %s phase (only in"
      .. " rewrite, access and content handlers); from a timer or init_worker, make this client"
      .. " with transport = \"curl\", which blocks the worker while it waits"):format(phase)), nil
  end
  local vars = secret_vars[self]
  -- capture copies the values into the subrequest before it yields, so one
  -- table serves every call, even from several light threads at once.
  vars.cf_es_url = url
  -- the path and query alone, for a location that proxies to an upstream{}
  -- block (kept-alive connections): proxy_pass https://name$cf_es_uri
  vars.cf_es_uri = url:match("^https?://[^/]+(/.*)$") or "/"
  vars.cf_es_content_type = body and "application/json" or ""
  local ok, res = pcall(self.capture, self.location,
                        { method = self.methods[method], body = body, vars = vars })
  if not ok then
    return nil, refused(("transport: the nginx subrequest to %s failed (%s); it needs the"
      .. " locations of README.md's \"Inside nginx\""):format(self.location, tostring(res))), nil
  end
  local status, text, raw = res.status, res.body or "", res.header or {}
  local by_name = spellings(raw)
  local headers = wanted_headers(raw, by_name)
  local ray = headers and headers["cf-ray"]

  -- nginx's own 502 and 504 (the API could not be reached, or did not
  -- answer within proxy_read_timeout) come without a body: the API's
  -- always have one. (nginx also flags them truncated.)
  if text == "" and (status == 502 or status == 504) and not ray then
    local err = new_error(status == 504 and "timeout" or "transport", nil,
      ("no answer from the API through nginx (nginx gave HTTP %d; its error log says why)")
        :format(status))
    err.broken, err.nginx_status, err.headers = true, status, headers
    return nil, err, nil
  end
  -- An answer nginx made itself, before proxying: lua-nginx-module gives
  -- the status nginx ended the subrequest with, no body, and truncated
  -- (no body was ever sent down the subrequest), and none of the API's
  -- headers (Cloudflare's edge sends cf-ray with every answer, its own
  -- errors included). A 4xx from nginx (413: the body is over
  -- client_max_body_size; 404: no such location; 403: a rule denied it)
  -- comes from a phase before the proxy's, so nothing went to the API:
  -- refused here, never retried, and a create it refused certainly does
  -- not exist. 499 is not among them: nginx ends a subrequest so when the
  -- visitor goes away while it waits for the API, after sending.
  if res.truncated and text == "" and not ray and status >= 400 and status < 499 then
    local err = refused(status == 413
      and ("transport: nginx refused to send the request body (%d bytes) itself (its own HTTP 413:"
        .. " over client_max_body_size); nothing was sent to the API. Raise client_max_body_size in the"
        .. " proxy location (%s) of README.md's \"Inside nginx\""):format(body and #body or 0, self.location)
      or ("transport: nginx answered HTTP %d itself, before sending anything to the API (its error log"
        .. " says why): see the proxy location (%s) of README.md's \"Inside nginx\""):format(status,
        self.location))
    err.nginx_status, err.headers = status, headers
    return nil, err, nil
  end
  if res.truncated then
    -- the API's status when its answer had begun (a body, or its headers)
    local answered = text ~= "" or ray ~= nil
    local err = new_error("transport", answered and status or nil,
                          "the answer was cut short (nginx: res.truncated)", ray)
    err.broken, err.headers = true, headers
    return nil, err, nil
  end
  if #text > self.max_response_size then
    local err = new_error("http", status, ("response body larger than max_response_size (%d bytes)")
                          :format(self.max_response_size), ray)
    err.headers = headers
    return nil, err, nil
  end

  -- gzip or deflate content is decoded as libcurl decodes it for the
  -- other transport, in C, to at most max_response_size bytes
  local coding = content_encoding(raw, by_name)
  local result, err, envelope
  if coding then
    result, err, envelope = core.decode(status, text, headers, coding, self.max_response_size)
  else
    result, err, envelope = core.decode(status, text, headers)
  end
  if err then
    err.headers = headers
    return nil, err, envelope
  end
  return result, nil, envelope, headers
end

local unpack = table.unpack or rawget(_G, "unpack")

local function pack(...)
  return { n = select("#", ...), ... }
end

-- Requests in flight belong to the nginx request that started them (its
-- light threads do, and nginx lets only that request wait on them): their
-- bookkeeping lives in ngx.ctx, one record per client, and the scheduler's
-- own (scheduler.lua) likewise, through scope(). Each light thread leaves
-- its answer in the record and posts a semaphore, which any coroutine of
-- the request may wait on (ngx.thread.wait would allow only the one that
-- spawned the thread: a listing inside cf:concurrently spawns from a task).
local function in_flight(self)
  local ctx = self.ctx()
  local record = ctx[self]
  if not record then
    record = { count = 0, started = 0, answers = {}, order = {}, first = 1, last = 0,
               sema = self.semaphore.new(0), scope = {} }
    ctx[self] = record
  end
  return record
end

--- The table where per-request state of this client lives: the
--- scheduler keeps its queue there (nginx requests do not share one).
function Transport:scope()
  return in_flight(self).scope
end

--- start(method, url, body) -> slot: the request in a light thread of its
--- own (ngx.thread.spawn), so that several subrequests are in flight at
--- once; wait gives its slot when it ends, answer its answer.
function Transport:start(method, url, body, once, compressed)
  if self.closed then
    error("attempt to use a closed cloudflare.email_security client", 2)
  end
  local record = in_flight(self)
  local slot = record.started + 1
  record.started = slot
  local thread, why = self.spawn(function()
    -- whatever happens, the thread answers for its slot
    local out = pack(pcall(self.request, self, method, url, body, once, compressed))
    if not out[1] then
      out = { true, nil, refused("transport: the nginx light thread failed: " .. tostring(out[2])), nil, n = 4 }
    end
    record.answers[slot] = out
    record.last = record.last + 1
    record.order[record.last] = slot
    record.sema:post(1)
  end)
  if not thread then
    return nil, refused("transport: nginx could not start a light thread (" .. tostring(why) .. ")")
  end
  record.count = record.count + 1
  return slot
end

-- ngx.semaphore's wait takes a timeout (in milliseconds, as a C int): no
-- timeout is a day's wait, again until one ends.
local A_DAY = 24 * 3600

--- wait([seconds]) -> slot of the first request started here (by this
--- nginx request) to end; nothing when none ends within that long or none
--- is in flight. The worker serves others meanwhile.
function Transport:wait(seconds)
  local record = in_flight(self)
  if record.count == 0 then return end
  local ok = record.sema:wait(seconds or A_DAY)
  while not ok and not seconds do ok = record.sema:wait(A_DAY) end
  if not ok then return end
  local slot = record.order[record.first]
  record.order[record.first] = nil
  record.first = record.first + 1
  record.count = record.count - 1
  return slot
end

--- answer(slot) -> result, err, envelope [, headers] of a request wait gave.
function Transport:answer(slot)
  local record = in_flight(self)
  local out = record.answers[slot]
  record.answers[slot] = nil
  return unpack(out, 2, out.n)
end

function Transport:close()
  local vars = secret_vars[self]
  vars.cf_es_authorization, vars.cf_es_auth_email, vars.cf_es_auth_key = "", "", ""
  self.closed = true
end

function Transport:is_closed()
  return self.closed
end

-- ngx.HTTP_GET and the others, for the C core's methods (core.methods).
local function methods_of(ngx)
  local map = {}
  for _, m in ipairs(core.methods) do
    map[m] = ngx["HTTP_" .. m]
    if map[m] == nil then error("cloudflare.email_security: nginx has no ngx.HTTP_" .. m, 3) end
  end
  return map
end

--- cfg: the checked configuration (config.lua): nginx_location (the proxy
--- location's URI), auth_headers (the credential's "Name: value" lines),
--- max_response_size; user_agent: the whole User-Agent line's value.
function nginx_transport.new(cfg, user_agent)
  local ngx = rawget(_G, "ngx")
  local vars = { cf_es_user_agent = user_agent, cf_es_authorization = "",
                 cf_es_auth_email = "", cf_es_auth_key = "" }
  local by_header = { authorization = "cf_es_authorization", ["x-auth-email"] = "cf_es_auth_email",
                      ["x-auth-key"] = "cf_es_auth_key" }
  for _, line in ipairs(cfg.auth_headers) do
    local name, value = line:match("^([^:]+):%s*(.*)$")
    local var = name and by_header[name:lower()]
    if not var then error("cloudflare.email_security: no nginx variable for a header", 2) end
    vars[var] = value
  end
  local transport = setmetatable({
    location = cfg.nginx_location,
    max_response_size = cfg.max_response_size,
    capture = ngx.location.capture,
    methods = methods_of(ngx),
    get_phase = ngx.get_phase,
    closed = false,
    -- light threads, for requests in flight at once (start, wait)
    spawn = type(ngx.thread) == "table" and ngx.thread.spawn or nil,
  }, Transport)
  -- ngx.semaphore comes with lua-resty-core (OpenResty's, Debian's)
  local has_semaphore, semaphore = pcall(require, "ngx.semaphore")
  if transport.spawn and has_semaphore then
    transport.semaphore = semaphore
    transport.ctx = function() return ngx.ctx end
  else
    -- one request at a time (scheduler.lua), its state the client's
    transport.start, transport.scope = false, false
  end
  secret_vars[transport] = vars
  return transport
end

return nginx_transport
