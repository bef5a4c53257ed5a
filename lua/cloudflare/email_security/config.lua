-- Turns the options of new() and the environment into a checked client
-- configuration. Returns `nil, message` when they cannot make a client; the
-- public constructor raises that message at the caller.

local transport = require("cloudflare.email_security.transport")
local snapshot = require("cloudflare.email_security.snapshot")

local config = {}

-- The options' defaults, here and nowhere else: the C core and the pacer
-- are given every value.
config.DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
config.DEFAULT_TIMEOUT = 60
config.DEFAULT_CONNECT_TIMEOUT = 10
config.DEFAULT_MAX_RESPONSE_SIZE = 8 * 1024 * 1024
config.DEFAULT_MAX_RETRIES = 2
config.DEFAULT_MAX_RETRY_WAIT = 60
config.DEFAULT_NGINX_LOCATION = "/_cloudflare_email_security"
-- Requests in flight at once in bulk work (listings, apply, es.concurrently):
-- 8 comes within a few per cent of what 16 gains on a 50 ms round trip,
-- and leaves the API's budget of 1,200 requests per 5 minutes per token
-- (shared with the dashboard) to the pacer (README, "Requests in flight").
config.DEFAULT_CONCURRENCY = 8
config.MAX_CONCURRENCY = 64
-- What bulk work may start when rate_limit is not given: a sixth of the
-- API's budget (1,200 requests per 5 minutes per token) is left to the
-- dashboard and to anything else using the token. Single calls are not
-- paced by it (rate_limit = false: nothing is).
config.DEFAULT_BULK_RATE_LIMIT = { requests = 1000, per = 300 }

local KNOWN = {
  account_id = true, api_token = true, api_email = true, api_key = true,
  base_url = true, timeout = true, connect_timeout = true, ca_bundle = true,
  max_response_size = true, user_agent = true, max_retries = true, max_retry_wait = true,
  rate_limit = true, sleep = true, log = true, transport = true, nginx_location = true,
  concurrency = true,
}

-- An environment variable set to "" counts as not set, as in most tools.
local function from_env(getenv, name)
  local v = getenv(name)
  if v == "" then return nil end
  return v
end

-- Credentials go into header lines: refuse anything that could split one,
-- without ever echoing the value.
local function check_secret(value, label)
  if type(value) ~= "string" then
    return label .. " must be a string, got " .. type(value)
  end
  if value == "" then return label .. " is empty" end
  -- explicit byte ranges: Lua's %c and %w follow the C locale
  if value:find("[%z\1-\31\127-\255]") then
    return label .. " contains a control character, line break or non-ASCII byte"
  end
end

local function pick_credential(opts, getenv)
  local token, email, key = opts.api_token, opts.api_email, opts.api_key
  if (email ~= nil) ~= (key ~= nil) then
    return nil, "api_email and api_key go together: give both, or use api_token"
  end
  if token ~= nil then
    return { scheme = "token", token = token, source = "api_token" }
  end
  if email ~= nil then
    return { scheme = "key", email = email, key = key, source = "api_email/api_key" }
  end
  token = from_env(getenv, "CLOUDFLARE_API_TOKEN")
  if token then
    return { scheme = "token", token = token, source = "CLOUDFLARE_API_TOKEN" }
  end
  email, key = from_env(getenv, "CLOUDFLARE_EMAIL"), from_env(getenv, "CLOUDFLARE_API_KEY")
  if email and key then
    return { scheme = "key", email = email, key = key,
             source = "CLOUDFLARE_EMAIL/CLOUDFLARE_API_KEY" }
  end
  if email or key then
    return nil, "CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY go together: set both,"
      .. " or set CLOUDFLARE_API_TOKEN"
  end
  return nil, "no credential: pass api_token (or api_email and api_key), or set"
    .. " CLOUDFLARE_API_TOKEN (or CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY)"
end

local function auth_headers(cred)
  if cred.scheme == "token" then
    local bad = check_secret(cred.token, "the API token (" .. cred.source .. ")")
    if bad then return nil, bad end
    return { "Authorization: Bearer " .. cred.token }
  end
  local bad = check_secret(cred.email, "the account email (" .. cred.source .. ")")
    or check_secret(cred.key, "the API key (" .. cred.source .. ")")
  if bad then return nil, bad end
  return { "X-Auth-Email: " .. cred.email, "X-Auth-Key: " .. cred.key }
end

local function check_account_id(id, source)
  if type(id) ~= "string" then
    return source .. " must be a string, got " .. type(id)
  end
  if #id < 1 or #id > 32 or id:find("[^A-Za-z0-9_%-]") then
    return source .. " must be 1 to 32 letters, digits, '-' or '_'"
      .. " (a Cloudflare account id is 32 hex digits)"
  end
end

local function check_base_url(url, source)
  if type(url) ~= "string" then
    return nil, source .. " must be a string, got " .. type(url)
  end
  url = url:gsub("/+$", "")
  if not (url:find("^https://[^/?#%z\1-\32\127]+") or url:find("^http://[^/?#%z\1-\32\127]+")) then
    return nil, source .. " must be an http:// or https:// URL"
  end
  if url:find("[%z\1-\32\127?#]") or url:find("^https?://[^/]*@") then
    return nil, source .. " must not contain spaces, a query, a fragment or user info"
  end
  return url
end

-- libcurl takes milliseconds as a C long: 2^31 - 1 of them fit everywhere.
local MAX_SECONDS = 2147483

local function seconds_to_ms(value, name)
  if type(value) ~= "number" or not (value > 0 and value <= MAX_SECONDS) then
    return nil, name .. (" must be a positive number of seconds, at most %d (24 days)"):format(MAX_SECONDS)
  end
  return math.ceil(value * 1000)
end

--- opts: the table given to new(); getenv: os.getenv or a stand-in.
function config.resolve(opts, getenv)
  getenv = getenv or os.getenv
  -- one raw read, as for fields: what is checked is what is used
  opts = snapshot(opts)
  for name in pairs(opts) do
    if not KNOWN[name] then
      local names = {}
      for known in pairs(KNOWN) do names[#names + 1] = known end
      table.sort(names)
      return nil, "unknown option '" .. tostring(name) .. "'"
        .. require("cloudflare.email_security.schema.validate").suggest(tostring(name), names)
    end
  end

  local c = {}
  local account_id = opts.account_id
  local source = "option account_id"
  if account_id == nil then
    account_id, source = from_env(getenv, "CLOUDFLARE_ACCOUNT_ID"), "CLOUDFLARE_ACCOUNT_ID"
  end
  if account_id == nil then
    return nil, "no account id: pass account_id or set CLOUDFLARE_ACCOUNT_ID"
  end
  local bad = check_account_id(account_id, source)
  if bad then return nil, bad end
  c.account_id = account_id

  local cred, why = pick_credential(opts, getenv)
  if not cred then return nil, why end
  -- where the credential came from, for a 401 or 403 to name (never its value)
  c.credential_source = cred.source
  c.auth_headers, why = auth_headers(cred)
  if not c.auth_headers then return nil, why end

  local url = opts.base_url
  source = "option base_url"
  if url == nil then
    url, source = from_env(getenv, "CLOUDFLARE_BASE_URL"), "CLOUDFLARE_BASE_URL"
  end
  c.base_url, why = check_base_url(url or config.DEFAULT_BASE_URL, source)
  if not c.base_url then return nil, why end

  c.timeout_ms, why = seconds_to_ms(opts.timeout or config.DEFAULT_TIMEOUT, "timeout")
  if not c.timeout_ms then return nil, why end
  c.connect_timeout_ms, why = seconds_to_ms(opts.connect_timeout or config.DEFAULT_CONNECT_TIMEOUT,
                                            "connect_timeout")
  if not c.connect_timeout_ms then return nil, why end

  local size = opts.max_response_size or config.DEFAULT_MAX_RESPONSE_SIZE
  if type(size) ~= "number" or not (size >= 1 and size <= 2 ^ 31 - 1) or size ~= math.floor(size) then
    return nil, "max_response_size must be a whole number of bytes from 1 to 2^31 - 1"
  end
  c.max_response_size = size

  if opts.ca_bundle ~= nil then
    if type(opts.ca_bundle) ~= "string" then
      return nil, "ca_bundle must be the path of a PEM file"
    end
    local f = io.open(opts.ca_bundle, "rb")
    if not f then return nil, "ca_bundle: cannot read " .. opts.ca_bundle end
    f:close()
    c.ca_bundle = opts.ca_bundle
  end

  if opts.user_agent ~= nil and (type(opts.user_agent) ~= "string"
                                 or opts.user_agent:find("[%z\1-\31\127]")) then
    return nil, "user_agent must be a string without control characters"
  end
  c.user_agent_suffix = opts.user_agent

  local retries = opts.max_retries or config.DEFAULT_MAX_RETRIES
  if type(retries) ~= "number" or retries < 0 or retries ~= math.floor(retries) or retries > 100 then
    return nil, "max_retries must be a whole number from 0 to 100"
  end
  c.max_retries = retries
  local wait = opts.max_retry_wait or config.DEFAULT_MAX_RETRY_WAIT
  if type(wait) ~= "number" or wait ~= wait or wait < 0 or wait == math.huge then
    return nil, "max_retry_wait must be a number of seconds, 0 or more"
  end
  c.max_retry_wait = wait

  local concurrency = opts.concurrency or config.DEFAULT_CONCURRENCY
  if type(concurrency) ~= "number" or not (concurrency >= 1 and concurrency <= config.MAX_CONCURRENCY)
     or concurrency ~= math.floor(concurrency) then
    return nil, ("concurrency must be a whole number from 1 to %d (requests in flight at once)")
      :format(config.MAX_CONCURRENCY)
  end
  c.concurrency = concurrency

  local limit = opts.rate_limit
  if limit == nil then
    c.bulk_rate_limit = config.DEFAULT_BULK_RATE_LIMIT
  elseif limit ~= false then
    if type(limit) ~= "table" or type(limit.requests) ~= "number" or limit.requests < 1
       or limit.requests ~= math.floor(limit.requests) or type(limit.per) ~= "number"
       or limit.per ~= limit.per or limit.per <= 0 or limit.per == math.huge then
      return nil, "rate_limit must be { requests = N (a whole number), per = seconds }, or false for none"
    end
    for name in next, limit do
      if name ~= "requests" and name ~= "per" then
        return nil, "rate_limit." .. tostring(name) .. " is not an option of rate_limit (there are: requests, per)"
      end
    end
    c.rate_limit = { requests = limit.requests, per = limit.per }
  end
  if opts.sleep ~= nil and type(opts.sleep) ~= "function" then
    return nil, "sleep must be a function(seconds)"
  end
  c.sleep = opts.sleep
  local lg = opts.log
  if lg ~= nil and lg ~= true and lg ~= false and lg ~= "debug" and type(lg) ~= "function" then
    return nil, "log must be true, \"debug\", false or a function(line)"
  end
  c.log = lg

  -- which transport (transport.lua chooses), and no option only another reads
  c.transport, why = transport.choose(opts.transport)
  if not c.transport then return nil, why end
  why = transport.misplaced(c.transport, opts)
  if why then return nil, why end
  -- read by the nginx transport alone (misplaced refused it for another)
  local location = opts.nginx_location or config.DEFAULT_NGINX_LOCATION
  if type(location) ~= "string" or not location:find("^/[A-Za-z0-9%-%._~/]*$") then
    return nil, "nginx_location must be a location path such as " .. config.DEFAULT_NGINX_LOCATION
  end
  c.nginx_location = location
  return c
end

--- Why id is no account id (source names it in the message), or nil.
config.check_account_id = check_account_id

return config
