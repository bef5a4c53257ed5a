-- What the emulator holds, and how an entry is made and changed: the
-- entries of each resource per account in creation order, the log of the
-- API requests that arrived, and the fields the server makes (an id, time
-- stamps, defaults, deprecated fields that follow their replacement).
-- Values are stored in the shape their schema says, so that an empty list
-- is written as [].

local socket = require("socket")
local json = require("emulator.json")
local resources = require("emulator.resources")

local null, list_of = json.null, json.list_of
local property = resources.property

local store = {}

--- How many requests the log keeps at most (--max-log).
store.max_log = 20000

local accounts = {}      -- resource name -> account id -> list of entries in creation order
local requests = {}      -- the request log
local sequence = 0       -- creation order, the tie-break that keeps sorting stable

--- Forgets every entry and the request log.
function store.reset()
  accounts, requests = {}, {}
end

local function uuid4()
  local b = {}
  for i = 1, 16 do b[i] = math.random(0, 255) end
  b[7] = (b[7] & 0x0f) | 0x40     -- version 4
  b[9] = (b[9] & 0x3f) | 0x80     -- RFC 4122 variant
  local hex = string.format(string.rep("%02x", 16), table.unpack(b))
  return ("%s-%s-%s-%s-%s"):format(hex:sub(1, 8), hex:sub(9, 12), hex:sub(13, 16), hex:sub(17, 20), hex:sub(21, 32))
end

-- Microseconds that never repeat or go back, so an update right after a
-- create still gets a later modified_at.
local last_stamp = 0
function store.now()
  local us = math.floor(socket.gettime() * 1e6)
  if us <= last_stamp then us = last_stamp + 1 end
  last_stamp = us
  local sec = us // 1000000
  return os.date("!%Y-%m-%dT%H:%M:%S", sec) .. string.format(".%06dZ", us % 1000000)
end
local now_rfc3339 = store.now

--- The account's entries of a resource, in creation order (a live list).
function store.entries(res, acct)
  local per_account = accounts[res.name]
  if not per_account then
    per_account = {}
    accounts[res.name] = per_account
  end
  local list = per_account[acct]
  if not list then
    list = {}
    per_account[acct] = list
  end
  return list
end
local entries_of = store.entries

--- The entry with this id and its index, or nil.
function store.find(res, acct, id)
  for i, e in ipairs(entries_of(res, acct)) do
    if e.id == id then return e, i end
  end
end

--- An entry without the bookkeeping fields that start with "_".
function store.public(e)
  local copy = {}
  for k, v in pairs(e) do
    if type(k) ~= "string" or k:sub(1, 1) ~= "_" then copy[k] = v end
  end
  return copy
end

function store.public_list(entries)
  local out = list_of({})
  for i, e in ipairs(entries) do out[i] = store.public(e) end
  return out
end

--- A string field of an entry, or "" when it holds anything else.
function store.text(e, field)
  local v = e[field]
  if type(v) == "string" then return v end
  return ""
end

-- A plausible value for a field nobody gave: a fresh id, the time for a
-- time stamp, null where the schema allows it, else the first of an enum
-- or the type's own zero. `body_node`, when given, is the same field in
-- the request body, whose bounds the entry's node sometimes lacks.
local function default_of(node, stamp, body_node)
  if node.name == "id" and node.format == "uuid" then return uuid4() end
  if node.format == "date-time" and not node.nullable then return stamp end
  if node.nullable then return null end
  if node.enum then return node.enum[1] end
  local t = node.type
  if t == "boolean" then return false end
  if t == "integer" or t == "number" then return node.minimum or (body_node and body_node.minimum) or 0 end
  if t == "string" then return "" end
  if t == "array" then return list_of({}) end
  if t == "object" then
    local o = {}
    for _, p in ipairs(node.properties or {}) do o[p.name] = default_of(p, stamp) end
    return o
  end
  return null
end

-- v, with every array in it marked as one, as far as the node describes it.
local function shaped(node, v)
  if type(v) ~= "table" or not node then return v end
  if node.type == "array" then
    list_of(v)
    for _, x in ipairs(v) do shaped(node.items, x) end
  elseif node.type == "object" then
    for _, p in ipairs(node.properties or {}) do shaped(p, v[p.name]) end
  end
  return v
end

-- Stores one field; null where the entity cannot hold null (a create body
-- may allow it where the entry does not) stores the default instead.
-- `body_node`: the field's node in the request body, as for default_of.
local function store_field(res, e, name, v, stamp, body_node)
  local p = property(res.entry, name)
  if p and v == null and not p.nullable then v = default_of(p, stamp, body_node) end
  e[name] = shaped(p, v)
end

-- Deprecated fields that have a replacement (last_modified by modified_at,
-- is_sender by is_trusted_sender) hold the replacement's value unless the
-- client set them itself in this request.
local function follow_replacements(res, e, given)
  for _, p in ipairs(res.entry.properties) do
    local by = p.replaced_by
    if by and given[p.name] == nil and (given[by] ~= nil or by == "modified_at") and e[by] ~= nil then
      e[p.name] = e[by]
    end
  end
end

local function touch(res, e, given)
  if property(res.entry, "modified_at") then e.modified_at = now_rfc3339() end
  follow_replacements(res, e, given)
end

--- A new entry from fields already checked (or seeded as given, with any
--- "_" bookkeeping fields kept out of sight); not yet stored (see add).
function store.new_entry(res, fields)
  sequence = sequence + 1
  local stamp = now_rfc3339()
  local create = res.bodies.create or {}
  local e = {}
  for _, p in ipairs(res.entry.properties) do
    e[p.name] = default_of(p, stamp, property(create, p.name))
  end
  for k, v in pairs(fields) do store_field(res, e, k, v, stamp, property(create, k)) end
  -- as if modified_at had been set, so that last_modified starts equal to it
  local given = { modified_at = true }
  for k in pairs(fields) do given[k] = true end
  follow_replacements(res, e, given)
  e._seq = sequence
  return e
end

--- Stores a new entry last in the account's list.
function store.add(res, acct, e)
  table.insert(entries_of(res, acct), e)
end

--- PATCH: the given fields change, the others stay.
function store.merge(res, e, fields)
  local stamp = now_rfc3339()
  for k, v in pairs(fields) do
    if k ~= "id" then store_field(res, e, k, v, stamp) end
  end
  touch(res, e, fields)
end

--- PUT: every field the body node describes is set, to its default when
--- not given; the fields it does not describe (computed ones, and those a
--- replace cannot change, such as a domain's name) stay.
function store.replace(res, e, node, fields)
  local stamp = now_rfc3339()
  for _, p in ipairs(node.properties) do
    if not p.read_only and p.name ~= "id" then
      local v = fields[p.name]
      if v == nil then v = default_of(property(res.entry, p.name) or p, stamp, p) end
      store_field(res, e, p.name, v, stamp, p)
    end
  end
  touch(res, e, fields)
end

function store.remove(res, acct, e)
  local _, index = store.find(res, acct, e.id)
  if index then table.remove(entries_of(res, acct), index) end
end

--- Every API request so far, oldest first (a live list).
function store.requests() return requests end

--- Logs one request. A soak of many calls must not grow the log without
--- end: past max_log, the newest half is kept.
function store.remember(entry)
  local n = #requests
  if n >= store.max_log then
    local keep = n - n // 2
    table.move(requests, n - keep + 1, n, 1)
    for i = n, keep + 1, -1 do requests[i] = nil end
  end
  requests[#requests + 1] = entry
end

return store
