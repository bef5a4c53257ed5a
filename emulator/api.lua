-- The API under /client/v4: routes built from the descriptions (one per
-- path, with the op each method runs there), the credentials, and the
-- operations by the names the descriptions give them (list, create, get,
-- update, replace, delete, delete_many, batch, verification). A body is
-- checked by checks.lua before anything changes; lists are lists.lua's.

local json = require("emulator.json")
local http = require("emulator.http")
local log = require("emulator.log")
local resources = require("emulator.resources")
local checks = require("emulator.checks")
local store = require("emulator.store")
local answers = require("emulator.answers")
local lists = require("emulator.lists")

local null, list_of = json.null, json.list_of
local property = resources.property
local public, find = store.public, store.find
local envelope_ok, envelope_error = answers.ok, answers.error
local invalid, entry_not_found = answers.invalid, answers.entry_not_found

local api = {}

--- What an account id may be (and at most 32 of it).
api.ACCOUNT_ID = "^[%w_%-]+$"

-- What a request must carry (--token, or --email and --key).
local credentials = { token = "test-token", email = "user@example.com", key = "test-key" }

--- Sets the credentials the API takes: { token, email, key }.
function api.setup(opts)
  credentials = { token = opts.token, email = opts.email, key = opts.key }
end

-- The request body the op takes, decoded and checked against its node:
-- the value, or nil and the answer refusing it.
local function request_body(node, raw)
  local kind = node.type == "array" and "array" or "object"
  local value, why = json.decode(raw, kind)
  if not value then
    if why == "wrong_kind" then
      return nil, invalid(kind == "array" and "body: must be a list" or "body: must be a JSON object")
    end
    return nil, envelope_error(400, 1001, "Malformed JSON in request body")
  end
  local problem = checks.check(node, value, "body")
  if problem then return nil, invalid(problem) end
  return value
end

---------------------------------------------------------------------------
-- The operations. Each takes (resource, op, account, id, query, every
-- query value, raw body) and returns the answer.
---------------------------------------------------------------------------

local OPERATIONS = {}

-- A refusal by the resource's own rules as an answer, or nil.
local function change_refused(res, e)
  local status, code, message = resources.change_refusal(res, e)
  if status then return envelope_error(status, code, message) end
end

function OPERATIONS.list(res, _, acct, _, query, all) return lists.answer(res, acct, query, all) end

function OPERATIONS.create(res, op, acct, _, _, _, raw)
  local fields, refusal = request_body(res.bodies[op.body], raw)
  if not fields then return refusal end
  local e = store.new_entry(res, fields)
  store.add(res, acct, e)
  return envelope_ok(op.success[1], public(e))
end

function OPERATIONS.get(res, op, acct, id)
  local e = find(res, acct, id)
  if not e then return entry_not_found(res) end
  return envelope_ok(op.success[1], public(e))
end

-- PATCH and PUT: the entry must exist, then the body must pass, then the
-- resource's own rules.
local function change(apply)
  return function(res, op, acct, id, _, _, raw)
    local e = find(res, acct, id)
    if not e then return entry_not_found(res) end
    local node = res.bodies[op.body]
    local fields, refusal = request_body(node, raw)
    if not fields then return refusal end
    refusal = change_refused(res, e)
    if refusal then return refusal end
    apply(res, e, node, fields)
    return envelope_ok(op.success[1], public(e))
  end
end
OPERATIONS.update = change(function(res, e, _, fields) store.merge(res, e, fields) end)
OPERATIONS.replace = change(store.replace)

function OPERATIONS.delete(res, op, acct, id)
  local e = find(res, acct, id)
  if not e then return entry_not_found(res) end
  store.remove(res, acct, e)
  return envelope_ok(op.success[1], { id = e.id })
end

-- The collection DELETE: a list of {id}, all of which must exist (each
-- once), else nothing is removed.
function OPERATIONS.delete_many(res, op, acct, _, _, _, raw)
  local items, refusal = request_body(res.bodies[op.body], raw)
  if not items then return refusal end
  local doomed, removed = {}, list_of({})
  for i, item in ipairs(items) do
    local e = not doomed[item.id] and find(res, acct, item.id)
    if not e then return entry_not_found(res, ("body[%d].id"):format(i)) end
    doomed[item.id] = e
  end
  for i, item in ipairs(items) do
    store.remove(res, acct, doomed[item.id])
    removed[i] = { id = item.id }
  end
  return envelope_ok(op.success[1], removed)
end

-- The parts of a batch in the order they are applied, and what applying
-- one item does: `e` is the entry an item names by id (nil for posts),
-- `node` the part's schema node. Each returns the item's answer.
local BATCH_PARTS = {
  { name = "posts", apply = function(res, acct, _, item)
      local e = store.new_entry(res, item)
      store.add(res, acct, e)
      return public(e)
    end },
  { name = "patches", apply = function(res, _, e, item)
      store.merge(res, e, item)
      return public(e)
    end },
  { name = "puts", apply = function(res, _, e, item, node)
      store.replace(res, e, node.items, item)
      return public(e)
    end },
  { name = "deletes", apply = function(res, acct, e)
      store.remove(res, acct, e)
      return { id = e.id }
    end },
}

-- All or nothing: every item is checked first, against the state it would
-- meet (an id deleted earlier in the batch is gone), and only a batch with
-- no refusal is applied.
function OPERATIONS.batch(res, op, acct, _, _, _, raw)
  local node = res.bodies[op.body]
  local body, refusal = request_body(node, raw)
  if not body then return refusal end
  local targets, deleted = {}, {}
  for _, part in ipairs(BATCH_PARTS) do
    targets[part.name] = {}
    if part.name ~= "posts" then
      for i, item in ipairs(body[part.name] or {}) do
        local e = not deleted[item.id] and find(res, acct, item.id)
        if not e then return entry_not_found(res, ("%s[%d].id"):format(part.name, i)) end
        if part.name == "deletes" then
          deleted[item.id] = true
        else
          refusal = change_refused(res, e)
          if refusal then return refusal end
        end
        targets[part.name][i] = e
      end
    end
  end
  local result = {}
  for _, part in ipairs(BATCH_PARTS) do
    local part_node = property(node, part.name)
    if part_node then
      local answers_of_part = list_of({})
      for i, item in ipairs(body[part.name]) do
        answers_of_part[i] = part.apply(res, acct, targets[part.name][i], item, part_node)
      end
      result[part.name] = answers_of_part
    end
  end
  return envelope_ok(op.success[1], result)
end

-- A domain's DNS TXT check: 200 with what to publish, or 204 (no body) for
-- one seeded as verified by other means (`_verified_otherwise = true`).
-- The record's name and value are made up, stable per domain.
function OPERATIONS.verification(res, op, acct, id)
  local e = find(res, acct, id)
  if not e then return entry_not_found(res) end
  if e._verified_otherwise then return { status = 204, body = "", json = false } end
  return envelope_ok(op.success[1], {
    status = (e.status ~= nil and e.status ~= null) and e.status or "pending",
    txt_record_name = "_cf-email-security." .. store.text(e, "domain"),
    txt_record_value = "cf-email-security-verification=" .. e.id:gsub("%-", ""),
    last_checked_at = store.now(),
  })
end

---------------------------------------------------------------------------
-- Routes
---------------------------------------------------------------------------

local function literal(s) return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")) end

local ROUTES = {}
do
  local by_pattern = {}
  for name, res in pairs(resources.by_name) do
    for op_name, op in pairs(res.ops) do
      if OPERATIONS[op_name] then
        local pattern = "^/client/v4/accounts/([^/]+)" .. literal(res.path)
          .. literal(op.suffix):gsub("{id}", "([^/]+)") .. "$"
        local route = by_pattern[pattern]
        if not route then
          route = { pattern = pattern, resource = res, suffix = op.suffix, methods = {} }
          by_pattern[pattern] = route
          ROUTES[#ROUTES + 1] = route
        end
        route.methods[op.method] = op_name
      else
        log.say("%s: no emulation of op %s", name, op_name)
      end
    end
  end
  -- paths without an id first: /batch must not be taken for an id
  table.sort(ROUTES, function(a, b)
    local x, y = a.suffix:find("{id}", 1, true) ~= nil, b.suffix:find("{id}", 1, true) ~= nil
    if x ~= y then return y end
    return a.pattern < b.pattern
  end)
end

--- The scheme a request used ("bearer", "key" or "none"), and the
--- refusal when it is missing or wrong.
function api.authenticate(headers)
  local auth = headers["authorization"]
  local email, key = headers["x-auth-email"], headers["x-auth-key"]
  if auth then
    if auth == "Bearer " .. credentials.token then return "bearer" end
    return "bearer", envelope_error(403, 10000, "Authentication error")
  end
  if email or key then
    if email == credentials.email and key == credentials.key then return "key" end
    return "key", envelope_error(403, 10000, "Authentication error")
  end
  return "none", envelope_error(401, 10000, "Authentication error")
end

--- The answer to one API request (path and query apart, raw body).
function api.answer(method, path, query, headers, raw)
  for _, route in ipairs(ROUTES) do
    local acct, id = path:match(route.pattern)
    if acct then
      local _, refusal = api.authenticate(headers)
      if refusal then return refusal end
      acct = http.url_decode(acct)
      if #acct > 32 or not acct:find(api.ACCOUNT_ID) then return answers.no_route() end
      local op_name = route.methods[method]
      if not op_name then return answers.not_allowed() end
      local res = route.resource
      local last, all = http.parse_query(query)
      return OPERATIONS[op_name](res, res.ops[op_name], acct, id and http.url_decode(id), last, all, raw)
    end
  end
  return answers.no_route()
end

return api
