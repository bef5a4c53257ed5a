-- r:plan(desired, opts): what it takes to make a resource's entries equal
-- to a desired list, changing nothing. Entries are matched by their
-- natural key (sync/keys.lua); only the fields the desired entries give
-- are compared (opts.fields narrows them), read-only fields never, list
-- fields as sets. Everything is checked here, before apply sends a byte:
-- each desired entry against the description, keys present and unique on
-- both sides, and each change against the body that will carry it.
-- The plan also owns its safety thresholds, which apply asks it about;
-- sync/plan_text.lua shows it.

local core = require("cloudflare.email_security.core")
local array = require("cloudflare.email_security.array")
local errors = require("cloudflare.email_security.errors")
local resource_internals = require("cloudflare.email_security.resource").internals
local validate = require("cloudflare.email_security.schema.validate")
local snapshot = require("cloudflare.email_security.snapshot")
local keys = require("cloudflare.email_security.sync.keys")
local entries = require("cloudflare.email_security.sync.entries")
local plan_text = require("cloudflare.email_security.sync.plan_text")
local apply = require("cloudflare.email_security.sync.apply")
local fingerprint = require("cloudflare.email_security.sync.fingerprint")

local null = core.null
local concat, format, type = table.concat, string.format, type

-- what a plan remembers of a key on the server (see plan.make)
local SKIPPED, NO_ID = {}, {}

local plan = {}

local Plan = {}
Plan.__index = Plan

-- The create body without its required list: what every desired entry
-- must satisfy whether it is created or only compared.
local loose = setmetatable({}, { __mode = "k" })
local function loose_node(desc)
  local n = loose[desc]
  if n then return n end
  n = {}
  for k, v in pairs(desc.bodies.create) do n[k] = v end
  n.required = {}
  loose[desc] = n
  return n
end

local function collection(r)
  local _, path = resource_internals(r)
  return path
end

local function invalid(r, field, rule, message)
  return errors.invalid(field, rule, message, "PLAN", collection(r))
end

-- "desired[3]" and, for an entry from a file, where it is there.
local function where(i, e)
  local origin = entries.origin(e)
  return format("desired[%d]", i), origin and (" (" .. origin .. ")") or ""
end

local function absent(v) return v == nil or v == null end

-- A key as a person reads it, from the key's fields (in order) and their
-- values: "pattern_type=EMAIL pattern=x is_regex=false", the text
-- keys.value makes; "(no pattern)" when the first field it lacks is
-- pattern (an entry on the server the key cannot name).
local function key_text(fields, values)
  local parts = {}
  for _, field in ipairs(fields) do
    local v = values[field]
    if absent(v) then return "(no " .. field .. ")" end
    parts[#parts + 1] = field .. "=" .. tostring(v)
  end
  return concat(parts, " ")
end

-- The key of entry e, as text (key_text) and as its fields: { field =
-- value } with the entry's own values, as the JSON forms write the key
-- (sync/plan_text.lua): an entry the key cannot name has the key fields it
-- has. Each change keeps both: the text for people and messages, the
-- fields for scripts, which should not have to parse the text.
local function key_of(key, e)
  local values = {}
  for _, field in ipairs(key.fields) do
    local v = e[field]
    if not absent(v) then values[field] = v end
  end
  return key_text(key.fields, values), values
end

-- A table with no metatable that holds no table.
local function flat(t)
  if getmetatable(t) ~= nil then return false end
  for _, v in next, t do
    if type(v) == "table" then return false end
  end
  return true
end

-- Two lists of the same texts or booleans in the same order: the same set
-- (keys.canonical would say so, at the cost of a text for each); false
-- when it cannot be told so. Walked as canonical walks them (ipairs).
local function same_items(a, b)
  if array.kind(a) == "object" or array.kind(b) == "object" then return false end
  local next_a, state_a, i = ipairs(a)
  local next_b, state_b, j = ipairs(b)
  while true do
    local x, y
    i, x = next_a(state_a, i)
    j, y = next_b(state_b, j)
    if i == nil or j == nil then return i == nil and j == nil end
    if x ~= y or (type(x) ~= "string" and type(x) ~= "boolean") then return false end
  end
end

-- Is the server's value what the desired entry asks for? e: the desired
-- entry (whether a key field is a regular expression, which never folds).
local function same(key, field, want, have, e)
  if absent(want) or absent(have) then return absent(want) and absent(have) end
  want, have = keys.normal(key, field, want, e), keys.normal(key, field, have, e)
  if type(want) ~= "table" or type(have) ~= "table" then return want == have end
  return same_items(want, have) or keys.canonical(want) == keys.canonical(have)
end

-- The fields of an entry that a desired entry may hold but that are never
-- compared nor sent, and why: read-only, made by the server (in no body a
-- client sends), or retired past their end of life. A listing written
-- back (list --csv) holds them all.
local ignorable = setmetatable({}, { __mode = "k" })
local function ignored_fields(desc)
  -- what is retired changes with the date: kept per day
  local today = os.date("!%Y-%m-%d")
  local cached = ignorable[desc]
  if cached and cached.today == today then return cached.fields end
  local out = {}
  local create, update = desc.bodies.create.fields, desc.bodies.update and desc.bodies.update.fields or {}
  for name, f in pairs(desc.entry.fields) do
    if f.read_only then
      out[name] = "read-only"
    elseif not create[name] and not update[name] then
      out[name] = "made by the server"
    elseif f.deprecated and f.end_of_life and f.end_of_life <= today then
      out[name] = "retired" .. (f.replaced_by and (": use " .. f.replaced_by) or "")
    end
  end
  ignorable[desc] = { today = today, fields = out }
  return out
end

-- The fields a desired entry can manage, in the description's order.
local function usable_fields(desc)
  local out, ignored = {}, ignored_fields(desc)
  for _, name in ipairs(desc.entry.order) do
    if not ignored[name] then out[#out + 1] = name end
  end
  return out
end

-- The desired list as plan reads it: { r, desc, list (the caller's),
-- typed (its entries, typed: entries.typed), node, ignored, retired (the
-- retired fields met, for the plan to say so) }; or nil and an invalid
-- error.
local function desired_list(r, desc, list)
  local count, other_key = array.length(list)
  if not count then
    return nil, invalid(r, "desired", "type", "must be a list of entries (keys 1 to n), not a table with key "
      .. errors.printable(tostring(other_key)) .. ": give { entry, ... }, even for one entry")
  end
  local typed, why = entries.typed(desc, list)
  if not typed then return nil, invalid(r, "desired", "file", why) end
  return { r = r, desc = desc, list = list, typed = typed, node = loose_node(desc), ignored = ignored_fields(desc),
           retired = {} }
end

-- Desired entry i as plan compares and sends it: the module's own copy,
-- read raw, without the fields that are never compared, the retired ones
-- checked (ignored, but not unchecked: a value of the wrong kind is a
-- mistake); or nil and an invalid error. Made when the entry is read
-- (plan does not keep it: see plan.make) and again when it is compared,
-- created or updated: the same copy of the same entry.
local function desired_copy(d, i)
  local r, list, e = d.r, d.list, d.typed[i]
  if type(e) ~= "table" then
    local name, origin = where(i, list[i])
    return nil, invalid(r, name, "type", "must be a table of fields, got " .. type(e) .. origin)
  end
  local copy, ignored = snapshot(e), d.ignored
  for field, value in pairs(e) do
    local reason = type(field) == "string" and ignored[field]
    if reason then
      copy[field] = nil
      if reason:find("^retired") then
        d.retired[field] = reason
        local name, origin = where(i, list[i])
        local bad, rule, message = validate.value(d.desc.entry.fields[field], value, name .. "." .. field)
        if bad then return nil, invalid(r, bad, rule, message .. origin) end
      end
    end
  end
  return copy
end

-- Can desired entry e be read in place of its copy (desired_copy), and
-- read the same: a table with no metatable, no field a copy leaves out,
-- no table but a list of values with no metatable? Only the order in
-- which its fields come may differ, which decides no more than which of
-- two wrong fields a check names.
local function as_own_copy(d, e)
  if type(e) ~= "table" or getmetatable(e) ~= nil then return false end
  local ignored = d.ignored
  for field, v in next, e do
    if (type(field) == "string" and ignored[field]) or (type(v) == "table" and not flat(v)) then return false end
  end
  return true
end

-- Checks the copy of desired entry i: against the description, and
-- against what the stored entry can hold. nil, or an invalid error.
-- Each check runs without a path first, which makes no text for the
-- hundred thousand entries that pass (a failure is its rule, the second
-- value); one that fails is checked again with it (the same check of the
-- same table: the same finding), for the message.
local function check_copy(d, i, copy)
  local r, desc = d.r, d.desc
  if select(2, validate.value(d.node, copy, nil, desc.name)) then
    local name, origin = where(i, d.list[i])
    local field, rule, message = validate.value(d.node, copy, name, desc.name)
    return invalid(r, field, rule, message .. origin)
  end
  -- what the stored entry cannot hold (a domain's transport null, which
  -- a create takes and the server replaces) would be planned again after
  -- every apply: refused here, so that a file that plans converges
  for f, value in next, copy do
    local stored = desc.entry.fields[f]
    if stored and select(2, validate.value(stored, value)) then
      local name, origin = where(i, d.list[i])
      local bad, stored_rule, stored_why = validate.value(stored, value, name .. "." .. f)
      return invalid(r, bad, stored_rule, stored_why .. " in the entry the API stores, though a create "
        .. "takes it: the server would keep another value and every later plan would try to change it back; "
        .. "leave the field out (an empty cell) to take the server's" .. origin)
    end
  end
end

-- The fields to compare: opts.fields, or every field some desired entry
-- gives (given: the set of them); never a read-only one.
local function managed_fields(r, desc, given, named)
  local out = {}
  if named ~= nil then
    if type(named) ~= "table" then return nil, invalid(r, "fields", "type", "must be a list of field names") end
    if #named == 0 then return nil, invalid(r, "fields", "min_items", "needs at least one field name") end
    for i, field in ipairs(named) do
      local f = type(field) == "string" and desc.entry.fields[field]
      if not f then
        return nil, invalid(r, ("fields[%d]"):format(i), "unknown", tostring(field) .. " is not a field of "
          .. desc.name .. validate.suggest(tostring(field), usable_fields(desc)))
      end
      local reason = ignored_fields(desc)[field]
      if reason then
        return nil, invalid(r, ("fields[%d]"):format(i), "read_only", field .. " is " .. reason
          .. ": it cannot be managed")
      end
      out[field] = true
    end
    return out
  end
  for field in pairs(given) do out[field] = true end
  return out
end

-- The safety thresholds, after octoDNS and dnscontrol: a plan that would
-- update, or delete, more than this fraction of the existing entries is
-- applied only with force, once there are at least min_existing of them
-- (below that, a few changes are a large fraction and no sign of a
-- mistake). A file that lost its rows, or a key that no longer matches,
-- plans to delete or rewrite most of an account: this stops it.
plan.THRESHOLDS = { update = 0.3, delete = 0.3, min_existing = 10 }

-- opts.thresholds of plan or apply: { update = fraction, delete =
-- fraction, min_existing = n }, any of them.
local function check_thresholds(r, t)
  if t == nil then return nil end
  if type(t) ~= "table" then return invalid(r, "thresholds", "type", "must be a table, got " .. type(t)) end
  for name, v in next, t do
    local fraction = name == "update" or name == "delete"
    if not fraction and name ~= "min_existing" then
      return invalid(r, "thresholds." .. tostring(name), "unknown", "is not a threshold (there are: update, "
        .. "delete, min_existing)")
    end
    if type(v) ~= "number" or v ~= v or v < 0 or (fraction and v > 1) or (not fraction and v % 1 ~= 0) then
      return invalid(r, "thresholds." .. name, "type", fraction and "must be a fraction from 0 to 1"
        or "must be a whole number, at least 0")
    end
  end
end

-- Names people reach for that are spelled otherwise here.
local MEANT = { no_purge = "purge = false", nopurge = "purge = false", dry_run = "r:plan (it changes nothing)" }

--- An option name the call does not know, as an invalid error naming it
--- (with the name that was likely meant), or nil: a typo must never fall
--- back to the default, which for plan is to delete. allowed: the names.
function plan.check_options(opts, allowed, method, path)
  for name in next, opts do
    local known = false
    for _, a in ipairs(allowed) do
      if name == a then known = true break end
    end
    if not known then
      local text = errors.printable(tostring(name))
      local hint = MEANT[name] and (": did you mean `" .. MEANT[name] .. "`?")
        or validate.suggest(text, allowed)
      return errors.invalid(text, "unknown", "is not an option of " .. method:lower() .. hint, method, path)
    end
  end
end

local function check_key(r, desc, key_fields)
  for i, field in ipairs(key_fields) do
    if type(field) ~= "string" or not desc.entry.fields[field] then
      return invalid(r, ("key[%d]"):format(i), "unknown", tostring(field) .. " is not a field of " .. desc.name
        .. validate.suggest(tostring(field), usable_fields(desc)))
    end
    local reason = ignored_fields(desc)[field]
    if reason then
      return invalid(r, ("key[%d]"):format(i), "read_only", field .. " is " .. reason
        .. ": a key is made of fields the desired entries give (never the server's ids)")
    end
    local t = desc.entry.fields[field].type
    if t == "array" or t == "object" then
      return invalid(r, ("key[%d]"):format(i), "type", field .. " is a " .. (t == "array" and "list" or "table")
        .. ": a key is made of single values (text, numbers, booleans)")
    end
  end
  if #key_fields == 0 then return invalid(r, "key", "min_items", "needs at least one field name") end
end

-- How many times a listing that moved under the walk (an entry added or
-- removed between its pages, which shifts every later page) is walked
-- again before giving up.
local LISTING_TRIES, LISTING_PAGE = 3, 1000
local MOVED_NOTE = ("the listing moved while it was walked, %d times in a row: try again when the entries "
  .. "change less"):format(LISTING_TRIES)

--- Every entry (1000 a page): the desired state is compared with all of
--- them, or deletes could not be known. A listing that moved while it was
--- walked may have skipped or repeated an entry: it is walked again.
function plan.existing(r)
  local list, err
  for _ = 1, LISTING_TRIES do
    list, err = r:all({ per_page = LISTING_PAGE })
    if list or not err.listing_moved then return list, err end
  end
  err.note = MOVED_NOTE
  return nil, err
end
local existing_entries = plan.existing

--- Walks every entry of r's listing a page at a time (never held whole):
--- start() before each try, on_entry(e) for each entry; a listing that
--- moved while it was walked is walked again from the start (see
--- plan.existing). nil, or the error that ended the walk.
function plan.walk(r, start, on_entry)
  local err
  for _ = 1, LISTING_TRIES do
    start()
    -- called by hand, as r:all does: on Lua 5.1 a for's iterator cannot
    -- yield, and the walk may
    local next_entry = r:each({ per_page = LISTING_PAGE })
    while true do
      local e, walk_err = next_entry()
      if e == nil then return nil end
      if e == false then
        err = walk_err
        break
      end
      on_entry(e)
    end
    if not err.listing_moved then return err end
  end
  err.note = MOVED_NOTE
  return err
end

--- Every entry of the plan's resource now: apply lists again (see
--- plan.existing).
function Plan:listing()
  return existing_entries(self.resource)
end

--- Whether apply may send this plan, as the plan's thresholds say: nil, or
--- an invalid error (nothing is to be sent). thresholds: apply's own
--- (checked here, as plan checks its own), else the plan's; force: apply's,
--- else the plan's.
function Plan:past_thresholds(thresholds, force)
  local err = check_thresholds(self.resource, thresholds)
  if err then return err end
  if force or self.force then return nil end
  local t = thresholds or self.thresholds or {}
  local existing = self.existing
  if existing < (t.min_existing or plan.THRESHOLDS.min_existing) then return nil end
  for _, kind in ipairs({ "update", "delete" }) do
    local count = #self[kind .. "s"]
    local limit = t[kind] or plan.THRESHOLDS[kind]
    if count > limit * existing then
      return errors.invalid("plan", "threshold", format("would %s %d of the %d existing entries (%.0f%%, more "
        .. "than %.0f%%): nothing was sent. Check the plan, then apply with force = true (--force) if it is "
        .. "meant", kind, count, existing, 100 * count / existing, 100 * limit), "APPLY", collection(self.resource))
    end
  end
end

--- plan.check_options for apply's options, which the plan is asked for
--- so that apply needs nothing of this file but the plan it is given.
function Plan:check_options(opts, allowed, method)
  return plan.check_options(opts, allowed, method, collection(self.resource))
end

--- See the module's comment. opts: key (field names), fields (field
--- names), purge (false: never delete), delete_domains (domains only),
--- force (past the thresholds), thresholds { update, delete, min_existing }
--- (any of them; plan.THRESHOLDS holds the defaults).
--- internal (not for scripts): { fingerprint = true }: p.fingerprint is
--- the listing's (sync/fingerprint.lua), for a plan saved to apply later.
function plan.make(r, desired, opts, internal)
  local desc = resource_internals(r)
  local name = desc.name
  opts = opts and snapshot(opts) or {}
  if not desc.has.plan then
    return nil, invalid(r, "plan", "unsupported", name .. " has no create, update, delete and list to plan with")
  end
  local usual = keys.of(name)
  local allowed = { "key", "fields", "purge", "force", "thresholds" }
  if usual and usual.guard then allowed[#allowed + 1] = usual.guard end
  local err = plan.check_options(opts, allowed, "PLAN", collection(r))
  if err then return nil, err end
  if opts.key ~= nil and type(opts.key) ~= "table" then
    return nil, invalid(r, "key", "type", "must be a list of field names")
  end
  local key = keys.of(name, opts.key)
  if not key then return nil, invalid(r, "plan", "unsupported", name .. " has no natural key: give opts.key") end
  err = check_key(r, desc, key.fields)
  if err then return nil, err end

  for _, flag in ipairs({ "purge", "force", key.guard }) do
    if opts[flag] ~= nil and type(opts[flag]) ~= "boolean" then
      return nil, invalid(r, flag, "type", "must be true or false, got " .. type(opts[flag]))
    end
  end
  err = check_thresholds(r, opts.thresholds)
  if err then return nil, err end
  -- a dashboard file is one resource's (its header says which): never
  -- planned as another's, whose entries it would delete
  local read_as = type(desired) == "table" and entries.format(desired)
  if read_as and read_as.resource ~= name then
    return nil, invalid(r, "desired", "file", format("was read from %s's file, which is for %s, not %s",
                                                     read_as.title, read_as.resource, name))
  end

  -- Every desired entry is read once here: checked, and its key taken
  -- (keys.slot, by_key[slot][text] = its index). Plan keeps no copy of
  -- them, which would double what a large file takes: each is copied
  -- again, and checked again, when it is compared, created or updated.
  -- What is wrong is said in the order the checks come: every entry
  -- checked, then the fields, then the keys.
  local d
  d, err = desired_list(r, desc, desired)
  if not d then return nil, err end
  local given, skipped_desired, left_to_directory, by_key, key_err = {}, {}, {}, {}, nil
  local tidy = entries.tidier(#d.typed >= 10000)
  for i in ipairs(d.typed) do
    tidy(i)
    -- read in place where that reads what a copy would hold; a copy is
    -- made where it would not, and for the message of a check that fails
    local e = d.typed[i]
    if not as_own_copy(d, e) or check_copy(d, i, e) then
      e, err = desired_copy(d, i)
      if not e then return nil, err end
      err = check_copy(d, i, e)
      if err then return nil, err end
    end
    for field in next, e do given[field] = true end
    -- A directory's entry in the desired list (a listing written back
    -- holds them) is the directory's: never created, changed, nor matched.
    local reason = not key_err and key.skip and key.skip(e)
    if reason then
      local text, values = key_of(key, e)
      skipped_desired[#skipped_desired + 1] = { key = text, key_values = values, reason = reason
        .. " in the desired list: left to the directory" }
      left_to_directory[i] = true
    elseif not key_err then
      -- the desired keys: present, and each once
      local slot, text = keys.slot(key, e)
      if not slot then
        local where_i, origin = where(i, desired[i])
        key_err = invalid(r, where_i .. "." .. text, "key", format("is missing: %s entries are matched by %s%s",
          name, concat(key.fields, ", "), origin))
      else
        local in_slot = by_key[slot]
        if not in_slot then
          in_slot = {}
          by_key[slot] = in_slot
        end
        local j = in_slot[text]
        if j then
          local where_i, origin = where(i, desired[i])
          local where_j, origin_j = where(j, desired[j])
          key_err = invalid(r, where_i, "duplicate", format("has the same key (%s) as %s%s%s: each entry must be "
            .. "listed once", select(2, keys.value(key, e)), where_j, origin_j, origin))
        else
          in_slot[text] = i
        end
      end
    end
  end
  local managed
  managed, err = managed_fields(r, desc, given, opts.fields)
  if not managed then return nil, err end
  if key_err then return nil, key_err end
  local retired = d.retired
  -- the fields compared, in the order a change lists them
  local compared = array.sorted_keys(managed)

  -- Desired entry i, read again to be created or updated, is checked as
  -- it was first read, and must still have the key it had then (its
  -- table changed meanwhile, by a task that ran while the listing was
  -- awaited, else). nil, or an invalid error.
  local function still_valid(i, e)
    local why = check_copy(d, i, e)
    if why then return why end
    local slot, text = keys.slot(key, e)
    local in_slot = slot and by_key[slot]
    if not (in_slot and in_slot[text] == i) then
      local where_i, origin = where(i, desired[i])
      return invalid(r, where_i, "stale", "changed while the plan was made (its key is not the one it had): "
        .. "plan again" .. origin)
    end
  end

  local p
  local purge = opts.purge ~= false and (not key.guard or opts[key.guard] == true)
  local update_node = desc.bodies.update
  -- What the server has under a key, as its entries are walked: for a
  -- desired key, found[its index]; for another, others[slot][text].
  -- SKIPPED: only entries the directory keeps; else the id of the entry
  -- that has it (NO_ID for one without).
  local found, others

  -- Is the desired entry as the server has it, compared in place? Only
  -- where reading it raw is reading what a copy would hold: a table with
  -- no metatable, whose compared fields hold no table but a list of
  -- values, with no metatable either (a copy's own tables have none).
  -- false when it changed, or cannot be told so.
  local as_is = true
  -- (a flag that decides whether a key field folds is read from the entry:
  -- in place, one a copy leaves out would be read)
  for _, rule in pairs(key.lower or {}) do
    if type(rule) == "string" and d.ignored[rule] then as_is = false end
  end
  local function unchanged_as_is(want, e)
    if not as_is or type(want) ~= "table" or getmetatable(want) ~= nil then return false end
    for _, field in ipairs(compared) do
      local v = rawget(want, field)
      if v ~= nil and ((type(v) == "table" and not flat(v)) or not same(key, field, v, e[field], want)) then
        return false
      end
    end
    return true
  end

  -- One entry of the listing, the n-th: into the plan, or an error.
  local function walked(n, e)
    if type(e) ~= "table" then
      return errors.wrap(errors.new("http", ("the list's entry %d is not an object (a %s)"):format(n, type(e))),
                         "GET", collection(r))
    end
    local slot, text = keys.slot(key, e)
    local reason = key.skip and key.skip(e)
    local i = slot and by_key[slot]
    i = i and i[text]
    if reason then
      local shown, values = key_of(key, e)
      p.skipped[#p.skipped + 1] = { key = shown, key_values = values, id = e.id, reason = reason }
      if i and found[i] == nil then found[i] = SKIPPED end
    elseif not slot then
      -- an entry the key cannot name is never matched, so never touched
      -- (key_of names the same field as keys.slot: the first it lacks)
      local shown, values = key_of(key, e)
      p.skipped[#p.skipped + 1] = { key = shown, key_values = values, id = e.id, reason = "has no " .. text }
    else
      p.existing = p.existing + 1
      local before, in_slot
      if i then
        before = found[i]
      else
        in_slot = others[slot]
        if not in_slot then
          in_slot = {}
          others[slot] = in_slot
        end
        before = in_slot[text]
      end
      if before ~= nil and before ~= SKIPPED then
        return invalid(r, "existing", "duplicate", format("entries %s and %s on the server have the same key "
          .. "(%s): delete one of them, or plan with a key that tells them apart (opts.key)",
          tostring(before ~= NO_ID and before or nil), tostring(e.id), select(2, keys.value(key, e))))
      end
      local id = e.id
      if id == nil then id = NO_ID end
      if i then found[i] = id else in_slot[text] = id end
      if i then
        -- compared as it is (raw: the same values a copy would hold) when
        -- it can be: no copy is made of an entry that did not change
        local want, why = d.typed[i]
        if not unchanged_as_is(want, e) then
          want, why = desired_copy(d, i)
          if not want then return why end
        end
        local fields, changes
        if want ~= d.typed[i] then
          fields, changes = {}, {}
          for _, field in ipairs(compared) do
            if want[field] ~= nil and not same(key, field, want[field], e[field], want) then
              fields[field] = want[field]
              changes[#changes + 1] = { field = field, old = e[field], new = want[field] }
            end
          end
        end
        if changes and #changes > 0 then
          why = still_valid(i, want)
          if why then return why end
          local bad, rule, message = validate.value(update_node, fields, "desired[" .. i .. "]", name)
          if bad then
            local _, origin = where(i, desired[i])
            return invalid(r, bad, rule, message .. " (an update of " .. tostring(e.id) .. ")" .. origin)
          end
          local shown, values = key_of(key, e)
          p.updates[#p.updates + 1] = { key = shown, key_values = values, id = e.id, fields = fields,
                                        changes = changes }
        else
          -- only the id: a plan of 100,000 entries holds 100,000 of them
          local left = e.id
          if left == nil then left = false end
          p.unchanged[#p.unchanged + 1] = left
        end
      elseif purge then
        local shown, values = key_of(key, e)
        p.deletes[#p.deletes + 1] = { key = shown, key_values = values, id = e.id, entry = e }
      else
        local shown, values = key_of(key, e)
        p.kept[#p.kept + 1] = { key = shown, key_values = values, id = e.id,
                                reason = opts.purge == false and "purge off" or ("needs " .. tostring(key.guard)) }
      end
    end
  end

  -- Every entry of the listing (see plan.existing), each matched as it
  -- comes, page by page: the listing is never held whole. A walk that
  -- fails leaves no plan; one that moved is walked again from the start,
  -- into a new plan. A wrong entry stops the matching, not the walk: what
  -- is said is what a whole listing, then the matching, would say.
  local wrong, seen
  err = plan.walk(r, function()
    p = setmetatable({
      resource = r, name = name, key = key.fields, key_rule = key, retired = retired,
      creates = {}, updates = {}, deletes = {}, unchanged = {}, skipped = {}, kept = {},
      existing = 0, listed = 0, thresholds = opts.thresholds, force = opts.force,
    }, Plan)
    found, others, wrong = {}, {}, nil
    seen = internal and internal.fingerprint and fingerprint.new()
  end, function(e)
    if seen then seen.add(e) end
    p.listed = p.listed + 1
    tidy(p.listed)
    if not wrong then wrong = walked(p.listed, e) end
  end)
  if err then return nil, err end
  if wrong then return nil, wrong end
  if seen then p.fingerprint = seen.result() end

  for _, item in ipairs(skipped_desired) do p.skipped[#p.skipped + 1] = item end
  -- the desired entries the server lacks, in the order given
  for i in ipairs(d.typed) do
    -- one the directory keeps is already among the skipped
    if not left_to_directory[i] and found[i] == nil then
      local e
      e, err = desired_copy(d, i)
      if not e then return nil, err end
      err = still_valid(i, e)
      if err then return nil, err end
      local where_i, origin = where(i, desired[i])
      local bad, rule, message = validate.value(desc.bodies.create, e, where_i, name)
      if bad then return nil, invalid(r, bad, rule, message .. " (to create it)" .. origin) end
      local text, values = key_of(key, e)
      p.creates[#p.creates + 1] = { key = text, key_values = values, fields = e }
    end
  end
  return p
end

-- What a saved key's value must be, by its field's type: the words a
-- message says, and the test. A key is made of such single values only
-- (check_key).
local KEY_VALUE = {
  string = { "text", function(v) return type(v) == "string" end },
  boolean = { "true or false", function(v) return type(v) == "boolean" end },
  integer = { "a whole number", function(v) return type(v) == "number" and v % 1 == 0 end },
  number = { "a number", function(v) return type(v) == "number" and v == v end },
}

--- A plan saved by sync/folder_plan.lua, as decoded (one resource's: {
--- plan = its JSON form, plan_text.json's; key = the key's fields;
--- existing, listed }), for r: what its apply will send, each create and
--- update checked again against the description, as plan checks them.
--- Each change's key is an object of the key's fields (key_text makes its
--- text again); text_keys: a plan saved by version 1, whose keys are that
--- text (read back into fields). nil and why when it is not one.
function plan.restore(r, saved, text_keys)
  local desc = resource_internals(r)
  local name = desc.name
  local body = type(saved) == "table" and saved.plan
  if type(body) ~= "table" then return nil, "the plan is missing" end
  local key_fields = saved.key
  if type(key_fields) ~= "table" or #key_fields == 0 then return nil, "the key is missing" end
  local in_key = {}
  for _, field in ipairs(key_fields) do
    if type(field) ~= "string" or not desc.entry.fields[field] then
      return nil, "the key names " .. errors.printable(tostring(field)) .. ", no field of " .. name
    end
    if not KEY_VALUE[desc.entry.fields[field].type] then
      return nil, "the key names " .. field .. ", which is no single value: a key is made of text, numbers "
        .. "and booleans"
    end
    if in_key[field] then return nil, "the key names " .. field .. " twice" end
    in_key[field] = true
  end
  local key = keys.of(name, key_fields)
  local function count(v) return type(v) == "number" and v >= 0 and v % 1 == 0 and v or nil end
  local existing, listed = count(saved.existing), count(saved.listed)
  if not existing or not listed then return nil, "existing and listed must be counts" end
  local p = setmetatable({
    resource = r, name = name, key = key.fields, key_rule = key, retired = {},
    creates = {}, updates = {}, deletes = {}, unchanged = {}, skipped = {}, kept = {},
    existing = existing, listed = listed,
  }, Plan)
  local function text(v, what)
    if type(v) ~= "string" then error({ why = what .. " must be text" }) end
    return v
  end
  -- an id as a path would carry it: checked now, before anything is sent
  local function id_of(v, what)
    v = text(v, what)
    local bad, _, message = validate.value(desc.id_node, v, what)
    if bad then error({ why = bad .. ": " .. message }) end
    return v
  end
  -- A JSON object is no list: {"a": {}} would read as an empty one
  -- (ipairs sees nothing in it), and what it holds would be shown nowhere
  -- and never sent. A decoded list has the keys 1..n, an object names.
  local function list(v, what)
    if v == nil then return {} end
    if type(v) ~= "table" or (next(v) ~= nil and v[1] == nil) then error({ why = what .. " must be a list" }) end
    return v
  end
  local fields_said = concat(key_fields, ", ")
  local function key_value(field, v, what)
    local rule = KEY_VALUE[desc.entry.fields[field].type]
    if not rule[2](v) then error({ why = what .. "." .. field .. " must be " .. rule[1] }) end
  end
  -- A change's key, as its text and its fields: an object of exactly the
  -- key's fields, each a value of its type. partial: a skipped entry's,
  -- which may lack the fields the server's entry lacked ("(no pattern)").
  local function key_object(v, what, partial)
    local shape = what .. " must be an object of the key's fields (" .. fields_said .. ")"
    if type(v) ~= "table" then error({ why = shape }) end
    for field in next, v do
      if type(field) ~= "string" then error({ why = shape }) end
      if not in_key[field] then
        error({ why = what .. "." .. field .. " is not a field of the key (" .. fields_said .. ")" })
      end
    end
    for _, field in ipairs(key_fields) do
      if v[field] ~= nil then
        key_value(field, v[field], what)
      elseif not partial then
        error({ why = what .. " lacks " .. field .. " (the key is " .. fields_said .. ")" })
      end
    end
    return key_text(key_fields, v), v
  end
  -- The same from version 1's text, "field=value ..." in the key's order
  -- (key_text), each value read as its field's type; a text that does not
  -- split one way only (a value holding " is_regex=") is refused, as one
  -- that does not split. A skipped entry's text is kept as it is, and
  -- whatever of it does not split gives no fields: it is never sent.
  local greedy, lazy = {}, {}
  for i, field in ipairs(key_fields) do
    local sep = (i > 1 and " " or "^") .. field:gsub("%W", "%%%0") .. "="
    greedy[i], lazy[i] = sep .. "(.*)", sep .. "(.-)"
  end
  greedy, lazy = concat(greedy) .. "$", concat(lazy) .. "$"
  local function key_from_text(v, what, partial)
    v = text(v, what)
    local parts, other = { v:match(greedy) }, { v:match(lazy) }
    local values, why = {}, nil
    if #parts == 0 then why = "is not " .. fields_said:gsub(", ", "=... ") .. "=..." end
    for i = 1, #parts do
      if parts[i] ~= other[i] then why = "can be read more than one way" end
    end
    for i, field in ipairs(why and {} or key_fields) do
      local kind, raw = desc.entry.fields[field].type, parts[i]
      local value = raw
      if kind == "boolean" then
        -- (not `raw == "true" and true or ...`, which cannot answer false)
        if raw == "true" then value = true elseif raw == "false" then value = false else value = nil end
      elseif kind ~= "string" then
        value = tonumber(raw)
      end
      if value == nil or not KEY_VALUE[kind][2](value) then
        why = why or ("." .. field .. " must be " .. KEY_VALUE[kind][1])
      end
      values[field] = value
    end
    if why then
      if partial then return v, {} end
      error({ why = what .. (why:find("^%.") and "" or " ") .. why .. " (a plan saved by version 1): plan again" })
    end
    return v, values
  end
  local key_of_item = text_keys and key_from_text or key_object
  -- Each key created once, each entry updated or deleted once, each field
  -- of an update changed once: plan makes no other, and a file edited so
  -- would make two entries of one key (every later plan refused), or send
  -- one change where two are shown. Keys compare as apply matches them
  -- (keys.value: folded where the key folds); ids as the API reads them (a
  -- uuid's hex digits in either case).
  local created_at, changed_at = {}, {}
  local function same_id(v)
    return desc.id_node.format == "uuid" and v:lower() or v
  end
  local function once(id, what_i)
    local seen = changed_at[same_id(id)]
    if seen then
      error({ why = what_i .. ".id: the same id as " .. seen .. " (" .. id .. "): a plan updates or deletes "
        .. "an entry once" })
    end
    changed_at[same_id(id)] = what_i
    return id
  end
  local ok, failure = pcall(function()
    for i, item in ipairs(list(body.creates, "creates")) do
      local where_i = "creates[" .. i .. "]"
      if type(item) ~= "table" or type(item.fields) ~= "table" then error({ why = where_i .. " has no fields" }) end
      local bad, _, message = validate.value(desc.bodies.create, item.fields, where_i, name)
      if bad then error({ why = bad .. ": " .. message }) end
      local shown, values = key_of_item(item.key, where_i .. ".key")
      -- the key shown is the one the create makes: what is read before
      -- apply is what is sent
      for _, field in ipairs(key_fields) do
        if values[field] ~= item.fields[field] then
          error({ why = where_i .. ".key." .. field .. " is not the " .. field .. " its fields create" })
        end
      end
      -- (never nil: the fields hold every key field, as checked above)
      local k = keys.value(key, item.fields)
      if created_at[k] then
        error({ why = where_i .. ".key: the same key as " .. created_at[k] .. " (" .. shown .. "): a plan "
          .. "creates each key once" })
      end
      created_at[k] = where_i
      p.creates[i] = { key = shown, key_values = values, fields = item.fields }
    end
    for i, item in ipairs(list(body.updates, "updates")) do
      local where_i = "updates[" .. i .. "]"
      if type(item) ~= "table" then error({ why = where_i .. " is not an object" }) end
      local fields, changes, field_at = {}, {}, {}
      for j, ch in ipairs(list(item.changes, where_i .. ".changes")) do
        local where_j = where_i .. ".changes[" .. j .. "]"
        local field = text(type(ch) == "table" and ch.field, where_j .. ".field")
        if field_at[field] then
          error({ why = where_j .. ".field: the same field as " .. field_at[field] .. " (" .. field
            .. "): an update changes each field once" })
        end
        -- (null is a value to send; nothing at all would be shown as
        -- "-> (absent)" and sent as no change of the field)
        if ch.new == nil then error({ why = where_j .. ".new is missing" }) end
        field_at[field] = where_j
        fields[field] = ch.new
        changes[j] = { field = field, old = ch.old, new = ch.new }
      end
      if #changes == 0 then error({ why = where_i .. " changes nothing" }) end
      local bad, _, message = validate.value(desc.bodies.update, fields, where_i, name)
      if bad then error({ why = bad .. ": " .. message }) end
      local shown, values = key_of_item(item.key, where_i .. ".key")
      p.updates[i] = { key = shown, key_values = values, id = once(id_of(item.id, where_i .. ".id"), where_i),
                       fields = fields, changes = changes }
    end
    for i, item in ipairs(list(body.deletes, "deletes")) do
      local where_i = "deletes[" .. i .. "]"
      if type(item) ~= "table" then error({ why = where_i .. " is not an object" }) end
      local shown, values = key_of_item(item.key, where_i .. ".key")
      p.deletes[i] = { key = shown, key_values = values, id = once(id_of(item.id, where_i .. ".id"), where_i) }
    end
    for _, kind in ipairs({ "skipped", "kept" }) do
      for i, item in ipairs(list(body[kind], kind)) do
        if type(item) ~= "table" then error({ why = kind .. "[" .. i .. "] is not an object" }) end
        -- a skipped entry may be one the key cannot name
        local shown, values = key_of_item(item.key, kind .. "[" .. i .. "].key", kind == "skipped")
        p[kind][i] = { key = shown, key_values = values, id = type(item.id) == "string" and item.id or nil,
                       reason = tostring(item.reason) }
      end
    end
    -- a count, not a list: a saved plan holds no ids of what it leaves
    p.unchanged_n = count(body.unchanged) or error({ why = "unchanged must be a count" })
    if p.unchanged_n > listed or existing > listed then
      error({ why = "unchanged and existing cannot be more than the entries listed" })
    end
    for i, item in ipairs(list(body.ignored, "ignored")) do
      if type(item) ~= "table" then error({ why = "ignored[" .. i .. "] is not an object" }) end
      p.retired[text(item.field, "ignored[" .. i .. "].field")] = tostring(item.reason)
    end
  end)
  if not ok then
    if type(failure) == "table" and failure.why then return nil, errors.printable(failure.why) end
    error(failure, 0)
  end
  return p
end

-- A value in a message: a text quoted, a list as the set plan compares.
local function value_text(v)
  if v == nil then return "(absent)" end
  if v == null then return "null" end
  if type(v) == "string" then return format("%q", v) end
  if type(v) == "table" then return keys.canonical(v) end
  return tostring(v)
end

-- Does the listing still hold the value a saved change says it replaces?
-- null and absent alike (plan compares them so), lists as sets.
local function same_old(old, now)
  if absent(old) or absent(now) then return absent(old) and absent(now) end
  if type(old) == "table" and type(now) == "table" then return keys.canonical(old) == keys.canonical(now) end
  return old == now
end

--- For a plan restored from a file (plan.restore), before it is applied:
--- the listing walked again (sync/folder_plan.lua walks it, and lays its
--- fingerprint beside the plan's), each entry through check.add(e), then
--- check.result() -> how many entries the key names (neither skipped nor
--- lacking a key field: what the thresholds are taken of), and nil or why
--- the plan cannot be applied.
---
--- The fingerprint says only that the listing is the one the plan was made
--- against, not that the plan is what was made then: a change is sent to
--- its id and shown by its key, and a hand-edited file can pair any id
--- with any key (a delete that shows b2 and deletes b3), or say an update
--- replaces a value the entry does not hold. So each update and delete is
--- checked here against the entry of its id: listed, not one the plan
--- leaves alone (skipped), of the key the plan shows (compared as plan
--- matches keys: folded where the key folds) and, for an update, holding
--- each old value it shows. The count is taken again for the same reason:
--- the file's "existing" (or its skipped entries) could be anything, and
--- below the thresholds' minimum they are off.
function Plan:saved_check()
  local key, desc = self.key_rule, resource_internals(self.resource)
  local fields = key.fields
  -- ids as the API reads them (a uuid's hex digits in either case), as
  -- plan.restore compares them
  local uuid = desc.id_node.format == "uuid"
  local function same_id(v)
    v = tostring(v)
    return uuid and v:lower() or v
  end
  -- by id, the entry of each update and delete: false until it is listed
  local wanted = {}
  for _, kind in ipairs({ "updates", "deletes" }) do
    for _, item in ipairs(self[kind]) do wanted[same_id(item.id)] = false end
  end
  local existing = 0
  local check = {}

  function check.add(e)
    if type(e) ~= "table" then return end
    local named = not (key.skip and key.skip(e))
    for i = 1, #fields do
      if not named then break end
      named = not absent(e[fields[i]])
    end
    if named then existing = existing + 1 end
    if e.id ~= nil and wanted[same_id(e.id)] == false then wanted[same_id(e.id)] = e end
  end

  -- why item (where_i: "deletes[1]") is not what the entry it names is
  local function differs(where_i, item, with_old)
    local e = wanted[same_id(item.id)]
    if not e then
      return format("%s: entry %s is not listed (its key says %s)", where_i, tostring(item.id), item.key)
    end
    local reason = key.skip and key.skip(e)
    if reason then return format("%s: entry %s is %s: a plan leaves it alone", where_i, tostring(item.id), reason) end
    local said, has, values = {}, {}, item.key_values
    for _, field in ipairs(fields) do
      local want, got = values[field], e[field]
      if absent(got) then
        said[#said + 1], has[#has + 1] = field .. "=" .. tostring(want), "no " .. field
      elseif absent(want) or keys.normal(key, field, want, values) ~= keys.normal(key, field, got, e) then
        said[#said + 1], has[#has + 1] = field .. "=" .. tostring(want), field .. "=" .. tostring(got)
      end
    end
    if #said > 0 then
      return format("%s: its key says %s but entry %s has %s", where_i, concat(said, " "), tostring(item.id),
                    concat(has, " "))
    end
    for j, ch in ipairs(with_old and item.changes or {}) do
      if not same_old(ch.old, e[ch.field]) then
        return format("%s.changes[%d]: it says %s was %s but entry %s has %s", where_i, j, ch.field,
                      value_text(ch.old), tostring(item.id), value_text(e[ch.field]))
      end
    end
  end

  function check.result()
    for _, kind in ipairs({ "updates", "deletes" }) do
      for i, item in ipairs(self[kind]) do
        local why = differs(kind .. "[" .. i .. "]", item, kind == "updates")
        if why then return existing, errors.printable(why) end
      end
    end
    return existing
  end
  return check
end

--- How many entries the plan leaves as they are (a restored plan has
--- their count, not their ids).
function Plan:unchanged_count()
  return self.unchanged_n or #self.unchanged
end

--- One line per change, then the counts (sync/plan_text.lua).
function Plan:lines()
  return plan_text.lines(self)
end

function Plan:__tostring()
  return plan_text.text(self)
end

--- Has the plan anything to do?
function Plan:changes()
  return #self.creates + #self.updates + #self.deletes
end

--- The requests apply would send (the listing, made already, not counted).
function Plan:requests()
  return apply.requests(self)
end

function Plan:apply(opts)
  return apply.apply(self, opts)
end

return plan
