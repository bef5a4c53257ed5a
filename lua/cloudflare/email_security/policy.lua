-- The layer between a resource and its transport: every request passes
-- here, so this is where retries, pacing and logging belong. For now it
-- sends once and gives each error its method and path.

local errors = require("cloudflare.email_security.errors")

local policy = {}

--- state: the client's internals (base_url, transport); path without the
--- base URL; query: "" or "?a=b"; body: a JSON string or nil.
function policy.call(state, method, path, query, body)
  if state.transport:is_closed() then
    -- level 3: the caller of the resource method
    error("attempt to use a closed cloudflare.email_security client", 3)
  end
  local result, err, envelope = state.transport:request(method, state.base_url .. path .. query, body)
  if err then
    return nil, errors.wrap(err, method, path), envelope
  end
  return result, nil, envelope
end

return policy
