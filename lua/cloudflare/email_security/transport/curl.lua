-- The curl transport (the interface: transport.lua): the C core's session
-- on libcurl (src/session.c), one reused handle per client, so that
-- connections and TLS sessions are kept. It blocks the thread while it
-- waits. The transport is the C userdata itself: its request, close and
-- is_closed are C functions, with nothing in Lua between.

local core = require("cloudflare.email_security.core")

local curl = {}

-- The options only this transport reads (transport.lua): inside nginx the
-- proxy location's directives (proxy_read_timeout,
-- proxy_ssl_trusted_certificate...) govern instead.
curl.OPTIONS = { "timeout", "connect_timeout", "ca_bundle" }

function curl.available()
  return true
end

--- What a client of this transport is told of an option another reads.
function curl.foreign(option, owner)
  return ("%s is for transport %q only"):format(option, owner)
end

--- The HTTP part of the User-Agent: libcurl's version.
function curl.agent()
  return "libcurl/" .. core.libcurl_version
end

--- The sleep between retries: core.sleep blocks the thread.
function curl.sleep()
  return core.sleep
end

--- cfg: the checked configuration (config.lua), which holds every value the
--- C core needs; user_agent: the whole User-Agent line's value.
function curl.new(cfg, user_agent)
  return core.new({
    user_agent = user_agent,
    headers = cfg.auth_headers,
    timeout_ms = cfg.timeout_ms,
    connect_timeout_ms = cfg.connect_timeout_ms,
    max_response_size = cfg.max_response_size,
    ca_bundle = cfg.ca_bundle,
  })
end

return curl
