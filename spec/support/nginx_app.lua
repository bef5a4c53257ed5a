-- Runs inside nginx for spec/nginx_spec.lua: one call of the module per
-- request, its outcome written as JSON. The same `es.new{...}` and
-- registry calls a plain Lua script makes; the client is made per request
-- from the variables of the location (base URL, token).
local cjson = require("cjson")
local es = require("cloudflare.email_security")

local app = {}

-- An error's fields and its one-line text: what the spec compares.
local function error_fields(err)
  return { kind = err.kind, status = err.status, code = err.code, message = err.message,
           field = err.field, attempts = err.attempts, broken = err.broken,
           nginx_status = err.nginx_status, text = tostring(err) }
end

function app.call()
  local args = ngx.req.get_uri_args()
  local op, id = args.op, args.id
  ngx.req.read_body()
  local fields = ngx.req.get_body_data()
  fields = fields and cjson.decode(fields)
  local opts = { account_id = "acct1", api_token = ngx.var.es_token,
                 base_url = args.base_url or ngx.var.es_base_url,
                 max_retries = tonumber(args.max_retries), max_retry_wait = 2 }
  if args.timeout then opts.timeout = tonumber(args.timeout) end
  if args.location then opts.nginx_location = args.location end
  local ok, cf = pcall(es.new, opts)
  if not ok then
    ngx.say(cjson.encode({ pid = ngx.worker.pid(), new_error = cf }))
    return
  end
  local reg = cf.impersonation_registry
  local result, err
  if op == "get_in_timer" then
    -- a background job: the call runs in a timer, where subrequests cannot
    local done = false
    ngx.timer.at(0, function()
      result, err = reg:get(id)
      done = true
    end)
    for _ = 1, 100 do
      if done then break end
      ngx.sleep(0.01)
    end
  elseif op == "update" then
    result, err = reg:update(id, fields)
  elseif op == "delete" then
    result, err = reg:delete(id)
  elseif op == "list_then_create" then
    -- the list leaves a kept-alive upstream connection for the create
    result, err = reg:list()
    if result then result, err = reg:create(fields) end
  elseif op == "content_policy_round_trip" then
    -- another resource through the same transport: create, update, delete
    local cp = cf.content_policies
    result, err = cp:create({ enabled = true, name = "Wire transfer lure", pattern = "wire\\s+transfer",
                              targets = { "SUBJECT", "BODY" } })
    if result then result, err = cp:update(result.id, { enabled = false, notes = es.null }) end
    if result then result, err = cp:delete(result.id) end
  elseif op == "get" then
    result, err = reg:get(id)
  elseif op == "list" then
    result, err = reg:list({ per_page = 5 })
  end
  ngx.say(cjson.encode({ pid = ngx.worker.pid(), result = result,
                         err = err and error_fields(err) or nil }))
end

return app
