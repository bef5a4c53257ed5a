-- Runs inside nginx for spec/hosts/nginx_spec.lua: one call of the module per
-- request, its outcome written as JSON. The same `es.new{...}` and
-- registry calls a plain Lua script makes; the client is made per request
-- from the variables of the location (base URL, token).
local cjson = require("cjson")
local es = require("cloudflare.email_security")
local retry = require("cloudflare.email_security.retry")

local app = {}

-- An error's fields and its one-line text: what the specs compare.
local function error_fields(err)
  return { kind = err.kind, status = err.status, code = err.code, message = err.message,
           field = err.field, attempts = err.attempts, broken = err.broken,
           nginx_status = err.nginx_status, may_exist = err.may_exist, rule = err.rule,
           headers = err.headers, retry_after = err.retry_after, text = tostring(err),
           -- what the retry policy makes of it, whatever the transport's own fields
           retried = retry.retryable(false, err, false), create_retried = retry.retryable(true, err, false),
           may_have_acted = retry.may_have_acted(err) }
end

--- A call's outcome as the specs compare it, inside nginx or out:
--- { result, err = error_fields }.
function app.outcome(result, err)
  return { result = result, err = err and error_fields(err) or nil }
end

local BULK = { all = true, concurrently = true, nested_all = true, apply = true }

--- The emails of a list of entries, in its order.
function app.emails(entries)
  local out = {}
  for i, e in ipairs(entries) do out[i] = e.email end
  return out
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
  if args.max_response_size then opts.max_response_size = tonumber(args.max_response_size) end
  if args.location then opts.nginx_location = args.location end
  if args.concurrency then opts.concurrency = tonumber(args.concurrency) end
  local ok, cf
  if args.shared then
    -- one client per worker, made by its first request, as README's
    -- /registry/count keeps it: the worker's requests share it
    cf = package.loaded["spec.nginx_app.shared_client"]
    ok = cf ~= nil
    if not ok then
      ok, cf = pcall(es.new, opts)
      if ok then package.loaded["spec.nginx_app.shared_client"] = cf end
    end
  else
    ok, cf = pcall(es.new, opts)
  end
  if not ok then
    ngx.say(cjson.encode({ pid = ngx.worker.pid(), new_error = cf }))
    return
  end
  local reg = cf.impersonation_registry
  local result, err
  -- the bulk calls say how long they took inside nginx (out.elapsed, in s)
  local timed = BULK[op]
  ngx.update_time()
  local started = ngx.now()
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
  elseif op == "create" then
    result, err = reg:create(fields)
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
  elseif op == "batch" then
    -- a batch of allow policies made here, so that the request to this
    -- location stays small whatever the batch: `posts` and `deletes` of
    -- them (deletes by made-up ids), each post's comments `size` characters
    local posts, deletes = {}, {}
    for i = 1, tonumber(args.posts) or 0 do
      posts[i] = { pattern = ("partner%04d@example.com"):format(i), pattern_type = "EMAIL", is_regex = false,
                   is_trusted_sender = true, is_exempt_recipient = false, is_acceptable_sender = false,
                   verify_sender = true, comments = ("c"):rep(tonumber(args.size) or 0) }
    end
    for i = 1, tonumber(args.deletes) or 0 do
      deletes[i] = ("%08x-0000-4000-8000-000000000000"):format(i)
    end
    result, err = cf.allow_policies:batch({ posts = posts, deletes = deletes })
    -- what was sent, not the 1000 entries made
    if result then result = { created = #(result.posts or {}) } end
  elseif op == "get" then
    result, err = reg:get(id)
  elseif op == "list" then
    result, err = reg:list({ per_page = 5 })
  elseif op == "all" then
    -- every entry, pages ahead fetched `concurrency` at a time: their
    -- emails, in the order the listing gave them
    result, err = reg:all({ per_page = tonumber(args.per_page) or 5 })
    if result then result = app.emails(result) end
  elseif op == "concurrently" then
    -- fields.items: { op = "get" | "update", id, fields }, sent together
    local results = cf:concurrently(fields.items, function(item)
      if item.op == "update" then return reg:update(item.id, item.fields) end
      return reg:get(item.id)
    end)
    result = {}
    for i, r in ipairs(results) do
      local o = app.outcome(r[1], r[2])
      result[i] = { n = r.n, id = o.result and o.result.id, name = o.result and o.result.name, err = o.err }
    end
  elseif op == "nested_all" then
    -- each of `tasks` functions run together lists every entry itself
    local list = {}
    for i = 1, tonumber(args.tasks) or 2 do list[i] = i end
    local results = cf:concurrently(list, function() return reg:all({ per_page = 5 }) end)
    result = {}
    for i, r in ipairs(results) do
      local o = app.outcome(r[1] and app.emails(r[1]), r[2])
      result[i] = { emails = o.result, err = o.err }
    end
  elseif op == "apply" then
    -- `creates` registry entries wanted (person01@example.com, ...): plan,
    -- apply, and plan again, which must find nothing to do
    local desired = {}
    for i = 1, tonumber(args.creates) or 0 do
      desired[i] = { name = ("Person %02d"):format(i), email = ("person%02d@example.com"):format(i),
                     is_email_regex = false }
    end
    local p
    p, err = reg:plan(desired)
    local summary
    if p then
      result = { planned = p:changes() }
      summary, err = p:apply()
    end
    if summary then
      result.summary = tostring(summary)
      local again
      again, err = reg:plan(desired)
      if again then result.again = again:changes() end
    end
  end
  local out = app.outcome(result, err)
  if timed then
    ngx.update_time()
    out.elapsed = ngx.now() - started
  end
  out.pid = ngx.worker.pid()
  ngx.say(cjson.encode(out))
end

return app
